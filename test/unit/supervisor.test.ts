import assert from 'node:assert/strict';
import { PassThrough } from 'node:stream';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { EncoderExit, EncoderProcess } from '../../src/encode/encoder.ts';
import { EncoderSupervisor, type SupervisorOptions } from '../../src/encode/supervisor.ts';
import { createLogger } from '../../src/log.ts';

/** An encoder run that delivers what the test writes and exits when told (or when killed). */
function fakeRun() {
  const video = new PassThrough();
  let finish!: (exit: EncoderExit) => void;
  const exited = new Promise<EncoderExit>((resolve) => (finish = resolve));
  let killed = false;
  const run: EncoderProcess = {
    pid: 1,
    tracks: new Map([['video', video]]),
    input: undefined,
    exited,
    stop: async () => {
      finish({ code: 0, signal: undefined, stderrTail: [], requested: true });
      return exited;
    },
    kill: () => {
      killed = true;
      finish({ code: undefined, signal: 'SIGKILL', stderrTail: [], requested: false });
    },
  };
  return { run, video, finish, wasKilled: () => killed };
}

function supervise(overrides: Partial<SupervisorOptions>) {
  const runs: ReturnType<typeof fakeRun>[] = [];
  const interruptions: string[] = [];
  let failedAtStart = false;
  const supervisor = new EncoderSupervisor({
    start: () => {
      const r = fakeRun();
      runs.push(r);
      return r.run;
    },
    onData: () => undefined,
    onInterrupted: (why) => interruptions.push(why),
    onNewRun: () => undefined,
    onFailedAtStart: () => (failedAtStart = true),
    logger: createLogger('silent'),
    stallMs: 50,
    stallKillMs: 200,
    ...overrides,
  });
  supervisor.start();
  return { supervisor, runs, interruptions, failedAtStart: () => failedAtStart };
}

describe('the encoder supervisor', { timeout: 20_000 }, () => {
  it('before any media, a run is not a stall unless the source is waited for (a feed, a device under retry)', async () => {
    const plain = supervise({});
    await sleep(500);
    assert.deepEqual(plain.interruptions, [], 'a start-up takes its time');
    await plain.supervisor.stop();
    // Watched by a 100 ms tick: waited for (bounded) rather than slept, so a busy machine only delays it.
    const startedAt = Date.now();
    const waited = supervise({ retryAtStart: true, stallKillMs: 600 });
    const until = async (done: () => boolean) => {
      for (let i = 0; i < 500 && !done(); i++) await sleep(10);
    };
    await until(() => waited.interruptions.length > 0);
    const stalledAfter = Date.now() - startedAt;
    assert.deepEqual(waited.interruptions, ['ffmpeg stalled'], 'slate after stallKillMs without media');
    assert.ok(stalledAfter >= 600, `not before stallKillMs (${stalledAfter} ms)`);
    assert.equal(waited.runs[0]!.wasKilled(), false, 'not killed yet');
    await until(() => waited.runs[0]!.wasKilled());
    assert.ok(waited.runs[0]!.wasKilled(), 'killed for a restart');
    assert.ok(Date.now() - startedAt >= 1200, 'after twice stallKillMs');
    await waited.supervisor.stop();
  });

  it('a clean exit after media ends the stream when the source ends with it (a file played once); otherwise it restarts', async () => {
    const once = supervise({ cleanExitEnds: true });
    once.runs[0]!.video.write(Buffer.from([1]));
    await sleep(20);
    once.runs[0]!.finish({ code: 0, signal: undefined, stderrTail: [], requested: false });
    const exit = await once.supervisor.done;
    assert.equal(exit.code, 0);
    assert.equal(once.runs.length, 1);
    assert.deepEqual(once.interruptions, []);
    const live = supervise({ stallMs: 2000, stallKillMs: 5000 });
    live.runs[0]!.video.write(Buffer.from([1]));
    await sleep(20);
    live.runs[0]!.finish({ code: 0, signal: undefined, stderrTail: [], requested: false });
    for (let i = 0; i < 500 && live.runs.length < 2; i++) await sleep(10);
    assert.equal(live.runs.length, 2, 'restarted after the backoff');
    assert.equal(live.interruptions.length, 1, 'the exit interrupts the source once');
    await live.supervisor.stop();
  });

  it('replaces a run at once when asked (other settings): no backoff, not a failure, slate meanwhile', async () => {
    let newRuns = 0;
    let failures = 0;
    const h = supervise({ onNewRun: () => newRuns++, onRunFailed: () => failures++ });
    h.runs[0]!.video.write(new Uint8Array([1]));
    h.supervisor.replace('realtime level 1');
    assert.ok(h.runs[0]!.wasKilled());
    await sleep(20);
    assert.equal(h.runs.length, 2, 'the next run started without a backoff');
    assert.deepEqual(h.interruptions, ['realtime level 1']);
    assert.equal(newRuns, 1);
    assert.equal(failures, 0);
    assert.equal(h.supervisor.restarts, 1);
    // A later failure backs off from the first step again.
    await h.supervisor.stop();
  });
});
