import type { ChunkEvent, SegmentEndEvent } from '../packager/chunker.ts';

// One track's segments when several sources send it (a redundant pair of encoders, a sender's
// retry beside its cut upload): the source whose copy of a segment began first owns it, the other
// copies wait beside it; a copy of a segment already whole is acknowledged and discarded. If the
// owner's upload is cut, the copy furthest along takes over from the chunk the owner stopped at
// (the two are cut on the same epoch grid, chunk for chunk), so the segment players are reading
// goes on growing instead of breaking. Pure: what reaches the store is the sink's.

export interface ArbiterSink {
  chunk(event: ChunkEvent): void;
  end(event: SegmentEndEvent): void;
  /** The open segment will not be completed by anyone: readers must not take it for whole. */
  abort(): void;
  /** Open segment `segment` has no live source to complete it now: give it a deadline (giveUp(segment)). */
  orphaned(segment: bigint): void;
}

export interface ArbiterCounts {
  /** Copies of a segment discarded: another source's copy was first, or the segment was already whole. */
  duplicates: number;
  /** Segments another copy completed after the owner's upload was cut or went quiet. */
  takeovers: number;
  /** Segments left incomplete (cut, and no copy to complete them). */
  cut: number;
}

interface OpenSegment {
  segment: bigint;
  /** Chunks already handed to the sink. */
  delivered: number;
  /** The last chunk handed over ends the segment on the grid: only then may its end be taken. */
  complete: boolean;
  /** The sink was told it has no live owner (once). */
  orphanTold?: boolean;
  /** Undefined: its owner's upload was cut, and no copy has taken over yet. */
  owner: object | undefined;
}

/** How many chunks a copy may be ahead of the owner before it takes the segment over (the owner has gone quiet). */
const LAG_CHUNKS = 3;

/** Events sources ahead of the open segment's owner may have waiting: two segments' chunks. */
const AHEAD_LIMIT = 24;

/** Copies of the open segment from sources that do not own it, as they arrive. */
type Waiting = (ChunkEvent | SegmentEndEvent)[];

export class SegmentArbiter {
  readonly counts: ArbiterCounts = { duplicates: 0, takeovers: 0, cut: 0 };
  readonly #sink: ArbiterSink;
  #lastComplete: bigint | undefined;
  #open: OpenSegment | undefined;
  readonly #waiting = new Map<object, Waiting>();
  /** Events of later segments from sources ahead of the open segment's owner, until it completes. */
  readonly #ahead = new Map<object, Waiting>();
  #aheadEvents = 0;
  /** Chunks into the segment after the open one that a source ahead has reached (Infinity: further). */
  #aheadReach = 0;
  /** Sources already counted as a duplicate of a segment (counted once per copy, not per chunk). */
  readonly #discarded = new Map<object, bigint>();
  /** Sources whose upload ended: what they sent may still serve, but they will send no more. */
  readonly #dead = new WeakSet<object>();

  constructor(sink: ArbiterSink) {
    this.#sink = sink;
  }

  /** The newest segment whole. */
  get lastComplete(): bigint | undefined {
    return this.#lastComplete;
  }

  /** A chunk, or a segment's end, from `source`. */
  offer(source: object, event: ChunkEvent | SegmentEndEvent): void {
    const segment = event.segment;
    if (this.#lastComplete !== undefined && segment <= this.#lastComplete) return void this.#discard(source, segment);
    let open = this.#open;
    if (open && segment > open.segment) {
      // A source is ahead of the open segment's owner (a twin a chunk behind): its events wait
      // until the owner finishes, so a segment is one encoder's whenever it can be. With no owner
      // (cut, no copy), or an owner LAG_CHUNKS behind a whole copy (gone quiet near its segment's
      // end: the copy has moved on), the whole copy completes the open segment, else it is cut;
      // either way what waited goes on, in order.
      const ahead = this.#ahead.get(source) ?? [];
      ahead.push(event);
      this.#ahead.set(source, ahead);
      this.#aheadEvents++;
      // How far any source got past the open segment, in chunks: copies of one chunk count once.
      if (event.type === 'chunk')
        this.#aheadReach = Math.max(
          this.#aheadReach,
          segment > open.segment + 1n ? Number.POSITIVE_INFINITY : event.part + 1,
        );
      const whole = this.#wholeCopy();
      const lagging = whole !== undefined && this.#aheadReach >= LAG_CHUNKS;
      if (this.#alive(open.owner) && this.#aheadEvents <= AHEAD_LIMIT && !lagging) return;
      if (whole) this.#handOver(open, whole);
      else this.#abandon();
      return;
    }
    if (open && segment < open.segment) return void this.#discard(source, segment);
    if (!open) {
      if (event.type !== 'chunk' || event.part !== 0) return void this.#discard(source, segment);
      open = { segment, delivered: 0, complete: false, owner: source };
      this.#open = open;
    }
    if (!this.#alive(open.owner) && this.#alive(source)) {
      open.owner = source;
      open.orphanTold = false;
      this.counts.takeovers++;
    }
    if (open.owner !== source && this.#alive(open.owner)) {
      const waiting = this.#waiting.get(source) ?? [];
      waiting.push(event);
      this.#waiting.set(source, waiting);
      // An owner that stopped delivering while its connection stays open (a network gone quiet,
      // not closed) would hold the segment until its timeout: a copy this far ahead takes over.
      const copyChunks = waiting.filter((e) => e.type === 'chunk').length;
      if (copyChunks >= open.delivered + LAG_CHUNKS) this.#handOver(open, source);
      return;
    }
    this.#deliver(open, event);
    if (this.#open === open) this.#tellOrphaned(open);
  }

  /** `source` is sending `segment`, which is already whole: its copy is discarded (and counted once). */
  late(source: object, segment: bigint): void {
    this.#discard(source, segment);
  }

  /**
   * `source`'s upload ended (whole, or cut). Its copies stay only if whole (they may still complete
   * a segment); if it owned the unfinished open segment, a waiting copy takes over.
   */
  ended(source: object): void {
    this.#dead.add(source);
    this.#discarded.delete(source);
    const copy = this.#waiting.get(source);
    if (copy && !copy.some((e) => e.type === 'segmentEnd')) this.#waiting.delete(source);
    const open = this.#open;
    if (!open || open.owner !== source) return;
    open.owner = undefined;
    this.#takeOver(open);
  }

  #tellOrphaned(open: OpenSegment): void {
    if (this.#alive(open.owner) || open.orphanTold) return;
    open.orphanTold = true;
    this.#sink.orphaned(open.segment);
  }

  #alive(source: object | undefined): boolean {
    return source !== undefined && !this.#dead.has(source);
  }

  /** The open segment lost its owner: a whole copy completes it, else the live one furthest along. */
  #takeOver(open: OpenSegment): void {
    let best: [object, Waiting] | undefined;
    for (const entry of this.#waiting)
      if (this.#alive(entry[0]) && (!best || entry[1].length > best[1].length)) best = entry;
    const next = this.#wholeCopy() ?? best?.[0];
    if (next) this.#handOver(open, next);
    if (this.#open === open) this.#tellOrphaned(open);
  }

  /** A source whose waiting copy of the open segment is whole: it reached the grid's end, and ended there. */
  #wholeCopy(): object | undefined {
    for (const [source, events] of this.#waiting)
      if (events.some((e) => e.type === 'chunk' && e.segmentComplete) && events.some((e) => e.type === 'segmentEnd'))
        return source;
    return undefined;
  }

  /** `source`'s copy of the open segment completes it from the chunk the sink has. */
  #handOver(open: OpenSegment, source: object): void {
    const events = this.#waiting.get(source) ?? [];
    this.#waiting.delete(source);
    open.owner = source;
    this.counts.takeovers++;
    for (const event of events) if (this.#open === open) this.#deliver(open, event);
  }

  /** The sources that went ahead while the open segment was delivered: their events, in order. */
  #release(): void {
    const ahead = [...this.#ahead];
    this.#ahead.clear();
    this.#aheadEvents = 0;
    this.#aheadReach = 0;
    for (const [source, events] of ahead) for (const event of events) this.offer(source, event);
  }

  /** Whether the open segment has no live owner (the caller gives it a deadline). */
  get orphaned(): boolean {
    return this.#open !== undefined && !this.#alive(this.#open.owner);
  }

  /**
   * Nobody came to complete `segment` in time: it is cut, if it is still the open segment and still
   * has no live source (a deadline set for an earlier segment does not cut a later one).
   */
  giveUp(segment: bigint): void {
    if (this.orphaned && this.#open?.segment === segment) this.#abandon();
  }

  #deliver(open: OpenSegment, event: ChunkEvent | SegmentEndEvent): void {
    if (event.type === 'chunk') {
      // A copy taking over resends what the sink has: only the chunks after it go.
      if (event.part !== open.delivered) return;
      this.#sink.chunk(event);
      open.delivered++;
      open.complete = event.segmentComplete;
      return;
    }
    if (!open.complete) {
      // This copy ended short of the grid (its encoder skipped ahead): not whole; another completes it.
      if (open.owner === undefined) return;
      open.owner = undefined;
      this.#takeOver(open);
      return;
    }
    // A stream ends (lmsg) only when no other source is sending it: one of a pair stopping is not the end.
    const others = [...this.#waiting.keys(), ...this.#ahead.keys()].some((s) => this.#alive(s));
    this.#sink.end(event.last && others ? { ...event, last: false } : event);
    this.#lastComplete = open.segment;
    this.#open = undefined;
    // The copies that waited beside it were not needed.
    this.counts.duplicates += this.#waiting.size;
    for (const source of this.#waiting.keys()) this.#discarded.set(source, open.segment);
    this.#waiting.clear();
    this.#release();
  }

  #abandon(): void {
    this.#sink.abort();
    this.counts.cut++;
    this.#open = undefined;
    this.#waiting.clear();
    this.#release();
  }

  #discard(source: object, segment: bigint): void {
    if (this.#discarded.get(source) === segment) return;
    this.#discarded.set(source, segment);
    this.counts.duplicates++;
  }
}
