import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { connect, type Socket } from 'node:net';
import type { ResultPromise } from 'execa';
import { logLines, startApplianceOrigin } from '../helpers/run.ts';

// `appliance origin` as operators run it, in its own process: an input that kills it shows here
// as a dead process, not as a crash of the test runner.
const TOKEN = 'hardening-test-token';
const auth = { Authorization: `Bearer ${TOKEN}` };
let origin: ResultPromise;
let base: string;
let log: () => string;

before(async () => {
  ({
    child: origin,
    base,
    log,
  } = await startApplianceOrigin(
    ['--listen', '127.0.0.1:0', '--headers-timeout', '1', '--body-timeout', '1', '--max-client-connections', '64'],
    { APPLIANCE_INGEST_TOKEN: TOKEN },
  ));
});
after(async () => {
  if (origin.exitCode === null) origin.kill('SIGTERM');
  await origin;
});

/** Still alive and answering: /time within 2 s. */
async function assertAlive(after: string) {
  assert.equal(origin.exitCode, null, `the origin process ended after ${after}`);
  const time = await fetch(`${base}/time`, { signal: AbortSignal.timeout(2000) });
  assert.equal(time.status, 200, `/time after ${after}`);
}

const put = (path: string, body: string) =>
  fetch(`${base}/${path}`, { method: 'PUT', headers: auth, body, signal: AbortSignal.timeout(5000) });

function mediaPlaylist(options: { sequence?: string; skip?: string; target?: string } = {}): string {
  const lines = [
    '#EXTM3U',
    `#EXT-X-TARGETDURATION:${options.target ?? '1'}`,
    '#EXT-X-VERSION:9',
    '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6,PART-HOLD-BACK=0.3',
    '#EXT-X-PART-INF:PART-TARGET=0.1',
    `#EXT-X-MEDIA-SEQUENCE:${options.sequence ?? '1'}`,
    '#EXT-X-MAP:URI="init.mp4"',
  ];
  if (options.skip) lines.push(`#EXT-X-SKIP:SKIPPED-SEGMENTS=${options.skip}`);
  for (let i = 0; i < 12; i++) lines.push('#EXTINF:1.0,', `s${i}.m4s`);
  return `${lines.join('\n')}\n`;
}

/** The newest segments the test playlists name: the origin serves a playlist once they are there. */
async function putNamedMedia(directory: string) {
  for (const name of ['s9.m4s', 's10.m4s', 's11.m4s'])
    assert.equal((await put(`${directory}/${name}`, 'media')).status, 201);
}

describe('appliance origin survives any upload', { timeout: 120_000 }, () => {
  it('refuses playlists it cannot read (400 and a warning naming the path), and blocking requests on them never end it', async () => {
    // A valid playlist first, with a blocking request held on it; the bad one replaces it.
    await putNamedMedia('a');
    assert.equal((await put('a/v.m3u8', mediaPlaylist())).status, 201);
    const held = fetch(`${base}/a/v.m3u8?_HLS_msn=14`, { signal: AbortSignal.timeout(10_000) });
    for (const [name, text] of [
      ['a non-decimal media sequence', mediaPlaylist({ sequence: 'abc' })],
      ['a skip count past any window', mediaPlaylist({ skip: '1e9' })],
      ['a target duration of hours', mediaPlaylist({ target: '99999' })],
      ['no #EXTM3U', 'hello\n'],
    ] as const) {
      const answer = await put('a/v.m3u8', text);
      assert.equal(answer.status, 400, name);
      assert.match(await answer.text(), /a\/v\.m3u8: not a playlist/);
      await assertAlive(name);
    }
    // The held request is answered (by the 3-target-duration rule), not by a dead process.
    assert.ok([200, 503].includes((await held).status));
    const refusals = logLines(log()).filter(
      (l) => l['msg'] === 'origin: refused an uploaded playlist' && l['path'] === 'a/v.m3u8',
    );
    assert.equal(refusals.length, 4, 'one warning per refused upload, naming the path');
  });

  it('answers a delta request on a playlist that skipped two million segments at once', async () => {
    await putNamedMedia('b');
    assert.equal((await put('b/v.m3u8', mediaPlaylist({ skip: '2000000' }))).status, 201);
    const started = performance.now();
    const answers = await Promise.all([
      fetch(`${base}/b/v.m3u8?_HLS_msn=2&_HLS_skip=YES`),
      fetch(`${base}/b/v.m3u8?_HLS_msn=1`),
      fetch(`${base}/time`),
    ]);
    assert.deepEqual(
      answers.map((a) => a.status),
      [200, 200, 200],
    );
    assert.ok(performance.now() - started < 2000, `answered in ${(performance.now() - started).toFixed(0)} ms`);
    await assertAlive('a skip of two million');
  });

  it('escapes uploaded names on its index page', async () => {
    const name = `x"><img src=x onerror=alert(1)>.m3u8`;
    // The playlist it names is there first: the origin holds a multivariant until what it names is.
    assert.equal((await put('c/v.m3u8', '#EXTM3U\n#EXT-X-TARGETDURATION:1\n#EXT-X-MEDIA-SEQUENCE:0\n')).status, 201);
    assert.equal(
      (await put(`c/${encodeURIComponent(name)}`, '#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nv.m3u8\n')).status,
      201,
    );
    const page = await (await fetch(`${base}/`)).text();
    assert.ok(!page.includes('<img'), 'no markup from an uploaded name');
    assert.ok(page.includes('&#34;&#62;&#60;img'), 'the name shown, escaped');
  });
});

/** A raw connection: what the origin answers, whether (and when) it closed, what we managed to send. */
async function raw(): Promise<{ socket: Socket; answer: () => string; closed: Promise<number> }> {
  const socket = connect(Number(new URL(base).port), '127.0.0.1');
  await new Promise<void>((resolve, reject) => socket.once('connect', resolve).once('error', reject));
  let answer = '';
  socket.on('data', (piece: Buffer) => (answer += piece.toString('latin1')));
  socket.on('error', () => undefined);
  const opened = performance.now();
  const closed = new Promise<number>((resolve) => socket.once('close', () => resolve(performance.now() - opened)));
  return { socket, answer: () => answer, closed };
}

/** Resolves with the value, or 'timeout' after `ms` (a bound, not a wait). */
const within = <T>(promise: Promise<T>, ms: number) =>
  Promise.race([promise, new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), ms).unref())]);

describe('appliance origin bounds what a client can hold', { timeout: 120_000 }, () => {
  it('closes a connection whose headers never end (--headers-timeout)', async () => {
    const { socket, closed } = await raw();
    socket.write('GET /time HTTP/1.1\r\nHost: origin\r\n');
    assert.notEqual(await within(closed, 10_000), 'timeout', 'closed by the origin');
    await assertAlive('headers that never end');
  });

  it('cuts an upload whose body stops (--body-timeout) and keeps nothing of it', async () => {
    const { socket, closed } = await raw();
    socket.write(
      `PUT /stall/seg_1.m4s HTTP/1.1\r\nHost: origin\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n4\r\nabcd\r\n`,
    );
    assert.notEqual(await within(closed, 10_000), 'timeout', 'cut by the origin');
    assert.equal((await fetch(`${base}/stall/seg_1.m4s`)).status, 404, 'a cut upload is not served');
    await assertAlive('a stalled body');
  });

  it('answers an unauthenticated upload without reading its body, and never sends it 100 Continue', async () => {
    const { socket, answer, closed } = await raw();
    socket.write('PUT /x/seg_1.m4s HTTP/1.1\r\nHost: origin\r\nTransfer-Encoding: chunked\r\n\r\n');
    let sent = 0;
    const block = Buffer.alloc(1 << 16);
    const size = `${block.length.toString(16)}\r\n`;
    let open = true;
    void closed.then(() => (open = false));
    // Sends as fast as the connection takes it, up to 1 GiB, until the origin closes it.
    for (let i = 0; open && sent < 2 ** 30 && i < 20_000; i++) {
      if (!socket.write(size) || !socket.write(block) || !socket.write('\r\n'))
        await within(new Promise((resolve) => socket.once('drain', resolve)), 500);
      sent += block.length;
    }
    assert.notEqual(await within(closed, 10_000), 'timeout', 'closed by the origin');
    assert.match(answer(), /^HTTP\/1\.1 401 /);
    assert.ok(sent < 64 * 2 ** 20, `the origin let ${(sent / 2 ** 20).toFixed(1)} MiB in before closing`);

    const expecting = await raw();
    expecting.socket.write(
      'PUT /x/seg_2.m4s HTTP/1.1\r\nHost: origin\r\nContent-Length: 1000000000\r\nExpect: 100-continue\r\nAuthorization: Bearer wrong\r\n\r\n',
    );
    assert.notEqual(await within(expecting.closed, 10_000), 'timeout');
    assert.match(expecting.answer(), /^HTTP\/1\.1 403 /, 'refused without a 100 Continue first');

    const welcome = await raw();
    welcome.socket.write(
      `PUT /x/seg_3.m4s HTTP/1.1\r\nHost: origin\r\nContent-Length: 4\r\nExpect: 100-continue\r\nAuthorization: Bearer ${TOKEN}\r\n\r\n`,
    );
    for (let i = 0; i < 100 && !welcome.answer().includes('\r\n\r\n'); i++)
      await new Promise((resolve) => setTimeout(resolve, 20));
    assert.match(welcome.answer(), /^HTTP\/1\.1 100 Continue/);
    welcome.socket.end('abcd');
    await within(welcome.closed, 5000);
    await assertAlive('unauthenticated bodies');
  });

  it('closes connections past --max-client-connections from one address, and takes new ones once they go', async () => {
    const sockets = await Promise.all(Array.from({ length: 80 }, () => raw()));
    const states = await Promise.all(sockets.map(({ closed }) => within(closed, 1500)));
    const closedAtOnce = states.filter((s) => s !== 'timeout').length;
    assert.ok(closedAtOnce >= 16 && closedAtOnce <= 80, `${closedAtOnce} of 80 connections closed by the origin`);
    for (const { socket } of sockets) socket.destroy();
    await Promise.all(sockets.map(({ closed }) => closed));
    await assertAlive('too many connections');
  });
});
