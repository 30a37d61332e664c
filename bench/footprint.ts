// The appliance's own footprint on a small box: its Node process's memory and CPU (ffmpeg's CPU
// beside it) over a long run, served to players or pushed to origins that are fast or slow.
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { launchChromium, watchPlayer, type PlayerKind } from '../test/helpers/player.ts';
import { startTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.ts';
import { freePort } from '../test/helpers/servers.ts';

const ROOT = new URL('../', import.meta.url);
export const TOKEN = 'bench-footprint-token';
const CLOCK_TICKS_PER_SECOND = 100;

export type FootprintCase = 'served' | 'push1' | 'push3' | 'slow';

export interface FootprintRun {
  case: FootprintCase;
  seconds: number;
  peakRssMiB: number;
  rssAt60MiB: number;
  rssAtEndMiB: number;
  /** Highest − lowest RSS from 60 s to the end: how flat the plateau is. */
  rssRangeAfter60MiB: number;
  /** process.memoryUsage() as /status reports it, at 60 s and at the end (MiB). */
  memoryAt60: MemoryFigures | undefined;
  memoryAtEnd: MemoryFigures | undefined;
  /**
   * The malloc heap's resident size (glibc's main arena, `[heap]` in /proc/PID/smaps) at 60 s and
   * at the end: native memory outside V8's heap, where RSS grows while heap and arrayBuffers stay flat.
   */
  mallocHeapAt60MiB: number | undefined;
  mallocHeapAtEndMiB: number | undefined;
  /** Share of one core from 10 s to the end: the appliance's Node process, and its ffmpeg. */
  nodeCpuPercent: number;
  ffmpegCpuPercent: number;
  /** Media dropped for want of budget, and the most held at once, per push output (/status). */
  outputs: { name: string; dropped: number; peakHeldMiB: number }[];
  players?: { kind: PlayerKind; stalls: number; medianLatencyS: number }[];
}

interface MemoryFigures {
  heapUsed: number;
  heapTotal: number;
  external: number;
  arrayBuffers: number;
}

interface Sample {
  at: number;
  rssMiB: number;
  hwmMiB: number;
  nodeCpuSeconds: number;
  /** Each child's (ffmpeg: the live encoder, slate encoders) CPU seconds so far. */
  childCpuSeconds: Map<number, number>;
}

const MiB = 1024 * 1024;
const round = (x: number) => Math.round(x * 10) / 10;

async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8').catch(() => '');
  const fields = stat.split(') ')[1]?.split(' ');
  return fields ? (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND : 0;
}

/** Resident MiB of the process's `[heap]` mapping (the brk heap); undefined without /proc. */
async function mallocHeapMiB(pid: number): Promise<number | undefined> {
  const smaps = await readFile(`/proc/${pid}/smaps`, 'utf8').catch(() => undefined);
  if (!smaps) return undefined;
  let inHeap = false;
  let kb = 0;
  for (const line of smaps.split('\n')) {
    if (/^[0-9a-f]+-[0-9a-f]+ /.test(line)) inHeap = line.endsWith('[heap]');
    else if (inHeap && line.startsWith('Rss:')) kb += Number(line.split(/\s+/)[1]);
  }
  return round(kb / 1024);
}

async function sampleOnce(pid: number, at: number): Promise<Sample | undefined> {
  const status = await readFile(`/proc/${pid}/status`, 'utf8').catch(() => undefined);
  if (!status) return undefined;
  const kb = (name: string) => Number(new RegExp(`${name}:\\s+(\\d+)`).exec(status)?.[1] ?? 0) / 1024;
  const kids = (await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => ''))
    .trim()
    .split(/\s+/)
    .filter(Boolean)
    .map(Number);
  const kidSeconds = await Promise.all(kids.map(async (kid) => [kid, await cpuSeconds(kid)] as const));
  return {
    at,
    rssMiB: kb('VmRSS'),
    hwmMiB: kb('VmHWM'),
    nodeCpuSeconds: await cpuSeconds(pid),
    childCpuSeconds: new Map(kidSeconds),
  };
}

/** CPU seconds the children used over the samples: per child, its last reading − its first (children come and go). */
function childCpuBetween(samples: readonly Sample[]): number {
  const first = new Map<number, number>();
  const last = new Map<number, number>();
  for (const sample of samples)
    for (const [pid, seconds] of sample.childCpuSeconds) {
      if (!first.has(pid)) first.set(pid, samples[0]!.childCpuSeconds.has(pid) ? seconds : 0);
      last.set(pid, seconds);
    }
  let total = 0;
  for (const [pid, seconds] of last) total += seconds - first.get(pid)!;
  return total;
}

interface Status {
  memory?: { heapUsedBytes: number; heapTotalBytes: number; externalBytes: number; arrayBuffersBytes: number };
  outputs: { name: string; kind: string; dropped?: number; peakHeldBytes?: number }[];
}

async function readStatus(metricsPort: number): Promise<Status | undefined> {
  try {
    const response = await fetch(`http://127.0.0.1:${metricsPort}/status`, { signal: AbortSignal.timeout(2000) });
    return (await response.json()) as Status;
  } catch {
    return undefined;
  }
}

const memoryOf = (status: Status | undefined): MemoryFigures | undefined =>
  status?.memory && {
    heapUsed: round(status.memory.heapUsedBytes / MiB),
    heapTotal: round(status.memory.heapTotalBytes / MiB),
    external: round(status.memory.externalBytes / MiB),
    arrayBuffers: round(status.memory.arrayBuffersBytes / MiB),
  };

export async function startOrigin(): Promise<{ port: number; child: ResultPromise }> {
  const port = await freePort();
  const child = execa(
    process.execPath,
    ['bin/appliance.js', 'origin', '--listen', `127.0.0.1:${port}`, '--log-level', 'warn'],
    { cwd: ROOT, env: { ...process.env, APPLIANCE_INGEST_TOKEN: TOKEN }, reject: false },
  );
  for (let i = 0; i < 200; i++) {
    const up = await fetch(`http://127.0.0.1:${port}/time`).then(
      () => true,
      () => false,
    );
    if (up) return { port, child };
    if (child.exitCode !== null) break;
    await sleep(100);
  }
  child.kill('SIGKILL');
  throw new Error(`appliance origin did not start on port ${port}`);
}

/**
 * One run of `seconds`: the appliance (ultra-ll, test source, tsb 30) started as a unit file starts
 * it (the pinned Node, its flags and malloc arenas, one process), sampled every second.
 */
export async function footprintRun(kind: FootprintCase, seconds: number): Promise<FootprintRun> {
  const origins: { port: number; child: ResultPromise }[] = [];
  let proxy: TcpProxy | undefined;
  const metricsPort = await freePort();
  const args = ['--profile', 'ultra-ll', '--tsb', '30', '--duration', String(seconds)];
  args.push('--metrics', `127.0.0.1:${metricsPort}`);
  let servedPort: number | undefined;
  try {
    if (kind === 'served') {
      servedPort = await freePort();
      args.push('--listen', `127.0.0.1:${servedPort}`);
    } else {
      for (let i = 0; i < (kind === 'push3' ? 3 : 1); i++) origins.push(await startOrigin());
      if (kind === 'slow') proxy = await startTcpProxy(origins[0]!.port, { bytesPerMs: 1 });
      const ports = proxy ? [proxy.port] : origins.map((o) => o.port);
      for (const port of ports) args.push('--output', `http://127.0.0.1:${port}/live/live.mpd`);
    }
    const child = execa(process.execPath, ['--max-semi-space-size=2', 'bin/appliance.js', 'start', ...args], {
      cwd: ROOT,
      env: { ...process.env, MALLOC_ARENA_MAX: '2', APPLIANCE_PUSH_TOKEN: TOKEN },
      reject: false,
      timeout: (seconds + 60) * 1000,
    });
    const started = performance.now();
    const samples: Sample[] = [];
    let statusAt60: Status | undefined;
    let statusLast: Status | undefined;
    let mallocAt60: number | undefined;
    let mallocLast: number | undefined;
    const sampling = (async () => {
      while (child.exitCode === null && child.pid) {
        const elapsed = (performance.now() - started) / 1000;
        const sample = await sampleOnce(child.pid, elapsed);
        if (sample) samples.push(sample);
        if (elapsed >= 60 && !statusAt60) {
          statusAt60 = await readStatus(metricsPort);
          mallocAt60 = await mallocHeapMiB(child.pid);
        }
        if (elapsed >= seconds - 10 && Math.round(elapsed) % 2 === 0) {
          statusLast = (await readStatus(metricsPort)) ?? statusLast;
          mallocLast = (await mallocHeapMiB(child.pid)) ?? mallocLast;
        }
        await sleep(1000);
      }
    })();
    let players: FootprintRun['players'];
    if (kind === 'served') {
      const browser = await launchChromium();
      try {
        const url = `http://127.0.0.1:${servedPort}`;
        const watch = (k: PlayerKind) =>
          watchPlayer(browser, {
            kind: k,
            url: `${url}/${k === 'dash.js' ? 'live.mpd' : 'live.m3u8'}`,
            seconds: Math.max(10, seconds - 30),
          });
        const reports = await Promise.all((['dash.js', 'hls.js', 'dash.js'] as PlayerKind[]).map(watch));
        players = reports.map((r, i) => ({
          kind: (['dash.js', 'hls.js', 'dash.js'] as PlayerKind[])[i]!,
          stalls: r.waits,
          medianLatencyS: round(r.medianLatency),
        }));
      } finally {
        await browser.close();
      }
    }
    const result = await child;
    await sampling;
    if (result.exitCode !== 0)
      throw new Error(`appliance exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    const at = (s: number) => samples.find((x) => x.at >= s) ?? samples.at(-1)!;
    const steady = samples.filter((s) => s.at >= 10);
    const first = steady[0]!;
    const last = steady.at(-1)!;
    const span = last.at - first.at;
    const after60 = samples.filter((s) => s.at >= 60).map((s) => s.rssMiB);
    return {
      case: kind,
      seconds,
      peakRssMiB: round(Math.max(...samples.map((s) => s.hwmMiB))),
      rssAt60MiB: round(at(60).rssMiB),
      rssAtEndMiB: round(last.rssMiB),
      rssRangeAfter60MiB: after60.length ? round(Math.max(...after60) - Math.min(...after60)) : Number.NaN,
      memoryAt60: memoryOf(statusAt60),
      memoryAtEnd: memoryOf(statusLast),
      mallocHeapAt60MiB: mallocAt60,
      mallocHeapAtEndMiB: mallocLast,
      nodeCpuPercent: round(((last.nodeCpuSeconds - first.nodeCpuSeconds) / span) * 100),
      ffmpegCpuPercent: round((childCpuBetween(steady) / span) * 100),
      outputs: (statusLast?.outputs ?? [])
        .filter((o) => o.kind === 'push')
        .map((o) => ({ name: o.name, dropped: o.dropped ?? 0, peakHeldMiB: round((o.peakHeldBytes ?? 0) / MiB) })),
      ...(players ? { players } : {}),
    };
  } finally {
    await proxy?.close();
    for (const origin of origins) {
      origin.child.kill('SIGTERM');
      await origin.child;
    }
  }
}
