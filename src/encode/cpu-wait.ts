import { readdirSync, readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';

// How long a process's threads waited for a CPU: Linux's schedstat (per thread: ns on a CPU, ns
// runnable but waiting on a run queue, timeslices). A process that waits much has no headroom,
// whatever its speed says yet: the real-time controller steps back up only where it waits little.

export interface SchedTimes {
  runNs: number;
  waitNs: number;
}

/** Pure: one `schedstat` line → its first two fields; undefined for anything else. */
export function parseSchedstat(text: string): SchedTimes | undefined {
  const fields = text.trim().split(/\s+/);
  if (fields.length < 2) return undefined;
  const [runNs, waitNs] = fields.slice(0, 2).map(Number);
  return Number.isSafeInteger(runNs) && Number.isSafeInteger(waitNs) && runNs! >= 0 && waitNs! >= 0
    ? { runNs: runNs!, waitNs: waitNs! }
    : undefined;
}

/** Pure: of the time the threads were runnable between two readings, the share spent waiting (0–1). */
export function waitShare(before: SchedTimes, after: SchedTimes): number | undefined {
  const run = after.runNs - before.runNs;
  const wait = after.waitNs - before.waitNs;
  if (run < 0 || wait < 0 || run + wait === 0) return undefined;
  return wait / (run + wait);
}

/**
 * The CPU and wait times of every thread of `pid`, summed; undefined where there is no /proc (macOS,
 * Windows). Read synchronously: procfs answers from memory, and an encoder's ~30 threads read
 * each second as asynchronous reads were four thread-pool round trips each, ~30 times the work.
 */
export function readSchedTimes(pid: number): SchedTimes | undefined {
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const total = { runNs: 0, waitNs: 0 };
  let read = 0;
  // A thread may end between the listing and the read: it is left out.
  for (const task of tasks.slice(0, 256)) {
    let times: SchedTimes | undefined;
    try {
      times = parseSchedstat(readFileSync(`/proc/${pid}/task/${task}/schedstat`, 'utf8'));
    } catch {
      continue;
    }
    if (!times) continue;
    total.runNs += times.runNs;
    total.waitNs += times.waitNs;
    read++;
  }
  return read ? total : undefined;
}

/** Per CPU of /proc/stat: jiffies idle (idle + iowait) and in all. */
export type CpuTimes = Map<number, { idle: number; total: number }>;

/** Pure: /proc/stat → each `cpuN` line's idle and total jiffies; lines it does not know are skipped. */
export function parseProcStat(text: string): CpuTimes {
  const cpus: CpuTimes = new Map();
  for (const line of text.split('\n').slice(0, 1024)) {
    const match = /^cpu(\d+)\s+(.*)$/.exec(line);
    if (!match) continue;
    const fields = match[2]!.trim().split(/\s+/).slice(0, 10).map(Number);
    if (fields.length < 5 || fields.some((f) => !Number.isSafeInteger(f) || f < 0)) continue;
    // user nice system idle iowait irq softirq steal (guest time is counted in user already).
    const total = fields.slice(0, 8).reduce((sum, f) => sum + f, 0);
    cpus.set(Number(match[1]), { idle: fields[3]! + fields[4]!, total });
  }
  return cpus;
}

/** Pure: a kernel CPU list ("0-3,6") → its CPUs; undefined when it does not parse (at most 4096). */
export function parseCpuList(text: string): number[] | undefined {
  const cpus: number[] = [];
  for (const range of text.trim().split(',')) {
    const match = /^(\d+)(?:-(\d+))?$/.exec(range);
    if (!match) return undefined;
    const from = Number(match[1]);
    const to = Number(match[2] ?? match[1]);
    if (to < from || to >= 4096) return undefined;
    for (let cpu = from; cpu <= to; cpu++) cpus.push(cpu);
  }
  return cpus;
}

/** Pure: how many of `cpus` were idle between two readings (in CPUs, e.g. 0.7). */
export function idleCpus(before: CpuTimes, after: CpuTimes, cpus: readonly number[]): number | undefined {
  let idle = 0;
  for (const cpu of cpus) {
    const a = before.get(cpu);
    const b = after.get(cpu);
    if (!a || !b || b.total <= a.total) return undefined;
    idle += Math.max(0, Math.min(1, (b.idle - a.idle) / (b.total - a.total)));
  }
  return idle;
}

/** Every CPU's times, and the CPUs `pid` may run on; undefined without /proc. */
export async function readCpuTimes(pid: number): Promise<{ times: CpuTimes; allowed: number[] } | undefined> {
  try {
    const [stat, status] = await Promise.all([readFile('/proc/stat', 'utf8'), readFile(`/proc/${pid}/status`, 'utf8')]);
    const allowed = parseCpuList(/^Cpus_allowed_list:\s*(.+)$/m.exec(status)?.[1] ?? '');
    return allowed ? { times: parseProcStat(stat), allowed } : undefined;
  } catch {
    return undefined;
  }
}
