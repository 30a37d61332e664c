import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { XMLParser } from 'fast-xml-parser';
import { loadProfile } from '../../src/config/profile.ts';
import { buildMpd, isoDuration } from '../../src/packager/mpd.ts';
import { Packager } from '../../src/packager/packager.ts';
import { matchesGolden } from '../helpers/golden.ts';

const media = async (name: string) =>
  new Uint8Array(await readFile(new URL(`../fixtures/media/${name}`, import.meta.url)));
const video = await media('recorded-video-320x180-4s.mp4');
const audio = await media('recorded-audio-4s.mp4');
const NOW = new Date('2026-11-21T00:10:00.000Z');
const options = { timeShiftBufferDepth: 30, utcTimingUrl: 'https://time.akamai.com/?iso&ms' };

async function packaged(profileName: string, end?: bigint) {
  const { profile } = await loadProfile(profileName);
  const packager = new Packager(
    [
      { id: '180p', kind: 'video', bitrate: 300_000 },
      { id: 'audio', kind: 'audio', bitrate: 64_000 },
    ],
    profile,
  );
  if (end) packager.endBefore(end, { last: true });
  packager.push('180p', video);
  packager.push('audio', audio);
  assert.ok(packager.ready);
  return { profile, packager };
}

const parse = (xml: string) =>
  new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(xml) as { MPD: Record<string, any> };

describe('LL-DASH manifest', () => {
  it('ultra-ll, live (golden)', async (t) => {
    const { profile, packager } = await packaged('ultra-ll');
    await matchesGolden(t, 'live-ultra-ll.mpd', buildMpd(packager.mpdModel(profile, options, NOW)));
  });

  it('ultra-ll, ended after --duration (golden)', async (t) => {
    const { profile, packager } = await packaged('ultra-ll', 1_795_219_796n);
    await matchesGolden(t, 'ended-ultra-ll.mpd', buildMpd(packager.mpdModel(profile, options, NOW)));
  });

  it('standard, no early availability (golden)', async (t) => {
    const { profile, packager } = await packaged('standard');
    await matchesGolden(
      t,
      'live-standard.mpd',
      buildMpd(packager.mpdModel(profile, { ...options, timeShiftBufferDepth: 60 }, NOW)),
    );
  });

  it('says what the low-latency DASH rules ask for', async () => {
    const { profile, packager } = await packaged('ultra-ll');
    const { MPD } = parse(buildMpd(packager.mpdModel(profile, options, NOW)));
    assert.equal(MPD.type, 'dynamic');
    assert.equal(MPD.availabilityStartTime, '1970-01-01T00:00:00Z');
    assert.deepEqual(MPD.profiles.split(','), [
      'urn:mpeg:dash:profile:isoff-live:2011',
      'urn:mpeg:dash:profile:cmaf:2019',
      'http://www.dashif.org/guidelines/low-latency-live-v5',
    ]);
    assert.equal(MPD.minimumUpdatePeriod, 'PT2S');
    assert.equal(MPD.timeShiftBufferDepth, 'PT30S');
    assert.deepEqual(MPD.ServiceDescription.Latency, { referenceId: '0', target: '800', min: '500', max: '1500' });
    assert.deepEqual(MPD.ServiceDescription.PlaybackRate, { min: '0.96', max: '1.04' });
    assert.deepEqual(MPD.UTCTiming, {
      schemeIdUri: 'urn:mpeg:dash:utc:http-iso:2014',
      value: 'https://time.akamai.com/?iso&ms',
    });
    const [videoSet, audioSet] = MPD.Period.AdaptationSet;
    for (const set of [videoSet, audioSet]) {
      const t = set.SegmentTemplate;
      assert.equal(t.startNumber, '0');
      assert.equal(t.media, '$RepresentationID$/$Number$.m4s');
      assert.equal(t.availabilityTimeOffset, '0.9');
      assert.equal(t.availabilityTimeComplete, 'false');
      assert.equal(Number(t.duration), Number(t.timescale));
      assert.equal(set.ProducerReferenceTime.type, 'captured');
      assert.equal(
        Number(set.ProducerReferenceTime.presentationTime) / Number(t.timescale),
        Date.parse(set.ProducerReferenceTime.wallClockTime) / 1000,
        'PRT maps media time to the same instant',
      );
    }
    const v = videoSet.Representation;
    assert.deepEqual(
      [v.id, v.codecs, v.width, v.height, v.frameRate, v.sar, v.bandwidth],
      ['180p', 'avc1.42c00d', '320', '180', '30', '1:1', '300000'],
    );
    assert.deepEqual(v.Resync, { type: '0', dT: '9000', marker: 'true' });
    const a = audioSet.Representation;
    assert.deepEqual([a.codecs, a.audioSamplingRate, a.AudioChannelConfiguration.value], ['mp4a.40.2', '48000', '2']);
  });

  it('an ended stream stops asking for updates and says where it ends', async () => {
    const { profile, packager } = await packaged('ultra-ll', 1_795_219_796n);
    const { MPD } = parse(buildMpd(packager.mpdModel(profile, options, NOW)));
    assert.equal(MPD.minimumUpdatePeriod, undefined);
    assert.equal(MPD.mediaPresentationDuration, 'PT1795219796S');
  });

  it('standard (asto 0) has no availabilityTimeOffset', async () => {
    const { profile, packager } = await packaged('standard');
    const { MPD } = parse(buildMpd(packager.mpdModel(profile, options, NOW)));
    assert.equal(MPD.Period.AdaptationSet[0].SegmentTemplate.availabilityTimeOffset, undefined);
    assert.equal(MPD.Period.AdaptationSet[0].SegmentTemplate.duration, String(4 * 90000));
  });

  it('durations with millisecond precision', () => {
    assert.deepEqual([isoDuration(0.9), isoDuration(30), isoDuration(1.0213333)], ['PT0.9S', 'PT30S', 'PT1.021S']);
  });
});

describe('LL-DASH manifest with periods', () => {
  it('an encoder restart with another init: a second Period on the same numbering, with its own init and offset', async () => {
    const { profile, packager } = await packaged('ultra-ll');
    const model = packager.mpdModel(profile, options, NOW);
    const text = buildMpd({
      ...model,
      periodStart: 1_795_219_800n,
      earlierPeriods: [{ start: 0n, video: model.video, audio: model.audio }],
    });
    const periods = parse(text).MPD['Period'] as Record<string, any>[];
    assert.equal(periods.length, 2);
    assert.deepEqual(
      periods.map((p) => [p['id'], p['start']]),
      [
        ['0', 'PT0S'],
        ['1795219800', 'PT1795219800S'],
      ],
    );
    const template = periods[1]!['AdaptationSet'][0]['SegmentTemplate'];
    assert.equal(template['startNumber'], '1795219800');
    assert.equal(template['presentationTimeOffset'], String(1_795_219_800n * 90_000n));
    assert.equal(template['initialization'], '$RepresentationID$/init-1795219800.mp4');
    assert.equal(periods[0]!['AdaptationSet'][0]['SegmentTemplate']['initialization'], '$RepresentationID$/init.mp4');
    const prft = periods[1]!['AdaptationSet'][0]['ProducerReferenceTime'];
    assert.equal(prft['wallClockTime'], new Date(1_795_219_800_000).toISOString(), 'the reference lies in its period');
  });
});

describe('LL-DASH manifest for an origin that serves only complete files', () => {
  it('lists acknowledged segments in a SegmentTimeline, with no early availability', async () => {
    const { profile, packager } = await packaged('ultra-ll');
    const model = packager.mpdModel(profile, options, NOW);
    const announced = {
      video: { first: 1_795_219_790n, last: 1_795_219_795n },
      audio: { first: 1_795_219_791n, last: 1_795_219_794n },
    };
    const { MPD } = parse(buildMpd({ ...model, asto: 0, announced, minimumUpdatePeriod: profile.segdur }));
    assert.equal(MPD.minimumUpdatePeriod, 'PT1S');
    const [videoSet, audioSet] = MPD.Period.AdaptationSet;
    assert.equal(videoSet.SegmentTemplate.availabilityTimeOffset, undefined);
    assert.equal(videoSet.SegmentTemplate.duration, undefined);
    assert.equal(videoSet.SegmentTemplate.startNumber, '1795219790');
    assert.deepEqual(videoSet.SegmentTemplate.SegmentTimeline.S, {
      t: String(1_795_219_790n * 90000n),
      d: '90000',
      r: '5',
    });
    assert.equal(audioSet.SegmentTemplate.startNumber, '1795219791');
    // Audio as it is on the epoch grid: segment n from the AAC frame nearest n·segdur (ties to the
    // earlier) to the next one's, so 46 or 47 frames; equal neighbours folded with @r.
    const gridFrame = (n: bigint) => {
      const ideal = n * 48_000n - 512n;
      return ((ideal + 1023n) / 1024n) * 1024n;
    };
    const entries = [audioSet.SegmentTemplate.SegmentTimeline.S].flat() as { t?: string; d: string; r?: string }[];
    assert.equal(entries[0]!.t, String(gridFrame(1_795_219_791n)));
    assert.ok(entries.slice(1).every((e) => e.t === undefined));
    const durations = entries.flatMap((e) => Array.from({ length: Number(e.r ?? 0) + 1 }, () => Number(e.d)));
    assert.deepEqual(
      durations,
      [1_795_219_791n, 1_795_219_792n, 1_795_219_793n, 1_795_219_794n].map((n) =>
        Number(gridFrame(n + 1n) - gridFrame(n)),
      ),
    );
    assert.ok(durations.every((d) => d === 46 * 1024 || d === 47 * 1024));
    assert.ok(
      entries.every((e, i) => i === 0 || e.d !== entries[i - 1]!.d),
      'equal neighbours are folded',
    );
  });
});
