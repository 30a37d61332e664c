import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser } from 'playwright-core';
import { startAppliance, systemNode, waitForLogField } from '../helpers/run.ts';

// The package's "require" export is the UMD build, which defines window.dashjs.
const DASH_JS = createRequire(import.meta.url).resolve('dashjs');
/** Debian's Chromium, installed by .ci/run; never a downloaded browser. */
const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
// As root, without the network: no sandbox, and nothing that phones home.
const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];

/** Runs in the page (plain JavaScript): a muted video element and a dash.js player on the MPD. */
const START_PLAYER = `(mpd) => {
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  document.body.append(video);
  window.errors = [];
  window.stalls = 0;
  video.addEventListener('waiting', () => window.stalls++);
  const player = dashjs.MediaPlayer().create();
  player.on(dashjs.MediaPlayer.events.ERROR, (e) => window.errors.push(String(e.error && e.error.code) + ': ' + String(e.error && e.error.message)));
  player.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => window.errors.push('playback: ' + JSON.stringify(e)));
  player.initialize(video, mpd, true);
  window.player = player;
  window.video = video;
}`;
const SAMPLE = '({ at: Date.now(), currentTime: video.currentTime, readyState: video.readyState, latency: player.getCurrentLiveLatency() })';

interface PlayerSample {
  at: number;
  currentTime: number;
  readyState: number;
  latency: number;
}

describe('dash.js in headless Chromium', { timeout: 120_000 }, () => {
  it('plays the built-in server\'s LL-DASH stream for 20 s without error', async () => {
    const appliance = startAppliance(await systemNode(), ['start', '--listen', '127.0.0.1:0', '--duration', '60']);
    let browser: Browser | undefined;
    try {
      // The appliance logs the URL it serves once it listens.
      const url = await waitForLogField(appliance, 'serving', 'url');
      assert.ok(url, 'the appliance announced its stream URL');
      const base = new URL(url).origin;
      // Wait for the first segments, so the player starts on a live edge that exists.
      await sleep(3000);
      const mpd = await (await fetch(url)).text();
      assert.match(mpd, new RegExp(`<UTCTiming schemeIdUri="urn:mpeg:dash:utc:http-iso:2014" value="${base}/time"/>`), 'players sync with the server\'s own clock');
      assert.equal((await fetch(`${base}/favicon.ico`)).status, 204);

      browser = await chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
      const page = await browser.newPage();
      const consoleErrors: string[] = [];
      page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
      const notFound: string[] = [];
      page.on('response', (response) => response.status() >= 400 && notFound.push(`${response.status()} ${new URL(response.url()).pathname}`));
      await page.goto(`${base}/`);
      await page.addScriptTag({ path: DASH_JS });
      await page.evaluate(`(${START_PLAYER})(${JSON.stringify(url)})`);

      const samples: PlayerSample[] = [];
      for (let i = 0; i < 20; i++) {
        await sleep(1000);
        samples.push((await page.evaluate(SAMPLE)) as PlayerSample);
      }
      const { errors, stalls } = (await page.evaluate('({ errors: window.errors, stalls: window.stalls })')) as { errors: string[]; stalls: number };
      assert.deepEqual(errors, [], 'no dash.js error');
      assert.deepEqual(notFound, [], 'no failed request');
      assert.deepEqual(consoleErrors, [], 'no error in the page');
      const playing = samples.filter((s) => s.currentTime > 0);
      assert.ok(playing.length >= 15, `playing for ${playing.length} of 20 s`);
      const advanced = playing.at(-1)!.currentTime - playing[0]!.currentTime;
      assert.ok(advanced >= (playing.at(-1)!.at - playing[0]!.at) / 1000 - 2, `media advanced ${advanced.toFixed(1)} s`);
      assert.ok(samples.at(-1)!.readyState >= 3, 'has data to play');
      const latencies = playing.slice(5).map((s) => s.latency).sort((a, b) => a - b);
      const median = latencies[Math.floor(latencies.length / 2)]!;
      assert.ok(median > 0 && median < 3, `live latency ${median.toFixed(2)} s`);
      process.stderr.write(`# dash.js: median latency ${median.toFixed(2)} s, ${stalls} stall events, failed requests: ${JSON.stringify(notFound)}\n`);
    } finally {
      await browser?.close();
      if (appliance.pid) process.kill(appliance.pid, 'SIGTERM');
      await appliance;
    }
  });
});
