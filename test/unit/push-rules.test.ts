import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseHeaderFile, pemCertificates, pushHeaders } from '../../src/push/credentials.ts';
import { outcomeOfError, outcomeOfStatus, retryDelayMs, safeUrl } from '../../src/push/upload-outcome.ts';
import { UploadBody } from '../../src/push/upload-body.ts';
import { deleteBefore, newestCommonRun } from '../../src/push/control-lane.ts';

describe("what an origin's answer means (DASH-IF ingest failure rules)", () => {
  it('classifies statuses', () => {
    assert.deepEqual(outcomeOfStatus(201, undefined), { kind: 'acknowledged', status: 201 });
    assert.deepEqual(outcomeOfStatus(204, undefined), { kind: 'acknowledged', status: 204 });
    assert.deepEqual(outcomeOfStatus(307, '/b'), { kind: 'redirect', status: 307, location: '/b', permanent: false });
    assert.deepEqual(outcomeOfStatus(308, '/b'), { kind: 'redirect', status: 308, location: '/b', permanent: true });
    assert.deepEqual(
      outcomeOfStatus(302, undefined),
      { kind: 'rejected', status: 302 },
      'a redirect without Location goes nowhere',
    );
    assert.equal(outcomeOfStatus(401, undefined).kind, 'credentials');
    assert.equal(outcomeOfStatus(403, undefined).kind, 'credentials');
    assert.equal(outcomeOfStatus(411, undefined).kind, 'length-required');
    assert.equal(outcomeOfStatus(413, undefined).kind, 'too-large');
    for (const status of [500, 502, 503, 504, 408, 429])
      assert.equal(outcomeOfStatus(status, undefined).kind, 'retry', String(status));
    for (const status of [400, 404, 405, 409, 415])
      assert.deepEqual(outcomeOfStatus(status, undefined), { kind: 'rejected', status });
  });

  it('network errors are retried, certificate errors are credentials (never ignored)', () => {
    assert.deepEqual(outcomeOfError(Object.assign(new Error('x'), { code: 'ECONNREFUSED' })), {
      kind: 'retry',
      reason: 'ECONNREFUSED',
    });
    assert.deepEqual(
      outcomeOfError(Object.assign(new Error('x'), { code: 'UND_ERR_SOCKET', cause: { code: 'ECONNRESET' } })),
      { kind: 'retry', reason: 'ECONNRESET' },
    );
    assert.deepEqual(outcomeOfError(Object.assign(new Error('x'), { code: 'DEPTH_ZERO_SELF_SIGNED_CERT' })), {
      kind: 'credentials',
      reason: 'certificate not trusted (DEPTH_ZERO_SELF_SIGNED_CERT)',
    });
  });

  it('backs off from 100 ms, doubling, capped near a segment, with jitter', () => {
    const mid = () => 0.5;
    assert.deepEqual(
      [0, 1, 2, 3, 4, 5, 10].map((a) => retryDelayMs(a, 1, mid)),
      [100, 200, 400, 800, 1000, 1000, 1000],
    );
    assert.equal(retryDelayMs(10, 4, mid), 4000);
    assert.equal(retryDelayMs(10, 20, mid), 6000);
    assert.equal(
      retryDelayMs(0, 1, () => 0),
      80,
    );
    assert.equal(
      retryDelayMs(0, 1, () => 1),
      120,
    );
  });

  it('URLs in logs carry no user info and no query', () => {
    assert.equal(
      safeUrl('https://u:p@origin.example:8443/live/1.m4s?token=abc'),
      'https://origin.example:8443/live/1.m4s?…',
    );
  });
});

describe('credentials', () => {
  it('reads a header file, naming the line of a mistake and never its value', () => {
    assert.deepEqual(parseHeaderFile('# keys\nX-Api-Key: k1\n\nAuthorization: Bearer abc\n', 'h.txt'), {
      'x-api-key': 'k1',
      authorization: 'Bearer abc',
    });
    assert.throws(
      () => parseHeaderFile('X-Ok: 1\nnot a header line secret\n', 'h.txt'),
      (e: Error) => /h\.txt, line 2: expected "Name: value"/.test(e.message) && !e.message.includes('secret'),
    );
    assert.throws(() => parseHeaderFile('Content-Length: 5', 'h.txt'), /Content-Length is set by the appliance itself/);
    assert.throws(() => parseHeaderFile('X-Empty:', 'h.txt'), /X-Empty has an empty or invalid value/);
  });

  it('takes a bearer token or basic auth from the environment, and refuses two sources', () => {
    assert.deepEqual(pushHeaders({ APPLIANCE_PUSH_TOKEN: 't0k' }, {}), { authorization: 'Bearer t0k' });
    assert.deepEqual(pushHeaders({ APPLIANCE_PUSH_USER: 'cam', APPLIANCE_PUSH_PASSWORD: 'pw' }, {}), {
      authorization: `Basic ${Buffer.from('cam:pw').toString('base64')}`,
    });
    assert.throws(() => pushHeaders({ APPLIANCE_PUSH_USER: 'cam' }, {}), /needs both/);
    assert.throws(
      () => pushHeaders({ APPLIANCE_PUSH_TOKEN: 't' }, { authorization: 'Bearer x' }),
      /given twice \(the header file and APPLIANCE_PUSH_TOKEN\)/,
    );
    assert.deepEqual(pushHeaders({}, { 'x-api-key': 'k' }), { 'x-api-key': 'k' });
  });

  it('finds PEM certificates in a CA file', () => {
    const pem = '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----';
    assert.deepEqual(pemCertificates(`junk\n${pem}\n${pem}\n`), [pem, pem]);
    assert.deepEqual(pemCertificates('nothing'), []);
  });
});

describe('an upload body', () => {
  it('replays from the first chunk for every request and follows the object as it grows', async () => {
    const body = new UploadBody();
    body.append(Uint8Array.of(1));
    const first: number[] = [];
    const reading = (async () => {
      for await (const chunk of body.read(new AbortController().signal)) first.push(...chunk);
    })();
    body.append(Uint8Array.of(2));
    await new Promise((resolve) => setImmediate(resolve));
    body.append(Uint8Array.of(3));
    body.finish();
    await reading;
    const again: number[] = [];
    for await (const chunk of body.read(new AbortController().signal)) again.push(...chunk);
    assert.deepEqual([first, again, body.bytes], [[1, 2, 3], [1, 2, 3], 3]);
  });

  it('an abandoned body fails its readers and lets its chunks go', async () => {
    const body = new UploadBody();
    body.append(Uint8Array.of(1));
    const reading = (async () => {
      for await (const _ of body.read(new AbortController().signal));
    })();
    body.abandon('dropped (budget)');
    await assert.rejects(reading, /dropped \(budget\)/);
  });
});

describe("what a generic origin's manifest announces, and what is deleted", () => {
  it('announces the newest run every rendition has, within the window', () => {
    const set = (...n: number[]) => new Set(n.map(BigInt));
    assert.deepEqual(newestCommonRun([set(1, 2, 3, 4), set(1, 2, 3)], 30n), { first: 1n, last: 3n });
    assert.deepEqual(
      newestCommonRun([set(1, 2, 4, 5, 6), set(1, 2, 4, 5, 6)], 30n),
      { first: 4n, last: 6n },
      'a gap (dropped media) starts the run again',
    );
    assert.deepEqual(newestCommonRun([set(...Array.from({ length: 50 }, (_, i) => i))], 30n), {
      first: 19n,
      last: 49n,
    });
    assert.equal(newestCommonRun([set(1), set(2)], 30n), undefined);
    assert.equal(newestCommonRun([], 30n), undefined);
  });

  it('deletes a segment once it left the window and the LL-HLS grace (a segment plus the window)', () => {
    // 30 s window of 1 s segments: kept from n-31; the grace is 31 more segments.
    assert.equal(deleteBefore(100n, 1, 30), 100n - 31n - 31n);
    assert.equal(deleteBefore(100n, 2, 4), 100n - 3n - 2n - 1n);
  });
});
