import type { ChunkEvent } from './chunker.ts';

/** One LL-HLS partial segment: a whole number of CMAF chunks, as a byte range of its segment. */
export interface HlsPart {
  /** 0-based position in the segment (`_HLS_part`, `LAST-PART`); its part file is `<segment>.<index + 1>`. */
  index: number;
  /** Seconds. */
  duration: number;
  offset: number;
  length: number;
  /** Starts with a sync sample (an IDR; every audio part). */
  independent: boolean;
}

export interface HlsSegment {
  /** The media sequence number: the wall-clock segment number. */
  msn: bigint;
  /** Seconds since the epoch of its first sample (PROGRAM-DATE-TIME). */
  start: number;
  /** Seconds, the parts' sum. */
  duration: number;
  length: number;
  parts: HlsPart[];
  complete: boolean;
  /** Media that will never exist at this origin (dropped under the push budget): `EXT-X-GAP`, no parts. */
  gap?: boolean;
}

export type HlsChunk = Pick<
  ChunkEvent,
  | 'track'
  | 'segment'
  | 'part'
  | 'byteLength'
  | 'duration'
  | 'timescale'
  | 'decodeTime'
  | 'independent'
  | 'segmentComplete'
>;

interface OpenPart {
  offset: number;
  length: number;
  ticks: number;
  independent: boolean;
}

interface TrackTimeline {
  segments: HlsSegment[];
  open: OpenPart | undefined;
}

/**
 * Pure: what a playlist can name, per track — segments and their parts, in order, as their bytes
 * become available wherever the playlist is delivered. Chunks are grouped `partChunks` at a time
 * into parts (a segment's last part may hold fewer); segments older than `keepSegments` are forgotten.
 */
export class HlsTimeline {
  readonly #partChunks: number;
  readonly #keepSegments: number;
  readonly #tracks = new Map<string, TrackTimeline>();

  constructor(options: { partChunks: number; keepSegments: number }) {
    this.#partChunks = options.partChunks;
    this.#keepSegments = options.keepSegments;
  }

  /** The chunk's bytes are available; returns the part it completed, if it completed one. */
  addChunk(chunk: HlsChunk): HlsPart | undefined {
    let track = this.#tracks.get(chunk.track);
    if (!track) {
      track = { segments: [], open: undefined };
      this.#tracks.set(chunk.track, track);
    }
    let segment = track.segments.at(-1);
    if (chunk.part === 0 || !segment || segment.msn !== chunk.segment) {
      // A segment left incomplete (its producer restarted) never becomes one a player could use.
      if (segment && !segment.complete) track.segments.pop();
      if (chunk.part !== 0) return undefined;
      segment = {
        msn: chunk.segment,
        start: Number(chunk.decodeTime) / chunk.timescale,
        duration: 0,
        length: 0,
        parts: [],
        complete: false,
      };
      track.segments.push(segment);
      track.open = undefined;
      const keepFrom = chunk.segment - BigInt(this.#keepSegments) + 1n;
      while (track.segments[0]!.msn < keepFrom) track.segments.shift();
    }
    if (segment.complete) return undefined;
    track.open ??= { offset: segment.length, length: 0, ticks: 0, independent: chunk.independent };
    const open = track.open;
    open.length += chunk.byteLength;
    open.ticks += chunk.duration;
    segment.length += chunk.byteLength;
    if ((chunk.part + 1) % this.#partChunks !== 0 && !chunk.segmentComplete) return undefined;
    const part: HlsPart = {
      index: segment.parts.length,
      duration: open.ticks / chunk.timescale,
      offset: open.offset,
      length: open.length,
      independent: open.independent,
    };
    segment.parts.push(part);
    segment.duration += part.duration;
    segment.complete = chunk.segmentComplete;
    track.open = undefined;
    return part;
  }

  tracks(): string[] {
    return [...this.#tracks.keys()];
  }

  segments(track: string): readonly HlsSegment[] {
    return this.#tracks.get(track)?.segments ?? [];
  }
}

/** Where a track's playlist stands: its newest segment and that segment's newest part (0-based). */
export interface PlaylistPosition {
  lastMsn: bigint;
  lastPart: number;
}

/** Pure: the newest part a track's playlist names (for rendition reports); undefined before any part. */
export function positionOf(segments: readonly HlsSegment[]): PlaylistPosition | undefined {
  for (let i = segments.length - 1; i >= 0; i--) {
    const segment = segments[i]!;
    if (segment.parts.length) return { lastMsn: segment.msn, lastPart: segment.parts.length - 1 };
  }
  return undefined;
}

/**
 * Pure: what a playlist may name on an origin that serves only what it has acknowledged: the newest
 * run of consecutive acknowledged segments (at most `window` long), then, of the segment after it,
 * the leading parts whose own files were acknowledged (part files, `sf`).
 */
/** Marks the segments in `dropped` as gaps: listed with `EXT-X-GAP` once complete, never by their parts. Pure. */
export function markGaps(segments: readonly HlsSegment[], dropped: ReadonlySet<bigint>): readonly HlsSegment[] {
  if (!dropped.size) return segments;
  return segments.map((s) => (dropped.has(s.msn) ? { ...s, parts: [], gap: true } : s));
}

export function acknowledgedView(
  segments: readonly HlsSegment[],
  acknowledged: ReadonlySet<bigint>,
  acknowledgedParts: ReadonlyMap<bigint, number>,
  window: number,
): HlsSegment[] {
  let end = segments.length - 1;
  // A gap (media dropped, or a rendition not encoded) needs nothing at the origin.
  const held = (s: HlsSegment) => s.gap === true || acknowledged.has(s.msn);
  while (end >= 0 && !(segments[end]!.complete && held(segments[end]!))) end--;
  let start = end;
  while (
    start > 0 &&
    end - start + 1 < window &&
    segments[start - 1]!.msn === segments[start]!.msn - 1n &&
    held(segments[start - 1]!)
  )
    start--;
  const view = end >= 0 ? segments.slice(start, end + 1) : [];
  const next = segments[end + 1];
  const leading = next ? (acknowledgedParts.get(next.msn) ?? 0) : 0;
  if (next && leading > 0 && (end < 0 || next.msn === segments[end]!.msn + 1n)) {
    const parts = next.parts.slice(0, leading);
    view.push({
      ...next,
      parts,
      complete: false,
      duration: parts.reduce((sum, p) => sum + p.duration, 0),
      length: parts.reduce((sum, p) => sum + p.length, 0),
    });
  }
  return view;
}
