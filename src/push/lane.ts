import type { Readable } from 'node:stream';
import { Client } from 'undici';
import { UploadAbandoned, UploadBody } from './upload-body.ts';
import { outcomeOfError, outcomeOfStatus, type UploadOutcome } from './upload-outcome.ts';

export interface LaneOptions {
  /** Trusted CAs for https origins (undefined: Node's defaults). */
  ca: string[] | undefined;
  /** TCP (and TLS) connect timeout. */
  connectMs: number;
  /** An upload whose connection takes no data for this long, or whose answer takes this long, is cut. */
  stallMs: number;
  /** Requests in flight at once on the connection (1: one at a time). */
  pipelining?: number;
}

export interface UploadRequest {
  url: URL;
  method: 'PUT' | 'POST' | 'DELETE';
  headers: Record<string, string>;
  /** A growing body streams (chunked); bytes, or any body with `wholeBody`, go with Content-Length. */
  body?: UploadBody | Uint8Array | undefined;
  wholeBody?: boolean;
  /** Each chunk as it is handed to the connection. */
  onChunk?: ((chunk: Uint8Array) => void) | undefined;
}

export interface UploadResult {
  outcome: UploadOutcome;
  /** The origin's Server header, to tell our origin from others. */
  server: string | undefined;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * One keep-alive HTTP/1.1 connection (an undici Client, Nagle off) to the origin that carries
 * one request at a time. After a failure the lane is reset: the connection is destroyed and the
 * next request opens a fresh one (which also resolves the host name again).
 */
export class Lane {
  readonly #options: LaneOptions;
  readonly #clients = new Map<string, Client>();
  /** Tracks whose init segment went over the current connection(s). */
  readonly initsSent = new Set<string>();

  constructor(options: LaneOptions) {
    this.#options = options;
  }

  #client(origin: string): Client {
    let client = this.#clients.get(origin);
    if (!client) {
      client = new Client(origin, {
        connect: { timeout: this.#options.connectMs, ...(this.#options.ca ? { ca: this.#options.ca } : {}) },
        pipelining: this.#options.pipelining ?? 1,
        // An upload's answer comes only after its body, which streams for a whole segment:
        // the stall watchdog below times uploads instead.
        headersTimeout: 0,
        bodyTimeout: this.#options.stallMs,
        keepAliveTimeout: 30_000,
      });
      this.#clients.set(origin, client);
    }
    return client;
  }

  reset(): void {
    for (const client of this.#clients.values()) void client.destroy().catch(() => undefined);
    this.#clients.clear();
    this.initsSent.clear();
  }

  async close(): Promise<void> {
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.destroy().catch(() => undefined)));
  }

  /** Sends one request and reports what came of it; never throws. */
  async send(request: UploadRequest): Promise<UploadResult> {
    const controller = new AbortController();
    let stalled: string | undefined;
    let waitingSince: number | undefined;
    let bodySentAt: number | undefined;
    const { body } = request;
    const streaming = body instanceof UploadBody;
    if (streaming && request.wholeBody) await body.whenComplete();
    const chunks = streaming
      ? body.read(controller.signal, (waiting) => (waitingSince = waiting ? now() : undefined))
      : undefined;
    const onChunk = request.onChunk;
    const counted =
      chunks &&
      (async function* () {
        for await (const chunk of chunks) {
          onChunk?.(chunk);
          yield chunk;
        }
        bodySentAt = now();
      })();
    if (!streaming) bodySentAt = now();
    const watchdog = setInterval(
      () => {
        const t = now();
        if (waitingSince !== undefined && t - waitingSince > this.#options.stallMs)
          stalled = `the origin took no data for ${this.#options.stallMs} ms`;
        else if (bodySentAt !== undefined && t - bodySentAt > this.#options.stallMs)
          stalled = `no answer ${this.#options.stallMs} ms after the body`;
        if (stalled) controller.abort();
      },
      Math.min(250, this.#options.stallMs / 4),
    );
    try {
      const headers = { ...request.headers };
      if (streaming && request.wholeBody) headers['content-length'] = String(body.bytes);
      const response = await this.#client(request.url.origin).request({
        path: request.url.pathname + request.url.search,
        method: request.method,
        headers,
        body: (counted ?? body ?? null) as Readable | Uint8Array | null,
        signal: controller.signal,
      });
      await response.body.dump();
      const location = response.headers['location'];
      return {
        outcome: outcomeOfStatus(response.statusCode, Array.isArray(location) ? location[0] : location),
        server: [response.headers['server']].flat()[0],
      };
    } catch (error) {
      if (error instanceof UploadAbandoned)
        return { outcome: { kind: 'retry', reason: error.message }, server: undefined };
      return { outcome: stalled ? { kind: 'retry', reason: stalled } : outcomeOfError(error), server: undefined };
    } finally {
      clearInterval(watchdog);
      if (!controller.signal.aborted) controller.abort();
    }
  }
}
