import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MediaPool } from '../../src/push/media-pool.ts';

const bytes = (n: number, fill: number) => new Uint8Array(n).fill(fill);

describe('MediaPool: media held in reused slabs, bounded by the budget', () => {
  it('copies the parts of a chunk into one contiguous buffer', () => {
    const pool = new MediaPool(1024, 256);
    const chunk = pool.take('v', [bytes(3, 1), bytes(2, 2)], 5)!;
    assert.deepEqual([...chunk], [1, 1, 1, 2, 2]);
    assert.equal(pool.allocatedBytes, 256);
  });

  it('refuses a chunk past the limit, and takes it once released media frees a slab', () => {
    const pool = new MediaPool(512, 256);
    const first = [pool.take('v', [bytes(200, 1)], 200)!];
    const second = [pool.take('v', [bytes(200, 2)], 200)!];
    assert.equal(pool.take('v', [bytes(200, 3)], 200), undefined, 'a third slab would pass the limit');
    pool.release(first);
    const third = pool.take('v', [bytes(200, 3)], 200)!;
    assert.ok(third, 'the released slab is reused');
    assert.equal(pool.allocatedBytes, 512);
    assert.deepEqual([...second[0]!.subarray(0, 3)], [2, 2, 2], 'media still held is untouched by the reuse');
    assert.equal(pool.peakBytes, 512);
  });

  it('keeps each track in slabs of its own, so dropping one track frees its slabs', () => {
    const pool = new MediaPool(768, 256);
    const video = [pool.take('v', [bytes(100, 1)], 100)!, pool.take('v', [bytes(100, 1)], 100)!];
    pool.take('a', [bytes(10, 2)], 10);
    assert.equal(pool.allocatedBytes, 512);
    pool.take('v', [bytes(100, 1)], 100);
    assert.equal(pool.allocatedBytes, 768);
    pool.release(video);
    // The first video slab is free again: the next slab any track needs reuses it.
    pool.take('a', [bytes(250, 2)], 250);
    assert.equal(pool.allocatedBytes, 768);
  });

  it('holds a chunk larger than a slab in one of its own, freed (not kept) once released', () => {
    const pool = new MediaPool(4096, 256);
    const big = pool.take('v', [bytes(1000, 7)], 1000)!;
    assert.equal(big.byteLength, 1000);
    assert.equal(pool.allocatedBytes, 1000);
    pool.release([big]);
    assert.equal(pool.allocatedBytes, 0);
  });

  it('overdraws only when asked, and gives the excess back on release', () => {
    const pool = new MediaPool(256, 256);
    const held = [pool.take('v', [bytes(200, 1)], 200)!];
    assert.equal(pool.take('v', [bytes(200, 2)], 200), undefined);
    const over = [pool.overdraw('v', [bytes(200, 2)], 200)];
    assert.equal(pool.allocatedBytes, 512);
    assert.equal(pool.peakBytes, 512);
    pool.release(held);
    pool.release(over);
    pool.take('v', [bytes(200, 3)], 200);
    assert.ok(pool.allocatedBytes <= 256, `${pool.allocatedBytes} bytes allocated after the overdraft was released`);
  });

  it('ignores chunks it does not know and releases counted once', () => {
    const pool = new MediaPool(512, 256);
    const chunk = pool.take('v', [bytes(10, 1)], 10)!;
    pool.take('w', [bytes(10, 1)], 10);
    pool.release([Buffer.alloc(10), chunk, chunk]);
    assert.equal(pool.allocatedBytes, 512);
  });
});
