import { describe, it } from 'node:test';
import { deltaPlaylist } from '../../src/origin/hls-requests.ts';
import {
  buildMediaPlaylist,
  buildMultivariantPlaylist,
  type HlsDelivery,
  hlsNames,
  hlsTiming,
} from '../../src/packager/hls-playlist.ts';
import { HlsTimeline, markGaps, positionOf } from '../../src/packager/hls-timeline.ts';
import { matchesGolden } from '../helpers/golden.ts';
import { audioChunks, videoChunks } from '../helpers/hls-chunks.ts';

// Whole documents, as players read them: every tag and attribute of each kind of LL-HLS playlist
// the appliance makes. Regenerate with UPDATE_GOLDEN=1 and review the diff.

const timing = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: 48000, tsb: 30, llhls: 'br' });
const names = hlsNames('live');
const delivery = {
  br: { llhls: 'br', blocking: true, hints: true },
  sf: { llhls: 'sf', blocking: true, hints: true },
  generic: { llhls: 'br', blocking: false, hints: false },
  off: { llhls: 'off', blocking: false, hints: false },
} satisfies Record<string, HlsDelivery>;

/** 720p's playlist after `segments` complete segments (from 1000) and `partial` chunks of the next. */
function media(
  segments: number,
  partial: number,
  options: { delivery: HlsDelivery; ended?: boolean; periods?: bigint[]; gaps?: bigint[] },
): string {
  const timeline = new HlsTimeline({ partChunks: 1, keepSegments: 40 });
  for (let s = 1000n; s <= 1000n + BigInt(segments); s++) {
    const count = s < 1000n + BigInt(segments) ? 10 : partial;
    for (const c of videoChunks('720p', s).slice(0, count)) timeline.addChunk(c);
    for (const c of audioChunks(s).slice(0, count)) timeline.addChunk(c);
  }
  const own = timeline.segments('720p');
  return buildMediaPlaylist({
    track: '720p',
    segments: options.gaps ? markGaps(own, new Set(options.gaps)) : own,
    others: options.ended ? [] : [{ track: 'audio', position: positionOf(timeline.segments('audio'))! }],
    timing,
    names,
    delivery: options.delivery,
    ended: options.ended ?? false,
    periods: options.periods,
  });
}

describe('LL-HLS playlists, whole (golden)', () => {
  const cases: [string, () => string][] = [
    ['media-br.m3u8', () => media(4, 4, { delivery: delivery.br })],
    ['media-sf.m3u8', () => media(4, 4, { delivery: delivery.sf })],
    ['media-generic.m3u8', () => media(4, 4, { delivery: delivery.generic })],
    ['media-off.m3u8', () => media(4, 4, { delivery: delivery.off })],
    ['media-ended.m3u8', () => media(4, 0, { delivery: delivery.br, ended: true })],
    ['media-new-period.m3u8', () => media(6, 2, { delivery: delivery.br, periods: [0n, 1003n] })],
    ['media-gap.m3u8', () => media(5, 3, { delivery: delivery.br, gaps: [1002n] })],
    ['media-skip.m3u8', () => deltaPlaylist(media(12, 3, { delivery: delivery.br }), 'YES')],
  ];
  for (const [name, build] of cases) it(name, (t) => matchesGolden(t, name, build()));

  it('multivariant.m3u8', (t) => {
    const video = (id: string, width: number, height: number, bitrate: number, codecs: string) => ({
      id,
      codecs,
      bitrate,
      averageBandwidth: bitrate,
      peakBandwidth: Math.round(bitrate * 1.5),
      width,
      height,
      frameRate: 30,
    });
    const text = buildMultivariantPlaylist({
      video: [video('1080p', 1920, 1080, 6_000_000, 'avc1.640028'), video('720p', 1280, 720, 3_000_000, 'avc1.64001f')],
      audio: {
        id: 'audio',
        codecs: 'mp4a.40.2',
        bitrate: 128_000,
        averageBandwidth: 128_000,
        peakBandwidth: 140_000,
        channels: 2,
      },
      names,
      delivery: delivery.br,
    });
    return matchesGolden(t, 'multivariant.m3u8', text);
  });
});
