import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { logLines, startAppliance, waitForLogField } from '../helpers/run.ts';
import {
  quantile,
  recordPlaylistLag,
  startTestOrigin,
  type TestOrigin,
  type UploadRecord,
} from '../helpers/push-origin.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { LIGHT_PAIR, tracksOf, writeLightProfile } from '../helpers/light-profile.ts';

// ultra-ll's timing on a light pair of renditions (delivery is under test, not the encode); the
// memory test keeps the default ladder, whose media rate is what a budget must hold back.
const TRACKS = tracksOf(LIGHT_PAIR);
const DEFAULT_TRACKS = ['1080p', '720p', 'audio'];
const TOKEN = 'push-test-token';
// As the launcher (and a unit file) run the pinned Node: two malloc arenas.
const env = { ...process.env, MALLOC_ARENA_MAX: '2', APPLIANCE_PUSH_TOKEN: TOKEN };

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function scratch() {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-push-'));
  dirs.push(dir);
  return dir;
}
let lightProfile: string;
before(async () => {
  lightProfile = await writeLightProfile(await scratch(), { renditions: LIGHT_PAIR, tsb: 30 });
});

/**
 * The appliance on the pinned Node, one process (as the service runs it), with the push token, on
 * the light pair unless another profile is named; delivery is the subject, so a loaded machine
 * does not step the encoder down (--no-adapt).
 */
function appliance(args: string[], profile = lightProfile) {
  return startAppliance(process.execPath, ['start', '--no-adapt', '--profile', profile, ...args], {
    env,
    timeout: 90_000,
  });
}

/** Every segment the directory output holds, which the origin must hold byte for byte too. */
async function producedSegments(dir: string, tracks = TRACKS): Promise<{ path: string; hash: string }[]> {
  const out: { path: string; hash: string }[] = [];
  for (const track of tracks) {
    for (const name of (await readdir(join(dir, track))).filter((n) => n.endsWith('.m4s'))) {
      out.push({
        path: `${track}/${name}`,
        hash: createHash('sha256')
          .update(await readFile(join(dir, track, name)))
          .digest('hex'),
      });
    }
  }
  return out;
}

/** Per chunk of live media (earliest arrival of each, over every request): arrival − media end. */
function chunkDelays(origin: TestOrigin, track: string, from = 0, to = Infinity): number[] {
  const earliest = new Map<number, number>();
  for (const upload of origin.uploads.filter((u) => u.path.startsWith(`live/${track}/`))) {
    for (const c of upload.chunks)
      if (c.mediaEndMs >= from && c.mediaEndMs < to)
        earliest.set(c.mediaEndMs, Math.min(earliest.get(c.mediaEndMs) ?? Infinity, c.at));
  }
  return [...earliest].map(([end, at]) => at - end);
}

const segmentUploads = (origin: TestOrigin, track: string): UploadRecord[] =>
  origin.uploads.filter((u) => u.path.startsWith(`live/${track}/`) && u.path.endsWith('.m4s'));

describe('push to an origin (real ffmpeg, real HTTP on 127.0.0.1)', { timeout: 240_000 }, () => {
  it('puts every chunk on the origin as it is made: one chunked request per segment, bytes equal to what was produced', async () => {
    const dir = await scratch();
    const origin = await startTestOrigin({ token: TOKEN });
    try {
      const result = await appliance([
        '--duration',
        '20',
        '--output',
        join(dir, 'live.mpd'),
        '--output',
        `${origin.base}/live/live.mpd`,
      ]);
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      const produced = await producedSegments(dir);
      assert.ok(produced.length >= 3 * 12, `${produced.length} segments produced`);
      for (const { path, hash } of produced) {
        assert.equal(origin.hash(`live/${path}`), hash, `live/${path} at the origin equals the produced segment`);
        const requests = origin.uploads.filter((u) => u.path === `live/${path}`);
        assert.equal(requests.length, 1, `one request for ${path}`);
        assert.equal(requests[0]!.headers['transfer-encoding'], 'chunked');
        assert.equal(requests[0]!.headers['content-type'], path.startsWith('audio') ? 'audio/mp4' : 'video/mp4');
        assert.match(String(requests[0]!.headers['user-agent']), /^appliance\/\d+\.\d+\.\d+ /);
      }
      for (const track of TRACKS) assert.ok(origin.hash(`live/${track}/init.mp4`), `${track} init`);
      const mpd = new TextDecoder().decode(Buffer.concat(origin.store.get('live/live.mpd')!.chunks));
      // The profile's offset, unless chunks came late on a loaded machine (encoder-behind): then a
      // smaller one, the truth the manifests tell while it lasts.
      const behind = logLines(String(result.stderr)).some((l) => l['alarm'] === 'encoder-behind');
      assert.match(mpd, behind ? /availabilityTimeOffset="0\.\d+"/ : /availabilityTimeOffset="0\.9"/);
      assert.match(
        mpd,
        new RegExp(`<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="${origin.base}/time"/>`),
      );
      assert.match(mpd, /mediaPresentationDuration=/, 'the final manifest after --duration');

      // The body grows every ~100 ms while the segment is made, timed at the origin.
      const uploads = segmentUploads(origin, TRACKS[0]!).slice(1, -1);
      const gaps = uploads.flatMap((u) => u.chunks.slice(1).map((c, i) => c.at - u.chunks[i]!.at));
      assert.ok(
        uploads.every((u) => u.chunks.length === 10),
        'ten chunks per segment',
      );
      const gap = { p50: quantile(gaps, 0.5), p95: quantile(gaps, 0.95) };
      // Chunk by chunk (~100 ms apart), never a segment at once; the exact spacing is a benchmark figure.
      assert.ok(gap.p50 > 20 && gap.p50 < 500, `chunk inter-arrival median ${gap.p50.toFixed(1)} ms`);
      const delays = Object.fromEntries(TRACKS.map((t) => [t, chunkDelays(origin, t)]));
      const summary = Object.fromEntries(
        Object.entries(delays).map(([t, d]) => [
          t,
          { p50: +quantile(d, 0.5).toFixed(1), p95: +quantile(d, 0.95).toFixed(1) },
        ]),
      );
      // Within the segment being made: a sender that waited for whole segments shows half a
      // segment at the median (its first chunk a segment late, its last on time). The tail is the
      // machine's load (1.1 s p95 seen with a busy core): a benchmark figure.
      for (const [track, d] of Object.entries(summary))
        assert.ok(d.p50 < 400, `${track} chunk delay at the origin p50 ${d.p50} ms`);
      process.stderr.write(
        `# push: chunk delay at the origin ${JSON.stringify(summary)}, inter-arrival ${JSON.stringify(gap)}\n`,
      );
    } finally {
      await origin.close();
    }
  });

  it('loses nothing through a 10 s outage and 5 s of 500s, and is back at the live edge within 2 segments', async () => {
    const dir = await scratch();
    const origin = await startTestOrigin({ token: TOKEN });
    try {
      const run = appliance([
        '--duration',
        '32',
        '--output',
        join(dir, 'live.mpd'),
        '--output',
        `${origin.base}/live/live.mpd`,
      ]);
      await sleep(6000);
      await origin.down();
      const downAt = Date.now();
      await sleep(10_000);
      await origin.up();
      const upAt = Date.now();
      await sleep(4000);
      origin.fault = (req, res) => {
        if (req.method !== 'PUT') return false;
        res.writeHead(500).end();
        return true;
      };
      const errorsFrom = Date.now();
      await sleep(5000);
      origin.fault = undefined;
      const errorsTo = Date.now();
      const result = await run;
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      const produced = await producedSegments(dir);
      const missing = produced.filter(({ path, hash }) => origin.hash(`live/${path}`) !== hash).map((p) => p.path);
      assert.deepEqual(missing, [], 'every produced segment is at the origin, byte for byte');
      const normal = Math.max(...TRACKS.map((t) => quantile(chunkDelays(origin, t, 0, downAt - 1000), 0.95)));
      // Live media from 2 segments after the origin returned is at the live edge again, not behind the
      // missed segments (those would hold it for seconds); the exact figures are benchmarks.
      const after = TRACKS.flatMap((t) => chunkDelays(origin, t, upAt + 2000, upAt + 4000));
      const afterErrors = TRACKS.flatMap((t) => chunkDelays(origin, t, errorsTo + 2000, errorsTo + 4000));
      assert.ok(after.length > 40 && afterErrors.length > 40);
      assert.ok(
        quantile(after, 0.95) < Math.max(1000, normal * 2),
        `back at the live edge after the outage: p95 ${quantile(after, 0.95).toFixed(0)} ms (normal ${normal.toFixed(0)})`,
      );
      assert.ok(
        quantile(afterErrors, 0.95) < Math.max(1000, normal * 2),
        `back at the live edge after the 500s: p95 ${quantile(afterErrors, 0.95).toFixed(0)} ms`,
      );
      const push = logLines(String(result.stderr)).find((l) => l['msg'] === 'push')!;
      assert.deepEqual(push['dropped'], {});
      assert.ok(Number(push['retries']) > 0);
      process.stderr.write(
        `# outage ${((upAt - downAt) / 1000).toFixed(1)} s and 500s ${((errorsTo - errorsFrom) / 1000).toFixed(1)} s: ${produced.length} segments, 0 lost, ${push['retries']} retries; live chunk delay p95 after: ${quantile(after, 0.95).toFixed(0)} / ${quantile(afterErrors, 0.95).toFixed(0)} ms (normal ${normal.toFixed(0)})\n`,
      );
    } finally {
      origin.fault = undefined;
      await origin.close();
    }
  });

  /** Late enough for an encoder short of CPU, far too early for one waiting on the slow origin. */
  const LATE_ENCODER_MS = 6000;

  it('bounds memory under an origin reading 1 byte/ms: drops counted exactly, the encoder and a second origin never held up', async () => {
    const dir = await scratch();
    const origin = await startTestOrigin({ token: TOKEN });
    const slow = await startTcpProxy(origin.port, { bytesPerMs: 1 });
    const healthy = await startTestOrigin({ token: TOKEN });
    try {
      const run = appliance(
        [
          '--duration',
          '20',
          '--push-budget',
          '5',
          '--metrics',
          '127.0.0.1:0',
          '--output',
          join(dir, 'live.mpd'),
          '--output',
          `http://127.0.0.1:${slow.port}/live/live.mpd`,
          '--output',
          `${healthy.base}/live/live.mpd`,
        ],
        'ultra-ll',
      );
      // The process's memory over the run, from its own /metrics, to see whether it keeps growing
      // once the budget is full (an absolute figure would measure the machine, not the code).
      const metrics = await waitForLogField(run, 'serving metrics', 'metrics', 30_000);
      assert.ok(metrics, 'the appliance serves /metrics');
      const memory: { at: number; rss: number; heap: number }[] = [];
      for (const started = Date.now(); run.exitCode === null && Date.now() - started < 90_000; ) {
        const text = await fetch(metrics, { signal: AbortSignal.timeout(2000) })
          .then((r) => r.text())
          .catch(() => '');
        const gauge = (name: string) => Number(new RegExp(`^appliance_${name} (\\S+)`, 'm').exec(text)?.[1] ?? NaN);
        const sample = {
          at: Date.now(),
          rss: gauge('process_resident_memory_bytes'),
          heap: gauge('nodejs_heap_size_total_bytes'),
        };
        if (sample.rss > 0 && sample.heap > 0) memory.push(sample);
        await sleep(250);
      }
      const result = await run;
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      const logs = logLines(String(result.stderr));
      const slowName = `http://127.0.0.1:${slow.port}/live/live.mpd`;
      const push = logs.find((l) => l['msg'] === 'push' && l['output'] === slowName)!;
      const budget = Number(logs.find((l) => l['msg'] === 'pushing')!['budgetBytes']);
      const produced = await producedSegments(dir, DEFAULT_TRACKS);
      const dropped = Object.values(push['dropped'] as Record<string, number>).reduce((a, b) => a + b, 0);
      assert.equal(
        Number(push['acknowledgedSegments']) + dropped,
        produced.length,
        'every segment acknowledged or counted as dropped',
      );
      assert.ok((push['dropped'] as Record<string, number>)['budget']! > 0, 'the budget dropped media');
      // The appliance's own accounting: what it held for the slow origin never passed the budget.
      const peakHeld = Number(push['peakHeldBytes']);
      assert.ok(
        peakHeld > budget / 2 && peakHeld <= budget,
        `held at most ${peakHeld} bytes for a budget of ${budget}`,
      );
      // Memory stops growing once the budget is full: from the first drop to the last segment.
      const filledAt = Date.parse(
        String(
          logs.find((l) => l['msg'] === 'push: media dropped' && l['output'] === slowName && l['reason'] === 'budget')![
            'time'
          ],
        ),
      );
      const endsAt = Date.parse(String(logs.find((l) => l['msg'] === 'stream end planned')!['endsAt']));
      // Media lives outside the JS heap (the push pool's slabs): what is resident beyond the heap
      // V8 sized for itself stops growing once the budget is full.
      const outsideHeap = (s: { rss: number; heap: number }) => s.rss - s.heap;
      const atFill = memory.find((s) => s.at >= filledAt)!;
      const late = memory.filter((s) => s.at >= endsAt - 4000 && s.at < endsAt);
      assert.ok(
        atFill && late.length >= 8 && endsAt - filledAt >= 8000,
        `memory sampled at the fill and late (${late.length} late samples, ${endsAt - filledAt} ms apart)`,
      );
      // Medians of a window after the fill and of the last seconds: one sample is at the mercy of
      // malloc and a collection that happens to run.
      const afterFill = memory.filter((s) => s.at >= filledAt && s.at < filledAt + 2000);
      assert.ok(afterFill.length >= 4, `${afterFill.length} samples in the 2 s after the fill`);
      const growth = quantile(late.map(outsideHeap), 0.5) - quantile(afterFill.map(outsideHeap), 0.5);
      const rssGrowth = Math.max(...late.map((s) => s.rss)) - atFill.rss;
      // The directory output (first) took every chunk on time: nothing waited for the slow origin.
      const delay = logs.filter((l) => l['msg'] === 'chunk delay').at(-1)!['chunkDelayMs'] as Record<
        string,
        { p95: number }
      >;
      // A hand-over that waited on the slow origin would take over a minute per chunk (1 byte/ms);
      // the default ladder behind real time on a loaded machine was seen at 2.5 s. The figure
      // itself is reported by npm run bench.
      for (const track of DEFAULT_TRACKS)
        assert.ok(delay[track]!.p95 < LATE_ENCODER_MS, `${track} chunk delay p95 ${delay[track]!.p95} ms`);
      assert.ok(produced.length >= 3 * 12, `${produced.length} segments produced`);
      // A second origin, healthy, is not slowed by the slow one: all of it, on time.
      assert.deepEqual(
        produced.filter(({ path, hash }) => healthy.hash(`live/${path}`) !== hash).map((p) => p.path),
        [],
      );
      for (const track of DEFAULT_TRACKS)
        assert.ok(
          quantile(chunkDelays(healthy, track), 0.9) < LATE_ENCODER_MS,
          `${track} at the healthy origin: p90 ${quantile(chunkDelays(healthy, track), 0.9).toFixed(0)} ms`,
        );
      const mib = (n: number) => (n / 2 ** 20).toFixed(1);
      process.stderr.write(
        `# slow origin: budget ${mib(budget)} MiB, held at most ${mib(peakHeld)} MiB; when the budget filled RSS ${mib(atFill.rss)} MiB (heap ${mib(atFill.heap)} MiB), late RSS +${mib(rssGrowth)} MiB, outside the heap +${mib(growth)} MiB over ${((endsAt - filledAt) / 1000).toFixed(1)} s; ${produced.length} produced, ${dropped} dropped, ${push['acknowledgedSegments']} acknowledged\n`,
      );
      // Bounded by 1.5 budgets: malloc and V8 bookkeeping wobble by a few MiB on a shared machine
      // (+7 to +9 MiB of a single late sample seen with one core busy); media held outside the pool
      // would grow by the media rate (~1 MiB/s, > 15 MiB here).
      assert.ok(
        growth < budget * 1.5,
        `memory outside the heap grew ${mib(growth)} MiB after the budget filled (budget ${mib(budget)} MiB)`,
      );
    } finally {
      await slow.close();
      await origin.close();
      await healthy.close();
    }
  });

  it('over a 50 ms-RTT path, chunks still stream to the origin as they are handed over, and playlists follow their parts', async () => {
    const origin = await startTestOrigin({ token: TOKEN });
    const far = await startTcpProxy(origin.port, { delayMs: 25 });
    const playlistLags = TRACKS.map((track) => [track, recordPlaylistLag(origin, `live/live_${track}.m3u8`)] as const);
    try {
      // trace: one line per chunk handed over, to pair with its arrival at the origin.
      const result = await appliance([
        '--duration',
        '12',
        '--log-level',
        'trace',
        '--output',
        `http://127.0.0.1:${far.port}/live/live.mpd`,
      ]);
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      const logs = logLines(String(result.stderr));
      assert.deepEqual(logs.find((l) => l['msg'] === 'push')!['dropped'], {});
      const handedOver = new Map(
        logs.filter((l) => l['msg'] === 'chunk').map((l) => [`${l['track']}:${l['mediaEndMs']}`, Number(l['at'])]),
      );
      const figures: Record<string, number> = {};
      for (const track of TRACKS) {
        // From the second segment on: the first waits for the connections and the init, once.
        const uploads = segmentUploads(origin, track).slice(1);
        const lags = uploads.flatMap((u) =>
          u.chunks.flatMap((c) => {
            const at = handedOver.get(`${track}:${c.mediaEndMs}`);
            return at === undefined ? [] : [c.at - at];
          }),
        );
        assert.ok(lags.length >= 80, `${track}: ${lags.length} chunks paired`);
        figures[track] = Math.round(quantile(lags, 0.95));
        // Streamed, not a segment at a time (that shows ~900 ms at p95) nor one round trip per
        // write; the figure (~50 ms idle) is reported below and by npm run bench.
        assert.ok(figures[track]! < 500, `${track}: p95 ${figures[track]} ms from hand-over to the origin`);
      }
      process.stderr.write(`# 50 ms RTT: hand-over → origin p95 ${JSON.stringify(figures)} ms\n`);
      // Part complete at the origin → a playlist naming it available there (the origin holds a
      // playlist until the media it names has arrived, so this is never negative).
      const lagFigures: Record<string, { p50: number; p95: number; count: number }> = {};
      for (const [track, lags] of playlistLags) {
        const values = lags().slice(20);
        assert.ok(values.length >= 50, `${track}: ${values.length} parts named`);
        assert.ok(Math.min(...values) >= 0, `${track}: no playlist named a part before its bytes arrived`);
        lagFigures[track] = {
          p50: Math.round(quantile(values, 0.5)),
          p95: Math.round(quantile(values, 0.95)),
          count: values.length,
        };
        assert.ok(lagFigures[track].p95 < 500, `${track}: playlist lag p95 ${lagFigures[track].p95} ms`);
      }
      process.stderr.write(
        `# 50 ms RTT: playlist lag (part at the origin → playlist naming it) ${JSON.stringify(lagFigures)} ms\n`,
      );
    } finally {
      await far.close();
      await origin.close();
    }
  });

  it("appliance check tells the project's origin (serves uploads while they arrive) and refused credentials", async () => {
    const origin = await startTestOrigin({ token: TOKEN });
    try {
      const good = await startAppliance(
        process.execPath,
        ['check', '--json', '--no-cpu', '--output', `${origin.base}/live/live.mpd`],
        { env },
      );
      assert.equal(good.exitCode, 0, String(good.stderr));
      assert.deepEqual(
        (({ credentials, originProfile, deleteStatus, server }) => ({
          credentials,
          originProfile,
          deleteStatus,
          server,
        }))((JSON.parse(String(good.stdout)) as { origins: Record<string, unknown>[] }).origins[0]!),
        { credentials: 'accepted', originProfile: 'appliance', deleteStatus: 204, server: 'appliance' },
      );
      const findings = (
        JSON.parse(String(good.stdout)) as { findings: { check: string; verdict: string; text: string }[] }
      ).findings;
      assert.match(
        findings.find((f) => f.check === 'upload')?.text ?? '',
        /: upload \d+\.\d Mb\/s for a 9\.13 Mb\/s ladder/,
        'the upload speed against the ladder',
      );
      assert.deepEqual(origin.store.paths(), [], 'the probe and the speed test were deleted');
      const refused = await startAppliance(
        process.execPath,
        ['check', '--no-cpu', '--output', `${origin.base}/live/live.mpd`],
        { env: { ...env, APPLIANCE_PUSH_TOKEN: 'wrong' } },
      );
      assert.equal(refused.exitCode, 1);
      assert.match(String(refused.stdout), /credentials refused/);
    } finally {
      await origin.close();
    }
  });

  it('stops with exit 2 and a credential error when the origin refuses the token', async () => {
    const origin = await startTestOrigin({ token: 'another-token' });
    try {
      const result = await appliance(['--duration', '20', '--output', `${origin.base}/live/live.mpd`]);
      assert.equal(result.exitCode, 2);
      assert.match(String(result.stderr), /refused the credentials \(HTTP 403\) 3 times: check APPLIANCE_PUSH_TOKEN/);
      assert.ok(!String(result.stderr).includes(TOKEN), 'the token never reaches the log');
      assert.ok(origin.uploads.length <= 12, `${origin.uploads.length} requests: no retry storm`);
    } finally {
      await origin.close();
    }
  });
});
