import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { segmentNumbers } from '../helpers/media.ts';
import { assertSegmentsConform } from '../helpers/segments.ts';
import { logLines, runAppliance, startAppliance, systemNode } from '../helpers/run.ts';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { assertOnGrid, freeUdpPort, report, sender, stopSender } from '../helpers/feed-sender.ts';

// A real sender (ffmpeg: test pattern and tone, H.264 + AAC in MPEG-TS) to a loopback port, the
// appliance receiving it and encoding a light pair of renditions: ingest is under test, not the
// encode, and a 360p feed leaves the CPU to the tests running beside this one.
let dir: string;
let profile: string;
const [TOP, SECOND] = LIGHT_PAIR.map((r) => r.id) as [string, string];
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-feed-'));
  profile = await writeLightProfile(dir, { renditions: LIGHT_PAIR });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('live MPEG-TS feeds over UDP', { timeout: 300_000 }, () => {
  it('UDP: a 360p30 H.264 + AAC feed is ingested and packaged on the wall clock, on the epoch grid', async () => {
    const port = await freeUdpPort();
    const out = join(dir, 'udp');
    const feed = sender(`udp://127.0.0.1:${port}?pkt_size=1316`);
    const startedAt = Date.now();
    try {
      const run = await runAppliance(
        [
          'start',
          '--profile',
          profile,
          '--source',
          `udp://127.0.0.1:${port}`,
          '--output',
          join(out, 'live.mpd'),
          '--state-dir',
          join(dir, 'state-udp'),
          '--duration',
          '12',
        ],
        { timeout: 120_000 },
      );
      const endedAt = Date.now();
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
      const logs = logLines(String(run.stderr));
      assert.ok(
        logs.some((l) => l['msg'] === 'capture' && /video: h264 640x360 at 30 fps/.test(String(l['reason']))),
        'what the feed holds is logged',
      );
      assert.ok(logs.some((l) => l['msg'] === 'the feed is on the wall clock'));
      // ffmpeg ignores `q` when an input is a pipe: the run must end with its input, not be killed.
      assert.ok(
        !logs.some((l) => l['msg'] === 'ffmpeg did not stop on request; killing it'),
        'the encoder stopped at the end of its input',
      );
      const interruptions = logs.filter((l) => l['msg'] === 'source interrupted').length;
      if (interruptions) process.stderr.write(`# UDP feed: ${interruptions} interruptions (a busy machine)\n`);
      for (const id of [TOP, SECOND]) {
        const video = await report(out, id);
        assertOnGrid(video, 30, interruptions);
        assert.ok(video.syncTimes.length >= 6, `${id}: ${video.syncTimes.length} IDRs`);
        const firstMs = Number((video.syncTimes[0]! * 1000n) / BigInt(video.track.timescale));
        // The wall clock of this run, not the feed's own clock (its stamps start near 1.4 s).
        assert.ok(
          firstMs >= startedAt - 1000 && firstMs <= endedAt,
          `${id}: media time is the wall clock (first IDR ${firstMs - startedAt} ms after the start, run ${endedAt - startedAt} ms)`,
        );
        const numbers = await segmentNumbers(out, id);
        numbers.forEach((n, i) => {
          if (i > 0) assert.equal(n, numbers[i - 1]! + 1n, `${id}: no segment missing`);
        });
      }
      const audio = await report(out, 'audio');
      audio.samples.slice(1).forEach((s, i) => {
        assert.equal(s.decodeTime, audio.samples[i]!.decodeTime + 1024n, 'audio continuous');
      });
      for (const id of [TOP, SECOND, 'audio'])
        await assertSegmentsConform(out, id, { segdur: 1, cdur: 0.1, minSegments: 8, ended: true });
      const delays = logs.filter((l) => l['msg'] === 'chunk delay').at(-1)?.['chunkDelayMs'] as Record<
        string,
        { p50: number }
      >;
      for (const [track, d] of Object.entries(delays))
        assert.ok(d.p50 > -50 && d.p50 < 1500, `${track}: chunk delay p50 ${d.p50} ms`);
    } finally {
      await stopSender(feed);
    }
  });

  it('UDP: the sender stopped mid-run gives slate; restarted, its media again, with no gap or doubled media in any track', async () => {
    const port = await freeUdpPort();
    const out = join(dir, 'udp-restart');
    let feed = sender(`udp://127.0.0.1:${port}?pkt_size=1316`);
    const appliance = startAppliance(
      await systemNode(),
      [
        'start',
        '--profile',
        profile,
        '--source',
        `udp://127.0.0.1:${port}`,
        '--output',
        join(out, 'live.mpd'),
        '--state-dir',
        join(dir, 'state-restart'),
        '--duration',
        '24',
      ],
      { timeout: 120_000 },
    );
    try {
      await sleep(10_000);
      await stopSender(feed);
      await sleep(5_000);
      feed = sender(`udp://127.0.0.1:${port}?pkt_size=1316`);
      const run = await appliance;
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
      const logs = logLines(String(run.stderr));
      for (const msg of ['source interrupted', 'the feed is back, on the wall clock', 'source back: slate ended'])
        assert.ok(
          logs.some((l) => l['msg'] === msg),
          `logged: ${msg}`,
        );
      const interruptions = logs.filter((l) => l['msg'] === 'source interrupted').length;
      for (const id of [TOP, SECOND]) {
        const video = await report(out, id);
        const ts = BigInt(video.track.timescale);
        assert.ok(
          video.samples.every((s) => s.decodeTime % (ts / 30n) === 0n),
          `${id}: every frame on the grid`,
        );
        // The slate starts with an IDR where it takes over (at a chunk boundary); every other IDR is on a whole second.
        const offGrid = video.syncTimes.filter((t) => t % ts !== 0n);
        assert.ok(
          offGrid.length <= interruptions,
          `${id}: IDRs off the segment grid: ${offGrid.map((t) => Number(t) / Number(ts))}`,
        );
        for (const t of offGrid) assert.equal(t % (ts / 10n), 0n, `${id}: the slate's IDR at a chunk boundary`);
        video.samples.slice(1).forEach((s, i) => {
          assert.equal(
            s.decodeTime,
            video.samples[i]!.decodeTime + BigInt(video.samples[i]!.duration),
            `${id}: no gap or overlap at ${Number(s.decodeTime) / Number(ts)}`,
          );
        });
        const numbers = await segmentNumbers(out, id);
        numbers.forEach((n, i) => {
          if (i > 0) assert.equal(n, numbers[i - 1]! + 1n, `${id}: no segment missing`);
        });
        // The slate (a still card) costs a fraction of the sender's test pattern: media, slate, media.
        const peak = Math.max(...video.segmentBitrates.map((b) => b.bitsPerSecond));
        const kinds = video.segmentBitrates.map((b) => (b.bitsPerSecond > peak / 2 ? 'media' : 'slate'));
        const runs = kinds.filter((k, i) => k !== kinds[i - 1]);
        assert.deepEqual(
          runs,
          ['media', 'slate', 'media'],
          `${id}: ${video.segmentBitrates.map((b) => Math.round(b.bitsPerSecond / 1000)).join(' ')} kb/s`,
        );
        assert.ok(kinds.filter((k) => k === 'media').length >= 10, `${id}: ${kinds.join(' ')}`);
      }
      // Audio: every run of the encoder and the slate's silence on the epoch frame grid, so where
      // the source takes over from the slate they meet to the sample.
      const audio = await report(out, 'audio');
      const splices = audio.samples.slice(1).flatMap((s, i) => {
        const expected = audio.samples[i]!.decodeTime + BigInt(audio.samples[i]!.duration);
        return s.decodeTime === expected
          ? []
          : [{ at: Number(s.decodeTime) / audio.track.timescale, by: Number(s.decodeTime - expected) }];
      });
      assert.deepEqual(splices, [], 'audio continuous to the sample, through the slate and back');
      assert.ok(
        audio.samples.every((s) => s.decodeTime % 1024n === 0n),
        'every AAC frame on k·1024 samples since 1970',
      );
    } finally {
      await stopSender(feed);
      appliance.kill('SIGKILL');
      await appliance.catch(() => undefined);
    }
  });

  it('refuses a URL it cannot use, or a feed that never comes, saying what would do', async () => {
    const noPort = await runAppliance(['start', '--source', 'udp://127.0.0.1', '--dry-run']);
    assert.equal(noPort.exitCode, 2);
    assert.match(String(noPort.stderr), /the port is missing, e\.g\. udp:\/\/127\.0\.0\.1:5000/);
    const secret = await runAppliance([
      'start',
      '--source',
      'srt://127.0.0.1:9000?passphrase=abcdefghijk',
      '--dry-run',
    ]);
    assert.equal(secret.exitCode, 2);
    assert.match(String(secret.stderr), /set APPLIANCE_SRT_PASSPHRASE instead/);
    assert.doesNotMatch(String(secret.stderr), /abcdefghijk/);
    const port = await freeUdpPort();
    const nothing = await runAppliance(
      ['start', '--source', `udp://127.0.0.1:${port}`, '--dry-run', '--no-retry-devices'],
      { timeout: 30_000 },
    );
    assert.equal(nothing.exitCode, 2);
    assert.match(String(nothing.stderr), /no MPEG-TS feed within 10 s; is the sender running/);
  });
});
