import type { Logger } from '../log.ts';
import type { Profile } from '../config/schema.ts';
import { type BoxFormatError, findBox, joined, type StreamBox } from '../packager/boxes.ts';
import type { ChunkEvent, InitEvent } from '../packager/chunker.ts';
import { parseMoof, parseMoov, type TrackInfo } from '../packager/fmp4.ts';
import { HlsPlaylists } from '../packager/hls-playlists.ts';
import { hlsNames } from '../packager/hls-playlist.ts';
import { hlsRenditionsOf, mpdModelOf, sessionHlsTiming } from '../packager/manifest-model.ts';
import { buildMpd } from '../packager/mpd.ts';
import type { PackagedTrack, Period } from '../packager/packager.ts';
import { initPath } from '../layout/object-names.ts';
import type { ObjectStore } from './store.ts';
import { StoreOutput } from './store-output.ts';

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

/** At most this many tracks a stream (a ladder has a handful). */
const MAX_TRACKS = 16;

interface IngestTrack {
  id: string;
  kind: 'video' | 'audio';
  init: InitEvent;
  info: TrackInfo;
  /** Ticks of one segment. */
  segmentTicks: bigint;
  /** The newest segment received whole. */
  lastComplete: bigint | undefined;
  /** The request whose media the track takes now (a newer one, a retry, replaces it). */
  owner: object | undefined;
  /** Bits per second, from its first whole segment (the manifests' bandwidth). */
  bitrate: number | undefined;
  /** The stream ended with this track's last segment (lmsg). */
  ended: boolean;
}

/** A segment a request is delivering. */
interface OpenSegment {
  number: bigint;
  part: number;
  end: bigint;
  bytes: number;
  slate: boolean;
  last: boolean;
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

  /** A track's CMAF header: registered (again, when the same), or refused. */
  header(id: string, kind: 'video' | 'audio', boxes: readonly StreamBox[]): void {
    const moov = boxes.find((b) => b.type === 'moov');
    if (!moov) throw new IngestRefusal(415, `${id}: a CMAF header is ftyp and moov; this has no moov`);
    const bytes = Buffer.concat(boxes.map((b) => joined(b)));
    const known = this.#tracks.get(id);
    if (known) {
      if (Buffer.compare(known.init.bytes, bytes) === 0) return;
      throw new IngestRefusal(
        400,
        `${id}: a CMAF track keeps one header (DASH-IF ingest); a changed one is another track: send it under another name`,
      );
    }
    if (this.#tracks.size >= MAX_TRACKS)
      throw new IngestRefusal(400, `${id}: a stream takes at most ${MAX_TRACKS} tracks`);
    const payload = joined(moov).subarray(8);
    let infos: TrackInfo[];
    try {
      infos = parseMoov(payload);
    } catch (error) {
      throw new IngestRefusal(415, `${id}: the header's moov does not parse (${(error as Error).message})`);
    }
    const info = infos[0];
    if (infos.length !== 1 || !info) throw new IngestRefusal(415, `${id}: a CMAF header describes one track`);
    if (!findBox(payload, ['mvex'])) throw new IngestRefusal(415, `${id}: the header is not fragmented MP4 (no mvex)`);
    const handler = kind === 'video' ? 'vide' : 'soun';
    if (info.handler !== handler)
      throw new IngestRefusal(415, `${id}: a .${kind === 'video' ? 'cmfv' : 'cmfa'} stream's header is not ${kind}`);
    const segmentTicks = this.#options.profile.segdur * info.timescale;
    if (!Number.isInteger(segmentTicks))
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
      segmentTicks: BigInt(segmentTicks),
      lastComplete: undefined,
      owner: undefined,
      bitrate: undefined,
      ended: false,
    });
    this.#period.inits.set(id, init);
    this.#output.handle(init);
  }

  hasHeader(id: string): boolean {
    return this.#tracks.has(id);
  }

  /**
   * Reads one request's media for track `id`: each call takes the boxes that arrived, packaging
   * each whole chunk (moof + mdat, with the styp and prft before it) at once. Refuses what breaks
   * a rule of the grid.
   */
  media(id: string): { take(boxes: readonly StreamBox[]): void; end(): void; abort(): void } {
    const track = this.#tracks.get(id);
    if (!track)
      throw new IngestRefusal(412, `${id}: media before its CMAF header (send the header first on every connection)`);
    const request = {};
    track.owner = request;
    let open: OpenSegment | undefined;
    let before: StreamBox[] = [];
    let moof: StreamBox | undefined;
    const owns = () => track.owner === request;
    const cut = () => {
      if (open && owns()) this.#output.abortSegment(id);
      open = undefined;
    };
    return {
      take: (boxes) => {
        for (const box of boxes) {
          if (box.type === 'moof') moof = box;
          else if (box.type === 'mdat') {
            if (!moof) throw new IngestRefusal(400, `${id}: an mdat without its moof`);
            const chunk = [...before, moof, box];
            before = [];
            moof = undefined;
            if (!owns()) continue; // a newer request (a retry) took the track over
            open = this.#chunk(track, chunk, open);
          } else if (box.type === 'styp' || box.type === 'prft' || box.type === 'emsg') before.push(box);
          else if (box.type === 'mfra') {
            // v1.0 senders end a long POST with an empty mfra: nothing to package.
          } else throw new IngestRefusal(415, `${id}: a "${box.type}" box where CMAF media was expected`);
        }
      },
      end: () => {
        // A segment the request did not finish was cut: readers must not take it for whole.
        if (open) cut();
        if (owns()) track.owner = undefined;
      },
      abort: cut,
    };
  }

  /** Packages one chunk; returns the segment still open after it. */
  #chunk(track: IngestTrack, boxes: StreamBox[], open: OpenSegment | undefined): OpenSegment | undefined {
    const moof = boxes.find((b) => b.type === 'moof')!;
    let fragment: ReturnType<typeof parseMoof>;
    try {
      fragment = parseMoof(joined(moof).subarray(8), new Map([[track.info.trackId, track.info]]));
    } catch (error) {
      throw new IngestRefusal(400, `${track.id}: a moof that does not parse (${(error as BoxFormatError).message})`);
    }
    const traf = fragment.tracks[0];
    if (fragment.tracks.length !== 1 || !traf || traf.trackId !== track.info.trackId || !traf.samples.length)
      throw new IngestRefusal(
        400,
        `${track.id}: a CMAF chunk has samples of its one track (track ${track.info.trackId})`,
      );
    const start = traf.baseDecodeTime;
    const duration = traf.samples.reduce((sum, s) => sum + s.duration, 0);
    const frame = traf.samples[0]!.duration;
    if (track.kind === 'video' && this.#period.frameRate === undefined && frame > 0)
      this.#period.frameRate = Math.round((track.info.timescale / frame) * 1000) / 1000;
    const halfFirst = BigInt(Math.ceil((traf.samples[0]!.duration || 1) / 2));
    const styp = boxes.find((b) => b.type === 'styp');
    let segment = open;
    if (!segment || styp || start >= segment.end - halfFirst) {
      if (segment) {
        // A long-running POST (v1.0) carries segment after segment; the one before must be whole.
        throw new IngestRefusal(400, `${track.id}: segment ${segment.number} ended before its end on the grid`);
      }
      segment = this.#open(track, start, halfFirst, traf.samples[0]!.sync, styp);
      if (!segment) return undefined;
    }
    const end = start + BigInt(duration);
    const halfLast = BigInt(Math.ceil((traf.samples.at(-1)!.duration || 1) / 2));
    if (end > segment.end + halfLast)
      throw new IngestRefusal(
        400,
        `${track.id}: a chunk runs past its segment's end on the epoch grid (segment ${segment.number})`,
      );
    const complete = end >= segment.end - halfLast;
    const parts = boxes.flatMap((b) => b.pieces);
    const byteLength = parts.reduce((sum, p) => sum + p.byteLength, 0);
    const event: ChunkEvent = {
      type: 'chunk',
      track: track.id,
      segment: segment.number,
      part: segment.part++,
      parts,
      byteLength,
      independent: traf.samples[0]!.sync,
      decodeTime: start,
      duration,
      timescale: track.info.timescale,
      segmentComplete: complete,
      slate: segment.slate,
    };
    segment.bytes += byteLength;
    this.#output.handle(event);
    if (!complete) return segment;
    this.#output.handle({ type: 'segmentEnd', track: track.id, segment: segment.number, last: segment.last });
    track.lastComplete = segment.number;
    track.bitrate ??= Math.ceil((segment.bytes * 8) / this.#options.profile.segdur);
    track.ended = segment.last;
    this.#firstSegment ??= segment.number;
    this.#publish();
    return undefined;
  }

  /** A new segment from this chunk on: on the grid, an IDR first for video, newer than what the track has. */
  #open(
    track: IngestTrack,
    start: bigint,
    tolerance: bigint,
    sync: boolean,
    styp: StreamBox | undefined,
  ): OpenSegment | undefined {
    const S = track.segmentTicks;
    const number = (start + S / 2n) / S;
    const off = start - number * S;
    if (off > tolerance || -off > tolerance)
      throw new IngestRefusal(
        400,
        `${track.id}: a segment starts at ${Number(start) / track.info.timescale} s, not on the epoch grid (n·${this.#options.profile.segdur} s since 1970): this origin takes only epoch-synchronised senders`,
      );
    if (track.kind === 'video' && !sync)
      throw new IngestRefusal(400, `${track.id}: segment ${number} does not start with an IDR (a sync sample)`);
    if (!styp) this.#warnOnce('styp', track.id, 'segments without styp (DASH-IF ingest: SHOULD)');
    if (track.lastComplete !== undefined && number <= track.lastComplete) {
      // Already here whole (a resend after a lost answer): acknowledged, not packaged again.
      this.#options.logger.debug(
        { stream: this.#options.directory, track: track.id, segment: String(number) },
        'origin: a segment already received',
      );
      return undefined;
    }
    const brands = styp ? brandsOf(joined(styp)) : [];
    return {
      number,
      part: 0,
      end: (number + 1n) * S,
      bytes: 0,
      slate: brands.includes('slat'),
      last: brands.includes('lmsg'),
    };
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
      (n, t) => (t.lastComplete !== undefined && t.lastComplete > n ? t.lastComplete : n),
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
  }
}
