import type { ChunkEvent } from '../packager/chunker.ts';
import { MediaPool } from './media-pool.ts';

/** More uploads than any run holds (tracks × segments in a time-shift window × outputs). */
const MAX_DROP_ROUNDS = 100_000;

/** A push output as the budget sees it: media it holds that may be dropped to make room. */
export interface MediaHolder {
  /** The segment number of the oldest media it would drop first (not being sent), if any. */
  oldestDroppable(): bigint | undefined;
  /** Drops that media (counted and reported by the holder as dropped for the budget). */
  dropOldest(): void;
}

/**
 * The one copy of each chunk every push output holds until its origin acknowledges it: the first
 * output to take a chunk copies it into the pool, the others reference that copy. One budget
 * bounds it together with what the built-in origin's store holds (`outside`); when a chunk does not
 * fit, the oldest media any output could drop goes first, whichever output holds it.
 */
export class SharedMedia {
  readonly pool: MediaPool;
  readonly #holders = new Set<MediaHolder>();
  /** The copy of the chunk being handed out: outputs take one event after another, never interleaved. */
  #lastEvent: ChunkEvent | undefined;
  #lastCopy: Buffer | undefined;

  constructor(budgetBytes: number, outside?: () => number, slabBytes?: number) {
    this.pool = new MediaPool(budgetBytes, slabBytes, outside);
  }

  get budgetBytes(): number {
    return this.pool.limitBytes;
  }

  /** Registers an output; returns how it leaves (when it stops). */
  join(holder: MediaHolder): () => void {
    this.#holders.add(holder);
    return () => this.#holders.delete(holder);
  }

  /** The chunk's one copy, held for the caller (who releases it once); room is made first if need be. */
  hold(event: ChunkEvent): Buffer {
    if (this.#lastEvent === event && this.#lastCopy && this.pool.retain(this.#lastCopy)) return this.#lastCopy;
    const copy = this.#take(event);
    this.#lastEvent = event;
    this.#lastCopy = copy;
    return copy;
  }

  release(chunks: readonly Uint8Array[]): void {
    this.pool.release(chunks);
  }

  /**
   * Media being sent is never cut (its bytes are what a request is reading): when only that is
   * left, or what the store holds, the pool overdraws. Each round drops one upload of one output,
   * so the rounds are bounded by what the outputs hold (and, should a holder fail to drop what it
   * named, by MAX_DROP_ROUNDS).
   */
  #take(event: ChunkEvent): Buffer {
    for (let round = 0; round < MAX_DROP_ROUNDS; round++) {
      const copy = this.pool.take(event.track, event.parts, event.byteLength);
      if (copy) return copy;
      let oldest: { holder: MediaHolder; segment: bigint } | undefined;
      for (const holder of this.#holders) {
        const segment = holder.oldestDroppable();
        if (segment !== undefined && (!oldest || segment < oldest.segment)) oldest = { holder, segment };
      }
      if (!oldest) return this.pool.overdraw(event.track, event.parts, event.byteLength);
      oldest.holder.dropOldest();
    }
    return this.pool.overdraw(event.track, event.parts, event.byteLength);
  }
}
