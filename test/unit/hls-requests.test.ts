import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HlsTimeline, type HlsChunk } from '../../src/packager/hls-timeline.ts';
import { buildMediaPlaylist, hlsNames, hlsTiming } from '../../src/packager/hls-playlist.ts';
import {
  deltaPlaylist,
  namedPieces,
  parseBlockingQuery,
  parsePlaylist,
  satisfies,
  tooFarAhead,
} from '../../src/origin/hls-requests.ts';
import { ObjectStore } from '../../src/origin/store.ts';
import { box } from '../../src/packager/box-writer.ts';

function playlist(segments: number, partial: number, sf = false): string {
  const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
  const chunks = (segment: bigint, count: number): HlsChunk[] =>
    Array.from({ length: count }, (_, part) => ({
      track: 'v',
      segment,
      part,
      byteLength: 100,
      duration: 9000,
      timescale: 90000,
      decodeTime: segment * 90000n + BigInt(part * 9000),
      independent: part === 0,
      segmentComplete: part === 9,
    }));
  for (let s = 0; s < segments; s++) for (const c of chunks(BigInt(100 + s), 10)) timeline.addChunk(c);
  for (const c of chunks(BigInt(100 + segments), partial)) timeline.addChunk(c);
  const timing = hlsTiming({
    segdur: 1,
    cdur: 0.1,
    partChunks: 1,
    audioSampleRate: undefined,
    tsb: 30,
    llhls: sf ? 'sf' : 'br',
  });
  return buildMediaPlaylist({
    track: 'v',
    segments: timeline.segments('v'),
    others: [],
    timing,
    names: hlsNames('live'),
    delivery: { llhls: sf ? 'sf' : 'br', blocking: true, hints: true },
    ended: false,
  });
}

describe('the origin reads LL-HLS playlists', () => {
  it('finds the segments, parts and rules of a playlist', () => {
    const state = parsePlaylist(playlist(12, 4))!;
    assert.equal(state.targetDuration, 1);
    assert.equal(state.partTarget, 0.1);
    assert.equal(state.canSkipUntil, 6);
    assert.equal(state.segments.length, 13);
    assert.deepEqual(state.segments.at(-1), { msn: 112n, complete: false, parts: 4, duration: 0 });
    assert.deepEqual(state.segments.at(-2), { msn: 111n, complete: true, parts: 10, duration: 1 });
    assert.equal(
      parsePlaylist('#EXTM3U\n#EXT-X-STREAM-INF:BANDWIDTH=1\nx.m3u8\n'),
      undefined,
      'a multivariant playlist is no media playlist',
    );
  });
  it('decides blocking requests as RFC 8216bis §6.2.5.2 says', () => {
    const state = parsePlaylist(playlist(12, 4))!;
    assert.equal(satisfies(state, 112n, 3), true);
    assert.equal(satisfies(state, 112n, 4), false, 'the next part: held');
    assert.equal(satisfies(state, 111n, undefined), true);
    assert.equal(satisfies(state, 112n, undefined), false, 'segment 112 is not complete');
    assert.equal(satisfies(state, 111n, 10), true, 'past the last part of 111 is part 0 of 112, which exists');
    assert.equal(satisfies(state, 50n, 0), true, 'the past is answered at once');
    assert.equal(satisfies(parsePlaylist(playlist(12, 0))!, 111n, 10), false, 'part 0 of 112 does not exist yet');
    assert.equal(tooFarAhead(state, 114n, 0), false);
    assert.equal(tooFarAhead(state, 115n, 0), true, 'more than two segments ahead');
    assert.equal(tooFarAhead(state, 112n, 40), true, 'beyond the advance part limit');
  });
  it('parses the query: _HLS_part needs _HLS_msn', () => {
    assert.deepEqual(parseBlockingQuery(new URLSearchParams('_HLS_msn=5&_HLS_part=2&_HLS_skip=YES')), {
      msn: 5n,
      part: 2,
      skip: 'YES',
    });
    assert.match(
      (parseBlockingQuery(new URLSearchParams('_HLS_part=2')) as { error: string }).error,
      /without _HLS_msn/,
    );
    assert.ok('error' in parseBlockingQuery(new URLSearchParams('_HLS_msn=-1')));
    assert.ok('error' in parseBlockingQuery(new URLSearchParams('_HLS_skip=maybe')));
  });
  it('makes delta updates that skip what is older than CAN-SKIP-UNTIL', () => {
    const full = playlist(12, 4);
    const delta = deltaPlaylist(full, 'YES');
    assert.match(
      delta,
      /#EXT-X-MEDIA-SEQUENCE:100\n#EXT-X-MAP:URI="v\/init.mp4"\n#EXT-X-SKIP:SKIPPED-SEGMENTS=6\n#EXT-X-PROGRAM-DATE-TIME/,
    );
    const state = parsePlaylist(delta)!;
    assert.equal(state.segments.length, 7, 'skipped segments are counted, not listed');
    assert.equal(state.segments[0]!.msn, 106n, 'the first listed segment is numbered past the skipped ones');
    assert.deepEqual(state.segments.at(-1), parsePlaylist(full)!.segments.at(-1));
    assert.equal(delta.match(/#EXTINF/g)?.length, 6);
    assert.equal(deltaPlaylist(playlist(3, 1), 'YES'), playlist(3, 1), 'nothing old enough to skip');
  });
  it('reads any uploaded text without throwing, and never works in proportion to a number in it', () => {
    const full = playlist(12, 4);
    assert.equal(parsePlaylist(full.replace('#EXT-X-MEDIA-SEQUENCE:100', '#EXT-X-MEDIA-SEQUENCE:abc')), undefined);
    assert.equal(parsePlaylist(full.replace('#EXT-X-MEDIA-SEQUENCE:100', '#EXT-X-MEDIA-SEQUENCE:-1')), undefined);
    assert.equal(
      parsePlaylist(full.replace(/#EXT-X-TARGETDURATION:\d+/, '#EXT-X-TARGETDURATION:1e9')),
      undefined,
      'a target duration would set how long requests are held',
    );
    const delta = deltaPlaylist(full, 'YES');
    assert.equal(parsePlaylist(delta.replace('SKIPPED-SEGMENTS=6', 'SKIPPED-SEGMENTS=1e9')), undefined);
    const started = performance.now();
    const huge = parsePlaylist(delta.replace('SKIPPED-SEGMENTS=6', 'SKIPPED-SEGMENTS=999999999'))!;
    assert.equal(huge.segments.length, 7);
    assert.equal(huge.segments[0]!.msn, 100n + 999999999n);
    assert.equal(
      deltaPlaylist(delta.replace('SKIPPED-SEGMENTS=6', 'SKIPPED-SEGMENTS=999999999'), 'YES').length > 0,
      true,
    );
    assert.ok(performance.now() - started < 1000, 'a skip count costs nothing');
    assert.deepEqual(
      namedPieces(
        '#EXTM3U\n#EXT-X-PART:DURATION=0.1,URI="a.m4s",BYTERANGE="x@y"\n#EXT-X-PART:DURATION=0.1,URI="b.m4s",BYTERANGE="10@1e400"\n',
      ),
      [],
    );
  });
  it('lists the playlists a pushed multivariant playlist names, which it waits for', () => {
    const multivariant = [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",DEFAULT=YES,URI="live_audio.m3u8"',
      '#EXT-X-STREAM-INF:BANDWIDTH=6800000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,AUDIO="audio"',
      'live_1080p.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=3400000,CODECS="avc1.64001f,mp4a.40.2",RESOLUTION=1280x720,AUDIO="audio"',
      'live_720p.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=100000',
      'https://elsewhere.example/other.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=100000',
      '/rooted.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=100000',
      '../up.m3u8',
      '#EXT-X-STREAM-INF:BANDWIDTH=100000',
      './live_360p.m3u8?token=x#frag',
      '',
    ].join('\n');
    assert.deepEqual(
      namedPieces(multivariant).map((p) => p.uri),
      ['live_audio.m3u8', 'live_1080p.m3u8', 'live_720p.m3u8', 'live_360p.m3u8'],
    );
    assert.ok(namedPieces(multivariant).every((p) => p.end === undefined));
  });
  it('lists the pieces a pushed playlist names', () => {
    const pieces = namedPieces(playlist(5, 2));
    assert.deepEqual(
      pieces.find((p) => p.uri === 'v/105.m4s'),
      { uri: 'v/105.m4s', end: 200 },
    );
    assert.deepEqual(
      pieces.find((p) => p.uri === 'v/104.m4s'),
      { uri: 'v/104.m4s', end: undefined },
    );
    assert.ok(!pieces.some((p) => p.uri === 'v/100.m4s'), 'only the newest segments');
    assert.deepEqual(
      namedPieces(playlist(1, 2, true)).filter((p) => p.uri.startsWith('v/101')),
      [
        { uri: 'v/101.m4s.1', end: undefined },
        { uri: 'v/101.m4s.2', end: undefined },
      ],
    );
  });
});

describe('growing media segments are released a whole CMAF chunk at a time', () => {
  it('releases up to the end of the last complete mdat, however the bytes are cut', () => {
    const store = new ObjectStore({ timeShiftBufferDepth: 30, holdMs: 1000 });
    const chunk = (n: number) => Buffer.concat([box('moof', new Uint8Array(20)), box('mdat', new Uint8Array(n))]);
    const one = chunk(100);
    const two = chunk(5000);
    const object = store.begin('v/1.m4s');
    const bytes = Buffer.concat([box('styp', new Uint8Array(8)), one, two]);
    const cuts = [3, 20, 30, 60, one.length + 16 + 2, bytes.length - 10, bytes.length];
    const released: number[] = [];
    let at = 0;
    for (const cut of cuts) {
      object.append(bytes.subarray(at, cut));
      at = cut;
      released.push(object.released);
    }
    const firstEnd = 16 + one.length;
    assert.deepEqual(released, [0, 0, 0, 0, firstEnd, firstEnd, bytes.length]);
    const manifest = store.begin('live.m3u8');
    manifest.append(new Uint8Array(10));
    assert.equal(manifest.released, 10, 'only media segments wait for whole chunks');
  });
  it('tells watchers of a path when it begins, grows and completes', () => {
    const store = new ObjectStore({ timeShiftBufferDepth: 30, holdMs: 1000 });
    let calls = 0;
    const stop = store.watch('a.m3u8', () => calls++);
    store.put('a.m3u8', new Uint8Array(3));
    assert.equal(calls, 3);
    stop();
    store.put('a.m3u8', new Uint8Array(3));
    assert.equal(calls, 3);
  });
});
