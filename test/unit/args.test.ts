import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStartArgs } from '../../src/cli/args.ts';
import { parseListen, parseOutput, parseOutputs } from '../../src/push/output-target.ts';

describe('appliance start arguments', () => {
  it("defaults: ultra-ll, the profile's source (resolved later: else test), served on 127.0.0.1:8080", () => {
    const o = parseStartArgs([]);
    assert.deepEqual(
      [o.profile, o.source, o.retryDevices, o.outputs, o.listen, o.dryRun, o.logLevel],
      ['ultra-ll', undefined, undefined, [], '127.0.0.1:8080', false, 'info'],
    );
    assert.throws(
      () => parseStartArgs(['--retry-devices', '--no-retry-devices']),
      /--retry-devices and --no-retry-devices contradict each other/,
    );
  });
  it('reads the overrides as seconds', () => {
    const o = parseStartArgs(['--segdur', '2', '--cdur=0.2', '--asto', '0', '--duration', '10']);
    assert.deepEqual([o.segdur, o.cdur, o.asto, o.duration], [2, 0.2, 0, 10]);
  });
  it('--tsb and --utc-timing', () => {
    const o = parseStartArgs(['--tsb', '60', '--utc-timing', 'http://127.0.0.1:8080/time']);
    assert.deepEqual([o.tsb, o.utcTiming], [60, 'http://127.0.0.1:8080/time']);
    assert.equal(
      parseStartArgs([]).utcTiming,
      undefined,
      "chosen by the output: the server's /time, or a public clock",
    );
    assert.throws(
      () => parseStartArgs(['--utc-timing', 'ntp://pool.ntp.org']),
      /--utc-timing "ntp:\/\/pool.ntp.org": expected an http:\/\/ or https:\/\/ URL/,
    );
  });

  it('--llhls, --part-chunks, --dual and --no-dual', () => {
    const o = parseStartArgs(['--llhls', 'sf', '--part-chunks', '2', '--no-dual']);
    assert.deepEqual([o.llhls, o.partChunks, o.dual], ['sf', 2, false]);
    assert.equal(parseStartArgs(['--dual']).dual, true);
    assert.deepEqual(
      [parseStartArgs([]).llhls, parseStartArgs([]).partChunks, parseStartArgs([]).dual],
      [undefined, undefined, undefined],
      'the profile decides',
    );
    assert.throws(() => parseStartArgs(['--llhls', 'yes']), /--llhls "yes": expected one of br, sf, off/);
    assert.throws(
      () => parseStartArgs(['--part-chunks', '0']),
      /--part-chunks "0": expected a whole number of CMAF chunks per LL-HLS part, 1 to 50/,
    );
    assert.throws(() => parseStartArgs(['--part-chunks', '1.5']), /--part-chunks "1.5"/);
    assert.throws(() => parseStartArgs(['--dual', '--no-dual']), /--dual and --no-dual contradict each other/);
  });

  it('refuses bad flags and values by name', () => {
    assert.throws(() => parseStartArgs(['--segdru', '1']), /Unknown option '--segdru'/);
    assert.throws(
      () => parseStartArgs(['--segdur', 'one']),
      /--segdur "one": expected a number of seconds greater than 0/,
    );
    assert.throws(() => parseStartArgs(['--cdur', '0']), /--cdur "0": expected a number of seconds greater than 0/);
    assert.throws(() => parseStartArgs(['--asto=-1']), /--asto "-1": expected a number of seconds \(0 or more\)/);
    assert.throws(() => parseStartArgs(['--log-level', 'loud']), /--log-level "loud": expected one of fatal, error/);
    assert.throws(() => parseStartArgs(['extra']), /Unexpected argument 'extra'/);
  });
});

describe('--output and --listen', () => {
  it('no --output: the built-in origin serves the stream on --listen', () => {
    assert.deepEqual(parseOutput(undefined, '/srv'), {
      kind: 'serve',
      host: '127.0.0.1',
      port: 8080,
      manifest: 'live.mpd',
    });
    assert.deepEqual(parseOutput(undefined, '/srv', '[::1]:0'), {
      kind: 'serve',
      host: '::1',
      port: 0,
      manifest: 'live.mpd',
    });
    assert.deepEqual(parseListen('0.0.0.0:9000'), { host: '0.0.0.0', port: 9000 });
    assert.throws(() => parseListen('8080'), /--listen "8080": expected HOST:PORT/);
    assert.throws(() => parseListen('localhost:70000'), /expected HOST:PORT/);
  });

  it('DIR/live.mpd names a directory and the manifest', () => {
    assert.deepEqual(parseOutput('out/live.mpd', '/srv'), { kind: 'directory', dir: '/srv/out', manifest: 'live.mpd' });
    assert.deepEqual(parseOutput('/data/stream', '/srv'), {
      kind: 'directory',
      dir: '/data/stream',
      manifest: 'live.mpd',
    });
  });
  it('an origin URL is a push target; the manifest name defaults to live.mpd; credentials in the URL are refused', () => {
    const push = parseOutput('https://origin.example/live/main.mpd?session=7', '/');
    assert.ok(push.kind === 'push');
    assert.equal(push.url.href, 'https://origin.example/live/main.mpd?session=7');
    assert.equal(push.manifest, 'main.mpd');
    const bare = parseOutput('http://origin.example/live', '/');
    assert.ok(bare.kind === 'push' && bare.url.href === 'http://origin.example/live/live.mpd');
    assert.throws(
      () => parseOutput('https://user:hunter2@origin.example/live.mpd', '/'),
      (e: Error) => /APPLIANCE_PUSH_USER/.test(e.message) && !e.message.includes('hunter2'),
    );
    assert.throws(
      () => parseOutput('ftp://origin.example/live.mpd', '/'),
      /an origin must be http:\/\/ or https:\/\/ with a host/,
    );
    assert.throws(() => parseOutputs(['http://a.example/live.mpd', 'http://a.example/live.mpd'], '/'), /given twice/);
    assert.equal(parseOutputs(['out', 'http://a.example/x/live.mpd'], '/srv').length, 2);
  });

  it('--origin-profile once for all outputs or once per output; --method PUT or POST', () => {
    const o = parseStartArgs([
      '--output',
      'http://a/live.mpd',
      '--output',
      'http://b/live.mpd',
      '--origin-profile',
      'appliance',
      '--origin-profile',
      'generic',
      '--method',
      'post',
    ]);
    assert.deepEqual(
      [o.outputs, o.originProfiles, o.method, o.pushBudget, o.deleteExpired],
      [['http://a/live.mpd', 'http://b/live.mpd'], ['appliance', 'generic'], 'POST', undefined, true],
    );
    assert.throws(
      () =>
        parseStartArgs([
          '--output',
          'http://a/live.mpd',
          '--origin-profile',
          'generic',
          '--origin-profile',
          'generic',
          '--origin-profile',
          'generic',
        ]),
      /given 3 times for 1 --output/,
    );
    assert.throws(
      () => parseStartArgs(['--origin-profile', 's3']),
      /--origin-profile "s3": expected one of appliance, generic/,
    );
    assert.throws(() => parseStartArgs(['--method', 'PATCH']), /--method "PATCH": expected one of PUT, POST/);
    assert.equal(parseStartArgs(['--no-delete', '--push-budget', '10']).deleteExpired, false);
  });
});
