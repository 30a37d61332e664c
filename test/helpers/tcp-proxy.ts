import { connect, createServer, type AddressInfo, type Socket } from 'node:net';

export interface TcpProxy {
  port: number;
  /** With `adjustable`: the client's bytes per ms from now on (undefined: unthrottled). */
  setRate(bytesPerMs: number | undefined): void;
  close(): Promise<void>;
}

/**
 * A TCP proxy on 127.0.0.1 in front of `targetPort` that delays every byte by `delayMs` each way
 * (a path with twice that RTT) or lets the client's bytes through at only `bytesPerMs` (a slow
 * origin; the client is paused meanwhile, so backpressure reaches it as it would over a real link).
 */
export async function startTcpProxy(
  targetPort: number,
  options: { delayMs?: number; bytesPerMs?: number; adjustable?: boolean },
): Promise<TcpProxy> {
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const later = (ms: number, fn: () => void) => {
    if (!ms) return fn();
    const timer = setTimeout(() => {
      timers.delete(timer);
      fn();
    }, ms);
    timers.add(timer);
  };
  // `adjustable`: the client's bytes always pass the throttle, at whatever setRate last said (undefined: at once).
  const pipe = (from: Socket, to: Socket, throttle: number | undefined, adjustable = false) => {
    const delay = options.delayMs ?? 0;
    if (!throttle && !adjustable) {
      from.on('data', (data) => later(delay, () => to.destroyed || to.write(data)));
    } else {
      let queue = Buffer.alloc(0);
      const tick = setInterval(() => {
        if (!queue.length) return;
        const slice = queue.subarray(0, (adjustable ? (options.bytesPerMs ?? Infinity) : throttle!) * 10);
        queue = queue.subarray(slice.length);
        if (!to.destroyed) to.write(slice);
        if (!queue.length) from.resume();
      }, 10);
      from.on('close', () => clearInterval(tick));
      from.on('data', (data) => {
        queue = Buffer.concat([queue, data]);
        from.pause();
      });
    }
    from.on('close', () => later(delay, () => to.destroy()));
    from.on('error', () => undefined);
  };
  const server = createServer((client) => {
    const upstream = connect(targetPort, '127.0.0.1');
    for (const s of [client, upstream]) {
      s.setNoDelay(true);
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
    }
    pipe(client, upstream, options.bytesPerMs, options.adjustable);
    pipe(upstream, client, undefined);
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    port: (server.address() as AddressInfo).port,
    setRate: (bytesPerMs) => {
      options.bytesPerMs = bytesPerMs;
    },
    close: async () => {
      for (const timer of timers) clearTimeout(timer);
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
