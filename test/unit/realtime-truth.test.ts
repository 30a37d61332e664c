import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idleCpus, parseCpuList, parseProcStat, parseSchedstat, waitShare } from '../../src/encode/cpu-wait.ts';
import { hlsTiming, withLatencyMargin } from '../../src/packager/hls-playlist.ts';
import { restartLeadAfter, speedBetween } from '../../src/run/encoder-readings.ts';

describe('what the real-time controller reads and tells', () => {
  it("reads a thread's schedstat (ns on a CPU, ns waiting for one); junk is no reading", () => {
    assert.deepEqual(parseSchedstat('1841000000 8068000000 5123\n'), { runNs: 1_841_000_000, waitNs: 8_068_000_000 });
    for (const junk of ['', 'x y z', '-1 5 3', '12', '1e99 1 1']) assert.equal(parseSchedstat(junk), undefined, junk);
  });

  it('the share of runnable time spent waiting, between two readings', () => {
    assert.equal(waitShare({ runNs: 0, waitNs: 0 }, { runNs: 300, waitNs: 100 }), 0.25);
    assert.equal(waitShare({ runNs: 10, waitNs: 10 }, { runNs: 10, waitNs: 10 }), undefined, 'nothing ran');
    assert.equal(waitShare({ runNs: 500, waitNs: 0 }, { runNs: 400, waitNs: 0 }), undefined, 'a thread ended');
  });

  it('reads the idle share of the CPUs the encoder may use from /proc/stat; junk is no reading', () => {
    const stat = (idle0: number, idle1: number) =>
      `cpu  9 0 9 ${idle0 + idle1} 0 0 0 0 0 0\ncpu0 100 0 0 ${idle0} 0 0 0 0 0 0\ncpu1 100 0 0 ${idle1} 0 0 0 0 0 0\nintr 1 2 3\n`;
    const before = parseProcStat(stat(100, 100));
    const after = parseProcStat(stat(130, 200));
    assert.deepEqual(before.get(0), { idle: 100, total: 200 });
    // cpu0 idle 30 of its 30 jiffies since, cpu1 100 of 100: the encoder pinned to cpu0 has one idle CPU.
    assert.equal(idleCpus(before, after, [0]), 1);
    assert.equal(idleCpus(before, after, [0, 1]), 2);
    assert.equal(idleCpus(before, after, [2]), undefined, 'a CPU not listed');
    assert.equal(parseProcStat('cpu0 a b c d\ncpu1 -1 0 0 0 0').size, 0);
    assert.deepEqual(parseCpuList('0-2,5\n'), [0, 1, 2, 5]);
    for (const junk of ['', 'x', '3-1', '0-99999', '1,,2']) assert.equal(parseCpuList(junk), undefined, junk);
  });

  it("the encoder's speed: the lower of its output time and the source frames it took; no reading before media", () => {
    const epochUs = 1_796_618_000_000_000;
    const at = (ms: number, outUs: number, frame: number, dup = 0) => ({ at: ms, outUs, frame, dup });
    const ladder = { framerate: 30, tracks: 2 };
    assert.equal(speedBetween(at(0, 0, 30), at(1000, 1_000_000, 60), ladder), 1, 'real time');
    assert.equal(speedBetween(at(0, 0, 0), at(1000, epochUs, 5), ladder), undefined, 'no frame yet before');
    assert.equal(speedBetween(at(0, 0, 3), at(1000, epochUs, 33), ladder), undefined, "the output time's first jump");
    assert.equal(speedBetween(at(0, 0, 30), at(0, 0, 30), ladder), undefined, 'no time between');
    // The box of the notes, at the ladder's first second: output 1.03x, 8 copies made per output.
    const late = speedBetween(at(0, epochUs, 30), at(1000, epochUs + 1_030_000, 61, 16), ladder);
    assert.ok(Math.abs(late! - 23 / 30) < 1e-9, String(late));
    assert.equal(speedBetween(at(0, epochUs, 30), at(1000, epochUs + 500_000, 45), ladder), 0.5, 'slow output');
    assert.equal(
      speedBetween(at(0, epochUs, 30), at(1000, epochUs + 1_000_000, 60, 40), { framerate: 30, tracks: 1 }),
      0,
      'more copies than frames',
    );
  });

  it("a restarted run that missed its Period's first frame makes the next restarts earlier, up to a limit", () => {
    const period = 1_796_620_000_000;
    const run = (firstChunkEndMs: number) => ({ periodStartMs: period, firstChunkEndMs, chunkMs: 100, maxMs: 800 });
    assert.equal(restartLeadAfter(500, run(period + 100)), 500, 'the first chunk is the Period’s: on time');
    assert.equal(restartLeadAfter(500, run(period + 1100)), 750, 'a boundary later: 0.25 s earlier');
    assert.equal(restartLeadAfter(750, run(period + 1100)), 800, 'never more than the limit');
  });

  it("moves the playlists' hold-backs by the margin, and leaves them alone without one", () => {
    const timing = hlsTiming({
      segdur: 1,
      cdur: 0.1,
      partChunks: 1,
      audioSampleRate: 48_000,
      tsb: 30,
      llhls: 'br',
      latencyTarget: 0.8,
    });
    assert.equal(withLatencyMargin(timing, 0), timing);
    const late = withLatencyMargin(timing, 1400);
    assert.equal(late.partHoldBack, 2.2);
    assert.equal(late.holdBack, timing.holdBack + 1.4);
    assert.equal(late.partTarget, timing.partTarget, 'only what players hold back changes');
  });
});
