import assert from 'node:assert/strict';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { writeLightProfile } from '../helpers/light-profile.ts';
import { segmentNumbers } from '../helpers/media.ts';
import { segmentLayout } from '../helpers/segments.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { logLines, runAppliance, startAppliance, systemNode, waitForLogField } from '../helpers/run.ts';

// Real capture devices on a machine without camera or sound card: ALSA's null PCM (a real,
// paced capture device), one defined or removed in ~/.asoundrc while the appliance runs, and the
// errors ffmpeg gives for devices that are not there.

const scratch = scratchDirectories('devices');

describe('appliance devices', () => {
  it('on a machine without any: a clear message, [] with --json, exit 0', async () => {
    const text = await runAppliance(['devices']);
    assert.equal(text.exitCode, 0, String(text.stderr));
    assert.match(String(text.stdout), /^No cameras or microphones found\./);
    const json = await runAppliance(['devices', '--json']);
    assert.equal(json.exitCode, 0, String(json.stderr));
    assert.deepEqual(JSON.parse(String(json.stdout)), []);
  });
});

describe('devices that are not there', () => {
  it('a name not listed: exit 2, naming it and what is available', async () => {
    const run = await runAppliance(['start', '--source', 'device:video=Logitech Brio,audio=none', '--dry-run']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /camera "Logitech Brio" not found; no camera is available/);
    assert.match(String(run.stderr), /Run "appliance devices"/);
  });

  it('a device ffmpeg cannot open: exit 1, naming it, listing what is there, nothing left running', async () => {
    const dir = await scratch();
    const run = await runAppliance(
      [
        'start',
        '--source',
        'device:video=/dev/video9,audio=none',
        '--profile',
        await writeLightProfile(dir),
        '--output',
        join(dir, 'out', 'live.mpd'),
        '--state-dir',
        join(dir, 'state'),
      ],
      { timeout: 60_000 },
    );
    assert.equal(run.exitCode, 1, String(run.stderr).slice(-2000));
    assert.match(String(run.stderr), /appliance: camera \/dev\/video9 is not there \(unplugged\?\)/);
    assert.match(String(run.stderr), /no camera is available/);
    assert.match(String(run.stderr), /--retry-devices/);
  });
});

describe('a microphone that comes later, under --retry-devices', () => {
  it('streams slate from the start, takes the device when it appears, one period', async () => {
    const dir = await scratch();
    const home = join(dir, 'home');
    await mkdir(home);
    const out = join(dir, 'out');
    const child = startAppliance(
      await systemNode(),
      [
        'start',
        // One period is asserted: a real-time step on a loaded machine would make another.
        '--no-adapt',
        '--source',
        'device:video=none,audio=appliance_test_mic',
        '--retry-devices',
        '--profile',
        await writeLightProfile(dir),
        '--output',
        join(out, 'live.mpd'),
        '--state-dir',
        join(dir, 'state'),
        '--duration',
        '14',
      ],
      { env: { HOME: home }, timeout: 60_000 },
    );
    try {
      await waitForLogField(child, 'capture device unavailable: retrying until it is back', 'problem', 30_000);
      // ALSA reads ~/.asoundrc at every open: the device exists from here on.
      await writeFile(join(home, '.asoundrc'), 'pcm.appliance_test_mic { type null }\n');
      const run = await child;
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
      const log = logLines(String(run.stderr));
      assert.ok(
        log.some(
          (l) =>
            l['msg'] === 'capture device unavailable: retrying until it is back' &&
            /appliance_test_mic is not there/.test(String(l['problem'])),
        ),
        'the missing device is named',
      );
      assert.ok(
        log.some((l) => l['msg'] === 'source back: slate ended'),
        'the device was taken when it came',
      );
      assert.ok(
        !log.some((l) => /a new period/.test(String(l['msg']))),
        "the slate's inits are the live ones: one period",
      );
      const audio = await segmentNumbers(out, 'audio');
      assert.ok(audio.length >= 12, `${audio.length} audio segments`);
      for (let i = 1; i < audio.length; i++) assert.equal(audio[i]! - audio[i - 1]!, 1n, 'no segment missing');
      const brands = await Promise.all(
        audio.map(async (n) => (await segmentLayout(out, 'audio', n)).brands.includes('slat')),
      );
      assert.ok(brands[0], 'the stream began on slate');
      assert.ok(!brands.at(-2), 'and ended on the device');
    } finally {
      child.kill('SIGKILL');
      await child.catch(() => undefined);
    }
  });
});
