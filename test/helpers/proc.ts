import { readdir, readFile } from 'node:fs/promises';

// What every local user (cmdline) or the process's own user (environ) can read of a process on Linux.

/** The processes descended from `pid` (its children, theirs, …), as /proc has them now. */
export async function descendants(pid: number): Promise<number[]> {
  const parentOf = new Map<number, number>();
  for (const name of await readdir('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    const stat = await readFile(`/proc/${name}/stat`, 'utf8').catch(() => undefined);
    // "pid (comm) state ppid …": comm may hold spaces and parentheses, so read after the last ")".
    const ppid = stat ? Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) : NaN;
    if (Number.isInteger(ppid)) parentOf.set(Number(name), ppid);
  }
  const found: number[] = [];
  for (let frontier = [pid]; frontier.length; ) {
    const children = [...parentOf].filter(([, parent]) => frontier.includes(parent)).map(([child]) => child);
    found.push(...children);
    frontier = children;
  }
  return found;
}

/** /proc/PID/cmdline or environ as NUL-separated entries; undefined once the process is gone. */
export async function procEntries(pid: number, file: 'cmdline' | 'environ'): Promise<string[] | undefined> {
  const text = await readFile(`/proc/${pid}/${file}`, 'utf8').catch(() => undefined);
  return text?.split('\0').filter(Boolean);
}
