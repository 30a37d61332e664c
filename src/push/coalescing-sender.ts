import type { Lane } from './lane.ts';
import type { Delivery } from './push-types.ts';
import { RetryStreak } from './upload-outcome.ts';
import { Wakeup } from './wakeup.ts';

export interface SenderContext {
  segdur: number;
  deliver(lane: Lane, path: string, body: Uint8Array, contentType: string): Promise<Delivery>;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
}

const UTF8 = new TextEncoder();

/** What a document's build returns when there is nothing to send for this change: it is no longer due. */
export const NOTHING_TO_SEND = Symbol('nothing to send');

/** The document's text; undefined: not yet (it stays due until a later wake finds it buildable). */
export type Built = string | undefined | typeof NOTHING_TO_SEND;

interface Document {
  contentType: string;
  build: () => Built;
  /** Changed since last sent. */
  due: boolean;
  onDelivered: ((bytes: number, attempts: number) => void) | undefined;
  onRefused: (() => void) | undefined;
}

/**
 * Whole documents (a manifest, playlists) on one connection, coalesced: one upload in flight,
 * and when it returns, the newest version of each document that changed meanwhile, in the order
 * the documents were added. A playlist rebuilt at every part thus never queues behind a stale
 * version of itself. A document whose `build` returns undefined (nothing to send yet: an init not
 * acknowledged) stays due until a later wake finds it buildable; one that returns NOTHING_TO_SEND
 * is no longer due (a flush does not wait for it). When no document can go, the
 * `idle` work runs (DELETEs of expired segments), so it never delays a manifest.
 */
export class CoalescingSender {
  readonly #context: SenderContext;
  readonly #lane: Lane;
  readonly #idle: (() => Promise<boolean>) | undefined;
  readonly #documents = new Map<string, Document>();
  readonly #wakeup = new Wakeup();
  /** Counts wakes, so that one coming while the loop was busy (in the idle work) is not slept through. */
  #wakes = 0;
  readonly loop: Promise<void>;

  /** `idle` does one step of background work and says whether there was any. */
  constructor(context: SenderContext, lane: Lane, idle?: () => Promise<boolean>) {
    this.#context = context;
    this.#lane = lane;
    this.#idle = idle;
    this.loop = this.#run();
  }

  /** Adds `path`, due at once when `due`; `onDelivered` hears of each version the origin acknowledged. */
  add(
    path: string,
    contentType: string,
    build: () => Built,
    options: {
      due?: boolean;
      onDelivered?: (bytes: number, attempts: number) => void;
      /** The origin refused this version for good (it is not sent again until touched). */
      onRefused?: () => void;
    } = {},
  ): void {
    this.#documents.set(path, {
      contentType,
      build,
      due: options.due ?? false,
      onDelivered: options.onDelivered,
      onRefused: options.onRefused,
    });
    if (options.due) this.wake();
  }

  /** A document is waiting to be sent (or sent again). */
  get pending(): boolean {
    for (const document of this.#documents.values()) if (document.due) return true;
    return false;
  }

  /** `path` changed: its newest version goes next. */
  touch(path: string): void {
    const document = this.#documents.get(path);
    if (!document) return;
    document.due = true;
    this.wake();
  }

  /** Something a document's build or the idle work depends on changed. */
  wake(): void {
    this.#wakes++;
    this.#wakeup.wake();
  }

  close(): Promise<void> {
    return this.#lane.close();
  }

  #next(): { path: string; document: Document; text: string } | undefined {
    for (const [path, document] of this.#documents) {
      if (!document.due) continue;
      const text = document.build();
      if (text === NOTHING_TO_SEND) document.due = false;
      else if (text !== undefined) return { path, document, text };
    }
    return undefined;
  }

  async #run(): Promise<void> {
    const streak = new RetryStreak(this.#context.segdur, this.#context.pause);
    const stopped = () => this.#context.stopped();
    for (;;) {
      const wakes = this.#wakes;
      const next = stopped() ? undefined : this.#next();
      if (!next) {
        if (stopped()) return;
        const idleWorked = this.#idle ? await this.#idle() : false;
        if (!idleWorked && wakes === this.#wakes) await this.#wakeup.wait();
        continue;
      }
      const { path, document, text } = next;
      document.due = false;
      const body = UTF8.encode(text);
      const result = await this.#context.deliver(this.#lane, path, body, document.contentType);
      if (result === 'retry') {
        document.due = true;
        await streak.failed(this.#lane);
        continue;
      }
      if (result === 'ok') document.onDelivered?.(body.byteLength, streak.failures);
      else if (!stopped()) document.onRefused?.();
      streak.succeeded();
    }
  }
}
