import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser } from 'playwright-core';
import { startAppliance, systemNode, waitForLogField } from '../helpers/run.ts';
import { CHROMIUM, CHROMIUM_ARGS, DASH_JS, SAMPLE, START_PLAYER, type PlayerSample } from '../helpers/player.ts';

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
