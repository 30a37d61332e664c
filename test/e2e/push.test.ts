import assert from 'node:assert/strict';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { logLines } from '../helpers/run.ts';
import { quantile, recordPlaylistLag, startTestOrigin } from '../helpers/push-origin.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { chunkDelays, producedSegments, pushingAppliance, segmentUploads, TOKEN, TRACKS } from '../helpers/push-run.ts';

const scratch = scratchDirectories('push');
let lightProfile: string;
before(async () => {
  lightProfile = await writeLightProfile(await scratch(), { renditions: LIGHT_PAIR, tsb: 30 });
});
const appliance = (args: string[], profile = lightProfile) => pushingAppliance(args, profile);

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
});
