import assert from 'node:assert/strict';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import type { ResultPromise } from 'execa';
import { startApplianceOrigin } from '../helpers/run.ts';

// A bounded fuzz of `appliance origin` in its own process: random, truncated and mutated
// playlists, MPDs, boxes, request heads and ranges; after every case the process is alive and
// answers /time. Seeded, so a failure names a case that can be replayed.
const TOKEN = 'fuzz-test-token-0123';
const SEED = Number(process.env['FUZZ_SEED'] ?? 20261205);
const CASES = 2000;
let origin: ResultPromise;
let base: string;
let port: number;
let log: () => string;

before(async () => {
  ({
    child: origin,
    base,
    log,
  } = await startApplianceOrigin(['--listen', '127.0.0.1:0', '--max-body', '1M'], { APPLIANCE_INGEST_TOKEN: TOKEN }));
  port = Number(new URL(base).port);
});
after(async () => {
  if (origin.exitCode === null) origin.kill('SIGTERM');
  await origin;
});

/** mulberry32: a small seeded generator. */
function generator(seed: number) {
  let a = seed >>> 0;
  const next = () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  const int = (n: number) => Math.floor(next() * n);
  const pick = <T>(items: readonly T[]): T => items[int(items.length)]!;
  return { next, int, pick };
}

const NASTY = [
  'abc',
  '-1',
  '1e999',
  '99999999999999999999999999',
  '0',
  '',
  'NaN',
  '1.5',
  '0x10',
  '18446744073709551616',
  '\u0000',
  '"',
  ',,,',
  '=',
  '%00',
  '../..',
];

function validPlaylist(): string {
  const lines = [
    '#EXTM3U',
    '#EXT-X-TARGETDURATION:1',
    '#EXT-X-VERSION:9',
    '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6,PART-HOLD-BACK=0.3',
    '#EXT-X-PART-INF:PART-TARGET=0.1',
    '#EXT-X-MEDIA-SEQUENCE:100',
    '#EXT-X-MAP:URI="v/init.mp4"',
  ];
  for (let s = 0; s < 10; s++) {
    lines.push(`#EXT-X-PROGRAM-DATE-TIME:2026-12-05T00:00:0${s}.000Z`);
    for (let p = 0; p < 3; p++)
      lines.push(
        `#EXT-X-PART:DURATION=0.1,URI="v/${100 + s}.m4s",BYTERANGE="1000@${p * 1000}"${p === 0 ? ',INDEPENDENT=YES' : ''}`,
      );
    lines.push('#EXTINF:1.0,', `v/${100 + s}.m4s`);
  }
  lines.push('#EXT-X-SKIP:SKIPPED-SEGMENTS=3', '#EXT-X-PRELOAD-HINT:TYPE=PART,URI="v/110.m4s",BYTERANGE-START=0');
  return `${lines.join('\n')}\n`;
}

const VALID_MPD =
  '<?xml version="1.0"?><MPD xmlns="urn:mpeg:dash:schema:mpd:2011" type="dynamic" availabilityStartTime="1970-01-01T00:00:00Z"><Period id="0"><AdaptationSet><SegmentTemplate media="$RepresentationID$/$Number$.m4s" initialization="$RepresentationID$/init.mp4" duration="1" startNumber="1"/><Representation id="v" bandwidth="1000000"/></AdaptationSet></Period></MPD>';

function box(type: string, payload: Uint8Array, size = 8 + payload.length): Uint8Array {
  const out = new Uint8Array(8 + payload.length);
  new DataView(out.buffer).setUint32(0, size >>> 0);
  out.set(Buffer.from(type.padEnd(4).slice(0, 4), 'latin1'), 4);
  out.set(payload, 8);
  return out;
}

describe(`appliance origin under ${CASES} random inputs (seed ${SEED})`, { timeout: 240_000 }, () => {
  it('stays alive and answering after every case', async () => {
    const { next, int, pick } = generator(SEED);
    const mutateText = (text: string): string => {
      let lines = text.split('\n');
      for (let m = 1 + int(4); m > 0; m--) {
        const i = int(lines.length);
        switch (int(6)) {
          case 0:
            lines.splice(i, 1);
            break;
          case 1:
            lines.splice(i, 0, lines[int(lines.length)] ?? '');
            break;
          case 2:
            lines[i] = (lines[i] ?? '').replace(/\d+(\.\d+)?/, pick(NASTY));
            break;
          case 3:
            lines[i] = (lines[i] ?? '').replace(/=[^,]*/, `=${pick(NASTY)}`);
            break;
          case 4:
            lines[i] =
              `${pick(['#EXT-X-SKIP:SKIPPED-SEGMENTS=', '#EXT-X-MEDIA-SEQUENCE:', '#EXT-X-TARGETDURATION:', '#EXTINF:', '#EXT-X-PART:URI="v/1.m4s",BYTERANGE='])}${pick(NASTY)}`;
            break;
          default:
            lines = lines.slice(0, int(lines.length + 1));
        }
      }
      const joined = lines.join('\n');
      return next() < 0.2 ? joined.slice(0, int(joined.length + 1)) : joined;
    };
    const randomBytes = (n: number) => Uint8Array.from({ length: n }, () => int(256));
    const put = (path: string, body: Uint8Array | string, headers: Record<string, string> = {}) =>
      fetch(`${base}/${path}`, {
        method: 'PUT',
        headers: { Authorization: `Bearer ${TOKEN}`, ...headers },
        body,
        signal: AbortSignal.timeout(2000),
      }).then(
        (r) => r.arrayBuffer().then(() => r.status),
        () => 0,
      );
    const get = (path: string, headers: Record<string, string> = {}, ms = 2000) =>
      fetch(`${base}/${path}`, { headers, signal: AbortSignal.timeout(ms) }).then(
        (r) => r.arrayBuffer().then(() => r.status),
        () => 0,
      );
    const rawHead = (head: Uint8Array) =>
      new Promise<void>((resolve) => {
        const socket = connect(port, '127.0.0.1', () => socket.end(head));
        socket.on('data', () => undefined);
        socket.on('error', () => resolve());
        socket.on('close', () => resolve());
        socket.setTimeout(2000, () => socket.destroy());
      });
    const statuses = new Map<number, number>();
    const count = (status: number) => statuses.set(status, (statuses.get(status) ?? 0) + 1);
    const started = performance.now();
    for (let c = 0; c < CASES; c++) {
      const kind = int(5);
      const what = `case ${c} (kind ${kind}, seed ${SEED})`;
      if (kind === 0) {
        count(await put('fuzz/v.m3u8', mutateText(validPlaylist())));
        const query = pick([
          '',
          `?_HLS_msn=${pick(['99', '101', '110', '111', ...NASTY])}`,
          `?_HLS_msn=105&_HLS_part=${pick(['0', '2', '9', ...NASTY])}`,
          `?_HLS_skip=${pick(['YES', 'v2', 'no'])}`,
          `?_HLS_msn=109&_HLS_skip=YES`,
        ]);
        // A blocking request may be held: it is cut after a moment, which the origin must also survive.
        count(await get(`fuzz/v.m3u8${query}`, {}, 30));
      } else if (kind === 1) {
        const text =
          next() < 0.5
            ? mutateText(VALID_MPD.replace(/></g, '>\n<'))
            : Buffer.from(randomBytes(int(300))).toString('latin1');
        count(await put('fuzz/live.mpd', text));
        count(await get('fuzz/live.mpd'));
      } else if (kind === 2) {
        const segment = `fuzz/v/${int(20)}.m4s`;
        const mdat = box('mdat', randomBytes(int(64)), pick([0, 1, 7, 8, 0xffffffff, int(2 ** 32)]));
        const bytes = Buffer.concat([
          box(
            pick(['styp', 'moof', 'free', 'xx\u0000y', 'mdat']),
            randomBytes(int(32)),
            pick([0, 1, 8, 16, int(2 ** 32)]),
          ),
          mdat,
          randomBytes(int(64)),
        ]);
        const cut = bytes.subarray(0, int(bytes.length + 1));
        const reading = get(segment, next() < 0.5 ? { Range: `bytes=${int(100)}-` } : {}, 200);
        count(await put(segment, cut));
        count(await reading);
      } else if (kind === 3) {
        const range = pick([
          'bytes=',
          'bytes=-',
          'bytes=5-1',
          `bytes=${pick(NASTY)}-${pick(NASTY)}`,
          'bytes=0-0,1-1',
          `bytes=-${int(1e6)}`,
          `bytes=${2 ** 60}-`,
          'items=0-1',
          `bytes=0-${2 ** 53 - 1}`,
        ]);
        count(await get(`fuzz/v/${int(20)}.m4s`, { Range: range }, 200));
      } else {
        const head = pick([
          `PUT /fuzz/${pick(NASTY)} HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: ${pick(NASTY)}\r\n\r\nabc`,
          `GET /${encodeURIComponent(pick(NASTY))}%zz HTTP/1.1\r\nHost: x\r\n\r\n`,
          `PUT /fuzz/x.m4s HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n${pick(['zz', 'ffffffffffffffff', '-1', '5'])}\r\nabc\r\n`,
          Buffer.from(randomBytes(int(200))).toString('latin1'),
          `GET /time HTTP/1.1\r\n${'X: y\r\n'.repeat(int(300))}\r\n`,
        ]);
        await rawHead(Buffer.from(head, 'latin1'));
      }
      assert.equal(origin.exitCode, null, `the origin ended at ${what}:\n${log().slice(-2000)}`);
      assert.equal(await get('time'), 200, `/time after ${what}`);
    }
    const seconds = (performance.now() - started) / 1000;
    process.stderr.write(
      `# fuzz: ${CASES} cases in ${seconds.toFixed(1)} s; answers ${JSON.stringify(Object.fromEntries(statuses))}\n`,
    );
    assert.ok(
      !/"level":50.*a request failed inside the origin/.test(log()),
      `no request needed the last-resort guard:\n${log()
        .split('\n')
        .filter((l) => l.includes('failed inside'))
        .slice(0, 3)
        .join('\n')}`,
    );
  });
});
