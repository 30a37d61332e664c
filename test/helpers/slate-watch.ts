import type { Browser, Page } from 'playwright-core';
import { watchPlayer, type PlayerKind, type PlayerReport } from './player.ts';

/**
 * In the page, every 100 ms: whether the picture is the slate (the "signal lost" card is a flat
 * 0x1b1f24 away from its text; the test pattern never is at these points).
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

/** [host time ms, slate on screen] every 100 ms. */
export type SlateLog = [number, boolean][];

export interface SlateFigures {
  /** Whether every picture before the kill was live. */
  liveBefore: boolean;
  /** Host time from the kill to the slate on screen, ms. */
  slateOnScreenMs: number | undefined;
  /** The same less the player's latency: where in media time the slate began, relative to the kill. */
  slateInMediaMs: number | undefined;
  /** How long the slate stayed on screen, ms. */
  slateShownMs: number | undefined;
  /** The last 2 s were the live picture. */
  liveAtEnd: boolean;
}

/** What a player showed around a kill at `killedAt`, from the page's slate log. Pure. */
export function slateFigures(log: SlateLog, killedAt: number, latencyMs: number): SlateFigures {
  const before = log.filter(([at]) => at < killedAt);
  const first = log.find(([at, slate]) => at >= killedAt && slate);
  const back = first && log.find(([at, slate]) => at > first[0] && !slate);
  return {
    liveBefore: before.length > 20 && before.every(([, slate]) => !slate),
    slateOnScreenMs: first && first[0] - killedAt,
    slateInMediaMs: first && first[0] - killedAt - latencyMs,
    slateShownMs: first && back && back[0] - first[0],
    liveAtEnd: log.length >= 20 && log.slice(-20).every(([, slate]) => !slate),
  };
}

export interface KillUnderPlayer {
  report: PlayerReport;
  killedAt: number;
  figures: SlateFigures;
}

export interface KillOptions {
  seconds: number;
  killAtSecond: number;
  kill: () => void;
  everySecondAfter?: () => Promise<void>;
}

/**
 * Plays every one of `players` at once, each in its own page, for `seconds`; the first of them to
 * reach `killAtSecond` calls `kill` (which SIGKILLs the encoder) for all; `everySecondAfter` runs
 * each later second of the first player (manifest checks). Reports what each player showed.
 */
export async function killUnderPlayers(
  browser: Browser,
  options: KillOptions & { players: { kind: PlayerKind; url: string }[] },
): Promise<(KillUnderPlayer & { kind: PlayerKind })[]> {
  let killedAt = 0;
  const watched = await Promise.all(
    options.players.map(async ({ kind, url }, index) => {
      let second = 0;
      let log: SlateLog = [];
      const report = await watchPlayer(browser, {
        kind,
        url,
        seconds: options.seconds,
        onSecond: async (page: Page) => {
          second++;
          if (second === 1) await page.evaluate(WATCH_SLATE);
          if (second === options.killAtSecond && !killedAt) {
            options.kill();
            killedAt = Date.now();
          }
          if (index === 0 && second > options.killAtSecond) await options.everySecondAfter?.();
          if (second === options.seconds) log = (await page.evaluate('window.slateLog')) as SlateLog;
        },
      });
      return { kind, report, log };
    }),
  );
  return watched.map(({ kind, report, log }) => ({
    kind,
    report,
    killedAt,
    figures: slateFigures(log, killedAt, report.medianWallClockLatency * 1000),
  }));
}

/** `killUnderPlayers` with one player. */
export async function killUnderPlayer(
  browser: Browser,
  options: KillOptions & { kind: PlayerKind; url: string },
): Promise<KillUnderPlayer> {
  const [only] = await killUnderPlayers(browser, { ...options, players: [{ kind: options.kind, url: options.url }] });
  return only!;
}
