import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors.ts';
import { createLogger, LOG_LEVELS, type LogLevel } from '../log.ts';
import { createOriginServer } from '../origin/http.ts';
import { DEFAULT_LIMITS } from '../origin/limits.ts';
import { parseTokenGrants, type TokenGrant } from '../origin/tenants.ts';
import { escapeHtml } from '../origin/preview-page.ts';
import { ObjectStore } from '../origin/store.ts';
import { PersistedStore } from '../origin/persist.ts';
import { DEFAULT_LISTEN, ensureWritableDirectory, parseListen } from '../push/output-target.ts';
import { parseBitrate } from '../config/schema.ts';
import { hostForUrl, listenFor } from '../listen.ts';
import { INGEST_TOKEN_ENV } from '../secret-environment.ts';
import { CmafIngestReceiver } from '../origin/cmaf-ingest.ts';
import { DEFAULT_PROFILE, loadProfile } from '../config/profile.ts';

export const ORIGIN_USAGE = `appliance origin [options]   a receiving origin for pushes from appliances
  --listen HOST:PORT    where to listen (default: ${DEFAULT_LISTEN}; port 0 picks a free one)
  --dir DIR             also keep every complete upload as a file under DIR
  --tsb S               time-shift window in seconds: how long media is kept (default: 30)
  --hold S              how long a GET for the next segment waits for its upload (default: 1)
  --max-body SIZE       largest upload, e.g. 64M (default: 64M)
  --token-file FILE     file holding the ingest token (else APPLIANCE_INGEST_TOKEN)
  --tokens FILE         tokens limited to a path prefix: one "PATH-PREFIX TOKEN" per line
  --max-store SIZE      most bytes held, e.g. 2000M (default: no limit); uploads past it get 507
  --headers-timeout S   a request's headers must be complete within S seconds (default: ${DEFAULT_LIMITS.headersTimeoutMs / 1000})
  --body-timeout S      an upload bringing no byte for S seconds is cut (default: ${DEFAULT_LIMITS.bodyIdleMs / 1000})
  --max-client-connections N
                        open connections per client address (default: ${DEFAULT_LIMITS.connectionsPerClient})
  --profile NAME|FILE   how CMAF ingest (<stream>/Streams(<track>.cmfv|.cmfa)) is packaged: its
                        segment (senders must share it), chunk, LL-HLS and latency settings
                        (default: ultra-ll; --tsb still sets the window)
  --log-level LEVEL     ${LOG_LEVELS.join(', ')} (default: info)
The ingest token never goes on the command line: /proc and the journal would show it.`;

const OPTIONS = {
  listen: { type: 'string' },
  dir: { type: 'string' },
  tsb: { type: 'string' },
  hold: { type: 'string' },
  'max-body': { type: 'string' },
  'token-file': { type: 'string' },
  tokens: { type: 'string' },
  'max-store': { type: 'string' },
  'headers-timeout': { type: 'string' },
  'body-timeout': { type: 'string' },
  'max-client-connections': { type: 'string' },
  'log-level': { type: 'string' },
  profile: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const positive = (flag: string, value: string | undefined, fallback: number) => {
  if (value === undefined) return fallback;
  const n = Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new ConfigError(`--${flag} "${value}": expected a number of seconds greater than 0`);
  return n;
};

async function tokenGrants(file: string | undefined): Promise<TokenGrant[] | undefined> {
  if (!file) return undefined;
  const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
    throw new ConfigError(`--tokens ${file}: cannot read it (${e.code ?? e.message})`);
  });
  const grants = parseTokenGrants(text);
  if ('problem' in grants)
    throw new ConfigError(`--tokens ${file}${grants.line ? ` line ${grants.line}` : ''}: ${grants.problem}`);
  return grants;
}

async function ingestToken(
  file: string | undefined,
  optional: boolean,
  env: NodeJS.ProcessEnv,
): Promise<string | undefined> {
  if (file) {
    const text = await readFile(file, 'utf8').catch((e: NodeJS.ErrnoException) => {
      throw new ConfigError(`--token-file ${file}: cannot read it (${e.code ?? e.message})`);
    });
    const token = text.trim();
    if (!token) throw new ConfigError(`--token-file ${file}: the file is empty`);
    return token;
  }
  const token = env[INGEST_TOKEN_ENV]?.trim();
  if (!token && !optional)
    throw new ConfigError(
      'the origin needs an ingest token: set APPLIANCE_INGEST_TOKEN, or give --token-file FILE or --tokens FILE (never on the command line)',
    );
  return token;
}

export async function runOrigin(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<void> {
  let values: Record<string, string | boolean | undefined>;
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${ORIGIN_USAGE}`);
  }
  if (values['help']) return void process.stdout.write(`${ORIGIN_USAGE}\n`);
  const level = (values['log-level'] as string | undefined) ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(level))
    throw new ConfigError(`--log-level "${level}": expected one of ${LOG_LEVELS.join(', ')}`);
  const logger = createLogger(level as LogLevel);
  const { host, port } = parseListen((values['listen'] as string | undefined) ?? DEFAULT_LISTEN);
  const tsb = positive('tsb', values['tsb'] as string | undefined, 30);
  const hold = positive('hold', values['hold'] as string | undefined, 1);
  const maxBody = values['max-body'] === undefined ? 64_000_000 : parseBitrate(values['max-body'] as string);
  if (!maxBody)
    throw new ConfigError(`--max-body "${values['max-body']}": expected a size such as 64M, 500k or 1000000 (bytes)`);
  const connections =
    values['max-client-connections'] === undefined
      ? DEFAULT_LIMITS.connectionsPerClient
      : Number(values['max-client-connections']);
  if (!Number.isInteger(connections) || connections < 1)
    throw new ConfigError(
      `--max-client-connections "${values['max-client-connections']}": expected a whole number of connections, at least 1`,
    );
  const limits = {
    headersTimeoutMs:
      positive(
        'headers-timeout',
        values['headers-timeout'] as string | undefined,
        DEFAULT_LIMITS.headersTimeoutMs / 1000,
      ) * 1000,
    bodyIdleMs:
      positive('body-timeout', values['body-timeout'] as string | undefined, DEFAULT_LIMITS.bodyIdleMs / 1000) * 1000,
    connectionsPerClient: connections,
  };
  const maxStore = values['max-store'] === undefined ? undefined : (parseBitrate(values['max-store'] as string) ?? 0);
  if (maxStore === 0)
    throw new ConfigError(
      `--max-store "${values['max-store']}": expected a size such as 2000M, 500M or 1000000 (bytes)`,
    );
  const grants = await tokenGrants(values['tokens'] as string | undefined);
  const token = await ingestToken(values['token-file'] as string | undefined, grants !== undefined, env);
  const dir = values['dir'] as string | undefined;
  if (dir) await ensureWritableDirectory(dir, { create: true });

  const profile = {
    ...(await loadProfile((values['profile'] as string | undefined) ?? DEFAULT_PROFILE)).profile,
    tsb,
  };
  const store = new ObjectStore({ timeShiftBufferDepth: tsb, holdMs: hold * 1000 });
  let base = '';
  const cmafIngest = new CmafIngestReceiver({
    store,
    profile,
    maxBodyBytes: maxBody,
    limits,
    utcTimingUrl: () => `${base}/time`,
    logger,
  });
  const persisted = dir ? new PersistedStore(dir, logger) : undefined;
  const restored = await persisted?.load(store, (tsb + hold) * 1000);
  const server = createOriginServer({
    store,
    ingestToken: token,
    ingestGrants: grants,
    maxStoreBytes: maxStore,
    maxBodyBytes: maxBody,
    limits,
    logger,
    index: () => {
      const manifests = store.paths().filter((p) => /\.(mpd|m3u8)$/.test(p));
      return `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>appliance origin</title></head><body><h1>appliance origin</h1><ul>${manifests.map((m) => `<li><a href="/${escapeHtml(m.split('/').map(encodeURIComponent).join('/'))}">/${escapeHtml(m)}</a></li>`).join('')}</ul><p><a href="/time">/time</a></p></body></html>\n`;
    },
    cmafIngest,
    // What CMAF ingest received: per stream and track, the newest segment, duplicates discarded, takeovers.
    status: () => ({ cmafIngest: cmafIngest.status() }),
    onStored: persisted && ((object) => persisted.keep(object)),
    onDeleted: persisted && ((key) => persisted.remove(key)),
  });
  const address = await listenFor('--listen', server, host, port);
  base = `http://${hostForUrl(address.address)}:${address.port}`;
  const expiry = setInterval(() => {
    for (const path of store.expire()) persisted?.remove(path);
  }, 1000);
  logger.info(
    {
      url: `http://${hostForUrl(address.address)}:${address.port}/`,
      dir,
      tsb,
      holdSeconds: hold,
      maxBodyBytes: maxBody,
      maxStoreBytes: maxStore ?? 'no limit',
      tenants: grants?.map((g) => `/${g.prefix}`),
      cmafIngest: `<stream>/Streams(<track>.cmfv|.cmfa), packaged as ${profile.name} (segments of ${profile.segdur} s)`,
      ...limits,
      restartKeeps: dir
        ? `every acknowledged upload still in the window (${restored!.loaded} objects loaded from ${dir})`
        : 'nothing: without --dir a restart loses the time-shift window',
    },
    'origin listening',
  );
  await new Promise<void>((resolve) => {
    const stop = () => resolve();
    process.once('SIGTERM', stop);
    process.once('SIGINT', stop);
  });
  clearInterval(expiry);
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
  logger.info('origin stopped');
}
