import assert from 'node:assert/strict';
import { mkdtemp, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { logLines, runAppliance, startAppliance, systemNode } from '../helpers/run.ts';
import { descendants, procEntries } from '../helpers/proc.ts';
import { LIGHT_PAIR, LIGHT_SINGLE, writeLightProfile } from '../helpers/light-profile.ts';
import { assertSrtIngested, freeUdpPort, report, sender, stopSender } from '../helpers/feed-sender.ts';

// A real sender (ffmpeg: test pattern and tone, H.264 + AAC in MPEG-TS) to a loopback port, the
// appliance receiving it and encoding a light pair of renditions: ingest is under test, not the
// encode, and a 360p feed leaves the CPU to the tests running beside this one.
let dir: string;
let profile: string;
const TOP = LIGHT_PAIR[0]!.id;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-feed-'));
  profile = await writeLightProfile(dir, { renditions: LIGHT_PAIR });
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

describe('live MPEG-TS feeds over SRT, and passthrough', { timeout: 300_000 }, () => {
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
      await assertSrtIngested(TOP, await appliance, out, passphrase, 60);
    } finally {
      await stopSender(feed);
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
      await assertSrtIngested(TOP, run, out, passphrase, 120);
    } finally {
      await stopSender(feed);
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
      await stopSender(feed);
    }
  });
});
