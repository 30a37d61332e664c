import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { outputFormats } from '../../src/packager/hls-playlists.ts';
import { originCapabilities } from '../../src/push/origin-capabilities.ts';
import type { OriginProfile } from '../../src/push/push-types.ts';
import { info, runCleanups, segmentEvents, setup } from '../helpers/push-setup.ts';
import { startTestOrigin } from '../helpers/push-origin.ts';

after(runCleanups);

// HttpPushOutput sending CMAF ingest to a real HTTP server on 127.0.0.1, fed synthetic chunks:
// the per-receiver rules that a run of the encoder seldom meets (a changed header, an outage).

async function cmafSetup(profile: OriginProfile, withMpd = false) {
  const origin = await startTestOrigin();
  return setup(
    {
      url: new URL(`${origin.base}/live/`),
      origin: originCapabilities(profile),
      cmaf: { chunksPerSegment: 10 },
      method: 'POST',
      deleteExpired: false,
      formats: { ...outputFormats('live.mpd', false), dash: withMpd, hls: false },
    },
    origin,
  );
}

const init = (bytes: string) => ({
  type: 'init' as const,
  track: 'v',
  info,
  bytes: new TextEncoder().encode(bytes),
  path: 'v/init.mp4',
});

describe('CMAF ingest output (synthetic chunks, real HTTP)', { timeout: 60_000 }, () => {
  it('a changed header goes on as another track, and media made before it still follows its own header', async () => {
    const { origin, output } = await cmafSetup('unified');
    const first = BigInt(Math.floor(Date.now() / 1000));
    // The first stream's third request (its second segment) fails: the connection it went on
    // is gone, so that segment needs its own header again on the next one.
    let toFirstStream = 0;
    origin.fault = (req) => {
      if (req.url !== '/live/Streams(v.cmfv)' || ++toFirstStream !== 3) return false;
      req.socket.destroy();
      return true;
    };
    output.handle(init('header-a'));
    for (const event of segmentEvents('v', first, 2)) output.handle(event);
    // The encoder restarted with other settings: another header, before the next segment's media.
    output.handle({ ...init('header-b'), path: `v/init-${first + 2n}.mp4` });
    for (const event of segmentEvents('v', first + 2n, 1)) output.handle(event);
    await output.flush();
    const requests = origin.uploads.map((u) => [u.path, u.bytes]);
    const renamed = origin.uploads.find((u) => /^live\/Streams\(v-[0-9a-f]{8}\.cmfv\)$/.test(u.path))?.path;
    assert.ok(renamed, `a stream of its own: ${JSON.stringify(requests)}`);
    // Each stream: its header, then its segments; after the failure, the first stream's header
    // again before its segment (the new stream's header may come first: it is the track's now).
    const of = (stream: string) =>
      origin.uploads.filter((u) => u.path === stream && u.status! < 300).map((u) => u.bytes);
    assert.deepEqual(of('live/Streams(v.cmfv)'), [8, 10_000, 8, 10_000]);
    assert.deepEqual(of(renamed), [8, 8, 10_000]);
  });

  it('mediapackage-v2: after an outage, late segments are dropped (counted), never sent after newer ones', async () => {
    const { origin, output, events } = await cmafSetup('mediapackage-v2');
    const first = BigInt(Math.floor(Date.now() / 1000));
    let refusing = true;
    origin.fault = (req, res) => {
      if (!refusing || !req.url?.includes('/Segment(')) return false;
      req.resume();
      res.writeHead(503).end();
      return true;
    };
    output.handle(init('header'));
    // The origin refuses the first segment (503, tried again and again) while five more are made.
    for (const event of segmentEvents('v', first, 1)) output.handle(event);
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'retry'); i++) await sleep(20);
    for (const event of segmentEvents('v', first + 1n, 5)) output.handle(event);
    // The origin is back once the late ones had time to be moved aside.
    await sleep(300);
    refusing = false;
    await output.flush();
    const delivered = origin.uploads
      .filter((u) => u.status! < 300 && u.path.includes('/Segment('))
      .map((u) => Number(/Segment\((\d+)\)/.exec(u.path)![1]));
    assert.deepEqual(
      delivered,
      [...delivered].sort((a, b) => a - b),
      'only ever increasing',
    );
    // Segment(<n>) is the segment's mfhd: its first chunk's number, n·10 mod 2³².
    assert.equal(delivered.at(-1), Number(((first + 5n) * 10n) % 2n ** 32n), 'the newest segment arrived');
    const expired = events.filter((e) => e.type === 'dropped' && e.reason === 'expired');
    assert.ok(
      expired.some((e) => e.type === 'dropped' && e.segment === first),
      'the segment refused during the outage is dropped, counted, not sent after newer ones',
    );
    const acknowledged = events.filter((e) => e.type === 'acknowledged' && e.object === 'segment');
    assert.equal(expired.length + acknowledged.length, 6, 'every segment acknowledged or counted');
    assert.ok(
      origin.uploads.every((u) => !u.path.endsWith('.mpd')),
      'no MPD to MediaPackage',
    );
  });

  it("takes each segment's header from its period: a period announced ahead changes nothing before it begins", async () => {
    const { origin, output } = await cmafSetup('unified');
    const first = BigInt(Math.floor(Date.now() / 1000));
    output.handle({ ...init('header-a'), periodStart: 0n });
    // The packager announces the next period (another init) 3 segments ahead, while this one goes on.
    output.handle({ ...init('header-b'), path: `v/init-${first + 3n}.mp4`, periodStart: first + 3n });
    for (const event of segmentEvents('v', first, 4)) output.handle(event);
    await output.flush();
    const streams = origin.uploads.filter((u) => u.bytes === 10_000).map((u) => u.path);
    assert.equal(streams.length, 4);
    assert.deepEqual(streams.slice(0, 3), Array(3).fill('live/Streams(v.cmfv)'), 'the current period: its own stream');
    assert.match(streams[3]!, /^live\/Streams\(v-[0-9a-f]{8}\.cmfv\)$/, 'the new period: the new stream');
  });

  it('generic-cmaf: a new name reaches the receiver in the MPD before its header does', async () => {
    const { origin, output, events } = await cmafSetup('generic-cmaf', true);
    const first = BigInt(Math.floor(Date.now() / 1000));
    let names = '';
    output.handle(init('header-a'));
    output.publishManifest((view) => {
      names = view.cmafIngest!.streamName('v');
      return `<MPD rep="${names}"/>`;
    });
    for (const event of segmentEvents('v', first, 1)) output.handle(event);
    for (let i = 0; i < 100 && !events.some((e) => e.type === 'acknowledged' && e.object === 'segment'); i++)
      await sleep(20);
    // The encoder restarted with another init for the next segment.
    output.handle({ ...init('header-b'), path: `v/init-${first + 1n}.mp4`, periodStart: first + 1n });
    for (const event of segmentEvents('v', first + 1n, 1)) output.handle(event);
    await output.flush();
    const paths = origin.uploads.map((u) => u.path);
    const renamed = /^live\/(v-[0-9a-f]{8})\/init\.mp4$/.exec(paths.find((p) => /v-.*init/.test(p)) ?? '')?.[1];
    assert.ok(renamed, JSON.stringify(paths));
    const mpds = origin.uploads.filter((u) => u.path === 'live/live.mpd');
    assert.equal(mpds.length, 2, `posted first, and again for the new name: ${JSON.stringify(paths)}`);
    assert.ok(
      mpds[1]!.endedAt! <= origin.uploads.find((u) => u.path === `live/${renamed}/init.mp4`)!.startedAt,
      'the MPD naming it before its header',
    );
    assert.equal(names, renamed);
    assert.ok(paths.includes(`live/${renamed}/${first + 1n}.m4s`));
  });
});
