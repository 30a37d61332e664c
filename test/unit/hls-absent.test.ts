import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { hlsNames, hlsTiming } from '../../src/packager/hls-playlist.ts';
import { HlsPlaylists, type HlsSession } from '../../src/packager/hls-playlists.ts';
import { acknowledgedView } from '../../src/packager/hls-timeline.ts';
import { audioChunks, videoChunks } from '../helpers/hls-chunks.ts';

// A rendition not encoded for a while (the real-time controller's top-rendition step): its
// playlist goes on with gaps, numbered as the others', and takes it back at a new period.

const timing = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: 48000, tsb: 30, llhls: 'br' });
const names = hlsNames('live');
const rendition = { codecs: 'x', bitrate: 1e6, averageBandwidth: 1e6, peakBandwidth: 2e6, frameRate: 30 };
const top = { ...rendition, id: '1080p', width: 1920, height: 1080 };
const second = { ...rendition, id: '720p', width: 1280, height: 720 };
/** 1080p is not encoded in the period from segment 14 to 16. */
const absent = (track: string, msn: bigint) => track === '1080p' && msn >= 14n && msn < 17n;

function outputPlaylists() {
  let periods = [0n];
  const session: HlsSession = {
    llhls: 'br',
    partChunks: 1,
    timing,
    renditions: () => ({
      video: periods.at(-1) === 14n ? [second] : [top, second],
      audio: { ...rendition, id: 'audio', codecs: 'mp4a.40.2', channels: 2 },
    }),
    ended: () => false,
    periods: () => periods,
    hasTrack: (track, msn) => !absent(track, msn),
  };
  const playlists = new HlsPlaylists(session, names, { blocking: true, hints: true });
  const feed = (segment: bigint, tracks: string[]) => {
    const out = [];
    for (const track of tracks)
      for (const c of track === 'audio' ? audioChunks(segment) : videoChunks(track, segment))
        out.push(playlists.onChunk({ ...c, parts: [new Uint8Array(c.byteLength)] }));
    return out;
  };
  return { playlists, feed, setPeriods: (p: bigint[]) => (periods = p) };
}

describe('a rendition not encoded for a while, in HLS', () => {
  it('lists its segments as gaps, numbered as the others, and takes it back with a new init', () => {
    const { playlists, feed, setPeriods } = outputPlaylists();
    for (let s = 10n; s < 14n; s++) feed(s, ['1080p', '720p', 'audio']);
    setPeriods([0n, 14n]);
    assert.doesNotMatch(playlists.multivariant() ?? '', /live_1080p/, 'new players are not offered it');
    const during = feed(14n, ['720p', 'audio']);
    const extended = during.flatMap((r) => r.absentPlaylists ?? []);
    assert.ok(extended.length >= 1, 'a segment completed by the others extends its playlist');
    assert.equal(extended[0]!.track, '1080p');
    assert.match(
      extended[0]!.text,
      /1080p\/13\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-PROGRAM-DATE-TIME:[^\n]+\n#EXT-X-GAP\n#EXTINF:1\.00000,\n1080p\/14\.m4s\n/,
    );
    assert.doesNotMatch(extended.at(-1)!.text, /PRELOAD-HINT/, 'no part is coming: nothing hinted');
    feed(15n, ['720p', 'audio']);
    feed(16n, ['720p', 'audio']);
    setPeriods([0n, 14n, 17n]);
    assert.match(playlists.multivariant() ?? '', /live_1080p/, 'offered again from the period that has it');
    feed(17n, ['1080p', '720p', 'audio']);
    const text = playlists.media('1080p')!;
    assert.match(text, /1080p\/16\.m4s\n#EXT-X-DISCONTINUITY\n#EXT-X-MAP:URI="1080p\/init-17\.mp4"\n/);
    assert.equal(text.match(/#EXT-X-GAP/g)?.length, 3);
    const numbers = (playlist: string) => [...playlist.matchAll(/^(?:1080p|720p)\/(\d+)\.m4s$/gm)].map((m) => m[1]);
    assert.deepEqual(numbers(text), numbers(playlists.media('720p')!), 'the same segment numbers as 720p');
    assert.equal(
      text.match(/#EXT-X-DISCONTINUITY\n/g)?.length,
      playlists.media('720p')!.match(/#EXT-X-DISCONTINUITY\n/g)?.length,
      'the same discontinuities as every other playlist',
    );
  });

  it('a gap needs nothing at a generic origin: the acknowledged view goes on through it', () => {
    const segment = (msn: bigint, gap = false) => ({
      msn,
      start: Number(msn),
      duration: 1,
      length: gap ? 0 : 1000,
      parts: [],
      complete: true,
      ...(gap ? { gap: true } : {}),
    });
    const view = acknowledgedView([segment(1n), segment(2n, true), segment(3n, true)], new Set([1n]), new Map(), 10);
    assert.deepEqual(
      view.map((s) => s.msn),
      [1n, 2n, 3n],
    );
  });
});
