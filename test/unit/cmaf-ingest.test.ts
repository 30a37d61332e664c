import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { destinationOf, type PushSettings } from '../../src/cli/outputs.ts';
import { parseStartArgs } from '../../src/cli/args.ts';
import { ingestAnswer } from '../../src/cli/check-ingest.ts';
import { buildMpd, cmafIngestModel, type MpdModel } from '../../src/packager/mpd.ts';
import { cmafObjectNames, cmafPublishingPoint, CmafTrackNames, resolveIngest } from '../../src/push/cmaf-ingest.ts';
import { originCapabilities } from '../../src/push/origin-capabilities.ts';
import { parseOutput, type PushTarget } from '../../src/push/output-target.ts';

const push = (profiles: PushSettings['profiles'], ingests: PushSettings['ingests'] = [], method?: 'PUT' | 'POST') =>
  ({ profiles, ingests, method }) as unknown as PushSettings;
const target = (url: string) => parseOutput(url, '/') as PushTarget;

describe('CMAF ingest: names and destinations', () => {
  it('names a track as each receiver takes it', () => {
    // 10 chunks a segment: the segment's mfhd is its first chunk's, n·10 mod 2³².
    assert.deepEqual(
      [cmafObjectNames('streams', '1080p', 'video', 10)].map((n) => [n.init, n.segment(7n)]),
      [['Streams(1080p.cmfv)', 'Streams(1080p.cmfv)']],
    );
    const mediapackage = cmafObjectNames('mediapackage', 'audio', 'audio', 10);
    assert.equal(mediapackage.init, 'Streams(audio.cmfa)/InitializationSegment');
    assert.equal(mediapackage.segment(1_796_665_683n), 'Streams(audio.cmfa)/Segment(786787646)');
    const template = cmafObjectNames('template', '720p', 'video', 10);
    assert.deepEqual([template.init, template.segment(42n)], ['720p/init.mp4', '720p/42.m4s']);
  });

  it('takes the URL as a publishing point; the posted MPD inside it unless the URL names one', () => {
    const isml = cmafPublishingPoint(new URL('https://o.example/pub/channel.isml?x=1'));
    assert.equal(isml.base.href, 'https://o.example/pub/channel.isml/?x=1');
    assert.equal(new URL('Streams(a.cmfv)', isml.base).pathname, '/pub/channel.isml/Streams(a.cmfv)');
    assert.equal(
      cmafPublishingPoint(new URL('https://o.example/in/v1/g/1/ch/')).base.href,
      'https://o.example/in/v1/g/1/ch/',
    );
    assert.deepEqual(
      [cmafPublishingPoint(new URL('http://o/ingest/stream.mpd'))].map((p) => [p.base.href, p.manifest]),
      [['http://o/ingest/', 'stream.mpd']],
    );
  });

  it('a changed header is another track, named by its content; the first header keeps the track name', () => {
    const names = new CmafTrackNames();
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(1, 2, 4);
    assert.equal(names.nameOf('1080p', a), '1080p');
    const other = names.nameOf('1080p', b);
    assert.match(other, /^1080p-[0-9a-f]{8}$/);
    assert.equal(new CmafTrackNames().nameOf('1080p', b), '1080p', 'whatever header a run starts with');
    const again = new CmafTrackNames();
    again.nameOf('1080p', a);
    assert.equal(again.nameOf('1080p', b), other, 'the same header, the same name, on another encoder');
    assert.equal(names.nameOf('1080p', Uint8Array.of(1, 2, 3)), '1080p', 'back to the first header');
  });

  it('resolves --ingest per output against the origin profile, with the method each receiver expects', () => {
    const unified = destinationOf(push(['unified']), 0, target('https://o.example/pub/channel.isml'));
    assert.deepEqual(
      [unified.ingest, unified.method, unified.url.href],
      ['cmaf', 'POST', 'https://o.example/pub/channel.isml/'],
    );
    const dash = destinationOf(push([]), 0, target('https://o.example/live'));
    assert.deepEqual([dash.ingest, dash.method, dash.url.href], ['dash', 'PUT', 'https://o.example/live/live.mpd']);
    assert.equal(destinationOf(push(['mediapackage-v2']), 0, target('https://o/in/')).method, 'PUT');
    assert.equal(destinationOf(push(['unified'], [], 'PUT'), 0, target('https://o/p.isml')).method, 'PUT');
    assert.equal(destinationOf(push(['generic-cmaf']), 0, target('http://o/in/s.mpd')).manifest, 's.mpd');
    // Given once, --ingest applies to every output; per output, in order.
    const second = destinationOf(push(['generic', 'unified'], ['dash', 'cmaf']), 1, target('https://o/p.isml'));
    assert.equal(second.ingest, 'cmaf');
    assert.throws(
      () => destinationOf(push(['generic'], ['cmaf']), 0, target('https://o/live')),
      /--ingest cmaf for https:\/\/o\/live: the generic origin profile takes --ingest dash.*unified, mediapackage-v2 or generic-cmaf/,
    );
    // appliance origin packages CMAF ingest itself, under Unified's names.
    const own = destinationOf(push(['appliance'], ['cmaf']), 0, target('http://o/live'));
    assert.deepEqual([own.ingest, own.url.href], ['cmaf', 'http://o/live/']);
    assert.throws(
      () => destinationOf(push(['unified'], ['dash']), 0, target('https://o/p.isml')),
      /--ingest dash for .*--origin-profile unified is a CMAF ingest receiver/,
    );
    assert.throws(
      () => destinationOf(push(['unified']), 0, target('https://o/p.isml/live.mpd')),
      /CMAF ingest sends to a publishing point/,
    );
    assert.throws(() => destinationOf(push(['generic-cmaf']), 0, target('https://o/p/live.m3u8')), /not to a manifest/);
    assert.throws(() => resolveIngest('cmaf', originCapabilities('generic'), 'x'), /takes --ingest dash/);
  });

  it('--ingest on the command line: once, or once per --output; --method left to the profile', () => {
    const o = parseStartArgs([
      '--output',
      'http://a/x.isml',
      '--output',
      'http://b/y',
      '--ingest',
      'cmaf',
      '--ingest',
      'dash',
    ]);
    assert.deepEqual([o.ingests, o.method], [['cmaf', 'dash'], undefined]);
    assert.throws(
      () => parseStartArgs(['--output', 'http://a/x', '--ingest', 'cmaf', '--ingest', 'cmaf']),
      /--ingest is given 2 times for 1 --output/,
    );
    assert.throws(() => parseStartArgs(['--ingest', 'rtmp']), /--ingest "rtmp": expected one of dash, cmaf/);
  });

  it('posts a single-Period MPD at PT0S naming the tracks as the receiver knows them', () => {
    const model: MpdModel = {
      publishTime: new Date(0),
      segdur: 1,
      cdur: 0.1,
      asto: 0.9,
      timeShiftBufferDepth: 30,
      minimumUpdatePeriod: 2,
      maxSegmentDuration: 1.03,
      latency: { target: 1.5, min: 1, max: 3, playbackRate: { min: 0.96, max: 1.04 } },
      utcTimingUrl: 'https://time.example/',
      referenceSeconds: 1000,
      video: [
        {
          id: '1080p',
          codecs: 'avc1.640028',
          bandwidth: 6e6,
          width: 1920,
          height: 1080,
          frameRate: 30,
          sar: '1:1',
          timescale: 15360,
        },
      ],
      audio: [
        { id: 'audio', codecs: 'mp4a.40.2', bandwidth: 128e3, samplingRate: 48000, channels: 2, timescale: 48000 },
      ],
      periodStart: 1_700_000_000n,
      earlierPeriods: [{ start: 1_699_999_990n, video: [], audio: [] }],
    };
    const mpd = buildMpd(cmafIngestModel(model, (track) => (track === '1080p' ? '1080p-0badcafe' : track)));
    assert.equal(mpd.match(/<Period /g)?.length, 1);
    assert.match(mpd, /<Period id="0" start="PT0S">/);
    assert.match(mpd, /startNumber="0"/);
    assert.doesNotMatch(mpd, /presentationTimeOffset|availabilityTimeOffset|BaseURL/);
    assert.match(mpd, /<Representation id="1080p-0badcafe"/);
    assert.match(mpd, /<Representation id="audio"/);
  });

  it('appliance check reads the answer to an empty request that opens a session', () => {
    assert.deepEqual(ingestAnswer(200, 'POST', false), { credentials: 'accepted', problem: undefined });
    assert.equal(ingestAnswer(415, 'POST', false).credentials, 'accepted', 'let in, wants a header');
    assert.equal(ingestAnswer(403, 'POST', false).credentials, 'refused');
    assert.match(ingestAnswer(404, 'POST', false).problem!, /no publishing point/);
    assert.match(ingestAnswer(405, 'PUT', false).problem!, /takes no PUT \(405\).*--method/);
    assert.match(ingestAnswer(400, 'POST', false).problem!, /--client-cert/);
    assert.doesNotMatch(ingestAnswer(400, 'POST', true).problem!, /--client-cert/);
    assert.match(ingestAnswer(503, 'POST', false).problem!, /HTTP 503/);
  });
});
