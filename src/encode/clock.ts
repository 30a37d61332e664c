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
