import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { trustedCertificates } from '../../src/push/credentials.ts';
import { startTestOrigin } from '../helpers/push-origin.ts';
import { logLines, startAppliance } from '../helpers/run.ts';
import { cleanups, feed, runCleanups, segmentEvents, setup } from '../helpers/push-setup.ts';

after(runCleanups);

const SECRET_HEADERS = { authorization: 'Bearer push-secret-token', 'x-api-key': 'header-file-secret' };
/** The configured origin, which takes that token. */
const trustingOrigin = () => startTestOrigin({ token: 'push-secret-token' });

/** Another host (127.0.0.2): takes any upload and records the headers it came with. */
async function startRecorder(): Promise<{ base: string; seen: { url: string; headers: IncomingHttpHeaders }[] }> {
  const seen: { url: string; headers: IncomingHttpHeaders }[] = [];
  const server = createServer((req, res) => {
    seen.push({ url: req.url ?? '', headers: req.headers });
    req.resume();
    req.on('end', () => res.writeHead(201).end());
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.2', resolve));
  server.on('connection', (socket) => cleanups.push(async () => socket.destroy()));
  cleanups.push(() => new Promise((resolve) => server.close(resolve)));
  return { base: `http://127.0.0.2:${(server.address() as AddressInfo).port}`, seen };
}

const leaked = (seen: { headers: IncomingHttpHeaders }[]) =>
  seen.filter((s) => s.headers['authorization'] || s.headers['x-api-key']);

describe('push redirects: secrets stay with the configured origin', { timeout: 60_000 }, () => {
  it('follows a temporary redirect to another host without the credentials or configured headers', async () => {
    const recorder = await startRecorder();
    const origin = await trustingOrigin();
    origin.fault = (req, res) => {
      if (!req.url?.endsWith('.m4s')) return false;
      res.writeHead(307, { Location: `${recorder.base}${req.url}` }).end();
      return true;
    };
    const { output } = await setup({ headers: SECRET_HEADERS }, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.ok(recorder.seen.length >= 1, 'the redirect was followed');
    assert.deepEqual(leaked(recorder.seen), [], 'no credential reached the other host');
    assert.ok(
      origin.uploads
        .filter((u) => u.path.endsWith('.m4s'))
        .every((u) => u.headers['authorization'] === SECRET_HEADERS.authorization),
      'the configured origin still gets them',
    );
  });

  it('refuses a permanent redirect to another origin: the output stops naming both URLs, nothing leaks', async () => {
    const recorder = await startRecorder();
    const origin = await trustingOrigin();
    origin.fault = (req, res) => {
      if (!req.url?.endsWith('.m4s')) return false;
      res.writeHead(308, { Location: `${recorder.base}${req.url}` }).end();
      return true;
    };
    const { output, fatal } = await setup({ headers: SECRET_HEADERS }, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    for (let i = 0; i < 100 && !fatal.length; i++) await sleep(50);
    await output.flush();
    assert.match(
      fatal[0]?.message ?? '',
      new RegExp(`${origin.base}/live/live.mpd.*moved permanently to another origin \\(${recorder.base}/live/v/`),
    );
    assert.deepEqual(recorder.seen, [], 'not followed at all');
  });

  it('never follows https to http, and says so', async () => {
    const recorder = await startRecorder();
    const dir = await mkdtemp(join(tmpdir(), 'appliance-tls-'));
    cleanups.push(() => rm(dir, { recursive: true, force: true }));
    await promisify(execFile)('openssl', [
      'req',
      '-x509',
      '-newkey',
      'rsa:2048',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=localhost',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      join(dir, 'key.pem'),
      '-out',
      join(dir, 'cert.pem'),
    ]);
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      req.resume();
      // Same host and port, but cleartext: still another origin, and a downgrade.
      res
        .writeHead(
          req.url?.endsWith('.m4s') ? 308 : 201,
          req.url?.endsWith('.m4s') ? { Location: `${recorder.base}${req.url}` } : {},
        )
        .end();
    };
    const tls = createHttpsServer(
      { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) },
      handler,
    );
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => tls.close(resolve)));
    tls.on('connection', (socket) => cleanups.push(async () => socket.destroy()));
    const url = new URL(`https://127.0.0.1:${(tls.address() as AddressInfo).port}/live/live.mpd`);
    const { output, log } = await setup(
      { url, headers: SECRET_HEADERS, ca: await trustedCertificates(join(dir, 'cert.pem')) },
      await startTestOrigin(),
    );
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.deepEqual(recorder.seen, [], 'no cleartext request');
    assert.ok(
      log.messages().some((m) => m.includes('refused the upload')) &&
        log.lines.some((l) => JSON.stringify(l).includes('from https to http')),
      'the refusal says why',
    );
  });

  it('follows a permanent redirect within the origin, with a warning', async () => {
    const origin = await trustingOrigin();
    origin.fault = (req, res) => {
      if (!req.url?.startsWith('/old/')) return false;
      res.writeHead(308, { Location: req.url.replace('/old/', '/live/') }).end();
      return true;
    };
    const { output, log } = await setup(
      { url: new URL(`${origin.base}/old/live.mpd`), headers: SECRET_HEADERS },
      origin,
    );
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.ok(origin.store.get(`live/v/${first + 1n}.m4s`));
    assert.ok(log.lines.some((l) => l['level'] === 40 && String(l['msg']).includes('moved permanently within itself')));
  });
});

describe('push refusals', { timeout: 60_000 }, () => {
  it("logs the origin's own reason for a refusal, printable, cut short, without the secrets it echoes", async () => {
    const origin = await trustingOrigin();
    origin.fault = (req, res) => {
      if (!req.url?.endsWith('.m4s')) return false;
      req.resume();
      // An error page that echoes the request: its credentials must not reach the log.
      res
        .writeHead(400)
        .end(
          `v: media at 3 s never starts a segment on the epoch grid\n\u001b[31m${req.headers['authorization']} ${req.headers['x-api-key']} https://u:pw@cdn.example/x?sig=abc ${'x'.repeat(2000)}`,
        );
      return true;
    };
    const { output, log } = await setup({ headers: SECRET_HEADERS }, origin);
    await feed(output, segmentEvents('v', BigInt(Math.floor(Date.now() / 1000)), 1));
    await output.flush();
    const refusal = log.lines.find((l) => String(l['msg']).includes('refused the upload'));
    assert.ok(refusal, 'the refusal is logged');
    const answer = String(refusal['answer']);
    assert.match(answer, /^v: media at 3 s never starts a segment on the epoch grid \[31m/);
    assert.ok(answer.length <= 300, `${answer.length} characters of the answer`);
    for (const secret of ['push-secret-token', 'header-file-secret', 'pw@', 'sig=abc'])
      assert.ok(!JSON.stringify(log.lines).includes(secret), `${secret} is not in the log: ${answer}`);
  });
});

describe('push DELETEs', { timeout: 60_000 }, () => {
  /** Pushes 8 segments with a 1 s window, the origin failing each DELETE `failures` times with 503. */
  async function expireWith(failures: number, status = 503) {
    const { origin, output, events, fatal } = await setup({ tsb: 1 });
    const attempts = new Map<string, number>();
    origin.fault = (req, res) => {
      if (req.method !== 'DELETE') return false;
      const n = (attempts.get(req.url!) ?? 0) + 1;
      attempts.set(req.url!, n);
      if (n > failures) return false;
      res.writeHead(status).end();
      return true;
    };
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, []);
    for (let s = 0n; s < 8n; s++) {
      for (const event of segmentEvents('v', first + s, 1)) output.handle(event);
      for (let i = 0; i < 100 && output.backlogBytes > 0; i++) await sleep(5);
    }
    // Segments first..first+2 expired (see the DELETE test in push-output): wait for their fate.
    const expired = [0n, 1n, 2n].map((s) => `/live/v/${first + s}.m4s`);
    const settled = () =>
      expired.every((p) => origin.store.get(p.slice(1)) === undefined) ||
      events.filter((e) => e.type === 'delete-given-up').length === expired.length;
    for (let i = 0; i < 200 && !settled(); i++) await sleep(50);
    await output.flush();
    return { origin, events, fatal, attempts: expired.map((p) => attempts.get(p) ?? 0), expired };
  }

  it('retries a DELETE the origin answers with 503, with backoff, until it goes through', async () => {
    const { origin, attempts, expired, events } = await expireWith(2);
    assert.deepEqual(attempts, [3, 3, 3], 'two failures, then the DELETE that worked');
    for (const path of expired)
      assert.equal(origin.store.get(path.slice(1)), undefined, `${path} is gone from the origin`);
    assert.equal(events.filter((e) => e.type === 'delete-given-up').length, 0);
  });

  it('gives a DELETE up after 5 attempts and counts it', async () => {
    const { attempts, events } = await expireWith(Infinity);
    assert.deepEqual(attempts, [5, 5, 5]);
    assert.equal(events.filter((e) => e.type === 'delete-given-up').length, 3);
  });

  it('gives up at once a DELETE the origin refuses (403), counts it, and the output goes on', async () => {
    const { attempts, events, fatal } = await expireWith(Infinity, 403);
    assert.deepEqual(attempts, [1, 1, 1], 'a refusal is not retried');
    assert.equal(events.filter((e) => e.type === 'delete-given-up').length, 3);
    assert.deepEqual(fatal, [], 'uploads were accepted: the output did not stop');
  });
});

describe('push warnings during an outage', { timeout: 60_000 }, () => {
  it('warn once per failure streak of each stream of requests (init, segments, manifest), not per attempt', async () => {
    const origin = await startTestOrigin();
    const { output, log } = await setup({}, origin);
    let down = true;
    origin.fault = (req, res) => {
      if (!down) return false;
      req.resume();
      res.writeHead(503).end();
      return true;
    };
    const first = BigInt(Math.floor(Date.now() / 1000));
    const feeding = feed(output, segmentEvents('v', first, 3), true);
    await sleep(2000);
    down = false;
    await feeding;
    await output.flush();
    const warnings = log.lines.filter(
      (l) => l['level'] === 40 && l['msg'] === 'push: upload failed; it will be sent again',
    );
    const attempts = log.lines.filter((l) => l['msg'] === 'push: upload failed; it will be sent again');
    assert.ok(attempts.length > 4, `${attempts.length} failed attempts in the outage`);
    assert.ok(warnings.length <= 2, `${warnings.length} warnings: ${warnings.map((w) => w['url']).join(', ')}`);
    assert.ok(origin.store.get(`live/v/${first + 2n}.m4s`), 'everything arrived after the outage');
  });
});

describe('a remote clock that disagrees', { timeout: 60_000 }, () => {
  it("is a warning, not a refusal: ultra-ll runs on when only the origin's /time is 500 ms off", async (t) => {
    // An origin that takes everything and whose clock is half a second ahead.
    const server = createServer((req, res) => {
      req.resume();
      if (req.url === '/time')
        return void res.writeHead(200, { Server: 'appliance' }).end(new Date(Date.now() + 500).toISOString());
      req.on('end', () => res.writeHead(201, { Server: 'appliance' }).end());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    server.on('connection', (socket) => cleanups.push(async () => socket.destroy()));
    cleanups.push(() => new Promise((resolve) => server.close(resolve)));
    const url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/live/live.mpd`;
    // No local time daemon answers here (the test machine has neither chrony nor a running timesyncd).
    const run = await startAppliance(
      process.execPath,
      ['start', '--profile', 'ultra-ll', '--duration', '3', '--output', url],
      { env: { ...process.env, APPLIANCE_PUSH_TOKEN: 't' }, timeout: 60_000 },
    );
    const logs = logLines(String(run.stderr));
    const measured = logs.find((l) => String(l['msg']).includes('clock'));
    if (measured && !String(measured['source']).startsWith('http'))
      return t.skip('a local time daemon answered here: the case needs a machine without one');
    assert.equal(run.exitCode, 0, String(run.stderr).slice(-1500));
    assert.ok(
      logs.some((l) => l['level'] === 40 && String(l['msg']).startsWith("the origin's clock and this one disagree")),
      'warned',
    );
  });
});
