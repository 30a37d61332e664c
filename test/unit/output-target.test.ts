import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseStartArgs } from '../../src/cli/args.ts';
import { ConfigError } from '../../src/errors.ts';
import { parseOutput, secretQueryParameter } from '../../src/push/output-target.ts';

describe('--output: a directory has no scheme, an origin is an http(s) URL with a host', () => {
  it('refuses typos that would become directories or other hosts, saying what was understood', () => {
    for (const spec of [
      'http:/127.0.0.1:8000/live/live.mpd',
      'javascript:alert(1)//x.mpd',
      'https:///live/live.mpd',
      'htps://origin/live.mpd',
      'ftp://origin/live.mpd',
      'http:127.0.0.1/live.mpd',
    ]) {
      assert.throws(
        () => parseOutput(spec, '/tmp'),
        (e: unknown) =>
          e instanceof ConfigError &&
          /understood as a URL \(scheme "[a-z]+:"\).*a directory output is a path without a scheme/.test(e.message),
        spec,
      );
    }
    assert.throws(
      () => parseOutput('htps://user:hunter2@origin/live.mpd?sig=abc', '/tmp'),
      (e: unknown) => e instanceof ConfigError && !e.message.includes('hunter2') && !e.message.includes('abc'),
      'the message shows no secret',
    );
  });

  it('still takes directories (Windows drives too) and proper URLs', () => {
    assert.equal(parseOutput('out/live.mpd', '/tmp').kind, 'directory');
    assert.equal(parseOutput('C:\\out\\live.mpd', '/tmp').kind, 'directory');
    const push = parseOutput('https://origin.example:8443/live/live.mpd?tenant=a', '/tmp');
    assert.equal(push.kind === 'push' && push.url.host, 'origin.example:8443');
  });

  it('refuses secret-looking query parameters on the command line, not in the configuration file', () => {
    for (const name of ['sig', 'token', 'api_key', 'X-Amz-Signature', 'access_token', 'key'])
      assert.equal(secretQueryParameter(`https://o/live.mpd?a=1&${name}=s3cret`), name);
    for (const name of ['tenant', 'keyframes', 'quality'])
      assert.equal(secretQueryParameter(`https://o/live.mpd?${name}=1`), undefined);
    assert.throws(
      () => parseStartArgs(['--output', 'https://o/live.mpd?sig=s3cret']),
      (e: unknown) =>
        e instanceof ConfigError &&
        /query parameter "sig" looks like a secret.*--config.*--header-file/s.test(e.message) &&
        !e.message.includes('s3cret'),
    );
    assert.deepEqual(parseStartArgs([], { output: ['https://o/live.mpd?sig=s3cret'] }).outputs, [
      'https://o/live.mpd?sig=s3cret',
    ]);
  });
});
