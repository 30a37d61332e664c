import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { sequenceHoles } from '../../bench/continuity.ts';
import { slateFigures, type SlateLog } from '../helpers/slate-watch.ts';

const chunk = (track: string, segment: number, part: number) => ({
  track,
  segment: String(segment),
  part,
  mediaEndMs: 0,
  at: 0,
});

describe('continuity measurements (bench and player test)', () => {
  it('counts holes in a chunk sequence per track: skipped parts, skipped segments, segments not starting at part 0', () => {
    const whole = [0, 1, 2]
      .flatMap((part) => [chunk('v', 10, part), chunk('a', 10, part)])
      .concat([chunk('v', 11, 0), chunk('a', 11, 0)]);
    assert.equal(sequenceHoles(whole), 0);
    assert.equal(sequenceHoles([chunk('v', 10, 0), chunk('v', 10, 2)]), 1, 'a part skipped');
    assert.equal(sequenceHoles([chunk('v', 10, 0), chunk('v', 12, 0)]), 1, 'a segment skipped');
    assert.equal(sequenceHoles([chunk('v', 10, 0), chunk('v', 11, 1)]), 1, 'a segment without its first part');
    assert.equal(sequenceHoles([chunk('v', 10, 1), chunk('v', 10, 0)]), 1, 'backwards');
  });

  it('reads when the slate came and went from the page log, in host and in media time', () => {
    const killedAt = 10_000;
    const log: SlateLog = [];
    for (let at = 5_000; at < 20_000; at += 100) log.push([at, at >= 10_900 && at < 12_600]);
    const figures = slateFigures(log, killedAt, 850);
    assert.deepEqual(figures, {
      liveBefore: true,
      slateOnScreenMs: 900,
      slateInMediaMs: 50,
      slateShownMs: 1700,
      liveAtEnd: true,
    });
    const stuck = slateFigures(
      log.map(([at]) => [at, at >= 10_900]),
      killedAt,
      850,
    );
    assert.equal(stuck.slateShownMs, undefined, 'the live picture never returned');
    assert.equal(stuck.liveAtEnd, false);
    assert.equal(
      slateFigures(
        log.map(([at]) => [at, false]),
        killedAt,
        850,
      ).slateOnScreenMs,
      undefined,
      'no slate',
    );
  });
});
