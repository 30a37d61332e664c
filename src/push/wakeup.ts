/** A sleep that work (or a stop) can cut short: loops wait on it instead of polling. */
export class Wakeup {
  #wake: (() => void) | undefined;
  #pending: Promise<void> | undefined;
  #timer: NodeJS.Timeout | undefined;
  #closed = false;

  /** Resolves at the next wake(), or after `ms` when given; at once when closed. */
  wait(ms?: number): Promise<void> {
    if (this.#closed) return Promise.resolve();
    this.#pending ??= new Promise<void>((resolve) => (this.#wake = resolve));
    if (ms !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = setTimeout(() => this.wake(), ms);
    }
    return this.#pending;
  }

  /**
   * Wakes the waiter and every later one at once: a loop that checked for a stop, then awaited
   * something that finished after the stop, must not sleep for a wake that already came.
   */
  close(): void {
    this.#closed = true;
    this.wake();
  }

  wake(): void {
    clearTimeout(this.#timer);
    const wake = this.#wake;
    this.#pending = undefined;
    this.#wake = undefined;
    wake?.();
  }
}
