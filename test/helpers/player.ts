import { createRequire } from 'node:module';
import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type Browser, type Page } from 'playwright-core';

const require = createRequire(import.meta.url);
// The packages' "require" exports are the UMD builds, which define window.dashjs and window.Hls.
export const DASH_JS = require.resolve('dashjs');
export const HLS_JS = require.resolve('hls.js');
/** Debian's Chromium, installed by .ci/run; never a downloaded browser. */
export const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
// As root, without the network: no sandbox, and nothing that phones home.
export const CHROMIUM_ARGS = [
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--autoplay-policy=no-user-gesture-required',
];

export type PlayerKind = 'dash.js' | 'hls.js';

/**
 * Runs in the page (plain JavaScript): a muted 640×360 video element, the player, and counters of
 * everything that spoils live playback — not only errors: time spent waiting, seeks, gap jumps.
 * `maxHeight` caps the renditions the player picks (720p in CI: one player on 2 cores).
 */
export const START_PLAYER = `({ kind, url, maxHeight, width }) => {
  const video = document.createElement('video');
  video.muted = true;
  video.autoplay = true;
  video.width = width;
  video.height = width * 9 / 16;
  // Fixed at the top left, over whatever the page shows: a screenshot there is the picture.
  video.style.cssText = 'position: fixed; left: 0; top: 0; background: #000';
  document.body.append(video);
  const m = window.metrics = { errors: [], warnings: [], waitingMs: 0, waitingSince: undefined, waits: 0, stalls: [], seeks: 0, gapJumps: 0, started: false };
  video.addEventListener('playing', () => {
    m.started = true;
    if (m.waitingSince !== undefined) {
      m.waitingMs += performance.now() - m.waitingSince;
      m.stalls.push({ at: performance.timeOrigin + m.waitingSince, ms: performance.now() - m.waitingSince });
    }
    m.waitingSince = undefined;
  });
  video.addEventListener('waiting', () => {
    if (!m.started) return; // the start-up buffering is no stall
    m.waits++;
    m.waitingSince ??= performance.now();
  });
  video.addEventListener('seeking', () => { if (m.started) m.seeks++; });
  window.video = video;
  if (kind === 'dash.js') {
    const player = dashjs.MediaPlayer().create();
    player.updateSettings({ streaming: { abr: { maxBitrate: { video: maxHeight <= 720 ? 4000 : -1 } } } });
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => m.errors.push(String(e.error && e.error.code) + ': ' + String(e.error && e.error.message)));
    player.on(dashjs.MediaPlayer.events.PLAYBACK_ERROR, (e) => m.errors.push('playback: ' + JSON.stringify(e)));
    if (dashjs.MediaPlayer.events.GAP_CAUSED_INTERNAL_SEEK) player.on(dashjs.MediaPlayer.events.GAP_CAUSED_INTERNAL_SEEK, () => m.gapJumps++);
    player.initialize(video, url, true);
    window.latency = () => player.getCurrentLiveLatency();
    window.wallClockLatency = () => player.getCurrentLiveLatency();
    window.player = player;
  } else {
    const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5, capLevelToPlayerSize: maxHeight <= 720, backBufferLength: 10 });
    hls.on(Hls.Events.ERROR, (_e, data) => {
      // Never throws (a listener's exception would become hls.js's own error): a hint has no URL yet.
      const piece = data.part || data.frag;
      const where = piece && typeof piece.url === 'string' ? piece.url.split('?')[0].split('/').slice(-2).join('/') + (piece.byteRange && piece.byteRange.length ? '@' + piece.byteRange.join('-') : '') : '';
      const why = data.error && data.error.message ? ' (' + data.error.message + ')' : data.reason ? ' (' + data.reason + ')' : '';
      const what = data.type + ': ' + data.details + (data.response ? ' ' + data.response.code : '') + (where ? ' ' + where : '') + why;
      if (data.details === 'bufferSeekOverHole' || data.details === 'bufferNudgeOnStall') m.gapJumps++;
      if (data.fatal) m.errors.push(what); else m.warnings.push(what);
    });
    // The last fragments and parts buffered, per type: where a stuck player stopped, for a failure's message.
    m.trail = [];
    hls.on(Hls.Events.FRAG_BUFFERED, (_e, data) => {
      const f = data.part || data.frag;
      m.trail.push(Math.round(performance.timeOrigin + performance.now()) % 100000 + ' ' + data.frag.type + ' ' + data.frag.sn + (data.part ? '.' + data.part.index : '') + ' @' + Number(f.start).toFixed(2));
      if (m.trail.length > 40) m.trail.shift();
    });
    hls.loadSource(url);
    hls.attachMedia(video);
    window.latency = () => hls.latency;
    window.wallClockLatency = () => (hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : NaN);
    window.player = hls;
  }
}`;

export const SAMPLE = `({
  at: Date.now(),
  currentTime: video.currentTime,
  readyState: video.readyState,
  latency: window.latency(),
  wallClockLatency: window.wallClockLatency(),
  dropped: video.getVideoPlaybackQuality ? video.getVideoPlaybackQuality().droppedVideoFrames : 0,
  height: video.videoHeight,
  buffered: Array.from({ length: video.buffered.length }, (_, i) => [video.buffered.start(i), video.buffered.end(i)]),
})`;

export interface PlayerSample {
  at: number;
  currentTime: number;
  readyState: number;
  latency: number;
  wallClockLatency: number;
  dropped: number;
  height: number;
  /** The media element's buffered ranges (start, end in s): where a stall's cause shows. */
  buffered: [number, number][];
}

export interface PlayerReport {
  samples: PlayerSample[];
  errors: string[];
  warnings: string[];
  /** Requests answered with an error status, e.g. `404 /live/720p/12.m4s`. */
  failedRequests: string[];
  consoleErrors: string[];
  waitingMs: number;
  waits: number;
  /** Each stall after the start: when it began (ms since 1970, the page's clock) and how long it lasted (one still going on at the end included). */
  stalls: { at: number; ms: number }[];
  seeks: number;
  gapJumps: number;
  /** hls.js: the last 40 fragments and parts buffered (`ms-since-1970 mod 100000, type, sn.part @start`). */
  trail?: string[];
  /** Median of the player's own latency over the samples after the first `settle` seconds. */
  medianLatency: number;
  medianWallClockLatency: number;
  droppedFrames: number;
  /** Seconds of media played per second of wall clock over the watch. */
  advance: number;
}

const median = (values: number[]) => {
  const sorted = values.filter((v) => Number.isFinite(v)).sort((a, b) => a - b);
  return sorted.length ? sorted[Math.floor(sorted.length / 2)]! : NaN;
};

/**
 * Resolves once `url` answers 200 (at most `timeoutMs`): a stream's manifest exists once it names
 * something to play (the multivariant playlist waits for every media playlist), so a player started
 * after this never meets a 404 for want of patience, however slowly a busy machine starts.
 */
export async function waitForManifest(url: string, timeoutMs = 30_000): Promise<void> {
  let last = '';
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(100)) {
    const response = await fetch(url).catch((error: Error) => error);
    if (!(response instanceof Error)) {
      await response.body?.cancel();
      if (response.ok) return;
    }
    last = response instanceof Error ? response.message : `HTTP ${response.status}`;
  }
  throw new Error(`${url}: not there after ${timeoutMs} ms (${last})`);
}

/**
 * Resolves once the LL-HLS media playlist at `where` (a URL, or a file of a directory output)
 * lists `count` segments (at most `timeoutMs`): the stream has that much media behind its live
 * edge, however slowly a busy machine got there. What tests wait on instead of a fixed sleep.
 */
export async function waitForSegments(where: string, count: number, timeoutMs = 30_000): Promise<void> {
  const read = async () => {
    if (!/^https?:/.test(where)) return readFile(where, 'utf8').catch(() => '');
    const response = await fetch(where).catch(() => undefined);
    if (response?.ok) return response.text();
    await response?.body?.cancel();
    return '';
  };
  let listed = 0;
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(100)) {
    listed = (await read()).match(/^#EXTINF:/gm)?.length ?? 0;
    if (listed >= count) return;
  }
  throw new Error(`${where}: ${listed} segments listed after ${timeoutMs} ms, ${count} awaited`);
}

/** Opens a page (`pageUrl`, or the origin's /time), starts the player on `url` once it exists and watches it for `seconds`. */
export async function watchPlayer(
  browser: Browser,
  options: {
    kind: PlayerKind;
    pageUrl?: string;
    url: string;
    seconds: number;
    maxHeight?: number;
    width?: number;
    settle?: number;
    onSecond?: (page: Page) => Promise<void>;
  },
): Promise<PlayerReport> {
  const width = options.width ?? 640;
  const page = await browser.newPage({
    viewport: { width: Math.max(800, width), height: Math.max(600, Math.ceil((width * 9) / 16)) },
  });
  try {
    const consoleErrors: string[] = [];
    page.on('console', (message) => message.type() === 'error' && consoleErrors.push(message.text()));
    const failedRequests: string[] = [];
    page.on(
      'response',
      (response) =>
        response.status() >= 400 && failedRequests.push(`${response.status()} ${new URL(response.url()).pathname}`),
    );
    await waitForManifest(options.url);
    // The origin's clock by default: a page of that origin that starts no player of its own.
    await page.goto(options.pageUrl ?? new URL('/time', options.url).href);
    await page.addScriptTag({ path: options.kind === 'dash.js' ? DASH_JS : HLS_JS });
    await page.evaluate(
      `(${START_PLAYER})(${JSON.stringify({ kind: options.kind, url: options.url, maxHeight: options.maxHeight ?? 720, width })})`,
    );
    const samples: PlayerSample[] = [];
    for (let i = 0; i < options.seconds; i++) {
      await sleep(1000);
      samples.push((await page.evaluate(SAMPLE)) as PlayerSample);
      await options.onSecond?.(page);
    }
    // A stall still going on when the watch ends is a stall too, the longest of all perhaps.
    const metrics = (await page.evaluate(`(() => {
      const m = window.metrics;
      const ongoing = m.waitingSince === undefined ? [] : [{ at: performance.timeOrigin + m.waitingSince, ms: performance.now() - m.waitingSince }];
      return { ...m, stalls: [...m.stalls, ...ongoing], waitingMs: m.waitingMs + ongoing.reduce((sum, s) => sum + s.ms, 0) };
    })()`)) as Omit<PlayerReport, 'samples'>;
    const playing = samples.filter((s) => s.currentTime > 0);
    const settled = playing.slice(options.settle ?? 5);
    return {
      ...metrics,
      samples,
      failedRequests,
      consoleErrors,
      medianLatency: median(settled.map((s) => s.latency)),
      medianWallClockLatency: median(settled.map((s) => s.wallClockLatency)),
      droppedFrames: samples.at(-1)?.dropped ?? 0,
      advance:
        playing.length > 1
          ? (playing.at(-1)!.currentTime - playing[0]!.currentTime) / ((playing.at(-1)!.at - playing[0]!.at) / 1000)
          : 0,
    };
  } finally {
    await page.close();
  }
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({ executablePath: CHROMIUM, args: CHROMIUM_ARGS, headless: true });
}

/** One line for the test output: what the player did. */
export function describeReport(kind: PlayerKind, report: PlayerReport): string {
  return `# ${kind}: median latency ${report.medianLatency.toFixed(2)} s (wall clock ${report.medianWallClockLatency.toFixed(2)} s), advance ${report.advance.toFixed(3)}, waiting ${Math.round(report.waitingMs)} ms in ${report.waits} stalls, ${report.seeks} seeks, ${report.gapJumps} gap jumps, ${report.droppedFrames} dropped frames, warnings ${JSON.stringify(report.warnings.slice(0, 5))}, failed requests ${JSON.stringify(report.failedRequests.slice(0, 5))}\n`;
}

/** Where a player that did not advance stood, second by second (media time and buffered ranges), and what it buffered last. */
export function explainStuck(report: PlayerReport): string {
  const timeline = report.samples
    .map(
      (s) =>
        `${s.at % 100_000} t=${s.currentTime.toFixed(2)} [${s.buffered.map(([from, to]) => `${from.toFixed(2)}-${to.toFixed(2)}`).join(' ')}]`,
    )
    .join('; ');
  return `samples: ${timeline}${report.trail ? `; last buffered: ${report.trail.join(', ')}` : ''}`;
}

/**
 * A hole the player left in its own buffer, e.g. `17.89-18.00`: two buffered ranges at most
 * `maxSeconds` apart (a part or two of media), or undefined. hls.js (1.7) leaves one when a playlist
 * completing a segment arrives while that segment's second-to-last part is still being appended:
 * its fragment tracker, with 0.2 s of padding, then counts the segment whole and never loads the
 * last part (~0.1 s of audio), though the origin lists and serves it.
 */
export function ownBufferHole(report: PlayerReport, maxSeconds = 0.25): string | undefined {
  for (const { buffered: ranges } of report.samples) {
    for (let k = 1; k < ranges.length; k++) {
      const gap = ranges[k]![0] - ranges[k - 1]![1];
      if (gap > 0 && gap <= maxSeconds) return `${ranges[k - 1]![1].toFixed(2)}-${ranges[k]![0].toFixed(2)}`;
    }
  }
  return undefined;
}
