import { logLines } from './types.ts';

/** One line of `ffmpeg -sources <device>`. */
export interface FfmpegSource {
  id: string;
  description: string;
  isDefault: boolean;
  /** `(video)`, `(audio)`, `(video, audio)`; empty for `(none)`, which older builds print for everything. */
  media: string[];
}

/**
 * Pure: `ffmpeg -sources alsa|pulse|v4l2|dshow` output → its entries, or the reason it could not
 * list (`Cannot list sources: …`, e.g. no Pulse server).
 */
export function parseFfmpegSources(text: string): { sources: FfmpegSource[]; problem?: string } {
  const sources: FfmpegSource[] = [];
  let problem: string | undefined;
  for (const line of logLines(text)) {
    const cannot = /^Cannot list sources: (.*)$/.exec(line);
    if (cannot) problem = cannot[1]!;
    // The id may itself contain spaces and brackets (dshow alternative names): the description is
    // the last bracketed group before the media list.
    const entry = /^([* ]) (.+?) \[([^\]]*)\] \(([^)]*)\)\s*$/.exec(line);
    if (!entry) continue;
    const media = entry[4]!
      .split(',')
      .map((m) => m.trim())
      .filter((m) => m && m !== 'none');
    sources.push({ id: entry[2]!, description: entry[3]!, isDefault: entry[1] === '*', media });
  }
  return problem === undefined ? { sources } : { sources, problem };
}
