import { TICK_MS } from './live-session.ts';

/**
 * Runs a tick again after the delay each tick returns: often while there is work due by the clock,
 * rarely when there is none. `hurry` brings a distant tick forward to TICK_MS from now.
 */
export class Ticker {
  #timer: NodeJS.Timeout | undefined;
  #dueAt = Number.POSITIVE_INFINITY;
  #tick: (() => number) | undefined;

  start(tick: () => number, firstMs: number): void {
    this.#tick = tick;
    this.#schedule(firstMs);
  }

  hurry(): void {
    if (this.#tick && this.#dueAt - performance.now() > TICK_MS) this.#schedule(TICK_MS);
  }

  stop(): void {
    clearTimeout(this.#timer);
    this.#tick = undefined;
  }

  #schedule(ms: number): void {
    clearTimeout(this.#timer);
    this.#dueAt = performance.now() + ms;
    this.#timer = setTimeout(() => {
      const tick = this.#tick;
      if (!tick) return;
      this.#dueAt = Number.POSITIVE_INFINITY;
      const next = tick();
      if (this.#tick && this.#dueAt === Number.POSITIVE_INFINITY) this.#schedule(next);
    }, ms);
  }
}
