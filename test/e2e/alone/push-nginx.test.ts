import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { logLines, startAppliance } from '../../helpers/run.ts';
import { describeReport, launchChromium, waitForSegments, watchPlayer } from '../../helpers/player.ts';
import { startTestOrigin } from '../../helpers/push-origin.ts';
import { LIGHT_PAIR, tracksOf, writeLightProfile } from '../../helpers/light-profile.ts';
import { freePort, runNginx } from '../../helpers/servers.ts';

// ultra-ll's timing on a light pair of renditions: delivery to nginx is under test, not the encode.
const TRACKS = tracksOf(LIGHT_PAIR);

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));

/** Debian's nginx as a WebDAV origin: PUT and DELETE, full paths created, a body limit for 1 s segments. */
async function startNginx(root: string) {
  const port = await freePort();
  const { nginx } = await runNginx(root, `    listen 127.0.0.1:${port};`);
  await writeFile(join(root, 'www', 'index.html'), '<!doctype html><title>nginx origin</title>');
  for (let i = 0; i < 50; i++) {
    if ((await fetch(`http://127.0.0.1:${port}/index.html`).catch(() => undefined))?.ok) break;
    await sleep(100);
  }
  return { nginx, base: `http://127.0.0.1:${port}`, www: join(root, 'www') };
}

describe('push to nginx WebDAV (--origin-profile generic)', { timeout: 180_000 }, () => {
  it('lands complete segments and manifests that dash.js plays from nginx, and deletes what left the window', async () => {
    const root = await mkdtemp(join(tmpdir(), 'appliance-nginx-'));
    dirs.push(root);
    const { nginx, base, www } = await startNginx(root);
    const check = await startAppliance(process.execPath, [
      'check',
      '--json',
      '--no-cpu',
      '--output',
      `${base}/live/live.mpd`,
    ]);
    assert.equal(check.exitCode, 0, String(check.stderr));
    const report = (JSON.parse(String(check.stdout)) as { origins: Record<string, unknown>[] }).origins[0]!;
    assert.equal(report['originProfile'], 'generic', 'appliance check tells nginx needs the generic profile');
    assert.equal(report['deleteStatus'], 204);
    // nginx has no clock endpoint for players: the project's origin lends its /time.
    const clock = await startTestOrigin();
    const produced = join(root, 'produced');
    const run = startAppliance(
      process.execPath,
      [
        'start',
        '--profile',
        await writeLightProfile(root, { renditions: LIGHT_PAIR }),
        '--duration',
        '40',
        '--tsb',
        '4',
        '--origin-profile',
        'generic',
        '--utc-timing',
        `${clock.base}/time`,
        '--output',
        join(produced, 'live.mpd'),
        '--output',
        `${base}/live/live.mpd`,
      ],
      { timeout: 90_000 },
    );
    let browser: Browser | undefined;
    try {
      await waitForSegments(`${base}/live/live_${TRACKS[0]}.m3u8`, 3);
      const mpd = await (await fetch(`${base}/live/live.mpd`)).text();
      assert.match(mpd, /<SegmentTimeline>/, 'a generic origin gets a timeline of acknowledged segments');
      assert.doesNotMatch(mpd, /availabilityTimeOffset/, 'and no early availability');
      assert.match(mpd, /minimumUpdatePeriod="PT1S"/);

      browser = await launchChromium();
      // Only acknowledged media is announced, so no player request may fail. Both players at once.
      const started = browser;
      const players = [
        ['dash.js', `${base}/live/live.mpd`],
        ['hls.js', `${base}/live/live.m3u8`],
      ] as const;
      const reports = await Promise.all(
        players.map(([kind, url]) =>
          watchPlayer(started, { kind, pageUrl: `${base}/index.html`, url, seconds: 13, settle: 3 }),
        ),
      );
      for (const [i, [kind]] of players.entries())
        process.stderr.write(describeReport(kind, reports[i]!).replace('# ', '# from nginx (generic): '));
      for (const [i, [kind]] of players.entries()) {
        const report = reports[i]!;
        assert.deepEqual(report.errors, [], `no ${kind} error`);
        assert.deepEqual(
          report.failedRequests,
          [],
          `${kind}: no failed request: only acknowledged segments are announced`,
        );
        const playing = report.samples.filter((s) => s.currentTime > 0);
        assert.ok(playing.length >= 8, `${kind}: playing for ${playing.length} of 13 s`);
        // It keeps playing (a player stuck on a missing segment advances ~0×); how smoothly, a few
        // seconds behind live from a generic origin, depends on the machine's load (0.79× seen with
        // one core busy): that figure is the players benchmark's.
        assert.ok(report.advance > 0.6, `${kind}: media advanced at ${report.advance.toFixed(2)}× real time`);
      }
      const playlist = await (await fetch(`${base}/live/live_${TRACKS[0]}.m3u8`)).text();
      assert.match(
        playlist,
        /#EXT-X-SERVER-CONTROL:PART-HOLD-BACK=[\d.]+,HOLD-BACK=[\d.]+\n/,
        'nginx honours no blocking reload: none is promised',
      );
      assert.doesNotMatch(playlist, /PRELOAD-HINT/);

      // A stop (SIGTERM) once the players are done: the summary is logged as at the planned end.
      run.kill('SIGTERM');
      const result = await run;
      assert.equal(result.exitCode, 0, String(result.stderr).slice(-2000));
      const push = logLines(String(result.stderr)).find((l) => l['msg'] === 'push')!;
      assert.deepEqual(push['dropped'], {});
      for (const track of TRACKS) {
        const atOrigin = (await readdir(join(www, 'live', track)))
          .filter((n) => n.endsWith('.m4s'))
          .map((n) => BigInt(n.split('.')[0]!))
          .sort((a, b) => (a < b ? -1 : 1));
        const here = (await readdir(join(produced, track))).filter((n) => n.endsWith('.m4s'));
        // Old segments were DELETEd: what nginx keeps is the window plus the RFC's grace, no more.
        assert.ok(atOrigin.length >= 8 && atOrigin.length <= 14, `${track}: nginx keeps ${atOrigin.length} segments`);
        for (const name of here.filter((n) => atOrigin.includes(BigInt(n.split('.')[0]!)))) {
          const hash = async (path: string) =>
            createHash('sha256')
              .update(await readFile(path))
              .digest('hex');
          assert.equal(
            await hash(join(www, 'live', track, name)),
            await hash(join(produced, track, name)),
            `${track}/${name}`,
          );
        }
      }
    } finally {
      await browser?.close();
      if (run.pid && run.exitCode === null) process.kill(run.pid, 'SIGTERM');
      await run;
      nginx.kill('SIGQUIT');
      await nginx;
      await clock.close();
    }
  });
});
