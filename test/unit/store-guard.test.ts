import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ObjectStore } from '../../src/origin/store.ts';

describe('ObjectStore: one failing listener', () => {
  it('is reported and never reaches the upload, nor stops the other listeners', () => {
    const store = new ObjectStore({ timeShiftBufferDepth: 30, holdMs: 1000 });
    const faults: string[] = [];
    store.onListenerFault = (error, path) => faults.push(`${path}: ${(error as Error).message}`);
    let others = 0;
    store.watch('live/v.m3u8', () => {
      throw new Error('watcher broke');
    });
    store.watch('live/v.m3u8', () => others++);
    const object = store.begin('live/v.m3u8');
    object.subscribe(() => {
      throw new Error('reader broke');
    });
    assert.doesNotThrow(() => object.append(new Uint8Array([1])));
    assert.doesNotThrow(() => object.complete(store.now()));
    assert.ok(others >= 2, 'the other watcher was called every time');
    assert.ok(faults.includes('live/v.m3u8: watcher broke'));
    assert.ok(faults.includes('live/v.m3u8: reader broke'));
  });
});
