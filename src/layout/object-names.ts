// Pure: the names of the objects a stream is made of, in one place. They are URL paths ('/' on
// every OS) relative to the manifest: the MPD's SegmentTemplate and the HLS playlists name them,
// the directory output and the push outputs write them, the origin and a restarted directory
// output read them back.
//
//   <track>/init.mp4          the init segment of the first period
//   <track>/init-<n>.mp4      the init segment of a period starting at segment n
//   <track>/<n>.m4s           segment n (n·segdur seconds since 1970)
//   <track>/<n>.m4s.<k>       LL-HLS part file k of segment n (llhls sf), numbered from 1

/** A track's init segment for the period starting at `periodStart` (0: the first). */
export const initPath = (track: string, periodStart = 0n): string =>
  periodStart === 0n ? `${track}/init.mp4` : `${track}/init-${periodStart}.mp4`;

export const segmentPath = (track: string, segment: bigint): string => `${track}/${segment}.m4s`;

/** `index` is the part's 0-based position; part files are numbered from 1. */
export const partFilePath = (track: string, segment: bigint, index: number): string =>
  `${segmentPath(track, segment)}.${index + 1}`;

/** The MPD's SegmentTemplate attributes for a period starting at `periodStart`. */
export const segmentTemplate = (periodStart: bigint): { initialization: string; media: string } => ({
  initialization: initPath('$RepresentationID$', periodStart),
  media: '$RepresentationID$/$Number$.m4s',
});

/** The layout in words, for `--dry-run`. */
export const layoutOf = (track: string): string => `${initPath(track)}, ${track}/<n>.m4s`;

/** A file name inside a track's directory that is a segment or part file of ours, and its segment. */
export function mediaFileSegment(name: string): bigint | undefined {
  const match = /^(\d+)\.m4s(\.\d+)?$/.exec(name);
  return match ? BigInt(match[1]!) : undefined;
}

/**
 * What an uploaded path holds, by its name. The origin accepts other encoders' names too
 * (`.cmfv`/`.cmfa`/`.mp4` segments, `*_init.*` headers), so this is broader than the names above.
 */
export function classifyObject(path: string): {
  kind: 'manifest' | 'init' | 'segment' | 'other';
  directory: string;
  number?: bigint | undefined;
} {
  const slash = path.lastIndexOf('/');
  const directory = slash >= 0 ? path.slice(0, slash) : '';
  const name = path.slice(slash + 1);
  if (/\.(mpd|m3u8)$/i.test(name)) return { kind: 'manifest', directory };
  if (/^init\.|\.init$|_init\./i.test(name)) return { kind: 'init', directory };
  const number = /(\d+)\.(m4s|cmf[av]|mp4)(\.\d+)?$/i.exec(name)?.[1];
  if (number !== undefined) return { kind: 'segment', directory, number: BigInt(number) };
  return { kind: 'other', directory };
}
