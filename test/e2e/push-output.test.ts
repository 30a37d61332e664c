import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { request as httpRequest, type IncomingMessage, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import { outputFormats, type HlsSession } from '../../src/packager/hls-playlists.ts';
import { hlsTiming } from '../../src/packager/hls-playlist.ts';
import { trustedCertificates } from '../../src/push/credentials.ts';
import { startTestOrigin } from '../helpers/push-origin.ts';
import { originCapabilities } from '../../src/push/origin-capabilities.ts';
import {
  CHUNKS,
  cleanups,
  expectedHash,
  feed,
  fillOf,
  RENDITION_V,
  runCleanups,
  segmentEvents,
  setup,
} from '../helpers/push-setup.ts';

after(runCleanups);

describe('HTTP push against a real origin on 127.0.0.1', { timeout: 60_000 }, () => {
  it('streams each segment as one chunked request, one HTTP chunk per CMAF chunk, with init and manifest', async () => {
    const { origin, output, log } = await setup();
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2), true);
    await output.flush();
    const segments = origin.uploads.filter((u) => u.path.endsWith('.m4s'));
    assert.deepEqual(
      segments.map((u) => u.path),
      [`live/v/${first}.m4s`, `live/v/${first + 1n}.m4s`],
    );
    for (const upload of segments) {
      assert.equal(upload.headers['transfer-encoding'], 'chunked');
      assert.equal(upload.headers['content-type'], 'video/mp4');
      assert.equal(upload.headers['user-agent'], 'appliance/test');
      // The body grew while the segment was made: ~10 arrivals ~100 ms apart, not one at the end.
      const bursts = upload.pieces.filter((p, i) => i === 0 || p.at - upload.pieces[i - 1]!.at > 40);
      assert.ok(bursts.length >= 8, `${bursts.length} bursts`);
      assert.ok(upload.endedAt! - upload.startedAt > 700, 'the request lasted the segment');
      assert.equal(origin.hash(upload.path), expectedHash(BigInt(upload.path.split('/').pop()!.split('.')[0]!)));
    }
    const manifest = origin.uploads.find((u) => u.path === 'live/live.mpd')!;
    assert.equal(manifest.headers['content-type'], 'application/dash+xml');
    assert.ok(
      manifest.startedAt > origin.uploads.find((u) => u.path === 'live/v/init.mp4')!.endedAt!,
      'the manifest follows the acknowledged init',
    );
    assert.ok(
      !log.messages().some((m) => m.includes('does not say it is an appliance origin')),
      'our origin is recognised',
    );
  });

  it('pushes LL-HLS part files (sf) and playlists that name only parts the origin holds; a generic origin gets only acknowledged ones', async () => {
    for (const profile of ['appliance', 'generic'] as const) {
      const timing = hlsTiming({
        segdur: 1,
        cdur: 0.1,
        partChunks: 1,
        audioSampleRate: undefined,
        tsb: 30,
        llhls: 'sf',
      });
      const hls: HlsSession = {
        llhls: 'sf',
        partChunks: 1,
        timing,
        renditions: () => ({
          video: [RENDITION_V],
          audio: undefined,
        }),
        ended: () => false,
      };
      const { origin, output } = await setup({
        origin: originCapabilities(profile),
        formats: outputFormats('live.mpd', true),
        hls,
      });
      const versions: string[] = [];
      origin.store.watch('live/live_v.m3u8', () => {
        const object = origin.store.get('live/live_v.m3u8');
        if (object?.state !== 'complete') return;
        const text = Buffer.concat(object.chunks).toString();
        // Every part a version names is complete at the origin when that version is served.
        for (const [, uri] of text.matchAll(/#EXT-X-PART:[^\n]*URI="([^"]+)"/g))
          assert.equal(
            origin.store.get(`live/${uri}`)?.state,
            'complete',
            `${profile}: ${uri} named before it arrived`,
          );
        versions.push(text);
      });
      const first = BigInt(Math.floor(Date.now() / 1000));
      await feed(output, segmentEvents('v', first, 2), true);
      await output.flush();
      for (let part = 1; part <= CHUNKS; part++) {
        const stored = origin.store.get(`live/v/${first + 1n}.m4s.${part}`);
        assert.equal(stored?.state, 'complete', `${profile}: part file ${part} (numbered from 1)`);
        assert.deepEqual(
          Buffer.concat(stored.chunks),
          Buffer.from(new Uint8Array(1000).fill(fillOf(first + 1n, part - 1))),
        );
      }
      assert.ok(versions.length >= 10, `${profile}: ${versions.length} playlist versions`);
      const last = versions.at(-1)!;
      assert.match(last, new RegExp(`#EXT-X-PART:DURATION=0.10000,URI="v/${first + 1n}.m4s.10"`));
      assert.ok(origin.store.get('live/live.m3u8'), `${profile}: the multivariant playlist`);
      const firstUpload = (path: string) => origin.uploads.findIndex((u) => u.path === path);
      assert.ok(
        firstUpload('live/live_v.m3u8') >= 0 && firstUpload('live/live_v.m3u8') < firstUpload('live/live.m3u8'),
        `${profile}: the multivariant playlist only after the media playlist it names`,
      );
      if (profile === 'generic') assert.doesNotMatch(versions.join(''), /CAN-BLOCK-RELOAD|PRELOAD-HINT/);
      else assert.match(last, /CAN-BLOCK-RELOAD=YES/);
    }
  });

  it('uploads with POST when asked, and reports the backlog at each segment end', async () => {
    const { origin, output, events } = await setup({ method: 'POST' });
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.deepEqual([...new Set(origin.uploads.map((u) => u.method))], ['POST']);
    assert.equal(origin.hash(`live/v/${first + 1n}.m4s`), expectedHash(first + 1n));
    assert.equal(events.filter((e) => e.type === 'backlog').length, 2);
  });

  it('DELETEs segments past the window and its grace, unless told not to', async () => {
    const first = BigInt(Math.floor(Date.now() / 1000));
    const deletes = async (deleteExpired: boolean) => {
      // A 1 s window: segment n goes once n + 5 is complete (kept from n-2, plus 2 segments of grace).
      const { origin, output } = await setup({ tsb: 1, deleteExpired });
      const seen: string[] = [];
      origin.fault = (req) => {
        if (req.method === 'DELETE') seen.push(req.url!);
        return false;
      };
      // Only what the origin acknowledged is deleted: give each segment time to land.
      await feed(output, []);
      for (let s = 0n; s < 8n; s++) {
        for (const event of segmentEvents('v', first + s, 1)) output.handle(event);
        for (let i = 0; i < 100 && output.backlogBytes > 0; i++) await sleep(5);
      }
      await output.flush();
      return { seen, kept: origin.store.paths().filter((p) => p.endsWith('.m4s')).length };
    };
    const on = await deletes(true);
    assert.deepEqual(on.seen, [`/live/v/${first}.m4s`, `/live/v/${first + 1n}.m4s`, `/live/v/${first + 2n}.m4s`]);
    assert.equal(on.kept, 5);
    const off = await deletes(false);
    assert.deepEqual(off, { seen: [], kept: 8 });
  });

  it('re-sends a segment cut mid-body, whole, after the init, on a fresh connection', async () => {
    const origin = await startTestOrigin();
    let cut = 0;
    origin.fault = (req) => {
      if (!req.url?.endsWith('.m4s') || cut++ > 0) return false;
      req.once('data', () => req.socket.destroy());
      return false;
    };
    const { output } = await setup({}, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.equal(origin.hash(`live/v/${first}.m4s`), expectedHash(first));
    assert.equal(origin.hash(`live/v/${first + 1n}.m4s`), expectedHash(first + 1n));
    const paths = origin.uploads.map((u) => u.path);
    const retry = paths.lastIndexOf(`live/v/${first}.m4s`);
    assert.ok(retry > paths.indexOf(`live/v/${first}.m4s`), 'sent again');
    assert.equal(paths[retry - 1], 'live/v/init.mp4', 'the init goes first on the new connection');
  });

  it('backfills through 5xx answers', async () => {
    const origin = await startTestOrigin();
    let failing = 4;
    origin.fault = (req, res) => {
      if (!req.url?.endsWith('.m4s') || failing-- <= 0) return false;
      res.writeHead(503).end();
      return true;
    };
    const { output, events } = await setup({}, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 3));
    await output.flush();
    for (let s = first; s < first + 3n; s++) assert.equal(origin.hash(`live/v/${s}.m4s`), expectedHash(s));
    assert.equal(events.filter((e) => e.type === 'retry').length, 4);
    assert.equal(events.filter((e) => e.type === 'dropped').length, 0);
  });

  it('falls back to whole segments with Content-Length on 411, with a warning', async () => {
    const origin = await startTestOrigin();
    origin.fault = (req, res) => {
      if (req.headers['transfer-encoding'] !== 'chunked') return false;
      res.writeHead(411, { Connection: 'close' }).end();
      return true;
    };
    const { output, log } = await setup({}, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.equal(origin.hash(`live/v/${first + 1n}.m4s`), expectedHash(first + 1n));
    const whole = origin.uploads.filter((u) => u.path.endsWith('.m4s') && u.status === 201);
    assert.ok(whole.length === 2 && whole.every((u) => u.headers['content-length'] === '10000'));
    assert.equal(log.messages().filter((m) => m.includes('411')).length, 1);
  });

  it('follows redirects, and a permanent one moves every later upload', async () => {
    const origin = await startTestOrigin();
    origin.fault = (req, res) => {
      if (!req.url?.startsWith('/old/')) return false;
      res.writeHead(308, { Location: req.url.replace('/old/', '/live/') }).end();
      return true;
    };
    const { output } = await setup({ url: new URL(`${origin.base}/old/live.mpd`) }, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.equal(origin.hash(`live/v/${first + 1n}.m4s`), expectedHash(first + 1n));
    assert.ok(origin.store.get('live/live.mpd'));
    assert.equal(
      origin.uploads.filter((u) => u.path.startsWith('old/')).length,
      1,
      'only the first upload went to the old place',
    );
  });

  it('gives up a segment the origin calls too large (413) with the likely limit named, and does not loop', async () => {
    const origin = await startTestOrigin();
    const first = BigInt(Math.floor(Date.now() / 1000));
    origin.fault = (req, res) => {
      if (req.url !== `/live/v/${first}.m4s`) return false;
      res.writeHead(413, { Connection: 'close' }).end();
      return true;
    };
    const { output, log, events } = await setup({}, origin);
    await feed(output, segmentEvents('v', first, 2));
    await output.flush();
    assert.equal(origin.uploads.filter((u) => u.path === `live/v/${first}.m4s`).length, 1);
    assert.ok(
      log.lines.some(
        (l) => String(l['msg']).includes('client_max_body_size') && l['url'] === `${origin.base}/live/v/${first}.m4s`,
      ),
    );
    assert.deepEqual(
      events.filter((e) => e.type === 'dropped').map((e) => e.type === 'dropped' && e.reason),
      ['rejected'],
    );
    assert.equal(origin.hash(`live/v/${first + 1n}.m4s`), expectedHash(first + 1n));
  });

  it('stops with a credential error after a few refusals, never a retry storm, and no secret in the log', async () => {
    const { origin, output, fatal, log } = await setup({ headers: { authorization: 'Bearer wrong-secret-value' } });
    const started = Date.now();
    await feed(output, segmentEvents('v', BigInt(Math.floor(Date.now() / 1000)), 1));
    for (let i = 0; i < 100 && !fatal.length; i++) await sleep(100);
    await output.flush();
    assert.equal(fatal.length, 1);
    assert.match(fatal[0]!.message, /refused the credentials \(HTTP 403\) 3 times/);
    assert.ok(Date.now() - started >= 2500, 'retried with pauses');
    assert.ok(origin.uploads.length <= 4, `${origin.uploads.length} requests`);
    assert.ok(!JSON.stringify(log.lines).includes('wrong-secret-value'));
  });

  it('drops the oldest unsent media beyond the budget, counts it exactly, and never blocks the producer', async () => {
    const origin = await startTestOrigin();
    // An origin that takes the request and never answers: everything waits.
    origin.fault = (req) => req.url!.endsWith('.m4s');
    const { output, events } = await setup({ budgetBytes: 25_000 }, origin);
    const first = BigInt(Math.floor(Date.now() / 1000));
    const started = performance.now();
    await feed(output, segmentEvents('v', first, 8));
    assert.ok(performance.now() - started < 200, 'handing 80 chunks over does not wait for the origin');
    assert.ok(
      output.backlogBytes <= 25_000 + 10_000,
      `backlog ${output.backlogBytes} within the budget plus the segment in flight`,
    );
    const dropped = events.filter((e) => e.type === 'dropped');
    await output.flush(500);
    const all = events.filter((e) => e.type === 'dropped');
    assert.ok(dropped.length >= 5, `${dropped.length} dropped under the budget`);
    assert.ok(dropped.every((e) => e.type === 'dropped' && e.reason === 'budget'));
    assert.equal(all.length, 8, 'every segment is either acknowledged or counted as dropped');
  });

  it('lists media dropped under the budget as EXT-X-GAP in the playlists it pushes', async () => {
    const origin = await startTestOrigin();
    origin.fault = (req) => req.url!.endsWith('.m4s');
    const timing = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: undefined, tsb: 30, llhls: 'br' });
    const hls: HlsSession = {
      llhls: 'br',
      partChunks: 1,
      timing,
      renditions: () => ({
        video: [RENDITION_V],
        audio: undefined,
      }),
      ended: () => false,
    };
    const { output, events } = await setup(
      { budgetBytes: 25_000, origin: originCapabilities('generic'), formats: outputFormats('live.mpd', true), hls },
      origin,
    );
    try {
      const first = BigInt(Math.floor(Date.now() / 1000));
      await feed(output, segmentEvents('v', first, 8));
      const dropped = events.flatMap((e) => (e.type === 'dropped' ? [e.segment] : []));
      assert.ok(dropped.length >= 3, `${dropped.length} dropped`);
      let playlist = '';
      for (let i = 0; i < 40 && !playlist.includes('#EXT-X-GAP'); i++) {
        await sleep(50);
        const object = origin.store.get('live/live_v.m3u8');
        if (object?.state === 'complete') playlist = Buffer.concat(object.chunks).toString();
      }
      for (const segment of dropped)
        assert.match(
          playlist,
          new RegExp(`#EXT-X-GAP\n#EXTINF:[0-9.]+,\nv/${segment}.m4s`),
          `segment ${segment} is a gap:\n${playlist}`,
        );
    } finally {
      await output.flush(500);
    }
  });

  it('trusts an https origin only through --ca, and names a certificate error', async () => {
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
    const plain = await startTestOrigin();
    // TLS in front of the plain origin: every request is passed on as it streams.
    const handler = (req: IncomingMessage, res: ServerResponse) => {
      req.pipe(
        httpRequest(
          { port: plain.port, host: '127.0.0.1', method: req.method, path: req.url, headers: req.headers },
          (up) => {
            res.writeHead(up.statusCode!, up.headers);
            up.pipe(res);
          },
        ),
      );
    };
    const tls = createHttpsServer(
      { key: await readFile(join(dir, 'key.pem')), cert: await readFile(join(dir, 'cert.pem')) },
      handler,
    );
    await new Promise<void>((resolve) => tls.listen(0, '127.0.0.1', resolve));
    cleanups.push(() => new Promise((resolve) => tls.close(resolve)));
    tls.on('connection', (socket) => cleanups.push(async () => socket.destroy()));
    const url = new URL(`https://127.0.0.1:${(tls.address() as AddressInfo).port}/live/live.mpd`);
    const first = BigInt(Math.floor(Date.now() / 1000));

    const trusted = await setup({ url, ca: await trustedCertificates(join(dir, 'cert.pem')) }, plain);
    await feed(trusted.output, segmentEvents('v', first, 1));
    await trusted.output.flush();
    assert.equal(plain.hash(`live/v/${first}.m4s`), expectedHash(first));

    const untrusted = await setup({ url, ca: await trustedCertificates(undefined) }, plain);
    await feed(untrusted.output, segmentEvents('v', first, 1));
    for (let i = 0; i < 100 && !untrusted.fatal.length; i++) await sleep(100);
    await untrusted.output.flush();
    assert.match(
      untrusted.fatal[0]?.message ?? '',
      /certificate not trusted \(DEPTH_ZERO_SELF_SIGNED_CERT\).*--ca FILE/,
    );
  });
});
