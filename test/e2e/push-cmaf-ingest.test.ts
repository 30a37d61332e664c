import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { CmafIngestChecker } from '../helpers/cmaf-ingest-checker.ts';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { producedSegments, pushingAppliance, TOKEN, TRACKS } from '../helpers/push-run.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { runAppliance } from '../helpers/run.ts';

// `--ingest cmaf` end to end: the real encoder and packager sending to three CMAF ingest
// receivers at once (Unified Origin's naming, MediaPackage v2's, and the posted-MPD one), each an
// independent checker that reads every request box by box (test/helpers/cmaf-ingest-checker.ts).

const scratch = scratchDirectories('cmaf-ingest');
let lightProfile: string;
before(async () => {
  lightProfile = await writeLightProfile(await scratch(), { renditions: LIGHT_PAIR, tsb: 30 });
});

const extension = (track: string) => (track === 'audio' ? 'cmfa' : 'cmfv');

describe('CMAF ingest out (--ingest cmaf, DASH-IF Interface-1)', { timeout: 180_000 }, () => {
  it('sends each track to Unified, MediaPackage v2 and generic CMAF receivers by the rules, every segment once, whole', async () => {
    const dir = await scratch();
    // Unified's receiver: `…/channel.isml/Streams(<track>.cmf?)`, every request to that one URL.
    const unified = new CmafIngestChecker({ segdur: 1, streamOf: (path) => path.split('/').pop()! });
    // MediaPackage's: `Streams(<track>)/InitializationSegment`, `Streams(<track>)/Segment(<mfhd>)`.
    let cut = false;
    let segmentRequests = 0;
    // It also fails once mid-segment (the 6th segment request cut after 3000 bytes): the header must
    // come again on the new connection and the segment again whole.
    const mediapackage = new CmafIngestChecker({
      segdur: 1,
      streamOf: (path) => /Streams\([^)]*\)/.exec(path)?.[0] ?? path,
      cutAfter: (path) => {
        if (cut || !path.includes('/Segment(') || ++segmentRequests < 6) return undefined;
        cut = true;
        return 3000;
      },
    });
    // A generic receiver naming tracks from the posted MPD's SegmentTemplate: `<track>/<n>.m4s`;
    // it closes each connection after 4 requests (as Apache does after MaxKeepAliveRequests): the
    // header must go first again on the next one.
    const generic = new CmafIngestChecker({
      segdur: 1,
      streamOf: (path) => path.split('/').slice(-2, -1)[0]!,
      maxRequestsPerSocket: 4,
    });
    const ports = await Promise.all([unified.listen(), mediapackage.listen(), generic.listen()]);
    try {
      const result = await pushingAppliance(
        [
          '--duration',
          '8',
          '--ingest',
          'cmaf',
          '--output',
          join(dir, 'live.mpd'),
          '--output',
          `http://127.0.0.1:${ports[0]}/pub/channel.isml`,
          '--output',
          `http://127.0.0.1:${ports[1]}/in/v1/group/1/channel/`,
          '--output',
          `http://127.0.0.1:${ports[2]}/ingest/cmaf`,
          '--origin-profile',
          'appliance',
          '--origin-profile',
          'unified',
          '--origin-profile',
          'mediapackage-v2',
          '--origin-profile',
          'generic-cmaf',
        ],
        lightProfile,
      );
      const log = String(result.stderr);
      assert.equal(result.exitCode, 0, log.slice(-3000));
      const produced = await producedSegments(dir);
      assert.ok(produced.length >= 3 * 6, `${produced.length} segments produced`);

      for (const [name, checker] of [
        ['unified', unified],
        ['mediapackage-v2', mediapackage],
        ['generic-cmaf', generic],
      ] as const) {
        assert.deepEqual(checker.violations, [], `${name}: no rule broken`);
        const segments = checker.segments;
        // Every produced segment arrived whole, exactly once (the cut one only once complete).
        for (const { path, hash } of produced) {
          const track = path.split('/')[0]!;
          const stream = name === 'generic-cmaf' ? track : `Streams(${track}.${extension(track)})`;
          const copies = segments.filter((s) => s.stream === stream && s.hash === hash);
          assert.equal(copies.length, 1, `${name}: ${path} arrived once (${copies.length})`);
        }
        for (const track of TRACKS) {
          const stream = name === 'generic-cmaf' ? track : `Streams(${track}.${extension(track)})`;
          const ofTrack = segments.filter((s) => s.stream === stream);
          assert.ok(ofTrack.length >= 6, `${name}: ${track} has ${ofTrack.length} segments`);
          // The stream's end: the last segment says so.
          assert.ok(ofTrack.at(-1)!.brands.includes('lmsg'), `${name}: ${track}'s last segment carries lmsg`);
          assert.ok(
            ofTrack.every((s) => s.chunks === 10),
            `${name}: ${track}: ten chunks to a segment`,
          );
        }
        const methods = new Set(checker.requests.map((r) => r.method));
        assert.deepEqual([...methods], [name === 'mediapackage-v2' ? 'PUT' : 'POST'], `${name}: its method`);
        assert.ok(
          checker.requests.every((r) => r.headers['dash-if-ingest'] === '1.1'),
          `${name}: the DASH-IF-Ingest header`,
        );
        // The push token goes to the receivers that take credentials; MediaPackage admits by policy.
        assert.ok(
          checker.requests.every(
            (r) => r.headers['authorization'] === (name === 'mediapackage-v2' ? undefined : `Bearer ${TOKEN}`),
          ),
          `${name}: credentials`,
        );
        assert.ok(
          checker.requests
            .filter((r) => r.kind === 'segment' || r.kind === 'header')
            .every((r) => r.headers['content-type'] === (/audio/.test(r.path) ? 'audio/mp4' : 'video/mp4')),
          `${name}: content types`,
        );
      }

      // Unified: every request of a track to the one URL of its stream.
      for (const track of TRACKS)
        assert.ok(
          unified.requests.some((r) => r.path === `/pub/channel.isml/Streams(${track}.${extension(track)})`),
          `unified: ${track}'s stream`,
        );
      assert.ok(
        unified.requests.every((r) => /^\/pub\/channel\.isml\/Streams\([^/]+\)$/.test(r.path)),
        'unified: nothing but the streams (no manifest, no playlist)',
      );

      // MediaPackage: the header at InitializationSegment, each segment at Segment(<its mfhd>).
      for (const segment of mediapackage.segments)
        assert.equal(segment.path, `/in/v1/group/1/channel/${segment.stream}/Segment(${segment.sequence})`);
      assert.ok(
        mediapackage.requests
          .filter((r) => r.kind === 'header')
          .every((r) => r.path.endsWith('/InitializationSegment')),
      );
      const cutAt = mediapackage.requests.findIndex((r) => r.kind === 'cut');
      assert.ok(cutAt >= 0, 'the receiver cut a request');
      const cutRequest = mediapackage.requests[cutAt]!;
      const resent = mediapackage.requests.slice(cutAt + 1).find((r) => r.connection !== cutRequest.connection);
      assert.ok(resent, 'requests went on over a new connection');
      // (The checker refuses a segment on a connection without its header: none came.)

      // Generic: the MPD first, one Period at PT0S, SegmentTemplate names, no BaseURL.
      assert.equal(generic.requests[0]?.kind, 'manifest', 'the MPD before any header');
      assert.equal(generic.manifests.length, 1, 'the MPD is posted once');
      const mpd = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(
        generic.manifests[0]!.text,
      ) as { MPD: Record<string, unknown> & { Period: Record<string, unknown> } };
      assert.equal(generic.manifests[0]!.path, '/ingest/cmaf/live.mpd');
      assert.equal(mpd.MPD['availabilityStartTime'], '1970-01-01T00:00:00Z');
      assert.ok(!Array.isArray(mpd.MPD.Period), 'a single Period');
      assert.equal(mpd.MPD.Period['start'], 'PT0S');
      assert.equal(mpd.MPD['BaseURL'], undefined);
      const text = generic.manifests[0]!.text;
      assert.match(text, /initialization="\$RepresentationID\$\/init\.mp4"/);
      assert.match(text, /media="\$RepresentationID\$\/\$Number\$\.m4s"/);
      assert.match(text, /startNumber="0"/);
      for (const segment of generic.segments) {
        const number = BigInt(/(\d+)\.m4s$/.exec(segment.path)![1]!);
        assert.equal(segment.path, `/ingest/cmaf/${segment.stream}/${number}.m4s`);
      }
    } finally {
      await Promise.all([unified.close(), mediapackage.close(), generic.close()]);
    }
  });

  it('appliance check opens a session as a sender would: an empty request to the publishing point, nothing stored', async () => {
    const receiver = new CmafIngestChecker({ segdur: 1, streamOf: (path) => path });
    const port = await receiver.listen();
    try {
      const result = await runAppliance(
        [
          'check',
          '--no-cpu',
          '--json',
          '--origin-profile',
          'mediapackage-v2',
          '--output',
          `http://127.0.0.1:${port}/in/v1/g/1/ch/`,
        ],
        { timeout: 60_000 },
      );
      const report = JSON.parse(String(result.stdout)) as { origins: { credentials: string; problem?: string }[] };
      assert.equal(report.origins[0]?.credentials, 'accepted', String(result.stdout));
      assert.equal(report.origins[0]?.problem, undefined);
      assert.deepEqual(
        receiver.requests.map((r) => [r.method, r.path, r.kind]),
        [['PUT', '/in/v1/g/1/ch/', 'empty']],
      );
    } finally {
      await receiver.close();
    }
  });
});
