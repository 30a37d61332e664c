import assert from 'node:assert/strict';
import { mkdtemp } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { XMLParser } from 'fast-xml-parser';
import type { Browser, Page } from 'playwright-core';
import { logLines, startAppliance, systemNode, waitForLogField } from '../helpers/run.ts';
import { describeReport, launchChromium, watchPlayer, type PlayerKind } from '../helpers/player.ts';

const children: { pid?: number | undefined; exitCode: number | null; then: PromiseLike<unknown>['then'] }[] = [];
let browser: Browser | undefined;
after(async () => {
  await browser?.close();
  for (const child of children) if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
  await Promise.allSettled(children);
});

/**
 * In the page, every 100 ms: whether the picture is the slate (the "signal lost" card is a flat
 * 0x1b1f24 away from its text; the test pattern never is at these three points).
 */
const WATCH_SLATE = `(() => {
  const canvas = document.createElement('canvas');
  canvas.width = 64; canvas.height = 36;
  const context = canvas.getContext('2d', { willReadFrequently: true });
  window.slateLog = [];
  setInterval(() => {
    if (!window.video || window.video.readyState < 2) return;
    context.drawImage(window.video, 0, 0, 64, 36);
    const flat = [[3, 33], [32, 34], [60, 33], [60, 3]].every(([x, y]) => {
      const [r, g, b] = context.getImageData(x, y, 1, 1).data;
      return Math.abs(r - 27) < 14 && Math.abs(g - 31) < 14 && Math.abs(b - 36) < 14;
    });
    window.slateLog.push([Date.now(), flat]);
  }, 100);
})()`;

/** The manifests as a player fetches them: still live, still well formed. */
async function assertManifestsLive(base: string) {
  const mpd = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' }).parse(await (await fetch(`${base}/live.mpd`)).text()) as { MPD: Record<string, any> };
  assert.equal(mpd.MPD['type'], 'dynamic');
  assert.ok(mpd.MPD['Period'], 'the MPD has its period');
  const playlist = await (await fetch(`${base}/live_720p.m3u8`)).text();
  assert.match(playlist, /^#EXTM3U\n/);
  assert.doesNotMatch(playlist, /#EXT-X-ENDLIST/);
  assert.match(playlist, /#EXTINF:/);
}

describe('continuity with real players', { timeout: 300_000 }, () => {
  for (const kind of ['dash.js', 'hls.js'] as PlayerKind[]) {
    it(`${kind}: ffmpeg killed with SIGKILL mid-run → slate within 2 segments, playing on, live picture again`, async () => {
      const stateDir = await mkdtemp(join(tmpdir(), 'appliance-state-'));
      const appliance = startAppliance(await systemNode(), ['start', '--listen', '127.0.0.1:0', '--duration', '60', '--state-dir', stateDir]);
      children.push(appliance);
      let log = '';
      appliance.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
      const url = await waitForLogField(appliance, 'serving', 'url');
      assert.ok(url);
      const base = new URL(url).origin;
      await sleep(2500);
      browser ??= await launchChromium();
      let killedAt = 0;
      let second = 0;
      const report = await watchPlayer(browser, {
        kind,
        url: `${base}/live.${kind === 'dash.js' ? 'mpd' : 'm3u8'}`,
        seconds: 24,
        onSecond: async (page: Page) => {
          second++;
          if (second === 1) await page.evaluate(WATCH_SLATE);
          if (second === 9) {
            const pid = logLines(log).filter((l) => l['msg'] === 'ffmpeg started' || l['msg'] === 'ffmpeg restarted').at(-1)?.['pid'];
            assert.equal(typeof pid, 'number');
            process.kill(pid as number, 'SIGKILL');
            killedAt = Date.now();
          }
          if (second > 9) await assertManifestsLive(base);
          if (second === 24) (globalThis as { slateLog?: unknown }).slateLog = await page.evaluate('window.slateLog');
        },
      });
      process.stderr.write(describeReport(kind, report));
      if (process.env.DEBUG_CONT) process.stderr.write(JSON.stringify({ killedAt, samples: report.samples.map((s) => [s.at - killedAt, s.currentTime.toFixed(2), s.latency?.toFixed(2), s.readyState]), warnings: report.warnings }) + "\n");
      const slateLog = (globalThis as { slateLog?: [number, boolean][] }).slateLog!;
      assert.deepEqual(report.errors, [], `no ${kind} error`);
      assert.deepEqual(report.consoleErrors, [], 'no error in the page');
      assert.ok(report.waitingMs < 1500, `${kind} waited ${Math.round(report.waitingMs)} ms in all`);
      const before = slateLog.filter(([at]) => at < killedAt);
      assert.ok(before.length > 20 && before.every(([, slate]) => !slate), 'the live picture before the kill');
      const firstSlate = slateLog.find(([at, slate]) => at >= killedAt && slate);
      assert.ok(firstSlate, 'the slate is shown');
      const latencyMs = report.medianWallClockLatency * 1000;
      const shownAfter = firstSlate[0] - killedAt - latencyMs;
      process.stderr.write(`# ${kind}: slate on screen ${Math.round(firstSlate[0] - killedAt)} ms after the kill (latency ${Math.round(latencyMs)} ms)\n`);
      assert.ok(shownAfter < 2000, `slate within 2 segments of the kill, in media time (${Math.round(shownAfter)} ms)`);
      const live = slateLog.filter(([at]) => at > firstSlate[0]).findIndex(([, slate]) => !slate);
      assert.ok(live >= 0, 'the live picture returns');
      assert.ok(slateLog.slice(-20).every(([, slate]) => !slate), 'and stays');
      const playing = report.samples.filter((s) => s.currentTime > 0);
      assert.ok(report.advance > 0.85, `${kind} kept playing (${report.advance.toFixed(2)}× real time)`);
      assert.ok(playing.length >= 20);
      const lines = logLines(log);
      assert.ok(lines.some((l) => l['msg'] === 'ffmpeg restarted'), 'the encoder was restarted');
      appliance.kill('SIGTERM');
      await appliance;
      assert.equal(appliance.exitCode, 0);
    });
  }
});
