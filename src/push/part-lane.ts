import type { Lane } from './lane.ts';
import { retryDelayMs } from './upload-outcome.ts';
import { Wakeup } from './wakeup.ts';

type Delivery = 'ok' | 'retry' | 'gave-up';

export interface DocumentLaneContext {
  segdur: number;
  deliver(lane: Lane, path: string, body: Uint8Array, contentType: string): Promise<Delivery>;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
}

/**
 * One document (a track's media playlist) on a connection of its own, coalesced: one upload in
 * flight, and when it returns, the newest version if it changed meanwhile. A playlist rebuilt at
 * every part thus never queues behind another track's, nor behind a stale version of itself.
 */
export class DocumentLane {
  readonly #context: DocumentLaneContext;
  readonly #lane: Lane;
  readonly #path: string;
  readonly #contentType: string;
  readonly #build: () => string | undefined;
  readonly #onDelivered: (() => void) | undefined;
  readonly #wakeup = new Wakeup();
  #dirty = false;
  readonly loop: Promise<void>;

  /** `build` returns undefined while there is nothing to send (e.g. before the init is acknowledged). */
  constructor(
    context: DocumentLaneContext,
    lane: Lane,
    path: string,
    contentType: string,
    build: () => string | undefined,
    onDelivered?: () => void,
  ) {
    this.#context = context;
    this.#lane = lane;
    this.#path = path;
    this.#contentType = contentType;
    this.#build = build;
    this.#onDelivered = onDelivered;
    this.loop = this.#run();
  }

  get pending(): boolean {
    return this.#dirty;
  }

  /** The document changed: send its newest version. */
  touch(): void {
    this.#dirty = true;
    this.#wakeup.wake();
  }

  wake(): void {
    this.#wakeup.wake();
  }

  close(): Promise<void> {
    return this.#lane.close();
  }

  async #run(): Promise<void> {
    let failures = 0;
    while (!this.#context.stopped() || this.#dirty) {
      const text = this.#dirty && !this.#context.stopped() ? this.#build() : undefined;
      if (text === undefined) {
        if (this.#context.stopped()) return;
        await this.#wakeup.wait();
        continue;
      }
      this.#dirty = false;
      const body = new TextEncoder().encode(text);
      const result = await this.#context.deliver(this.#lane, this.#path, body, this.#contentType);
      if (result === 'retry') {
        this.#dirty = true;
        this.#lane.reset();
        await this.#context.pause(retryDelayMs(failures++, this.#context.segdur));
      } else {
        failures = 0;
        if (result === 'ok') this.#onDelivered?.();
      }
    }
  }
}

export interface PartUpload {
  segment: bigint;
  index: number;
  path: string;
  bytes: Uint8Array;
}

export interface PartLaneContext extends DocumentLaneContext {
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
    let failures = 0;
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
        this.#lane.reset();
        await this.#context.pause(retryDelayMs(failures++, this.#context.segdur));
        continue;
      }
      failures = 0;
      this.#queue.shift();
      if (result === 'ok') this.#context.onAcknowledged(next);
      else this.#context.onDropped(next);
    }
  }
}
