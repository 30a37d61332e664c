import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type Options, type ResultPromise } from 'execa';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));
export const BIN = join(ROOT, 'bin', 'appliance.js');

/**
 * The machine's own Node: the first `node` on PATH outside node_modules (npm scripts put the
 * pinned Node 24 first). The launcher must work on it whatever its version.
 */
export async function systemNode(): Promise<string> {
  for (const dir of (process.env['PATH'] ?? '').split(delimiter)) {
    if (!dir || dir.includes('node_modules')) continue;
    const candidate = join(dir, process.platform === 'win32' ? 'node.exe' : 'node');
    try {
      await access(candidate, constants.X_OK);
      return candidate;
    } catch {
      // not here
    }
  }
  throw new Error("no system node on PATH: the launcher test needs the machine's own Node");
}

/**
 * Starts `appliance …` through the launcher on `node` (the system Node); the subprocess is
 * returned at once (its pid is there to stop it) and never rejects on a non-zero exit.
 */
export function startAppliance(node: string, args: string[], options: Options = {}) {
  return execa(node, [BIN, ...args], { reject: false, timeout: 120_000, killSignal: 'SIGTERM', ...options });
}

export async function runAppliance(args: string[], options: Options = {}) {
  return startAppliance(await systemNode(), args, options);
}

/**
 * `appliance origin ARGS` in its own process (an input that kills it shows as a dead process, not
 * a crash of the test runner), once it listens: the process, its base URL (no trailing slash) and
 * its log so far.
 */
export async function startApplianceOrigin(
  args: string[],
  env: Record<string, string>,
  timeout = 300_000,
): Promise<{ child: ResultPromise; base: string; log: () => string }> {
  const child = startAppliance(await systemNode(), ['origin', ...args], { env, timeout });
  let log = '';
  child.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
  const url = await waitForLogField(child, 'origin listening', 'url', 30_000);
  if (!url) {
    if (child.exitCode === null) child.kill('SIGKILL');
    throw new Error(`the origin did not listen: ${log.slice(-2000)}`);
  }
  return { child, base: url.replace(/\/$/, ''), log: () => log };
}

/** pino's JSON lines from stderr, skipping anything else. */
export function logLines(stderr: string): Record<string, unknown>[] {
  return stderr.split('\n').flatMap((line) => {
    try {
      const parsed = JSON.parse(line) as unknown;
      return parsed && typeof parsed === 'object' ? [parsed as Record<string, unknown>] : [];
    } catch {
      return [];
    }
  });
}

/** Waits (up to `timeoutMs`) for the running appliance to log `msg` and returns that line's `field`. */
export async function waitForLogField(
  child: ResultPromise,
  msg: string,
  field: string,
  timeoutMs = 10_000,
): Promise<string | undefined> {
  let log = '';
  const collect = (piece: Buffer) => (log += piece.toString());
  child.stderr?.on('data', collect);
  try {
    for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(50)) {
      const value = logLines(log).find((l) => l['msg'] === msg)?.[field];
      if (typeof value === 'string') return value;
    }
    return undefined;
  } finally {
    child.stderr?.off('data', collect);
  }
}
