import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { Agent, request, type IncomingMessage, type ClientRequest } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { createLogger } from '../../src/log.ts';
import { listen } from '../../src/listen.ts';
import { createOriginServer, LIVE_RANGE_END, parseRange, storeKey } from '../../src/origin/http.ts';
import { ObjectStore } from '../../src/origin/store.ts';
import { childBoxes } from '../../src/packager/boxes.ts';

const TOKEN = 'test-token-7f3a';
const store = new ObjectStore({ timeShiftBufferDepth: 30, holdMs: 1000 });
const server = createOriginServer({
  store,
  ingestToken: TOKEN,
  maxBodyBytes: 100_000,
  logger: createLogger('silent'),
  index: () => '<h1>index</h1>',
});
let base: string;
before(async () => {
  const address: AddressInfo = await listen(server, '127.0.0.1', 0);
  base = `http://127.0.0.1:${address.port}`;
});
after(async () => {
  server.closeAllConnections();
  await new Promise((resolve) => server.close(resolve));
});

const auth = { Authorization: `Bearer ${TOKEN}` };

/** A chunked upload kept open: write chunks, then end or cut it. */
function upload(path: string, method = 'PUT', headers: Record<string, string> = auth) {
  const req: ClientRequest = request(`${base}${path}`, {
    method,
    headers: { 'Transfer-Encoding': 'chunked', 'Content-Type': '*', ...headers },
  });
  req.setNoDelay(true);
  req.on('error', () => undefined);
  const response = new Promise<IncomingMessage>((resolve) => req.on('response', resolve));
  return {
    req,
    response,
    write: (bytes: Uint8Array) => new Promise<void>((resolve) => req.write(bytes, () => resolve())),
  };
}

/** A PUT with a length; the path is sent exactly as given (a URL string would be normalised first). */
async function put(path: string, body: Uint8Array | string, headers: Record<string, string> = auth) {
  const { hostname, port } = new URL(base);
  const res = await new Promise<IncomingMessage>((resolve, reject) => {
    const req = request(
      {
        hostname,
        port,
        path,
        method: 'PUT',
        headers: { 'Content-Length': String(Buffer.byteLength(body)), ...headers },
      },
      resolve,
    );
    req.on('error', reject);
    req.end(body);
  });
  res.resume();
  await new Promise((resolve) => res.on('end', resolve));
  return res.statusCode;
}

/** A GET that records when each piece arrives and how the transfer ended. */
function follow(path: string, headers: Record<string, string> = {}) {
  const arrivals: { at: number; bytes: Buffer }[] = [];
  const done = new Promise<{ res: IncomingMessage; body: Buffer; ending: 'end' | 'aborted' }>((resolve, reject) => {
    const req = request(`${base}${path}`, { headers }, (res) => {
      res.on('data', (bytes: Buffer) => arrivals.push({ at: performance.now(), bytes }));
      res.on('end', () => resolve({ res, body: Buffer.concat(arrivals.map((a) => a.bytes)), ending: 'end' }));
      res.on('aborted', () => resolve({ res, body: Buffer.concat(arrivals.map((a) => a.bytes)), ending: 'aborted' }));
      res.on('error', () => resolve({ res, body: Buffer.concat(arrivals.map((a) => a.bytes)), ending: 'aborted' }));
    });
    req.on('error', reject);
    req.end();
  });
  return { arrivals, done };
}

const bytes = (n: number, seed: number) => Uint8Array.from({ length: n }, (_, i) => (i * 31 + seed) & 0xff);

describe('delivery while producing', { timeout: 30_000 }, () => {
  it('a GET started mid-upload gets what is there, then each chunk within milliseconds of its upload', async () => {
    const up = upload('/video/100.m4s');
    const chunks = Array.from({ length: 6 }, (_, i) => bytes(3000 + i * 100, i));
    await up.write(chunks[0]!);
    await sleep(30);
    const reader = follow('/video/100.m4s');
    const sentAt: number[] = [];
    for (const chunk of chunks.slice(1)) {
      await sleep(50);
      sentAt.push(performance.now());
      await up.write(chunk);
    }
    up.req.end();
    assert.equal((await up.response).statusCode, 201);
    const { res, body, ending } = await reader.done;
    assert.equal(ending, 'end');
    assert.equal(res.statusCode, 200);
    assert.equal(res.headers['transfer-encoding'], 'chunked');
    assert.equal(res.headers['cache-control'], 'no-store');
    assert.deepEqual(body, Buffer.concat(chunks), 'the reader got exactly the uploaded bytes');
    // Each later chunk reached the reader soon after it was written (Nagle would add ~40 ms).
    let received = chunks[0]!.length;
    const delays = chunks.slice(1).map((chunk, i) => {
      received += chunk.length;
      let total = 0;
      const arrival = reader.arrivals.find((a) => {
        total += a.bytes.length;
        return total >= received;
      })!;
      return arrival.at - sentAt[i]!;
    });
    // Nagle would hold each chunk ~40 ms: the median shows it even when a busy machine delays a few.
    const median = [...delays].sort((a, b) => a - b)[Math.floor(delays.length / 2)]!;
    assert.ok(median < 30, `delivery delays ${delays.map((d) => d.toFixed(1)).join(', ')} ms`);
  });

  it('a cut upload aborts its readers: no clean end, nothing left to cache', async () => {
    const up = upload('/video/101.m4s');
    await up.write(bytes(2000, 1));
    await sleep(20);
    const reader = follow('/video/101.m4s');
    await sleep(30);
    up.req.destroy();
    const { ending, body } = await reader.done;
    assert.equal(ending, 'aborted');
    assert.equal(body.length, 2000);
    await sleep(20);
    const after = follow('/video/101.m4s');
    assert.equal((await after.done).res.statusCode, 404, 'the cut object is gone');
  });

  it('a GET for the next segment, 50 ms before its upload begins, is held and then served', async () => {
    assert.equal(await put('/video/200.m4s', bytes(100, 2)), 201);
    const early = performance.now();
    const reader = follow('/video/201.m4s');
    await sleep(50);
    assert.equal(await put('/video/201.m4s', bytes(500, 3)), 201);
    const { res, body } = await reader.done;
    assert.equal(res.statusCode, 200);
    assert.deepEqual(body, Buffer.from(bytes(500, 3)));
    assert.ok(performance.now() - early >= 45);
    const tooFar = follow('/video/260.m4s');
    assert.equal((await tooFar.done).res.statusCode, 404, 'a segment far in the future is not held');
  });

  it('a held GET whose upload never begins gets 404 after the hold time', async () => {
    assert.equal(await put('/video/300.m4s', bytes(10, 4)), 201);
    const started = performance.now();
    const { res } = await follow('/video/301.m4s').done;
    assert.equal(res.statusCode, 404);
    assert.ok(performance.now() - started >= 950, 'held for the hold time (1 s)');
  });

  it('open-ended ranges on a growing segment follow it (RFC 8673); ranges on a complete one are exact', async () => {
    const up = upload('/video/400.m4s');
    await up.write(bytes(1000, 5));
    await sleep(20);
    const live = follow('/video/400.m4s', { Range: `bytes=600-${LIVE_RANGE_END}` });
    await sleep(20);
    await up.write(bytes(500, 6));
    up.req.end();
    await up.response;
    const { res, body } = await live.done;
    assert.equal(res.statusCode, 206);
    assert.equal(res.headers['content-range'], `bytes 600-${LIVE_RANGE_END}/*`);
    assert.deepEqual(body, Buffer.concat([bytes(1000, 5), bytes(500, 6)]).subarray(600));
    const exact = await follow('/video/400.m4s', { Range: 'bytes=10-19' }).done;
    assert.equal(exact.res.statusCode, 206);
    assert.equal(exact.res.headers['content-range'], 'bytes 10-19/1500');
    assert.deepEqual(exact.body, Buffer.from(bytes(1000, 5).subarray(10, 20)));
    const suffix = await follow('/video/400.m4s', { Range: 'bytes=-5' }).done;
    assert.equal(suffix.res.headers['content-range'], 'bytes 1495-1499/1500');
    const beyond = await follow('/video/400.m4s', { Range: 'bytes=2000-' }).done;
    assert.equal(beyond.res.statusCode, 416);
  });
});

describe('ingest', { timeout: 30_000 }, () => {
  it('without a token 401, with a wrong one 403', async () => {
    assert.equal(await put('/a/1.m4s', 'x', {}), 401);
    assert.equal(await put('/a/1.m4s', 'x', { Authorization: 'Bearer nope' }), 403);
    assert.equal(store.get('a/1.m4s'), undefined);
  });

  it('idempotent re-uploads, replacement, DELETE', async () => {
    assert.equal(await put('/a/live.mpd', '<MPD/>'), 201);
    assert.equal(await put('/a/live.mpd', '<MPD/>'), 200, 'same path, same bytes');
    assert.equal(await put('/a/live.mpd', '<MPD type="x"/>'), 204, 'replaced');
    const del = await new Promise<IncomingMessage>((resolve) =>
      request(`${base}/a/live.mpd`, { method: 'DELETE', headers: auth }, resolve).end(),
    );
    assert.equal(del.statusCode, 204);
    assert.equal((await follow('/a/live.mpd').done).res.statusCode, 404);
  });

  it('many uploads on one keep-alive connection leave no listener behind on its socket', async () => {
    const sockets: import('node:net').Socket[] = [];
    const onConnection = (socket: import('node:net').Socket) => sockets.push(socket);
    server.on('connection', onConnection);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    try {
      for (let i = 0; i < 30; i++) {
        const status = await new Promise<number | undefined>((resolve, reject) => {
          const req = request(`${base}/keep/${i}.m4s`, { method: 'PUT', agent, headers: auth }, (res) => {
            res.resume();
            res.on('end', () => resolve(res.statusCode));
          });
          req.on('error', reject);
          req.end(bytes(100, i));
        });
        assert.equal(status, 201);
      }
      assert.equal(sockets.length, 1, 'one connection carried them all');
      assert.ok(sockets[0]!.listenerCount('timeout') <= 2, `${sockets[0]!.listenerCount('timeout')} timeout listeners`);
    } finally {
      server.off('connection', onConnection);
      agent.destroy();
    }
  });

  it('POST works like PUT, chunked or with a length', async () => {
    const up = upload('/b/5.m4s', 'POST');
    await up.write(bytes(10, 7));
    up.req.end();
    assert.equal((await up.response).statusCode, 201);
    assert.equal(store.get('b/5.m4s')?.length, 10);
  });

  it('refuses path traversal, oversized bodies and unknown methods with the right status', async () => {
    for (const path of ['/../etc/passwd', '/a/%2e%2e/b.m4s', '/a//b.m4s', '/a/%00.m4s']) {
      assert.equal(await put(path, 'x'), 400, path);
    }
    assert.equal(await put('/big/1.m4s', 'x'.repeat(100_001)), 413);
    const up = upload('/big/2.m4s');
    for (let i = 0; i < 12; i++) await up.write(bytes(10_000, i));
    up.req.end();
    assert.equal((await up.response).statusCode, 413, 'a chunked body past the limit');
    assert.equal(store.get('big/2.m4s'), undefined);
    const patch = await new Promise<IncomingMessage>((resolve) =>
      request(`${base}/a/1.m4s`, { method: 'PATCH', headers: auth }, resolve).end(),
    );
    assert.equal(patch.statusCode, 405);
    assert.match(String(patch.headers['allow']), /GET/);
  });
});

describe('HTTP manners', { timeout: 30_000 }, () => {
  it('content types, cache control and ETag by kind', async () => {
    const recorded = new Uint8Array(
      await readFile(new URL('../fixtures/media/recorded-audio-4s.mp4', import.meta.url)),
    );
    const audioInit = Buffer.concat(
      [...childBoxes(recorded)].filter((b) => b.type === 'ftyp' || b.type === 'moov').map((b) => b.bytes),
    );
    await put('/m/live.mpd', '<MPD/>');
    await put('/m/live.m3u8', '#EXTM3U');
    await put('/m/audio/init.mp4', audioInit);
    await put('/m/audio/7.m4s', 'a');
    await put('/m/video/7.m4s', 'v');
    const head = async (path: string) => (await follow(path).done).res.headers;
    assert.deepEqual(
      [(await head('/m/live.mpd'))['content-type'], (await head('/m/live.mpd'))['cache-control']],
      ['application/dash+xml', 'no-cache'],
    );
    assert.equal((await head('/m/live.m3u8'))['content-type'], 'application/vnd.apple.mpegurl');
    assert.deepEqual(
      [(await head('/m/audio/init.mp4'))['content-type'], (await head('/m/audio/init.mp4'))['cache-control']],
      ['audio/mp4', 'no-cache'],
    );
    assert.equal((await head('/m/audio/7.m4s'))['content-type'], 'audio/mp4');
    const video = await head('/m/video/7.m4s');
    assert.deepEqual(
      [video['content-type'], video['cache-control'], video['content-length']],
      ['video/mp4', 'public, max-age=86400, immutable', '1'],
    );
    assert.match(String(video['etag']), /^"[\w-]+"$/);
    const cached = await follow('/m/video/7.m4s', { 'If-None-Match': String(video['etag']) }).done;
    assert.equal(cached.res.statusCode, 304);
    assert.equal(video['access-control-allow-origin'], '*');
    assert.match(String(video['access-control-expose-headers']), /Date.*Content-Range/);
  });

  it('CORS preflight, /time with milliseconds, the index page', async () => {
    const options = await new Promise<IncomingMessage>((resolve) =>
      request(
        `${base}/m/live.mpd`,
        { method: 'OPTIONS', headers: { Origin: 'http://player.example', 'Access-Control-Request-Method': 'GET' } },
        resolve,
      ).end(),
    );
    assert.equal(options.statusCode, 204);
    assert.match(String(options.headers['access-control-allow-methods']), /GET/);
    assert.match(String(options.headers['access-control-allow-headers']), /Range/);
    const time = await follow('/time').done;
    assert.match(time.body.toString(), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
    assert.ok(Math.abs(Date.parse(time.body.toString()) - Date.now()) < 1000);
    assert.match((await follow('/').done).body.toString(), /index/);
  });
});

describe('LL-HLS requests', { timeout: 30_000 }, () => {
  const playlist = (parts: number) =>
    [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-TARGETDURATION:1',
      '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,PART-HOLD-BACK=0.3,HOLD-BACK=3.0',
      '#EXT-X-PART-INF:PART-TARGET=0.1',
      '#EXT-X-MEDIA-SEQUENCE:100',
      '#EXT-X-MAP:URI="h/init.mp4"',
      '#EXTINF:1.0,',
      'h/100.m4s',
      ...Array.from({ length: parts }, (_, i) => `#EXT-X-PART:DURATION=0.1,URI="h/101.m4s.${i + 1}"`),
      '',
    ].join('\n');

  it('holds a pushed playlist until the part files it names arrive, and a blocking request until its part is named', async () => {
    assert.equal(await put('/hls/h/100.m4s', bytes(100, 1)), 201);
    assert.equal(await put('/hls/h/101.m4s.1', bytes(50, 2)), 201);
    assert.equal(await put('/hls/live_h.m3u8', playlist(1)), 201);
    assert.match(await (await fetch(`${base}/hls/live_h.m3u8`)).text(), /101\.m4s\.1"\n$/);
    // Part 2 is named before its file exists: the origin keeps that playlist back until it does.
    const asked = Date.now();
    const blocked = fetch(`${base}/hls/live_h.m3u8?_HLS_msn=101&_HLS_part=1`);
    assert.equal(await put('/hls/live_h.m3u8', playlist(2)), 204);
    await sleep(150);
    assert.doesNotMatch(
      await (await fetch(`${base}/hls/live_h.m3u8`)).text(),
      /101\.m4s\.2/,
      'not served before its part arrived',
    );
    assert.equal(await put('/hls/h/101.m4s.2', bytes(50, 3)), 201);
    const answer = await blocked;
    assert.equal(answer.status, 200);
    assert.equal(answer.headers.get('cache-control'), 'no-cache');
    assert.match(await answer.text(), /101\.m4s\.2"\n$/);
    assert.ok(Date.now() - asked >= 150, 'held until the part existed');
  });

  it('holds a pushed multivariant playlist until the media playlists it names are served', async () => {
    assert.equal(await put('/mv/h/100.m4s', bytes(100, 1)), 201);
    // The media playlist names a part not there yet: held.
    assert.equal(await put('/mv/live_h.m3u8', playlist(1)), 201);
    assert.equal((await fetch(`${base}/mv/live_h.m3u8`)).status, 404);
    const multivariant = '#EXTM3U\n#EXT-X-VERSION:9\n#EXT-X-STREAM-INF:BANDWIDTH=100000\nlive_h.m3u8\n';
    assert.equal(await put('/mv/live.m3u8', multivariant), 201);
    assert.equal((await fetch(`${base}/mv/live.m3u8`)).status, 404, 'not before what it names is served');
    const stored = new Promise<void>((resolve) => {
      const stop = store.watch('mv/live.m3u8', () => {
        stop();
        resolve();
      });
    });
    assert.equal(await put('/mv/h/101.m4s.1', bytes(50, 2)), 201);
    await stored;
    assert.equal((await fetch(`${base}/mv/live_h.m3u8`)).status, 200);
    assert.equal(await (await fetch(`${base}/mv/live.m3u8`)).text(), multivariant);
  });

  it('serves a playlist re-uploaded faster than it is held once the first upload waited a second', async () => {
    assert.equal(await put('/st/h/100.m4s', bytes(100, 1)), 201);
    const first = Date.now();
    let served = 0;
    // Every version names a part that never comes; a new one arrives every 200 ms.
    for (let i = 0; i < 15 && !served; i++) {
      await put('/st/live_h.m3u8', playlist(1));
      if ((await fetch(`${base}/st/live_h.m3u8`)).status === 200) served = Date.now();
      else await sleep(200);
    }
    assert.ok(served, 'served in the end');
    assert.ok(served - first >= 1000 && served - first < 2500, `after the first upload's wait: ${served - first} ms`);
  });

  it('answers _HLS_skip with a delta update, and a playlist that offers no skipping whole', async () => {
    const segments = Array.from({ length: 12 }, (_, i) => [
      `#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:${String(i).padStart(2, '0')}.000Z`,
      '#EXTINF:1.00000,',
      `d/${200 + i}.m4s`,
    ]).flat();
    const text = (control: string) =>
      [
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-TARGETDURATION:1',
        `#EXT-X-SERVER-CONTROL:${control}`,
        '#EXT-X-MEDIA-SEQUENCE:200',
        '#EXT-X-MAP:URI="d/init.mp4"',
        ...segments,
        '',
      ].join('\n');
    store.put(
      'skip/live_d.m3u8',
      new TextEncoder().encode(text('CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,HOLD-BACK=3.0')),
    );
    const delta = await fetch(`${base}/skip/live_d.m3u8?_HLS_skip=YES`);
    assert.equal(delta.headers.get('cache-control'), 'no-cache');
    const body = await delta.text();
    assert.match(body, /#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n#EXT-X-PROGRAM-DATE-TIME:2026-01-01T00:00:06.000Z\n/);
    assert.equal(body.match(/#EXTINF/g)?.length, 6);
    store.put('skip/live_e.m3u8', new TextEncoder().encode(text('CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.0')));
    assert.equal(
      await (await fetch(`${base}/skip/live_e.m3u8?_HLS_skip=YES`)).text(),
      text('CAN-BLOCK-RELOAD=YES,HOLD-BACK=3.0'),
    );
  });

  it('answers 503 when the part asked for does not come within 3 target durations, 400 for nonsense', async () => {
    const asked = Date.now();
    const answer = await fetch(`${base}/hls/live_h.m3u8?_HLS_msn=101&_HLS_part=4`);
    assert.equal(answer.status, 503);
    const waited = Date.now() - asked;
    assert.ok(waited >= 2900 && waited < 4500, `503 after ${waited} ms`);
    assert.equal((await fetch(`${base}/hls/live_h.m3u8?_HLS_part=2`)).status, 400);
    assert.equal((await fetch(`${base}/hls/live_h.m3u8?_HLS_msn=abc`)).status, 400);
    assert.equal((await fetch(`${base}/hls/live_h.m3u8?_HLS_msn=99&_HLS_part=0`)).status, 200, 'the past at once');
    assert.equal((await fetch(`${base}/hls/nothing.m3u8?_HLS_msn=1`)).status, 404);
  });
});

describe('retention', () => {
  it('memory stays flat over two hours of synthetic uploads', () => {
    let now = 1_795_219_794_000;
    const clock = new ObjectStore({ timeShiftBufferDepth: 30, holdMs: 1000, now: () => now });
    const segment = new Uint8Array(10_000);
    clock.put('v/init.mp4', new Uint8Array(800));
    let peak = 0;
    for (let n = 0; n < 7200; n++) {
      now += 1000;
      for (const track of ['v', 'a']) clock.put(`${track}/${n}.m4s`, segment);
      clock.put('live.mpd', new Uint8Array(3000));
      clock.expire();
      peak = Math.max(peak, clock.bytes);
    }
    // 30 s window + 1 s hold, two tracks, plus manifest and init.
    assert.ok(peak <= 2 * 32 * 10_000 + 3800, `peak ${peak} bytes`);
    assert.ok(clock.get('v/7199.m4s') && !clock.get('v/7000.m4s') && clock.get('v/init.mp4') && clock.get('live.mpd'));
  });
});

describe('pure helpers', () => {
  it('storeKey refuses anything that could escape', () => {
    assert.equal(storeKey('/1080p/5.m4s'), '1080p/5.m4s');
    for (const bad of ['/../x', '/a/../../x', '/a/%2e%2e/x', '/a//x', '/a/./x', '/a\\x', '/%00', 'x', '/%E0%A4%A'])
      assert.equal(storeKey(bad), undefined, bad);
  });
  it('parseRange', () => {
    assert.deepEqual(parseRange('bytes=0-99'), { start: 0, end: 99 });
    assert.deepEqual(parseRange('bytes=100-'), { start: 100, end: undefined });
    assert.deepEqual(parseRange('bytes=-5'), { start: -5, end: undefined });
    assert.equal(parseRange('bytes=5-1'), 'invalid');
    assert.equal(parseRange('bytes=0-1,5-6'), 'invalid');
    assert.equal(parseRange(undefined), undefined);
  });
});
