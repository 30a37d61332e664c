import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/**
 * Decodes frame `index` of a track (init segment and media segments), crops the burnt-in clock (drawn at 1080p coordinates,
 * scaled with the picture), and reads it with tesseract. Returns the text, e.g. "00:16:48.033".
 */
export async function readBurntInClock(track: Uint8Array, index: number, height: number): Promise<string> {
  const s = height / 1080;
  const dir = await mkdtemp(join(tmpdir(), 'appliance-ocr-'));
  const png = join(dir, 'clock.png');
  const file = join(dir, 'track.mp4');
  try {
    await writeFile(file, track);
    const crop = `crop=${Math.round(720 * s)}:${Math.round(112 * s)}:${Math.round(24 * s)}:${Math.round(16 * s)}`;
    await execa('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-copyts',
      '-i',
      file,
      '-vf',
      `select=eq(n\\,${index}),${crop},scale=360:56,format=gray,negate`,
      '-frames:v',
      '1',
      '-fps_mode',
      'passthrough',
      png,
    ]);
    const { stdout } = await execa('tesseract', [png, '-', '--psm', '7', '-c', 'tessedit_char_whitelist=0123456789:.']);
    return stdout.trim();
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** Milliseconds since midnight UTC from "HH:MM:SS.mmm", or undefined if it does not read as that. */
export function clockMillis(text: string): number | undefined {
  const m = /^(\d{2}):(\d{2}):(\d{2})\.(\d{3})$/.exec(text);
  if (!m) return undefined;
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]);
}
