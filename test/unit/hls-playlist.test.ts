import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { acknowledgedView, HlsTimeline, markGaps, positionOf } from '../../src/packager/hls-timeline.ts';
import {
  buildMediaPlaylist,
  buildMultivariantPlaylist,
  hlsNames,
  hlsTiming,
  type HlsDelivery,
} from '../../src/packager/hls-playlist.ts';
import { HlsPlaylists, type HlsSession } from '../../src/packager/hls-playlists.ts';
import { audioChunks, videoChunks } from '../helpers/hls-chunks.ts';

const timing = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: 48000, tsb: 30, llhls: 'br' });
const names = hlsNames('live');
const appliance: HlsDelivery = { llhls: 'br', blocking: true, hints: true };

describe('LL-HLS timing', () => {
  it('fixes target duration, part target (the longest part: 5 AAC frames) and hold-backs for ultra-ll', () => {
    assert.equal(timing.targetDuration, 1);
    assert.equal(timing.partTarget, 0.10667);
    assert.ok(timing.partHoldBack >= 3 * timing.partTarget);
    assert.equal(timing.holdBack, 3);
    assert.equal(timing.canSkipUntil, 6);
    assert.equal(timing.windowSegments, 30);
    assert.equal(timing.partSegments, 3);
    assert.equal(timing.partsPerSegment, 10);
  });
  it('grows parts with the chunks per part, and never past a segment', () => {
    const two = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 2, audioSampleRate: 48000, tsb: 30, llhls: 'br' });
    assert.equal(two.partTarget, 0.21334);
    assert.equal(two.partsPerSegment, 5);
    assert.equal(
      hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 3, audioSampleRate: 48000, tsb: 30, llhls: 'br' }).partsPerSegment,
      4,
      'a shorter last part counts',
    );
    const ll = hlsTiming({ segdur: 2, cdur: 0.5, partChunks: 1, audioSampleRate: 48000, tsb: 30, llhls: 'br' });
    assert.equal(ll.targetDuration, 2);
    assert.ok(ll.partTarget >= 0.5 && ll.partTarget < 0.6);
    assert.equal(
      hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: 48000, tsb: 4, llhls: 'br' }).canSkipUntil,
      0,
      'a window shorter than 6 target durations offers no skipping',
    );
  });
});

describe('HLS timeline', () => {
  it('groups chunks into parts with byte ranges, independence and durations', () => {
    const timeline = new HlsTimeline({ partChunks: 3, keepSegments: 40 });
    const completed = videoChunks('v', 100n).map((c) => timeline.addChunk(c));
    assert.deepEqual(
      completed.map((p) => p?.index),
      [undefined, undefined, 0, undefined, undefined, 1, undefined, undefined, 2, 3],
    );
    const [segment] = timeline.segments('v');
    assert.equal(segment!.complete, true);
    assert.equal(segment!.start, 100);
    assert.deepEqual(
      segment!.parts.map((p) => [p.offset, p.length, p.independent]),
      [
        [0, 3003, true],
        [3003, 3012, false],
        [6015, 3021, false],
        [9036, 1009, false],
      ],
    );
    assert.ok(Math.abs(segment!.duration - 1) < 1e-9);
    assert.deepEqual(positionOf(timeline.segments('v')), { lastMsn: 100n, lastPart: 3 });
  });
  it('forgets old segments and drops a segment left incomplete', () => {
    const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 2 });
    for (const s of [1n, 2n, 3n]) for (const c of videoChunks('v', s)) timeline.addChunk(c);
    assert.deepEqual(
      timeline.segments('v').map((s) => s.msn),
      [2n, 3n],
    );
    for (const c of videoChunks('v', 4n).slice(0, 4)) timeline.addChunk(c);
    for (const c of videoChunks('v', 5n).slice(0, 2)) timeline.addChunk(c);
    assert.deepEqual(
      timeline.segments('v').map((s) => s.msn),
      [5n],
      'the incomplete segment 4 is gone, and 3 left the window',
    );
  });
  it('acknowledgedView lists the newest acknowledged run, then acknowledged leading part files', () => {
    const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
    for (const s of [1n, 2n, 3n, 4n, 5n]) for (const c of videoChunks('v', s)) timeline.addChunk(c);
    for (const c of videoChunks('v', 6n).slice(0, 5)) timeline.addChunk(c);
    const view = acknowledgedView(timeline.segments('v'), new Set([1n, 3n, 4n]), new Map([[5n, 3]]), 30);
    assert.deepEqual(
      view.map((s) => [s.msn, s.complete, s.parts.length]),
      [
        [3n, true, 10],
        [4n, true, 10],
        [5n, false, 3],
      ],
    );
    assert.deepEqual(acknowledgedView(timeline.segments('v'), new Set(), new Map(), 30), []);
  });
  it('media dropped for good is an EXT-X-GAP segment without parts, in order, and nothing else changes', () => {
    const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
    for (const s of [1n, 2n, 3n, 4n]) for (const c of videoChunks('v', s)) timeline.addChunk(c);
    for (const c of videoChunks('v', 5n).slice(0, 4)) timeline.addChunk(c);
    const segments = timeline.segments('v');
    assert.equal(markGaps(segments, new Set()), segments, 'no gap: the same list');
    const marked = markGaps(segments, new Set([3n, 5n]));
    const text = buildMediaPlaylist({
      track: 'v',
      segments: marked,
      others: [],
      timing,
      names,
      delivery: appliance,
      ended: false,
    });
    const lines = text.split('\n');
    const gapAt = lines.indexOf('#EXT-X-GAP');
    assert.ok(gapAt > 0, text);
    assert.deepEqual(lines.slice(gapAt, gapAt + 3), ['#EXT-X-GAP', '#EXTINF:1.00000,', 'v/3.m4s']);
    assert.equal(
      lines.filter((l) => l === '#EXT-X-GAP').length,
      1,
      'the dropped segment still growing is not listed at all',
    );
    assert.doesNotMatch(text, /URI="v\/3\.m4s",BYTERANGE/, 'no parts of a gap');
    assert.doesNotMatch(text, /URI="v\/5\.m4s",BYTERANGE/);
    assert.match(text, /#EXTINF:1\.00000,\nv\/4\.m4s/);
    // A generic origin lists the gap like an acknowledged segment: the window does not restart after it.
    const generic = acknowledgedView(marked, new Set([1n, 2n, 4n, 3n]), new Map(), 30);
    assert.deepEqual(
      generic.map((s) => [s.msn, Boolean(s.gap)]),
      [
        [1n, false],
        [2n, false],
        [3n, true],
        [4n, false],
      ],
    );
  });
});

function playlistFor(segments: bigint[], partialChunks: number, delivery: HlsDelivery, ended = false) {
  const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
  for (const s of segments) {
    for (const c of videoChunks('720p', s)) timeline.addChunk(c);
    for (const c of audioChunks(s)) timeline.addChunk(c);
  }
  const next = segments.at(-1)! + 1n;
  for (const c of videoChunks('720p', next).slice(0, partialChunks)) timeline.addChunk(c);
  for (const c of audioChunks(next).slice(0, partialChunks)) timeline.addChunk(c);
  return buildMediaPlaylist({
    track: '720p',
    segments: timeline.segments('720p'),
    others: [{ track: 'audio', position: positionOf(timeline.segments('audio'))! }],
    timing,
    names,
    delivery,
    ended,
  });
}

describe('media playlists', () => {
  it('names parts as byte ranges, with server control, map, PDT, preload hint and rendition reports', () => {
    const text = playlistFor([1000n, 1001n, 1002n, 1003n], 4, appliance);
    const lines = text.trim().split('\n');
    assert.deepEqual(lines.slice(0, 7), [
      '#EXTM3U',
      '#EXT-X-VERSION:9',
      '#EXT-X-TARGETDURATION:1',
      '#EXT-X-SERVER-CONTROL:CAN-BLOCK-RELOAD=YES,CAN-SKIP-UNTIL=6.0,PART-HOLD-BACK=0.321,HOLD-BACK=3.0',
      '#EXT-X-PART-INF:PART-TARGET=0.10667',
      '#EXT-X-MEDIA-SEQUENCE:1000',
      '#EXT-X-MAP:URI="720p/init.mp4"',
    ]);
    assert.ok(lines.includes('#EXT-X-PROGRAM-DATE-TIME:1970-01-01T00:16:40.000Z'));
    // Parts only for the newest 3 segments plus the one in progress.
    assert.equal(lines.filter((l) => l.startsWith('#EXT-X-PART:')).length, 3 * 10 + 4);
    assert.ok(lines.includes('#EXT-X-PART:DURATION=0.10000,URI="720p/1004.m4s",BYTERANGE="1000@0",INDEPENDENT=YES'));
    assert.ok(lines.includes('#EXT-X-PART:DURATION=0.10000,URI="720p/1004.m4s",BYTERANGE="1001@1000"'));
    assert.equal(lines.filter((l) => l.startsWith('#EXTINF:')).length, 4);
    assert.ok(lines.includes('#EXT-X-PRELOAD-HINT:TYPE=PART,URI="720p/1004.m4s",BYTERANGE-START=4006'));
    assert.equal(lines.at(-1), '#EXT-X-RENDITION-REPORT:URI="live_audio.m3u8",LAST-MSN=1004,LAST-PART=3');
    for (const line of lines.filter((l) => l.startsWith('#EXT-X-PART:'))) {
      const duration = Number(/DURATION=([\d.]+)/.exec(line)![1]);
      assert.ok(duration <= timing.partTarget, line);
      assert.ok(
        duration >= 0.85 * timing.partTarget || line.includes('INDEPENDENT=YES'),
        `${line}: ≥ 85 % of PART-TARGET`,
      );
    }
  });
  it('hints the next segment after a complete one, and part files with sf (1-based names)', () => {
    assert.match(playlistFor([5n], 0, appliance), /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="720p\/6.m4s"\n/);
    const sf = playlistFor([5n], 2, { llhls: 'sf', blocking: true, hints: true });
    assert.match(
      sf,
      /#EXT-X-PART:DURATION=0.10000,URI="720p\/6.m4s.1",INDEPENDENT=YES\n#EXT-X-PART:DURATION=0.10000,URI="720p\/6.m4s.2"\n/,
    );
    assert.match(sf, /#EXT-X-PRELOAD-HINT:TYPE=PART,URI="720p\/6.m4s.3"\n/);
  });
  it('promises neither blocking nor hints to an origin that cannot keep them, and ends with ENDLIST', () => {
    const generic = playlistFor([5n, 6n], 2, { llhls: 'br', blocking: false, hints: false });
    assert.match(generic, /#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=0.321,HOLD-BACK=3.0\n/);
    assert.doesNotMatch(generic, /PRELOAD-HINT|CAN-BLOCK|CAN-SKIP/);
    const ended = playlistFor([5n, 6n], 0, appliance, true);
    assert.match(ended, /#EXT-X-ENDLIST\n$/);
    assert.doesNotMatch(ended, /PRELOAD-HINT|RENDITION-REPORT/);
  });
  it('classic HLS lists complete segments only', () => {
    const text = playlistFor([5n, 6n], 3, { llhls: 'off', blocking: false, hints: false });
    assert.doesNotMatch(text, /EXT-X-PART|PRELOAD|RENDITION-REPORT|PART-INF/);
    assert.match(text, /#EXT-X-VERSION:7\n/);
    assert.equal(text.match(/#EXTINF/g)?.length, 2);
  });
  it('keeps the header identical across tracks and over time', () => {
    const header = (text: string) => text.split('\n').slice(0, 5).join('\n');
    assert.equal(header(playlistFor([5n], 1, appliance)), header(playlistFor([5n, 6n, 7n], 9, appliance)));
  });
  it('writes at every part what a fresh render writes, as the window slides and a segment turns into a gap', () => {
    // A complete segment's lines are rendered once and reused: a fresh names/delivery pair shares no cache.
    const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
    const build = (gaps: ReadonlySet<bigint>, fresh: boolean) =>
      buildMediaPlaylist({
        track: '720p',
        segments: markGaps(timeline.segments('720p'), gaps),
        others: [],
        timing,
        names: fresh ? { ...names } : names,
        delivery: fresh ? { ...appliance } : appliance,
        ended: false,
      });
    let compared = 0;
    for (let segment = 100n; segment < 140n; segment++)
      for (const chunk of videoChunks('720p', segment)) {
        timeline.addChunk(chunk);
        const gaps = segment >= 125n ? new Set([120n]) : new Set<bigint>();
        assert.equal(build(gaps, false), build(gaps, true), `segment ${segment} part ${chunk.part}`);
        compared++;
      }
    assert.equal(compared, 400);
    assert.match(build(new Set([120n]), false), /#EXT-X-GAP\n#EXTINF:1.00000,\n720p\/120.m4s\n/);
    assert.match(build(new Set(), false), /#EXT-X-MEDIA-SEQUENCE:1[01]\d\n/);
  });
});

describe('periods in media playlists', () => {
  const playlistFor = (from: bigint, to: bigint, periods: bigint[]) => {
    const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
    for (let s = from; s <= to; s++) for (const c of videoChunks('v', s)) timeline.addChunk(c);
    return buildMediaPlaylist({
      track: 'v',
      segments: timeline.segments('v'),
      others: [],
      timing,
      names,
      delivery: appliance,
      ended: false,
      periods,
    });
  };
  it('a new period is a discontinuity with the init of its own name', () => {
    const text = playlistFor(100n, 110n, [0n, 105n]);
    assert.match(text, /#EXT-X-MAP:URI="v\/init.mp4"\n/);
    assert.match(text, /v\/104.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="v\/init-105.mp4"\n#EXT-X-PROGRAM-DATE-TIME/);
    assert.doesNotMatch(text, /DISCONTINUITY-SEQUENCE/);
    assert.equal(text.match(/#EXT-X-DISCONTINUITY\n/g)?.length, 1);
  });
  it('counts discontinuities that left the window, and maps the first segment to its period', () => {
    const text = playlistFor(106n, 110n, [0n, 105n]);
    assert.match(
      text,
      /#EXT-X-MEDIA-SEQUENCE:106\n#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI="v\/init-105.mp4"\n/,
    );
    assert.doesNotMatch(text, /#EXT-X-DISCONTINUITY\n/);
    const atStart = playlistFor(105n, 110n, [0n, 105n]);
    assert.match(
      atStart,
      /#EXT-X-DISCONTINUITY-SEQUENCE:1\n#EXT-X-MAP:URI="v\/init-105.mp4"/,
      'a window starting on the new period counts it',
    );
  });
});

describe('multivariant playlist', () => {
  it('lists each video rendition with the audio group, codecs, bandwidths, resolution and frame rate', () => {
    const text = buildMultivariantPlaylist({
      video: [
        {
          id: '1080p',
          codecs: 'avc1.640028',
          bitrate: 6_000_000,
          averageBandwidth: 6_000_000,
          peakBandwidth: 9_000_000,
          width: 1920,
          height: 1080,
          frameRate: 30,
        },
      ],
      audio: {
        id: 'audio',
        codecs: 'mp4a.40.2',
        bitrate: 128_000,
        averageBandwidth: 128_000,
        peakBandwidth: 140_000,
        channels: 2,
      },
      names,
      delivery: appliance,
    });
    assert.equal(
      text,
      [
        '#EXTM3U',
        '#EXT-X-VERSION:9',
        '#EXT-X-INDEPENDENT-SEGMENTS',
        '#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID="audio",NAME="audio",LANGUAGE="und",DEFAULT=YES,AUTOSELECT=YES,CHANNELS="2",URI="live_audio.m3u8"',
        '#EXT-X-STREAM-INF:BANDWIDTH=9140000,AVERAGE-BANDWIDTH=6128000,CODECS="avc1.640028,mp4a.40.2",RESOLUTION=1920x1080,FRAME-RATE=30.000,AUDIO="audio"',
        'live_1080p.m3u8',
        '',
      ].join('\n'),
    );
  });
});

describe("an output's playlists", () => {
  const rendition = { codecs: 'x', bitrate: 1e6, averageBandwidth: 1e6, peakBandwidth: 2e6 };
  const video = (id: string, width: number, height: number) => ({ ...rendition, id, width, height, frameRate: 30 });
  /** Playlists of an output offering these video renditions and audio. */
  const playlistsOf = (...videos: ReturnType<typeof video>[]) => {
    const session: HlsSession = {
      llhls: 'br',
      partChunks: 1,
      timing,
      renditions: () => ({ video: videos, audio: { ...rendition, id: 'audio', codecs: 'mp4a.40.2', channels: 2 } }),
      ended: () => false,
    };
    return new HlsPlaylists(session, names, { blocking: true, hints: true });
  };
  const withBytes = (c: ReturnType<typeof videoChunks>[number]) => ({ ...c, parts: [new Uint8Array(c.byteLength)] });

  it('write the multivariant playlist only once every playlist it names exists, and say so once', () => {
    const playlists = playlistsOf(video('720p', 1280, 720));
    const said: (true | undefined)[] = [];
    // Video a whole segment ahead of audio, as an encoder starting on a busy machine makes them.
    for (const c of [...videoChunks('720p', 10n), ...videoChunks('720p', 11n).slice(0, 2)])
      said.push(playlists.onChunk(withBytes(c)).multivariantReady);
    for (const c of audioChunks(10n).slice(0, 9)) said.push(playlists.onChunk(withBytes(c)).multivariantReady);
    assert.equal(playlists.multivariant(), undefined, 'no audio playlist yet: no multivariant playlist');
    assert.ok(!said.includes(true));
    const last = playlists.onChunk(withBytes(audioChunks(10n)[9]!));
    assert.equal(last.multivariantReady, true, 'the chunk that made the audio playlist says so');
    assert.match(playlists.multivariant() ?? '', /live_720p\.m3u8/);
    assert.equal(playlists.onChunk(withBytes(audioChunks(11n)[0]!)).multivariantReady, undefined, 'once');
  });

  it('start every playlist at the first segment all tracks have, and wait only for the renditions offered', () => {
    const playlists = playlistsOf(video('1080p', 1920, 1080), video('720p', 1280, 720));
    // 1080p is shed by this output (no chunks reach its playlists); audio starts a segment late.
    playlists.hidden.add('1080p');
    for (const c of [...videoChunks('720p', 10n), ...videoChunks('720p', 11n), ...videoChunks('720p', 12n).slice(0, 1)])
      playlists.onChunk(withBytes(c));
    for (const c of [...audioChunks(11n), ...audioChunks(12n).slice(0, 1)]) playlists.onChunk(withBytes(c));
    const videoPlaylist = playlists.media('720p') ?? '';
    assert.match(videoPlaylist, /#EXT-X-MEDIA-SEQUENCE:11\n/, 'the video playlist starts where audio does');
    assert.doesNotMatch(videoPlaylist, /720p\/10\.m4s/);
    assert.match(playlists.multivariant() ?? '', /live_720p\.m3u8/, 'the shed rendition is not waited for');
    assert.doesNotMatch(playlists.multivariant() ?? '', /live_1080p/);
  });
});
