import type { Readable } from 'node:stream';
import { Client } from './http-client.ts';
import { tlsConnectOptions } from './client-certificate.ts';
import { UploadAbandoned, UploadBody } from './upload-body.ts';
import { outcomeOfError, outcomeOfStatus, type UploadOutcome } from './upload-outcome.ts';

export interface LaneOptions {
  /** Trusted CAs for https origins (undefined: Node's defaults). */
  ca: string[] | undefined;
  /**
   * A TLS client certificate and the one origin it is presented to: a redirect to another origin
   * connects without it (it proves who the encoder is; a host it was not configured for gets no such proof).
   */
  clientCertificate?: { cert: string; key: string; origin: string } | undefined;
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
  /** The start of a refusal's body (4xx): the origin's reason, for the log. */
  answer?: string | undefined;
}

/** How much of a refusal's body is kept for the log: a reason, not a page. */
const ANSWER_BYTES = 300;

const now = () => performance.timeOrigin + performance.now();

/**
 * One keep-alive HTTP/1.1 connection (an undici Client, Nagle off) to the origin that carries
 * one request at a time. After a failure the lane is reset: the connection is destroyed and the
 * next request opens a fresh one (which also resolves the host name again).
 */
export class Lane {
  readonly #options: LaneOptions;
  readonly #clients = new Map<string, Client>();
  /**
   * Headers (init segments, by path) the current connection carried. Forgotten whenever that
   * connection ends, whoever ends it: a failure (reset), the origin closing an idle connection or
   * answering `Connection: close` (a server's request limit per connection). CMAF ingest sends
   * the header again first on the next one.
   */
  readonly initsSent = new Set<string>();
  readonly #watches = new Set<Watch>();
  #watchdog: NodeJS.Timeout | undefined;

  constructor(options: LaneOptions) {
    this.#options = options;
  }

  #client(origin: string): Client {
    let client = this.#clients.get(origin);
    if (!client) {
      client = new Client(origin, {
        connect: {
          timeout: this.#options.connectMs,
          ...tlsConnectOptions(
            origin,
            this.#options.ca,
            this.#options.clientCertificate?.origin === origin ? this.#options.clientCertificate : undefined,
          ),
        },
        pipelining: this.#options.pipelining ?? 1,
        // An upload's answer comes only after its body, which streams for a whole segment:
        // the stall watchdog below times uploads instead.
        headersTimeout: 0,
        bodyTimeout: this.#options.stallMs,
        keepAliveTimeout: 30_000,
      });
      const opened = client;
      // A connection that ends between requests (an idle timeout at the origin) is reopened by undici
      // unasked: what it carried is forgotten (not for a client already replaced by a reset).
      client.on('disconnect', () => {
        if (this.#clients.get(origin) === opened) this.initsSent.clear();
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
    clearTimeout(this.#watchdog);
    this.#watchdog = undefined;
    const clients = [...this.#clients.values()];
    this.#clients.clear();
    await Promise.all(clients.map((c) => c.destroy().catch(() => undefined)));
  }

  /** Sends one request and reports what came of it; never throws. */
  async send(request: UploadRequest): Promise<UploadResult> {
    const { body } = request;
    const streaming = body instanceof UploadBody;
    // Only a streamed body has a reader to stop; a whole body's request is stopped through its
    // dispatch controller.
    const reading = streaming ? new AbortController() : undefined;
    let dispatched: { abort(reason: Error): void } | undefined;
    let abortedWith: Error | undefined;
    const watch: Watch = {
      waitingSince: undefined,
      bodySentAt: undefined,
      stalled: undefined,
      abort: (why) => {
        watch.stalled = why;
        abortedWith = new Error(why);
        dispatched?.abort(abortedWith);
        reading?.abort(abortedWith);
      },
    };
    if (streaming && request.wholeBody) await body.whenComplete();
    const chunks =
      streaming && reading
        ? body.read(reading.signal, (waiting) => (watch.waitingSince = waiting ? now() : undefined))
        : undefined;
    const onChunk = request.onChunk;
    const counted =
      chunks &&
      (async function* () {
        for await (const chunk of chunks) {
          onChunk?.(chunk);
          yield chunk;
        }
        watch.bodySentAt = now();
      })();
    if (!streaming) watch.bodySentAt = now();
    this.#watch(watch);
    try {
      const headers =
        streaming && request.wholeBody ? { ...request.headers, 'content-length': String(body.bytes) } : request.headers;
      // dispatch with a handler of our own, not request(): no response stream, async resource or
      // abort-signal wiring for an answer that is a status and two headers, tens of times a second.
      const answer = await new Promise<{ status: number; headers: ResponseHeaders; text: string }>(
        (resolve, reject) => {
          let status = 0;
          let responseHeaders: ResponseHeaders = {};
          // Only a refusal's body is kept (most answers have none): nothing is allocated for the rest.
          let refusal: Buffer[] | undefined;
          let kept = 0;
          this.#client(request.url.origin).dispatch(
            {
              path: request.url.pathname + request.url.search,
              method: request.method,
              headers,
              // undici takes an async iterable body as it takes a stream (its types name only Readable).
              body: (counted ?? body ?? null) as Readable | Uint8Array | null,
            },
            {
              onRequestStart: (controller) => {
                dispatched = controller;
                if (abortedWith) controller.abort(abortedWith);
              },
              onResponseStart: (_controller, statusCode, received) => {
                // 1xx answers (100 Continue) come before the one that counts.
                if (statusCode < 200) return;
                status = statusCode;
                responseHeaders = received as ResponseHeaders;
              },
              onResponseData: (_controller, data) => {
                if (status < 400 || status >= 500 || kept >= ANSWER_BYTES) return;
                refusal ??= [];
                refusal.push(Buffer.from(data.subarray(0, ANSWER_BYTES - kept)));
                kept += Math.min(data.length, ANSWER_BYTES - kept);
              },
              onResponseEnd: () =>
                resolve({
                  status,
                  headers: responseHeaders,
                  text: refusal ? Buffer.concat(refusal).toString('utf8') : '',
                }),
              onResponseError: (_controller, error) => reject(error),
            },
          );
        },
      );
      const location = answer.headers['location'];
      if (/\bclose\b/i.test(String(answer.headers['connection'] ?? ''))) this.initsSent.clear();
      return {
        outcome: outcomeOfStatus(answer.status, Array.isArray(location) ? location[0] : location),
        server: [answer.headers['server']].flat()[0],
        // Printable text only: what an origin answers goes into the log as one field.
        ...(answer.text ? { answer: answer.text.replace(/[^\x20-\x7e]+/g, ' ').trim() } : {}),
      };
    } catch (error) {
      if (error instanceof UploadAbandoned)
        return { outcome: { kind: 'retry', reason: error.message }, server: undefined };
      return {
        outcome: watch.stalled ? { kind: 'retry', reason: watch.stalled } : outcomeOfError(error),
        server: undefined,
      };
    } finally {
      this.#watches.delete(watch);
      // A body still being read stops; a reason of our own, because abort() without one builds a
      // DOMException (with its stack).
      if (reading && !reading.signal.aborted) reading.abort(REQUEST_ENDED);
    }
  }

  /**
   * One timer per lane watches every request in flight on it (several when pipelined), re-armed
   * while any is: not a timer made and cleared per request, tens of times a second.
   */
  #watch(watch: Watch): void {
    this.#watches.add(watch);
    if (!this.#watchdog) {
      this.#watchdog = setTimeout(() => this.#check(), Math.min(250, this.#options.stallMs / 4));
      this.#watchdog.unref();
    } else if (this.#watches.size === 1) this.#watchdog.refresh();
  }

  #check(): void {
    const t = now();
    const stallMs = this.#options.stallMs;
    for (const watch of this.#watches) {
      if (watch.stalled) continue;
      if (watch.waitingSince !== undefined && t - watch.waitingSince > stallMs)
        watch.abort(`the origin took no data for ${stallMs} ms`);
      else if (watch.bodySentAt !== undefined && t - watch.bodySentAt > stallMs)
        watch.abort(`no answer ${stallMs} ms after the body`);
    }
    if (this.#watches.size) this.#watchdog?.refresh();
  }
}

type ResponseHeaders = Record<string, string | string[] | undefined>;

interface Watch {
  /** The body is waiting for the connection (backpressure) since then. */
  waitingSince: number | undefined;
  /** The whole body went; the answer is awaited since then. */
  bodySentAt: number | undefined;
  stalled: string | undefined;
  abort(why: string): void;
}

const REQUEST_ENDED = new UploadAbandoned('request ended');
