import assert from 'node:assert/strict';
import { describe, it, mock } from 'node:test';
import { CoalescingSender, NOTHING_TO_SEND } from '../../src/push/coalescing-sender.ts';
import type { Lane } from '../../src/push/lane.ts';
import type { Delivery } from '../../src/push/push-types.ts';
import { RetryStreak } from '../../src/push/upload-outcome.ts';

// The one coalescing sender behind the manifest, the multivariant and the media playlists, and the
// one backoff every sending loop keeps, on node:test's mock timers: no real waiting.

/** Lets every settled promise's continuations run. */
const settle = async () => {
  for (let i = 0; i < 20; i++) await Promise.resolve();
};

/** An origin the test answers by hand: each request waits for `answer`. */
function handOrigin() {
  const requests: { path: string; text: string; answer: (d: Delivery) => void }[] = [];
  const lane = {
    resets: 0,
    reset() {
      this.resets++;
    },
    close: async () => {},
  };
  let stopped = false;
  const pauses: number[] = [];
  return {
    requests,
    lane,
    pauses,
    /** Stops the sender's loop: answers what is still waiting, wakes it, and waits for its end. */
    async finish(sender: CoalescingSender) {
      stopped = true;
      for (const request of requests) request.answer('ok');
      sender.wake();
      await sender.loop;
    },
    context: {
      segdur: 1,
      stopped: () => stopped,
      pause: (ms: number) => {
        pauses.push(ms);
        return new Promise<void>((resolve) => setTimeout(resolve, ms));
      },
      deliver: (_lane: Lane, path: string, body: Uint8Array) =>
        new Promise<Delivery>((answer) => requests.push({ path, text: new TextDecoder().decode(body), answer })),
    },
  };
}

describe('coalescing sender', () => {
  it('one upload in flight; what changed meanwhile goes once, in its newest version', async () => {
    const origin = handOrigin();
    let version = 0;
    const sender = new CoalescingSender(origin.context, origin.lane as unknown as Lane);
    sender.add('live.m3u8', 'text/plain', () => `v${version}`);
    version = 1;
    sender.touch('live.m3u8');
    await settle();
    assert.deepEqual(
      origin.requests.map((r) => r.text),
      ['v1'],
    );
    for (const next of [2, 3, 4, 5, 6]) {
      version = next;
      sender.touch('live.m3u8');
    }
    await settle();
    assert.equal(origin.requests.length, 1, 'nothing queues behind the upload in flight');
    origin.requests[0]!.answer('ok');
    await settle();
    assert.deepEqual(
      origin.requests.map((r) => r.text),
      ['v1', 'v6'],
      'then only the newest',
    );
    origin.requests[1]!.answer('ok');
    await settle();
    assert.equal(sender.pending, false);
    await origin.finish(sender);
  });

  it('documents go in the order they were added; one not buildable yet stays due until a wake', async () => {
    const origin = handOrigin();
    let ready = false;
    const delivered: string[] = [];
    const sender = new CoalescingSender(origin.context, origin.lane as unknown as Lane);
    sender.add('live.mpd', 'application/dash+xml', () => (ready ? 'mpd' : undefined), {
      onDelivered: () => void delivered.push('live.mpd'),
    });
    sender.add('live.m3u8', 'text/plain', () => 'multivariant', { due: true });
    sender.touch('live.mpd');
    await settle();
    assert.deepEqual(
      origin.requests.map((r) => r.path),
      ['live.m3u8'],
      'the manifest cannot be built yet: the next one goes',
    );
    origin.requests[0]!.answer('ok');
    await settle();
    assert.equal(sender.pending, true, 'the manifest is still due');
    ready = true;
    sender.touch('live.m3u8');
    sender.wake();
    await settle();
    assert.deepEqual(
      origin.requests.map((r) => r.path),
      ['live.m3u8', 'live.mpd'],
      'the first added goes first',
    );
    origin.requests[1]!.answer('ok');
    await settle();
    assert.deepEqual(delivered, ['live.mpd']);
    await origin.finish(sender);
  });

  it('a failure resets the connection and waits the backoff before the newest version goes again', async (t) => {
    t.mock.timers.enable({ apis: ['setTimeout'] });
    const origin = handOrigin();
    let version = 0;
    const attempts: number[] = [];
    const sender = new CoalescingSender(origin.context, origin.lane as unknown as Lane);
    sender.add('live.mpd', 'application/dash+xml', () => `v${version}`, {
      due: true,
      onDelivered: (_bytes, failures) => void attempts.push(failures),
    });
    await settle();
    origin.requests[0]!.answer('retry');
    await settle();
    assert.equal(origin.lane.resets, 1);
    assert.equal(origin.pauses.length, 1);
    assert.ok(origin.pauses[0]! >= 80 && origin.pauses[0]! <= 120, `first pause ~100 ms (${origin.pauses[0]})`);
    version = 1;
    t.mock.timers.tick(origin.pauses[0]! - 1);
    await settle();
    assert.equal(origin.requests.length, 1, 'not before the pause is over');
    t.mock.timers.tick(1);
    await settle();
    assert.equal(origin.requests[1]?.text, 'v1', 'then the newest version');
    origin.requests[1]!.answer('retry');
    await settle();
    assert.ok(origin.pauses[1]! >= 160 && origin.pauses[1]! <= 240, `the pause doubles (${origin.pauses[1]})`);
    t.mock.timers.tick(origin.pauses[1]!);
    await settle();
    origin.requests[2]!.answer('ok');
    await settle();
    assert.deepEqual(attempts, [2], 'the acknowledgement says how many attempts failed before');
    await origin.finish(sender);
  });

  it('a document with nothing to send for a change is no longer due: a flush does not wait for it', async () => {
    const origin = handOrigin();
    let text: string | typeof NOTHING_TO_SEND = NOTHING_TO_SEND;
    const sender = new CoalescingSender(origin.context, origin.lane as unknown as Lane);
    sender.add('live.m3u8', 'text/plain', () => text, { due: true });
    await settle();
    assert.equal(origin.requests.length, 0);
    assert.equal(sender.pending, false);
    text = 'multivariant';
    sender.touch('live.m3u8');
    await settle();
    assert.deepEqual(
      origin.requests.map((r) => r.text),
      ['multivariant'],
    );
    await origin.finish(sender);
  });

  it('idle work runs only when no document can go, and a changed document goes before more of it', async () => {
    const origin = handOrigin();
    const work: string[] = [];
    const done: { item: string; documentDue: boolean }[] = [];
    let sender: CoalescingSender | undefined;
    sender = new CoalescingSender(origin.context, origin.lane as unknown as Lane, async () => {
      const item = work.shift();
      if (item) done.push({ item, documentDue: sender!.pending });
      // The manifest changes meanwhile: it goes before the next piece of idle work.
      if (item === 'DELETE 1') sender!.touch('live.mpd');
      return item !== undefined;
    });
    sender.add('live.mpd', 'application/dash+xml', () => 'mpd', { due: true });
    work.push('DELETE 1', 'DELETE 2');
    sender.wake();
    await settle();
    assert.equal(done.length, 0, 'the manifest first');
    origin.requests[0]!.answer('ok');
    await settle();
    assert.deepEqual([...done], [{ item: 'DELETE 1', documentDue: false }]);
    assert.equal(origin.requests.length, 2, 'the changed manifest goes before more idle work');
    origin.requests[1]!.answer('ok');
    await settle();
    assert.deepEqual(
      done.map((d) => d.item),
      ['DELETE 1', 'DELETE 2'],
    );
    await origin.finish(sender);
  });
});

describe('retry streak', () => {
  it('doubles from ~100 ms to a cap of about a segment, with jitter, and starts again after a success', async () => {
    const pauses: number[] = [];
    const streak = new RetryStreak(2, async (ms) => void pauses.push(ms));
    const connection = { resets: 0, reset: mock.fn() };
    for (let i = 0; i < 8; i++) await streak.failed(connection);
    assert.equal(connection.reset.mock.callCount(), 8);
    assert.equal(streak.failures, 8);
    const bases = [100, 200, 400, 800, 1600, 2000, 2000, 2000];
    for (const [i, ms] of pauses.entries())
      assert.ok(ms >= bases[i]! * 0.8 && ms <= bases[i]! * 1.2, `pause ${i}: ${ms} ms around ${bases[i]}`);
    streak.succeeded();
    await streak.failed();
    assert.ok(pauses.at(-1)! <= 120, 'a new streak starts quick');
  });
});
