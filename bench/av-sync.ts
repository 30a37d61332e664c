import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { measureAvSync } from '../test/helpers/av-sync.ts';
import { writeLightProfile } from '../test/helpers/light-profile.ts';
import { logLines } from '../test/helpers/run.ts';

export interface AvSyncRun {
  /** Beep onset minus flash, per second of output, in ms. */
  offsetsMs: number[];
  /** What the appliance itself reported (its last minute's window and worst). */
  reported: { offsetMs: number; worstMs: number } | undefined;
}

/** One run of `test:sync:drift` (1500 ppm fast, from 10 s 800 ppm) on one light rendition, measured on its output. */
export async function avSyncRun(seconds: number): Promise<AvSyncRun> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-avsync-'));
  try {
    const profile = await writeLightProfile(dir);
    const out = join(dir, 'out');
    const run = await execa(
      process.execPath,
      [
        'bin/appliance.js',
        'start',
        '--source',
        'test:sync:drift',
        '--profile',
        profile,
        '--output',
        join(out, 'live.mpd'),
        '--state-dir',
        join(dir, 'state'),
        '--duration',
        String(seconds),
      ],
      { reject: false, timeout: (seconds + 60) * 1000 },
    );
    if (run.exitCode !== 0) throw new Error(`the A/V run failed: ${String(run.stderr).slice(-1000)}`);
    const reported = logLines(String(run.stderr)).find((l) => l['msg'] === 'chunk delay')?.[
      'avOffset'
    ] as AvSyncRun['reported'];
    return {
      offsetsMs: (await measureAvSync(out, '360p')).offsetsMs,
      reported: typeof reported === 'object' ? reported : undefined,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
