/** Pure parsers for what `ffmpeg -version`, `-encoders` and `-filters` print. */

export interface FfmpegVersion {
  /** As printed after "ffmpeg version", e.g. "5.1.9-0+deb12u1", "n7.1", "N-113911-g…". */
  text: string;
  major?: number | undefined;
  minor?: number | undefined;
  libavformat?: { major: number; minor: number } | undefined;
}

export function parseFfmpegVersion(output: string): FfmpegVersion | undefined {
  const head = /^ffmpeg version (\S+)/m.exec(output);
  if (!head?.[1]) return undefined;
  const text = head[1];
  const numbers = /^n?(\d+)\.(\d+)/.exec(text);
  const lavf = /^\s*libavformat\s+(\d+)\.\s*(\d+)\./m.exec(output);
  return {
    text,
    major: numbers ? Number(numbers[1]) : undefined,
    minor: numbers ? Number(numbers[2]) : undefined,
    libavformat: lavf ? { major: Number(lavf[1]), minor: Number(lavf[2]) } : undefined,
  };
}

/** ffmpeg 5.1 shipped libavformat 59.27; git builds ("N-…") are judged by that. */
export const MINIMUM_VERSION = { major: 5, minor: 1, libavformat: { major: 59, minor: 27 } } as const;

export function meetsMinimum(version: FfmpegVersion): boolean {
  const atLeast = (a: { major: number; minor: number }, b: { major: number; minor: number }) =>
    a.major > b.major || (a.major === b.major && a.minor >= b.minor);
  if (version.major !== undefined && version.minor !== undefined) {
    return atLeast({ major: version.major, minor: version.minor }, MINIMUM_VERSION);
  }
  return version.libavformat !== undefined && atLeast(version.libavformat, MINIMUM_VERSION.libavformat);
}

/** Names from `-encoders` (" V....D libx264  …") or `-filters` (" T.C drawtext  V->V …") listings. */
export function parseCapabilityList(output: string): Set<string> {
  const names = new Set<string>();
  let pastLegend = false;
  for (const line of output.split(/\r?\n/)) {
    // Both listings explain their flag columns first and then print a " ------" rule.
    if (/^\s*-{3,}\s*$/.test(line)) {
      pastLegend = true;
      continue;
    }
    const match = /^\s*[A-Z.|]{3,6}\s+(\S+)\s/.exec(line);
    if (match?.[1] && (pastLegend || /->/.test(line))) names.add(match[1]);
  }
  return names;
}
