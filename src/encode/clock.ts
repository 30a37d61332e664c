/**
 * Pure: notices steps of the wall clock (NTP corrections, a manual `date`), by comparing it with
 * the monotonic clock each time it is asked: a gradual slew moves their difference by
 * microseconds, a step by its whole size at once.
 */
export class ClockStepDetector {
  readonly #thresholdMs: number;
  #offset: number | undefined;

  /** `thresholdMs`: the smallest step reported (one frame). */
  constructor(thresholdMs: number) {
    this.#thresholdMs = thresholdMs;
  }

  /** The step (ms, negative: backwards) since the last check, if larger than the threshold. */
  check(wallMs: number, monotonicMs: number): number | undefined {
    const offset = wallMs - monotonicMs;
    const previous = this.#offset;
    this.#offset = offset;
    if (previous === undefined) return undefined;
    const step = offset - previous;
    return Math.abs(step) > this.#thresholdMs ? step : undefined;
  }
}

export interface ClockOffset {
  /** Local clock minus true time, in ms (positive: ours is ahead). */
  offsetMs: number;
  /** Where the figure came from. */
  source: string;
  /** Measured against an origin's /time, not a local time daemon: the disagreement may be the origin's. */
  remote?: boolean;
}

/** Pure: `chronyc tracking` → the offset ("System time : 0.000012 seconds fast of NTP time"). */
export function parseChronyTracking(text: string): number | undefined {
  const match = /System time\s*:\s*([\d.]+) seconds (fast|slow) of NTP time/.exec(text);
  if (!match) return undefined;
  const ms = Number(match[1]) * 1000;
  return match[2] === 'fast' ? ms : -ms;
}

/** Pure: `timedatectl timesync-status` → the offset ("Offset: +1.234ms"). */
export function parseTimesyncStatus(text: string): number | undefined {
  const match = /Offset:\s*([+-]?[\d.]+)(us|ms|s)\b/.exec(text);
  if (!match) return undefined;
  const value = Number(match[1]);
  return match[2] === 'us' ? value / 1000 : match[2] === 's' ? value * 1000 : value;
}

/** Pure: an http-iso clock's answer, read at `sentMs` and received at `receivedMs` → our offset, RTT halved. */
export function offsetFromServer(serverIso: string, sentMs: number, receivedMs: number): number | undefined {
  const server = Date.parse(serverIso.trim());
  if (!Number.isFinite(server)) return undefined;
  return (sentMs + receivedMs) / 2 - server;
}

/** Above this the log warns; ultra-ll refuses to start above `CLOCK_REFUSE_MS`. */
export const CLOCK_WARN_MS = 20;
export const CLOCK_REFUSE_MS = 100;

/**
 * The host clock's offset: chrony or systemd-timesyncd where present, else an http-iso clock (our
 * origin's /time) with the round trip halved (the best of three). Undefined when nothing answers.
 */
export async function measureClockOffset(options: {
  timeUrls: readonly string[];
  run?: (file: string, args: string[]) => Promise<string>;
}): Promise<ClockOffset | undefined> {
  const run =
    options.run ??
    (async (file: string, args: string[]) =>
      (await (await import('execa')).execa(file, args, { timeout: 2000 })).stdout);
  for (const [file, args, parse] of [
    ['chronyc', ['tracking'], parseChronyTracking],
    ['timedatectl', ['timesync-status'], parseTimesyncStatus],
  ] as const) {
    try {
      const offsetMs = parse(await run(file, [...args]));
      if (offsetMs !== undefined) return { offsetMs, source: `${file} ${args.join(' ')}` };
    } catch {
      // Not installed or not running: try the next.
    }
  }
  for (const url of options.timeUrls) {
    let best: { offsetMs: number; rtt: number } | undefined;
    for (let i = 0; i < 3; i++) {
      const sent = Date.now();
      const answer = await readClock(url);
      if (!answer) break;
      const received = Date.now();
      const offsetMs = answer.ok ? offsetFromServer(answer.text, sent, received) : undefined;
      if (offsetMs !== undefined && (!best || received - sent < best.rtt)) best = { offsetMs, rtt: received - sent };
    }
    if (best) return { offsetMs: best.offsetMs, source: `${url} (round trip ${best.rtt} ms)`, remote: true };
  }
  return undefined;
}

/** An http-iso clock's answer is a date: anything longer is not one, and is not read further. */
const CLOCK_ANSWER_BYTES = 256;

/**
 * GETs a clock URL with the HTTP client the pushes use (global fetch would load a second copy of
 * undici, bundled in Node, for one request). Undefined when it cannot be reached in 2 s.
 */
async function readClock(url: string): Promise<{ ok: boolean; text: string } | undefined> {
  let target: URL;
  try {
    target = new URL(url);
  } catch {
    return undefined;
  }
  if (target.protocol !== 'http:' && target.protocol !== 'https:') return undefined;
  const { Client } = await import('../push/http-client.ts');
  const client = new Client(target.origin, { connect: { timeout: 2000 }, headersTimeout: 2000, bodyTimeout: 2000 });
  try {
    const response = await client.request({
      path: target.pathname + target.search,
      method: 'GET',
      signal: AbortSignal.timeout(2000),
    });
    let text = '';
    for await (const piece of response.body as AsyncIterable<Buffer>) {
      text += piece.toString('latin1');
      if (text.length > CLOCK_ANSWER_BYTES) {
        response.body.destroy();
        return { ok: false, text: '' };
      }
    }
    return { ok: response.statusCode >= 200 && response.statusCode < 300, text };
  } catch {
    return undefined;
  } finally {
    void client.destroy().catch(() => undefined);
  }
}
