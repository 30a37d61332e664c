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

/** An HTTP(S) origin the stream is pushed to. */
export interface PushTarget {
  kind: 'push';
  /** The manifest's URL; segments and init segments go next to it. */
  url: URL;
  manifest: string;
  /** The URL as given (no `live.mpd` appended): for CMAF ingest, the publishing point. */
  given: URL;
}

export type OutputTarget = DirectoryTarget | ServeTarget | PushTarget;

export const DEFAULT_LISTEN = '127.0.0.1:8080';

/** Pure: `HOST:PORT` (IPv6 in brackets) → host and port, or a ConfigError naming the flag. */
export function parseListen(spec: string, flag = '--listen'): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(spec);
  const port = Number(match?.[3]);
  if (!match || port > 65535)
    throw new ConfigError(
      `${flag} "${spec}": expected HOST:PORT, e.g. ${DEFAULT_LISTEN} or [::1]:8080 (port 0 picks a free one)`,
    );
  return { host: (match[1] ?? match[2])!, port };
}

/** Pure: `--output` (or its absence) and `--listen` → where the stream goes. */
export function parseOutput(spec: string | undefined, cwd: string, listen = DEFAULT_LISTEN): OutputTarget {
  if (spec === undefined) return { kind: 'serve', ...parseListen(listen), manifest: 'live.mpd' };
  // Anything with a scheme is a URL (one letter is a Windows drive, C:\out): a typo must not
  // quietly become a local directory named "http:".
  if (/^[a-z][a-z0-9+.-]+:/i.test(spec)) return parsePushOutput(spec);
  return parseDirectoryOutput(spec, cwd);
}

/** Query parameter names that carry secrets (signed URLs, API keys, tokens). */
const SECRET_PARAMETER =
  /(^|[-_.])(sig|signature|token|key|apikey|secret|password|passwd|pwd|auth|authorization|credential|credentials)($|[-_.])/i;

/**
 * Pure: the name of a query parameter of `spec` that looks like a secret, if any. On the command
 * line it would show in the process list and the journal; the configuration file (readable by the
 * service only) or a header file carries it instead.
 */
export function secretQueryParameter(spec: string): string | undefined {
  const query = /^[a-z][a-z0-9+.-]+:\/\/[^?#]*\?([^#]*)/i.exec(spec)?.[1];
  if (!query) return undefined;
  return [...new URLSearchParams(query).keys()].find((name) => SECRET_PARAMETER.test(name));
}

/** Pure: every `--output` (none: serve) → targets; the same destination twice is a mistake worth naming. */
export function parseOutputs(specs: readonly string[], cwd: string, listen = DEFAULT_LISTEN): OutputTarget[] {
  if (!specs.length) return [parseOutput(undefined, cwd, listen)];
  const targets = specs.map((spec) => parseOutput(spec, cwd, listen));
  const keys = targets.map((t) =>
    t.kind === 'push' ? t.url.href : t.kind === 'directory' ? `${t.dir}/${t.manifest}` : '',
  );
  const twice = keys.find((k, i) => keys.indexOf(k) !== i);
  if (twice) throw new ConfigError(`--output ${twice} is given twice`);
  return targets;
}

function parsePushOutput(spec: string): PushTarget {
  const scheme = /^([a-z][a-z0-9+.-]+):/i.exec(spec)![1]!;
  if (!/^https?$/i.test(scheme) || !/^https?:\/\/[^/?#@]+(@[^/?#]+)?([/?#]|$)/i.test(spec)) {
    const shown = spec.replace(/^([^:]+:\/*)[^/@?#]*@/, '$1…@').replace(/\?.*$/s, '?…');
    throw new ConfigError(
      `--output "${shown}": understood as a URL (scheme "${scheme}:"), but an origin must be http:// or https:// with a host, e.g. https://origin.example/live/live.mpd; a directory output is a path without a scheme, e.g. out/live.mpd`,
    );
  }
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new ConfigError(`--output "${spec}": not a valid URL; expected e.g. https://origin.example/live/live.mpd`);
  }
  const shown = `${url.protocol}//${url.host}${url.pathname}`;
  if (url.username || url.password) {
    throw new ConfigError(
      `--output ${shown}: credentials in the URL would show in the process list and logs; give them with APPLIANCE_PUSH_USER and APPLIANCE_PUSH_PASSWORD, APPLIANCE_PUSH_TOKEN or --header-file`,
    );
  }
  if (url.hash) throw new ConfigError(`--output ${shown}: a URL fragment (#…) is never sent to an origin; remove it`);
  const given = url;
  if (!/\.(mpd|m3u8)$/i.test(url.pathname))
    url = new URL(`${url.pathname.replace(/\/?$/, '/')}live.mpd${url.search}`, url);
  return { kind: 'push', url, manifest: url.pathname.split('/').pop()!, given };
}

function parseDirectoryOutput(spec: string, cwd: string): DirectoryTarget {
  const path = resolve(cwd, spec);
  return /\.(mpd|m3u8)$/i.test(spec)
    ? { kind: 'directory', dir: dirname(path), manifest: basename(path) }
    : { kind: 'directory', dir: path, manifest: 'live.mpd' };
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
  await access(existing, constants.W_OK).catch((e: NodeJS.ErrnoException) =>
    fail(`${existing}: ${e.code ?? e.message}`),
  );
  if (!create) return;
  await mkdir(dir, { recursive: true }).catch((e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  const probe = resolve(dir, `.appliance-write-test-${process.pid}`);
  await writeFile(probe, '').catch((e: NodeJS.ErrnoException) => fail(e.code ?? e.message));
  await rm(probe, { force: true });
}
