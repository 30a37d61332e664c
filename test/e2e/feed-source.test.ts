import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { createSocket } from 'node:dgram';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { analyseTrack, readTrack, segmentNumbers, type TrackReport } from '../helpers/media.ts';
import { assertSegmentsConform } from '../helpers/segments.ts';
import { logLines, runAppliance, startAppliance, systemNode } from '../helpers/run.ts';
import { descendants, procEntries } from '../helpers/proc.ts';
import { LIGHT_PAIR, LIGHT_SINGLE, writeLightProfile } from '../helpers/light-profile.ts';

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

async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  socket.close();
  return port;
}

function sender(url: string, size = '640x360', extra: string[] = []): ResultPromise {
  return execa(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${size}:rate=30`,
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-g',
      '30',
      '-b:v',
      '1M',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      ...extra,
      '-f',
      'mpegts',
      url,
    ],
    { reject: false, stdin: 'pipe' },
  );
}

async function stop(child: ResultPromise) {
  child.kill('SIGKILL');
  await child.catch(() => undefined);
}

const report = async (out: string, track: string) => analyseTrack(await readTrack(out, track), 1);

/**
 * Every frame on the frame grid, every IDR on a whole second since 1970. A feed that stalled
 * (`interruptions` times, as logged: its sender short of CPU on a busy machine) is followed by
 * slate from its last whole chunk, whose first frame is an IDR on that chunk's boundary.
 */
function assertOnGrid(video: TrackReport, fps: number, interruptions = 0) {
  const ts = BigInt(video.track.timescale);
  assert.equal(video.frameRate, fps);
  const offSecond = video.syncTimes.filter((t) => t % ts !== 0n);
  assert.ok(
    offSecond.length <= interruptions,
    `IDRs at ${offSecond.join(', ')} off a whole second since 1970 (${interruptions} interruptions)`,
  );
  for (const t of offSecond) assert.equal(t % (ts / 10n), 0n, `slate's IDR at ${t} on a chunk boundary`);
  assert.ok(
    video.samples.every((s) => s.decodeTime % (ts / BigInt(fps)) === 0n),
    'every frame on the grid',
  );
}

/** An SRT run: it ended well, its passphrase is nowhere in what it said, and its frames are on the grid. */
async function assertSrtIngested(
  run: { exitCode?: number | undefined; stderr: unknown; stdout: unknown },
  out: string,
  passphrase: string,
  minFrames: number,
) {
  assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
  assert.doesNotMatch(String(run.stderr) + String(run.stdout), new RegExp(passphrase));
  const video = await report(out, TOP);
  const interruptions = logLines(String(run.stderr)).filter((l) => l['msg'] === 'source interrupted').length;
  assertOnGrid(video, 30, interruptions);
  assert.ok(video.samples.length >= minFrames, `${video.samples.length} frames`);
}

describe('live MPEG-TS feeds (UDP, SRT)', { timeout: 300_000 }, () => {
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
      await stop(feed);
    }
  });

  it("SRT (the appliance listening, a caller sending with a passphrase): ingested; no secret in any child's command line, environment or log", async () => {
    const port = await freeUdpPort();
    const out = join(dir, 'srt');
    const passphrase = 'correct-horse-battery';
    const secrets = {
      APPLIANCE_SRT_PASSPHRASE: passphrase,
      APPLIANCE_PUSH_TOKEN: 'push-token-never-seen',
      APPLIANCE_INGEST_TOKEN: 'ingest-token-never-seen',
    };
    const appliance = startAppliance(
      await systemNode(),
      [
        'start',
        '--profile',
        profile,
        '--source',
        `srt://127.0.0.1:${port}?mode=listener`,
        '--output',
        join(out, 'live.mpd'),
        '--state-dir',
        join(dir, 'state-srt'),
        '--duration',
        '10',
      ],
      { timeout: 120_000, env: secrets },
    );
    await sleep(1500);
    const feed = sender(`srt://127.0.0.1:${port}?mode=caller&passphrase=${passphrase}`);
    try {
      // The launcher and the appliance itself hold the secrets; what they start (the relay, the encoder) must not.
      // Every ffmpeg the appliance starts (probes and the slate come and go first) until the relay and
      // the encoder both run; each one's command line and environment is read while it is there.
      const seen = new Map<number, { argv: string[]; environ: string[] }>();
      const running = () => [...seen.values()];
      // The encoder of the feed reads its MPEG-TS from the relay on a pipe.
      const encodesTheFeed = (argv: string[]) => argv.join(' ').includes('-f mpegts -thread_queue_size 512');
      for (
        let i = 0;
        i < 300 && !(running().some((p) => p.argv.includes('concat')) && running().some((p) => encodesTheFeed(p.argv)));
        i++
      ) {
        const tree = await descendants(appliance.pid!);
        const node = (
          await Promise.all(tree.map(async (pid) => ({ pid, argv: (await procEntries(pid, 'cmdline')) ?? [] })))
        ).find((p) => p.argv.some((a) => /appliance\.(js|ts)$/.test(a)));
        for (const pid of node ? await descendants(node.pid) : []) {
          if (seen.has(pid)) continue;
          const argv = await procEntries(pid, 'cmdline');
          const environ = await procEntries(pid, 'environ');
          if (argv?.[0]?.endsWith('ffmpeg') && environ) seen.set(pid, { argv, environ });
        }
        await sleep(100);
      }
      assert.ok(
        running().some((p) => p.argv.includes('concat')),
        `the relay reads the feed from its script (${seen.size} ffmpeg seen)`,
      );
      assert.ok(
        running().some((p) => encodesTheFeed(p.argv)),
        'the encoder runs',
      );
      for (const [pid, { argv, environ }] of seen) {
        assert.ok(
          environ.some((e) => e.startsWith('PATH=')),
          'the rest of the environment is kept',
        );
        for (const [name, value] of Object.entries(secrets)) {
          assert.ok(!argv.join(' ').includes(value), `${name} on the command line of ${pid}`);
          assert.ok(
            !environ.some((e) => e.startsWith(`${name}=`) || e.includes(value)),
            `${name} in the environment of ${pid}`,
          );
        }
      }
      await assertSrtIngested(await appliance, out, passphrase, 60);
    } finally {
      await stop(feed);
      appliance.kill('SIGKILL');
      await appliance.catch(() => undefined);
    }
  });

  it('SRT (the appliance calling a listening sender): ingested, and the passphrase never logged', async () => {
    const port = await freeUdpPort();
    const out = join(dir, 'srt-caller');
    const passphrase = 'staple-horse-correct';
    const feed = sender(`srt://127.0.0.1:${port}?mode=listener&passphrase=${passphrase}`);
    try {
      await sleep(1000);
      const run = await runAppliance(
        [
          'start',
          '--profile',
          profile,
          '--source',
          `srt://127.0.0.1:${port}?mode=caller`,
          '--output',
          join(out, 'live.mpd'),
          '--state-dir',
          join(dir, 'state-srt-caller'),
          '--duration',
          '8',
        ],
        { timeout: 120_000, env: { APPLIANCE_SRT_PASSPHRASE: passphrase } },
      );
      await assertSrtIngested(run, out, passphrase, 120);
    } finally {
      await stop(feed);
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
      await stop(feed);
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
      await stop(feed);
      appliance.kill('SIGKILL');
      await appliance.catch(() => undefined);
    }
  });

  it("passthrough: a 360p30 H.264 feed with 1 s keyframes is copied (the sender's own H.264), keyframes on the segment boundaries; with a second rendition to encode it is refused", async () => {
    const copyOnly = await writeLightProfile(await mkdtemp(join(dir, 'copy-')), {
      renditions: LIGHT_SINGLE,
      passthrough: true,
    });
    const copyAndEncode = await writeLightProfile(await mkdtemp(join(dir, 'mixed-')), {
      renditions: LIGHT_PAIR,
      passthrough: true,
    });
    const port = await freeUdpPort();
    const out = join(dir, 'passthrough');
    const feed = sender(`udp://127.0.0.1:${port}?pkt_size=1316`);
    try {
      const run = await runAppliance(
        [
          'start',
          '--profile',
          copyOnly,
          '--source',
          `udp://127.0.0.1:${port}`,
          '--output',
          join(out, 'live.mpd'),
          '--state-dir',
          join(dir, 'state-pass'),
          '--duration',
          '10',
        ],
        { timeout: 120_000 },
      );
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
      const logs = logLines(String(run.stderr));
      assert.ok(logs.some((l) => l['msg'] === 'capture' && /copied from the feed as 360p/.test(String(l['reason']))));
      assert.deepEqual(
        await readdir(out).then((names) => names.filter((n) => !n.includes('.')).sort()),
        [TOP, 'audio'],
        'one video track: the copy',
      );
      const video = await report(out, TOP);
      // The sender's x264 (ultrafast: Constrained Baseline), not the appliance's High profile.
      assert.match(video.codec, /^avc1\.42/, video.codec);
      const ts = BigInt(video.track.timescale);
      assert.equal(video.frameRate, 30);
      assert.ok(video.syncTimes.length >= 6, `${video.syncTimes.length} IDRs`);
      for (const t of video.syncTimes) assert.equal(t % ts, 0n, 'every keyframe on a whole second');
      assert.ok(
        video.samples.every((s) => s.decodeTime % (ts / 30n) === 0n),
        'every frame on the grid',
      );
      video.samples.slice(1).forEach((s, i) => {
        assert.equal(s.decodeTime, video.samples[i]!.decodeTime + BigInt(video.samples[i]!.duration), 'no gap');
      });
      const audio = await report(out, 'audio');
      audio.samples.slice(1).forEach((s, i) => {
        assert.equal(s.decodeTime, audio.samples[i]!.decodeTime + 1024n, 'audio continuous');
      });
      const delays = logs.filter((l) => l['msg'] === 'chunk delay').at(-1)?.['chunkDelayMs'] as Record<
        string,
        { p50: number }
      >;
      for (const [track, d] of Object.entries(delays))
        assert.ok(d.p50 > -1100 && d.p50 < 1500, `${track}: chunk delay p50 ${d.p50} ms`);
      const mixed = await runAppliance(
        [
          'start',
          '--profile',
          copyAndEncode,
          '--source',
          `udp://127.0.0.1:${port}`,
          '--output',
          join(out, 'live.mpd'),
          '--dry-run',
        ],
        { timeout: 60_000 },
      );
      assert.equal(mixed.exitCode, 2);
      assert.match(
        String(mixed.stderr),
        /video\.passthrough: a copy is the feed's 640x360 as is, and every rendition must be copied .*180p \(320x180\) would be encoded: remove it from video\.renditions; or set video\.passthrough to false/,
      );
      // A copy needs its feed at the start, even where a missing feed is otherwise waited for on slate.
      const absent = await runAppliance(
        [
          'start',
          '--profile',
          copyOnly,
          '--source',
          `udp://127.0.0.1:${await freeUdpPort()}`,
          '--retry-devices',
          '--dry-run',
        ],
        { timeout: 60_000 },
      );
      assert.equal(absent.exitCode, 2);
      assert.match(
        String(absent.stderr),
        /no MPEG-TS feed within 10 s; is the sender running and sending here\? \(video\.passthrough copies the feed, so it must be there at the start\)/,
      );
    } finally {
      await stop(feed);
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
