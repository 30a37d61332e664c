import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { feedSourcePolicy, parseFeedSpec } from '../../src/capture/feed-source.ts';
import { parseInputInfo } from '../../src/capture/media-info.ts';
import { parseSource } from '../../src/capture/source.ts';
import { loadProfile } from '../../src/config/profile.ts';
import { buildEncoderPlan } from '../../src/encode/ffmpeg-args.ts';
import { planLadder } from '../../src/ladder/ladder.ts';
import { checkKeyframeInterval, passthroughRendition } from '../../src/ladder/passthrough.ts';

const loaded = (await loadProfile('ultra-ll')).profile;
const profile = { ...loaded, video: { ...loaded.video, passthrough: true } };

/** A feed as ffmpeg's dump describes it: `video` is the stream's description after "Video: ". */
function feed(video: string) {
  const info = parseInputInfo(
    `Input #0, mpegts, from 'udp://x:1':\n  Duration: N/A, start: 1.4, bitrate: N/A\n  Stream #0:0[0x100]: Video: ${video}\n  Stream #0:1[0x101](und): Audio: aac (LC) ([15][0][0][0] / 0x000F), 48000 Hz, stereo, fltp, 130 kb/s\n`,
  );
  const { source } = feedSourcePolicy(parseFeedSpec('udp://x:1'), info, profile);
  return { info, source, renditions: planLadder(profile.video.renditions, source).renditions };
}

describe("passthrough: the feed's H.264 copied, not encoded", () => {
  it('a 720p30 H.264 feed: the ladder above it dropped, the one rendition left is the copy; the plan copies it onto its own pipe', () => {
    const { info, source, renditions } = feed(
      'h264 (Constrained Baseline) ([27][0][0][0] / 0x001B), yuv420p(progressive), 1280x720, 30 fps, 30 tbr, 90k tbn',
    );
    const copied = passthroughRendition(profile, source, info, renditions);
    assert.equal(copied.rendition.id, '720p');
    assert.match(copied.reason, /copied from the feed as 720p \(H\.264 1280x720 at 30 fps, not re-encoded/);
    const plan = buildEncoderPlan(profile, source, [copied.rendition], { anchorSeconds: 1_764_000_000 });
    const args = plan.args.join(' ');
    assert.match(args, /-map 0:v:0 -c:v copy -output_ts_offset 1764000000\.000000 -f mp4 .* pipe:3/);
    assert.doesNotMatch(args, /-filter_complex|libx264/, 'no video graph, no encoder');
    assert.match(args, /-af asetpts=PTS\+1764000000\.000000\/TB,aresample/, 'audio is encoded, on the same base');
    assert.deepEqual(
      plan.tracks.map((t) => t.id),
      ['720p', 'audio'],
    );
  });

  it('refuses, naming the field and what would do: a mixed ladder, two copies of one picture, and a feed that cannot be copied', () => {
    const full = feed('h264 (High), yuv420p(progressive), 1920x1080, 30 fps, 30 tbr, 90k tbn');
    assert.throws(
      () => passthroughRendition(profile, full.source, full.info, full.renditions),
      /^ConfigError: video\.passthrough: a copy is the feed's 1920x1080 as is, and every rendition must be copied .*720p \(1280x720\) would be encoded: remove it from video\.renditions; or set video\.passthrough to false/,
    );
    const twice = [
      profile.video.renditions[1]!,
      { ...profile.video.renditions[1]!, id: '720p-low', bitrate: 1_500_000 },
    ];
    const hd = feed('h264 (High), yuv420p(progressive), 1280x720, 30 fps, 30 tbr, 90k tbn');
    assert.throws(
      () => passthroughRendition(profile, hd.source, hd.info, twice),
      /renditions 720p, 720p-low would be the same copy of the feed's 1280x720: keep one/,
    );
    const cases: [string, RegExp][] = [
      [
        'hevc (Main), yuv420p(tv), 1280x720, 30 fps, 30 tbr, 90k tbn',
        /the feed's video is hevc; only H\.264 is copied/,
      ],
      [
        'h264 (High), yuv420p(tv, top first), 1280x720, 25 fps, 25 tbr, 90k tbn',
        /the feed is interlaced \(top first\); a copy cannot be deinterlaced/,
      ],
      [
        'h264 (High), yuv420p(progressive), 1280x720, 29.97 fps, 29.97 tbr, 90k tbn',
        /the feed runs at 29\.97 fps; a copy keeps its rate/,
      ],
      ['h264 (High), yuv420p(progressive), 1280x720, 60 fps, 60 tbr, 90k tbn', /the feed runs at 60 fps/],
    ];
    for (const [video, message] of cases) {
      const f = feed(video);
      assert.throws(() => passthroughRendition(profile, f.source, f.info, f.renditions), message, video);
    }
    const fifty = feed('h264 (High), yuv420p(progressive), 1280x720, 50 fps, 50 tbr, 90k tbn');
    assert.equal(
      passthroughRendition(profile, fifty.source, fifty.info, fifty.renditions).rendition.id,
      '720p',
      '50 fps is kept as it is',
    );
    const test = parseSource('test');
    assert.throws(
      () => passthroughRendition(profile, test as never, undefined, profile.video.renditions),
      /only a UDP or SRT feed is copied \(its H\.264 as sent\); the source is test, which is encoded/,
    );
  });

  it("every segment must start with one of the feed's keyframes: their interval divides the segment", () => {
    assert.doesNotThrow(() => checkKeyframeInterval(1, 1));
    assert.doesNotThrow(() => checkKeyframeInterval(0.5, 1));
    assert.doesNotThrow(() => checkKeyframeInterval(1, 2));
    assert.throws(
      () => checkKeyframeInterval(2, 1),
      /the feed's keyframes come every 2\.000 s; a copy needs one at the start of every 1 s segment: set the sender's keyframe interval \(GOP\) to 1 s/,
    );
    assert.throws(() => checkKeyframeInterval(1.001, 1), /every 1\.001 s/);
  });
});
