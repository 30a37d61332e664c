import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MediaPool } from '../../src/push/media-pool.ts';
import { SharedMedia, type MediaHolder } from '../../src/push/shared-media.ts';
import type { ChunkEvent } from '../../src/packager/chunker.ts';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);
const SLAB = 256;
/** The smallest limit that keeps 256-byte slabs (a slab is at most a sixteenth of the limit). */
const LIMIT = 16 * SLAB;

/** Takes 200-byte chunks (one per slab) until the pool is full; returns them. */
function fill(pool: MediaPool, track = 'v'): Buffer[] {
  const chunks: Buffer[] = [];
  for (let i = 0; i < 100; i++) {
    const chunk = pool.take(track, [bytes(200, i)], 200);
    if (!chunk) return chunks;
    chunks.push(chunk);
  }
  throw new Error('the pool never filled');
}

describe('MediaPool: media held in reused slabs, bounded by the budget', () => {
  it('copies the parts of a chunk into one contiguous buffer', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const chunk = pool.take('v', [bytes(3, 1), bytes(2, 2)], 5)!;
    assert.deepEqual([...chunk], [1, 1, 1, 2, 2]);
    assert.equal(pool.allocatedBytes, SLAB);
  });

  it('uses slabs of a sixteenth of the limit at most', () => {
    const pool = new MediaPool(1600, SLAB);
    pool.take('v', [bytes(10, 1)], 10);
    assert.equal(pool.allocatedBytes, 100);
  });

  it('refuses a chunk past the limit, and takes it once released media frees a slab', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const chunks = fill(pool);
    assert.equal(chunks.length, 16);
    assert.equal(pool.allocatedBytes, LIMIT);
    assert.equal(pool.take('v', [bytes(200, 3)], 200), undefined, 'one more slab would pass the limit');
    pool.release([chunks[0]!]);
    assert.ok(pool.take('v', [bytes(200, 99)], 200), 'the released slab is reused');
    assert.equal(pool.allocatedBytes, LIMIT);
    assert.deepEqual([...chunks[1]!.subarray(0, 3)], [1, 1, 1], 'media still held is untouched by the reuse');
    assert.equal(pool.peakBytes, LIMIT);
  });

  it('keeps each track in slabs of its own, so dropping one track frees its slabs', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const video = [pool.take('v', [bytes(100, 1)], 100)!, pool.take('v', [bytes(100, 1)], 100)!];
    pool.take('a', [bytes(10, 2)], 10);
    assert.equal(pool.allocatedBytes, 2 * SLAB, 'audio does not share the video slab');
    pool.take('v', [bytes(100, 1)], 100);
    assert.equal(pool.allocatedBytes, 3 * SLAB);
    pool.release(video);
    // The first video slab is free again: the next slab any track needs reuses it.
    pool.take('a', [bytes(250, 2)], 250);
    assert.equal(pool.allocatedBytes, 3 * SLAB);
  });

  it('holds a chunk larger than a slab in one of its own, freed (not kept) once released', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const big = pool.take('v', [bytes(1000, 7)], 1000)!;
    assert.equal(big.byteLength, 1000);
    assert.equal(pool.allocatedBytes, 1000);
    pool.release([big]);
    assert.equal(pool.allocatedBytes, 0);
  });

  it('overdraws only when asked, and gives the excess back on release', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const held = fill(pool);
    const over = [pool.overdraw('v', [bytes(200, 2)], 200)];
    assert.equal(pool.allocatedBytes, LIMIT + SLAB);
    assert.equal(pool.peakBytes, LIMIT + SLAB);
    pool.release(held);
    pool.release(over);
    fill(pool);
    assert.ok(pool.allocatedBytes <= LIMIT, `${pool.allocatedBytes} bytes allocated after the overdraft was released`);
  });

  it('ignores chunks it does not know and releases counted once', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const chunk = pool.take('v', [bytes(10, 1)], 10)!;
    pool.take('w', [bytes(10, 1)], 10);
    pool.release([Buffer.alloc(10), chunk, chunk]);
    assert.equal(pool.allocatedBytes, 2 * SLAB);
  });

  it('keeps a slab for as long as any holder of its chunk has not released it', () => {
    const pool = new MediaPool(LIMIT, SLAB);
    const chunk = pool.take('v', [bytes(200, 5)], 200)!;
    assert.equal(pool.retain(chunk), true);
    pool.release([chunk]);
    pool.take('v', [bytes(100, 6)], 100);
    assert.deepEqual([...chunk.subarray(0, 2)], [5, 5], 'still held by the second holder: not reused');
    pool.release([chunk]);
    assert.equal(pool.retain(chunk), false, 'every holder released it: no more holders');
    assert.equal(pool.retain(Buffer.alloc(4)), false, 'a chunk not from the pool');
  });

  it('counts media held outside it (the store) against the same limit', () => {
    let outside = 0;
    const pool = new MediaPool(LIMIT, SLAB, () => outside);
    outside = LIMIT - 2 * SLAB;
    assert.ok(pool.take('v', [bytes(200, 1)], 200));
    assert.ok(pool.take('v', [bytes(200, 1)], 200));
    assert.equal(pool.take('v', [bytes(200, 1)], 200), undefined, 'the store holds the rest of the budget');
    outside = 0;
    assert.ok(pool.take('v', [bytes(200, 1)], 200), 'room again once the store freed its media');
  });
});

/** A chunk event of `track`, segment `segment`, `size` bytes of `fill`. */
const chunkEvent = (track: string, segment: bigint, size: number, fill = 1): ChunkEvent =>
  ({ type: 'chunk', track, segment, part: 0, parts: [bytes(size, fill)], byteLength: size }) as unknown as ChunkEvent;

/** A push output's queue as the budget sees it: segments held, oldest dropped first. */
class Queue implements MediaHolder {
  readonly held = new Map<bigint, Buffer>();
  readonly dropped: bigint[] = [];
  readonly media: SharedMedia;
  constructor(media: SharedMedia) {
    this.media = media;
    media.join(this);
  }
  take(event: ChunkEvent): Buffer {
    const chunk = this.media.hold(event);
    this.held.set(event.segment, chunk);
    return chunk;
  }
  acknowledge(segment: bigint): void {
    this.media.release([this.held.get(segment)!]);
    this.held.delete(segment);
  }
  oldestDroppable(): bigint | undefined {
    return [...this.held.keys()].sort((a, b) => (a < b ? -1 : 1))[0];
  }
  dropOldest(): void {
    const oldest = this.oldestDroppable()!;
    this.dropped.push(oldest);
    this.acknowledge(oldest);
  }
}

describe('SharedMedia: every push output holds the one copy of a chunk, under one budget', () => {
  it('copies a chunk once for every output that takes it, and frees it when the last one lets go', () => {
    const media = new SharedMedia(LIMIT, undefined, SLAB);
    const [a, b, c] = [new Queue(media), new Queue(media), new Queue(media)];
    const event = chunkEvent('v', 1n, 200, 9);
    const copies = [a.take(event), b.take(event), c.take(event)];
    assert.ok(
      copies.every((copy) => copy === copies[0]),
      'one buffer for all three',
    );
    assert.equal(media.pool.allocatedBytes, SLAB, 'one slab for three outputs');
    a.acknowledge(1n);
    b.acknowledge(1n);
    media.hold(chunkEvent('v', 2n, 100, 4));
    assert.deepEqual([...copies[0]!.subarray(0, 2)], [9, 9], 'still held by the third output: untouched');
  });

  it('makes room by dropping the oldest media of whichever output holds it, the fast outputs keeping theirs', () => {
    const media = new SharedMedia(LIMIT, undefined, SLAB);
    const slow = new Queue(media);
    const fast = new Queue(media);
    for (let segment = 1n; segment <= 16n; segment++) {
      const event = chunkEvent('v', segment, 200);
      slow.take(event);
      fast.take(event);
      fast.acknowledge(segment);
    }
    assert.equal(media.pool.allocatedBytes, LIMIT, 'the budget is full of what the slow origin has not acknowledged');
    const event = chunkEvent('v', 17n, 200);
    slow.take(event);
    fast.take(event);
    assert.deepEqual(slow.dropped, [1n], 'the slow output lost its oldest segment');
    assert.deepEqual(fast.dropped, [], 'the fast output lost nothing');
    assert.equal(media.pool.allocatedBytes, LIMIT, 'never past the budget');
  });

  it('overdraws when nothing can be dropped, rather than lose media being sent', () => {
    const media = new SharedMedia(2 * 16 * 10, undefined, 10);
    const chunk = media.hold(chunkEvent('v', 1n, 400));
    assert.equal(chunk.byteLength, 400);
    assert.ok(media.pool.allocatedBytes > media.budgetBytes);
  });
});
