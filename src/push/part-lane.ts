import type { SenderContext } from './coalescing-sender.ts';
import type { Lane } from './lane.ts';
import { RetryStreak } from './upload-outcome.ts';
import { Wakeup } from './wakeup.ts';

export interface PartUpload {
  segment: bigint;
  index: number;
  path: string;
  bytes: Uint8Array;
}

export interface PartLaneContext extends SenderContext {
  /** Parts of segments before this one are of no use any more (their playlist lines are gone). */
  oldestUseful(): bigint | undefined;
  onAcknowledged(part: PartUpload): void;
  onDropped(part: PartUpload): void;
}

/**
 * A track's LL-HLS part files (`sf`), each a small whole upload, in order, on a connection of its
 * own beside the segment's streaming upload. A part that failed is sent again while it is still
 * useful; parts that fell out of the playlists meanwhile are dropped.
 */
export class PartLane {
  readonly #context: PartLaneContext;
  readonly #lane: Lane;
  readonly #contentType: string;
  readonly #queue: PartUpload[] = [];
  readonly #wakeup = new Wakeup();
  readonly loop: Promise<void>;

  constructor(context: PartLaneContext, lane: Lane, contentType: string) {
    this.#context = context;
    this.#lane = lane;
    this.#contentType = contentType;
    this.loop = this.#run();
  }

  get pending(): boolean {
    return this.#queue.length > 0;
  }

  add(part: PartUpload): void {
    this.#queue.push(part);
    this.#wakeup.wake();
  }

  wake(): void {
    this.#wakeup.wake();
  }

  close(): Promise<void> {
    return this.#lane.close();
  }

  /** Drops what is still queued (at stop). */
  clear(): PartUpload[] {
    return this.#queue.splice(0);
  }

  async #run(): Promise<void> {
    const streak = new RetryStreak(this.#context.segdur, this.#context.pause);
    while (!this.#context.stopped()) {
      const oldest = this.#context.oldestUseful();
      while (this.#queue.length && oldest !== undefined && this.#queue[0]!.segment < oldest)
        this.#context.onDropped(this.#queue.shift()!);
      const next = this.#queue[0];
      if (!next) {
        await this.#wakeup.wait();
        continue;
      }
      const result = await this.#context.deliver(this.#lane, next.path, next.bytes, this.#contentType);
      if (result === 'retry') {
        await streak.failed(this.#lane);
        continue;
      }
      streak.succeeded();
      this.#queue.shift();
      if (result === 'ok') this.#context.onAcknowledged(next);
      else this.#context.onDropped(next);
    }
  }
}
