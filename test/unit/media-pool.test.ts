import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MediaPool } from '../../src/push/media-pool.ts';

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
});
