import { createRequire } from 'node:module';

// The package's "require" export is the UMD build, which defines window.dashjs.
export const DASH_JS = createRequire(import.meta.url).resolve('dashjs');
/** Debian's Chromium, installed by .ci/run; never a downloaded browser. */
export const CHROMIUM = process.env['CHROMIUM'] ?? '/usr/bin/chromium';
// As root, without the network: no sandbox, and nothing that phones home.
export const CHROMIUM_ARGS = ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync', '--autoplay-policy=no-user-gesture-required'];

/** Runs in the page (plain JavaScript): a muted video element and a dash.js player on the MPD. */
export const START_PLAYER = `(mpd) => {
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
export const SAMPLE = '({ at: Date.now(), currentTime: video.currentTime, readyState: video.readyState, latency: player.getCurrentLiveLatency() })';

export interface PlayerSample {
  at: number;
  currentTime: number;
  readyState: number;
  latency: number;
}

