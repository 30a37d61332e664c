import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { childBoxes } from '../../src/packager/boxes.ts';
import type { ChunkEvent, InitEvent, PackagerEvent } from '../../src/packager/chunker.ts';
import { parseMoof } from '../../src/packager/fmp4.ts';
import { Packager } from '../../src/packager/packager.ts';
import { audioSegmentStart } from '../../src/timeline/epoch-grid.ts';
import { harness } from '../helpers/packager-harness.ts';
import { clipOf, pieces, recorded, T0, timing, TRACKS } from '../helpers/recorded-media.ts';

const chunksOf = (events: PackagerEvent[], track: string) =>
  events.filter((e): e is ChunkEvent => e.type === 'chunk' && e.track === track);
const bytesOf = (chunk: ChunkEvent) => Buffer.concat(chunk.parts);
const mfhdSequence = (chunk: ChunkEvent) => {
  const bytes = bytesOf(chunk);
  const moof = [...childBoxes(bytes)].find((b) => b.type === 'moof')!;
  return parseMoof(moof.payload, new Map()).sequenceNumber;
};
const brands = (chunk: ChunkEvent) => {
  const styp = [...childBoxes(bytesOf(chunk))].find((b) => b.type === 'styp');
  return styp
    ? Buffer.from(styp.payload)
        .toString('latin1')
        .match(/.{4}/g)!
        .filter((_, i) => i !== 1)
    : [];
};

/**
 * Audio on the epoch grid, to the sample: continuous, every frame on k·1024, every segment from
 * its grid frame to the next one's (46 or 47 frames), whether source or slate.
 */
function assertAudioOnTheGrid(chunks: ChunkEvent[]) {
  assertContinuous(chunks);
  for (const chunk of chunks) assert.equal(chunk.decodeTime % 1024n, 0n, `${chunk.segment}.${chunk.part} on a frame`);
  const segments = [...new Set(chunks.map((c) => c.segment))];
  for (const n of segments.slice(1, -1)) {
    const parts = chunks.filter((c) => c.segment === n);
    assert.equal(parts[0]!.decodeTime, audioSegmentStart(n, 1, 48_000), `segment ${n} starts on its grid frame`);
    assert.equal(
      parts.reduce((sum, c) => sum + c.duration, 0),
      Number(audioSegmentStart(n + 1n, 1, 48_000) - audioSegmentStart(n, 1, 48_000)),
      `segment ${n} lasts to the next one's grid frame`,
    );
  }
}

/** Media never goes back and never leaves a hole inside the stretch checked; sequence numbers only grow. */
function assertContinuous(chunks: ChunkEvent[]) {
  for (let i = 1; i < chunks.length; i++) {
    const before = chunks[i - 1]!;
    const chunk = chunks[i]!;
    assert.equal(
      chunk.decodeTime,
      before.decodeTime + BigInt(before.duration),
      `${chunk.track} ${chunk.segment}.${chunk.part} starts where ${before.segment}.${before.part} ends`,
    );
    assert.ok(mfhdSequence(chunk) > mfhdSequence(before), 'mfhd sequence numbers increase');
  }
}

describe('continuity: slate while the source is missing', () => {
  it('an encoder killed mid-segment: slate completes the segment from an IDR, fills the next on time, and the new run takes over at a boundary', () => {
    const h = harness();
    h.init();
    h.play(0, 1.5);
    h.events.push(...h.packager.interrupt());
    h.play(1.5, 2.9, { source: false });
    const video = chunksOf(h.events, '180p');
    const seg95 = video.filter((c) => c.segment === BigInt(T0 + 1));
    assert.deepEqual(
      seg95.map((c) => c.slate),
      [false, false, false, false, false, true, true, true, true, true],
    );
    assert.ok(seg95[9]!.segmentComplete);
    const slateStart = seg95[5]!;
    assert.equal(
      slateStart.decodeTime,
      BigInt(T0 + 1) * 90_000n + 45_000n,
      'the slate starts where the last whole chunk ended',
    );
    assert.ok(slateStart.independent, 'and with an IDR');
    const seg96 = video.filter((c) => c.segment === BigInt(T0 + 2));
    assert.equal(seg96.length, 9, 'slate chunks are due by the clock (96.9 s), not all at once');
    assert.ok(seg96.every((c) => c.slate));
    assert.ok(brands(seg96[0]!).includes('slat'), 'a slate segment is branded slat');
    assert.ok(!brands(video[0]!).includes('slat'));

    // The encoder is back: its audio flows first, its video starts on the next boundary.
    h.events.push(...h.packager.newRun());
    h.init();
    h.play(2.9, 4);
    const after = chunksOf(h.events, '180p');
    const seg97 = after.filter((c) => c.segment === BigInt(T0 + 3));
    assert.equal(seg97.length, 10);
    assert.ok(
      seg97.every((c) => !c.slate),
      'the source takes segment 97 back',
    );
    assert.equal(after.filter((c) => c.segment === BigInt(T0 + 2)).length, 10, 'the slate segment before it is whole');
    assertContinuous(after);
    const audio = chunksOf(h.events, 'audio');
    assertContinuous(audio);
    assert.ok(audio.some((c) => c.slate) && audio.at(-1)!.slate === false, 'audio: silence, then the source again');
    assert.deepEqual(h.packager.slateTracks, []);
    assert.equal(h.packager.periods.length, 1, 'an identical init continues the period');
    assert.equal(h.events.filter((e) => e.type === 'init').length, 2, 'and is not announced again');
  });

  it("on the epoch grid: source, slate and a new run meet to the sample; segments and mfhd are the timeline's", () => {
    const h = harness();
    h.init();
    h.play(0, 1.5);
    h.events.push(...h.packager.interrupt());
    h.play(1.5, 2.9, { source: false });
    h.events.push(...h.packager.newRun());
    h.init();
    h.play(2.9, 4);
    const audio = chunksOf(h.events, 'audio');
    assert.ok(audio.some((c) => c.slate) && audio.some((c) => !c.slate));
    assertAudioOnTheGrid(audio);
    for (const chunk of [...audio, ...chunksOf(h.events, '180p')])
      assert.equal(
        mfhdSequence(chunk),
        Number((chunk.segment * 10n + BigInt(chunk.part)) % 2n ** 32n),
        `${chunk.track} ${chunk.segment}.${chunk.part}`,
      );
  });

  it('a clock stepped forward: slate from where media ended, the source again at the next boundary, never backwards', () => {
    const h = harness();
    h.init();
    h.play(0, 1.5);
    // The clock (and with it the source's stamps) jumps from 95.5 to 97.0.
    h.play(3, 4);
    const video = chunksOf(h.events, '180p');
    assertContinuous(video);
    assert.ok(
      video.some((c) => c.slate),
      'slate between',
    );
    assert.equal(video.at(-1)!.slate, false);
    assert.equal(
      video.find((c) => !c.slate && c.segment > BigInt(T0 + 1))!.decodeTime,
      BigInt(T0 + 3) * 90_000n,
      'the source resumes at a boundary',
    );
    assert.equal(h.packager.counters.jumps, 2, 'each track saw its media jump');
    assert.equal(h.packager.counters.interruptions, 0);
  });

  it('a clock stepped back: the source media older than what was packaged is dropped, tfdt never goes back', () => {
    const h = harness();
    h.init();
    h.play(0, 2);
    const before = h.events.length;
    h.play(0, 1);
    assert.equal(h.events.length, before, 'nothing new from the past');
    assert.ok(h.packager.counters.backwardsSamples > 0);
    h.play(2, 4);
    assertContinuous(chunksOf(h.events, '180p'));
  });

  it('without a slate, an interrupted segment ends short and the source resumes at a boundary', () => {
    let nowMs = T0 * 1000;
    const packager = new Packager(TRACKS, timing, { now: () => nowMs });
    const events: PackagerEvent[] = [];
    const feed = pieces(recorded['180p']);
    events.push(...packager.push('180p', feed.init));
    for (const f of feed.fragments.filter((f) => f.start < T0 + 1.5)) events.push(...packager.push('180p', f.bytes));
    nowMs = (T0 + 1.6) * 1000;
    events.push(...packager.interrupt());
    const short = events.filter((e) => e.type === 'segmentEnd');
    assert.equal(short.length, 2, 'segment 95 is closed as it stands');
    packager.newRun();
    events.push(...packager.push('180p', feed.init));
    nowMs = (T0 + 3.5) * 1000;
    for (const f of feed.fragments.filter((f) => f.start >= T0 + 2.5)) events.push(...packager.push('180p', f.bytes));
    const resumed = chunksOf(events, '180p').filter((c) => c.segment === BigInt(T0 + 3));
    assert.equal(resumed.length, 10);
  });

  it('a new run whose init differs starts a new period far enough ahead, under a new init name', () => {
    const h = harness();
    h.init();
    h.play(0, 1.2);
    h.events.push(...h.packager.newRun());
    // Another init: the same track with one byte of its movie header changed.
    const changed = new Uint8Array(pieces(recorded['180p']).init);
    const mvhd = Buffer.from(changed).indexOf('mvhd');
    changed[mvhd + 8] = (changed[mvhd + 8]! + 1) & 0xff;
    const events = h.packager.push('180p', changed);
    assert.equal(events.length, 0, 'nothing until the run delivers media');
    const feed = pieces(recorded['180p']);
    h.now = (T0 + 2.05) * 1000;
    for (const f of feed.fragments.filter((f) => f.start >= T0 + 2 && f.start < T0 + 2.05))
      h.events.push(...h.packager.push('180p', f.bytes));
    const periods = h.packager.periods;
    assert.equal(periods.length, 2);
    assert.ok(periods[1]!.start >= BigInt(T0 + 5), `the period starts ≥ 3 s ahead (at ${periods[1]!.start})`);
    const inits = h.events.filter((e): e is InitEvent => e.type === 'init').slice(-2);
    assert.deepEqual(
      inits.map((i) => i.path).sort(),
      [`180p/init-${periods[1]!.start}.mp4`, `audio/init-${periods[1]!.start}.mp4`],
      'every init of the new period goes out under its name, at once',
    );
    assert.equal(periods[0]!.inits.get('180p')!.path, '180p/init.mp4');
  });
});

describe('slate cursor', () => {
  it('repeats only whole AAC frames: the short last frame of the encode would shift the frame grid', async () => {
    const { SlateCursor } = await import('../../src/packager/slate.ts');
    const clip = clipOf('audio');
    const short = { ...clip, samples: [...clip.samples.slice(0, 10), { ...clip.samples[10]!, duration: 640 }] };
    const cursor = new SlateCursor(short, 48_000n, 1000n);
    const taken = Array.from({ length: 40 }, () => cursor.take());
    assert.ok(taken.every((s) => s.duration === 1024));
    assert.equal(cursor.next, 1000n + 40n * 1024n);
  });

  it('video restarts the clip with its IDR at every boundary and ends the frame before one on it', async () => {
    const { SlateCursor } = await import('../../src/packager/slate.ts');
    const S = 90_000n;
    const cursor = new SlateCursor(clipOf('180p'), S, 10n * S + 44_000n);
    const first = cursor.take();
    assert.ok(first.sync, 'a fill starts with the IDR');
    const taken = [first];
    while (cursor.next < 11n * S) taken.push(cursor.take());
    assert.equal(cursor.next, 11n * S, 'the last frame before the boundary is shortened to end on it');
    assert.ok(cursor.take().sync, 'the next segment starts with the IDR');
  });
});

describe('clock', () => {
  it('reads the offset from chrony and systemd-timesyncd, and from an http-iso clock with the round trip halved', async () => {
    const { parseChronyTracking, parseTimesyncStatus, offsetFromServer, ClockStepDetector, measureClockOffset } =
      await import('../../src/encode/clock.ts');
    assert.equal(
      parseChronyTracking('Reference ID    : C0A80001 (gw)\nSystem time     : 0.012500000 seconds slow of NTP time\n'),
      -12.5,
    );
    assert.equal(parseChronyTracking('System time     : 0.000100000 seconds fast of NTP time'), 0.1);
    assert.equal(parseTimesyncStatus('       Server: 192.168.0.1\n       Offset: +1.234ms\n'), 1.234);
    assert.equal(parseTimesyncStatus('Offset: -250us'), -0.25);
    assert.equal(parseChronyTracking('506 Cannot talk to daemon'), undefined);
    assert.equal(
      offsetFromServer(
        '2026-11-21T00:00:00.000Z',
        Date.parse('2026-11-21T00:00:00.100Z'),
        Date.parse('2026-11-21T00:00:00.140Z'),
      ),
      120,
    );
    const measured = await measureClockOffset({
      timeUrls: [],
      run: async (file) => (file === 'chronyc' ? Promise.reject(new Error('ENOENT')) : 'Offset: +30ms'),
    });
    assert.deepEqual(measured, { offsetMs: 30, source: 'timedatectl timesync-status' });
    // An http-iso clock on 127.0.0.1 (chrony and timesyncd absent): its date is read; an answer
    // longer than a date is not read to its end and gives no offset.
    const { createServer } = await import('node:http');
    const server = createServer((req, res) => {
      if (req.url === '/huge') {
        res.write('x'.repeat(64 * 1024));
        return void res.end('x'.repeat(64 * 1024));
      }
      res.end(new Date(Date.now() - 5000).toISOString());
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const base = `http://127.0.0.1:${(server.address() as { port: number }).port}`;
    const absent = async () => Promise.reject(new Error('ENOENT'));
    try {
      const remote = await measureClockOffset({ timeUrls: [`${base}/time`], run: absent });
      assert.ok(remote && Math.abs(remote.offsetMs - 5000) < 1000 && remote.remote, JSON.stringify(remote));
      assert.equal(await measureClockOffset({ timeUrls: [`${base}/huge`], run: absent }), undefined);
      assert.equal(await measureClockOffset({ timeUrls: ['file:///etc/passwd'], run: absent }), undefined);
    } finally {
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    }
    const steps = new ClockStepDetector(33);
    assert.equal(steps.check(1_000_000, 500), undefined);
    assert.equal(steps.check(1_000_100, 600), undefined, 'both clocks moved together');
    assert.equal(steps.check(1_005_200, 700), 5000, 'the wall clock jumped 5 s ahead');
    assert.equal(steps.check(1_004_210, 710), -1000);
  });
});

describe('supervision and session state', () => {
  it('restarts back off from 0.5 s, doubling, to at most 10 s', async () => {
    const { restartDelay } = await import('../../src/backoff.ts');
    assert.deepEqual(
      [1, 2, 3, 4, 5, 6, 10].map((n) => restartDelay(n)),
      [500, 1000, 2000, 4000, 8000, 10_000, 10_000],
    );
  });

  it('the state directory: --state-dir, else systemd StateDirectory, else XDG_STATE_HOME, else ~/.local/state', async () => {
    const { stateDirectory } = await import('../../src/config/state-dir.ts');
    assert.equal(stateDirectory('/srv/x', { STATE_DIRECTORY: '/var/lib/appliance' }, '/home/u'), '/srv/x');
    assert.equal(
      stateDirectory(undefined, { STATE_DIRECTORY: '/var/lib/appliance:/var/lib/other' }, '/home/u'),
      '/var/lib/appliance',
    );
    assert.equal(stateDirectory(undefined, { XDG_STATE_HOME: '/home/u/.st' }, '/home/u'), '/home/u/.st/appliance');
    assert.equal(stateDirectory(undefined, {}, '/home/u'), '/home/u/.local/state/appliance');
  });

  it('a saved session comes back with its periods, init segments byte for byte, and last segment; junk does not', async () => {
    const { sessionState, restoreState } = await import('../../src/packager/session-state.ts');
    const { sessionFileOf, loadSession } = await import('../../src/run/session-file.ts');
    const h = harness();
    h.init();
    const saved = JSON.parse(JSON.stringify(sessionState(h.packager.periods, 1_795_219_795n))) as unknown;
    const restored = restoreState(saved, timing)!;
    assert.equal(restored.lastSegment, 1_795_219_795n);
    assert.equal(restored.periods.length, 1);
    for (const [track, init] of h.packager.periods[0]!.inits) {
      assert.deepEqual(Buffer.from(restored.periods[0]!.inits.get(track)!.bytes), Buffer.from(init.bytes));
      assert.equal(restored.periods[0]!.inits.get(track)!.info.timescale, init.info.timescale);
    }
    assert.equal(restoreState({ version: 2 }, timing), undefined);
    assert.equal(
      restoreState(
        {
          version: 1,
          lastSegment: '5',
          periods: [{ start: '0', inits: { v: { path: 'v/init.mp4', bytes: 'AAAA' } } }],
        },
        timing,
      ),
      undefined,
    );
    const { mkdtemp, writeFile } = await import('node:fs/promises');
    const { tmpdir } = await import('node:os');
    const { join } = await import('node:path');
    const file = join(await mkdtemp(join(tmpdir(), 'appliance-session-')), 'cut.json');
    await writeFile(file, JSON.stringify(saved).slice(0, 40));
    const warnings: string[] = [];
    const logger = { warn: (_fields: unknown, message: string) => warnings.push(message) } as never;
    assert.equal(
      await loadSession(file, { ...timing, tsb: 30 }, (T0 + 2) * 1000, logger),
      undefined,
      'a cut file is refused, not thrown',
    );
    assert.deepEqual(warnings, ['the saved session is unreadable: starting a new one']);
    await writeFile(file, JSON.stringify(saved));
    assert.equal(
      (await loadSession(file, { ...timing, tsb: 30 }, (T0 + 2) * 1000, logger))?.lastSegment,
      1_795_219_795n,
    );
    const a = sessionFileOf('/s', [{ kind: 'directory', dir: '/out', manifest: 'live.mpd' }] as never);
    assert.equal(
      a,
      sessionFileOf('/s', [{ kind: 'directory', dir: '/out', manifest: 'live.mpd' }] as never),
      'the same outputs: the same session',
    );
    assert.notEqual(a, sessionFileOf('/s', [{ kind: 'directory', dir: '/other', manifest: 'live.mpd' }] as never));
  });

  it('a resumed session fills from the segment after the last with slate, in the same period', () => {
    const h = harness();
    h.init();
    const periods = h.packager.periods;
    const nowMs = (T0 + 3.35) * 1000;
    const next = new Packager(TRACKS, timing, { now: () => nowMs });
    next.setSlate(clipOf('180p'));
    next.setSlate(clipOf('audio'));
    const inits = next.resume(periods, BigInt(T0 + 2));
    assert.deepEqual(
      inits.map((e) => e.type === 'init' && e.path),
      ['180p/init.mp4', 'audio/init.mp4'],
      'inits again, for outputs that lost them',
    );
    const events = next.tick();
    const video = chunksOf(events, '180p');
    assert.equal(video[0]!.segment, BigInt(T0 + 3));
    assert.equal(video[0]!.decodeTime, BigInt(T0 + 3) * 90_000n);
    assert.ok(video.every((c) => c.slate));
    assert.equal(next.periods.length, 1);
    const slateAudio = chunksOf(events, 'audio');
    assert.equal(
      slateAudio[0]!.decodeTime,
      audioSegmentStart(BigInt(T0 + 3), 1, 48_000),
      'silence from its grid frame',
    );
  });

  it("a resumed session: the slate and the new process's source meet to the sample on the grid", () => {
    const previous = harness();
    previous.init();
    const h = harness();
    h.now = (T0 + 1.35) * 1000;
    h.events.push(...h.packager.resume(previous.packager.periods, BigInt(T0)), ...h.packager.tick());
    h.init();
    h.play(1.35, 4);
    const audio = chunksOf(h.events, 'audio');
    assert.equal(audio[0]!.segment, BigInt(T0 + 1));
    assert.ok(audio[0]!.slate && audio.some((c) => !c.slate), 'silence, then the source');
    assertAudioOnTheGrid(audio);
    assertContinuous(chunksOf(h.events, '180p'));
  });
});
