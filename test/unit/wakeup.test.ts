import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Wakeup } from '../../src/push/wakeup.ts';

describe('Wakeup', () => {
  it('wakes the waiter, and once closed every later waiter at once (a stop is never missed)', async () => {
    const wakeup = new Wakeup();
    let woken = false;
    const waiting = wakeup.wait().then(() => (woken = true));
    await Promise.resolve();
    assert.equal(woken, false);
    wakeup.wake();
    await waiting;
    assert.equal(woken, true);
    wakeup.close();
    // A loop that checked for the stop, then awaited work that ended after it, waits no more.
    const late = await Promise.race([
      wakeup.wait().then(() => 'woken'),
      new Promise((resolve) => setTimeout(() => resolve('asleep'), 1000)),
    ]);
    assert.equal(late, 'woken');
  });
});
