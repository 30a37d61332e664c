import { readdir, readFile } from 'node:fs/promises';

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

/** The CPU and wait times of every thread of `pid`, summed; undefined where there is no /proc (macOS, Windows). */
export async function readSchedTimes(pid: number): Promise<SchedTimes | undefined> {
  let tasks: string[];
  try {
    tasks = await readdir(`/proc/${pid}/task`);
  } catch {
    return undefined;
  }
  const total = { runNs: 0, waitNs: 0 };
  let read = 0;
  // A thread may end between the listing and the read: it is left out.
  for (const task of tasks.slice(0, 256)) {
    const times = await readFile(`/proc/${pid}/task/${task}/schedstat`, 'utf8').then(parseSchedstat, () => undefined);
    if (!times) continue;
    total.runNs += times.runNs;
    total.waitNs += times.waitNs;
    read++;
  }
  return read ? total : undefined;
}
