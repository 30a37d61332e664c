import { readFile } from 'node:fs/promises';
import { getCACertificates } from 'node:tls';
import { ConfigError } from '../errors.ts';
import { PUSH_PASSWORD_ENV, PUSH_TOKEN_ENV, PUSH_USER_ENV } from '../secret-environment.ts';

/** Headers the pusher sets itself: a header file must not override the framing of a request. */
const RESERVED = new Set([
  'host',
  'content-length',
  'transfer-encoding',
  'connection',
  'content-type',
  'expect',
  'upgrade',
  'keep-alive',
  'te',
  'trailer',
]);
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/**
 * Pure: a header file (`Name: value` per line, `#` comments and blank lines allowed) → headers,
 * or a ConfigError naming the file and line. Values are never echoed: they are likely secrets.
 */
export function parseHeaderFile(text: string, file: string): Record<string, string> {
  const headers: Record<string, string> = {};
  text.split(/\r?\n/).forEach((raw, index) => {
    const line = raw.trim();
    if (!line || line.startsWith('#')) return;
    const where = `--header-file ${file}, line ${index + 1}`;
    const colon = line.indexOf(':');
    const name = colon > 0 ? line.slice(0, colon).trim() : '';
    const value = colon > 0 ? line.slice(colon + 1).trim() : '';
    if (!TOKEN.test(name))
      throw new ConfigError(`${where}: expected "Name: value" (e.g. "Authorization: Bearer …" or "X-Api-Key: …")`);
    if (RESERVED.has(name.toLowerCase()))
      throw new ConfigError(`${where}: ${name} is set by the appliance itself and cannot be given`);
    if (!value || /[\0\r\n]/.test(value)) throw new ConfigError(`${where}: ${name} has an empty or invalid value`);
    headers[name.toLowerCase()] = value;
  });
  return headers;
}

/**
 * Pure: the headers every push request carries, from the header file and the environment
 * (a bearer token, or basic auth from a user and password). Two sources of Authorization are
 * a ConfigError rather than a silent choice.
 */
export function pushHeaders(
  env: Record<string, string | undefined>,
  fileHeaders: Record<string, string>,
): Record<string, string> {
  const headers = { ...fileHeaders };
  const token = env[PUSH_TOKEN_ENV]?.trim();
  const user = env[PUSH_USER_ENV];
  const password = env[PUSH_PASSWORD_ENV];
  const sources = [
    headers['authorization'] ? 'the header file' : '',
    token ? PUSH_TOKEN_ENV : '',
    user !== undefined || password !== undefined ? `${PUSH_USER_ENV}/${PUSH_PASSWORD_ENV}` : '',
  ].filter(Boolean);
  if (sources.length > 1)
    throw new ConfigError(`push credentials are given twice (${sources.join(' and ')}): keep one`);
  if (token) headers['authorization'] = `Bearer ${token}`;
  if (user !== undefined || password !== undefined) {
    if (!user || password === undefined)
      throw new ConfigError(`basic auth needs both ${PUSH_USER_ENV} and ${PUSH_PASSWORD_ENV}`);
    if (user.includes(':'))
      throw new ConfigError(`${PUSH_USER_ENV} must not contain ":" (basic auth separates user and password with it)`);
    headers['authorization'] = `Basic ${Buffer.from(`${user}:${password}`).toString('base64')}`;
  }
  return headers;
}

export async function readHeaderFile(file: string | undefined): Promise<Record<string, string>> {
  if (!file) return {};
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`--header-file ${file}: cannot read it (${e.code ?? e.message})`);
  });
  return parseHeaderFile(text, file);
}

/** Pure: the PEM certificates in a file's text. */
export function pemCertificates(text: string): string[] {
  return text.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g) ?? [];
}

/**
 * The certificates push trusts: Node's bundled CAs (and NODE_EXTRA_CA_CERTS), the system's store,
 * and those of `--ca FILE`. There is deliberately no way to skip verification.
 */
export async function trustedCertificates(caFile: string | undefined): Promise<string[]> {
  const extra: string[] = [];
  if (caFile) {
    const text = await readFile(caFile, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new ConfigError(`--ca ${caFile}: cannot read it (${e.code ?? e.message})`);
    });
    extra.push(...pemCertificates(text));
    if (!extra.length)
      throw new ConfigError(`--ca ${caFile}: no PEM certificate in it (expected "-----BEGIN CERTIFICATE-----" blocks)`);
  }
  return [...new Set([...getCACertificates('default'), ...getCACertificates('system'), ...extra])];
}
