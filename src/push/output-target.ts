import { access, constants, mkdir, rm, stat, writeFile } from 'node:fs/promises';
import { basename, dirname, resolve } from 'node:path';
import { ConfigError } from '../errors.ts';

export interface DirectoryTarget {
  kind: 'directory';
  dir: string;
  /** The manifest's file name, e.g. `live.mpd`. */
  manifest: string;
}

/** No --output: the built-in origin serves the stream. */
export interface ServeTarget {
  kind: 'serve';
  host: string;
  port: number;
  manifest: string;
}

export type OutputTarget = DirectoryTarget | ServeTarget;

export const DEFAULT_LISTEN = '127.0.0.1:8080';

/** Pure: `HOST:PORT` (IPv6 in brackets) → host and port, or a ConfigError naming the flag. */
export function parseListen(spec: string, flag = '--listen'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new ConfigError(`${flag} "${spec}": expected HOST:PORT, e.g. ${DEFAULT_LISTEN} or [::1]:8080 (port 0 picks a free one)`);
  return { host: (match[1] ?? match[2])!, port };
}

/** Pure: `--output` (or its absence) and `--listen` → where the stream goes. */
export function parseOutput(spec: string | undefined, cwd: string, listen = DEFAULT_LISTEN): OutputTarget {
  if (spec === undefined) return { kind: 'serve', ...parseListen(listen), manifest: 'live.mpd' };
  return parseDirectoryOutput(spec, cwd);
}

function parseDirectoryOutput(spec: string, cwd: string): DirectoryTarget {
  if (/^[a-z][a-z0-9+.-]*:\/\//i.test(spec)) {
    throw new ConfigError(`--output "${spec}": this version writes to a directory only (e.g. --output out/live.mpd); pushing to an origin is not supported yet`);
  }
  const path = resolve(cwd, spec);
  return /\.mpd$/i.test(spec) ? { kind: 'directory', dir: dirname(path), manifest: basename(path) } : { kind: 'directory', dir: path, manifest: 'live.mpd' };
}

async function nearestExisting(path: string): Promise<string> {
  for (let current = path; ; current = dirname(current)) {
    try {
      await stat(current);
      return current;
    } catch {
      if (dirname(current) === current) return current;
    }
  }
}

/**
 * Makes sure files can be written in `dir`, as a ConfigError (exit 2) before anything starts.
 * With `create`, the directory is made and a probe file written and removed; without, only
 * checked (for --dry-run, which must not touch the disk).
 */
export async function ensureWritableDirectory(dir: string, { create }: { create: boolean }): Promise<void> {
  const fail = (why: string): never => {
    throw new ConfigError(`output directory ${dir} is not writable: ${why}`);
  };
  const existing = await nearestExisting(dir);
  const info = await stat(existing).catch(() => undefined);
  if (info && !info.isDirectory()) fail(`${existing} is not a directory`);
  await access(existing, constants.W_OK).catch((e: NodeJS.ErrnoException) => fail(`${existing}: ${e.code ?? e.message}`));
  if (!create) return;
  await mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  const probe = resolve(dir, `.appliance-write-test-${process.pid}`);
  await writeFile(probe, '').catch((e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  await rm(probe, { force: true });
}
