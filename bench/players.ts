import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import type { Page } from 'playwright-core';
import { launchChromium, watchPlayer, type PlayerKind } from '../test/helpers/player.ts';
import { clockMillis } from '../test/helpers/ocr.ts';

export interface PlayerRun {
  kind: PlayerKind;
  medianLatencyS: number;
  medianWallClockLatencyS: number;
  /** Host clock at the screenshot − the burnt-in clock it shows, ms. */
  glassToGlassMs: number[];
  waits: number;
  waitingMs: number;
  seeks: number;
  gapJumps: number;
  droppedFrames: number;
  errors: number;
  failedRequests: number;
  advance: number;
  heights: number[];
}

const WIDTH = 1280;

/** Reads the burnt-in clock off a screenshot of the playing video (top left, drawn at 1080p coordinates). */
async function glassToGlass(page: Page): Promise<number | undefined> {
  const s = WIDTH / 1920;
  const before = Date.now();
  const png = await page.screenshot({
    clip: { x: Math.round(24 * s), y: Math.round(16 * s), width: Math.round(720 * s), height: Math.round(112 * s) },
  });
  const shotAt = (before + Date.now()) / 2;
  const dir = await mkdtemp(join(tmpdir(), 'appliance-g2g-'));
  try {
    await writeFile(join(dir, 'in.png'), png);
    await execa('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-i',
      join(dir, 'in.png'),
      '-vf',
      'scale=360:56,format=gray,negate',
      join(dir, 'out.png'),
    ]);
    const { stdout } = await execa('tesseract', [
      join(dir, 'out.png'),
      '-',
      '--psm',
      '7',
      '-c',
      'tessedit_char_whitelist=0123456789:.',
    ]);
    const shown = clockMillis(stdout.trim());
    if (shown === undefined) return undefined;
    const midnight = Math.floor(shotAt / 86_400_000) * 86_400_000;
    let delta = shotAt - (midnight + shown);
    if (delta > 43_200_000) delta -= 86_400_000; // the clock passed midnight between frame and screenshot
    return delta;
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * One appliance (ultra-ll, full ladder, built-in origin), then each player in turn for `seconds`,
 * in headless Chromium; glass-to-glass read from the burnt-in clock every 3 s.
 */
export async function playersRun(seconds: number): Promise<PlayerRun[]> {
  const appliance = execa(
    process.execPath,
    ['bin/appliance.js', 'start', '--listen', '127.0.0.1:0', '--duration', String(2 * seconds + 30)],
    { cwd: new URL('../', import.meta.url), reject: false, env: { ...process.env, MALLOC_ARENA_MAX: '2' } },
  );
  const browser = await launchChromium();
  try {
    let url: string | undefined;
    appliance.stderr!.on('data', (data: Buffer) => {
      url ??= /"url":"([^"]+)"[^\n]*"msg":"serving"/.exec(String(data))?.[1];
    });
    for (let i = 0; i < 100 && !url; i++) await sleep(100);
    if (!url) throw new Error('the appliance did not start serving');
    const base = new URL(url).origin;
    await sleep(3000);
    const runs: PlayerRun[] = [];
    for (const kind of ['dash.js', 'hls.js'] as const) {
      const glass: number[] = [];
      let second = 0;
      const report = await watchPlayer(browser, {
        kind,
        url: `${base}/live.${kind === 'dash.js' ? 'mpd' : 'm3u8'}`,
        seconds,
        maxHeight: 1080,
        width: WIDTH,
        onSecond: async (page) => {
          if (++second > 5 && second % 3 === 0) {
            const value = await glassToGlass(page).catch(() => undefined);
            if (value !== undefined && value > 0 && value < 10_000) glass.push(value);
          }
        },
      });
      runs.push({
        kind,
        medianLatencyS: report.medianLatency,
        medianWallClockLatencyS: report.medianWallClockLatency,
        glassToGlassMs: glass,
        waits: report.waits,
        waitingMs: Math.round(report.waitingMs),
        seeks: report.seeks,
        gapJumps: report.gapJumps,
        droppedFrames: report.droppedFrames,
        errors: report.errors.length,
        failedRequests: report.failedRequests.length,
        advance: report.advance,
        heights: [...new Set(report.samples.map((s) => s.height))],
      });
    }
    return runs;
  } finally {
    await browser.close();
    appliance.kill('SIGTERM');
    await appliance;
  }
}
