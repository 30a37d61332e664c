import { createHash } from 'node:crypto';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { pino } from 'pino';
import { listen } from '../../src/listen.ts';
import { createOriginServer } from '../../src/origin/http.ts';
import { ObjectStore } from '../../src/origin/store.ts';
import { TopLevelBoxSplitter, joined } from '../../src/packager/boxes.ts';
import { parseMoof, parseMoov } from '../../src/packager/fmp4.ts';

/** One request the origin received, timed as its bytes arrived. */
export interface UploadRecord {
  method: string;
  path: string;
  headers: IncomingMessage['headers'];
  startedAt: number;
  endedAt: number | undefined;
  status: number | undefined;
  bytes: number;
  /** Arrival time and size of every piece of the body. */
  pieces: { at: number; bytes: number }[];
  /** Per CMAF chunk (moof + mdat): when its last byte arrived and when its media ends (ms since the epoch). */
  chunks: { at: number; mediaEndMs: number }[];
}

export interface TestOrigin {
  base: string;
  port: number;
  store: ObjectStore;
  uploads: UploadRecord[];
  /** Answer requests yourself while this returns true (faults); undefined: the real origin. */
  fault: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  /** Closes the listening socket and every connection: the origin is down. */
  down(): Promise<void>;
  /** Listens again on the same port. */
  up(): Promise<void>;
  close(): Promise<void>;
  /** SHA-256 of a complete stored object. */
  hash(path: string): string | undefined;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * The project's origin, in this process, with every upload recorded as it arrives: what the
 * push tests judge the appliance by ("measured at the origin, not at write()").
 */
export async function startTestOrigin(
  options: { token?: string; tsb?: number; port?: number } = {},
): Promise<TestOrigin> {
  const store = new ObjectStore({ timeShiftBufferDepth: options.tsb ?? 60, holdMs: 1000 });
  const server: Server = createOriginServer({
    store,
    ingestToken: options.token ?? 'test-token',
    maxBodyBytes: 64_000_000,
    logger: pino({ level: 'silent' }),
    index: () => '',
  });
  const handler = server.listeners('request')[0] as (req: IncomingMessage, res: ServerResponse) => void;
  server.removeAllListeners('request');
  const timescales = new Map<string, number>();
  const sockets = new Set<Socket>();
  server.on('connection', (socket: Socket) => {
    sockets.add(socket);
    socket.on('close', () => sockets.delete(socket));
  });
  const origin: TestOrigin = {
    base: '',
    port: 0,
    store,
    uploads: [],
    fault: undefined,
    down: async () => {
      const closed = new Promise((resolve) => server.close(resolve));
      for (const socket of sockets) socket.destroy();
      await closed;
    },
    up: async () => {
      await listen(server, '127.0.0.1', origin.port);
    },
    close: async () => {
      if (server.listening) await origin.down();
    },
    hash: (path) => {
      const object = store.get(path);
      if (object?.state !== 'complete') return undefined;
      const hash = createHash('sha256');
      for (const chunk of object.chunks) hash.update(chunk);
      return hash.digest('hex');
    },
  };
  server.on('request', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?')[0]!.slice(1);
    const record: UploadRecord = {
      method: req.method ?? '',
      path,
      headers: req.headers,
      startedAt: now(),
      endedAt: undefined,
      status: undefined,
      bytes: 0,
      pieces: [],
      chunks: [],
    };
    if (req.method === 'PUT' || req.method === 'POST') {
      origin.uploads.push(record);
      const splitter = new TopLevelBoxSplitter();
      // Our names are <track>/<n>.m4s; ffmpeg's dash muxer puts the stream in the file name.
      const track = /stream(\d+)/.exec(path)?.[0] ?? path.split('/').slice(-2, -1)[0] ?? '';
      let pendingMoof: Uint8Array | undefined;
      req.on('data', (piece: Buffer) => {
        const at = now();
        record.pieces.push({ at, bytes: piece.length });
        record.bytes += piece.length;
        for (const box of splitter.push(new Uint8Array(piece))) {
          if (box.type === 'moov') {
            const moov = joined(box).subarray(box.headerSize);
            const timescale = parseMoov(moov)[0]?.timescale;
            if (timescale) timescales.set(track, timescale);
          } else if (box.type === 'moof') pendingMoof = joined(box).subarray(box.headerSize);
          else if (box.type === 'mdat' && pendingMoof) {
            const traf = parseMoof(pendingMoof, new Map()).tracks[0]!;
            const end = traf.baseDecodeTime + BigInt(traf.samples.reduce((sum, s) => sum + s.duration, 0));
            const timescale = timescales.get(track) ?? 90000;
            record.chunks.push({ at, mediaEndMs: Number((end * 1000n) / BigInt(timescale)) });
            pendingMoof = undefined;
          }
        }
      });
      req.on('end', () => (record.endedAt = now()));
    }
    res.on('finish', () => (record.status = res.statusCode));
    if (origin.fault?.(req, res)) return;
    handler(req, res);
  });
  const address: AddressInfo = await listen(server, '127.0.0.1', options.port ?? 0);
  origin.port = address.port;
  origin.base = `http://127.0.0.1:${address.port}`;
  return origin;
}

/** Nearest-rank quantile. */
export function quantile(values: readonly number[], q: number): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? NaN;
}

/**
 * Playlist lag at the origin: for every part a version of `playlistPath` names for the first time,
 * how long after the part's last byte arrived that version became available. Call the returned
 * function at the end for the lags (ms).
 */
export function recordPlaylistLag(origin: TestOrigin, playlistPath: string): () => number[] {
  const versions: { at: number; parts: { uri: string; end: number }[] }[] = [];
  const seen = new WeakSet<object>();
  const directory = playlistPath.slice(0, playlistPath.lastIndexOf('/') + 1);
  origin.store.watch(playlistPath, () => {
    const object = origin.store.get(playlistPath);
    if (object?.state !== 'complete' || seen.has(object)) return;
    seen.add(object);
    const text = Buffer.concat(object.chunks).toString('utf8');
    const parts = [...text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]+)",BYTERANGE="(\d+)@(\d+)"/g)].map((m) => ({
      uri: directory + m[1]!,
      end: Number(m[2]) + Number(m[3]),
    }));
    versions.push({ at: now(), parts });
  });
  const arrival = (path: string, end: number) => {
    let earliest = Infinity;
    for (const upload of origin.uploads.filter((u) => u.path === path)) {
      let received = 0;
      for (const piece of upload.pieces) {
        received += piece.bytes;
        if (received >= end) {
          earliest = Math.min(earliest, piece.at);
          break;
        }
      }
    }
    return earliest;
  };
  return () => {
    const named = new Set<string>();
    const lags: number[] = [];
    for (const version of versions) {
      for (const part of version.parts) {
        const key = `${part.uri}@${part.end}`;
        if (named.has(key)) continue;
        named.add(key);
        const at = arrival(part.uri, part.end);
        if (Number.isFinite(at)) lags.push(version.at - at);
      }
    }
    return lags;
  };
}
