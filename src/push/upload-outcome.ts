/**
 * Pure: what an upload's response or error means for the pusher (the DASH-IF live-media ingest
 * failure rules), and the pauses between attempts.
 */
export type UploadOutcome =
  | { kind: 'acknowledged'; status: number }
  /** Worth sending again, whole, on a fresh connection: network errors, timeouts, cut bodies, 5xx, 408, 429. */
  | { kind: 'retry'; reason: string }
  | { kind: 'redirect'; status: number; location: string; permanent: boolean }
  /** 401/403, or a certificate the machine does not trust: retried a few times, then fatal for the output. */
  | { kind: 'credentials'; reason: string }
  /** 411: the origin wants Content-Length, so whole objects. */
  | { kind: 'length-required' }
  /** 413: the object is larger than the origin accepts; sending it again cannot help. */
  | { kind: 'too-large' }
  /** Any other 4xx: logged, the object given up, never looped. */
  | { kind: 'rejected'; status: number };

export function outcomeOfStatus(status: number, location: string | undefined): UploadOutcome {
  if (status >= 200 && status < 300) return { kind: 'acknowledged', status };
  if ([301, 302, 303, 307, 308].includes(status) && location)
    return { kind: 'redirect', status, location, permanent: status === 301 || status === 308 };
  if (status === 401 || status === 403) return { kind: 'credentials', reason: `HTTP ${status}` };
  if (status === 411) return { kind: 'length-required' };
  if (status === 413) return { kind: 'too-large' };
  if (status >= 500 || status === 408 || status === 429) return { kind: 'retry', reason: `HTTP ${status}` };
  return { kind: 'rejected', status };
}

/** TLS verification failures: configuration, not weather. */
const CERTIFICATE_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'CERT_HAS_EXPIRED',
  'CERT_NOT_YET_VALID',
  'CERT_REVOKED',
  'CERT_UNTRUSTED',
  'CERT_REJECTED',
  'ERR_TLS_CERT_ALTNAME_INVALID',
  'HOSTNAME_MISMATCH',
]);

/** The error code of an error or of its cause chain (undici wraps socket errors). */
function codeOf(error: unknown): string | undefined {
  for (
    let e = error as { code?: unknown; cause?: unknown } | undefined, depth = 0;
    e && depth < 5;
    e = e.cause as typeof e, depth++
  ) {
    if (typeof e.code === 'string' && e.code !== 'UND_ERR_SOCKET') return e.code;
  }
  return (error as { code?: string } | undefined)?.code;
}

export function outcomeOfError(error: unknown): UploadOutcome {
  const code = codeOf(error);
  if (code && CERTIFICATE_ERRORS.has(code)) return { kind: 'credentials', reason: `certificate not trusted (${code})` };
  return { kind: 'retry', reason: code ?? (error as Error | undefined)?.message ?? String(error) };
}

export function isCertificateProblem(outcome: UploadOutcome): boolean {
  return outcome.kind === 'credentials' && outcome.reason.startsWith('certificate');
}

/**
 * The pause before attempt `attempt + 1` (0 = the first retry): quick at first, so that a short
 * outage costs little, doubling up to about a segment (the ingest rules' connect timeout), with
 * ±20 % jitter so that tracks and boxes do not retry in step. `random` is injectable for tests.
 */
export function retryDelayMs(attempt: number, segdur: number, random: () => number = Math.random): number {
  const cap = Math.max(1000, Math.min(6000, segdur * 1000));
  const base = Math.min(cap, 100 * 2 ** Math.min(attempt, 16));
  return Math.round(base * (0.8 + 0.4 * random()));
}

/**
 * One stream of requests in a failure streak: each failure waits `retryDelayMs` of the streak's
 * length (the pause a stop cuts short), a success ends the streak. Every sending loop keeps one;
 * two kinds of request on one loop (manifests and DELETEs) keep one each.
 */
export class RetryStreak {
  readonly #segdur: number;
  readonly #pause: (ms: number) => Promise<void>;
  #failures = 0;

  constructor(segdur: number, pause: (ms: number) => Promise<void>) {
    this.#segdur = segdur;
    this.#pause = pause;
  }

  /** Failures in a row so far. */
  get failures(): number {
    return this.#failures;
  }

  /** A failure: the connection (if given) is dropped for a fresh one, then the backoff. */
  failed(connection?: { reset(): void }): Promise<void> {
    connection?.reset();
    return this.#pause(retryDelayMs(this.#failures++, this.#segdur));
  }

  succeeded(): void {
    this.#failures = 0;
  }
}

/** 401/403 in a row before the output gives up with a credential error. */
export const CREDENTIAL_ATTEMPTS = 3;

/** The pause after a refused credential: long enough for a rotated secret to be picked up, no storm. */
export const credentialDelayMs = (attempt: number) => 1000 * 2 ** attempt;

/** Redirects followed for one object before it is given up. */
export const MAX_REDIRECTS = 5;

/** A URL fit for logs and errors: no user info, no query (either may carry a secret). */
export function safeUrl(url: string | URL): string {
  const parsed = new URL(url);
  return `${parsed.protocol}//${parsed.host}${parsed.pathname}${parsed.search ? '?…' : ''}`;
}
