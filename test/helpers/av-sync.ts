import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { readTrack } from './media.ts';

// Lip sync measured on the output of test:sync: the white frames (video) and the beep onsets
// (audio), each at the media time a player shows or plays it.

const FLASH_LUMA = 200;
const BEEP_LEVEL = 2000;
/** A beep starts after at least this much silence (the beep lasts 50 ms, once a second). */
const QUIET_SAMPLES = 24_000;

/** Media times (s) of the white frames of a video track. */
async function flashTimes(file: string): Promise<number[]> {
  const { stdout } = await execa(
    'ffprobe',
    [
      '-v',
      'error',
      '-f',
      'lavfi',
      '-i',
      `movie=${file},signalstats`,
      '-show_entries',
      'frame=pts_time:frame_tags=lavfi.signalstats.YAVG',
      '-of',
      'csv=p=0',
    ],
    { maxBuffer: 1 << 28 },
  );
  return stdout
    .split('\n')
    .map((line) => line.split(',').map(Number))
    .filter(([, luma]) => (luma ?? 0) > FLASH_LUMA)
    .map(([pts]) => pts!);
}

/** Media times (s) of the beep onsets of an audio track: the first packet's time plus samples decoded. */
async function beepTimes(file: string, samplerate: number): Promise<number[]> {
  const { stdout: first } = await execa('ffprobe', [
    '-v',
    'error',
    '-select_streams',
    'a:0',
    '-show_entries',
    'packet=pts',
    '-of',
    'csv=p=0',
    '-read_intervals',
    '%+#1',
    file,
  ]);
  const firstTick = Number(first.trim().split('\n')[0]);
  const { stdout } = await execa('ffmpeg', ['-v', 'error', '-i', file, '-ac', '1', '-f', 's16le', '-'], {
    encoding: 'buffer',
    maxBuffer: 1 << 28,
  });
  const pcm = new Int16Array(stdout.buffer, stdout.byteOffset, Math.floor(stdout.byteLength / 2));
  const onsets: number[] = [];
  let quiet = 0;
  for (let i = 0; i < pcm.length; i++) {
    if (Math.abs(pcm[i]!) > BEEP_LEVEL) {
      if (quiet >= QUIET_SAMPLES) onsets.push((firstTick + i) / samplerate);
      quiet = 0;
    } else quiet++;
  }
  return onsets;
}

export interface AvSyncReport {
  /** Per beep: its onset minus the nearest flash, in ms (positive: audio late). */
  offsetsMs: number[];
  /** Per flash: its media time minus the whole second it marks, in ms. */
  flashErrorsMs: number[];
  /** Per beep: its onset minus the whole second it marks, in ms. */
  beepErrorsMs: number[];
}

/** Reads a track's init + segments from an output directory and measures A/V offsets. */
export async function measureAvSync(dir: string, videoTrack: string, samplerate = 48_000): Promise<AvSyncReport> {
  const scratch = await mkdtemp(join(tmpdir(), 'appliance-avsync-'));
  try {
    const video = join(scratch, 'video.mp4');
    const audio = join(scratch, 'audio.mp4');
    await writeFile(video, await readTrack(dir, videoTrack));
    await writeFile(audio, await readTrack(dir, 'audio'));
    const flashes = await flashTimes(video);
    const beeps = await beepTimes(audio, samplerate);
    const ms = (x: number) => Math.round(x * 10_000) / 10;
    const offsetsMs = beeps.flatMap((b) => {
      const nearest = flashes.reduce((best, f) => (Math.abs(f - b) < Math.abs(best - b) ? f : best), Infinity);
      return Math.abs(nearest - b) < 0.5 ? [ms(b - nearest)] : [];
    });
    return {
      offsetsMs,
      flashErrorsMs: flashes.map((f) => ms(f - Math.round(f))),
      beepErrorsMs: beeps.map((b) => ms(b - Math.round(b))),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}
