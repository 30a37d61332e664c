/**
 * Pure: what the origin needs to know of an LL-HLS media playlist it holds (whoever wrote it), and
 * the RFC 8216bis rules for blocking reloads (§6.2.5.2) and delta updates (§6.2.5.1).
 */

export interface PlaylistSegmentState {
  msn: bigint;
  /** Has its EXTINF (else: the segment in progress, named by its parts only). */
  complete: boolean;
  parts: number;
  duration: number;
}

export interface PlaylistState {
  targetDuration: number;
  partTarget: number | undefined;
  canSkipUntil: number | undefined;
  ended: boolean;
  segments: PlaylistSegmentState[];
}

/** A media sequence number as RFC 8216bis writes it (decimal-integer); anything else is no playlist. */
const SEQUENCE = /^\d{1,19}$/;
/** Counts a playlist may state (skipped segments): a sender's figure never sets how much work is done. */
const COUNT = /^\d{1,9}$/;
/** Longer target durations are no live playlist (they would set how long requests are held). */
const MAX_TARGET_DURATION = 60;
/** At most this many pieces of a playlist are checked for before it is served (the newest). */
const NAMED_PIECES_CHECKED = 1000;

const attribute = (line: string, name: string) =>
  new RegExp(`(?:^|[:,])${name}=("[^"]*"|[^,]*)`).exec(line)?.[1]?.replace(/^"|"$/g, '');
const number = (text: string | undefined) => (text === undefined ? undefined : Number(text));

/** Tags that belong to the segment after them, not to the playlist. */
const SEGMENT_TAG = /^#EXT(INF|-X-(PART|PROGRAM-DATE-TIME|DISCONTINUITY|GAP|BYTERANGE|BITRATE|DATERANGE|KEY|MAP))(:|$)/;

/** Pure: a media playlist's position and rules, or undefined if it is no media playlist. */
export function parsePlaylist(text: string): PlaylistState | undefined {
  const lines = text.split(/\r?\n/);
  if (lines[0]?.trim() !== '#EXTM3U') return undefined;
  let targetDuration: number | undefined;
  let partTarget: number | undefined;
  let canSkipUntil: number | undefined;
  let sequence = 0n;
  // Segments an EXT-X-SKIP stands for: counted, never listed.
  let skipped = 0;
  let ended = false;
  const segments: PlaylistSegmentState[] = [];
  let current: PlaylistSegmentState | undefined;
  const open = () =>
    (current ??= { msn: sequence + BigInt(skipped + segments.length), complete: false, parts: 0, duration: 0 });
  let pendingDuration: number | undefined;
  for (const raw of lines) {
    const line = raw.trim();
    if (line.startsWith('#EXT-X-TARGETDURATION:')) targetDuration = Number(line.slice(22));
    else if (line.startsWith('#EXT-X-PART-INF:')) partTarget = number(attribute(line, 'PART-TARGET'));
    else if (line.startsWith('#EXT-X-SERVER-CONTROL:')) canSkipUntil = number(attribute(line, 'CAN-SKIP-UNTIL'));
    else if (line.startsWith('#EXT-X-MEDIA-SEQUENCE:')) {
      const text = line.slice(22);
      if (!SEQUENCE.test(text)) return undefined;
      sequence = BigInt(text);
    } else if (line.startsWith('#EXT-X-SKIP:')) {
      const count = attribute(line, 'SKIPPED-SEGMENTS') ?? '';
      if (!COUNT.test(count)) return undefined;
      skipped += Number(count);
    } else if (line === '#EXT-X-ENDLIST') ended = true;
    else if (line.startsWith('#EXT-X-PART:')) {
      open().parts++;
    } else if (line.startsWith('#EXTINF:')) {
      pendingDuration = Number(line.slice(8).split(',')[0]);
    } else if (line && !line.startsWith('#') && pendingDuration !== undefined) {
      const segment = open();
      segment.complete = true;
      segment.duration = pendingDuration;
      segments.push(segment);
      current = undefined;
      pendingDuration = undefined;
    }
  }
  if (current) segments.push(current);
  if (targetDuration === undefined || !(targetDuration > 0 && targetDuration <= MAX_TARGET_DURATION)) return undefined;
  return { targetDuration, partTarget, canSkipUntil, ended, segments };
}

/**
 * Pure: why an uploaded playlist cannot be served as one (undefined when it can): not M3U8 text,
 * or a media playlist whose position or rules do not parse (a multivariant playlist has neither).
 */
export function playlistProblem(text: string): string | undefined {
  if (!/^\uFEFF?#EXTM3U[ \t]*\r?(\n|$)/.test(text)) return 'it does not begin with #EXTM3U';
  const media = /^#EXT(INF|-X-TARGETDURATION|-X-MEDIA-SEQUENCE|-X-PART|-X-SKIP)[:,]/m.test(text);
  if (media && !parsePlaylist(text.replace(/^\uFEFF/, '')))
    return 'a media playlist needs a target duration of 0-60 s and decimal sequence numbers and counts';
  return undefined;
}

/** The newest position the playlist names: the segment in progress and its last part, or the last complete one. */
export function lastPosition(state: PlaylistState): { msn: bigint; part: number } | undefined {
  const last = state.segments.at(-1);
  return last && { msn: last.msn, part: last.parts - 1 };
}

export type BlockingRequest = { msn: bigint | undefined; part: number | undefined; skip: 'YES' | 'v2' | undefined };

/** Pure: the `_HLS_*` query of a playlist request, or the reason it must be answered 400. */
export function parseBlockingQuery(query: URLSearchParams): BlockingRequest | { error: string } {
  const msnText = query.get('_HLS_msn');
  const partText = query.get('_HLS_part');
  const skipText = query.get('_HLS_skip');
  if (partText !== null && msnText === null) return { error: '_HLS_part without _HLS_msn' };
  if (msnText !== null && !/^\d{1,19}$/.test(msnText))
    return { error: `_HLS_msn=${msnText} is not a media sequence number` };
  if (partText !== null && !/^\d{1,6}$/.test(partText)) return { error: `_HLS_part=${partText} is not a part number` };
  if (skipText !== null && skipText !== 'YES' && skipText !== 'v2')
    return { error: `_HLS_skip=${skipText}: expected YES or v2` };
  return {
    msn: msnText === null ? undefined : BigInt(msnText),
    part: partText === null ? undefined : Number(partText),
    skip: skipText === null ? undefined : skipText,
  };
}

/**
 * Pure: whether the playlist already holds what a blocking request waits for: segment `msn`
 * complete (no part asked), or part `part` of segment `msn` (a part past a complete segment's last
 * is part 0 of the next segment).
 */
export function satisfies(state: PlaylistState, msn: bigint, part: number | undefined): boolean {
  if (state.ended) return true;
  const first = state.segments[0];
  if (!first) return false;
  if (msn < first.msn) return true; // in the past: answered at once
  const index = Number(msn - first.msn);
  const segment = state.segments[index];
  if (!segment) return false;
  if (part === undefined) return segment.complete;
  if (part < segment.parts) return true;
  if (!segment.complete) return false;
  // Asking past a complete segment's last part means the next segment's first part (or the next segment when no parts are listed).
  const next = state.segments[index + 1];
  return next !== undefined && (next.parts > 0 || next.complete);
}

/**
 * Pure: a request so far ahead that the origin answers 400 at once: a segment more than two past
 * the newest, or a part beyond the Advance Part Limit (3 s of parts, at least 3).
 */
export function tooFarAhead(state: PlaylistState, msn: bigint, part: number | undefined): boolean {
  const last = lastPosition(state);
  if (!last) return false;
  if (msn > last.msn + 2n) return true;
  if (part === undefined) return false;
  const limit = state.partTarget && state.partTarget < 1 ? Math.ceil(3 / state.partTarget) : 3;
  const partsPerSegment = state.partTarget ? Math.max(1, Math.round(state.targetDuration / state.partTarget)) : 1;
  const ahead = Number(msn - last.msn) * partsPerSegment + part - last.part;
  return ahead > limit;
}

/**
 * Pure: the delta update of `text` (EXT-X-SKIP replacing the segments older than CAN-SKIP-UNTIL
 * seconds before the playlist's end); the playlist itself when it offers no skipping. With `v2`,
 * date ranges of the skipped segments go as well.
 */
export function deltaPlaylist(text: string, skip: 'YES' | 'v2'): string {
  const state = parsePlaylist(text);
  if (!state?.canSkipUntil || state.ended) return text;
  const lines = text.replace(/\n$/, '').split(/\r?\n/);
  const firstSegmentLine = lines.findIndex((l) => SEGMENT_TAG.test(l) && !l.startsWith('#EXT-X-MAP'));
  if (firstSegmentLine < 0) return text;
  // Segment groups: the lines from after the previous segment's URI to this one's.
  const groups: string[][] = [];
  let group: string[] = [];
  for (const line of lines.slice(firstSegmentLine)) {
    group.push(line);
    if (line && !line.startsWith('#') && group.some((l) => l.startsWith('#EXTINF:'))) {
      groups.push(group);
      group = [];
    }
  }
  const completeDurations = state.segments.filter((s) => s.complete).map((s) => s.duration);
  const trailing = state.segments.at(-1)?.complete ? 0 : (state.partTarget ?? 0) * (state.segments.at(-1)?.parts ?? 0);
  let remaining = completeDurations.reduce((a, b) => a + b, 0) + trailing;
  let skipped = 0;
  while (skipped < groups.length && remaining - completeDurations[skipped]! >= state.canSkipUntil)
    remaining -= completeDurations[skipped++]!;
  if (!skipped) return text;
  // What the skipped segments set for the ones after them (the newest MAP and KEY) stays.
  const carried = groups
    .slice(0, skipped)
    .flat()
    .filter((l) => l.startsWith('#EXT-X-MAP') || l.startsWith('#EXT-X-KEY'));
  const headerLines = lines
    .slice(0, firstSegmentLine)
    .filter((l) => !(skip === 'v2' && l.startsWith('#EXT-X-DATERANGE')));
  const kept = [...new Map(carried.map((l) => [l.split(':')[0], l])).values()].filter((l) => !headerLines.includes(l));
  const rest = [...groups.slice(skipped).flat(), ...group].filter(
    (l) => !(skip === 'v2' && l.startsWith('#EXT-X-DATERANGE')),
  );
  return `${[...headerLines, `#EXT-X-SKIP:SKIPPED-SEGMENTS=${skipped}`, ...kept, ...rest].join('\n')}\n`;
}

/** What a playlist names that must exist at the origin before it is served: parts (and their byte ranges) and segments. */
export interface NamedPiece {
  uri: string;
  /** The byte a byte-range part ends at; undefined: the whole object, complete. */
  end: number | undefined;
}

/**
 * Pure: the pieces of the newest segments a playlist names (its parts, and the complete segments
 * among the last few), and the playlists a multivariant playlist names (variants and renditions),
 * which an origin checks before it serves the playlist: a player must find whatever it names.
 */
export function namedPieces(text: string, newestSegments = 3): NamedPiece[] {
  const lines = text.split(/\r?\n/).map((l) => l.trim());
  const pieces: NamedPiece[] = [];
  const segmentUris: string[] = [];
  const playlistUris: string[] = [];
  let afterExtinf = false;
  let afterStreamInf = false;
  for (const line of lines) {
    if (line.startsWith('#EXT-X-PART:')) {
      const uri = attribute(line, 'URI');
      const range = attribute(line, 'BYTERANGE');
      if (!uri) continue;
      if (range) {
        const [length, offset = 0] = range.split('@').map(Number);
        // A range that is no pair of byte counts names nothing a reader could wait for.
        if (Number.isSafeInteger(length) && Number.isSafeInteger(offset) && length! >= 0 && offset >= 0)
          pieces.push({ uri, end: offset + length! });
      } else pieces.push({ uri, end: undefined });
    } else if (line.startsWith('#EXTINF:')) afterExtinf = true;
    else if (line.startsWith('#EXT-X-STREAM-INF:')) afterStreamInf = true;
    else if (line.startsWith('#EXT-X-MEDIA:') || line.startsWith('#EXT-X-I-FRAME-STREAM-INF:')) {
      const uri = attribute(line, 'URI');
      if (uri) playlistUris.push(uri);
    } else if (line && !line.startsWith('#')) {
      if (afterExtinf) segmentUris.push(line);
      else if (afterStreamInf) playlistUris.push(line);
      afterExtinf = afterStreamInf = false;
    }
  }
  for (const uri of segmentUris.slice(-newestSegments)) pieces.push({ uri, end: undefined });
  // As stored: without a query or fragment or a leading ./. A URI with a scheme, from the root or
  // going up points elsewhere than this playlist's directory: not waited for.
  for (const uri of playlistUris) {
    const path = uri.replace(/[?#].*$/, '').replace(/^(\.\/)+/, '');
    if (path && !/^([a-z][a-z\d+.-]*:|\/)/i.test(path) && !path.split('/').includes('..'))
      pieces.push({ uri: path, end: undefined });
  }
  // A byte range implies what comes before it: keep the furthest end per object.
  const byUri = new Map<string, NamedPiece>();
  for (const piece of pieces.slice(-NAMED_PIECES_CHECKED)) {
    const known = byUri.get(piece.uri);
    if (known && (known.end === undefined || (piece.end !== undefined && piece.end <= known.end))) continue;
    byUri.set(piece.uri, piece);
  }
  return [...byUri.values()];
}
