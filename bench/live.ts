import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

const ROOT = new URL('../', import.meta.url);
const CLOCK_TICKS_PER_SECOND = 100;

/**
 * `appliance start --duration SECONDS ARGS` as a unit file runs it: one process on the pinned Node
 * with its flags, the launcher in-process, two malloc arenas; never rejects.
 */
export function startLikeService(seconds: number, args: string[], env: Record<string, string> = {}) {
  return execa(
    process.execPath,
    ['--max-semi-space-size=2', 'bin/appliance.js', 'start', '--duration', String(seconds), ...args],
    {
      cwd: ROOT,
      env: { ...process.env, MALLOC_ARENA_MAX: '2', ...env },
      reject: false,
      timeout: (seconds + 30) * 1000,
    },
  );
}

export interface ProcessSample {
  at: number;
  cpuSeconds: number;
  peakRssMiB: number;
}

export async function sampleProcess(pid: number): Promise<ProcessSample | undefined> {
  try {
    const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
    const status = await readFile(`/proc/${pid}/status`, 'utf8');
    return {
      at: performance.now(),
      // utime + stime cover every thread of the process.
      cpuSeconds: (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS_PER_SECOND,
      peakRssMiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
    };
  } catch {
    return undefined;
  }
}

export interface LiveRun {
  chunkDelayMs: Record<string, { p50: number; p95: number; max: number; count: number }>;
  /** Share of one core used by the appliance's Node process (all threads), steady state. */
  nodeCpuShare: number;
  nodePeakRssMiB: number;
  ffmpegSpeed: number | undefined;
  load1: number;
}

/**
 * Runs the appliance for `seconds` on the test source into a scratch directory and reads its own
 * chunk-delay report.
 */
export async function liveRun(seconds: number): Promise<LiveRun> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-live-'));
  const child = startLikeService(seconds, ['--output', join(dir, 'live.mpd')]);
  const samples: ProcessSample[] = [];
  try {
    const sampling = (async () => {
      while (child.exitCode === null && child.pid) {
        const sample = await sampleProcess(child.pid);
        if (sample) samples.push(sample);
        await sleep(500);
      }
    })();
    const result = await child;
    await sampling;
    if (result.exitCode !== 0)
      throw new Error(`appliance exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    const logs = String(result.stderr)
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, any>];
        } catch {
          return [];
        }
      });
    const delays = logs.filter((l) => l['msg'] === 'chunk delay').at(-1)?.['chunkDelayMs'];
    const speeds = logs
      .filter((l) => l['msg'] === 'encoding' && typeof l['speed'] === 'number')
      .map((l) => l['speed'] as number);
    // Steady state: from 5 s in (modules loaded, ffmpeg running) to the last sample.
    const steady = samples.filter((s) => s.at - samples[0]!.at >= 5000);
    const first = steady[0]!;
    const last = steady.at(-1)!;
    return {
      chunkDelayMs: delays,
      nodeCpuShare: (last.cpuSeconds - first.cpuSeconds) / ((last.at - first.at) / 1000),
      nodePeakRssMiB: Math.max(...samples.map((s) => s.peakRssMiB)),
      ffmpegSpeed: speeds.length ? speeds.sort((a, b) => a - b)[Math.floor(speeds.length / 2)] : undefined,
      load1: loadavg()[0]!,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}
