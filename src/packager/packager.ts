import type { Profile } from '../config/schema.ts';
import { TrackChunker, type InitEvent, type PackagerEvent, type SampleWithData } from './chunker.ts';
import { SlateCursor, type SlateClip } from './slate.ts';
import { initPath } from '../layout/object-names.ts';
import { segmentTicks, trackSegmentStart } from '../timeline/epoch-grid.ts';
import type { MpdModel } from './mpd.ts';
import type { HlsAudioRendition, HlsVideoRendition } from './hls-playlist.ts';
import { hlsRenditionsOf, mpdModelOf } from './manifest-model.ts';

export interface PackagedTrack {
  id: string;
  kind: 'video' | 'audio';
  bitrate: number;
}

export interface ManifestOptions {
  timeShiftBufferDepth: number;
  utcTimingUrl: string;
}

/**
 * A stretch of the timeline with one init segment per track. A restarted encoder whose init is
 * byte for byte the same continues the period; another init starts a new one (a DASH Period, an
 * HLS discontinuity with a new EXT-X-MAP), at a segment boundary.
 */
export interface Period {
  /** Its first segment; the first period of a history starts at 0 (PT0S). */
  start: bigint;
  /** The tracks the period has (a rendition not encoded then has none). */
  inits: Map<string, InitEvent>;
  /** Its video frame rate, when a run set one other than the profile's. */
  frameRate?: number | undefined;
}

/** What one encoder run makes: its tracks (a subset of the packager's) and its frame rate. */
export interface RunShape {
  tracks: readonly string[];
  frameRate?: number | undefined;
}

export interface PackagerOptions {
  /** The wall clock in ms since 1970 (injectable: the slate runs on it, tests step it). */
  now?: () => number;
  /**
   * How long a new segment of slate waits for the source's media of that segment, after its first
   * chunk would be due, while the source is flowing again (its media arrives a little after real time).
   */
  resumeWaitMs?: number;
  /** A forward jump in a track's media larger than this (ms) is a discontinuity: slate until the next boundary. */
  jumpToleranceMs?: number;
  /** A new period starts at least this long (ms) after it is decided, so DASH players reload the MPD first. */
  periodLeadMs?: number;
  /** Where the packager says what it decided (resume points, jumps), for a debug log. */
  note?: (fields: Record<string, unknown>, message: string) => void;
}

/** Why the packager left or dropped the source's media, for the log and the counters. */
export interface ContinuityCounters {
  /** Source samples older than what was already packaged (a clock stepped back): dropped. */
  backwardsSamples: number;
  /** Source samples dropped while the slate held their segment, or before the resume point. */
  heldBackSamples: number;
  /** Slate samples packaged, per track. */
  slateSamples: Map<string, number>;
  /** The source stopped (`interrupt`: encoder exit, stall, clock step seen by the shell). */
  interruptions: number;
  /** A track's source media jumped ahead (per track): slate until the next boundary. */
  jumps: number;
}

interface TrackState {
  chunker: TrackChunker;
  kind: 'video' | 'audio';
  /**
   * `live`: the source's media is packaged; `slate`: the slate fills in until the source resumes;
   * `absent`: not in the current period (a rendition no longer encoded), nothing is made.
   */
  mode: 'live' | 'slate' | 'absent';
  slate: SlateCursor | undefined;
  /** The clip the slate cursor repeats (each period's init has its own). */
  slateClip: SlateClip | undefined;
  /** The init of the run being read, byte for byte: its media belongs only in periods with that init. */
  runInit: Uint8Array | undefined;
  /** A new run's init that differs from the track's in the current period. */
  pendingInit: InitEvent | undefined;
  /** End of the newest sample packaged (source or slate): the next one may not start before it. */
  end: bigint | undefined;
}

const MAX_SLATE_CATCH_UP_SEGMENTS = 10n;
/** How long slate waits for a planned restart's first chunk past its due time (a box short of CPU is slow to start). */
const HAND_OVER_WAIT_MS = 600;
/** The longest slate waits at a boundary for a source that is flowing but behind. */
const LATE_SOURCE_WAIT_MS = 3000;

/**
 * Pure (the clock is injected): every track's fMP4 stream → CMAF events, across encoder runs, with
 * slate while the source is missing, plus the state the manifests are built from. `push` returns
 * the events the bytes completed; nothing waits for later input. `tick` makes the slate due by now.
 */
export class Packager {
  readonly #states: Map<string, TrackState>;
  readonly #tracks: readonly PackagedTrack[];
  readonly #timing: { segdur: number; cdur: number };
  readonly #now: () => number;
  readonly #resumeWaitMs: number;
  readonly #jumpToleranceMs: number;
  readonly #periodLeadMs: number;
  readonly #note: (fields: Record<string, unknown>, message: string) => void;
  readonly #periods: Period[] = [];
  readonly #clips = new Map<string, SlateClip[]>();
  #firstSegment: bigint | undefined;
  #end: { segment: bigint; last: boolean } | undefined;
  /** After an interruption: the segment from which the source's media is taken again. */
  #resumeAt: bigint | undefined;
  #sourceSeenAt = -Infinity;
  /** How far the running source's media has reached (ms since 1970), taken or held back, and when it last advanced. */
  #sourceReach: { ms: number; at: number } | undefined;
  /** What the current encoder run makes; every track until told otherwise. */
  #run: RunShape;
  /** The first period has had every track's init: manifests can be written from then on. */
  #assembled = false;
  /** The segment an announced period begins at, where the next run is expected to take over. */
  #handOver: bigint | undefined;
  /** How late the manifests now say media may be (ms): slate waits that long for a source that comes. */
  #lateAllowanceMs = 0;
  readonly counters: ContinuityCounters = {
    backwardsSamples: 0,
    heldBackSamples: 0,
    slateSamples: new Map(),
    interruptions: 0,
    jumps: 0,
  };

  constructor(
    tracks: readonly PackagedTrack[],
    timing: { segdur: number; cdur: number },
    options: PackagerOptions = {},
  ) {
    this.#tracks = tracks;
    this.#timing = timing;
    this.#now = options.now ?? Date.now;
    this.#resumeWaitMs = options.resumeWaitMs ?? 150;
    this.#jumpToleranceMs = options.jumpToleranceMs ?? timing.cdur * 1000;
    this.#periodLeadMs = options.periodLeadMs ?? 3000;
    this.#note = options.note ?? (() => undefined);
    this.#run = { tracks: tracks.map((t) => t.id) };
    this.#states = new Map(
      tracks.map((t) => [
        t.id,
        {
          chunker: new TrackChunker(t.id, timing),
          kind: t.kind,
          mode: 'live',
          slate: undefined,
          slateClip: undefined,
          runInit: undefined,
          pendingInit: undefined,
          end: undefined,
        },
      ]),
    );
  }

  #state(track: string): TrackState {
    const state = this.#states.get(track);
    if (!state) throw new Error(`unknown track ${track}`);
    return state;
  }

  /** The source's bytes for `track` from the current encoder run. */
  push(track: string, piece: Uint8Array): PackagerEvent[] {
    const state = this.#state(track);
    const events: PackagerEvent[] = [];
    for (const item of state.chunker.read(piece)) {
      if (item.init) this.#sourceInit(state, item.init, events);
      else this.#sourceSample(state, item.sample, events);
    }
    this.#noteFirstSegment(events);
    return events;
  }

  /** The encoder was restarted: its bytes start afresh; until it delivers a whole segment, slate. */
  newRun(): PackagerEvent[] {
    const events = this.interrupt();
    for (const state of this.#states.values()) state.chunker.newRun();
    return events;
  }

  /**
   * The shape of the encoder run that starts now (a box short of CPU encodes fewer tracks or fewer
   * frames): a track it leaves out ends at the next period, one it brings back or another frame
   * rate starts one.
   */
  useRun(run: RunShape): void {
    this.#run = { tracks: run.tracks.filter((t) => this.#states.has(t)), frameRate: run.frameRate };
  }

  /**
   * The source stopped (the encoder died or stalled, the clock stepped): each track's media ends
   * at its last whole chunk, and slate continues from there, due by the clock, until the source
   * delivers the start of a segment again. Without a slate, the open segment ends short.
   */
  interrupt(): PackagerEvent[] {
    if ([...this.#states.values()].some((s) => s.mode === 'live')) this.counters.interruptions++;
    this.#resumeAt = undefined;
    // The source that stopped is not one to wait for.
    this.#sourceSeenAt = -Infinity;
    this.#sourceReach = undefined;
    for (const state of this.#states.values()) this.#interruptTrack(state);
    return this.tick();
  }

  #interruptTrack(state: TrackState): void {
    if (state.mode !== 'live') return;
    state.chunker.interrupt();
    state.mode = 'slate';
    state.slate = undefined;
    state.end = state.chunker.mediaEnd;
  }

  /** The slate's clip for a track; used only while its init is byte for byte the track's. */
  setSlate(clip: SlateClip): void {
    const clips = this.#clips.get(clip.init.track) ?? [];
    if (!clips.some((c) => sameBytes(c.init.bytes, clip.init.bytes))) clips.push(clip);
    this.#clips.set(clip.init.track, clips);
  }

  /** The slate clip for the track's init in the period of `segment` (default: the current period), if there is one. */
  #clipFor(track: string, segment?: bigint): SlateClip | undefined {
    const period = segment === undefined ? this.#periods.at(-1) : this.#periodOf(segment);
    const init = period?.inits.get(track);
    return init && this.#clips.get(track)?.find((c) => sameBytes(c.init.bytes, init.bytes));
  }

  /** The period `segment` belongs to (the first one for segments before it). */
  #periodOf(segment: bigint): Period | undefined {
    return this.#periods.findLast((p) => p.start <= segment) ?? this.#periods[0];
  }

  /** The slate of `track` can stand in for its media (same init as the track's current one). */
  slateUsable(track: string): boolean {
    return this.#clipFor(track) !== undefined;
  }

  /**
   * Continues a session a previous process left (a service restart): its periods, and slate from
   * the segment after its last until this process's source takes over. Returns the init events
   * of the periods, for outputs that lost them.
   */
  resume(periods: readonly Period[], lastSegment: bigint): PackagerEvent[] {
    if (this.#periods.length || !periods.length) return [];
    this.#periods.push(...periods);
    this.#assembled = true;
    const current = periods.at(-1)!;
    const events: PackagerEvent[] = periods.flatMap((p) => [...p.inits.values()]);
    for (const [track, state] of this.#states) {
      const init = current.inits.get(track);
      if (!init) {
        // Not encoded when the previous process stopped: a new period brings it back.
        state.mode = 'absent';
        state.chunker.continueAfter(lastSegment);
        continue;
      }
      state.chunker.useInit(init);
      state.chunker.continueAfter(lastSegment);
      state.mode = 'slate';
      state.slate = undefined;
      state.end = this.#segmentStart(state, lastSegment + 1n, init.info.timescale);
    }
    return events;
  }

  /**
   * Starts the stream on slate alone (a capture device not there yet, retried): a first period
   * made of the slate's inits, slate from the segment after `lastSegment`. The source's media
   * continues that period when its init is the slate's byte for byte, else opens a new one.
   */
  startOnSlate(lastSegment: bigint): PackagerEvent[] {
    if (this.#periods.length) return [];
    const inits = new Map<string, InitEvent>();
    for (const track of this.#states.keys()) {
      const clip = this.#clips.get(track)?.[0];
      if (!clip) return [];
      inits.set(track, { ...clip.init, path: initPath(track, 0n), periodStart: 0n });
    }
    return this.resume([{ start: 0n, inits }], lastSegment);
  }

  /** Slate due by now, for every track waiting for its source. */
  tick(): PackagerEvent[] {
    const events: PackagerEvent[] = [];
    const nowMs = this.#now();
    for (const [track, state] of this.#states) {
      if (state.mode !== 'slate' || !state.chunker.info) continue;
      const nowTicks = (BigInt(Math.floor(nowMs)) * BigInt(state.chunker.info.timescale)) / 1000n;
      this.#slateUntil(state, track, nowTicks, events, nowMs);
    }
    this.#noteFirstSegment(events);
    return events;
  }

  /**
   * The track's slate up to `untilTicks` (its media time). With `holdAt` (the clock, in ms), a
   * segment the source may be about to take is waited for; without, slate fills every segment up
   * to `untilTicks`, where the source takes over.
   */
  #slateUntil(state: TrackState, track: string, untilTicks: bigint, events: PackagerEvent[], holdAt?: number): void {
    const chunker = state.chunker;
    const S = segmentTicks(this.#timing.segdur, chunker.info!.timescale);
    const from =
      state.slate?.next ??
      chunker.mediaEnd ??
      state.end ??
      this.#segmentStart(state, untilTicks / S, chunker.info!.timescale);
    if (!this.#slateFor(state, track, from, events)) return;
    if (untilTicks - state.slate!.next > MAX_SLATE_CATCH_UP_SEGMENTS * S) {
      // Far behind (a clock stepped forward): leave a hole rather than a burst of old slate.
      events.push(...chunker.closeOpen());
      state.slate = undefined;
      this.#slateFor(state, track, this.#segmentStart(state, untilTicks / S, chunker.info!.timescale), events);
      return;
    }
    for (let guard = 0; guard < 100_000 && !chunker.finished && state.slate; guard++) {
      const cursor = state.slate;
      const t = cursor.next;
      if (t + BigInt(cursor.peekDuration()) > untilTicks) break;
      const place = chunker.placeSample({ decodeTime: t, duration: cursor.peekDuration(), sync: true });
      if (
        holdAt !== undefined &&
        place.startsSegment &&
        chunker.openSegment !== place.segment &&
        this.#holdsSegmentFor(place.segment, holdAt)
      )
        break;
      // A new period from here: its own slate clip, or none for a track it leaves out.
      if (place.startsSegment && !this.#slateFor(state, track, t, events)) break;
      this.#add(state, state.slate!.take(), events, true);
      this.counters.slateSamples.set(track, (this.counters.slateSamples.get(track) ?? 0) + 1);
    }
  }

  /**
   * Points the track's slate at the clip of the period its media at `at` falls in. A period
   * without the track ends it there (the segment before is whole); a track without a usable clip
   * ends its open segment short (a hole, as warned at the start). False when no slate is made.
   */
  #slateFor(state: TrackState, track: string, from: bigint, events: PackagerEvent[]): boolean {
    let at = from;
    const chunker = state.chunker;
    const S = segmentTicks(this.#timing.segdur, chunker.info!.timescale);
    let segment = chunker.placeSample({ decodeTime: at, duration: 1, sync: true }).segment;
    let period = this.#periodOf(segment);
    if (period && !period.inits.has(track)) {
      events.push(...chunker.closeOpen({ complete: at % S === 0n || state.kind === 'audio' }));
      state.slate = undefined;
      state.slateClip = undefined;
      // A later period with the track (one announced for a run that brings it back): slate from its start.
      const back = this.#periods.find((p) => p.start > segment && p.inits.has(track));
      if (!back) {
        state.mode = 'absent';
        return false;
      }
      segment = back.start;
      period = back;
      at = this.#segmentStart(state, segment, chunker.info!.timescale);
    }
    const clip = this.#clipFor(track, segment);
    if (!clip) {
      events.push(...chunker.closeOpen());
      state.slate = undefined;
      return false;
    }
    if (state.slate && state.slateClip === clip) return true;
    state.slate = new SlateCursor(clip, S, at);
    state.slateClip = clip;
    chunker.useInit(period!.inits.get(track)!);
    return true;
  }

  /** Where the track's segment starts: its audio on the epoch frame grid, as live audio is. */
  #segmentStart(state: TrackState, segment: bigint, timescale: number): bigint {
    return trackSegmentStart(state.kind, segment, this.#timing.segdur, timescale);
  }

  /**
   * The manifests now promise media up to `ms` late (an encoder behind real time; 0: on time). The
   * slate keeps to that promise rather than to the clock: a restarted run (a step down) that comes
   * within it takes over at its period's start instead of slate running on until it catches up.
   */
  allowLateSource(ms: number): void {
    this.#lateAllowanceMs = Math.max(0, ms);
  }

  /** Slate waits a moment before opening `segment` while the source is flowing again. */
  #holdsSegmentFor(segment: bigint, nowMs: number): boolean {
    const startMs = Number(segment) * this.#timing.segdur * 1000;
    const dueMs = startMs + this.#timing.cdur * 1000;
    const handOverWaitMs = Math.max(this.#resumeWaitMs, HAND_OVER_WAIT_MS, this.#lateAllowanceMs);
    if (segment === this.#handOver && nowMs < dueMs + handOverWaitMs) return true;
    if (nowMs - this.#sourceSeenAt > 1000) return false;
    if (this.#resumeAt !== undefined && segment < this.#resumeAt) return false;
    // A source that flows but late (an encoder short of CPU, warming up) is waited for while it
    // advances towards the segment: the slate racing ahead on the clock would never let it take over.
    const reach = this.#sourceReach;
    const lateWaitMs = Math.max(LATE_SOURCE_WAIT_MS, this.#lateAllowanceMs);
    if (reach && reach.ms < startMs && nowMs - reach.at < 500 && nowMs < dueMs + lateWaitMs) return true;
    return nowMs < dueMs + this.#resumeWaitMs;
  }

  #sourceInit(state: TrackState, init: InitEvent, events: PackagerEvent[]): void {
    this.#sourceSeenAt = this.#now();
    state.runInit = init.bytes;
    if (!this.#periods.length) this.#periods.push({ start: 0n, inits: new Map() });
    const current = this.#periods.at(-1)!;
    const known = current.inits.get(init.track);
    if (!known && this.#assembled) {
      // A track the current period does not have (a rendition encoded again): a new period brings it.
      state.pendingInit = init;
      return;
    }
    if (!known) {
      const placed = { ...init, path: initPath(init.track, current.start), periodStart: current.start };
      current.inits.set(init.track, placed);
      if (this.#run.frameRate !== undefined) current.frameRate = this.#run.frameRate;
      this.#assembled ||= this.#run.tracks.every((t) => current.inits.has(t));
      state.chunker.useInit(placed);
      events.push(placed);
      return;
    }
    state.pendingInit = sameBytes(known.bytes, init.bytes) ? undefined : init;
  }

  #sourceSample(state: TrackState, sample: SampleWithData, events: PackagerEvent[]): void {
    const chunker = state.chunker;
    this.#sourceSeenAt = this.#now();
    const timescale = (chunker.info ?? state.pendingInit?.info)?.timescale;
    if (timescale) {
      const reachMs = Number(((sample.decodeTime + BigInt(sample.duration)) * 1000n) / BigInt(timescale));
      if (!this.#sourceReach || reachMs > this.#sourceReach.ms) this.#sourceReach = { ms: reachMs, at: this.#now() };
    }
    if (chunker.finished) return;
    if (state.mode === 'live') {
      const end = state.end;
      const info = chunker.info!;
      if (end !== undefined && sample.decodeTime < end) {
        this.counters.backwardsSamples++;
        return;
      }
      const toleranceTicks = BigInt(Math.round((this.#jumpToleranceMs * info.timescale) / 1000));
      if (end !== undefined && sample.decodeTime - end > toleranceTicks + BigInt(sample.duration)) {
        // The source's time jumped ahead (a clock step): slate from where media ended, resume at a boundary.
        this.counters.jumps++;
        this.#note(
          { track: chunker.track, from: Number(end) / info.timescale, to: Number(sample.decodeTime) / info.timescale },
          'source media jumped ahead',
        );
        this.#interruptTrack(state);
        if ([...this.#states.values()].every((s) => s.mode === 'slate')) this.#resumeAt = undefined;
        events.push(...this.tick());
      } else if (this.#runFitsPeriodAt(state, sample)) {
        this.#add(state, sample, events, false);
        return;
      } else {
        // A period announced for the next run begins here: this run's media does not belong in it.
        this.#interruptTrack(state);
        events.push(...this.tick());
        return void this.counters.heldBackSamples++;
      }
    }
    // A track that was never in a period of this process places its samples by its run's init.
    if (!chunker.info && state.pendingInit) chunker.useInit(state.pendingInit);
    const place = chunker.placeSample(sample);
    if (!place.startsSegment) return void this.counters.heldBackSamples++;
    this.#resumeAt ??= this.#decideResume(place.segment, events);
    const begun = chunker.openSegment ?? chunker.lastCompletedSegment;
    if (
      this.#resumeAt === undefined ||
      place.segment < this.#resumeAt ||
      (begun !== undefined && place.segment <= begun)
    ) {
      return void this.counters.heldBackSamples++;
    }
    // Segments before this one that slate held open for a source that comes later than them
    // (audio back at a boundary, video only at the next: a restart short of CPU) are slate's.
    if (state.mode === 'slate' && chunker.info) {
      const start = this.#segmentStart(state, place.segment, chunker.info.timescale);
      if ((chunker.mediaEnd ?? state.end ?? start) < start) this.#slateUntil(state, chunker.track, start, events);
    }
    // The slate's open segment (if any) is completed first: the source takes over at a boundary.
    if (state.slate && chunker.openSegment !== undefined) {
      for (
        let guard = 0;
        guard < 10_000 && chunker.openSegment !== undefined && state.slate.next < sample.decodeTime;
        guard++
      ) {
        this.#add(state, state.slate.take(), events, true);
      }
      this.#note(
        {
          track: chunker.track,
          segment: String(chunker.openSegment),
          slateEnd: Number(state.slate.next) / chunker.info!.timescale,
          sourceStart: Number(sample.decodeTime) / chunker.info!.timescale,
        },
        'slate hands over',
      );
      // On the epoch grid the slate ends exactly where the source begins; off it (an encoder that
      // does not hold the grid) by a fraction of a frame: the slate's segment ends there all the same.
      events.push(...chunker.closeOpen({ complete: true }));
    }
    const period = this.#periodOf(place.segment)!;
    const init = period.inits.get(chunker.track);
    // Not in the period decided without it (its init came late): it waits for the next one.
    if (!init) return void this.counters.heldBackSamples++;
    // This run's init must be the period's: a run that outlived its period (a restart that came late) has another.
    if (state.runInit && !sameBytes(state.runInit, init.bytes)) return void this.counters.heldBackSamples++;
    if (state.pendingInit && !sameBytes(state.pendingInit.bytes, init.bytes)) {
      // This run's init came after its period was started: its media cannot be used in it.
      return void this.counters.heldBackSamples++;
    }
    state.pendingInit = undefined;
    this.#note(
      { track: chunker.track, segment: String(place.segment), at: Number(sample.decodeTime) / chunker.info!.timescale },
      'source resumes',
    );
    chunker.useInit(init);
    state.mode = 'live';
    state.slate = undefined;
    this.#add(state, sample, events, false);
  }

  /** At a segment start: the segment's period has this run's init for the track (then the chunker uses it). */
  #runFitsPeriodAt(state: TrackState, sample: SampleWithData): boolean {
    const place = state.chunker.placeSample(sample);
    if (!place.startsSegment || this.#periods.length < 2) return true;
    const init = this.#periodOf(place.segment)?.inits.get(state.chunker.track);
    if (!init || (state.runInit && !sameBytes(init.bytes, state.runInit))) return false;
    state.chunker.useInit(init);
    return true;
  }

  /**
   * A period from `start` on for the run that will begin just before it (a planned restart with
   * other settings, whose inits are known from its slate): announced now, so DASH players learn of
   * it ahead and the run takes over at its first segment, the slate between old and new runs
   * lasting only the restart. The slate waits a little longer than usual for that run there.
   * Returns its init events, for the outputs.
   */
  announcePeriod(start: bigint, run: RunShape, inits: ReadonlyMap<string, InitEvent>): InitEvent[] {
    const begun = this.currentSegment;
    const previous = this.#periods.at(-1);
    if (!previous || (begun !== undefined && start <= begun) || start <= previous.start) return [];
    if (this.#end && start >= this.#end.segment) return [];
    const period: Period = { start, inits: new Map(), frameRate: run.frameRate ?? previous.frameRate };
    for (const track of run.tracks) {
      const init = inits.get(track);
      if (init) period.inits.set(track, { ...init, path: initPath(track, start), periodStart: start });
    }
    this.#periods.push(period);
    this.#handOver = start;
    this.#bringBack(period);
    return [...period.inits.values()];
  }

  /** Tracks a new period has again wait for their source on slate from its start, not on nothing. */
  #bringBack(period: Period): void {
    for (const [track, state] of this.#states)
      if (state.mode === 'absent' && period.inits.has(track) && state.chunker.info) {
        state.mode = 'slate';
        state.slate = undefined;
      }
  }

  #add(state: TrackState, sample: SampleWithData, events: PackagerEvent[], slate: boolean): void {
    state.chunker.addSample(sample, events, slate);
    state.end = sample.decodeTime + BigInt(sample.duration);
  }

  /**
   * The first segment the source's media is taken from again, seen its first whole segment: the
   * segments the slate has begun stay slate; a changed init needs a new period, which starts far
   * enough ahead for DASH players to learn of it (its init events go out now).
   */
  #decideResume(segment: bigint, events: PackagerEvent[]): bigint {
    const begun = this.currentSegment ?? -1n;
    let resume = segment > begun ? segment : begun + 1n;
    let previous = this.#periods.at(-1)!;
    const changed =
      [...this.#states.values()].some((s) => s.pendingInit) ||
      [...previous.inits.keys()].some((track) => !this.#run.tracks.includes(track)) ||
      (this.#run.frameRate !== undefined && this.#run.frameRate !== (previous.frameRate ?? this.#run.frameRate));
    if (!changed) return resume;
    const leadSegment = BigInt(Math.ceil((this.#now() + this.#periodLeadMs) / 1000 / this.#timing.segdur));
    if (leadSegment > resume) resume = leadSegment;
    // A period announced for a planned restart, not begun, that this run comes before (the encoder
    // restarted on its own first): this run's period takes its place rather than one of no length.
    if (this.#periods.length > 1 && previous.start >= resume && begun < previous.start) {
      this.#periods.pop();
      previous = this.#periods.at(-1)!;
    }
    // Every init of the new period is written under the period's name; the DASH template names them so.
    const period: Period = {
      start: resume,
      inits: new Map(),
      frameRate: this.#run.frameRate ?? previous.frameRate,
    };
    for (const [track, state] of this.#states) {
      if (!this.#run.tracks.includes(track)) continue;
      const source = state.pendingInit ?? previous.inits.get(track);
      if (!source) continue;
      const init = { ...source, path: initPath(track, resume), periodStart: resume };
      period.inits.set(track, init);
      if (state.pendingInit) state.pendingInit = init;
      events.push(init);
    }
    this.#periods.push(period);
    this.#bringBack(period);
    return resume;
  }

  #noteFirstSegment(events: readonly PackagerEvent[]): void {
    if (this.#firstSegment !== undefined) return;
    for (const event of events)
      if (event.type === 'chunk' && event.part === 0) {
        this.#firstSegment = event.segment;
        return;
      }
  }

  /** The periods so far, oldest first. */
  get periods(): readonly Period[] {
    return this.#periods;
  }

  /** Whether the period `segment` falls in has `track` (a rendition not encoded then has none). */
  hasTrack(track: string, segment: bigint): boolean {
    const period = this.#periodOf(segment);
    return !period || period.inits.has(track);
  }

  /** Every track's init segment has arrived (those of the first run, for the first period): the manifest can be written. */
  get ready(): boolean {
    return this.#assembled;
  }

  /** Tracks now filled with slate. */
  /** Some track is on slate (what slateTracks names, without building the list). */
  get onSlate(): boolean {
    for (const state of this.#states.values()) if (state.mode === 'slate') return true;
    return false;
  }

  get slateTracks(): string[] {
    return [...this.#states].filter(([, s]) => s.mode === 'slate').map(([id]) => id);
  }

  /** Every track has completed the segment before the requested end (a track the period left out has nothing to complete). */
  get finished(): boolean {
    return [...this.#states.values()].every((s) => s.chunker.finished || s.mode === 'absent');
  }

  /** Where each track stands, for a log line when something does not finish. */
  get trackStates(): Record<
    string,
    { mode: TrackState['mode']; openSegment?: string; lastCompleted?: string; slateUsable: boolean; finished: boolean }
  > {
    return Object.fromEntries(
      [...this.#states].map(([id, s]) => [
        id,
        {
          mode: s.mode,
          openSegment: s.chunker.openSegment?.toString(),
          lastCompleted: s.chunker.lastCompletedSegment?.toString(),
          slateUsable: this.slateUsable(id),
          finished: s.chunker.finished,
        },
      ]),
    );
  }

  get firstSegment(): bigint | undefined {
    return this.#firstSegment;
  }

  get end(): { segment: bigint; last: boolean } | undefined {
    return this.#end;
  }

  /** The furthest segment any track has begun or completed. */
  get currentSegment(): bigint | undefined {
    let furthest: bigint | undefined;
    for (const { chunker: c } of this.#states.values()) {
      const s = c.openSegment ?? c.lastCompletedSegment;
      if (s !== undefined && (furthest === undefined || s > furthest)) furthest = s;
    }
    return furthest;
  }

  /** Ends every track before `segment`; with `last`, the final segment carries lmsg. */
  endBefore(segment: bigint, options: { last: boolean }): void {
    this.#end = { segment, ...options };
    for (const { chunker: c } of this.#states.values()) c.endBefore(segment, options);
  }

  /** The HLS variants of the current period, once every init is known. */
  hlsRenditions(profile: Profile): { video: HlsVideoRendition[]; audio: HlsAudioRendition | undefined } | undefined {
    return this.ready ? hlsRenditionsOf(this.#tracks, this.#periods.at(-1)!, profile) : undefined;
  }

  /** Pure: the manifest's model from the profile, the tracks' init segments and the options. */
  mpdModel(profile: Profile, options: ManifestOptions, now: Date): MpdModel {
    return mpdModelOf({
      tracks: this.#tracks,
      periods: this.#periods,
      firstSegment: this.#firstSegment,
      // Only once every track has completed its last segment: until then the stream is still live.
      endedAt: this.#end?.last && this.finished ? Number(this.#end.segment) * profile.segdur : undefined,
      profile,
      options,
      now,
    });
  }
}

const sameBytes = (a: Uint8Array, b: Uint8Array) => a.byteLength === b.byteLength && Buffer.compare(a, b) === 0;
