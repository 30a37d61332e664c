import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { measureAvSync } from '../test/helpers/av-sync.ts';
import { logLines } from '../test/helpers/run.ts';

export interface AvSyncRun {
  /** Beep onset minus flash, per second of output, in ms. */
  offsetsMs: number[];
  /** What the appliance itself reported (its last minute's window and worst). */
  reported: { offsetMs: number; worstMs: number } | undefined;
}

/** One run of `test:sync:drift` (1500 ppm fast, then 500 ppm slow from 30 s) on one light rendition, measured on its output. */
export async function avSyncRun(seconds: number): Promise<AvSyncRun> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-avsync-'));
  try {
    const profile = join(dir, 'light.yaml');
    await writeFile(profile, `name: light
segdur: 1
cdur: 0.1
asto: 0.9
idr: 1
video: { framerate: 30, preset: ultrafast, vbvBuffer: 0.5, renditions: [{ id: 360p, width: 640, height: 360, bitrate: 800k }] }
audio: { codec: aac, bitrate: 128k, samplerate: 48000, channels: 2 }
latency: { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } }
`);
    const out = join(dir, 'out');
    const run = await execa(process.execPath, ['bin/appliance.js', 'start', '--source', 'test:sync:drift', '--profile', profile, '--output', join(out, 'live.mpd'), '--state-dir', join(dir, 'state'), '--duration', String(seconds)], { reject: false, timeout: (seconds + 60) * 1000 });
    if (run.exitCode !== 0) throw new Error(`the A/V run failed: ${String(run.stderr).slice(-1000)}`);
    const reported = logLines(String(run.stderr)).find((l) => l['msg'] === 'chunk delay')?.['avOffset'] as AvSyncRun['reported'];
    return { offsetsMs: (await measureAvSync(out, '360p')).offsetsMs, reported: typeof reported === 'object' ? reported : undefined };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
