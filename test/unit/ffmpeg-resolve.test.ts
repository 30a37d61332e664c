import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { meetsMinimum, parseCapabilityList, parseFfmpegVersion } from '../../src/encode/ffmpeg-probe.ts';
import { resolveFfmpeg, type FfmpegProbe } from '../../src/encode/ffmpeg-resolve.ts';
import { ConfigError } from '../../src/errors.ts';

const fixture = (name: string) => readFile(new URL(`../fixtures/ffmpeg/${name}`, import.meta.url), 'utf8');

describe('parsing ffmpeg -version', () => {
  it('Debian 5.1', async () => {
    const v = parseFfmpegVersion(await fixture('version-5.1-debian.txt'))!;
    assert.deepEqual(v, { text: '5.1.9-0+deb12u1', major: 5, minor: 1, libavformat: { major: 59, minor: 27 } });
    assert.ok(meetsMinimum(v));
  });
  it('a release tag n7.1', async () => {
    const v = parseFfmpegVersion(await fixture('version-7.1.txt'))!;
    assert.equal(v.major, 7);
    assert.ok(meetsMinimum(v));
  });
  it('Ubuntu 4.4 is too old', async () => {
    assert.equal(meetsMinimum(parseFfmpegVersion(await fixture('version-4.4-ubuntu.txt'))!), false);
  });
  it('a git build is judged by its libavformat', async () => {
    const v = parseFfmpegVersion(await fixture('version-git-static.txt'))!;
    assert.equal(v.major, undefined);
    assert.deepEqual(v.libavformat, { major: 60, minor: 20 });
    assert.ok(meetsMinimum(v));
    assert.equal(meetsMinimum({ text: 'N-1', libavformat: { major: 59, minor: 16 } }), false);
  });
  it('something that is not ffmpeg', () => {
    assert.equal(parseFfmpegVersion('Python 3.11.2'), undefined);
  });
});

describe('parsing -encoders and -filters', () => {
  it('finds encoders and skips the legend', async () => {
    const encoders = parseCapabilityList(await fixture('encoders-5.1-debian.txt'));
    for (const name of ['libx264', 'aac', 'a64multi']) assert.ok(encoders.has(name), name);
    assert.ok(!encoders.has('='));
    assert.ok(encoders.size > 100);
  });
  it('finds filters and skips the legend', async () => {
    const filters = parseCapabilityList(await fixture('filters-5.1-debian.txt'));
    for (const name of ['drawtext', 'testsrc2', 'sine', 'realtime', 'arealtime', 'aresample', 'split', 'scale'])
      assert.ok(filters.has(name), name);
    assert.ok(!filters.has('='));
  });
});

const good: FfmpegProbe = {
  version: { text: '5.1.9', major: 5, minor: 1 },
  encoders: new Set(['libx264', 'aac']),
  filters: new Set(['drawtext']),
};
const old: FfmpegProbe = { ...good, version: { text: '4.4.2', major: 4, minor: 4 } };
const noX264: FfmpegProbe = { ...good, encoders: new Set(['aac']) };
const requirements = { encoders: ['libx264', 'aac'], filters: ['drawtext'] };
const probes = (table: Record<string, FfmpegProbe | undefined>) => {
  const asked: string[] = [];
  return {
    asked,
    probe: async (path: string) => {
      asked.push(path);
      return table[path];
    },
  };
};

describe('ffmpeg resolution order', () => {
  it('--ffmpeg wins over everything and is not replaced when it fails', async () => {
    const p = probes({ '/flag': good, '/env': good, '/usr/bin/ffmpeg': good });
    const chosen = await resolveFfmpeg(
      { flag: '/flag', env: '/env', systemPath: '/usr/bin/ffmpeg' },
      requirements,
      p.probe,
    );
    assert.deepEqual([chosen.path, chosen.origin], ['/flag', '--ffmpeg']);
    await assert.rejects(
      resolveFfmpeg(
        { flag: '/missing', systemPath: '/usr/bin/ffmpeg' },
        requirements,
        probes({ '/usr/bin/ffmpeg': good }).probe,
      ),
      (e: unknown) =>
        e instanceof ConfigError &&
        /ffmpeg from --ffmpeg \/missing: it does not run as ffmpeg/.test(e.message) &&
        /apt-get install ffmpeg/.test(e.hint ?? ''),
    );
  });
  it('APPLIANCE_FFMPEG comes next and is not replaced when it fails', async () => {
    const chosen = await resolveFfmpeg(
      { env: '/env', systemPath: '/usr/bin/ffmpeg' },
      requirements,
      probes({ '/env': good, '/usr/bin/ffmpeg': good }).probe,
    );
    assert.equal(chosen.origin, 'APPLIANCE_FFMPEG');
    await assert.rejects(
      resolveFfmpeg(
        { env: '/env', systemPath: '/usr/bin/ffmpeg' },
        requirements,
        probes({ '/env': noX264, '/usr/bin/ffmpeg': good }).probe,
      ),
      /APPLIANCE_FFMPEG \/env: version 5\.1\.9 lacks encoder libx264/,
    );
  });
  it('then the system ffmpeg if it is 5.1 or newer', async () => {
    const chosen = await resolveFfmpeg(
      { systemPath: '/usr/bin/ffmpeg', staticPath: '/static' },
      requirements,
      probes({ '/usr/bin/ffmpeg': good, '/static': good }).probe,
    );
    assert.equal(chosen.origin, 'system');
  });
  it('falls through to ffmpeg-static when the system ffmpeg is too old or incomplete', async () => {
    for (const system of [old, noX264, undefined]) {
      const chosen = await resolveFfmpeg(
        { systemPath: '/usr/bin/ffmpeg', staticPath: '/static' },
        requirements,
        probes({ '/usr/bin/ffmpeg': system, '/static': good }).probe,
      );
      assert.deepEqual([chosen.path, chosen.origin], ['/static', 'ffmpeg-static']);
    }
  });
  it('says what it tried when nothing fits', async () => {
    await assert.rejects(
      resolveFfmpeg({ systemPath: '/usr/bin/ffmpeg' }, requirements, probes({ '/usr/bin/ffmpeg': old }).probe),
      /no usable ffmpeg: tried system \/usr\/bin\/ffmpeg: version 4\.4\.2 is older than 5\.1/,
    );
    await assert.rejects(
      resolveFfmpeg({}, requirements, probes({}).probe),
      /no ffmpeg on PATH and the optional ffmpeg-static package is not installed/,
    );
  });
  it('names missing filters', async () => {
    await assert.rejects(
      resolveFfmpeg(
        { systemPath: '/f' },
        { encoders: [], filters: ['drawtext', 'realtime'] },
        probes({ '/f': good }).probe,
      ),
      /lacks filter realtime/,
    );
  });
});
