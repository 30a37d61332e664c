import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { hlsTiming } from '../../src/packager/hls-playlist.ts';
import { type HlsSession, outputFormats } from '../../src/packager/hls-playlists.ts';
import type { PackagerEvent } from '../../src/packager/chunker.ts';
import { originCapabilities } from '../../src/push/origin-capabilities.ts';
import { info, RENDITION_V, runCleanups, segmentEvents, setup } from '../helpers/push-setup.ts';

after(runCleanups);

const session: HlsSession = {
  llhls: 'br',
  partChunks: 1,
  timing: hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: undefined, tsb: 30, llhls: 'br' }),
  renditions: () => ({
    video: [RENDITION_V],
    audio: { id: 'a', codecs: 'mp4a.40.2', bitrate: 128e3, averageBandwidth: 128e3, peakBandwidth: 128e3, channels: 2 },
  }),
  ended: () => false,
};

describe('the multivariant playlist pushed to a generic origin', { timeout: 30_000 }, () => {
  it('goes out once every media playlist lists a whole segment from the common start, even when audio began a segment earlier', async () => {
    const { origin, output } = await setup({
      origin: originCapabilities('generic'),
      formats: outputFormats('live.mpd', true),
      hls: session,
    });
    try {
      const first = BigInt(Math.floor(Date.now() / 1000));
      for (const [track, handler] of [
        ['v', 'vide'],
        ['a', 'soun'],
      ] as const)
        output.handle({
          type: 'init',
          track,
          info: { ...info, handler },
          bytes: new TextEncoder().encode(`init-${track}`),
          path: `${track}/init.mp4`,
        });
      output.publishManifest(() => '<MPD/>');
      // An encoder starting on a busy machine: audio's first segment is a whole segment before the
      // video's. The audio playlist naming it reaches the origin before any video segment exists;
      // the playlists then start at the video's first segment, which audio completes only after.
      const paced = async (events: PackagerEvent[]) => {
        for (const event of events) {
          output.handle(event);
          if (event.type === 'chunk') await sleep(40);
        }
      };
      const stored = async (path: string) => {
        for (let i = 0; i < 40 && origin.store.get(path)?.state !== 'complete'; i++) await sleep(50);
        return origin.store.get(path);
      };
      await paced(segmentEvents('a', first, 1));
      assert.ok(await stored('live/live_a.m3u8'), 'the audio playlist, naming its first segment');
      for (let s = first + 1n; s < first + 4n; s++) {
        await paced(segmentEvents('v', s, 1));
        await paced(segmentEvents('a', s, 1));
      }
      const multivariant = await stored('live/live.m3u8');
      assert.equal(multivariant?.state, 'complete', 'the multivariant playlist is at the origin');
      const text = Buffer.concat(multivariant.chunks).toString();
      assert.match(text, /live_v\.m3u8/);
      assert.match(text, /URI="live_a\.m3u8"/);
      const firstUpload = (path: string) => origin.uploads.findIndex((u) => u.path === path);
      for (const track of ['v', 'a'])
        assert.ok(
          firstUpload(`live/live_${track}.m3u8`) < firstUpload('live/live.m3u8'),
          `after the playlist of ${track}`,
        );
    } finally {
      await output.flush(500);
    }
  });
});
