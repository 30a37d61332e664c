import { segmentPath } from '../layout/object-names.ts';
import { oldestKept } from '../timeline/window.ts';
import type { Lane } from './lane.ts';
import type { ManifestBuilder, ManifestView, OriginProfile, SegmentRun } from './push-types.ts';
import type { ShedSpan } from '../packager/shed.ts';
import { retryDelayMs } from './upload-outcome.ts';
import { Wakeup } from './wakeup.ts';

type Delivery = 'ok' | 'retry' | 'gave-up';

/** What the control connection needs to know of the output it serves. */
export interface ControlContext {
  profile: OriginProfile;
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
 * built when it is sent) and, when no manifest waits, DELETEs of expired segments.
 */
export class ControlLane {
  readonly #context: ControlContext;
  readonly #lane: Lane;
  /** DELETEs go pipelined on a connection of their own: LL-HLS part files make many of them. */
  readonly #deleteLane: Lane;
  readonly #wakeup = new Wakeup();
  readonly #deletes: { path: string; attempts: number }[] = [];
  #builder: ManifestBuilder | undefined;
  #dirty = false;
  /** Other whole documents (the multivariant playlist), sent after the manifest when they change. */
  readonly #documents = new Map<string, { contentType: string; build: () => string | undefined; dirty: boolean }>();
  readonly loop: Promise<void>;

  constructor(context: ControlContext, lane: Lane, deleteLane: Lane) {
    this.#context = context;
    this.#lane = lane;
    this.#deleteLane = deleteLane;
    this.loop = this.#run();
  }

  /** A manifest is waiting to be sent (or resent). */
  get pending(): boolean {
    return this.#dirty || [...this.#documents.values()].some((d) => d.dirty);
  }

  /** Sends `name` (once ready, like the manifest) and again after each `touchDocument`. */
  publishDocument(name: string, contentType: string, build: () => string | undefined): void {
    this.#documents.set(name, { contentType, build, dirty: true });
    this.#wakeup.wake();
  }

  /** What `name` would say changed (the multivariant playlist of an output that shed a variant): send it again. */
  touchDocument(name: string): void {
    const document = this.#documents.get(name);
    if (!document) return;
    document.dirty = true;
    this.#wakeup.wake();
  }

  publish(build: ManifestBuilder): void {
    this.#builder = build;
    this.touch();
  }

  /** What the manifest would say changed: send it again. */
  touch(): void {
    if (!this.#builder) return;
    this.#dirty = true;
    this.#wakeup.wake();
  }

  wake(): void {
    this.#wakeup.wake();
  }

  async close(): Promise<void> {
    await Promise.all([this.#lane.close(), this.#deleteLane.close()]);
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
    if (this.#deletes.length) this.#wakeup.wake();
  }

  #view(): ManifestView {
    const generic = this.#context.profile === 'generic';
    return {
      utcTimingUrl: this.#context.utcTimingUrl,
      asto: generic ? 0 : this.#context.asto,
      announced: generic ? { video: this.#announced('video'), audio: this.#announced('audio') } : undefined,
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
    const tracks = [...this.#context.tracks()];
    if (!tracks.length || !tracks.every((t) => t.initAcknowledged)) return false;
    return (
      this.#context.profile !== 'generic' ||
      [...new Set(tracks.map((t) => t.kind))].every((kind) => this.#announced(kind))
    );
  }

  async #run(): Promise<void> {
    let failures = 0;
    const stopped = () => this.#context.stopped();
    while (!stopped() || this.pending) {
      let result: Delivery;
      const document = this.#ready() ? [...this.#documents].find(([, d]) => d.dirty) : undefined;
      if (this.#dirty && this.#builder && this.#ready() && !stopped()) {
        this.#dirty = false;
        const text = new TextEncoder().encode(this.#builder!(this.#view()));
        result = await this.#context.deliver(this.#lane, this.#context.manifestName, text, 'application/dash+xml');
        if (result === 'ok') this.#context.onManifestAcknowledged(text.byteLength, failures);
        else if (result === 'retry') this.#dirty = true;
      } else if (document && !stopped()) {
        const [name, entry] = document;
        entry.dirty = false;
        const text = entry.build();
        result =
          text === undefined
            ? 'ok'
            : await this.#context.deliver(this.#lane, name, new TextEncoder().encode(text), entry.contentType);
        if (result === 'retry') entry.dirty = true;
      } else if (this.#deletes.length && !stopped()) {
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
          else if (results[index] === 'retry' || !stopped()) this.#context.onDeleteGivenUp(item.path, item.attempts);
        }
        this.#deletes.unshift(...again);
        result = again.length ? 'retry' : 'ok';
        if (result === 'retry') {
          this.#deleteLane.reset();
          await this.#context.pause(retryDelayMs(failures++, this.#context.segdur));
          continue;
        }
      } else if (stopped()) {
        return;
      } else {
        await this.#wakeup.wait();
        continue;
      }
      if (result === 'retry') {
        this.#lane.reset();
        await this.#context.pause(retryDelayMs(failures++, this.#context.segdur));
      } else failures = 0;
    }
  }
}
