import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { logLines, startAppliance, waitForLogField } from '../helpers/run.ts';
import { quantile, startTestOrigin } from '../helpers/push-origin.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { chunkDelays, DEFAULT_TRACKS, env, producedSegments, pushingAppliance, TOKEN } from '../helpers/push-run.ts';
import { SLAB_BYTES } from '../../src/push/media-pool.ts';

const scratch = scratchDirectories('push');
let lightProfile: string;
before(async () => {
  lightProfile = await writeLightProfile(await scratch(), { renditions: LIGHT_PAIR, tsb: 30 });
});
const appliance = (args: string[], profile = lightProfile) => pushingAppliance(args, profile);

describe('push to an origin that reads slowly or refuses the credentials', { timeout: 240_000 }, () => {
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
      // The appliance's own accounting: what it held for the slow origin passed the budget by no
      // more than media being sent may take. Media being sent is never cut: when every slab left
      // holds some of it, its track's next chunk goes into one more slab; one per track
      // is allowed here (seen once: 88 KB over, on a machine whose encoder needed 1.5 times its
      // usual CPU).
      const peakHeld = Number(push['peakHeldBytes']);
      const slabsBeingSent = DEFAULT_TRACKS.length * SLAB_BYTES;
      assert.ok(
        peakHeld > budget / 2 && peakHeld <= budget + slabsBeingSent,
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
