// The memory limit a run lives under (systemd's MemoryHigh=/MemoryMax=, a container's limit), read
// from the cgroup it was started in, against what the run will need: a limit below it means the
// kernel throttles or kills the encoder mid-stream, which the operator should hear of at start.
import { readFile } from 'node:fs/promises';

/** What the Node process takes besides its media (measured: 110–120 MiB at the plateau). */
export const NODE_BASE_BYTES = 128 * 2 ** 20;
/** ffmpeg for a ladder: ~160 MB measured for 1080p + 720p (3 Mpx) with x264's lookahead. */
const FFMPEG_BASE_BYTES = 64 * 2 ** 20;
const FFMPEG_BYTES_PER_PIXEL = 32;

export interface MemoryLimit {
  bytes: number;
  /** The file it was read from (for the message). */
  file: string;
  /** memory.high (throttled above) or memory.max / memory.limit_in_bytes (killed above). */
  kind: 'high' | 'max';
}

/** Pure: what a run needs, roughly: Node, its media budget, and ffmpeg for the ladder's pixels. */
export function memoryNeeded(budgetBytes: number, ladderPixels: number): number {
  return NODE_BASE_BYTES + budgetBytes + FFMPEG_BASE_BYTES + FFMPEG_BYTES_PER_PIXEL * ladderPixels;
}

/** Limits at or above this are "no limit" (cgroup v1 writes 2^63 rounded to a page). */
const UNLIMITED = 2 ** 62;

/**
 * Pure: the memory cgroup in `procSelfCgroup` (the text of /proc/self/cgroup): cgroup v1's memory
 * controller line `N:memory:/path` when there is one (on a hybrid system it holds the memory
 * controller), else v2's unified line `0::/path`.
 */
export function memoryCgroupOf(procSelfCgroup: string): { version: 'v1' | 'v2'; path: string } | undefined {
  const lines = procSelfCgroup.split('\n').slice(0, 64);
  const v1 = lines.map((l) => /^\d+:(?:[^:]*,)?memory(?:,[^:]*)?:(\/.*)$/.exec(l)?.[1]).find((p) => p !== undefined);
  if (v1 !== undefined) return { version: 'v1', path: v1 };
  const v2 = lines.map((l) => /^0::(\/.*)$/.exec(l)?.[1]).find((p) => p !== undefined);
  return v2 === undefined ? undefined : { version: 'v2', path: v2 };
}

/**
 * Pure: the files that hold the memory limits of the cgroup in `procSelfCgroup` (the text of
 * /proc/self/cgroup) and of its parents, under `root` (/sys/fs/cgroup): cgroup v2's unified line
 * `0::/path`, or v1's memory controller line `N:memory:/path`. At most 32 levels.
 */
export function limitFiles(
  procSelfCgroup: string,
  root = '/sys/fs/cgroup',
): { file: string; kind: MemoryLimit['kind'] }[] {
  const cgroup = memoryCgroupOf(procSelfCgroup);
  const levels = (path: string) => {
    const parts = path.split('/').filter(Boolean).slice(0, 32);
    return parts.map((_, i) => `/${parts.slice(0, parts.length - i).join('/')}`);
  };
  if (cgroup?.version === 'v1')
    return levels(cgroup.path).map((p) => ({ file: `${root}/memory${p}/memory.limit_in_bytes`, kind: 'max' as const }));
  if (cgroup?.version === 'v2')
    return levels(cgroup.path).flatMap((p) => [
      { file: `${root}${p}/memory.high`, kind: 'high' as const },
      { file: `${root}${p}/memory.max`, kind: 'max' as const },
    ]);
  return [];
}

/** Pure: a limit file's text → bytes, or undefined for none ("max", 2^63, unreadable). */
export function parseLimit(text: string | undefined): number | undefined {
  const value = text?.trim();
  if (!value || !/^\d{1,20}$/.test(value)) return undefined;
  const bytes = Number(value);
  return bytes > 0 && bytes < UNLIMITED ? bytes : undefined;
}

/** The tightest limit this process lives under, if any (Linux; elsewhere undefined). */
export async function readMemoryLimit(): Promise<MemoryLimit | undefined> {
  if (process.platform !== 'linux') return undefined;
  const cgroup = await readFile('/proc/self/cgroup', 'utf8').catch(() => '');
  let tightest: MemoryLimit | undefined;
  for (const { file, kind } of limitFiles(cgroup)) {
    const bytes = parseLimit(await readFile(file, 'utf8').catch(() => undefined));
    if (bytes !== undefined && (!tightest || bytes < tightest.bytes)) tightest = { bytes, file, kind };
  }
  return tightest;
}

/** Pure: the warning for a limit below what the run needs, if it is. */
export function memoryLimitWarning(limit: MemoryLimit | undefined, neededBytes: number): string | undefined {
  if (!limit || limit.bytes >= neededBytes) return undefined;
  const mib = (bytes: number) => `${Math.round(bytes / 2 ** 20)}M`;
  return `this run needs about ${mib(neededBytes)} (Node ${mib(NODE_BASE_BYTES)}, its media budget, ffmpeg for the ladder) but its cgroup allows ${mib(limit.bytes)} (${limit.file}): the kernel would ${limit.kind === 'high' ? 'throttle' : 'kill'} the encoder mid-stream; raise MemoryHigh=/MemoryMax= ("systemctl edit appliance") or lower --memory, --tsb or the ladder`;
}
