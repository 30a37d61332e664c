import { execa } from 'execa';
import { parseInputInfo, type InputInfo } from './media-info.ts';

/** Shell: what ffmpeg makes of an input when it opens it (no output: it prints the dump and stops). */
export async function probeInput(ffmpegPath: string, url: string, timeoutMs = 15_000): Promise<InputInfo> {
  const run = await execa(ffmpegPath, ['-hide_banner', '-nostdin', '-i', url], {
    reject: false,
    timeout: timeoutMs,
    stdin: 'ignore',
  });
  if (run.timedOut)
    return {
      duration: undefined,
      start: undefined,
      video: undefined,
      audio: undefined,
      error: `ffmpeg could not open it within ${timeoutMs / 1000} s`,
    };
  return parseInputInfo(String(run.stderr));
}
