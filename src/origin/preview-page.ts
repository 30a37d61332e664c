import { createRequire } from 'node:module';
import type { HlsAudioRendition, HlsVideoRendition } from '../packager/hls-playlist.ts';
import type { OutputFormats } from '../packager/hls-playlists.ts';

/** What the preview page shows beside the player. */
export interface PreviewInfo {
  base: string;
  /** Manifest names, relative to the base; undefined when the output does not carry that format. */
  mpd: string | undefined;
  multivariant: string | undefined;
  mediaPlaylists: string[];
  renditions: {
    id: string;
    kind: 'video' | 'audio';
    width?: number | undefined;
    height?: number | undefined;
    bitrate: number;
    codecs?: string | undefined;
  }[];
}

/** Pure: what the page shows, from the output's formats and the renditions (none until the inits are known). */
export function previewInfo(
  base: string,
  formats: OutputFormats,
  renditions: { video: HlsVideoRendition[]; audio: HlsAudioRendition | undefined } | undefined,
): PreviewInfo {
  const tracks = renditions
    ? [
        ...renditions.video.map((r) => ({ ...r, kind: 'video' as const })),
        ...(renditions.audio ? [{ ...renditions.audio, kind: 'audio' as const }] : []),
      ]
    : [];
  return {
    base,
    mpd: formats.dash ? formats.mpd : undefined,
    multivariant: formats.hls ? formats.multivariant : undefined,
    mediaPlaylists: formats.hls ? tracks.map((t) => formats.names.mediaPlaylist(t.id)) : [],
    renditions: tracks.map((t) => ({
      id: t.id,
      kind: t.kind,
      width: 'width' in t ? t.width : undefined,
      height: 'height' in t ? t.height : undefined,
      bitrate: t.bitrate,
      codecs: t.codecs,
    })),
  };
}

const require = createRequire(import.meta.url);

/** The players the page loads, served by the built-in server from the installed packages (no CDN). */
export const PLAYER_SCRIPTS: Record<string, string> = {
  '/player/dash.all.min.js': require.resolve('dashjs'),
  '/player/hls.min.js': require.resolve('hls.js/dist/hls.min.js'),
};

export const escapeHtml = (text: string) => text.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

/** Pure: the built-in server's page at `/`: the live stream in dash.js or hls.js, its latency, renditions, audio levels and URLs. */
export function previewPage(info: PreviewInfo): string {
  const urls = [
    ...(info.mpd ? [['LL-DASH manifest', `${info.base}/${info.mpd}`]] : []),
    ...(info.multivariant ? [['LL-HLS multivariant playlist', `${info.base}/${info.multivariant}`]] : []),
    ...info.mediaPlaylists.map((p) => [`media playlist ${p}`, `${info.base}/${p}`]),
    ['clock (UTCTiming, http-iso)', `${info.base}/time`],
  ];
  const rows = info.renditions
    .map(
      (r) =>
        `<tr data-id="${escapeHtml(r.id)}" data-height="${r.height ?? ''}"><td>${escapeHtml(r.id)}</td><td>${r.kind}</td><td>${r.width ? `${r.width}×${r.height}` : ''}</td><td>${(r.bitrate / 1000).toFixed(0)} kb/s</td><td>${escapeHtml(r.codecs ?? '')}</td><td class="playing"></td></tr>`,
    )
    .join('\n');
  const config = JSON.stringify({
    mpd: info.mpd && `${info.base}/${info.mpd}`,
    hls: info.multivariant && `${info.base}/${info.multivariant}`,
  });
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>appliance — live preview</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 1.5em; background: #111; color: #eee; }
a { color: #8cf; } table { border-collapse: collapse; } td, th { padding: .2em .8em; border-bottom: 1px solid #333; text-align: left; }
#main { display: flex; gap: 1.5em; align-items: flex-start; flex-wrap: wrap; }
video { width: 640px; height: 360px; background: #000; }
.figure { font-size: 28px; font-variant-numeric: tabular-nums; }
.meter { width: 24px; height: 200px; background: #222; position: relative; display: inline-block; margin-right: 6px; }
.meter div { position: absolute; bottom: 0; width: 100%; background: linear-gradient(to top, #2c2 70%, #dd2 85%, #d22); }
tr.active td { color: #6f6; font-weight: bold; }
#alarms { background: #611; color: #fff; padding: .4em .8em; border-left: 4px solid #f44; }
code { user-select: all; }
</style></head>
<body>
<h1>appliance — live preview</h1>
<p>Player: <label><input type="radio" name="player" value="dash.js"${info.mpd ? '' : ' disabled'}> dash.js</label>
<label><input type="radio" name="player" value="hls.js"${info.multivariant ? '' : ' disabled'}> hls.js</label>
<span id="state"></span></p>
<p id="alarms" hidden></p>
<div id="main">
  <video id="video" controls playsinline></video>
  <div>
    <div>Latency (as the player measures it)</div><div class="figure"><span id="latency">–</span> s</div>
    <div>Behind the wall clock</div><div class="figure"><span id="wallclock">–</span> s</div>
    <div>Stalls <span id="stalls">0</span> · dropped frames <span id="dropped">0</span></div>
    <div style="margin-top:1em">Audio level (peak dBFS) <span id="levels"></span></div>
    <div id="meters"><div class="meter"><div id="meter0"></div></div><div class="meter"><div id="meter1"></div></div></div>
    <button id="audio" type="button">Audio on</button>
  </div>
</div>
<h2>Renditions</h2>
<table id="renditions"><tr><th>id</th><th>type</th><th>size</th><th>bitrate</th><th>codecs</th><th>playing</th></tr>
${rows}
</table>
<h2>Stream URLs</h2>
<table id="urls">${urls.map(([what, url]) => `<tr><td>${escapeHtml(what!)}</td><td><code>${escapeHtml(url!)}</code></td><td><button type="button" data-copy="${escapeHtml(url!)}">copy</button></td></tr>`).join('\n')}</table>
<script>
const config = ${config};
const params = new URLSearchParams(location.search);
const kind = params.get('player') === 'hls.js' && config.hls ? 'hls.js' : config.mpd ? 'dash.js' : 'hls.js';
document.querySelector('input[value="' + kind + '"]').checked = true;
for (const input of document.querySelectorAll('input[name=player]')) input.addEventListener('change', () => { params.set('player', input.value); location.search = params; });
for (const button of document.querySelectorAll('[data-copy]')) button.addEventListener('click', () => navigator.clipboard.writeText(button.dataset.copy).then(() => (button.textContent = 'copied')));
const video = document.getElementById('video');
const page = window.preview = { kind, stalls: 0, errors: [], latency: NaN, wallClock: NaN, levels: [-Infinity, -Infinity] };
let started = false;
video.addEventListener('playing', () => { started = true; document.getElementById('state').textContent = 'playing'; });
video.addEventListener('waiting', () => { if (started) document.getElementById('stalls').textContent = ++page.stalls; });
function load(src) { return new Promise((resolve, reject) => { const s = document.createElement('script'); s.src = src; s.onload = resolve; s.onerror = reject; document.head.append(s); }); }
let latency = () => NaN, wallClock = () => NaN;
// Opened before the stream is ready (the multivariant playlist waits for every media playlist):
// wait for the manifest rather than hand the player a 404 it would give up on.
async function ready(url) {
  for (let i = 0; i < 600; i++) {
    const ok = await fetch(url, { cache: 'no-store' }).then((r) => r.ok, () => false);
    if (ok) return;
    document.getElementById('state').textContent = 'waiting for the stream';
    await new Promise((r) => setTimeout(r, 500));
  }
}
async function start() {
  await ready(kind === 'dash.js' ? config.mpd : config.hls);
  if (kind === 'dash.js') {
    await load('/player/dash.all.min.js');
    const player = dashjs.MediaPlayer().create();
    player.on(dashjs.MediaPlayer.events.ERROR, (e) => page.errors.push(String(e.error && e.error.message)));
    player.initialize(video, config.mpd, true);
    latency = wallClock = () => player.getCurrentLiveLatency();
  } else {
    await load('/player/hls.min.js');
    const hls = new Hls({ lowLatencyMode: true, maxLiveSyncPlaybackRate: 1.5 });
    hls.on(Hls.Events.ERROR, (_e, d) => { if (d.fatal) page.errors.push(d.details); });
    hls.loadSource(config.hls);
    hls.attachMedia(video);
    latency = () => hls.latency;
    wallClock = () => (hls.playingDate ? (Date.now() - hls.playingDate.getTime()) / 1000 : NaN);
  }
  video.muted = true;
  video.play().catch(() => undefined);
}
// Levels: the element's audio goes through WebAudio (analysers per channel, then a gain for listening).
let analysers = [], gain;
function audioGraph(context = new AudioContext()) {
  if (gain) return;
  const source = context.createMediaElementSource(video);
  const splitter = context.createChannelSplitter(2);
  source.connect(splitter);
  analysers = [0, 1].map((channel) => { const a = context.createAnalyser(); a.fftSize = 2048; splitter.connect(a, channel); return a; });
  gain = context.createGain();
  gain.gain.value = 0;
  source.connect(gain).connect(context.destination);
  video.muted = false;
  context.resume();
}
document.getElementById('audio').addEventListener('click', (event) => {
  audioGraph();
  gain.gain.value = gain.gain.value ? 0 : 1;
  event.target.textContent = gain.gain.value ? 'Audio off' : 'Audio on';
});
// Metering needs no user gesture where the browser allows unmuted playback; otherwise it starts with "Audio on".
video.addEventListener('playing', () => {
  const context = new AudioContext();
  if (context.state === 'running') audioGraph(context); else context.close();
}, { once: true });
const samples = new Float32Array(2048);
setInterval(() => {
  page.latency = latency();
  page.wallClock = wallClock();
  document.getElementById('latency').textContent = Number.isFinite(page.latency) ? page.latency.toFixed(2) : '–';
  document.getElementById('wallclock').textContent = Number.isFinite(page.wallClock) ? page.wallClock.toFixed(2) : '–';
  const quality = video.getVideoPlaybackQuality && video.getVideoPlaybackQuality();
  if (quality) document.getElementById('dropped').textContent = quality.droppedVideoFrames;
  for (const row of document.querySelectorAll('#renditions tr[data-height]')) {
    const active = row.dataset.height !== '' && Number(row.dataset.height) === video.videoHeight;
    row.classList.toggle('active', active);
    row.querySelector('.playing').textContent = active ? '▶' : '';
  }
  page.levels = analysers.map((analyser, i) => {
    analyser.getFloatTimeDomainData(samples);
    let peak = 0;
    for (const s of samples) peak = Math.max(peak, Math.abs(s));
    const db = 20 * Math.log10(peak);
    document.getElementById('meter' + i).style.height = Math.max(0, Math.min(100, (db + 60) / 60 * 100)) + '%';
    return db;
  });
  document.getElementById('levels').textContent = page.levels.map((db) => Number.isFinite(db) ? db.toFixed(1) : '−∞').join(' / ');
}, 250);
// The run's alarms (silence, black, frozen picture, slow uplink), from the appliance's /status.
page.alarms = [];
setInterval(() => fetch('/status').then((r) => (r.ok ? r.json() : undefined)).then((status) => {
  if (!status) return;
  page.alarms = status.alarms.map((a) => a.name);
  const box = document.getElementById('alarms');
  box.hidden = !status.alarms.length;
  box.textContent = status.alarms.map((a) => 'ALARM ' + a.name + ': ' + a.detail + ' (since ' + a.since.slice(11, 19) + ')').join(' · ');
}).catch(() => undefined), 1000);
start().catch((error) => page.errors.push(String(error)));
</script>
</body></html>
`;
}
