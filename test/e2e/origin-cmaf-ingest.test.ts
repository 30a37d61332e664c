import assert from 'node:assert/strict';
import { request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { pino } from 'pino';
import { loadProfile } from '../../src/config/profile.ts';
import { listen } from '../../src/listen.ts';
import { CmafIngestReceiver } from '../../src/origin/cmaf-ingest.ts';
import { createOriginServer } from '../../src/origin/http.ts';
import { ObjectStore } from '../../src/origin/store.ts';
import { TrackChunker, type ChunkEvent } from '../../src/packager/chunker.ts';
import { recorded, shiftedDecodeTimes, T0 } from '../helpers/recorded-media.ts';
import { ffmpegCmafSender } from '../helpers/ffmpeg-cmaf-sender.ts';
import { pushingAppliance, TRACKS } from '../helpers/push-run.ts';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { scratchDirectories } from '../helpers/scratch.ts';

// `appliance origin` receiving CMAF ingest (DASH-IF Interface-1), in this process: a sender made
// of the packager's own chunks of a recorded encode (4 s on the epoch grid), request by request,
// and every rule's answer.

const TOKEN = 'cmaf-ingest-token';
const timing = { segdur: 1, cdur: 0.1 };

/** A track as a CMAF ingest sender has it: its header and each segment's chunks. */
function senderOf(track: '180p' | 'audio', bytes: Uint8Array) {
  const events = new TrackChunker(track, timing).push(bytes);
  const header = events.find((e) => e.type === 'init')!.bytes;
  const segments = new Map<bigint, Uint8Array[]>();
  for (const e of events) {
    if (e.type !== 'chunk') continue;
    const chunk = Buffer.concat((e as ChunkEvent).parts);
    segments.set(e.segment, [...(segments.get(e.segment) ?? []), chunk]);
  }
  // Whole segments only: the recording's last one may stop short.
  const whole = new Set(events.flatMap((e) => (e.type === 'segmentEnd' ? [e.segment] : [])));
  for (const n of segments.keys()) if (!whole.has(n)) segments.delete(n);
  return { header, segments };
}

let base = '';
let lightProfile = '';
const scratch = scratchDirectories('origin-cmaf');
let store: ObjectStore;
let receiver: CmafIngestReceiver;
let close: () => Promise<void>;
before(async () => {
  lightProfile = await writeLightProfile(await scratch(), { renditions: LIGHT_PAIR, tsb: 30 });
  store = new ObjectStore({ timeShiftBufferDepth: 600, holdMs: 1000 });
  const profile = { ...(await loadProfile('ultra-ll')).profile, tsb: 600 };
  const logger = pino({ level: process.env['ORIGIN_LOG'] ?? 'silent' });
  receiver = new CmafIngestReceiver({
    store,
    profile,
    maxBodyBytes: 4_000_000,
    utcTimingUrl: () => `${base}/time`,
    logger,
  });
  const server = createOriginServer({
    store,
    ingestToken: TOKEN,
    maxBodyBytes: 4_000_000,
    logger,
    index: () => '',
    cmafIngest: receiver,
  });
  const address = await listen(server, '127.0.0.1', 0);
  base = `http://127.0.0.1:${address.port}`;
  close = async () => {
    server.closeAllConnections();
    await new Promise((resolve) => server.close(resolve));
  };
});
after(() => close());

/** One POST, its body sent in the pieces given (a chunk at a time, chunked transfer). */
function post(
  path: string,
  pieces: Uint8Array[],
  token = TOKEN,
  extra: Record<string, string> = {},
): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      `${base}/${path}`,
      { method: 'POST', headers: { authorization: `Bearer ${token}`, 'transfer-encoding': 'chunked', ...extra } },
      (res) => {
        let text = '';
        res.on('data', (d: Buffer) => (text += d.toString()));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
      },
    );
    req.on('error', reject);
    for (const piece of pieces) req.write(piece);
    req.end();
  });
}

async function get(path: string): Promise<{ status: number; body: Buffer }> {
  const res = await fetch(`${base}/${path}`);
  return { status: res.status, body: Buffer.from(await res.arrayBuffer()) };
}

describe('appliance origin: CMAF ingest in (packaged here)', { timeout: 60_000 }, () => {
  const video = senderOf('180p', recorded['180p']);
  const audio = senderOf('audio', recorded.audio);

  it('packages per-segment requests into LL-DASH and LL-HLS, every segment byte-equal at <stream>/<track>/<n>.m4s', async () => {
    for (const [track, sender] of [
      ['180p.cmfv', video],
      ['audio.cmfa', audio],
    ] as const) {
      assert.equal((await post(`live/Streams(${track})`, [])).status, 200, 'an empty body opens the session');
      assert.equal((await post(`live/Streams(${track})`, [sender.header])).status, 200);
      for (const chunks of sender.segments.values())
        assert.equal((await post(`live/Streams(${track})`, chunks)).status, 200);
    }
    for (const [track, sender] of [
      ['180p', video],
      ['audio', audio],
    ] as const) {
      assert.deepEqual((await get(`live/${track}/init.mp4`)).body, Buffer.from(sender.header));
      for (const [n, chunks] of sender.segments) {
        const served = await get(`live/${track}/${n}.m4s`);
        assert.equal(served.status, 200, `live/${track}/${n}.m4s`);
        assert.deepEqual(served.body, Buffer.concat(chunks));
      }
    }
    // A copy of segments already whole (a twin's, a backlog sent after a network cut, a resend after
    // a lost answer) is acknowledged, counted and discarded: what is served does not change.
    const [first, second] = [...video.segments.values()];
    const resent = await post('live/Streams(180p.cmfv)', [...first!, ...second!]);
    assert.equal(resent.status, 200, `a late copy is acknowledged (${resent.text})`);
    assert.deepEqual((await get(`live/180p/${T0}.m4s`)).body, Buffer.concat(first!));
    assert.equal(receiver.status()['live']?.['180p']?.duplicates, 2, 'each late segment counted once');
    const mpd = (await get('live/live.mpd')).body.toString();
    assert.match(mpd, /<Representation id="180p"/);
    assert.match(mpd, /<Representation id="audio"/);
    assert.match(mpd, /availabilityTimeOffset="0\.9"/);
    assert.match(mpd, new RegExp(`UTCTiming[^>]*value="${base}/time"`));
    const multivariant = (await get('live/live.m3u8')).body.toString();
    assert.match(multivariant, /live_180p\.m3u8/);
    const media = (await get('live/live_180p.m3u8')).body.toString();
    assert.match(media, /#EXT-X-PART:DURATION=0\.1/);
    assert.match(media, new RegExp(`180p/${T0 + 3}\\.m4s`));
  });

  it('takes a whole track in one long-running POST (DASH-IF ingest v1.0, what ffmpeg sends), segment after segment', async () => {
    assert.equal((await post('long/Streams(180p.cmfv)', [video.header])).status, 200);
    assert.equal((await post('long/Streams(audio.cmfa)', [audio.header])).status, 200);
    const all = (sender: typeof video) => [...sender.segments.values()].flat();
    const [v, a] = await Promise.all([
      post('long/Streams(180p.cmfv)', all(video)),
      post('long/Streams(audio.cmfa)', all(audio)),
    ]);
    assert.deepEqual([v.status, a.status], [200, 200]);
    for (const [n, chunks] of video.segments)
      assert.deepEqual((await get(`long/180p/${n}.m4s`)).body, Buffer.concat(chunks), `long/180p/${n}.m4s`);
    assert.equal((await get('long/live.mpd')).status, 200);
  });

  it('packages a sender it did not write: ffmpeg -f mp4 POSTing each track whole, on the epoch grid', async () => {
    const seconds = 6;
    const T = Math.floor(Date.now() / 1000) + 1;
    const run = ffmpegCmafSender(`${base}/ff`, TOKEN, T, seconds);
    const result = await run;
    assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
    const mpd = (await get('ff/live.mpd')).body.toString();
    assert.match(mpd, /<Representation id="video"/);
    assert.match(mpd, /<Representation id="audio"/);
    // Whole segments on the grid, every one of them, in both tracks (the audio's fragments, which
    // straddle the grid, re-cut into chunks on it).
    for (const track of ['video', 'audio']) {
      const playlist = (await get(`ff/live_${track}.m3u8`)).body.toString();
      const numbers = [...playlist.matchAll(/#EXTINF:[\d.]+,\n\S+\/(\d+)\.m4s/g)].map((m) => Number(m[1]));
      assert.ok(numbers.length >= seconds - 2, `${track}: ${numbers.length} whole segments`);
      assert.ok(numbers[0]! >= T && numbers.at(-1)! < T + seconds, `${track}: on the epoch timeline from ${T}`);
      for (let i = 1; i < numbers.length; i++) assert.equal(numbers[i], numbers[i - 1]! + 1, `${track}: no gap`);
      for (const n of numbers) assert.equal((await get(`ff/${track}/${n}.m4s`)).status, 200);
    }
  });

  it('takes the v1.1 names of a posted MPD from a sender that says DASH-IF-Ingest (appliance --origin-profile generic-cmaf)', async () => {
    const result = await pushingAppliance(
      ['--duration', '6', '--ingest', 'cmaf', '--origin-profile', 'generic-cmaf', '--output', `${base}/tpl`],
      lightProfile,
      { APPLIANCE_PUSH_TOKEN: TOKEN },
    );
    assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
    // The origin's own manifest, not the one posted (which has no availabilityTimeOffset).
    const mpd = (await get('tpl/live.mpd')).body.toString();
    assert.match(mpd, /availabilityTimeOffset="0\.9"/);
    for (const track of TRACKS) assert.match(mpd, new RegExp(`<Representation id="${track}"`));
    const playlist = (await get(`tpl/live_${TRACKS[0]}.m3u8`)).body.toString();
    const numbers = [...playlist.matchAll(/#EXTINF:[\d.]+,\n\S+\/(\d+)\.m4s/g)].map((m) => m[1]);
    assert.ok(numbers.length >= 4, `${numbers.length} segments`);
    for (const n of numbers) assert.equal((await get(`tpl/${TRACKS[0]}/${n}.m4s`)).status, 200);
    // A posted MPD is acknowledged, never kept in place of the origin's.
    const posted = await post('tpl/live.mpd', [new TextEncoder().encode('<MPD/>')], TOKEN, { 'dash-if-ingest': '1.1' });
    assert.equal(posted.status, 200);
    assert.match((await get('tpl/live.mpd')).body.toString(), /availabilityTimeOffset="0\.9"/);
    // Read within --max-body like any upload (4 MB here), not drained however long.
    const huge = await post('tpl/live.mpd', [new Uint8Array(4_100_000).fill(32)], TOKEN, { 'dash-if-ingest': '1.1' });
    assert.equal(huge.status, 413);
  });

  it('answers each broken rule with its status, naming the rule', async () => {
    const first = [...video.segments.keys()][0]!;
    const chunks = video.segments.get(first)!;
    // Media before a header (another stream that never had one).
    const early = await post('other/Streams(180p.cmfv)', chunks);
    assert.equal(early.status, 412);
    assert.match(early.text, /before its CMAF header/);
    // Not CMAF at all.
    const text = await post('third/Streams(180p.cmfv)', [new TextEncoder().encode('hello, this is not media')]);
    assert.equal(text.status, 415);
    // A timed-text stream is not packaged here.
    assert.equal((await post('live/Streams(captions.cmft)', [])).status, 415);
    // Off the epoch grid: the same media 0.5 s later.
    assert.equal((await post('fourth/Streams(180p.cmfv)', [video.header])).status, 200);
    const late = await post(
      'fourth/Streams(180p.cmfv)',
      chunks.map((c) => shiftedDecodeTimes(c, 45_000n)),
    );
    assert.equal(late.status, 400);
    assert.match(late.text, /epoch grid/);
    // A segment that does not start with an IDR: the second chunk on.
    const noIdr = await post('fourth/Streams(180p.cmfv)', chunks.slice(1));
    assert.equal(noIdr.status, 400);
    assert.match(noIdr.text, /IDR|epoch grid/);
    // A changed header for a track: another track, under another name.
    const changed = Uint8Array.from(video.header);
    changed[changed.length - 1]! ^= 1;
    const renamed = await post('fourth/Streams(180p.cmfv)', [changed]);
    assert.equal(renamed.status, 400);
    assert.match(renamed.text, /keeps one header/);
    // A wrong token.
    assert.equal((await post('live/Streams(180p.cmfv)', [video.header], 'wrong')).status, 403);
  });

  it('survives mutated and truncated headers and media: a 4xx each, never a 500, the origin still answering', async () => {
    // A seeded generator (FUZZ_SEED replays one run): byte flips and truncations.
    let seed = Number(process.env['FUZZ_SEED'] ?? 2425);
    const random = () => {
      seed = Number((BigInt(seed) * 1_103_515_245n + 12_345n) % 2n ** 31n);
      return seed / 2 ** 31;
    };
    const first = [...video.segments.values()][0]!;
    const statuses = new Map<number, number>();
    for (let i = 0; i < 150; i++) {
      // A refused upload's connection lingers a second for its answer to be read: stay within the
      // origin's connections per client.
      if (i % 50 === 49) await new Promise((resolve) => setTimeout(resolve, 1100));
      const stream = `fuzz${i % 5}`;
      const header = i % 3 === 0;
      const source = header ? Uint8Array.from(video.header) : Uint8Array.from(Buffer.concat(first));
      const bytes = source.subarray(0, random() < 0.3 ? Math.floor(random() * source.length) : source.length);
      for (let flips = 1 + Math.floor(random() * 8); flips > 0; flips--)
        bytes[Math.floor(random() * bytes.length)] = Math.floor(random() * 256);
      if (!header) await post(`${stream}/Streams(180p.cmfv)`, [video.header]);
      const answer = await post(`${stream}/Streams(180p.cmfv)`, [bytes]).catch((e: Error) => {
        throw new Error(`case ${i} (${header ? 'header' : 'media'}, ${bytes.length} bytes): ${e.message}`);
      });
      statuses.set(answer.status, (statuses.get(answer.status) ?? 0) + 1);
      assert.ok([200, 400, 412, 413, 415].includes(answer.status), `case ${i}: HTTP ${answer.status} ${answer.text}`);
    }
    assert.equal((await fetch(`${base}/time`)).status, 200);
    assert.ok((statuses.get(400) ?? 0) + (statuses.get(415) ?? 0) > 0, JSON.stringify([...statuses]));
  });
});
