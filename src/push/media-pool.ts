/** Where a pooled chunk lives: one allocation, reused once nothing in it is held any more. */
interface Slab {
  readonly buffer: Buffer;
  used: number;
  /** Chunks in it not yet released. */
  held: number;
  /** Made for one chunk larger than a standard slab: freed (not reused) once released. */
  readonly oversize: boolean;
  /** A track is appending to it: it stays even with nothing held. */
  filling: boolean;
}

/** A slab's size unless the budget is small: a chunk of the top rendition fits many times. */
export const SLAB_BYTES = 256 * 1024;

/**
 * The memory a push output holds media in until the origin acknowledges it: chunks are copied
 * into slabs allocated on demand up to a limit and reused after, so media waiting for a slow
 * origin never becomes garbage for the collector to find late (held for seconds, each chunk would
 * outlive the young generation and pile up as tens of MB of dead buffers before a full collection).
 * What the output holds is then what the pool has allocated, which never grows past the limit
 * unless media being sent needs more (`overdraw`).
 */
export class MediaPool {
  readonly #limitBytes: number;
  readonly #slabBytes: number;
  readonly #slabOf = new Map<ArrayBufferLike, Slab>();
  readonly #free: Slab[] = [];
  /** The slab each track is filling: a track's chunks lie together, so a dropped segment frees its slabs. */
  readonly #current = new Map<string, Slab>();
  #allocatedBytes = 0;
  #peakBytes = 0;

  /** Media held elsewhere under the same budget (the built-in origin's store): the pool gets what is left. */
  readonly #outside: () => number;

  constructor(limitBytes: number, slabBytes = SLAB_BYTES, outside: () => number = () => 0) {
    this.#limitBytes = limitBytes;
    this.#outside = outside;
    // A sixteenth of the limit at most: making room for one chunk frees a slab, and a slab as
    // large as the budget would mean dropping everything held to take one chunk.
    this.#slabBytes = Math.max(1, Math.min(slabBytes, Math.floor(limitBytes / 16)));
  }

  /** Bytes the pool has allocated (held chunks, and slabs kept for reuse). */
  get allocatedBytes(): number {
    return this.#allocatedBytes;
  }

  /** The most it ever allocated. */
  get peakBytes(): number {
    return this.#peakBytes;
  }

  /**
   * One contiguous copy of `parts`, or undefined when it fits neither a slab in hand nor the
   * limit: the caller releases older media and asks again, or overdraws.
   */
  take(track: string, parts: readonly Uint8Array[], byteLength: number): Buffer | undefined {
    const slab = this.#slabFor(track, byteLength, false);
    return slab && this.#copy(slab, parts, byteLength);
  }

  /** As take, past the limit if need be: for media that must be held whatever it costs. */
  overdraw(track: string, parts: readonly Uint8Array[], byteLength: number): Buffer {
    return this.#copy(this.#slabFor(track, byteLength, true)!, parts, byteLength);
  }

  get limitBytes(): number {
    return this.#limitBytes;
  }

  /**
   * One more holder of a chunk from take or overdraw (each holder releases it once); false when
   * its slab was freed meanwhile (every holder released it): the caller takes a new copy.
   */
  retain(chunk: Uint8Array): boolean {
    const slab = this.#slabOf.get(chunk.buffer);
    if (!slab || slab.held === 0) return false;
    slab.held++;
    return true;
  }

  /** Gives chunks from take or overdraw back; a slab with nothing left held is reused. */
  release(chunks: readonly Uint8Array[]): void {
    for (const chunk of chunks) {
      const slab = this.#slabOf.get(chunk.buffer);
      if (!slab || slab.held === 0) continue;
      if (--slab.held > 0 || slab.filling) continue;
      this.#retire(slab);
    }
  }

  #retire(slab: Slab): void {
    if (slab.oversize || this.#allocatedBytes + this.#outside() > this.#limitBytes) {
      this.#slabOf.delete(slab.buffer.buffer);
      this.#allocatedBytes -= slab.buffer.byteLength;
      return;
    }
    slab.used = 0;
    this.#free.push(slab);
  }

  #slabFor(track: string, byteLength: number, overdraw: boolean): Slab | undefined {
    const current = this.#current.get(track);
    if (current?.held === 0) current.used = 0;
    if (current && current.buffer.byteLength - current.used >= byteLength) return current;
    if (byteLength > this.#slabBytes) return this.#allocate(byteLength, true, overdraw);
    const reused = this.#free.pop();
    const next = reused ?? this.#allocate(this.#slabBytes, false, overdraw);
    if (!next) return undefined;
    // The slab left behind is retired once its last chunk is released (now, if none is held).
    if (current) {
      current.filling = false;
      if (current.held === 0) this.#retire(current);
    }
    next.filling = true;
    this.#current.set(track, next);
    return next;
  }

  #allocate(bytes: number, oversize: boolean, overdraw: boolean): Slab | undefined {
    if (!overdraw && this.#allocatedBytes + this.#outside() + bytes > this.#limitBytes) return undefined;
    // A slab of its own (allocUnsafe would carve small ones from Node's shared pool), never
    // exposed before it is written.
    const slab: Slab = { buffer: Buffer.allocUnsafeSlow(bytes), used: 0, held: 0, oversize, filling: false };
    this.#slabOf.set(slab.buffer.buffer, slab);
    this.#allocatedBytes += bytes;
    this.#peakBytes = Math.max(this.#peakBytes, this.#allocatedBytes);
    return slab;
  }

  #copy(slab: Slab, parts: readonly Uint8Array[], byteLength: number): Buffer {
    const chunk = slab.buffer.subarray(slab.used, slab.used + byteLength);
    let at = 0;
    for (const part of parts) {
      chunk.set(part, at);
      at += part.byteLength;
    }
    slab.used += byteLength;
    slab.held++;
    return chunk;
  }
}
