import { readFile } from 'node:fs/promises';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import { contentTypeFor, type ObjectEvent, type ObjectStore, type StoredObject } from './store.ts';
import { findBox } from '../packager/boxes.ts';
import { parseMoov } from '../packager/fmp4.ts';
import { answerPlaylist, hasDirectives, PlaylistGate } from './hls-origin.ts';
import { playlistProblem } from './hls-requests.ts';
import { CORS } from './cors.ts';
import { authorize, type TokenGrant } from './tenants.ts';
import { DEFAULT_LIMITS, limitConnections, refuseUnread, watchBodyProgress, type OriginLimits } from './limits.ts';
import { classifyObject } from '../layout/object-names.ts';
import { cmafIngestTarget, type CmafIngestReceiver } from './cmaf-ingest.ts';

export interface OriginHttpOptions {
  store: ObjectStore;
  /** Bearer token for PUT/POST/DELETE; without one, ingest is not offered (405). */
  ingestToken?: string | undefined;
  /** Tokens limited to a part of the store (`--tokens`), beside or instead of `ingestToken`. */
  ingestGrants?: readonly TokenGrant[] | undefined;
  maxBodyBytes: number;
  /** Bytes the store may hold at most (`--max-store`); an upload past it is refused with 507. */
  maxStoreBytes?: number | undefined;
  logger: Logger;
  /** The page at `/`. */
  index: () => string;
  /** Files served as they are: URL path → file (the preview page's players). */
  assets?: Record<string, string> | undefined;
  /**
   * Called when an upload completes (e.g. to copy it to a directory); when it returns a promise,
   * the upload is acknowledged once it resolves, and refused with 500 if it rejects.
   */
  onStored?: ((object: StoredObject) => void | Promise<void>) | undefined;
  /** Longest a pushed playlist waits for the media it names (then it is served anyway); one target duration. */
  playlistWaitMs?: number | undefined;
  /** Called when a DELETE removed an object. */
  onDeleted?: ((path: string) => void) | undefined;
  /** `appliance start`'s run status, served at /status (the preview page shows its alarms). */
  status?: (() => unknown) | undefined;
  /** Timeouts and the per-client connection limit (DEFAULT_LIMITS when not given). */
  limits?: OriginLimits | undefined;
  /** Packages CMAF ingest (`<stream>/Streams(<track>.cmfv|.cmfa)`) instead of storing it as given. */
  cmafIngest?: CmafIngestReceiver | undefined;
}

/** The largest last-byte-pos a client can send for "everything, as it grows" (RFC 8673). */
export const LIVE_RANGE_END = 2 ** 53 - 1;

/** Pure: a request path → a store key, or undefined when it could escape or is malformed. */
export function storeKey(rawPath: string): string | undefined {
  let decoded: string;
  try {
    decoded = decodeURIComponent(rawPath);
  } catch {
    return undefined;
  }
  if (!decoded.startsWith('/') || /[\0\\]/.test(decoded)) return undefined;
  const parts = decoded.slice(1).split('/');
  if (parts.some((p) => p === '' || p === '.' || p === '..')) return undefined;
  return parts.join('/');
}

/** Pure: a single `bytes=` range against `length` bytes (undefined: the whole object). */
export function parseRange(
  header: string | undefined,
): { start: number; end: number | undefined } | 'invalid' | undefined {
  if (!header) return undefined;
  const match = /^bytes=(\d*)-(\d*)$/.exec(header.trim());
  if (!match || (match[1] === '' && match[2] === '')) return 'invalid';
  if (match[1] === '') return { start: -Number(match[2]), end: undefined }; // suffix: the last N bytes
  const start = Number(match[1]);
  const end = match[2] === '' ? undefined : Number(match[2]);
  if (end !== undefined && end < start) return 'invalid';
  return { start, end };
}

function cacheControl(object: StoredObject): string {
  if (object.state !== 'complete') return 'no-store';
  const { kind } = classifyObject(object.path);
  // Manifests change; an init segment keeps its name across sessions but not its bytes.
  if (kind === 'manifest' || kind === 'init') return 'no-cache';
  return 'public, max-age=86400, immutable';
}

/** The handler of an uploaded init segment's track ('vide', 'soun'), if it parses as one. */
export function handlerOf(object: StoredObject): string | undefined {
  try {
    const bytes = Buffer.concat(object.chunks);
    const moov = findBox(bytes, ['moov']);
    return moov ? parseMoov(moov.payload)[0]?.handler : undefined;
  } catch {
    return undefined;
  }
}

const STORE_FULL = 'the origin holds as much as --max-store allows; older media must expire first';

/** Whether `incoming` more bytes (replacing the object at `replacing`) would pass --max-store. */
function storeFull(options: OriginHttpOptions, replacing: string | undefined, incoming: number): boolean {
  if (options.maxStoreBytes === undefined) return false;
  const replaced = replacing === undefined ? 0 : (options.store.get(replacing)?.length ?? 0);
  return options.store.bytes - replaced + incoming > options.maxStoreBytes;
}

const isUpload = (method: string | undefined) => method === 'PUT' || method === 'POST' || method === 'DELETE';

function fail(res: ServerResponse, status: number, message: string, headers: Record<string, string> = {}) {
  res.writeHead(status, {
    ...CORS,
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
  });
  res.end(`${message}\n`);
}

/**
 * The last resort: an exception while answering one request is that request's 500 (its connection
 * cut, if the answer had begun) and one logged error naming the path; it never ends the process.
 */
function internalError(res: ServerResponse, logger: Logger, path: string | undefined, error: unknown): void {
  logger.error({ err: error, path }, 'origin: a request failed inside the origin; answered 500');
  if (!res.headersSent && !res.destroyed) fail(res, 500, 'internal error', { Connection: 'close' });
  else res.destroy();
}

/** `handle`, run under the last-resort guard. */
function guarded<A extends unknown[]>(
  res: ServerResponse,
  logger: Logger,
  path: string | undefined,
  handle: (...args: A) => unknown,
): (...args: A) => void {
  return (...args) => {
    try {
      handle(...args);
    } catch (error) {
      internalError(res, logger, path, error);
    }
  };
}

/** Streams an object to a reader: what is there now, then each chunk as it lands. */
function serve(req: IncomingMessage, res: ServerResponse, object: StoredObject, contentType: string, logger: Logger) {
  const range = parseRange(req.headers.range);
  if (range === 'invalid')
    return fail(res, 416, 'unsupported range', {
      'Content-Range': `bytes */${object.state === 'complete' ? object.length : '*'}`,
    });
  const headers: Record<string, string | number> = {
    ...CORS,
    'Content-Type': contentType,
    'Cache-Control': cacheControl(object),
    'Accept-Ranges': 'bytes',
  };
  let start = 0;
  let end: number | undefined; // inclusive; undefined: to the end, however long it grows
  let status = 200;
  if (object.state === 'complete') {
    headers['ETag'] = object.etag!;
    if (!range && req.headers['if-none-match'] === object.etag) {
      res.writeHead(304, headers);
      return res.end();
    }
    if (range) {
      start = range.start < 0 ? Math.max(0, object.length + range.start) : range.start;
      end = Math.min(range.end ?? object.length - 1, object.length - 1);
      if (start >= object.length)
        return fail(res, 416, 'range not satisfiable', { 'Content-Range': `bytes */${object.length}` });
      status = 206;
      headers['Content-Range'] = `bytes ${start}-${end}/${object.length}`;
    }
    headers['Content-Length'] = (end ?? object.length - 1) - start + 1;
  } else if (range) {
    if (range.start < 0)
      return fail(res, 416, 'a suffix range of an object still growing has no end yet', {
        'Content-Range': 'bytes */*',
      });
    start = range.start;
    end = range.end === undefined || range.end >= LIVE_RANGE_END ? undefined : range.end;
    status = 206;
    // RFC 8673: the complete length is unknown while the object grows.
    headers['Content-Range'] = `bytes ${start}-${end ?? LIVE_RANGE_END}/*`;
  }
  res.writeHead(status, headers);
  if (req.method === 'HEAD') return res.end();

  // Sends what the object has released beyond what went already, within the range; true when the range is done.
  let position = 0; // bytes of the object passed, counting from its start
  let chunkIndex = 0;
  let chunkOffset = 0;
  const pump = (): boolean => {
    const limit = Math.min(object.released, end === undefined ? Infinity : end + 1);
    res.cork();
    while (position < limit && chunkIndex < object.chunks.length) {
      const chunk = object.chunks[chunkIndex]!;
      const take = Math.min(chunk.length - chunkOffset, limit - position);
      const from = Math.max(chunkOffset, chunkOffset + start - position);
      if (from < chunkOffset + take) res.write(chunk.subarray(from, chunkOffset + take));
      position += take;
      chunkOffset += take;
      if (chunkOffset === chunk.length) {
        chunkIndex++;
        chunkOffset = 0;
      }
    }
    res.uncork();
    return end !== undefined && position > end;
  };
  if (pump() || object.state === 'complete') return res.end();
  if (object.state === 'aborted') return res.destroy();
  const unsubscribe = object.subscribe(
    guarded(res, logger, object.path, (event: ObjectEvent) => {
      if (event.type === 'data') {
        if (pump()) {
          unsubscribe();
          res.end();
        }
      } else if (event.type === 'end') {
        pump();
        res.end();
      } else res.destroy(); // an upload cut short must not look like a complete, short object
    }),
  );
  res.on('close', unsubscribe);
}

/** A pushed playlist is taken whole, then published once the media it names is here (PlaylistGate). */
function ingestPlaylist(
  req: IncomingMessage,
  res: ServerResponse,
  key: string,
  options: OriginHttpOptions,
  gate: PlaylistGate,
) {
  const pieces: Buffer[] = [];
  let received = 0;
  const guard = <A extends unknown[]>(handle: (...args: A) => void) => guarded(res, options.logger, key, handle);
  const progress = watchBodyProgress(req, options.limits ?? DEFAULT_LIMITS, options.logger, key);
  req.on(
    'data',
    guard((chunk: Buffer) => {
      received += chunk.length;
      if (received > options.maxBodyBytes) {
        fail(res, 413, `body larger than ${options.maxBodyBytes} bytes`, { Connection: 'close' });
        req.destroy();
      } else pieces.push(chunk);
    }),
  );
  req.on(
    'end',
    guard(() => {
      progress.done();
      if (received > options.maxBodyBytes) return;
      if (storeFull(options, key, received)) {
        options.logger.warn(
          { path: key, maxStoreBytes: options.maxStoreBytes },
          'origin: the store is full; upload refused',
        );
        return fail(res, 507, STORE_FULL);
      }
      const bytes = Buffer.concat(pieces);
      const problem = playlistProblem(bytes.toString('utf8'));
      if (problem) {
        options.logger.warn({ path: key, problem }, 'origin: refused an uploaded playlist');
        return fail(res, 400, `${key}: not a playlist this origin can serve (${problem})`);
      }
      const existed = options.store.get(key) !== undefined;
      gate.publish(key, bytes);
      res.writeHead(existed ? 204 : 201, { ...CORS, 'Cache-Control': 'no-store' });
      res.end();
    }),
  );
}

async function ingest(
  req: IncomingMessage,
  res: ServerResponse,
  key: string,
  options: OriginHttpOptions,
  gate: PlaylistGate,
) {
  const { store, maxBodyBytes, logger } = options;
  const declared = Number(req.headers['content-length'] ?? NaN);
  if (Number.isFinite(declared) && declared > maxBodyBytes)
    return refuseUnread(req, res, 413, `body larger than ${maxBodyBytes} bytes`);
  if (Number.isFinite(declared) && storeFull(options, key, declared)) return refuseUnread(req, res, 507, STORE_FULL);
  if (key.endsWith('.m3u8')) return ingestPlaylist(req, res, key, options, gate);
  const existing = store.get(key);
  const object = store.begin(key);
  let received = 0;
  let refused = false;
  // Drops this upload's object, and only it: a newer upload may already hold the path.
  const discard = () => {
    object.abort();
    if (store.get(key) === object) store.delete(key);
  };
  const guard = <A extends unknown[]>(handle: (...args: A) => void) => guarded(res, logger, key, handle);
  const progress = watchBodyProgress(req, options.limits ?? DEFAULT_LIMITS, logger, key);
  req.on(
    'data',
    guard((chunk: Buffer) => {
      // A newer upload of the same path replaced this one (a pusher's retry): its bytes are stale.
      if (refused || object.state !== 'growing') return;
      received += chunk.length;
      if (received > maxBodyBytes || storeFull(options, undefined, chunk.length)) {
        refused = true;
        discard();
        if (received > maxBodyBytes) fail(res, 413, `body larger than ${maxBodyBytes} bytes`, { Connection: 'close' });
        else {
          logger.warn({ path: key, maxStoreBytes: options.maxStoreBytes }, 'origin: the store is full; upload refused');
          fail(res, 507, STORE_FULL, { Connection: 'close' });
        }
        req.destroy();
        return;
      }
      object.append(new Uint8Array(chunk.buffer, chunk.byteOffset, chunk.length));
    }),
  );
  req.on(
    'end',
    guard(() => {
      progress.done();
      if (refused) return;
      if (object.state === 'aborted') return fail(res, 409, 'a newer upload of this path replaced this one');
      object.complete(store.now());
      const { kind, directory } = classifyObject(key);
      if (kind === 'init') store.markAudio(directory, handlerOf(object) === 'soun');
      const same = existing?.state === 'complete' && existing.etag === object.etag;
      const acknowledge = () => {
        res.writeHead(existing ? (same ? 200 : 204) : 201, {
          ...CORS,
          'Cache-Control': 'no-store',
          ...(same ? { 'Content-Length': 0 } : {}),
        });
        res.end();
      };
      const kept = options.onStored?.(object);
      if (!kept) return acknowledge();
      kept.then(guarded(res, logger, key, acknowledge), () =>
        fail(res, 500, `${key}: the origin could not keep this upload; send it again`),
      );
    }),
  );
  req.on(
    'close',
    guard(() => {
      if (object.state === 'growing') {
        logger.warn({ path: key, received }, 'origin: upload cut before its end');
        discard();
      }
    }),
  );
}

export function createOriginServer(options: OriginHttpOptions): Server {
  const { store, logger } = options;
  const gate = new PlaylistGate(store, {
    timeoutMs: options.playlistWaitMs ?? 1000,
    logger,
    onStored: options.onStored,
  });
  store.onListenerFault = (error, path) =>
    logger.error({ err: error, path }, 'origin: a reader or watcher of an object failed');
  const limits = options.limits ?? DEFAULT_LIMITS;
  const grants: TokenGrant[] = [
    ...(options.ingestToken ? [{ prefix: '', token: options.ingestToken }] : []),
    ...(options.ingestGrants ?? []),
  ];
  // No total request time (uploads stream for a segment, backfill and ingest requests for longer):
  // the headers have a deadline, and an upload's body must keep moving (watchBodyProgress).
  const server = createServer(
    {
      keepAliveTimeout: 65_000,
      requestTimeout: 0,
      headersTimeout: limits.headersTimeoutMs,
      connectionsCheckingInterval: Math.min(30_000, Math.max(250, limits.headersTimeoutMs / 4)),
    },
    (req, res) => guarded(res, logger, req.url, handle)(req, res),
  );
  limitConnections(server, limits, logger);
  // `Expect: 100-continue` gets its 100 only once the upload would be taken: a refused sender
  // never sends the body at all.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const key = storeKey((req.url ?? '/').split('?')[0]!);
    if (isUpload(req.method) && key && authorize(grants, req.headers.authorization, key) === 'ok') res.writeContinue();
    guarded(res, logger, req.url, handle)(req, res);
  });
  const handle = (req: IncomingMessage, res: ServerResponse): unknown => {
    res.setHeader('Date', new Date().toUTCString());
    // Pushers tell our origin (which serves segments while they arrive) from others by this.
    res.setHeader('Server', 'appliance');
    const url = new URL(req.url ?? '/', 'http://origin');
    const method = req.method ?? 'GET';
    if (method === 'OPTIONS') {
      res.writeHead(204, {
        ...CORS,
        'Access-Control-Allow-Methods': 'GET, HEAD, OPTIONS, PUT, POST, DELETE',
        'Access-Control-Allow-Headers': 'Range, Authorization, Content-Type, If-None-Match',
        'Access-Control-Max-Age': '86400',
      });
      return res.end();
    }
    if ((method === 'GET' || method === 'HEAD') && url.pathname === '/time') {
      res.writeHead(200, { ...CORS, 'Content-Type': 'text/plain; charset=utf-8', 'Cache-Control': 'no-store' });
      return res.end(new Date().toISOString());
    }
    if ((method === 'GET' || method === 'HEAD') && url.pathname === '/status' && options.status) {
      res.writeHead(200, { ...CORS, 'Content-Type': 'application/json', 'Cache-Control': 'no-store' });
      return res.end(method === 'HEAD' ? undefined : JSON.stringify(options.status()));
    }
    if ((method === 'GET' || method === 'HEAD') && url.pathname === '/favicon.ico') {
      res.writeHead(204, { ...CORS, 'Cache-Control': 'public, max-age=86400' });
      return res.end();
    }
    const asset = options.assets?.[url.pathname];
    if ((method === 'GET' || method === 'HEAD') && asset) {
      void readFile(asset).then(
        (bytes) => {
          res.writeHead(200, {
            ...CORS,
            'Content-Type': contentTypeFor(asset, false) ?? 'application/octet-stream',
            'Content-Length': bytes.length,
            'Cache-Control': 'public, max-age=3600',
          });
          res.end(method === 'HEAD' ? undefined : bytes);
        },
        () => fail(res, 404, 'not found'),
      );
      return;
    }
    if ((method === 'GET' || method === 'HEAD') && url.pathname === '/') {
      res.writeHead(200, {
        ...CORS,
        'Content-Type': contentTypeFor('index.html', false)!,
        'Cache-Control': 'no-cache',
      });
      return res.end(method === 'HEAD' ? undefined : options.index());
    }
    // The raw path: URL parsing would quietly resolve "/../" before anyone could refuse it.
    const key = storeKey((req.url ?? '/').split('?')[0]!);
    if (!key) return isUpload(method) ? refuseUnread(req, res, 400, 'bad path') : fail(res, 400, 'bad path');
    if ((method === 'GET' || method === 'HEAD') && key.endsWith('.m3u8') && hasDirectives(url.searchParams)) {
      return answerPlaylist(req, res, key, url.searchParams, store, (error) => internalError(res, logger, key, error));
    }
    if (method === 'GET' || method === 'HEAD') {
      void store.lookup(key).then(
        guarded(res, logger, key, (object: StoredObject | undefined) =>
          object ? serve(req, res, object, store.contentTypeOf(key), logger) : fail(res, 404, 'not found'),
        ),
        (error: unknown) => internalError(res, logger, key, error),
      );
      return;
    }
    if (method === 'PUT' || method === 'POST' || method === 'DELETE') {
      if (!grants.length)
        return refuseUnread(req, res, 405, 'this server does not accept uploads', { Allow: 'GET, HEAD, OPTIONS' });
      const auth = authorize(grants, req.headers.authorization, key);
      if (auth === 'missing')
        return refuseUnread(req, res, 401, 'an ingest token is required', {
          'WWW-Authenticate': 'Bearer realm="appliance origin"',
        });
      if (auth === 'wrong') return refuseUnread(req, res, 403, 'wrong ingest token');
      if (auth === 'outside') return refuseUnread(req, res, 403, `this ingest token may not write ${key}`);
      if (method === 'DELETE') {
        if (!store.delete(key)) return fail(res, 404, 'not found');
        options.onDeleted?.(key);
        res.writeHead(204, CORS);
        return res.end();
      }
      const cmaf = options.cmafIngest && cmafIngestTarget(key, req.headers['dash-if-ingest'] !== undefined);
      if (cmaf) return void options.cmafIngest!.receive(req, res, cmaf, key);
      // What the origin packages from CMAF ingest is its own: an upload there would fight it.
      if (options.cmafIngest?.packages(key))
        return refuseUnread(
          req,
          res,
          409,
          `${key}: this stream is packaged here from CMAF ingest; its objects take no upload`,
        );
      return void ingest(req, res, key, options, gate);
    }
    fail(res, 405, `method ${method} not allowed`, { Allow: 'GET, HEAD, OPTIONS, PUT, POST, DELETE' });
  };
  // Chunks must leave at once: Nagle's algorithm would hold small writes for the peer's delayed ACK.
  server.on('connection', (socket) => socket.setNoDelay(true));
  server.on('close', () => gate.close());
  server.on('clientError', (error, socket) => {
    logger.debug({ err: error }, 'origin: bad request');
    socket.destroy();
  });
  return server;
}
