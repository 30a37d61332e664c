// `appliance check`'s share of the CPU a camera's compressed video (MJPEG, H.264) costs to
// decode before the ladder is encoded: the test source used for the encode probe is raw, so
// without this the probe overstates a camera box's headroom.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';

/** What the chosen camera mode sends: ffmpeg's name of the format, the size, the rate asked of it. */
export interface CameraDecode {
  format: string;
  width: number;
  height: number;
  framerate: number;
}

/** The encoder that makes a clip the decoder of `format` reads, for the formats cameras send. */
const CLIP_ENCODERS: Record<string, string> = { mjpeg: 'mjpeg', h264: 'libx264' };

/** Pure: the encode speed and the decode speed → the two on one CPU budget (their times add up). */
export function combinedSpeed(encodeSpeed: number, decodeSpeed: number): number {
  if (!(encodeSpeed > 0) || !(decodeSpeed > 0)) return 0;
  return 1 / (1 / encodeSpeed + 1 / decodeSpeed);
}

/**
 * Makes `seconds` of the test pattern in the camera's format and size (not timed), then decodes
 * it as fast as the machine can: the decode's speed (1 = real time), or undefined when the format
 * is not one a clip can be made in, or ffmpeg failed.
 */
export async function decodeSpeed(ffmpegPath: string, camera: CameraDecode, seconds = 4): Promise<number | undefined> {
  const encoder = CLIP_ENCODERS[camera.format];
  if (!encoder) return undefined;
  const dir = await mkdtemp(join(tmpdir(), 'appliance-check-'));
  try {
    const clip = join(dir, 'camera.nut');
    const source = `testsrc2=size=${camera.width}x${camera.height}:rate=${camera.framerate}`;
    const made = await execa(
      ffmpegPath,
      ['-hide_banner', '-loglevel', 'error', '-f', 'lavfi', '-i', source, '-t', String(seconds)]
        .concat(['-pix_fmt', encoder === 'mjpeg' ? 'yuvj422p' : 'yuv420p', '-c:v', encoder, '-q:v', '3'])
        .concat(['-f', 'nut', clip]),
      { reject: false, timeout: 120_000 },
    );
    if (made.exitCode !== 0) return undefined;
    const started = performance.now();
    const decoded = await execa(ffmpegPath, ['-hide_banner', '-loglevel', 'error', '-i', clip, '-f', 'null', '-'], {
      reject: false,
      timeout: 120_000,
    });
    if (decoded.exitCode !== 0) return undefined;
    return seconds / ((performance.now() - started) / 1000);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
