/** Thrown into an upload whose object was given up (dropped under the budget, or at stop). */
export class UploadAbandoned extends Error {
  constructor(why: string) {
    super(why);
    this.name = 'UploadAbandoned';
  }
}

/**
 * The bytes of one object being uploaded, kept until the origin acknowledges them: chunks are
 * appended as the packager makes them, and every request for the object (the first, and any
 * re-send) reads them from the start and then follows the object as it grows.
 */
export class UploadBody {
  readonly #chunks: Uint8Array[] = [];
  #bytes = 0;
  #complete = false;
  #abandoned: UploadAbandoned | undefined;
  #wake: (() => void) | undefined;
  #waiting: Promise<void> | undefined;

  get bytes(): number {
    return this.#bytes;
  }

  get complete(): boolean {
    return this.#complete;
  }

  get chunkCount(): number {
    return this.#chunks.length;
  }

  append(chunk: Uint8Array): void {
    if (this.#complete) throw new Error('append after the end of an upload body');
    this.#chunks.push(chunk);
    this.#bytes += chunk.byteLength;
    this.#notify();
  }

  finish(): void {
    this.#complete = true;
    this.#notify();
  }

  /** Any request reading this body fails; the chunks are released. */
  abandon(why: string): void {
    this.#abandoned = new UploadAbandoned(why);
    this.#chunks.length = 0;
    this.#notify();
  }

  /** Hands the chunks back (to the pool they came from) once no request reads them any more. */
  release(): Uint8Array[] {
    const chunks = this.#chunks.splice(0);
    this.#abandoned ??= new UploadAbandoned('released');
    this.#notify();
    return chunks;
  }

  /** Resolves once the body is complete (or abandoned). */
  async whenComplete(): Promise<void> {
    while (!this.#complete && !this.#abandoned) await this.#next();
  }

  /**
   * The body from its first byte, one element per chunk (so each chunk is one write and one
   * HTTP chunk), waiting for chunks not yet made, until `signal` aborts. `onYield(true)` before a chunk is handed over
   * and `onYield(false)` once the consumer asks for the next: the time in between is the
   * connection's backpressure, which the caller watches for stalls.
   */
  async *read(
    signal: AbortSignal,
    onYield: (waitingForConsumer: boolean) => void = () => {},
  ): AsyncGenerator<Uint8Array> {
    const aborted = new Promise<void>((resolve) => signal.addEventListener('abort', () => resolve(), { once: true }));
    for (let index = 0; ; index++) {
      while (index >= this.#chunks.length && !this.#complete && !this.#abandoned && !signal.aborted)
        await Promise.race([this.#next(), aborted]);
      if (this.#abandoned) throw this.#abandoned;
      if (signal.aborted) throw new UploadAbandoned('request aborted');
      if (index >= this.#chunks.length) return;
      onYield(true);
      yield this.#chunks[index]!;
      onYield(false);
    }
  }

  #next(): Promise<void> {
    this.#waiting ??= new Promise((resolve) => (this.#wake = resolve));
    return this.#waiting;
  }

  #notify(): void {
    const wake = this.#wake;
    this.#waiting = undefined;
    this.#wake = undefined;
    wake?.();
  }
}
