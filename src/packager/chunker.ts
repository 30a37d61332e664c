import { joined, sliceViews, TopLevelBoxSplitter } from './boxes.ts';
import { mdatHeader, moof, prft, styp } from './box-writer.ts';
import { parseMoof, parseMoov, type Sample, type TrackInfo } from './fmp4.ts';
import { initPath } from '../layout/object-names.ts';
import { segmentTicks } from '../timeline/epoch-grid.ts';

export interface InitEvent {
  type: 'init';
  track: string;
  info: TrackInfo;
  /** ftyp + moov as ffmpeg wrote them. */
  bytes: Uint8Array;
  /** Where it is written: `<track>/init.mp4`, or the init of a later period (see Packager). */
  path: string;
  /** The first segment of the period it describes (announced ahead of it, or current); absent: 0. */
  periodStart?: bigint | undefined;
}

export interface ChunkEvent {
  type: 'chunk';
  track: string;
  segment: bigint;
  /** 0-based position of the chunk in its segment. */
  part: number;
  /** The chunk's bytes in order: [styp on part 0], prft, moof, mdat header, then views of the samples. */
  parts: Uint8Array[];
  byteLength: number;
  independent: boolean;
  decodeTime: bigint;
  /** In the track's timescale. */
  duration: number;
  timescale: number;
  /** The last chunk of its segment. */
  segmentComplete: boolean;
  /** Slate media (the "signal lost" picture or silence), not the source's. */
  slate: boolean;
}

export interface SegmentEndEvent {
  type: 'segmentEnd';
  track: string;
  segment: bigint;
  /** The stream ends with this segment (it carries lmsg). */
  last: boolean;
}

export type PackagerEvent = InitEvent | ChunkEvent | SegmentEndEvent;

export interface ChunkerTiming {
  segdur: number;
  cdur: number;
}

export interface SampleWithData extends Sample {
  /** Views of the sample's bytes where ffmpeg's output holds them (more than one if split). */
  data: Uint8Array[];
}

interface OpenSegment {
  segment: bigint;
  start: bigint;
  /** Chunk boundaries in frames (audio) from the segment's first frame; undefined for video. */
  audioBounds?: number[] | undefined;
  chunk: number;
  pending: SampleWithData[];
  /** Chunks of this segment already emitted; the first one carries styp. */
  emitted: number;
  /** Opened by slate media: its styp carries the `slat` brand. */
  slate: boolean;
  /** The chunk in progress is slate. */
  pendingSlate?: boolean;
}

/** What one run of ffmpeg's bytes held: an init segment, or a sample with its data. */
export type ReadItem = { init: InitEvent; sample?: undefined } | { sample: SampleWithData; init?: undefined };

const sum = (xs: readonly number[]) => xs.reduce((a, b) => a + b, 0);

/**
 * mfhd of chunk j of segment n: (n·chunksPerSegment + j) mod 2³², a function of the timeline, so
 * every encoder and every run numbers a chunk alike (it increases, and wraps every ~13 years at 10
 * chunks a second).
 */
/** CMAF chunks in a segment: the segment's duration in chunk durations (at least 1). */
export const chunksPerSegment = (timing: ChunkerTiming): number => Math.max(1, Math.round(timing.segdur / timing.cdur));

export function chunkSequenceNumber(segment: bigint, part: number, chunksPerSegment: number): number {
  return Number((segment * BigInt(chunksPerSegment) + BigInt(part)) % 2n ** 32n);
}

/**
 * Pure: one track's fragmented MP4 (as ffmpeg writes it, cut anywhere) → CMAF chunks on the epoch
 * grid. Segment n covers [n·segdur, (n+1)·segdur); video chunks are the frames of each cdur slot,
 * and a video segment must start with a sync sample exactly on n·segdur. An audio segment is the
 * frames from the one nearest n·segdur to the one before the frame nearest (n+1)·segdur (46 or 47
 * AAC frames at 48 kHz), split into chunks whose sizes differ by at most one frame. Each chunk is
 * emitted as soon as its last sample is parsed; frames before the first whole segment are dropped.
 */
export class TrackChunker {
  readonly track: string;
  readonly #timing: ChunkerTiming;
  #splitter = new TopLevelBoxSplitter();
  #ftyp: Uint8Array | undefined;
  /** The init the samples being packaged are described by. */
  #info: TrackInfo | undefined;
  /** The init of the run being read (the same unless the encoder restarted with another). */
  #runInfo: TrackInfo | undefined;
  #mediaEnd: bigint | undefined;
  #pendingMoof: { size: number; samples: Sample[] } | undefined;
  #open: OpenSegment | undefined;
  #end: { segment: bigint; last: boolean } | undefined;
  #finished = false;
  #lastCompleted: bigint | undefined;
  #dropped = 0;

  constructor(track: string, timing: ChunkerTiming) {
    this.track = track;
    this.#timing = timing;
  }

  get info(): TrackInfo | undefined {
    return this.#info;
  }

  /** True once the segment before the requested end is complete. */
  get finished(): boolean {
    return this.#finished;
  }

  /** Samples dropped because they were not part of a whole segment (e.g. before the first). */
  get droppedSamples(): number {
    return this.#dropped;
  }

  get lastCompletedSegment(): bigint | undefined {
    return this.#lastCompleted;
  }

  /** The segment now being produced, if one is open. */
  get openSegment(): bigint | undefined {
    return this.#open?.segment;
  }

  /**
   * Ends the stream before `segment` (exclusive). With `last`, that final segment is branded lmsg;
   * a segment already open when this is called is finished first.
   */
  endBefore(segment: bigint, { last }: { last: boolean }): void {
    const floor = this.#open ? this.#open.segment + 1n : segment;
    this.#end = { segment: segment > floor ? segment : floor, last };
    if (!this.#open && this.#lastCompleted !== undefined && this.#lastCompleted + 1n >= this.#end.segment)
      this.#finished = true;
  }

  /** Parses and packages: `read` then `addSample` for each sample. */
  push(piece: Uint8Array): PackagerEvent[] {
    const events: PackagerEvent[] = [];
    for (const item of this.read(piece)) {
      if (item.init) events.push(this.useInit(item.init));
      else this.addSample(item.sample, events);
    }
    return events;
  }

  /** A new run of the encoder: its bytes start afresh (a new init), the timeline and numbering go on. */
  newRun(): void {
    this.#splitter = new TopLevelBoxSplitter();
    this.#ftyp = undefined;
    this.#pendingMoof = undefined;
  }

  /** The init segment the following samples are described by. */
  useInit(init: InitEvent): InitEvent {
    this.#info = init.info;
    return init;
  }

  /** Pure parsing of the encoder's bytes, cut anywhere: init segments and samples, in order. */
  read(piece: Uint8Array): ReadItem[] {
    const items: ReadItem[] = [];
    for (const box of this.#splitter.push(piece)) {
      if (box.type === 'ftyp') this.#ftyp = joined(box);
      else if (box.type === 'moov') {
        const moov = joined(box);
        const [info] = parseMoov(moov.subarray(box.headerSize));
        if (!info) throw new Error(`${this.track}: init segment without a track`);
        this.#runInfo = info;
        const bytes = new Uint8Array((this.#ftyp?.length ?? 0) + box.size);
        if (this.#ftyp) bytes.set(this.#ftyp);
        bytes.set(moov, this.#ftyp?.length ?? 0);
        items.push({ init: { type: 'init', track: this.track, info, bytes, path: initPath(this.track) } });
      } else if (box.type === 'moof') {
        if (!this.#runInfo) throw new Error(`${this.track}: fragment before the init segment`);
        const fragment = parseMoof(
          joined(box).subarray(box.headerSize),
          new Map([[this.#runInfo.trackId, this.#runInfo]]),
        );
        this.#pendingMoof = { size: box.size, samples: fragment.tracks.flatMap((t) => t.samples) };
      } else if (box.type === 'mdat' && this.#pendingMoof) {
        const { size: moofSize, samples } = this.#pendingMoof;
        this.#pendingMoof = undefined;
        for (const sample of samples) {
          // trun offsets count from the moof's start; the mdat follows the moof.
          const data = sliceViews(box.pieces, sample.dataOffset - moofSize, sample.size);
          items.push({ sample: { ...sample, data } });
        }
      }
    }
    return items;
  }

  /** Where the emitted media ends (the next sample's decode time if nothing is missing). */
  get mediaEnd(): bigint | undefined {
    return this.#mediaEnd;
  }

  /** The segment a sample belongs to on the grid, and whether it may open that segment. */
  placeSample(sample: Pick<Sample, 'decodeTime' | 'duration' | 'sync'>): { segment: bigint; startsSegment: boolean } {
    const audio = this.#info!.handler === 'soun';
    const S = this.#segmentTicks();
    const half = BigInt(Math.floor(sample.duration / 2));
    const t = sample.decodeTime;
    return audio
      ? { segment: (t + half) / S, startsSegment: (t + half) % S < BigInt(sample.duration) }
      : { segment: t / S, startsSegment: sample.sync && t % S === 0n };
  }

  /**
   * The source stopped mid-segment: the samples of the chunk in progress are dropped (never
   * published), so media ends at the last emitted chunk and the segment stays open for slate.
   */
  interrupt(): void {
    if (this.#open) this.#open.pending = [];
  }

  /** A previous process completed segments up to `segment`: the next one is `segment + 1`. */
  continueAfter(segment: bigint): void {
    this.#lastCompleted = segment;
  }

  /**
   * Closes the open segment as it stands, when nothing will complete it: short and incomplete, or
   * with `complete` as a whole segment (slate handing over to the source a fraction of a frame early).
   */
  closeOpen({ complete = false } = {}): PackagerEvent[] {
    const events: PackagerEvent[] = [];
    if (this.#open) this.#closeSegment(events, complete);
    return events;
  }

  #segmentTicks(): bigint {
    return segmentTicks(this.#timing.segdur, this.#info!.timescale);
  }

  #chunksPerSegment(): number {
    return chunksPerSegment(this.#timing);
  }

  /** Packages one sample (the source's, or slate with `slate`); events it completes go to `events`. */
  addSample(sample: SampleWithData, events: PackagerEvent[], slate = false): void {
    if (!this.#info) throw new Error(`${this.track}: sample before the init segment`);
    this.#sample(sample, events, slate);
  }

  #sample(sample: SampleWithData, events: PackagerEvent[], slate = false): void {
    if (this.#finished) return void this.#dropped++;
    const info = this.#info!;
    const audio = info.handler === 'soun';
    const S = this.#segmentTicks();
    const half = BigInt(Math.floor(sample.duration / 2));
    const t = sample.decodeTime;
    const { segment, startsSegment } = this.placeSample(sample);

    if (this.#end && segment >= this.#end.segment && !this.#open) {
      this.#finished = true;
      return void this.#dropped++;
    }
    if (this.#open && segment !== this.#open.segment) {
      this.#closeSegment(events, false);
      if (this.#finished) return void this.#dropped++;
    }
    if (!this.#open) {
      if (!startsSegment) return void this.#dropped++;
      this.#open = { segment, start: t, chunk: 0, pending: [], emitted: 0, slate };
      if (audio) {
        const frames = Number(((segment + 1n) * S - half - t + BigInt(sample.duration) - 1n) / BigInt(sample.duration));
        const chunks = Math.min(this.#chunksPerSegment(), frames);
        this.#open.audioBounds = Array.from({ length: chunks + 1 }, (_, j) => Math.round((j * frames) / chunks));
      }
    }
    const open = this.#open;
    const chunkOf = (s: Sample): number => {
      const offset = s.decodeTime - open.start;
      if (open.audioBounds) {
        const frame = Number(offset / BigInt(s.duration));
        return open.audioBounds.findIndex((bound, j) => j > 0 && frame < bound) - 1;
      }
      const chunkTicks = S / BigInt(this.#chunksPerSegment());
      return Number(offset / chunkTicks);
    };
    const chunk = chunkOf(sample);
    if (chunk < 0) {
      // Past the segment's last planned frame: only after a discontinuity.
      this.#closeSegment(events, false);
      this.#sample(sample, events, slate);
      return;
    }
    if (chunk > open.chunk && open.pending.length) this.#emitChunk(events, false);
    if (!open.pending.length) open.pendingSlate = slate;
    open.chunk = chunk;
    open.pending.push(sample);

    const end = t + BigInt(sample.duration);
    const chunkEnd = open.audioBounds
      ? open.start + BigInt(open.audioBounds[chunk + 1]! * sample.duration)
      : open.start + (S / BigInt(this.#chunksPerSegment())) * BigInt(chunk + 1);
    const segmentEnd = open.audioBounds
      ? open.start + BigInt(open.audioBounds.at(-1)! * sample.duration)
      : open.start + S;
    if (end >= segmentEnd) this.#closeSegment(events, true);
    else if (end >= chunkEnd) this.#emitChunk(events, false);
  }

  #emitChunk(events: PackagerEvent[], segmentComplete: boolean): void {
    const open = this.#open!;
    const samples = open.pending;
    if (!samples.length) return;
    open.pending = [];
    const info = this.#info!;
    const first = samples[0]!;
    const last = this.#end?.last === true && open.segment + 1n === this.#end.segment;
    const header = moof(
      chunkSequenceNumber(open.segment, open.emitted, this.#chunksPerSegment()),
      info.trackId,
      first.decodeTime,
      samples,
    );
    const payload = sum(samples.map((s) => s.size));
    const micros = (first.decodeTime * 1_000_000n) / BigInt(info.timescale);
    const parts = [
      ...(open.emitted === 0 ? [styp({ last, slate: open.slate })] : []),
      prft(info.trackId, first.decodeTime, micros),
      header,
      mdatHeader(payload),
      ...samples.flatMap((s) => s.data),
    ];
    events.push({
      type: 'chunk',
      track: this.track,
      segment: open.segment,
      part: open.emitted++,
      parts,
      byteLength: sum(parts.map((p) => p.length)),
      independent: first.sync,
      decodeTime: first.decodeTime,
      duration: sum(samples.map((s) => s.duration)),
      timescale: info.timescale,
      segmentComplete,
      slate: open.pendingSlate === true,
    });
    const lastSample = samples.at(-1)!;
    this.#mediaEnd = lastSample.decodeTime + BigInt(lastSample.duration);
  }

  #closeSegment(events: PackagerEvent[], complete: boolean): void {
    const open = this.#open!;
    this.#emitChunk(events, complete);
    if (open.emitted > 0) {
      const last = this.#end?.last === true && open.segment + 1n === this.#end.segment;
      events.push({ type: 'segmentEnd', track: this.track, segment: open.segment, last });
      this.#lastCompleted = open.segment;
    }
    this.#open = undefined;
    if (this.#end && open.segment + 1n >= this.#end.segment) this.#finished = true;
  }
}
