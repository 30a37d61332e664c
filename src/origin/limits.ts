import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { RepeatLimiter, type Logger } from '../log.ts';
import { CORS } from './cors.ts';

/** How long a client may take over what; see the README's Security section. */
export interface OriginLimits {
  /** From a connection's first byte (or the end of the previous request) to the end of the request's headers. */
  headersTimeoutMs: number;
  /** An upload whose body brings no byte for this long is cut. Never a total request time: uploads stream for a whole segment, backfill longer. */
  bodyIdleMs: number;
  /** Open connections from one client address; more are closed at once. */
  connectionsPerClient: number;
}

/**
 * One appliance opens about three connections per track plus three; tests run two appliances and
 * a browser from one address: 128 leaves room for all of them and still bounds one client.
 */
export const DEFAULT_LIMITS: OriginLimits = { headersTimeoutMs: 10_000, bodyIdleMs: 30_000, connectionsPerClient: 128 };

/** Closes connections past the per-address limit as they open. */
export function limitConnections(server: Server, limits: OriginLimits, logger: Logger): void {
  const open = new Map<string, number>();
  const warnings = new RepeatLimiter(10_000);
  server.on('connection', (socket: Socket) => {
    const address = socket.remoteAddress ?? 'unknown';
    const count = open.get(address) ?? 0;
    if (count >= limits.connectionsPerClient) {
      if (warnings.admit(address, Date.now()).log)
        logger.warn(
          { client: address, limit: limits.connectionsPerClient },
          'origin: a client opened more connections than allowed; closing the extra ones',
        );
      socket.destroy();
      return;
    }
    open.set(address, count + 1);
    socket.once('close', () => {
      const left = (open.get(address) ?? 1) - 1;
      if (left > 0) open.set(address, left);
      else open.delete(address);
    });
  });
}

/**
 * Cuts an upload whose body stops arriving; `done()` once the body ended (also called when the
 * request closes). The idle listener leaves the socket with the request: a keep-alive connection
 * carries one upload after another (a pusher's track, for hours), and a listener left behind per
 * upload would keep every request it ever carried alive.
 */
export function watchBodyProgress(
  req: IncomingMessage,
  limits: OriginLimits,
  logger: Logger,
  path: string,
): { done(): void } {
  const socket = req.socket;
  let finished = false;
  const onIdle = () => {
    if (finished) return;
    logger.warn({ path, idleMs: limits.bodyIdleMs }, 'origin: an upload brought no byte for too long; cut');
    req.destroy();
  };
  socket.setTimeout(limits.bodyIdleMs);
  socket.on('timeout', onIdle);
  const done = () => {
    if (finished) return;
    finished = true;
    socket.off('timeout', onIdle);
    // The server sets its keep-alive timeout on the socket once the answer is sent.
    socket.setTimeout(0);
  };
  req.once('close', done);
  return { done };
}

/**
 * Refuses an upload on its headers alone, without reading one byte more of its body (Node would
 * otherwise drain it to reach the next request: gigabytes, if the sender wishes). The connection
 * stops being read and is half-closed after the answer, then destroyed a moment later: destroying
 * it at once, with the body unread, would reset it and could take the answer with it.
 */
export function refuseUnread(
  req: IncomingMessage,
  res: ServerResponse,
  status: number,
  message: string,
  headers: Record<string, string> = {},
): void {
  const socket = req.socket;
  // `Connection: close` tells the client not to reuse the connection; Node answers it by
  // destroying the socket right after the answer (destroySoon), which with the body unread is a
  // reset. This socket half-closes instead, and is destroyed after the linger.
  socket.destroySoon = () => socket.end();
  res.writeHead(status, {
    ...CORS,
    'Content-Type': 'text/plain; charset=utf-8',
    'Cache-Control': 'no-store',
    ...headers,
    Connection: 'close',
  });
  res.end(`${message}\n`);
  res.once('finish', () => {
    socket.pause();
    socket.end();
    setTimeout(() => socket.destroy(), REFUSED_LINGER_MS).unref();
  });
}

/** How long a refused upload's connection stays half-closed for its answer to be read. */
const REFUSED_LINGER_MS = 1000;
