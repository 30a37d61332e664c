import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { idleCpus, parseCpuList, parseProcStat, parseSchedstat, waitShare } from '../../src/encode/cpu-wait.ts';
import { hlsTiming, withLatencyMargin } from '../../src/packager/hls-playlist.ts';

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
