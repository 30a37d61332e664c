import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { parseProfile, profileFile } from '../../src/config/profile.ts';
import type { ChunkEvent, PackagerEvent } from '../../src/packager/chunker.ts';
import { restoreState, sessionState } from '../../src/packager/session-state.ts';
import { harness } from '../helpers/packager-harness.ts';
import { clipOf, T0, timing } from '../helpers/recorded-media.ts';

// A box short of CPU restarts the encoder with less to do: a rendition no longer encoded, or a
// lower frame rate. The packager turns each such run into a period of its own.

const profile = parseProfile(await readFile(profileFile('ultra-ll'), 'utf8'), 'ultra-ll.yaml');
const chunks = (events: PackagerEvent[], track: string) =>
  events.filter((e): e is ChunkEvent => e.type === 'chunk' && e.track === track);
const segmentsOf = (events: PackagerEvent[], track: string) => [
  ...new Set(chunks(events, track).map((c) => Number(c.segment) - T0)),
];
const manifestOptions = { timeShiftBufferDepth: 30, utcTimingUrl: 'http://127.0.0.1/time' };

/** Continuous to the tick: each chunk starts where the one before ended. */
function assertContinuous(list: ChunkEvent[]) {
  for (let i = 1; i < list.length; i++)
    assert.equal(
      list[i]!.decodeTime,
      list[i - 1]!.decodeTime + BigInt(list[i - 1]!.duration),
      `${list[i]!.track} ${list[i]!.segment}.${list[i]!.part} follows on`,
    );
}

/** Both tracks until 1.2 s, then a run without 180p (its period from T0 + 3), played to 4 s. */
function renditionLeftOut() {
  const h = harness({ periodLeadMs: 500 });
  h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
  h.init();
  h.play(0, 1.2);
  h.newRun(['audio'], { frameRate: 30 });
  h.init();
  h.play(1.2, 4);
  return h;
}

describe('encoder runs of another shape', () => {
  it('a run without a rendition: it ends whole at a new period, which leaves it out; the rest goes on', () => {
    const h = renditionLeftOut();
    const periods = h.packager.periods;
    assert.equal(periods.length, 2);
    assert.equal(periods[1]!.start, BigInt(T0 + 3), 'at the first boundary after the lead');
    assert.deepEqual([...periods[1]!.inits.keys()], ['audio']);
    assert.deepEqual(segmentsOf(h.events, '180p'), [0, 1, 2], 'slate to the period, nothing after');
    const video = chunks(h.events, '180p');
    assertContinuous(video);
    assert.equal(video.filter((c) => c.segment === BigInt(T0 + 2)).length, 10, 'its last segment is whole');
    assert.equal(h.packager.trackStates['180p']!.mode, 'absent');
    assert.deepEqual(segmentsOf(h.events, 'audio'), [1, 2, 3], 'from its first whole segment');
    assertContinuous(chunks(h.events, 'audio'));
    assert.ok(
      chunks(h.events, 'audio').some((c) => c.segment === BigInt(T0 + 3) && !c.slate),
      'audio from the source again in the new period',
    );
    const model = h.packager.mpdModel(profile, manifestOptions, new Date((T0 + 4) * 1000));
    assert.deepEqual(
      model.video.map((r) => r.id),
      [],
    );
    assert.deepEqual(
      model.earlierPeriods!.map((p) => p.video.map((r) => r.id)),
      [['180p']],
    );
    assert.deepEqual(h.packager.hlsRenditions(profile)?.video, []);
    assert.equal(h.packager.ready, true, 'manifests go on');
    h.packager.endBefore(BigInt(T0 + 4), { last: true });
    // The recording ends with the fourth second, which audio has begun: slate completes it.
    h.events.push(...h.packager.interrupt());
    h.play(4, 5.3, { source: false });
    assert.equal(h.packager.finished, true, 'a track left out does not hold up an end');
  });

  it('a run that brings it back opens another period with it; its init is the new run’s', () => {
    const h = renditionLeftOut();
    // The same recording 8 s later: a run from T0 + 8 with both tracks.
    h.newRun(['180p', 'audio'], { frameRate: 30, shiftSeconds: 8 });
    h.init();
    h.play(4, 12);
    const periods = h.packager.periods;
    assert.equal(periods.length, 3);
    assert.deepEqual([...periods[2]!.inits.keys()].sort(), ['180p', 'audio']);
    assert.equal(periods[2]!.inits.get('180p')!.path, `180p/init-${periods[2]!.start}.mp4`);
    const back = Number(periods[2]!.start) - T0;
    assert.ok(back === 8 || back === 9, `back at ${back}`);
    assert.deepEqual(
      segmentsOf(h.events, '180p').filter((n) => n > 2),
      Array.from({ length: 12 - back }, (_, i) => back + i).filter((n) => n < 12),
      'the rendition from the new period on',
    );
    assert.ok(chunks(h.events, '180p').every((c) => c.segment < BigInt(T0 + 3) || c.segment >= periods[2]!.start));
    assertContinuous(chunks(h.events, 'audio'));
    assert.equal(h.packager.trackStates['180p']!.mode, 'live');
    const model = h.packager.mpdModel(profile, manifestOptions, new Date((T0 + 12) * 1000));
    assert.deepEqual(
      model.video.map((r) => r.id),
      ['180p'],
    );
  });

  it('another frame rate is another period, which says so; saved and restored with the session', () => {
    const h = harness({ periodLeadMs: 500 });
    h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
    h.init();
    h.play(0, 1.2);
    h.newRun(['180p', 'audio'], { frameRate: 20 });
    h.init();
    h.play(1.2, 4);
    const periods = h.packager.periods;
    assert.deepEqual(
      periods.map((p) => [Number(p.start) === 0 ? 0 : Number(p.start) - T0, p.frameRate]),
      [
        [0, 30],
        [3, 20],
      ],
    );
    const model = h.packager.mpdModel(profile, manifestOptions, new Date((T0 + 4) * 1000));
    assert.equal(model.video[0]!.frameRate, 20);
    assert.equal(model.earlierPeriods![0]!.video[0]!.frameRate, 30);
    assert.equal(h.packager.hlsRenditions(profile)!.video[0]!.frameRate, 20);
    const restored = restoreState(JSON.parse(JSON.stringify(sessionState(periods, BigInt(T0 + 3)))), timing);
    assert.deepEqual(
      restored!.periods.map((p) => p.frameRate),
      [30, 20],
    );
  });

  it('a session resumed where its last period had left a rendition out: that track waits, absent, for a period', () => {
    const h = renditionLeftOut();
    const saved = restoreState(JSON.parse(JSON.stringify(sessionState(h.packager.periods, BigInt(T0 + 3)))), timing)!;
    const next = harness({ periodLeadMs: 500 });
    next.now = (T0 + 4.05) * 1000;
    next.events.push(...next.packager.resume(saved.periods, saved.lastSegment));
    next.newRun(['180p', 'audio'], { frameRate: 30, shiftSeconds: 8 });
    assert.equal(next.packager.trackStates['180p']!.mode, 'absent');
    next.init();
    next.play(4, 12);
    assert.equal(next.packager.periods.length, 3, 'the rendition comes back in a period of its own');
    assert.equal(next.packager.trackStates['180p']!.mode, 'live');
  });

  it('an announced period: the next run takes over at its start, slate only for the restart', () => {
    const h = harness({ periodLeadMs: 3000 });
    h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
    h.init();
    h.play(0, 1.2);
    const audioInit = h.packager.periods[0]!.inits.get('audio')!;
    const announced = h.packager.announcePeriod(
      BigInt(T0 + 3),
      { tracks: ['audio'], frameRate: 30 },
      new Map([['audio', audioInit]]),
    );
    assert.deepEqual(
      announced.map((i) => i.path),
      [`audio/init-${T0 + 3}.mp4`],
    );
    h.play(1.2, 2.3);
    // The restart, 0.7 s before the period.
    h.newRun(['audio'], { frameRate: 30 });
    h.init();
    h.play(2.3, 4);
    assert.equal(h.packager.periods.length, 2, 'no other period: the run is the one announced');
    const audio = chunks(h.events, 'audio');
    assertContinuous(audio);
    const slate = audio.filter((c) => c.slate);
    assert.ok(slate.length > 0 && slate.every((c) => c.segment === BigInt(T0 + 2)), 'slate only before the period');
    assert.ok(audio.filter((c) => c.segment === BigInt(T0 + 3)).every((c) => !c.slate));
    assert.deepEqual(segmentsOf(h.events, '180p'), [0, 1, 2]);
  });

  it('a step down while late: the next run, as late as the manifests now allow, takes over at its period', () => {
    const stepDown = (allowanceMs: number) => {
      const h = harness({ periodLeadMs: 3000 });
      h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
      h.init();
      h.play(0, 1.2);
      h.packager.allowLateSource(allowanceMs);
      const inits = h.packager.periods[0]!.inits;
      h.packager.announcePeriod(BigInt(T0 + 3), { tracks: ['180p', 'audio'], frameRate: 30 }, inits);
      // The old run is killed at 2.3 s; the next one's media comes 1.5 s behind the clock.
      h.play(1.2, 2.3);
      h.newRun(['180p', 'audio'], { frameRate: 30 });
      h.now = (T0 + 2.3 + 1.5) * 1000;
      h.init();
      h.play(2.3, 7, { lateSeconds: 1.5 });
      return chunks(h.events, '180p');
    };
    const allowed = stepDown(2000);
    assertContinuous(allowed);
    assert.ok(
      allowed.filter((c) => c.segment >= BigInt(T0 + 3)).every((c) => !c.slate),
      'the source from the period on',
    );
    const onTheClock = stepDown(0);
    assertContinuous(onTheClock);
    assert.ok(
      onTheClock.some((c) => c.segment >= BigInt(T0 + 3) && c.slate),
      'without the allowance slate runs into the period (the run is later than the usual wait)',
    );
  });

  it('a restart whose video comes a segment after its audio: slate fills the segment it waited at, no hole', () => {
    // The restart came too late for video's first boundary: audio from the period's start, video
    // from the next, while slate still waited for it at the first; slate fills it, no hole.
    const h = harness({ periodLeadMs: 3000 });
    h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
    h.init();
    h.play(0, 1.2);
    h.packager.allowLateSource(2000);
    h.packager.announcePeriod(
      BigInt(T0 + 2),
      { tracks: ['180p', 'audio'], frameRate: 30 },
      h.packager.periods[0]!.inits,
    );
    h.play(1.2, 1.3);
    h.newRun(['180p', 'audio'], { frameRate: 30 });
    h.now = (T0 + 1.3 + 1) * 1000;
    h.init();
    h.play(1.3, 3, { lateSeconds: 1, tracks: ['audio'] });
    h.play(3, 4.2, { lateSeconds: 1 });
    const video = chunks(h.events, '180p');
    assertContinuous(video);
    assert.deepEqual(segmentsOf(h.events, '180p'), [0, 1, 2, 3], 'every segment of video');
    assert.ok(video.filter((c) => c.segment === BigInt(T0 + 2)).every((c) => c.slate));
    assert.ok(video.filter((c) => c.segment === BigInt(T0 + 3)).every((c) => !c.slate));
    assert.ok(
      chunks(h.events, 'audio')
        .filter((c) => c.segment >= BigInt(T0 + 2))
        .every((c) => !c.slate),
    );
  });

  it('a run still delivering into an announced period with another init: its media there is not used', () => {
    const h = harness({ periodLeadMs: 3000 });
    h.packager.useRun({ tracks: ['180p', 'audio'], frameRate: 30 });
    h.init();
    h.play(0, 1.2);
    const current = h.packager.periods[0]!.inits;
    const other = new Uint8Array(current.get('180p')!.bytes);
    const mvhd = Buffer.from(other).indexOf('mvhd');
    other[mvhd + 8] = (other[mvhd + 8]! + 1) & 0xff;
    h.packager.announcePeriod(
      BigInt(T0 + 3),
      { tracks: ['180p', 'audio'], frameRate: 30 },
      new Map([
        ['180p', { ...current.get('180p')!, bytes: other }],
        ['audio', current.get('audio')!],
      ]),
    );
    // The next run's slate, as encoded for its settings.
    const clip = clipOf('180p');
    h.packager.setSlate({ ...clip, init: { ...clip.init, bytes: other } });
    h.play(1.2, 4);
    const video = chunks(h.events, '180p');
    assertContinuous(video);
    assert.equal(video.filter((c) => c.segment === BigInt(T0 + 3)).length, 10);
    assert.ok(
      video.filter((c) => c.segment >= BigInt(T0 + 3)).every((c) => c.slate),
      'slate, not the old run, in the new period',
    );
    assert.ok(
      chunks(h.events, 'audio')
        .filter((c) => c.segment === BigInt(T0 + 3))
        .every((c) => !c.slate),
      'audio has the same init: it goes on',
    );
  });
});
