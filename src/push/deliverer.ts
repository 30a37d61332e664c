import { redactSecrets } from '../encode/ffmpeg-log.ts';
import type { Logger } from '../log.ts';
import type { Lane } from './lane.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';
import type { Delivery, PushEvent, SegmentUpload } from './push-types.ts';
import { UploadBody } from './upload-body.ts';
import {
  CREDENTIAL_ATTEMPTS,
  credentialDelayMs,
  isCertificateProblem,
  MAX_REDIRECTS,
  safeUrl,
  type UploadOutcome,
} from './upload-outcome.ts';

export type { Delivery } from './push-types.ts';

/** One object to send. */
export interface DeliveryRequest {
  lane: Lane;
  /** The stream of requests it belongs to (a track's id, `manifest`, `playlist`, `delete`): a failure streak is warned once per stream. */
  stream: string;
  /** Next to the manifest's URL. */
  path: string;
  /** A segment's upload: its redirect and progress are kept on it across attempts. */
  upload?: SegmentUpload | undefined;
  body?: UploadBody | Uint8Array | undefined;
  contentType: string;
  /** The output's method (PUT or POST) unless given. */
  method?: 'PUT' | 'POST' | 'DELETE' | undefined;
}

export interface DelivererContext {
  /** The output, for logs. */
  name: string;
  /** The manifest's URL: objects go next to it, with its query. */
  url: URL;
  origin: OriginCapabilities;
  method: 'PUT' | 'POST';
  headers: Record<string, string>;
  userAgent: string;
  logger: Logger;
  emit(event: PushEvent): void;
  /** The output gives up for good. */
  fail(error: Error): void;
  /**
   * CMAF ingest: a track's header goes first on each connection to where its media goes. A
   * redirect is followed only when the publishing point moved permanently within the origin, and
   * then everything goes again from the header (`moved`); any other would land media where its
   * header never went.
   */
  headerFirst?: { moved(): void } | undefined;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
}

const now = () => performance.timeOrigin + performance.now();

/**
 * Sends one object to the origin and acts on the answer (the DASH-IF ingest failure rules):
 * follows redirects (a permanent one moves every later upload), falls back to whole bodies on 411,
 * retries refused credentials a few times before the output gives up, names the limit behind a
 * 413, and tells the caller whether to send the object again.
 */
export class Deliverer {
  readonly #context: DelivererContext;
  #base: URL;
  #lengthRequired = false;
  /** Request streams (a track, the manifest, playlists, DELETEs) in a failure streak: warned once, then debug until one succeeds. */
  readonly #failing = new Set<string>();
  #warnedKind = false;
  readonly #targets = new Map<string, URL>();

  constructor(context: DelivererContext) {
    this.#context = context;
    this.#base = new URL('./', context.url);
  }

  /**
   * Where `path` goes. The same few documents (playlists, the manifest) go tens of times a second:
   * their URLs are kept; a segment's, used once, is not.
   */
  #target(path: string): URL {
    const known = this.#targets.get(path);
    if (known) return known;
    const url = new URL(path + this.#context.url.search, this.#base);
    if (!/\.(m4s|mp4)$|\/Segment\(\d+\)$/.test(path)) {
      if (this.#targets.size >= 64) this.#targets.clear();
      this.#targets.set(path, url);
    }
    return url;
  }

  async deliver(request: DeliveryRequest): Promise<Delivery> {
    const { lane, stream: track, path, upload, body, contentType } = request;
    const method = request.method ?? this.#context.method;
    let target = upload?.redirectedTo ?? this.#target(path);
    let refusals = 0;
    for (let redirects = upload?.redirects ?? 0; !this.#context.stopped(); ) {
      // Credentials and the operator's headers go to the origin configured, never elsewhere.
      const trusted = target.origin === this.#context.url.origin;
      const result = await lane.send({
        url: target,
        method,
        headers: {
          ...(trusted ? this.#context.headers : {}),
          'user-agent': this.#context.userAgent,
          ...(body ? { 'content-type': contentType } : {}),
        },
        body,
        wholeBody: this.#lengthRequired,
        onChunk:
          upload &&
          ((chunk) =>
            this.#context.emit({
              type: 'chunk',
              output: this.#context.name,
              track,
              segment: upload.segment,
              bytes: chunk.byteLength,
              at: now(),
            })),
      });
      const outcome = result.outcome;
      if (outcome.kind === 'acknowledged') {
        this.#failing.delete(track);
        this.#checkOriginKind(result.server);
        return 'ok';
      }
      // An upload's body may still be in flight: start afresh. A DELETE has none, and resetting its
      // pipelined connection would fail the DELETEs queued behind it without the origin seeing them.
      if (method !== 'DELETE') lane.reset();
      if (this.#context.stopped()) return 'gave-up';
      const where = safeUrl(target);
      switch (outcome.kind) {
        case 'retry':
          this.#context.emit({
            type: 'retry',
            output: this.#context.name,
            track,
            path,
            reason: outcome.reason,
            attempt: (upload?.attempts ?? 0) + 1,
          });
          // One warning per failure streak of each stream of requests (the README's promise).
          this.#context.logger[this.#failing.has(track) ? 'debug' : 'warn'](
            { output: this.#context.name, url: where, reason: outcome.reason },
            'push: upload failed; it will be sent again',
          );
          this.#failing.add(track);
          return 'retry';
        case 'redirect': {
          const next = URL.parse(outcome.location, target.href);
          if (!next || (next.protocol !== 'http:' && next.protocol !== 'https:'))
            return this.#refused(outcome, where, method, `a redirect to something that is no http(s) URL`);
          if (++redirects > MAX_REDIRECTS)
            return this.#refused(outcome, where, method, `more than ${MAX_REDIRECTS} redirects`);
          if (target.protocol === 'https:' && next.protocol === 'http:')
            return this.#refused(
              outcome,
              where,
              method,
              `a redirect from https to http (${safeUrl(next)}), never followed`,
            );
          const elsewhere = next.origin !== this.#context.url.origin;
          const moved = next.origin + next.pathname;
          const baseMove = outcome.permanent && !elsewhere && moved.endsWith(path) && method !== 'DELETE';
          if (this.#context.headerFirst && !baseMove)
            return this.#refused(
              outcome,
              where,
              method,
              `a redirect of CMAF ingest to ${safeUrl(next)}, not followed: the track's header is not there (only a permanent move of the publishing point within the origin is followed)`,
            );
          // A DELETE goes nowhere but the configured origin: elsewhere it could only be refused.
          if (elsewhere && method === 'DELETE')
            return this.#refused(outcome, where, method, `a redirect of a DELETE to another origin (${safeUrl(next)})`);
          if (outcome.permanent && elsewhere) {
            this.#context.fail(
              new Error(
                `${safeUrl(this.#context.url)}: the origin says it moved permanently to another origin (${safeUrl(next)}); not followed, since credentials and headers go to the configured origin only: if the move is genuine, change --output (and the credentials) to the new place`,
              ),
            );
            return 'gave-up';
          }
          if (upload) Object.assign(upload, { redirectedTo: next, redirects });
          if (baseMove) {
            this.#base = new URL(moved.slice(0, -path.length));
            this.#targets.clear();
            this.#context.logger.warn(
              { output: this.#context.name, from: where, base: safeUrl(this.#base) },
              'push: the origin moved permanently within itself; every later upload goes to the new place (update --output)',
            );
            if (upload) upload.redirectedTo = undefined;
            if (this.#context.headerFirst) {
              this.#context.headerFirst.moved();
              return 'retry';
            }
          }
          target = next;
          continue;
        }
        case 'length-required':
          if (!this.#lengthRequired)
            this.#context.logger.warn(
              { output: this.#context.name, url: where },
              'push: the origin refuses chunked uploads (411 Length Required): segments now go whole, each after its last chunk, which adds a segment of latency',
            );
          this.#lengthRequired = true;
          if (!body || !(body instanceof UploadBody))
            return this.#refused(outcome, where, method, 'HTTP 411 on a body of known length');
          continue;
        case 'credentials':
          // An origin that takes uploads but refuses DELETEs keeps the output running: that DELETE is given up (counted).
          if (method === 'DELETE') return this.#refused(outcome, where, method, outcome.reason);
          if (++refusals >= CREDENTIAL_ATTEMPTS) {
            const certificate = isCertificateProblem(outcome);
            this.#context.fail(
              new Error(
                certificate
                  ? `${where}: ${outcome.reason}. Give the origin's CA with --ca FILE (certificate errors are never ignored)`
                  : `${where}: the origin refused the credentials (${outcome.reason}) ${CREDENTIAL_ATTEMPTS} times: check APPLIANCE_PUSH_TOKEN, APPLIANCE_PUSH_USER/APPLIANCE_PUSH_PASSWORD or the --header-file`,
              ),
            );
            return 'gave-up';
          }
          this.#context.logger.warn(
            { output: this.#context.name, url: where, reason: outcome.reason, attempt: refusals },
            'push: the origin refused the credentials; trying again',
          );
          await this.#context.pause(credentialDelayMs(refusals - 1));
          continue;
        default:
          return this.#refused(outcome, where, method, undefined, result.answer);
      }
    }
    return 'gave-up';
  }

  /**
   * `answer`: what the origin said of its refusal (the start of its body), logged without the
   * secrets an error page may echo: the credentials and headers this output sends, and any that
   * look like secrets (Authorization, signed query parameters, a URL's password).
   */
  #refused(outcome: UploadOutcome, where: string, method: string, why?: string, answer?: string): 'ok' | 'gave-up' {
    const status = outcome.kind === 'rejected' ? outcome.status : outcome.kind === 'too-large' ? 413 : undefined;
    // A DELETE of something already gone is what was wanted.
    if (method === 'DELETE' && (status === 404 || status === 410)) return 'ok';
    const message =
      outcome.kind === 'too-large'
        ? 'push: the origin refused the upload as too large (413): raise its body limit (nginx: client_max_body_size; appliance origin: --max-body)'
        : `push: the origin refused the upload (${why ?? `HTTP ${status}`}); it is not sent again`;
    // A refused DELETE is given up and counted, with a warning at most every 10 s (HttpPushOutput).
    this.#context.logger[method === 'DELETE' ? 'debug' : 'error'](
      {
        output: this.#context.name,
        method,
        url: where,
        status,
        ...(why ? { why } : {}),
        ...(answer ? { answer: withoutSecrets(answer, Object.values(this.#context.headers)) } : {}),
      },
      message,
    );
    return 'gave-up';
  }

  #checkOriginKind(server: string | undefined): void {
    const expected = this.#context.origin.serverHeader;
    if (!expected || this.#warnedKind || expected.test(server ?? '')) return;
    this.#warnedKind = true;
    this.#context.logger.warn(
      { output: this.#context.name, server },
      'push: this origin does not say it is an appliance origin, which serves segments while they arrive; if it only serves complete files (nginx, WebDAV, object stores), use --origin-profile generic, or check with "appliance check"',
    );
  }
}

/** Pure: `text` with each of `values` (and a header's credential after its scheme) and anything that looks like a secret replaced. */
export function withoutSecrets(text: string, values: readonly string[]): string {
  const known = values
    .flatMap((value) => [value, value.replace(/^(bearer|basic)\s+/i, '')])
    .filter((v) => v.length >= 4);
  let cleaned = text;
  for (const value of known.sort((a, b) => b.length - a.length)) cleaned = cleaned.split(value).join('[redacted]');
  return redactSecrets(cleaned);
}
