import assert from 'node:assert/strict';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { measureAvSync } from '../../helpers/av-sync.ts';
import { writeLightProfile } from '../../helpers/light-profile.ts';
import { scratchDirectories } from '../../helpers/scratch.ts';
import { logLines, runAppliance } from '../../helpers/run.ts';

// A drifting sound card (the test source's audio clock runs 1500 ppm fast): audio is kept within a
// frame of video. Alone: a neighbour's CPU load moves the offsets it measures by milliseconds.

const scratch = scratchDirectories('av-sync');

describe('A/V sync against a drifting sound card (test:sync:drift)', () => {
  it('keeps audio within one video frame of video, and reports the offset it measures', async () => {
    const dir = await scratch();
    const out = join(dir, 'out');
    const run = await runAppliance(
      [
        'start',
        '--no-adapt',
        '--source',
        'test:sync:drift',
        '--profile',
        await writeLightProfile(dir),
        '--output',
        join(out, 'live.mpd'),
        '--state-dir',
        join(dir, 'state'),
        '--duration',
        '28',
      ],
      { timeout: 90_000 },
    );
    assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
    const report = await measureAvSync(out, '360p');
    const frameMs = 1000 / 30;
    assert.ok(report.offsetsMs.length >= 20, `${report.offsetsMs.length} beeps paired with flashes`);
    // Without compensation the 1500 ppm drift alone moves audio 1.5 ms a second: 42 ms by the end,
    // more than a frame.
    for (const error of report.beepErrorsMs)
      assert.ok(Math.abs(error) < frameMs, `beeps on the wall-clock seconds: ${report.beepErrorsMs.join(' ')}`);
    for (const error of report.flashErrorsMs)
      assert.ok(Math.abs(error) < frameMs, `flashes on the wall-clock seconds: ${report.flashErrorsMs.join(' ')}`);
    for (const offset of report.offsetsMs)
      assert.ok(Math.abs(offset) < frameMs, `A/V offsets (beep − flash): ${report.offsetsMs.join(' ')}`);
    const measured = logLines(String(run.stderr)).find((l) => l['msg'] === 'chunk delay')?.['avOffset'] as
      | { offsetMs: number; worstMs: number }
      | undefined;
    assert.ok(
      measured && typeof measured.worstMs === 'number',
      `the appliance reports the A/V offset: ${JSON.stringify(measured)}`,
    );
    assert.ok(Math.abs(measured.worstMs) < frameMs, `reported offset within a frame: ${JSON.stringify(measured)}`);
  });
});
