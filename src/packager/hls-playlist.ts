import type { HlsSegment, PlaylistPosition } from './hls-timeline.ts';
import { initPath, partFilePath, segmentPath } from '../layout/object-names.ts';

/** `br`: parts are byte ranges of the segment being made; `sf`: also files of their own; `off`: classic HLS. */
export const LLHLS_MODES = ['br', 'sf', 'off'] as const;
export type LlhlsMode = (typeof LLHLS_MODES)[number];

/** The values every playlist of a session shares; fixed before the first segment, never changed. */
export interface HlsTiming {
  targetDuration: number;
  /** The longest part of any track (seconds, 5 decimals, rounded up). */
  partTarget: number;
  partHoldBack: number;
  holdBack: number;
  /** How far back a delta update may skip (≥ 6 target durations); 0 when the window is too short. */
  canSkipUntil: number;
  /** Segments listed (the time-shift window). */
  windowSegments: number;
  /** The newest segments that keep their EXT-X-PART lines (3 target durations). */
  partSegments: number;
  /** The most parts a segment has (a segment's part files number 1 to this). */
  partsPerSegment: number;
}

/** Playlists' Content-Type. */
export const HLS_CONTENT_TYPE = 'application/vnd.apple.mpegurl';

const ceil5 = (seconds: number) => Math.ceil(seconds * 1e5 - 1e-6) / 1e5;
const ceil3 = (seconds: number) => Math.ceil(seconds * 1e3 - 1e-6) / 1e3;

/**
 * Pure: the session's playlist timing from the segment and chunk durations. Video parts are
 * `partChunks` chunks; audio chunks are whole AAC frames (sizes differing by at most one frame), so
 * the longest audio part is `partChunks` of the largest chunk. PART-HOLD-BACK is 3 part targets, or
 * the profile's latency target if longer.
 */
export function hlsTiming(options: {
  segdur: number;
  cdur: number;
  partChunks: number;
  audioSampleRate: number | undefined;
  tsb: number;
  llhls: LlhlsMode;
  latencyTarget?: number;
}): HlsTiming {
  const { segdur, cdur, partChunks } = options;
  const chunksPerSegment = Math.round(segdur / cdur);
  const videoPart = Math.min(segdur, partChunks * cdur);
  let audioPart = 0;
  let audioSegment = 0;
  if (options.audioSampleRate) {
    const frame = 1024 / options.audioSampleRate;
    const framesPerSegment = Math.ceil(segdur / frame);
    audioSegment = framesPerSegment * frame;
    audioPart = Math.min(framesPerSegment, partChunks * Math.ceil(framesPerSegment / chunksPerSegment)) * frame;
  }
  const targetDuration = Math.max(1, Math.round(Math.max(segdur, audioSegment)));
  const partTarget = options.llhls === 'off' ? 0 : ceil5(Math.max(videoPart, audioPart));
  const windowSegments = Math.ceil(options.tsb / segdur);
  return {
    targetDuration,
    partTarget,
    // Players start PART-HOLD-BACK behind the newest part: the RFC's floor of 3 parts (0.32 s) leaves
    // no room for a part's delivery jitter and hls.js stalls once, then backs off by itself; the
    // profile's latency target (the DASH ServiceDescription's) is what players are meant to hold.
    partHoldBack: ceil3(Math.max(3 * partTarget, options.latencyTarget ?? 0)),
    holdBack: 3 * targetDuration,
    canSkipUntil: windowSegments * segdur > 6 * targetDuration ? 6 * targetDuration : 0,
    windowSegments,
    partSegments: Math.ceil((3 * targetDuration) / segdur),
    partsPerSegment: Math.ceil(chunksPerSegment / partChunks),
  };
}

/**
 * Pure: the timing with the hold-backs moved later by `marginMs` (chunks come that much later than
 * their media ends while the encoder is behind real time): players start that much further back.
 */
export function withLatencyMargin(timing: HlsTiming, marginMs: number): HlsTiming {
  if (marginMs <= 0) return timing;
  return {
    ...timing,
    partHoldBack: ceil3(timing.partHoldBack + marginMs / 1000),
    holdBack: Math.ceil(Math.round((timing.holdBack + marginMs / 1000) * 1000) / 100) / 10,
  };
}

/** What the playlists are called and where their media is, relative to the multivariant playlist. */
export interface HlsNames {
  mediaPlaylist(track: string): string;
  /** The init of the period starting at `periodStart` (0: the first). */
  init(track: string, periodStart?: bigint): string;
  segment(track: string, msn: bigint): string;
  /** `index` is the part's 0-based position; part files are numbered from 1. */
  partFile(track: string, msn: bigint, index: number): string;
}

/** The playlist names for a manifest called `<base>.mpd` or `<base>.m3u8`, with the MPD's segment names. */
export function hlsNames(base: string): HlsNames {
  return {
    mediaPlaylist: (track) => `${base}_${track}.m3u8`,
    init: initPath,
    segment: segmentPath,
    partFile: partFilePath,
  };
}

/** How a playlist is delivered, which decides what it may promise. */
export interface HlsDelivery {
  llhls: LlhlsMode;
  /** The origin answers blocking reloads and delta updates (CAN-BLOCK-RELOAD, CAN-SKIP-UNTIL). */
  blocking: boolean;
  /** The origin holds a request for a hinted part until it exists (EXT-X-PRELOAD-HINT). */
  hints: boolean;
}

export interface MediaPlaylistInput {
  track: string;
  segments: readonly HlsSegment[];
  /** The other playlists' positions, for EXT-X-RENDITION-REPORT. */
  others: { track: string; position: PlaylistPosition }[];
  timing: HlsTiming;
  names: HlsNames;
  delivery: HlsDelivery;
  ended: boolean;
  /** First segments of the periods (ascending); a new period is a discontinuity with its own init. */
  periods?: readonly bigint[] | undefined;
  /**
   * The periods (of `periods`) this track is not in (a rendition not encoded then): still a
   * discontinuity, so every playlist's discontinuity sequence agrees, but no init of their own;
   * their segments are gaps.
   */
  absentPeriods?: readonly bigint[] | undefined;
}

const decimal = (seconds: number) => seconds.toFixed(5);
const pdt = (seconds: number) => new Date(Math.round(seconds * 1000)).toISOString();

/** A segment's lines: its date, its parts when listed, and once complete its duration and URI. */
function segmentLines(
  track: string,
  segment: HlsSegment,
  withParts: boolean,
  names: HlsNames,
  delivery: HlsDelivery,
): string {
  const lines = [`#EXT-X-PROGRAM-DATE-TIME:${pdt(segment.start)}`];
  if (withParts)
    for (const part of segment.parts) {
      const uri =
        delivery.llhls === 'sf'
          ? `URI="${names.partFile(track, segment.msn, part.index)}"`
          : `URI="${names.segment(track, segment.msn)}",BYTERANGE="${part.length}@${part.offset}"`;
      lines.push(`#EXT-X-PART:DURATION=${decimal(part.duration)},${uri}${part.independent ? ',INDEPENDENT=YES' : ''}`);
    }
  if (segment.complete)
    lines.push(
      ...(segment.gap ? ['#EXT-X-GAP'] : []),
      `#EXTINF:${decimal(segment.duration)},`,
      names.segment(track, segment.msn),
    );
  return lines.join('\n');
}

/**
 * A complete segment never changes, so its lines are rendered once per way of listing it (with or
 * without parts) and kept with it: a playlist rewritten at every part (ten times a second per
 * track) then renders only the segment in progress. Keyed by the segment object, the names and
 * the delivery, so the cache goes with them and can never answer for other inputs.
 */
const renderedSegments = new WeakMap<HlsNames, WeakMap<HlsDelivery, WeakMap<HlsSegment, Map<string, string>>>>();

function completeSegmentLines(
  track: string,
  segment: HlsSegment,
  withParts: boolean,
  names: HlsNames,
  delivery: HlsDelivery,
): string {
  const byDelivery = cached(renderedSegments, names, () => new WeakMap());
  const bySegment = cached(byDelivery, delivery, () => new WeakMap());
  const forms = cached(bySegment, segment, () => new Map<string, string>());
  return cached(forms, `${track}\n${withParts}`, () => segmentLines(track, segment, withParts, names, delivery));
}

function cached<K, V>(map: { get(key: K): V | undefined; set(key: K, value: V): unknown }, key: K, make: () => V): V {
  const known = map.get(key);
  if (known !== undefined) return known;
  const value = make();
  map.set(key, value);
  return value;
}

/** Header lines per timing and delivery: the same for every playlist written until the margin moves. */
const headers = new WeakMap<HlsTiming, WeakMap<HlsDelivery, readonly string[]>>();

function header(timing: HlsTiming, delivery: HlsDelivery): string[] {
  const byDelivery = cached(headers, timing, () => new WeakMap<HlsDelivery, readonly string[]>());
  return [...cached(byDelivery, delivery, () => headerLines(timing, delivery))];
}

/** Pure: the header lines that must be identical in every media playlist of the session. */
function headerLines(timing: HlsTiming, delivery: HlsDelivery): string[] {
  const lines = [
    '#EXTM3U',
    `#EXT-X-VERSION:${delivery.llhls === 'off' ? 7 : 9}`,
    `#EXT-X-TARGETDURATION:${timing.targetDuration}`,
  ];
  if (delivery.llhls !== 'off') {
    const control = [
      ...(delivery.blocking ? ['CAN-BLOCK-RELOAD=YES'] : []),
      ...(delivery.blocking && timing.canSkipUntil ? [`CAN-SKIP-UNTIL=${timing.canSkipUntil.toFixed(1)}`] : []),
      `PART-HOLD-BACK=${timing.partHoldBack.toFixed(3)}`,
      `HOLD-BACK=${timing.holdBack.toFixed(1)}`,
    ];
    lines.push(
      `#EXT-X-SERVER-CONTROL:${control.join(',')}`,
      `#EXT-X-PART-INF:PART-TARGET=${decimal(timing.partTarget)}`,
    );
  } else {
    lines.push(`#EXT-X-SERVER-CONTROL:HOLD-BACK=${timing.holdBack.toFixed(1)}`);
  }
  return lines;
}

/** Pure: one track's media playlist. */
export function buildMediaPlaylist(input: MediaPlaylistInput): string {
  const { track, timing, names, delivery } = input;
  const ll = delivery.llhls !== 'off';
  const listed = input.segments.filter((s) => s.complete || (ll && s.parts.length));
  const window = listed.slice(-timing.windowSegments - (listed.at(-1)?.complete ? 0 : 1));
  const lines = header(timing, delivery);
  const first = window[0];
  const starts = input.periods?.length ? input.periods : [0n];
  const absent = new Set(input.absentPeriods ?? []);
  const withTrack = starts.filter((s) => !absent.has(s));
  // The init that applies at `msn`: its period's, or in a period without the track (gaps only)
  // the one before (else after) that has it.
  const initOf = (msn: bigint) =>
    withTrack.findLast((s) => s <= msn) ??
    withTrack.find((s) => s > msn) ??
    starts.findLast((s) => s <= msn) ??
    starts[0]!;
  const firstMsn = first?.msn ?? 0n;
  lines.push(`#EXT-X-MEDIA-SEQUENCE:${firstMsn}`);
  const discontinuities = starts.slice(1).filter((s) => s <= firstMsn).length;
  if (discontinuities) lines.push(`#EXT-X-DISCONTINUITY-SEQUENCE:${discontinuities}`);
  lines.push(`#EXT-X-MAP:URI="${names.init(track, initOf(firstMsn))}"`);
  const newestComplete = window.findLast((s) => s.complete)?.msn;
  for (const [i, segment] of window.entries()) {
    if (i > 0 && starts.includes(segment.msn) && segment.msn !== starts[0])
      lines.push(
        '#EXT-X-DISCONTINUITY',
        ...(absent.has(segment.msn) ? [] : [`#EXT-X-MAP:URI="${names.init(track, segment.msn)}"`]),
      );
    const recent = newestComplete === undefined || segment.msn > newestComplete - BigInt(timing.partSegments);
    const withParts = ll && (recent || !segment.complete);
    lines.push(
      segment.complete
        ? completeSegmentLines(track, segment, withParts, names, delivery)
        : segmentLines(track, segment, withParts, names, delivery),
    );
  }
  const last = window.at(-1);
  if (input.ended) {
    lines.push('#EXT-X-ENDLIST');
  } else if (ll && delivery.hints && last) {
    const next = last.complete
      ? { msn: last.msn + 1n, index: 0, offset: 0 }
      : { msn: last.msn, index: last.parts.length, offset: last.length };
    // No part is coming while the track is not encoded: nothing to hint.
    if (!absent.has(starts.findLast((s) => s <= next.msn) ?? starts[0]!))
      lines.push(
        delivery.llhls === 'sf'
          ? `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${names.partFile(track, next.msn, next.index)}"`
          : `#EXT-X-PRELOAD-HINT:TYPE=PART,URI="${names.segment(track, next.msn)}"${next.offset ? `,BYTERANGE-START=${next.offset}` : ''}`,
      );
  }
  if (ll && !input.ended) {
    for (const other of input.others)
      lines.push(
        `#EXT-X-RENDITION-REPORT:URI="${names.mediaPlaylist(other.track)}",LAST-MSN=${other.position.lastMsn},LAST-PART=${other.position.lastPart}`,
      );
  }
  return `${lines.join('\n')}\n`;
}

export interface HlsVideoRendition {
  id: string;
  codecs: string;
  /** The encoder's rate (bits per second). */
  bitrate: number;
  /** Bits per second: the rate the encoder aims at, and the most a segment can carry (VBV). */
  averageBandwidth: number;
  peakBandwidth: number;
  width: number;
  height: number;
  frameRate: number;
}

export interface HlsAudioRendition {
  id: string;
  codecs: string;
  bitrate: number;
  averageBandwidth: number;
  peakBandwidth: number;
  channels: number;
}

/** Pure: the multivariant playlist: one variant per video rendition, every one with the audio group. */
export function buildMultivariantPlaylist(input: {
  video: HlsVideoRendition[];
  audio: HlsAudioRendition | undefined;
  names: HlsNames;
  delivery: HlsDelivery;
}): string {
  const { names, audio } = input;
  const lines = ['#EXTM3U', `#EXT-X-VERSION:${input.delivery.llhls === 'off' ? 7 : 9}`, '#EXT-X-INDEPENDENT-SEGMENTS'];
  if (audio) {
    lines.push(
      `#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="${audio.id}",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="${audio.channels}",URI="${names.mediaPlaylist(audio.id)}"`,
    );
  }
  for (const video of input.video) {
    const attributes = [
      `BANDWIDTH=${video.peakBandwidth + (audio?.peakBandwidth ?? 0)}`,
      `AVERAGE-BANDWIDTH=${video.averageBandwidth + (audio?.averageBandwidth ?? 0)}`,
      `CODECS="${[video.codecs, ...(audio ? [audio.codecs] : [])].join(',')}"`,
      `RESOLUTION=${video.width}x${video.height}`,
      `FRAME-RATE=${video.frameRate.toFixed(3)}`,
      ...(audio ? ['AUDIO="audio"'] : []),
    ];
    lines.push(`#EXT-X-STREAM-INF:${attributes.join(',')}`, names.mediaPlaylist(video.id));
  }
  if (!input.video.length && audio) {
    lines.push(
      `#EXT-X-STREAM-INF:BANDWIDTH=${audio.peakBandwidth},AVERAGE-BANDWIDTH=${audio.averageBandwidth},CODECS="${audio.codecs}"`,
      names.mediaPlaylist(audio.id),
    );
  }
  return `${lines.join('\n')}\n`;
}
