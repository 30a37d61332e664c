/** A sleep that work (or a stop) can cut short: loops wait on it instead of polling. */
export class Wakeup {
  #wake: (() => void) | undefined;
  #pending: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;

  /** Resolves at the next wake(), or after `ms` when given. */
  wait(ms?: number): Promise<void> {
    this.#pending ??= new Promise<void>((resolve) => (this.#wake = resolve));
    if (ms !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.wake(), ms);
    }
    return this.#pending;
  }

  wake(): void {
    clearTimeout(this.#timer);
    const wake = this.#wake;
    this.#pending = undefined;
    this.#wake = undefined;
    wake?.();
  }
}
