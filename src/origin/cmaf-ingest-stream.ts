import type { Logger } from '../log.ts';
import type { Profile } from '../config/schema.ts';
import { findBox, joined, type StreamBox } from '../packager/boxes.ts';
import { TrackChunker, type InitEvent, type PackagerEvent } from '../packager/chunker.ts';
import { parseMoov, type TrackInfo } from '../packager/fmp4.ts';
import { HlsPlaylists } from '../packager/hls-playlists.ts';
import { hlsNames } from '../packager/hls-playlist.ts';
import { hlsRenditionsOf, mpdModelOf, sessionHlsTiming } from '../packager/manifest-model.ts';
import { buildMpd } from '../packager/mpd.ts';
import type { PackagedTrack, Period } from '../packager/packager.ts';
import { initPath, segmentPath } from '../layout/object-names.ts';
import { segmentTicks } from '../timeline/epoch-grid.ts';
import type { ObjectStore } from './store.ts';
import { StoreOutput } from './store-output.ts';
import { SegmentArbiter, type ArbiterCounts } from './segment-arbiter.ts';

// One stream received by CMAF ingest (DASH-IF Interface-1) and packaged here: each track's CMAF
// header and segments, as they arrive chunk by chunk, become the same objects and manifests the
// appliance makes itself (`<stream>/<track>/<n>.m4s`, `live.mpd`, `live.m3u8`), served while
// they grow. Only senders on the epoch grid are taken: segment n starts at n·segdur since 1970.

/** Why a request is refused: its HTTP status and the rule, in words. */
export class IngestRefusal extends Error {
  readonly status: number;
  constructor(status: number, message: string) {
    super(message);
    this.status = status;
  }
}

/** Media times past 2100 are no epoch timeline (and would overflow the dates manifests are made of). */
const LAST_EPOCH_SECOND = 4_102_444_800;

/** At most this many tracks a stream (a ladder has a handful). */
const MAX_TRACKS = 16;

interface IngestTrack {
  id: string;
  kind: 'video' | 'audio';
  init: InitEvent;
  info: TrackInfo;
  /** Ticks of one segment. */
  segmentTicks: bigint;
  /** Who delivers each segment when several requests bring it (a redundant pair, a retry). */
  arbiter: SegmentArbiter;
  /** Bits per second, from its first whole segment (the manifests' bandwidth). */
  bitrate: number | undefined;
  /** The stream ended with this track's last segment (lmsg). */
  ended: boolean;
}

export interface IngestStreamOptions {
  /** The stream's directory in the store, e.g. `live`. */
  directory: string;
  store: ObjectStore;
  /** Timing and latency of the packaging (segdur, cdur, asto, LL-HLS). */
  profile: Profile;
  utcTimingUrl: () => string;
  logger: Logger;
}

/** Brands of a styp box. */
function brandsOf(styp: Uint8Array): string[] {
  const brands: string[] = [];
  for (let at = 16; at + 4 <= styp.byteLength; at += 4) brands.push(String.fromCharCode(...styp.subarray(at, at + 4)));
  return brands;
}

export class IngestStream {
  readonly #options: IngestStreamOptions;
  readonly #tracks = new Map<string, IngestTrack>();
  readonly #output: StoreOutput;
  readonly #hls: HlsPlaylists;
  readonly #period: Period = { start: 0n, inits: new Map() };
  #firstSegment: bigint | undefined;
  #published = '';
  /** When a header or media last came (ms since 1970): a stream idle for a window may be forgotten. */
  lastActivity = Date.now();
  /** Deviations from the spec's SHOULDs already warned of (once per stream). */
  readonly #warned = new Set<string>();

  constructor(options: IngestStreamOptions) {
    this.#options = options;
    const { profile } = options;
    const timing = sessionHlsTiming(profile);
    this.#hls = new HlsPlaylists(
      {
        llhls: profile.hls.llhls,
        partChunks: profile.hls.partChunks,
        timing,
        renditions: () => (this.#ready() ? hlsRenditionsOf(this.#packaged(), this.#period, profile) : undefined),
        ended: () => this.#ended(),
      },
      hlsNames('live'),
      { blocking: true, hints: true },
    );
    this.#output = new StoreOutput(options.store, undefined, this.#hls, options.directory);
  }

  /**
   * A track's CMAF header: registered (again, when the same), or refused. `named`: the kind its
   * stream's name says (`.cmfv`, `.cmfa`); undefined: the header's handler says.
   */
  header(id: string, named: 'video' | 'audio' | undefined, boxes: readonly StreamBox[]): void {
    this.lastActivity = Date.now();
    const moov = boxes.find((b) => b.type === 'moov');
    if (!moov) throw new IngestRefusal(415, `${id}: a CMAF header is ftyp and moov; this has no moov`);
    const bytes = Buffer.concat(boxes.map((b) => joined(b)));
    const known = this.#tracks.get(id);
    if (known) {
      if (Buffer.compare(known.init.bytes, bytes) === 0) return;
      throw new IngestRefusal(
        400,
        `${id}: a CMAF track keeps one header (DASH-IF ingest); a changed one is another track: send it under another name (two encoders of one stream must make byte-identical headers: the same profile, ffmpeg and x264 build)`,
      );
    }
    if (this.#tracks.size >= MAX_TRACKS)
      throw new IngestRefusal(400, `${id}: a stream takes at most ${MAX_TRACKS} tracks`);
    const payload = joined(moov).subarray(moov.headerSize);
    let infos: TrackInfo[];
    try {
      infos = parseMoov(payload);
    } catch (error) {
      throw new IngestRefusal(415, `${id}: the header's moov does not parse (${(error as Error).message})`);
    }
    const info = infos[0];
    if (infos.length !== 1 || !info) throw new IngestRefusal(415, `${id}: a CMAF header describes one track`);
    if (!findBox(payload, ['mvex'])) throw new IngestRefusal(415, `${id}: the header is not fragmented MP4 (no mvex)`);
    const told = info.handler === 'vide' ? 'video' : info.handler === 'soun' ? 'audio' : undefined;
    if (!told)
      throw new IngestRefusal(415, `${id}: only video and audio tracks are packaged here (handler "${info.handler}")`);
    if (named && told !== named)
      throw new IngestRefusal(415, `${id}: a .${named === 'video' ? 'cmfv' : 'cmfa'} stream's header is not ${named}`);
    const kind = told;
    if (info.timescale < 1000)
      throw new IngestRefusal(
        400,
        `${id}: a timescale of ${info.timescale} (at least 1000: 90000 or a multiple of the frame rate for video, the sample rate for audio)`,
      );
    if (!Number.isInteger(this.#options.profile.segdur * info.timescale))
      throw new IngestRefusal(
        400,
        `${id}: a segment (${this.#options.profile.segdur} s) is no whole number of ticks at timescale ${info.timescale}`,
      );
    const init: InitEvent = { type: 'init', track: id, info, bytes, path: initPath(id), periodStart: 0n };
    this.#tracks.set(id, {
      id,
      kind,
      init,
      info,
      segmentTicks: segmentTicks(this.#options.profile.segdur, info.timescale),
      arbiter: this.#arbiter(id),
      bitrate: undefined,
      ended: false,
    });
    this.#period.inits.set(id, init);
    this.#output.handle(init);
  }

  /** Per track: its newest whole segment and what the arbiter counted (copies discarded, takeovers, cut segments). */
  status(): Record<string, { lastSegment: string | undefined } & ArbiterCounts> {
    return Object.fromEntries(
      [...this.#tracks.values()].map((t) => [
        t.id,
        { lastSegment: t.arbiter.lastComplete?.toString(), ...t.arbiter.counts },
      ]),
    );
  }

  /**
   * Reads one request's media for track `id`: each call takes the boxes that arrived. The samples
   * go through the packager's own chunker (a fresh one per request), which cuts them into CMAF
   * chunks and segments on the epoch grid whatever fragments the sender made (ffmpeg's audio
   * fragments straddle the grid), each chunk packaged the moment its last sample is here.
   */
  media(id: string): { take(boxes: readonly StreamBox[]): void; end(): void; abort(): void } {
    const track = this.#tracks.get(id);
    if (!track)
      throw new IngestRefusal(412, `${id}: media before its CMAF header (send the header first on every connection)`);
    const request = {};
    const chunker = new TrackChunker(id, this.#options.profile);
    for (const item of chunker.read(track.init.bytes))
      if (item.init) chunker.useInit({ ...item.init, path: track.init.path });
    /** A segment of this request is open, and whether its styp said slate. */
    let open: { slate: boolean } | undefined;
    let brands: string[] = [];
    /** Ticks of samples before this request's first segment on the grid. */
    let skipped = 0n;
    let packaged = false;
    /** The segment this request is sending that was already whole here: its samples are passed over. */
    let late: bigint | undefined;
    /** Where this request's media ends so far (its next sample starts there). */
    let mediaEnd: bigint | undefined;
    const emit = (events: PackagerEvent[]) => {
      for (const event of events) {
        if (event.type === 'init') continue;
        if (event.type === 'chunk') packaged = true;
        track.arbiter.offer(request, event);
        if (event.type === 'segmentEnd') open = undefined;
      }
    };
    const ended = () => {
      track.arbiter.ended(request);
      open = undefined;
    };
    return {
      take: (boxes) => {
        this.lastActivity = Date.now();
        for (const box of boxes) {
          if (box.type === 'styp') brands = brandsOf(joined(box));
          else if (box.type === 'moof' || box.type === 'mdat') {
            const events: PackagerEvent[] = [];
            let items: ReturnType<TrackChunker['read']>;
            try {
              items = chunker.read(joined(box));
            } catch (error) {
              // A box the parser cannot read (truncated, its counts and offsets past its bytes).
              throw new IngestRefusal(400, `${id}: a ${box.type} that does not parse (${(error as Error).message})`);
            }
            if (box.type === 'mdat') this.#checkData(id, items, box.size - box.headerSize);
            for (const item of items) {
              if (!item.sample) continue;
              const sample = item.sample;
              // Contiguous media with time going forward, before 2100: a chunk in progress stays one
              // chunk long, and every figure made of these times stays sane.
              if (sample.duration <= 0) throw new IngestRefusal(400, `${id}: a sample of duration 0`);
              if (mediaEnd !== undefined && sample.decodeTime !== mediaEnd)
                throw new IngestRefusal(
                  400,
                  `${id}: the media is not contiguous (a sample at ${sample.decodeTime} after media ending at ${mediaEnd}, timescale ${track.info.timescale}): a CMAF track has no gaps (send filler, slat, for lost input)`,
                );
              mediaEnd = sample.decodeTime + BigInt(sample.duration);
              const seconds = Number(sample.decodeTime) / track.info.timescale;
              if (seconds > LAST_EPOCH_SECOND)
                throw new IngestRefusal(
                  400,
                  `${id}: media at ${seconds.toFixed(0)} s since 1970, past 2100: not on the epoch timeline (this origin takes only epoch-synchronised senders)`,
                );
              if (late !== undefined && chunker.placeSample(sample).segment === late) continue;
              if (!open) {
                const place = chunker.placeSample(sample);
                if (!place.startsSegment) {
                  // Before the request's first segment on the grid (a long POST's first frames).
                  skipped += BigInt(sample.duration);
                  if (skipped > 2n * track.segmentTicks) throw this.#offGrid(track, sample.decodeTime, sample.sync);
                  continue;
                }
                skipped = 0n;
                const whole = track.arbiter.lastComplete;
                if (whole !== undefined && place.segment <= whole) {
                  // Already here whole (a twin's late copy, a backlog after a network cut, a resend
                  // after a lost answer): acknowledged, counted, not packaged again.
                  late = place.segment;
                  packaged = true;
                  // Its styp's brands (slat, lmsg) are its own, not the next segment's.
                  brands = [];
                  track.arbiter.late(request, late);
                  continue;
                }
                late = undefined;
                if (brands.includes('lmsg')) chunker.endBefore(place.segment + 1n, { last: true });
                if (!brands.length) this.#warnOnce('styp', id, 'segments without styp (DASH-IF ingest: SHOULD)');
                open = { slate: brands.includes('slat') };
              }
              chunker.addSample(sample, events, open.slate);
              emit(events.splice(0));
              if (!open) brands = [];
            }
          } else if (box.type === 'prft' || box.type === 'emsg' || box.type === 'mfra' || box.type === 'free') {
            // Timing the packager writes itself; events and a v1.0 sender's closing mfra are not packaged here.
          } else throw new IngestRefusal(415, `${id}: a "${box.type}" box where CMAF media was expected`);
        }
      },
      end: () => {
        ended();
        if (!packaged && skipped > 0n)
          throw new IngestRefusal(
            400,
            `${id}: no segment of this request starts on the epoch grid with ${track.kind === 'video' ? 'an IDR' : 'its nearest frame'} (n·${this.#options.profile.segdur} s since 1970): this origin takes only epoch-synchronised senders`,
          );
      },
      abort: ended,
    };
  }

  /**
   * A fragment's samples lie inside its mdat without overlapping: a sample count or offsets the
   * sender forged cannot make the store hold more than the bytes it sent.
   */
  #checkData(id: string, items: ReturnType<TrackChunker['read']>, payload: number): void {
    const ranges = items
      .flatMap((i) => (i.sample ? [[i.sample.dataOffset, i.sample.size] as const] : []))
      .sort((a, b) => a[0] - b[0]);
    let end = -Infinity;
    let total = 0;
    for (const [offset, size] of ranges) {
      if (offset < end) throw new IngestRefusal(400, `${id}: samples overlap in their mdat`);
      end = offset + size;
      total += size;
    }
    if (total > payload) throw new IngestRefusal(400, `${id}: samples of ${total} bytes in an mdat of ${payload}`);
  }

  #offGrid(track: IngestTrack, decodeTime: bigint, sync: boolean): IngestRefusal {
    return new IngestRefusal(
      400,
      `${track.id}: media at ${Number(decodeTime) / track.info.timescale} s${track.kind === 'video' && !sync ? ' (no IDR)' : ''} never starts a segment on the epoch grid (n·${this.#options.profile.segdur} s since 1970${track.kind === 'video' ? ', an IDR first' : ''}): this origin takes only epoch-synchronised senders`,
    );
  }

  /** A track's arbiter, delivering to the store what it lets through. */
  #arbiter(id: string): SegmentArbiter {
    return new SegmentArbiter({
      chunk: (event) => this.#output.handle(event),
      end: (event) => {
        this.#output.handle(event);
        const track = this.#tracks.get(id);
        if (track) this.#segmentDone(track, event.segment, event.last);
      },
      abort: () => this.#output.abortSegment(id),
      orphaned: (segment) => {
        const track = this.#tracks.get(id);
        if (track) this.#deadline(track, segment);
      },
    });
  }

  /** A segment of `track` arrived whole. */
  #segmentDone(track: IngestTrack, segment: bigint, last: boolean): void {
    // A stream back after an idle window finds its init and manifests expired: they are written again.
    if (!this.#options.store.get(`${this.#options.directory}/${track.init.path}`)) {
      this.#output.handle(track.init);
      this.#published = '';
    }
    track.ended = last;
    this.#firstSegment ??= segment;
    if (track.bitrate === undefined) {
      const object = this.#options.store.get(`${this.#options.directory}/${segmentPath(track.id, segment)}`);
      track.bitrate = Math.ceil(((object?.length ?? 0) * 8) / this.#options.profile.segdur);
    }
    queueMicrotask(() => this.#guard('publish', () => this.#publish()));
  }

  /** Work outside any request (a timer, a microtask): a fault is logged, never the end of the origin. */
  #guard(what: string, work: () => void): void {
    try {
      work();
    } catch (error) {
      this.#options.logger.error(
        { err: error, stream: this.#options.directory, what },
        'origin: CMAF ingest failed inside the origin',
      );
    }
  }

  /** A segment left with no one to finish it is cut after two segment durations (a copy may still come). */
  #deadline(track: IngestTrack, segment: bigint): void {
    setTimeout(
      () => this.#guard('give up a segment', () => track.arbiter.giveUp(segment)),
      this.#options.profile.segdur * 2000,
    ).unref();
  }

  #warnOnce(rule: string, track: string, what: string): void {
    if (this.#warned.has(rule)) return;
    this.#warned.add(rule);
    this.#options.logger.warn({ stream: this.#options.directory, track }, `origin: CMAF ingest: ${what}`);
  }

  #packaged(): PackagedTrack[] {
    return [...this.#tracks.values()].map((t) => ({ id: t.id, kind: t.kind, bitrate: t.bitrate ?? 0 }));
  }

  /** Every track has a whole segment (its bitrate known), and there is video. */
  #ready(): boolean {
    const tracks = [...this.#tracks.values()];
    return tracks.some((t) => t.kind === 'video') && tracks.every((t) => t.bitrate !== undefined);
  }

  /** Where an ended stream ends on the timeline: after the newest whole segment of any track. */
  #endSeconds(): number {
    const last = [...this.#tracks.values()].reduce(
      (n, t) => (t.arbiter.lastComplete !== undefined && t.arbiter.lastComplete > n ? t.arbiter.lastComplete : n),
      0n,
    );
    return Number(last + 1n) * this.#options.profile.segdur;
  }

  #ended(): boolean {
    const tracks = [...this.#tracks.values()];
    return tracks.length > 0 && tracks.every((t) => t.ended);
  }

  /** The MPD and the multivariant playlist, when what they say changed (tracks known, the end). */
  #publish(): void {
    if (!this.#ready()) return;
    const state = `${[...this.#tracks.keys()].join(',')}:${this.#ended()}`;
    if (state === this.#published) return;
    this.#published = state;
    const profile = this.#options.profile;
    const model = mpdModelOf({
      tracks: this.#packaged(),
      periods: [this.#period],
      firstSegment: this.#firstSegment,
      endedAt: this.#ended() ? this.#endSeconds() : undefined,
      profile,
      options: { timeShiftBufferDepth: profile.tsb, utcTimingUrl: this.#options.utcTimingUrl() },
      now: new Date(),
    });
    this.#output.writeManifest('live.mpd', buildMpd(model));
    this.#output.writePlaylists('live.m3u8');
    // (The store output writes the multivariant playlist only when it changes: after an expiry, again.)
    const multivariant = this.#hls.multivariant();
    if (multivariant && !this.#options.store.get(`${this.#options.directory}/live.m3u8`))
      this.#output.writeManifest('live.m3u8', multivariant);
  }
}
