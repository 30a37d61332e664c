import { timingSafeEqual } from 'node:crypto';

/** A token and the part of the store it may write (and DELETE): '' is everything. */
export interface TokenGrant {
  prefix: string;
  token: string;
}

export type Authorization = 'missing' | 'wrong' | 'outside' | 'ok';

/** A prefix as written (`/tenant-a/`, `tenant-a`) → the store's form (`tenant-a/`), or undefined when it is no path. */
function normalisePrefix(text: string): string | undefined {
  const trimmed = text.replace(/^\/+/, '').replace(/\/+$/, '');
  if (trimmed === '') return '';
  const parts = trimmed.split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..' || /[\0\\\s]/.test(p))) return undefined;
  return `${trimmed}/`;
}

/**
 * Pure: a `--tokens` file (one `PATH-PREFIX TOKEN` per line, `#` comments and blank lines
 * ignored) → its grants, or the first problem with its line number.
 */
export function parseTokenGrants(text: string): TokenGrant[] | { line: number; problem: string } {
  const grants: TokenGrant[] = [];
  const lines = text.split(/\r?\n/);
  for (const [index, raw] of lines.entries()) {
    const line = raw.trim();
    if (!line || line.startsWith('#')) continue;
    const fields = line.split(/\s+/);
    if (fields.length !== 2) return { line: index + 1, problem: 'expected "PATH-PREFIX TOKEN" (two fields)' };
    const prefix = normalisePrefix(fields[0]!);
    if (prefix === undefined)
      return { line: index + 1, problem: `"${fields[0]}" is not a path prefix (no empty, "." or ".." segments)` };
    if (fields[1]!.length < 16) return { line: index + 1, problem: 'the token is shorter than 16 characters' };
    grants.push({ prefix, token: fields[1]! });
  }
  if (!grants.length) return { line: 0, problem: 'no "PATH-PREFIX TOKEN" line' };
  return grants;
}

const equal = (a: Buffer, b: Buffer) => a.length === b.length && timingSafeEqual(a, b);

/**
 * Pure: whether `header` (Authorization) may write `key`: 'missing' (401), 'wrong' (403: no grant
 * has that token), 'outside' (403: the token's prefixes do not cover the path), 'ok'.
 */
export function authorize(grants: readonly TokenGrant[], header: string | undefined, key: string): Authorization {
  const presented = /^Bearer\s+(.+)$/i.exec(header ?? '')?.[1];
  if (!presented) return 'missing';
  const given = Buffer.from(presented);
  // Every grant is compared, so the time taken does not say which tokens exist.
  const held = grants.filter((g) => equal(given, Buffer.from(g.token)));
  if (!held.length) return 'wrong';
  return held.some((g) => g.prefix === '' || key.startsWith(g.prefix)) ? 'ok' : 'outside';
}
