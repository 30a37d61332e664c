import { segmentPath } from '../layout/object-names.ts';
import { oldestKept } from '../timeline/window.ts';
import type { ShedSpan } from '../packager/shed.ts';
import { CoalescingSender, NOTHING_TO_SEND } from './coalescing-sender.ts';
import type { Lane } from './lane.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';
import type { Delivery, ManifestBuilder, ManifestView, SegmentRun } from './push-types.ts';
import { RetryStreak } from './upload-outcome.ts';

/** What the control connection needs to know of the output it serves. */
export interface ControlContext {
  origin: OriginCapabilities;
  segdur: number;
  tsb: number;
  asto: number;
  utcTimingUrl: string;
  deleteExpired: boolean;
  manifestName: string;
  tracks(): Iterable<{ id: string; kind: 'video' | 'audio'; initAcknowledged: boolean; acknowledged: Set<bigint> }>;
  deliver(
    lane: Lane,
    path: string,
    body: Uint8Array | undefined,
    contentType: string,
    method?: 'DELETE',
  ): Promise<Delivery>;
  /** A segment's other objects that go with it (LL-HLS part files). */
  companions(track: string, segment: bigint): string[];
  pause(ms: number): Promise<void>;
  stopped(): boolean;
  onManifestAcknowledged(bytes: number, attempts: number): void;
  /** The origin refused the manifest for good. */
  onManifestRefused?: () => void;
  /**
   * The manifest goes before any init (CMAF ingest's posted MPD: the receiver learns the names
   * from it): ready as soon as it is published.
   */
  manifestFirst?: boolean;
  /** CMAF ingest: each track's name at the receiver, for the posted MPD. */
  streamName?: ((track: string) => string) | undefined;
  /** A DELETE that failed DELETE_ATTEMPTS times (or was refused): the object stays at the origin. */
  onDeleteGivenUp(path: string, attempts: number): void;
  /** Renditions not delivered, and since when (the manifest leaves them out). */
  shedSpans?: () => readonly ShedSpan[];
}

/** Pure: the newest run of consecutive segments every set holds, at most `window` + 1 long. */
export function newestCommonRun(sets: readonly Set<bigint>[], window: bigint): SegmentRun | undefined {
  if (!sets.length) return undefined;
  const everywhere = (segment: bigint) => sets.every((s) => s.has(segment));
  let last: bigint | undefined;
  for (const segment of sets[0]!) if (everywhere(segment) && (last === undefined || segment > last)) last = segment;
  if (last === undefined) return undefined;
  let first = last;
  while (last - first < window && everywhere(first - 1n)) first--;
  return { first, last };
}

/**
 * Pure: with `newest` just completed, segments before this number may go from the origin: they
 * left the time-shift window longer ago than the LL-HLS RFC's grace (one segment plus the longest
 * playlist, the window again).
 */
export function deleteBefore(newest: bigint, segdur: number, tsb: number): bigint {
  const grace = BigInt(Math.ceil((segdur + tsb) / segdur));
  return oldestKept(newest - grace, segdur, tsb);
}

/** DELETEs sent at once, pipelined on one connection. */
const DELETES_IN_FLIGHT = 8;
/** A DELETE answered with a retryable failure is tried this many times in all, with the backoff between. */
export const DELETE_ATTEMPTS = 5;

/**
 * The output's control connection: the manifest (coalesced: one in flight, the newest pending,
 * built when it is sent), other whole documents after it (the multivariant playlist), and, when
 * no document waits, DELETEs of expired segments on a pipelined connection of their own, with a
 * backoff of their own.
 */
export class ControlLane {
  readonly #context: ControlContext;
  readonly #sender: CoalescingSender;
  /** DELETEs go pipelined on a connection of their own: LL-HLS part files make many of them. */
  readonly #deleteLane: Lane;
  readonly #deleteStreak: RetryStreak;
  readonly #deletes: { path: string; attempts: number }[] = [];
  #builder: ManifestBuilder | undefined;
  readonly loop: Promise<void>;

  constructor(context: ControlContext, lane: Lane, deleteLane: Lane) {
    this.#context = context;
    this.#deleteLane = deleteLane;
    this.#deleteStreak = new RetryStreak(context.segdur, context.pause);
    this.#sender = new CoalescingSender(
      {
        segdur: context.segdur,
        pause: context.pause,
        stopped: context.stopped,
        deliver: (lane, path, body, contentType) => context.deliver(lane, path, body, contentType),
      },
      lane,
      () => this.#deleteSome(),
    );
    // Added first: when the manifest and another document are both due, the manifest goes first.
    this.#sender.add(
      context.manifestName,
      'application/dash+xml',
      () => (this.#builder && this.#ready() ? this.#builder(this.#view()) : undefined),
      {
        onDelivered: (bytes, attempts) => context.onManifestAcknowledged(bytes, attempts),
        onRefused: () => context.onManifestRefused?.(),
      },
    );
    this.loop = this.#sender.loop;
  }

  /** A manifest or document is waiting to be sent (or resent). */
  get pending(): boolean {
    return this.#sender.pending;
  }

  /** Sends `name` (once ready, like the manifest) and again after each `touchDocument`. */
  publishDocument(
    name: string,
    contentType: string,
    build: () => string | undefined,
    options: { onDelivered?: () => void } = {},
  ): void {
    // Not ready: wait. Ready but nothing to say (a multivariant whose playlists are not all there):
    // no longer due, so a flush does not wait for it; what makes it buildable touches it again.
    this.#sender.add(name, contentType, () => (this.#ready() ? (build() ?? NOTHING_TO_SEND) : undefined), {
      due: true,
      ...(options.onDelivered ? { onDelivered: options.onDelivered } : {}),
    });
  }

  /** What `name` would say changed (the multivariant playlist of an output that shed a variant): send it again. */
  touchDocument(name: string): void {
    this.#sender.touch(name);
  }

  publish(build: ManifestBuilder): void {
    this.#builder = build;
    this.touch();
  }

  /** What the manifest would say changed: send it again. */
  touch(): void {
    if (this.#builder) this.#sender.touch(this.#context.manifestName);
  }

  wake(): void {
    this.#sender.wake();
  }

  async close(): Promise<void> {
    await Promise.all([this.#sender.close(), this.#deleteLane.close()]);
  }

  /** Queues DELETEs for `track`'s acknowledged segments that expired with `newest`. */
  expire(track: { id: string; acknowledged: Set<bigint> }, newest: bigint): void {
    const before = deleteBefore(newest, this.#context.segdur, this.#context.tsb);
    for (const segment of track.acknowledged) {
      if (segment >= before) continue;
      track.acknowledged.delete(segment);
      if (this.#context.deleteExpired)
        for (const path of [segmentPath(track.id, segment), ...this.#context.companions(track.id, segment)])
          this.#deletes.push({ path, attempts: 0 });
    }
    if (this.#deletes.length) this.#sender.wake();
  }

  #view(): ManifestView {
    const streamName = this.#context.streamName;
    if (streamName) return { utcTimingUrl: this.#context.utcTimingUrl, asto: 0, cmafIngest: { streamName } };
    const growing = this.#context.origin.servesGrowingObjects;
    return {
      utcTimingUrl: this.#context.utcTimingUrl,
      asto: growing ? this.#context.asto : 0,
      announced: growing ? undefined : { video: this.#announced('video'), audio: this.#announced('audio') },
      shed: this.#context.shedSpans?.(),
    };
  }

  #announced(kind: 'video' | 'audio'): SegmentRun | undefined {
    // A track shed now is not waited for: the other tracks are announced without it.
    const shedNow = new Set(
      (this.#context.shedSpans?.() ?? []).filter((s) => s.until === undefined).map((s) => s.track),
    );
    const sets = [...this.#context.tracks()]
      .filter((t) => t.kind === kind && !shedNow.has(t.id))
      .map((t) => t.acknowledged);
    return newestCommonRun(sets, BigInt(Math.ceil(this.#context.tsb / this.#context.segdur)));
  }

  /**
   * Every init acknowledged; for a generic origin also a first acknowledged segment of every
   * content type (its manifest must not promise what the origin does not have).
   */
  #ready(): boolean {
    if (this.#context.manifestFirst) return true;
    const tracks = [...this.#context.tracks()];
    if (!tracks.length || !tracks.every((t) => t.initAcknowledged)) return false;
    return (
      this.#context.origin.servesGrowingObjects ||
      [...new Set(tracks.map((t) => t.kind))].every((kind) => this.#announced(kind))
    );
  }

  /** One batch of DELETEs, pipelined; says whether there was any. */
  async #deleteSome(): Promise<boolean> {
    if (!this.#deletes.length) return false;
    const batch = this.#deletes.splice(0, DELETES_IN_FLIGHT);
    const results = await Promise.all(
      batch.map((item) => this.#context.deliver(this.#deleteLane, item.path, undefined, '', 'DELETE')),
    );
    // What failed in a way worth retrying goes back to the front of the queue, up to its last attempt.
    const again: typeof batch = [];
    for (const [index, item] of batch.entries()) {
      if (results[index] === 'ok') continue;
      item.attempts++;
      if (results[index] === 'retry' && item.attempts < DELETE_ATTEMPTS) again.push(item);
      else if (results[index] === 'retry' || !this.#context.stopped())
        this.#context.onDeleteGivenUp(item.path, item.attempts);
    }
    this.#deletes.unshift(...again);
    if (again.length) await this.#deleteStreak.failed(this.#deleteLane);
    else this.#deleteStreak.succeeded();
    return true;
  }
}
