import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseSource, parseTestSource } from '../../src/capture/source.ts';
import { loadProfile } from '../../src/config/profile.ts';
import { frameSlotExpression, planLadder, scaleTo, videoFilterGraph } from '../../src/ladder/ladder.ts';
import { placeOnGrid, mediaTimeToDate } from '../../src/timeline/epoch-grid.ts';

const { profile } = await loadProfile('ultra-ll');
const r1080 = profile.video.renditions[0]!;
const r720 = profile.video.renditions[1]!;

describe('--source', () => {
  it('test and test:mandelbrot are 1080p test sources', () => {
    assert.deepEqual(parseSource('test'), { kind: 'test', pattern: 'testsrc2', width: 1920, height: 1080 });
    assert.equal(parseTestSource('test:mandelbrot').pattern, 'mandelbrot');
    assert.deepEqual(parseSource('test:sync:drift'), {
      kind: 'test',
      pattern: 'sync',
      width: 1920,
      height: 1080,
      audioDrift: true,
    });
  });
  it('refuses what it cannot capture, saying what it accepts', () => {
    assert.throws(
      () => parseSource('test:smpte'),
      /unknown test source; accepted: test, test:mandelbrot, test:sync, test:sync:drift/,
    );
    assert.throws(() => parseSource('test:mandelbrot:drift'), /unknown test source/);
    assert.throws(
      () => parseSource('device:/dev/video0'),
      /"\/dev\/video0" is not video=NAME\|INDEX or audio=NAME\|INDEX/,
    );
    assert.deepEqual(parseSource('udp://239.0.0.1:1234'), {
      kind: 'feed',
      protocol: 'udp',
      url: 'udp://239.0.0.1:1234',
    });
    assert.throws(
      () => parseSource('srt://host:9000?mode=sender'),
      /mode=sender; accepted: caller, listener, rendezvous/,
    );
    assert.throws(
      () => parseSource('camera'),
      /"camera" is not a source; accepted: test, test:mandelbrot, test:sync, test:sync:drift, device, device:video=.*, file:PATH, udp:\/\/IP:PORT, srt:\/\/HOST:PORT/,
    );
  });
});

const slots = frameSlotExpression(30);

describe('ladder', () => {
  it('drops renditions larger than the source, never upscales', () => {
    const plan = planLadder(profile.video.renditions, { width: 1280, height: 720 });
    assert.deepEqual(
      plan.renditions.map((r) => r.id),
      ['720p'],
    );
    assert.deepEqual(
      plan.dropped.map((r) => r.id),
      ['1080p'],
    );
  });
  it('one graph: snap, select the first frame on a boundary, overlay, split, scale', () => {
    assert.equal(
      videoFilterGraph({
        profile,
        renditions: [r1080, r720],
        source: { width: 1920, height: 1080 },
        overlay: 'drawtext=x',
      }),
      `[0:v]setpts='${slots}',settb=1/30,format=yuv420p,select='if(selected_n,gt(pts,prev_selected_pts),eq(mod(round(t*30),30),0))',drawtext=x,split=2[v0][s1];[s1]scale=1280:720[v1]`,
    );
  });
  it('a picture of another shape is scaled to cover the rendition and centre-cropped, never stretched', () => {
    assert.equal(scaleTo({ width: 1280, height: 720 }, { width: 1920, height: 1080 }), 'scale=1280:720');
    assert.equal(scaleTo({ width: 1920, height: 1080 }, { width: 1920, height: 1080 }), undefined);
    assert.equal(
      scaleTo({ width: 1280, height: 720 }, { width: 1280, height: 960 }),
      'scale=1280:720:force_original_aspect_ratio=increase,crop=1280:720,setsar=1',
    );
    assert.equal(
      scaleTo({ width: 1920, height: 1080 }, { width: 1920, height: 1440 }),
      'scale=1920:1080:force_original_aspect_ratio=increase,crop=1920:1080,setsar=1',
    );
  });
  it('a single rendition needs no split; a smaller one is scaled', () => {
    assert.equal(
      videoFilterGraph({ profile, renditions: [r720], source: { width: 1920, height: 1080 } }),
      `[0:v]setpts='${slots}',settb=1/30,format=yuv420p,select='if(selected_n,gt(pts,prev_selected_pts),eq(mod(round(t*30),30),0))',scale=1280:720[v0]`,
    );
    assert.equal(
      videoFilterGraph({ profile, renditions: [r1080], source: { width: 1920, height: 1080 } }),
      `[0:v]setpts='${slots}',settb=1/30,format=yuv420p,select='if(selected_n,gt(pts,prev_selected_pts),eq(mod(round(t*30),30),0))'[v0]`,
    );
  });
});

describe('epoch grid', () => {
  it('places decode times on segments exactly, in BigInt', () => {
    const t = 1_795_219_794n * 90_000n;
    assert.deepEqual(placeOnGrid(t, 90_000, 1), { segment: 1_795_219_794n, aligned: true });
    assert.deepEqual(placeOnGrid(t + 3000n, 90_000, 1), { segment: 1_795_219_794n, aligned: false });
    assert.deepEqual(placeOnGrid(t, 90_000, 2), { segment: 897_609_897n, aligned: true });
    assert.equal(mediaTimeToDate(t + 45_000n, 90_000).toISOString(), '2026-11-21T00:09:54.500Z');
  });
});
