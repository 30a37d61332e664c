import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import {
  applyOverrides,
  BUILTIN_PROFILES,
  checkTiming,
  loadProfile,
  parseProfile,
  profileFile,
} from '../../src/config/profile.ts';
import { parseBitrate, type Profile } from '../../src/config/schema.ts';
import { ConfigError } from '../../src/errors.ts';

const ultraText = await readFile(profileFile('ultra-ll'), 'utf8');
const ultra = parseProfile(ultraText, 'ultra-ll.yaml');

function rejects(text: string, ...expected: RegExp[]) {
  assert.throws(
    () => parseProfile(text, 'my-profile.yaml'),
    (error: unknown) => {
      assert.ok(error instanceof ConfigError, String(error));
      assert.match(error.message, /^my-profile\.yaml: /m, 'names the file');
      for (const pattern of expected) assert.match(error.message, pattern);
      return true;
    },
  );
}

describe('built-in profiles', () => {
  for (const name of BUILTIN_PROFILES) {
    it(`${name} parses, validates and passes the timing rules`, async () => {
      const { profile } = await loadProfile(name);
      assert.equal(profile.name, name);
      assert.deepEqual(checkTiming(profile), { errors: [], warnings: [] });
    });
  }

  it('ultra-ll is the ladder the design names', () => {
    assert.equal(ultra.segdur, 1);
    assert.equal(ultra.cdur, 0.1);
    assert.equal(ultra.asto, 0.9);
    assert.equal(ultra.idr, 1);
    assert.deepEqual(
      ultra.video.renditions.map((r) => [r.id, r.width, r.height, r.bitrate]),
      [
        ['1080p', 1920, 1080, 6_000_000],
        ['720p', 1280, 720, 3_000_000],
      ],
    );
    assert.deepEqual(ultra.audio, { codec: 'aac', bitrate: 128_000, samplerate: 48000, channels: 2 });
    assert.deepEqual(ultra.latency, { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } });
  });

  it('an unknown profile name says which names exist', async () => {
    await assert.rejects(
      loadProfile('ultra'),
      /unknown profile "ultra": expected one of ultra-ll, ll, standard or the path of a profile file/,
    );
  });

  it('a user profile is a file path', async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appliance-profile-'));
    const file = join(dir, 'mine.yaml');
    await writeFile(file, ultraText.replace('name: ultra-ll', 'name: mine'));
    assert.equal((await loadProfile(file)).profile.name, 'mine');
    await assert.rejects(
      loadProfile(join(dir, 'missing.yaml')),
      /cannot read profile file .*missing\.yaml: no such file/,
    );
    await rm(dir, { recursive: true, force: true });
  });
});

describe('profile validation errors name the field, the value and what is allowed', () => {
  it('an unknown preset', () => {
    rejects(
      ultraText.replace('preset: superfast', 'preset: slow'),
      /video\.preset: "slow" is not allowed; expected one of "ultrafast", "superfast", "veryfast", "faster", "fast"/,
    );
  });
  it('a bad bitrate inside a rendition', () => {
    rejects(
      ultraText.replace('bitrate: 6M', 'bitrate: 6 Mbps'),
      /video\.renditions\[0\]\.bitrate: "6 Mbps" is not allowed; expected a bitrate such as 6M, 3000k or 128000/,
    );
  });
  it('a misspelt field', () => {
    rejects(
      ultraText.replace('segdur: 1 ', 'segdru: 1 '),
      /unknown field "segdru"; allowed: name, description, source, segdur/,
      /segdur: missing; expected a number of seconds/,
    );
  });
  it('an odd height', () => {
    rejects(
      ultraText.replace('height: 720', 'height: 721'),
      /video\.renditions\[1\]\.height: 721 is not allowed; expected an even height/,
    );
  });
  it('a fractional frame rate', () => {
    rejects(
      ultraText.replace('framerate: 30 ', 'framerate: 29.97 '),
      /video\.framerate: 29\.97 is not allowed; expected a whole number of frames per second/,
    );
  });
  it('a wrong type', () => {
    rejects(
      ultraText.replace('cdur: 0.1 ', 'cdur: fast '),
      /cdur: "fast" is not allowed; expected a number of seconds/,
    );
  });
  it('passthrough: off unless asked, and only true or false', () => {
    assert.equal(ultra.video.passthrough, false);
    assert.equal(
      parseProfile(ultraText.replace('passthrough: false ', 'passthrough: true '), 'p.yaml').video.passthrough,
      true,
    );
    rejects(
      ultraText.replace('passthrough: false ', 'passthrough: yes-please '),
      /video\.passthrough: "yes-please" is not allowed; expected true or false/,
    );
  });
  it('audio sample rate', () => {
    rejects(
      ultraText.replace('samplerate: 48000', 'samplerate: 32000'),
      /audio\.samplerate: 32000 is not allowed; expected 48000 or 44100/,
    );
  });
  it('the hls section', () => {
    rejects(
      ultraText.replace('llhls: br ', 'llhls: on '),
      /hls\.llhls: "on" is not allowed; expected one of "br", "sf", "off"/,
    );
    rejects(
      ultraText.replace('partChunks: 1 ', 'partChunks: 0.5 '),
      /hls\.partChunks: 0\.5 is not allowed; expected a whole number of chunks per LL-HLS part/,
    );
  });
  it('YAML that does not parse says where', () => {
    rejects('segdur: [1,\n', /not valid YAML at line \d+, column \d+/);
  });
});

describe('timing rules', () => {
  const timing = (overrides: Parameters<typeof applyOverrides>[1], base: Profile = ultra) =>
    checkTiming(applyOverrides(base, overrides));

  it('asto must be below segdur (DASH-IF low-latency rule)', () => {
    assert.match(timing({ asto: 1 }).errors.join(), /asto 1 s must be less than segdur 1 s \(DASH-IF low-latency rule/);
    assert.match(timing({ asto: 1.5 }).errors.join(), /asto 1\.5 s must be less than segdur/);
  });
  it('cdur may not exceed segdur', () => {
    assert.match(timing({ cdur: 2 }).errors.join(), /cdur 2 s must not exceed segdur 1 s/);
  });
  it('segdur must be a multiple of the IDR interval', () => {
    assert.match(
      timing({ segdur: 1.5, asto: 0.5 }).errors.join(),
      /segdur 1\.5 s is not a multiple of the IDR interval 1 s/,
    );
    assert.deepEqual(timing({ segdur: 2, asto: 1.5 }).errors, []);
  });
  it('cdur must be a whole number of frames, and the error suggests neighbours', () => {
    assert.match(
      timing({ cdur: 0.05 }).errors.join(),
      /cdur 0\.05 s is 1\.5 frames at 30 fps; it must be a whole number of frames \(e\.g\. 0\.033333 or 0\.066667\)/,
    );
    assert.deepEqual(timing({ cdur: 0.2, asto: 0.8 }).errors, []);
  });
  it('warns when asto > segdur − cdur: players would ask before the first chunk exists', () => {
    const result = timing({ asto: 0.95 });
    assert.deepEqual(result.errors, []);
    assert.match(result.warnings.join(), /asto 0\.95 s is more than segdur − cdur = 0\.9 s/);
    assert.deepEqual(timing({ asto: 0.9 }).warnings, []);
  });
  it('the overrides replace only what was given', () => {
    const p = applyOverrides(ultra, { segdur: 2, cdur: undefined });
    assert.equal(p.segdur, 2);
    assert.equal(p.cdur, 0.1);
    assert.equal(p.asto, 0.9);
  });
  it('the time-shift window holds at least 3 segments', () => {
    assert.match(timing({ tsb: 2 }).errors.join(), /tsb 2 s must hold at least 3 segments \(3 s\)/);
    assert.deepEqual(timing({ tsb: 3 }).errors, []);
  });
  it("warns when LL-HLS parts would be whole segments; the HLS overrides replace the profile's", () => {
    assert.match(timing({ cdur: 1, asto: 0 }).warnings.join(), /LL-HLS parts of 1 × cdur 1 s are whole segments/);
    assert.match(timing({ partChunks: 10 }).warnings.join(), /LL-HLS parts of 10 × cdur 0\.1 s are whole segments/);
    assert.deepEqual(timing({ cdur: 1, asto: 0, llhls: 'off' }).warnings, []);
    const p = applyOverrides(ultra, { llhls: 'sf', dual: false });
    assert.deepEqual(p.hls, { llhls: 'sf', partChunks: 1, dual: false });
  });
  it('the latency window must contain its target', () => {
    assert.match(
      checkTiming({ ...ultra, latency: { ...ultra.latency, target: 2 } }).errors.join(),
      /latency\.min 0\.5 ≤ latency\.target 2 ≤ latency\.max 1\.5 does not hold/,
    );
  });
});

describe('parseBitrate', () => {
  it('reads suffixes and plain numbers', () => {
    assert.equal(parseBitrate('6M'), 6_000_000);
    assert.equal(parseBitrate('3000k'), 3_000_000);
    assert.equal(parseBitrate('1.5M'), 1_500_000);
    assert.equal(parseBitrate(128000), 128_000);
    assert.equal(parseBitrate('fast'), undefined);
    assert.equal(parseBitrate(-5), undefined);
    assert.equal(parseBitrate(1.5), undefined);
  });
});
