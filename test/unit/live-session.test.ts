import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { pino } from 'pino';
import { loadProfile } from '../../src/config/profile.ts';
import type { ChunkEvent, PackagerEvent } from '../../src/packager/chunker.ts';
import { Packager, type Period } from '../../src/packager/packager.ts';
import { LiveSession } from '../../src/run/live-session.ts';
import { OutputSet } from '../../src/run/output-set.ts';
import {
  clipOf,
  RECORDED_TRACKS,
  type RecordedTrack,
  recordedFeeds,
  T0,
  timing,
  TRACKS,
} from '../helpers/recorded-media.ts';

// The live session on a clock the test moves, fed a real encoder's recorded fMP4, with a stand-in
// encoder control: slate, stop, end and the watchdogs without ffmpeg.

const { profile } = await loadProfile('ultra-ll');

async function sessionHarness(options: { slate?: boolean } = {}) {
  let wall = T0 * 1000;
  let monotonic = 0;
  /** The wall clock as it would be without steps. */
  let unstepped = wall;
  const clock = { now: () => wall, monotonic: () => monotonic };
  const packager = new Packager(TRACKS, timing, { now: clock.now });
  if (options.slate !== false) for (const track of RECORDED_TRACKS) packager.setSlate(clipOf(track));
  const events: PackagerEvent[] = [];
  const manifests: string[] = [];
  const outputs = new OutputSet([
    {
      name: 'recording',
      handle: (event) => events.push(event),
      publishManifest: (build) => manifests.push(build({ utcTimingUrl: 'http://127.0.0.1/time', asto: 0.9 })),
      flush: async () => {},
      failures: 0,
    },
  ]);
  const logs: { level: number; msg: string; [field: string]: unknown }[] = [];
  const logger = pino({ level: 'debug' }, { write: (line: string) => void logs.push(JSON.parse(line)) });
  const encoder = { stops: 0, restarts: [] as string[] };
  const slateReports: boolean[] = [];
  const saver = { saved: [] as bigint[], forgotten: 0 };
  const session = new LiveSession({
    profile,
    tracks: TRACKS,
    packager,
    outputs,
    logger,
    clock,
    reports: {
      chunkProduced: () => {},
      avOffset: () => {},
      slate: (active) => void slateReports.push(active),
      encoderRestarted: () => {},
    },
    saver: {
      save: (_periods: readonly Period[], segment: bigint) => void saver.saved.push(segment),
      forget: async () => void saver.forgotten++,
    },
  });
  session.attach({
    stop: async () => void encoder.stops++,
    restartNow: (why) => void encoder.restarts.push(why),
  });
  if (options.slate !== false) session.slateReady();
  const feeds = recordedFeeds();
  return {
    session,
    packager,
    events,
    manifests,
    logs,
    encoder,
    slateReports,
    saver,
    /** Moves both clocks to `seconds` after T0 (the wall clock alone by `step` ms more: a clock step). */
    at(seconds: number, step = 0) {
      const ms = Math.round((T0 + seconds) * 1000);
      monotonic += ms - unstepped;
      unstepped = ms;
      wall = ms + step;
    },
    init() {
      for (const track of RECORDED_TRACKS) session.media(track, feeds[track].init);
    },
    /** Source fragments starting in [from, to) seconds after T0 as the clock passes their end, ticking every 50 ms. */
    play(from: number, to: number, options: { source?: boolean } = {}) {
      for (let t = from; t < to - 1e-9; t += 0.05) {
        this.at(t + 0.05);
        if (options.source !== false)
          for (const track of RECORDED_TRACKS)
            for (const f of feeds[track].fragments)
              if (f.start >= T0 + t && f.start < T0 + t + 0.05) session.media(track, f.bytes);
        session.tick();
      }
    },
    said: (msg: string) => logs.filter((l) => l.msg === msg),
  };
}

const chunksOf = (events: PackagerEvent[], track: string) =>
  events.filter((e): e is ChunkEvent => e.type === 'chunk' && e.track === track);

const lmsgIn = (chunk: ChunkEvent) => Buffer.concat(chunk.parts).includes('lmsg');

describe('live session', () => {
  it('media, an interruption, slate due by the clock, and the source back on a new run', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.5);
    assert.equal(h.manifests.length, 1, 'the manifest is published once the packager is ready');
    assert.match(h.manifests[0]!, /<MPD /);
    assert.deepEqual(
      h.said('first segment').map((l) => l.track),
      ['180p', 'audio'],
    );
    h.session.interrupted('ffmpeg exited');
    assert.equal(h.said('source interrupted').length, 1);
    h.play(1.5, 3, { source: false });
    const slate = chunksOf(h.events, '180p').filter((c) => c.slate);
    assert.ok(slate.length >= 10, `slate chunks made on the clock (${slate.length})`);
    assert.equal(h.slateReports.at(-1), true, 'the telemetry hears the slate is on');

    h.session.newRun();
    h.init();
    h.play(3, 4);
    const video = chunksOf(h.events, '180p');
    assert.ok(!video.at(-1)!.slate, 'the source took over again');
    const back = h.said('source back: slate ended');
    assert.equal(back.length, 1);
    assert.ok((back[0]!.slateMs as number) >= 1500, 'the slate lasted from the interruption to the new run');
    assert.equal(h.slateReports.at(-1), false);
    assert.deepEqual(h.encoder.restarts, [], 'nothing asked the encoder to restart');
    assert.equal(h.manifests.length, 1, 'the same init: no new period');
  });

  it('a stop finishes the current segment without ending the stream; the session is kept', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.3);
    h.session.halt(false);
    assert.equal(h.packager.end?.segment, BigInt(T0 + 2), 'the end is after the current segment');
    assert.equal(h.packager.end?.last, false);
    h.play(1.3, 2.2);
    await h.session.finishing;
    assert.equal(h.encoder.stops, 1, 'the encoder is stopped once the segment is complete');
    assert.equal(h.saver.saved.at(-1), BigInt(T0 + 1), 'the last segment is saved for the next process');
    assert.equal(h.saver.forgotten, 0);
    const chunks = chunksOf(h.events, '180p');
    assert.equal(chunks.at(-1)!.segment, BigInt(T0 + 1));
    assert.ok(chunks.at(-1)!.segmentComplete);
    assert.ok(!chunks.some(lmsgIn), 'no lmsg: a restarted service continues the stream');
    h.session.halt(false);
    assert.equal(h.said('stop requested: finishing the current segment').length, 1, 'a second stop changes nothing');
  });

  it('an end after a stop upgrades it: lmsg on a segment not yet begun, the last manifest, the session forgotten', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.3);
    h.session.halt(false);
    h.session.halt(true);
    assert.equal(h.packager.end?.segment, BigInt(T0 + 3), 'lmsg needs a segment not yet begun');
    assert.equal(h.packager.end?.last, true);
    h.play(1.3, 3.2);
    await h.session.finishing;
    assert.equal(h.encoder.stops, 1);
    assert.equal(h.saver.forgotten, 1);
    const last = chunksOf(h.events, '180p').filter((c) => c.segment === BigInt(T0 + 2));
    assert.ok(last.at(-1)!.segmentComplete);
    assert.ok(lmsgIn(last[0]!), 'the last segment carries lmsg');
    assert.deepEqual(
      h.events.filter((e) => e.type === 'segmentEnd' && e.last).map((e) => e.type === 'segmentEnd' && e.segment),
      [BigInt(T0 + 2), BigInt(T0 + 2)],
      'each track ends with that segment',
    );
    assert.ok(h.manifests.length >= 2, 'a last manifest is published');
    assert.doesNotMatch(h.manifests.at(-1)!, /type="dynamic"[^>]*minimumUpdatePeriod/);
    h.session.halt(false);
    h.session.halt(true);
    assert.equal(h.said('end requested: the stream ends after the current segment').length, 1);
  });

  it('a stop before any media stops the encoder at once', async () => {
    const h = await sessionHarness();
    h.session.halt(false);
    assert.equal(h.encoder.stops, 1);
  });

  /** The recorded media of the first `seconds`, each 50 ms handed over `lateS` after its end (an encoder behind). */
  const playLate = (h: Awaited<ReturnType<typeof sessionHarness>>, seconds: number, lateS: number) => {
    const feeds = recordedFeeds();
    for (let t = 0; t < seconds - 1e-9; t += 0.05) {
      h.at(t + 0.05 + lateS);
      for (const track of RECORDED_TRACKS)
        for (const f of feeds[track].fragments)
          if (f.start >= T0 + t && f.start < T0 + t + 0.05) h.session.media(track, f.bytes);
      h.session.tick();
    }
  };

  it('a stop while the encoder is seconds behind finishes the segment it is making, not the clock one', async () => {
    const h = await sessionHarness();
    h.init();
    // Media 3 s late: handed over as the clock passes its end plus 3 s.
    playLate(h, 1.3, 3);
    h.session.halt(false);
    assert.equal(h.packager.end?.segment, BigInt(T0 + 2), 'the end is after the segment in progress');
  });

  it('also when its media comes in bursts more than a second apart (no slate yet): the segment it is making', async () => {
    const h = await sessionHarness();
    h.init();
    playLate(h, 1.3, 3);
    // 1.5 s without a byte, the slate not begun: a burst is late, the encoder is not gone.
    h.at(1.3 + 3 + 1.5);
    assert.deepEqual(h.packager.slateTracks, []);
    h.session.halt(false);
    assert.equal(h.packager.end?.segment, BigInt(T0 + 2), 'not the clock segment, seconds ahead of the encoder');
  });

  it('a planned end that never comes stops the run anyway, once, after its deadline', async () => {
    const h = await sessionHarness({ slate: false });
    h.init();
    h.play(0, 1.2);
    h.session.planEnd(BigInt(T0 + 3));
    // The source stops and there is no slate: the last segment can never complete.
    h.session.interrupted('ffmpeg exited');
    h.play(1.2, 6, { source: false });
    assert.equal(h.encoder.stops, 0, 'not before 2 segments and 3 s past the planned end');
    h.play(6, 8.5, { source: false });
    assert.equal(h.encoder.stops, 1);
    assert.equal(h.said('the planned end did not come: stopping').length, 1);
  });

  it('a stop whose encoder is behind real time but still delivering on every track gets up to 3 s more', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.2);
    h.session.halt(false);
    const feeds = recordedFeeds();
    // The encoder delivers, but never reaches the end (it is hopelessly behind): media keeps coming.
    const deliver = (t: number, tracks: readonly RecordedTrack[]) => {
      h.at(t);
      for (const track of tracks) h.session.media(track, feeds[track].fragments[0]!.bytes);
      h.session.tick();
    };
    for (let t = 1.2; t < 6.5; t += 0.05) deliver(t, RECORDED_TRACKS);
    assert.equal(h.encoder.stops, 0, 'past 5 s, but media still comes');
    for (let t = 6.5; t < 9.5; t += 0.05) deliver(t, RECORDED_TRACKS);
    assert.equal(h.encoder.stops, 1, 'stopped once the grace is over');
    assert.equal(h.said('the current segment did not finish: stopping').length, 1);
  });

  it('no grace when one track stopped delivering, and none from a clock step', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.2);
    h.session.halt(false);
    const feeds = recordedFeeds();
    for (let t = 1.2; t < 6.5; t += 0.05) {
      // The wall clock steps back 10 s halfway: the deadline runs on the monotonic clock.
      h.at(t, t > 3 ? -10_000 : 0);
      h.session.media('180p', feeds['180p'].fragments[0]!.bytes);
      h.session.tick();
    }
    assert.equal(h.encoder.stops, 1, 'audio stopped: cut 5 s after the stop was asked');
  });

  it('a stop whose media stopped coming is cut 5 s after it was asked', async () => {
    const h = await sessionHarness({ slate: false });
    h.init();
    h.play(0, 1.2);
    h.session.halt(false);
    h.play(1.2, 6.1, { source: false });
    assert.equal(h.encoder.stops, 0);
    h.play(6.1, 6.5, { source: false });
    assert.equal(h.encoder.stops, 1);
  });

  it('a stepped clock: slate, and a restart of the encoder at once', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.2);
    h.at(1.25, 5000);
    h.session.tick();
    assert.deepEqual(h.encoder.restarts, ['clock step']);
    assert.equal(
      h.said('the system clock stepped: slate, then a clean restart of the encoder at the next boundary').length,
      1,
    );
    h.at(1.3, 5000);
    h.session.tick();
    assert.deepEqual(h.encoder.restarts, ['clock step'], 'a step is seen once');
  });

  it('media the packager keeps refusing while slate is on restarts the encoder, at most once per wait', async () => {
    const h = await sessionHarness();
    h.init();
    h.play(0, 1.2);
    h.session.interrupted('stalled');
    const feeds = recordedFeeds();
    const stale = feeds['180p'].fragments[0]!.bytes;
    // An encoder that keeps delivering media from before the interruption: never usable.
    for (let t = 1.2; t < 12.5; t += 0.05) {
      h.at(t);
      h.session.media('180p', stale);
      h.session.tick();
    }
    assert.deepEqual(h.encoder.restarts, ['media not usable'], 'after 4 segments and 6 s, once');
    assert.equal(h.said('ffmpeg delivers media the packager cannot take: restarting it').length, 1);
  });

  it('a resumed session starts on slate and says when its source is back', async () => {
    const h = await sessionHarness();
    const previous = new Packager(TRACKS, timing, { now: () => T0 * 1000 });
    for (const track of RECORDED_TRACKS) previous.setSlate(clipOf(track));
    const feeds = recordedFeeds();
    for (const track of RECORDED_TRACKS) previous.push(track, feeds[track].init);
    h.at(0.5);
    h.session.resume(previous.periods, BigInt(T0 - 1));
    h.play(0.5, 1, { source: false });
    assert.equal(h.slateReports.at(-1), true);
    assert.ok(
      chunksOf(h.events, '180p').every((c) => c.slate),
      'slate until the encoder delivers',
    );
    h.init();
    h.play(1, 2);
    const fromSource = chunksOf(h.events, '180p').filter((c) => !c.slate);
    assert.equal(fromSource[0]!.segment, BigInt(T0 + 1), 'the source takes over at a boundary');
    assert.equal(h.said('source back: slate ended').length, 1);
    assert.equal(h.manifests.length, 1, 'in the same period');
  });
});
