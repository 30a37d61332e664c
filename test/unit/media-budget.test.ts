import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { mediaBudget } from '../../src/run/media-budget.ts';
import { parseByteSize } from '../../src/config/byte-size.ts';
import { parseStartArgs } from '../../src/cli/args.ts';
import { profileSchema } from '../../src/config/schema.ts';
import {
  limitFiles,
  memoryCgroupOf,
  memoryLimitWarning,
  memoryNeeded,
  parseLimit,
} from '../../src/service/memory-limit.ts';
import { DEFAULT_UNIT, renderUnit } from '../../src/service/unit-file.ts';

/** ultra-ll's ladder: 6 + 3 Mb/s video and 128 kb/s audio. */
const RATE = 9_128_000 / 8;
const base = { ladderBytesPerSecond: RATE, segdur: 1, tsb: 30 };
const MiB = 2 ** 20;

describe('the media budget: one for the store and the push outputs', () => {
  it('by default holds the time-shift window (with a margin) plus 30 s of the ladder for the origins', () => {
    const both = mediaBudget({ ...base, serving: true, pushing: true });
    assert.equal(both.storeWindowBytes, Math.round(33 * RATE * 1.1));
    assert.equal(both.pushBytes, 30 * RATE);
    assert.equal(both.budgetBytes, both.storeWindowBytes + both.pushBytes);
    assert.deepEqual(mediaBudget({ ...base, serving: false, pushing: true }), {
      budgetBytes: 30 * RATE,
      storeWindowBytes: 0,
      pushBytes: 30 * RATE,
    });
    assert.equal(mediaBudget({ ...base, serving: false, pushing: true, pushBudgetSeconds: 5 }).budgetBytes, 5 * RATE);
    assert.equal(mediaBudget({ ...base, serving: false, pushing: false }).budgetBytes, 0, 'a directory holds nothing');
  });

  it('takes an explicit budget, the origins getting what the window leaves', () => {
    const budget = mediaBudget({
      ...base,
      serving: true,
      pushing: true,
      memory: { bytes: 160 * MiB, from: '--memory' },
    });
    assert.equal(budget.budgetBytes, 160 * MiB);
    assert.equal(budget.pushBytes, 160 * MiB - budget.storeWindowBytes);
  });

  it('refuses a budget smaller than the window and two segments, naming the flag and what would do', () => {
    assert.throws(
      () => mediaBudget({ ...base, serving: true, pushing: true, memory: { bytes: 20 * MiB, from: '--memory' } }),
      /--memory 20M: this ladder \(9128 kb\/s\) needs at least 42M for the built-in origin's time-shift window \(tsb 30 s\) 40M and two segments for the origins 3M: give at least 42M, or a shorter --tsb/,
    );
    assert.throws(
      () =>
        mediaBudget({ ...base, serving: false, pushing: true, memory: { bytes: MiB, from: "the profile's memory" } }),
      /the profile's memory 1M: .* needs at least 3M for two segments for the origins/,
    );
    assert.throws(
      () =>
        mediaBudget({
          ...base,
          serving: false,
          pushing: true,
          pushBudgetSeconds: 5,
          memory: { bytes: 100 * MiB, from: '--memory' },
        }),
      /--memory and --push-budget contradict each other/,
    );
  });

  it('reads sizes as systemd does (K, M, G in powers of 1024), and refuses anything else', () => {
    assert.equal(parseByteSize('160M'), 160 * MiB);
    assert.equal(parseByteSize('1.5G'), 1.5 * 2 ** 30);
    assert.equal(parseByteSize('64MiB'), 64 * MiB);
    assert.equal(parseByteSize('512k'), 512 * 1024);
    assert.equal(parseByteSize('1000000'), 1_000_000);
    assert.equal(parseByteSize(4096), 4096);
    for (const bad of ['', 'lots', '-5M', '0', '1e9', '5T', '1.5', 1.5, -1, 0, '9'.repeat(400)])
      assert.equal(parseByteSize(bad as string), undefined, `${String(bad).slice(0, 20)}`);
    assert.equal(parseStartArgs(['--memory', '200M']).memory, 200 * MiB);
    assert.throws(() => parseStartArgs(['--memory', 'much']), /--memory "much": expected a size such as 160M/);
    const profile = (memory: unknown) => profileSchema.safeParse({ memory });
    assert.match(JSON.stringify(profile('lots').error?.issues), /expected a size such as 160M/);
  });
});

describe('the memory limit a run lives under', () => {
  it('finds the limit files of a cgroup and its parents, v1 and v2', () => {
    assert.deepEqual(limitFiles('4:memory:/system.slice/appliance.service\n0::/\n', '/cg'), [
      { file: '/cg/memory/system.slice/appliance.service/memory.limit_in_bytes', kind: 'max' },
      { file: '/cg/memory/system.slice/memory.limit_in_bytes', kind: 'max' },
    ]);
    assert.deepEqual(limitFiles('0::/system.slice/appliance.service\n', '/cg').slice(0, 2), [
      { file: '/cg/system.slice/appliance.service/memory.high', kind: 'high' },
      { file: '/cg/system.slice/appliance.service/memory.max', kind: 'max' },
    ]);
    assert.deepEqual(limitFiles('0::/\n'), [], 'the root has no limit');
    assert.deepEqual(memoryCgroupOf('5:cpu,memory:/a/b\n0::/c\n'), { version: 'v1', path: '/a/b' }, 'v1 holds memory');
    assert.deepEqual(memoryCgroupOf('0::/c\n'), { version: 'v2', path: '/c' });
    assert.equal(memoryCgroupOf(''), undefined);
    assert.deepEqual(limitFiles('garbage\n\n:::'), []);
    assert.equal(limitFiles(`0::/${'a/'.repeat(1000)}`).length, 64, 'at most 32 levels');
  });

  it('reads "max" and cgroup v1 unlimited as no limit', () => {
    assert.equal(parseLimit('671088640\n'), 640 * MiB);
    for (const none of ['max\n', '9223372036854771712', '', undefined, '-1', 'x'.repeat(100)])
      assert.equal(parseLimit(none), undefined, String(none));
  });

  it('warns when the limit is below what the run needs, and not otherwise', () => {
    const needed = memoryNeeded(40 * MiB, 1920 * 1080);
    assert.equal(memoryLimitWarning({ bytes: needed, file: 'f', kind: 'max' }, needed), undefined);
    assert.equal(memoryLimitWarning(undefined, needed), undefined);
    assert.match(
      memoryLimitWarning({ bytes: 160 * MiB, file: '/cg/memory.max', kind: 'max' }, needed)!,
      /needs about \d+M .* allows 160M \(\/cg\/memory.max\): the kernel would kill the encoder mid-stream; raise MemoryHigh=/,
    );
  });

  it("the systemd unit's MemoryHigh holds the default ultra-ll run, served or pushed, below its MemoryMax", () => {
    const unit = renderUnit(DEFAULT_UNIT);
    const high = parseByteSize(/^MemoryHigh=(\S+)$/m.exec(unit)![1]!)!;
    const max = parseByteSize(/^MemoryMax=(\S+)$/m.exec(unit)![1]!)!;
    assert.ok(high < max);
    const pixels = 1920 * 1080 + 1280 * 720;
    for (const serving of [true, false]) {
      const { budgetBytes } = mediaBudget({ ...base, serving, pushing: !serving });
      // A slate encoder (the ladder again, briefly) fits under MemoryMax beside it.
      assert.ok(memoryNeeded(budgetBytes, pixels) <= high, `serving: ${serving}`);
      assert.ok(memoryNeeded(budgetBytes, pixels) + 32 * pixels <= max);
    }
  });
});
