import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parseProfile, profileFile } from '../../src/config/profile.ts';
import { ConfigError } from '../../src/errors.ts';
import { lateMsOf, levelCosts, lowerFrameRate, realtimeLevels } from '../../src/ladder/realtime-steps.ts';

// ultra-ll with its real-time steps on (they are off unless a profile or --adapt says).
const ultraText = (await readFile(profileFile('ultra-ll'), 'utf8')).replace(
  /^latency:/m,
  'realtime:\n  adapt: true\nlatency:',
);
const ultra = parseProfile(ultraText, 'ultra-ll.yaml');

describe('the real-time steps of a profile', () => {
  it('ultra-ll by default: preset one step faster, then the top rendition no longer encoded, then 20 fps', () => {
    const levels = realtimeLevels(ultra);
    assert.deepEqual(
      levels.map((l) => l.change),
      ['', 'x264 preset superfast → ultrafast', '1080p no longer encoded', '30 → 20 fps'],
    );
    const last = levels.at(-1)!.profile;
    assert.equal(last.video.preset, 'ultrafast');
    assert.equal(last.video.framerate, 20);
    assert.deepEqual(
      last.video.renditions.map((r) => r.id),
      ['720p'],
    );
    assert.equal(levels[0]!.profile, ultra, 'level 0 is the profile as written');
    assert.equal(ultra.video.preset, 'superfast', 'the profile itself is left alone');
    const own = parseProfile(
      ultraText.replace(/^realtime:\n/m, 'realtime:\n  steps: [framerate, framerate]\n'),
      'p.yaml',
    );
    assert.deepEqual(
      realtimeLevels(own).map((l) => l.change),
      ['', '30 → 20 fps', '20 → 10 fps'],
      "a profile's own order",
    );
  });

  it('what each level costs, relative to the profile: near what the whole command line measured', () => {
    const all = parseProfile(
      ultraText.replace(/^realtime:\n/m, 'realtime:\n  steps: [preset, top-rendition, framerate, framerate]\n'),
      'p.yaml',
    );
    const costs = levelCosts(realtimeLevels(all));
    const relative = costs.map((c) => c / costs[0]!);
    // Timed on one core (`npm run bench -- --only levels`): 0.687, 0.455, 0.267, 0.207, 0.123 of it.
    const measured = [0.687, 0.455, 0.267, 0.207, 0.123].map((share) => share / 0.687);
    assert.equal(relative.length, measured.length);
    for (const [i, r] of relative.entries())
      assert.ok(Math.abs(r - measured[i]!) <= 0.08, `level ${i}: ${r.toFixed(3)} against ${measured[i]!.toFixed(3)}`);
  });

  it('frame rates keep chunks, IDR intervals and segments whole: 30 → 20 → 10 at 100 ms chunks, never 15', () => {
    assert.equal(lowerFrameRate(ultra, 30), 20);
    assert.equal(lowerFrameRate(ultra, 20), 10);
    assert.equal(lowerFrameRate({ cdur: 0.2, idr: 1, segdur: 2 }, 30), 25);
    assert.equal(lowerFrameRate({ cdur: 0.5, idr: 2, segdur: 2 }, 30), 28);
    assert.equal(lowerFrameRate({ cdur: 0.1, idr: 1, segdur: 1 }, 10), undefined);
  });

  it('a profile declares its own order, repeats a step, or none; steps that cannot apply are skipped', () => {
    const text = (steps: string) => ultraText.replace(/^realtime:\n/m, `realtime:\n  steps: ${steps}\n`);
    const twice = parseProfile(text('[framerate, framerate, preset, preset]'), 'p.yaml');
    assert.deepEqual(
      realtimeLevels(twice).map((l) => l.change),
      ['', '30 → 20 fps', '20 → 10 fps', 'x264 preset superfast → ultrafast'],
      'a second preset step has nothing faster than ultrafast',
    );
    assert.deepEqual(realtimeLevels(parseProfile(text('[]'), 'p.yaml')).length, 1);
    const off = parseProfile(text('[preset]').replace('  adapt: true\n', '  adapt: false\n'), 'p.yaml');
    assert.equal(realtimeLevels(off).length, 1, 'adapt: false takes no step');
    const single = parseProfile(text('[top-rendition, preset]').replace(/ {4}- \{ id: 720p.*\n/, ''), 'p.yaml');
    assert.deepEqual(
      realtimeLevels(single).map((l) => l.change),
      ['', 'x264 preset superfast → ultrafast'],
      'one rendition: none to stop',
    );
  });

  it('lateness: two chunks unless the profile says', () => {
    assert.equal(lateMsOf(ultra), 200);
    assert.equal(
      lateMsOf(parseProfile(ultraText.replace(/^realtime:\n/m, 'realtime:\n  lateMs: 350\n'), 'p.yaml')),
      350,
    );
  });

  it('a step the appliance does not know is refused, naming the field and what it takes', () => {
    assert.throws(
      () => parseProfile(ultraText.replace(/^realtime:\n/m, 'realtime:\n  steps: [resolution]\n'), 'p.yaml'),
      (error: unknown) =>
        error instanceof ConfigError &&
        /realtime\.steps\[0\]: "resolution" is not allowed; expected one of "preset", "top-rendition", "framerate"/.test(
          error.message,
        ),
    );
  });
});
