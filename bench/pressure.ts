// A box short of CPU: the appliance (default profile, test source, pushing to the project's
// origin on 127.0.0.1) and a busy loop pinned to one core for the first part of the run; chunk
// delay measured at the origin, the real-time steps taken, with the controller and without it.
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { quantile, startTestOrigin } from '../test/helpers/push-origin.ts';

const ROOT = new URL('../', import.meta.url);
const TOKEN = 'bench-token';
const CORE = '0';

export interface PressureRun {
  adapt: boolean;
  /** Per track, chunks whose media ends from `settleSeconds` after the start: last byte at the origin − media end. */
  chunkDelayMs: Record<string, { p50: number; p95: number; max: number; count: number }>;
  /** The same, once the busy loop had ended and the controller could step back up (last 20 s). */
  afterLoopChunkDelayMs: Record<string, { p50: number; p95: number }>;
  /** Segment numbers missing at the origin between a track's first and last (a track not encoded at a level is listed apart). */
  missingSegments: Record<string, number>;
  /** Each step: seconds after the start, the level, what it gave up or took back. */
  steps: { atSeconds: number; level: number; change: string }[];
  /** Seconds from the end of the busy loop to level 0 again; undefined if it did not get there. */
  backUpSeconds: number | undefined;
  /** Seconds of slate per restart (media time the slate covered, from the continuity counters). */
  slateSecondsPerStep: number | undefined;
  /** Each restart's slate on the wall clock (s): from the old run's end to the new run's first chunk. */
  restartGapsSeconds: number[];
  /** Per second of media since the start: the latest chunk of any track (ms at the origin); where lateness comes from. */
  worstDelayPerSecondMs: number[];
}

const round = (x: number) => Math.round(x * 10) / 10;

export async function pressureRun(
  adapt: boolean,
  seconds = 90,
  busySeconds = 60,
  settleSeconds = 15,
): Promise<PressureRun> {
  const origin = await startTestOrigin({ token: TOKEN });
  const stateDir = await mkdtemp(join(tmpdir(), 'appliance-bench-pressure-'));
  const busy = execa('taskset', ['-c', CORE, 'bash', '-c', 'while :; do :; done'], { reject: false });
  try {
    const startedAt = Date.now();
    const child = execa(
      'taskset',
      [
        '-c',
        CORE,
        process.execPath,
        'bin/appliance.js',
        'start',
        '--duration',
        String(seconds),
        '--state-dir',
        stateDir,
        adapt ? '--adapt' : '--no-adapt',
        '--log-level',
        'debug',
        '--output',
        `${origin.base}/live/live.mpd`,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, APPLIANCE_PUSH_TOKEN: TOKEN },
        reject: false,
        timeout: (seconds + 60) * 1000,
      },
    );
    await sleep(busySeconds * 1000);
    busy.kill('SIGKILL');
    const loopEndedAt = Date.now();
    const result = await child;
    if (result.exitCode !== 0)
      throw new Error(`appliance exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    // The run's own log, to see where a figure comes from: PRESSURE_LOG=path npm run bench -- --only pressure
    if (process.env['PRESSURE_LOG'])
      await writeFile(`${process.env['PRESSURE_LOG']}.${adapt ? 'adapt' : 'fixed'}`, String(result.stderr));
    const lines = String(result.stderr)
      .split('\n')
      .filter((l) => l.startsWith('{'))
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    const steps = lines
      .filter((l) => l['component'] === 'realtime' && typeof l['level'] === 'number' && l['fromSegment'])
      .map((l) => ({
        atSeconds: round((Date.parse(String(l['time'])) - startedAt) / 1000),
        level: l['level'] as number,
        change: String(l['givesUp'] ?? `takes back ${l['takesBack']}`),
      }));
    const backUp = lines.find(
      (l) =>
        l['msg'] === 'ffmpeg restarted with other settings' &&
        String(l['why']) === 'real time: level 0' &&
        Date.parse(String(l['time'])) >= loopEndedAt,
    );
    const restarts = lines.filter((l) => l['msg'] === 'ffmpeg restarted with other settings').length;
    const continuity = lines.findLast((l) => l['msg'] === 'continuity') as
      | { slateSamples?: Record<string, number> }
      | undefined;
    const chunkDelayMs: PressureRun['chunkDelayMs'] = {};
    const afterLoopChunkDelayMs: PressureRun['afterLoopChunkDelayMs'] = {};
    const missingSegments: Record<string, number> = {};
    const worstDelayPerSecondMs = Array.from({ length: seconds }, () => 0);
    for (const track of ['1080p', '720p', 'audio']) {
      const uploads = origin.uploads.filter((u) => new RegExp(`/${track}/\\d+\\.m4s$`).test(u.path));
      const chunks = uploads.flatMap((u) => u.chunks);
      for (const c of chunks) {
        const second = Math.floor((c.mediaEndMs - startedAt) / 1000);
        if (second >= 0 && second < seconds)
          worstDelayPerSecondMs[second] = Math.max(worstDelayPerSecondMs[second]!, Math.round(c.at - c.mediaEndMs));
      }
      const delays = chunks
        .filter((c) => c.mediaEndMs >= startedAt + settleSeconds * 1000)
        .map((c) => c.at - c.mediaEndMs);
      chunkDelayMs[track] = {
        p50: round(quantile(delays, 0.5)),
        p95: round(quantile(delays, 0.95)),
        max: round(quantile(delays, 1)),
        count: delays.length,
      };
      const late = chunks
        .filter((c) => c.mediaEndMs >= startedAt + (seconds - 20) * 1000)
        .map((c) => c.at - c.mediaEndMs);
      afterLoopChunkDelayMs[track] = { p50: round(quantile(late, 0.5)), p95: round(quantile(late, 0.95)) };
      const numbers = [...new Set(uploads.map((u) => BigInt(/(\d+)\.m4s$/.exec(u.path)![1]!)))].sort((a, b) =>
        a < b ? -1 : 1,
      );
      missingSegments[track] = numbers.length ? Number(numbers.at(-1)! - numbers[0]! + 1n) - numbers.length : 0;
    }
    // Slate media per restart: the audio track's slate frames (1024 samples at 48 kHz), over the restarts.
    const slateAudio = continuity?.slateSamples?.['audio'];
    return {
      adapt,
      chunkDelayMs,
      afterLoopChunkDelayMs,
      missingSegments,
      steps,
      backUpSeconds: backUp ? round((Date.parse(String(backUp['time'])) - loopEndedAt) / 1000) : undefined,
      slateSecondsPerStep:
        restarts && slateAudio !== undefined ? round((slateAudio * 1024) / 48_000 / restarts) : undefined,
      restartGapsSeconds: lines
        .filter((l) => l['msg'] === 'source back: slate ended' && typeof l['slateMs'] === 'number')
        .map((l) => round((l['slateMs'] as number) / 1000)),
      worstDelayPerSecondMs,
    };
  } finally {
    busy.kill('SIGKILL');
    await busy;
    await origin.close();
    await rm(stateDir, { recursive: true, force: true });
  }
}
