// The appliance's Node process under a memory cgroup limit (what MemoryMax= does under systemd),
// pushing to an origin that reads 1 byte/ms: it must never be killed, and lose only what it counts
// as dropped. ffmpeg is moved out of the limited group as soon as it starts: the limit is the
// Node side's (its own figures: ≤ 120 MB, the budget bounding the media).
import { mkdir, readFile, rmdir, writeFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { startTcpProxy, type TcpProxy } from '../test/helpers/tcp-proxy.ts';
import { freePort } from '../test/helpers/servers.ts';
import { memoryCgroupOf } from '../src/service/memory-limit.ts';
import { startOrigin, TOKEN } from './footprint.ts';

const ROOT = new URL('../', import.meta.url);
const MiB = 2 ** 20;
const round = (x: number) => Math.round(x * 10) / 10;

export interface MemoryLimitRun {
  limitMiB: number;
  seconds: number;
  cgroup: 'v1' | 'v2';
  exitCode: number | undefined;
  signal: string | undefined;
  /** The kernel's OOM kills in the group (v1 memory.oom_control, v2 memory.events). */
  oomKills: number;
  /** Times the group hit its limit and had to reclaim (v1 memory.failcnt; v2 memory.events max). */
  limitHits: number;
  peakChargedMiB: number | undefined;
  peakRssMiB: number;
  /** Segments made (from the logs: first and last segment per track), acknowledged, dropped (by reason). */
  segmentsMade: number;
  acknowledged: number;
  dropped: Record<string, number>;
  /** Made − acknowledged − dropped: media lost without being counted (must be 0). */
  unaccounted: number;
  ffmpegMovedOut: number;
}

interface Group {
  kind: 'v1' | 'v2';
  dir: string;
  /** Where ffmpeg goes: a sibling group (v2: no process may stay in a parent with controllers) or the parent. */
  outside: string;
  cleanup(): Promise<void>;
}

async function makeGroup(limitBytes: number): Promise<Group> {
  const cgroup = memoryCgroupOf(await readFile('/proc/self/cgroup', 'utf8'));
  if (!cgroup) throw new Error('no memory cgroup (v1 or v2) found in /proc/self/cgroup');
  const name = `appliance-bench-${process.pid}`;
  const under = cgroup.path === '/' ? '' : cgroup.path;
  if (cgroup.version === 'v1') {
    const parent = `/sys/fs/cgroup/memory${under}`;
    const dir = `${parent}/${name}`;
    await mkdir(dir);
    await writeFile(`${dir}/memory.limit_in_bytes`, String(limitBytes));
    // ffmpeg's pages follow it out of the group (else what it mapped before the move stays charged here).
    await writeFile(`${parent}/memory.move_charge_at_immigrate`, '3').catch(() => undefined);
    return { kind: 'v1', dir, outside: parent, cleanup: () => rmdir(dir).catch(() => undefined) };
  }
  const parent = `/sys/fs/cgroup${under}`;
  const dir = `${parent}/${name}`;
  const outside = `${parent}/${name}-ffmpeg`;
  await mkdir(dir);
  await mkdir(outside);
  await writeFile(`${dir}/memory.max`, String(limitBytes));
  return {
    kind: 'v2',
    dir,
    outside,
    cleanup: async () => {
      await rmdir(dir).catch(() => undefined);
      await rmdir(outside).catch(() => undefined);
    },
  };
}

const readNumber = (file: string) =>
  readFile(file, 'utf8').then(
    (t) => Number(t.trim()),
    () => undefined,
  );

async function counters(group: Group): Promise<{ oomKills: number; limitHits: number; peak: number | undefined }> {
  if (group.kind === 'v1') {
    const oom = await readFile(`${group.dir}/memory.oom_control`, 'utf8').catch(() => '');
    return {
      oomKills: Number(/oom_kill (\d+)/.exec(oom)?.[1] ?? 0),
      limitHits: (await readNumber(`${group.dir}/memory.failcnt`)) ?? 0,
      peak: await readNumber(`${group.dir}/memory.max_usage_in_bytes`),
    };
  }
  const events = await readFile(`${group.dir}/memory.events`, 'utf8').catch(() => '');
  return {
    oomKills: Number(/oom_kill (\d+)/.exec(events)?.[1] ?? 0),
    limitHits: Number(/^max (\d+)/m.exec(events)?.[1] ?? 0),
    peak: await readNumber(`${group.dir}/memory.peak`),
  };
}

/** One run: ultra-ll, test source, tsb 30, pushed through a 1 byte/ms throttle, Node limited to `limitBytes`. */
export async function memoryLimitRun(limitBytes: number, seconds: number): Promise<MemoryLimitRun> {
  const group = await makeGroup(limitBytes);
  const origin = await startOrigin();
  let proxy: TcpProxy | undefined;
  try {
    proxy = await startTcpProxy(origin.port, { bytesPerMs: 1 });
    const output = `http://127.0.0.1:${proxy.port}/live/live.mpd`;
    const args = ['--profile', 'ultra-ll', '--tsb', '30', '--duration', String(seconds)];
    args.push('--metrics', `127.0.0.1:${await freePort()}`, '--output', output);
    // The shell puts itself in the group, then becomes the appliance: every page Node maps is charged there.
    const child = execa(
      'sh',
      [
        '-c',
        'echo $$ > "$0/cgroup.procs" && exec "$@"',
        group.dir,
        process.execPath,
        '--max-semi-space-size=2',
        'bin/appliance.js',
        'start',
        ...args,
      ],
      {
        cwd: ROOT,
        env: { ...process.env, MALLOC_ARENA_MAX: '2', APPLIANCE_PUSH_TOKEN: TOKEN },
        reject: false,
        timeout: (seconds + 60) * 1000,
      },
    );
    const moved = new Set<number>();
    let peakRssMiB = 0;
    const watching = (async () => {
      for (let tick = 0; child.exitCode === null && tick < (seconds + 60) * 20; tick++) {
        const procs = (await readFile(`${group.dir}/cgroup.procs`, 'utf8').catch(() => ''))
          .split('\n')
          .filter(Boolean)
          .map(Number);
        for (const pid of procs) {
          if (pid === child.pid || moved.has(pid)) continue;
          const command = await readFile(`/proc/${pid}/comm`, 'utf8').catch(() => '');
          if (!command.startsWith('ffmpeg')) continue;
          await writeFile(`${group.outside}/cgroup.procs`, String(pid)).catch(() => undefined);
          moved.add(pid);
        }
        if (tick % 20 === 0 && child.pid) {
          const status = await readFile(`/proc/${child.pid}/status`, 'utf8').catch(() => '');
          peakRssMiB = Math.max(peakRssMiB, Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024);
        }
        await sleep(50);
      }
    })();
    const result = await child;
    await watching;
    const { oomKills, limitHits, peak } = await counters(group);
    const logs = String(result.stderr)
      .split('\n')
      .flatMap((line) => {
        try {
          return [JSON.parse(line) as Record<string, unknown>];
        } catch {
          return [];
        }
      });
    const first = new Map<string, bigint>();
    for (const l of logs) if (l['msg'] === 'first segment') first.set(String(l['track']), BigInt(String(l['segment'])));
    const ended = logs.findLast((l) => l['msg'] === 'stream ended' || l['msg'] === 'segment finished; stopping');
    const last = ended ? BigInt(String(ended['lastSegment'])) : undefined;
    const segmentsMade =
      last === undefined ? 0 : [...first.values()].reduce((sum, from) => sum + Number(last - from + 1n), 0);
    const push = logs.findLast((l) => l['msg'] === 'push' && l['output'] === output);
    const dropped = (push?.['dropped'] as Record<string, number> | undefined) ?? {};
    const acknowledged = Number(push?.['acknowledgedSegments'] ?? 0);
    const droppedTotal = Object.values(dropped).reduce((a, b) => a + b, 0);
    return {
      limitMiB: round(limitBytes / MiB),
      seconds,
      cgroup: group.kind,
      exitCode: result.exitCode,
      signal: result.signal,
      oomKills,
      limitHits,
      peakChargedMiB: peak === undefined ? undefined : round(peak / MiB),
      peakRssMiB: round(peakRssMiB),
      segmentsMade,
      acknowledged,
      dropped,
      unaccounted: segmentsMade - acknowledged - droppedTotal,
      ffmpegMovedOut: moved.size,
    };
  } finally {
    await proxy?.close();
    origin.child.kill('SIGTERM');
    await origin.child;
    // Moved out of the group's way, ffmpeg is gone with the run; an empty group can be removed.
    await group.cleanup();
  }
}
