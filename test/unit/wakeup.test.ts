import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Wakeup } from '../../src/push/wakeup.ts';
import { TICK_MS } from '../../src/run/live-session.ts';
import { Ticker } from '../../src/run/ticker.ts';

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

describe('Ticker', () => {
  it('ticks at the delay each tick asks for; hurry brings a distant tick forward, and stop ends it', async () => {
    const ticker = new Ticker();
    const ticks: number[] = [];
    let hurried: () => void = () => {};
    const done = new Promise<void>((resolve) => {
      hurried = resolve;
    });
    const startedAt = performance.now();
    // The first tick is an hour away, as a calm session's would be far off; hurry must bring it to TICK_MS.
    ticker.start(() => {
      ticks.push(performance.now() - startedAt);
      if (ticks.length === 3) hurried();
      return 1;
    }, 3_600_000);
    ticker.hurry();
    await done;
    ticker.stop();
    const count = ticks.length;
    await new Promise((resolve) => setTimeout(resolve, 30));
    assert.equal(ticks.length, count, 'no tick after stop');
    assert.ok(ticks[0]! >= TICK_MS - 2 && ticks[0]! < 3_600_000, `first tick at ${ticks[0]} ms`);
  });
});
