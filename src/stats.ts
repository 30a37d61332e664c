/** The most recent `capacity` values of a measurement, for quantiles over a sliding window. */
export class RecentValues {
  readonly #values: number[];
  #next = 0;
  #count = 0;

  constructor(capacity: number) {
    this.#values = new Array<number>(capacity);
  }

  add(value: number): void {
    this.#values[this.#next] = value;
    this.#next = (this.#next + 1) % this.#values.length;
    this.#count = Math.min(this.#count + 1, this.#values.length);
  }

  get count(): number {
    return this.#count;
  }

  /** Nearest-rank quantile (0 ≤ q ≤ 1) of the values held, or undefined when empty. */
  quantile(q: number): number | undefined {
    if (!this.#count) return undefined;
    const sorted = this.#values.slice(0, this.#count).sort((a, b) => a - b);
    return sorted[Math.min(this.#count - 1, Math.max(0, Math.ceil(q * this.#count) - 1))];
  }

  summary(): { p50: number; p95: number; max: number; count: number } | undefined {
    if (!this.#count) return undefined;
    const round = (x: number) => Math.round(x * 10) / 10;
    return {
      p50: round(this.quantile(0.5)!),
      p95: round(this.quantile(0.95)!),
      max: round(this.quantile(1)!),
      count: this.#count,
    };
  }
}
