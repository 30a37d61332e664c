import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import {
  deltaPlaylist,
  namedPieces,
  parseBlockingQuery,
  parsePlaylist,
  satisfies,
  tooFarAhead,
  type PlaylistState,
} from './hls-requests.ts';
import type { ObjectStore, StoredObject } from './store.ts';
import { CORS } from './cors.ts';
import { HLS_CONTENT_TYPE } from '../packager/hls-playlist.ts';

/** Whether a playlist request carries LL-HLS delivery directives. */
export const hasDirectives = (query: URLSearchParams) =>
  query.has('_HLS_msn') || query.has('_HLS_part') || query.has('_HLS_skip');

const parsed = new WeakMap<StoredObject, { text: string; state: PlaylistState | undefined }>();

function playlistOf(object: StoredObject): { text: string; state: PlaylistState | undefined } {
  let entry = parsed.get(object);
  if (!entry) {
    const text = Buffer.concat(object.chunks).toString('utf8');
    entry = { text, state: parsePlaylist(text) };
    parsed.set(object, entry);
  }
  return entry;
}

function reply(res: ServerResponse, status: number, body: string, contentType = 'text/plain; charset=utf-8') {
  res.writeHead(status, {
    ...CORS,
    'Content-Type': contentType,
    'Cache-Control': 'no-cache',
    'Content-Length': Buffer.byteLength(body),
  });
  res.end(body);
}

/**
 * A playlist request with `_HLS_msn`/`_HLS_part`/`_HLS_skip` (RFC 8216bis §6.2.5): held until the
 * playlist holds that segment or part (at most 3 target durations, then 503), answered at once for
 * a position in the past or an ended stream, 400 when it asks too far ahead or without `_HLS_msn`;
 * `_HLS_skip` gets the delta update. Every answer is `no-cache`.
 */
export function answerPlaylist(
  req: IncomingMessage,
  res: ServerResponse,
  key: string,
  query: URLSearchParams,
  store: ObjectStore,
  onFault: (error: unknown) => void,
): void {
  const request = parseBlockingQuery(query);
  if ('error' in request) {
    reply(res, 400, `${request.error}\n`);
    return;
  }
  const started = Date.now();
  let stopWatching: (() => void) | undefined;
  let timer: NodeJS.Timeout | undefined;
  const finish = () => {
    stopWatching?.();
    clearTimeout(timer);
  };
  const attempt = (): boolean => {
    const object = store.get(key);
    if (!object) {
      finish();
      reply(res, 404, 'not found\n');
      return true;
    }
    if (object.state !== 'complete') return false;
    const { text, state } = playlistOf(object);
    if (state && request.msn !== undefined && !satisfies(state, request.msn, request.part)) {
      if (!tooFarAhead(state, request.msn, request.part)) {
        timer ??= setTimeout(
          () => {
            finish();
            if (!res.headersSent)
              reply(
                res,
                503,
                `segment ${request.msn} part ${request.part ?? '-'} did not arrive within 3 target durations\n`,
              );
          },
          Math.max(0, 3 * state.targetDuration * 1000 - (Date.now() - started)),
        );
        return false;
      }
      finish();
      reply(res, 400, `segment ${request.msn} part ${request.part ?? '-'} is too far ahead of this playlist\n`);
      return true;
    }
    finish();
    const body = request.skip ? deltaPlaylist(text, request.skip) : text;
    reply(res, 200, req.method === 'HEAD' ? '' : body, HLS_CONTENT_TYPE);
    return true;
  };
  if (attempt()) return;
  stopWatching = store.watch(key, () => {
    try {
      attempt();
    } catch (error) {
      finish();
      onFault(error);
    }
  });
  res.on('close', finish);
}

/**
 * Pushed playlists are served only once the media they name is at the origin: a playlist whose
 * parts (byte ranges, part files) or newest segments have not all arrived waits for them, for at
 * most `timeoutMs`; a newer upload of the same playlist replaces a waiting one.
 */
export class PlaylistGate {
  readonly #store: ObjectStore;
  readonly #timeoutMs: number;
  readonly #logger: Logger;
  readonly #waiting = new Map<string, () => void>();
  /** Since when each playlist held has been waiting: a newer upload of it does not restart the wait. */
  readonly #waitingSince = new Map<string, number>();
  readonly #onStored: ((object: StoredObject) => void | Promise<void>) | undefined;

  constructor(
    store: ObjectStore,
    options: {
      timeoutMs: number;
      logger: Logger;
      onStored?: ((object: StoredObject) => void | Promise<void>) | undefined;
    },
  ) {
    this.#store = store;
    this.#timeoutMs = options.timeoutMs;
    this.#logger = options.logger;
    this.#onStored = options.onStored;
  }

  #put(key: string, bytes: Uint8Array): void {
    this.#waitingSince.delete(key);
    const object = this.#store.put(key, bytes);
    // The uploader had its answer when the playlist arrived; a failed write is logged where it failed.
    void this.#onStored?.(object)?.catch(() => undefined);
  }

  /** Stores the playlist now, or once what it names is there. */
  publish(key: string, bytes: Uint8Array): void {
    this.#waiting.get(key)?.();
    const directory = key.includes('/') ? key.slice(0, key.lastIndexOf('/') + 1) : '';
    const pieces = namedPieces(Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('utf8')).map(
      (p) => ({ path: directory + p.uri, end: p.end }),
    );
    const missing = () =>
      pieces.filter((p) => {
        const object = this.#store.get(p.path);
        return !object || (p.end === undefined ? object.state !== 'complete' : object.length < p.end);
      });
    let waitingFor = missing();
    if (!waitingFor.length) {
      this.#put(key, bytes);
      return;
    }
    // An uploader that sends a newer version more often than the wait lasts still gets it served.
    const started = this.#waitingSince.get(key) ?? Date.now();
    this.#waitingSince.set(key, started);
    let unwatch: (() => void)[] = [];
    const cancel = () => {
      for (const stop of unwatch) stop();
      clearTimeout(timer);
      if (this.#waiting.get(key) === cancel) this.#waiting.delete(key);
    };
    const check = () => {
      waitingFor = missing();
      if (waitingFor.length) return;
      cancel();
      this.#put(key, bytes);
    };
    const timer = setTimeout(
      () => {
        cancel();
        this.#logger.warn(
          { path: key, missing: waitingFor.map((p) => p.path), waitedMs: Date.now() - started },
          'origin: a playlist names media that has not arrived; serving it anyway',
        );
        this.#put(key, bytes);
      },
      Math.max(0, started + this.#timeoutMs - Date.now()),
    );
    unwatch = pieces.map((p) => this.#store.watch(p.path, check));
    this.#waiting.set(key, cancel);
  }

  close(): void {
    for (const cancel of [...this.#waiting.values()]) cancel();
    this.#waitingSince.clear();
  }
}
