import assert from 'node:assert/strict';
import { mkdir } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import type { Browser } from 'playwright-core';
import { ROOT, startAppliance, systemNode, waitForLogField } from '../../helpers/run.ts';
import { launchChromium, waitForSegments } from '../../helpers/player.ts';

interface PreviewState {
  kind: string;
  stalls: number;
  errors: string[];
  latency: number;
  wallClock: number;
  levels: number[];
}

describe('the preview page of the built-in server', { timeout: 150_000 }, () => {
  it('plays the stream in dash.js and in hls.js and shows latency, renditions, audio levels and URLs', async () => {
    const appliance = startAppliance(await systemNode(), [
      'start',
      '--no-adapt',
      '--listen',
      '127.0.0.1:0',
      '--duration',
      '60',
    ]);
    let browser: Browser | undefined;
    try {
      const url = await waitForLogField(appliance, 'serving', 'url');
      assert.ok(url);
      const base = new URL(url).origin;
      await waitForSegments(`${base}/live_720p.m3u8`, 2);
      browser = await launchChromium();
      const shots = join(ROOT, 'test-output');
      await mkdir(shots, { recursive: true });
      for (const kind of ['dash.js', 'hls.js']) {
        const page = await browser.newPage({ viewport: { width: 1200, height: 1000 } });
        const failed: string[] = [];
        page.on(
          'response',
          (response) =>
            response.status() >= 400 && failed.push(`${response.status()} ${new URL(response.url()).pathname}`),
        );
        await page.goto(`${base}/?player=${kind}`);
        // The page has measured a latency and both audio levels (the line-up tone), once the player settled
        // (live: under 6 s, as players are held to; with a busy loop on each core beside the default
        // ladder and Chromium it stayed over 3 s for 45 s).
        // The state is the one that met the condition: a meter reads a 43 ms window, and Chromium's audio
        // renderer on a loaded machine hands the analysers silence now and then while the media is whole.
        const settled = await page.waitForFunction(
          `(() => {
            const preview = window.preview;
            const ok = Boolean(preview && preview.latency > 0 && preview.latency < 6 && preview.levels.length === 2 &&
              preview.levels.every((level) => level > -24 && level < -12));
            return ok && JSON.parse(JSON.stringify(preview));
          })()`,
          undefined,
          { timeout: 45_000, polling: 250 },
        );
        const state = (await settled.jsonValue()) as PreviewState;
        const shot = join(shots, `preview-${kind}.png`);
        await page.screenshot({ path: shot });
        process.stderr.write(
          `# preview page with ${kind}: latency ${state.latency.toFixed(2)} s, levels ${state.levels.map((l) => l.toFixed(1)).join('/')} dBFS, screenshot ${shot}\n`,
        );
        assert.equal(state.kind, kind);
        assert.deepEqual(state.errors, []);
        assert.deepEqual(failed, []);
        assert.equal(
          await page.locator(`input[value="${kind}"]`).isChecked(),
          true,
          'the selected player is shown as selected',
        );
        const shown = Number(await page.locator('#latency').textContent());
        assert.ok(shown > 0 && shown < 6, `the page shows the latency it measures: ${shown} s`);
        // The 1 kHz line-up tone at −18 dBFS, on both channels.
        for (const level of state.levels) assert.ok(level > -24 && level < -12, `audio level ${level.toFixed(1)} dBFS`);
        assert.equal(state.levels.length, 2);
        const rows = await page.locator('#renditions tr[data-id]').allTextContents();
        assert.equal(rows.length, 3);
        assert.match(rows[0]!, /1080p.*1920×1080.*6000 kb\/s.*avc1\.640028/);
        assert.match(rows[1]!, /720p.*1280×720.*3000 kb\/s/);
        assert.match(rows[2]!, /audio.*128 kb\/s.*mp4a\.40\.2/);
        assert.equal(await page.locator('#renditions tr.active').count(), 1, 'the rendition playing is marked');
        const urls = await page.locator('#urls code').allTextContents();
        assert.deepEqual(urls.slice(0, 2), [`${base}/live.mpd`, `${base}/live.m3u8`]);
        assert.ok(urls.includes(`${base}/live_720p.m3u8`) && urls.includes(`${base}/time`));
        await page.close();
      }
    } finally {
      await browser?.close();
      if (appliance.pid) process.kill(appliance.pid, 'SIGTERM');
      await appliance;
    }
  });
});
