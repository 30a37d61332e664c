// Push measured at the origin: our appliance, and FFmpeg's own dash muxer on the same source and
// ladder pushing to the same origin, side by side.
import { readFile } from 'node:fs/promises';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { startTestOrigin, quantile, type TestOrigin } from '../test/helpers/push-origin.ts';
import { sampleProcess, startLikeService, type ProcessSample } from './live.ts';

const TOKEN = 'bench-token';

export interface PushRun {
  /** Per track: chunk's last byte at the origin − its media's wall-clock end. */
  chunkDelayMs: Record<string, { p50: number; p95: number }>;
  /** Chunk's last byte at the origin − the chunk handed to the upload (ours only). */
  pushLatencyMs: { p50: number; p95: number; p99: number } | undefined;
  /** Between consecutive chunk completions of one segment, at the origin. */
  interArrivalMs: { p50: number; p95: number };
  chunksPerSegment: number;
  /** Share of one core: the Node process, and every process of the run (encoding included). */
  nodeCpuPercent: number | undefined;
  totalCpuPercent: number;
  nodePeakRssMiB: number | undefined;
  load1: number;
}

const children = async (pid: number): Promise<number[]> => {
  const text = await readFile(`/proc/${pid}/task/${pid}/children`, 'utf8').catch(() => '');
  return text.trim().split(/\s+/).filter(Boolean).map(Number);
};

/** Samples a process and its children every 500 ms until it exits. */
async function sample(
  child: ResultPromise,
): Promise<{ own: ProcessSample[]; all: { at: number; cpuSeconds: number }[] }> {
  const own: ProcessSample[] = [];
  const all: { at: number; cpuSeconds: number }[] = [];
  const kids = new Set<number>();
  while (child.exitCode === null && child.pid) {
    const self = await sampleProcess(child.pid);
    if (self) own.push(self);
    for (const kid of await children(child.pid)) kids.add(kid);
    const kidSamples = await Promise.all([...kids].map((k) => sampleProcess(k)));
    if (self)
      all.push({ at: self.at, cpuSeconds: self.cpuSeconds + kidSamples.reduce((n, s) => n + (s?.cpuSeconds ?? 0), 0) });
    await sleep(500);
  }
  return { own, all };
}

const share = (samples: { at: number; cpuSeconds: number }[]) => {
  const steady = samples.filter((s) => s.at - samples[0]!.at >= 5000);
  const first = steady[0]!;
  const last = steady.at(-1)!;
  return ((last.cpuSeconds - first.cpuSeconds) / ((last.at - first.at) / 1000)) * 100;
};

const round = (x: number) => Math.round(x * 10) / 10;

function originFigures(origin: TestOrigin, tracks: string[], offsetMs = 0) {
  const chunkDelayMs: Record<string, { p50: number; p95: number }> = {};
  const gaps: number[] = [];
  let chunks = 0;
  let segments = 0;
  for (const track of tracks) {
    const uploads = origin.uploads.filter((u) => u.path.includes(track) && u.chunks.length > 1);
    // The first and last segments may be partial (start, stop): the steady state is in between.
    const steady = uploads.slice(2, -1);
    const delays = steady.flatMap((u) => u.chunks.map((c) => c.at - (c.mediaEndMs + offsetMs)));
    chunkDelayMs[track] = { p50: round(quantile(delays, 0.5)), p95: round(quantile(delays, 0.95)) };
    for (const u of steady) gaps.push(...u.chunks.slice(1).map((c, i) => c.at - u.chunks[i]!.at));
    chunks += steady.reduce((n, u) => n + u.chunks.length, 0);
    segments += steady.length;
  }
  return {
    chunkDelayMs,
    interArrivalMs: { p50: round(quantile(gaps, 0.5)), p95: round(quantile(gaps, 0.95)) },
    chunksPerSegment: round(chunks / segments),
  };
}

/** The appliance (ultra-ll, test source) pushing to the project's origin in this process. */
export async function appliancePushRun(seconds: number): Promise<PushRun> {
  const origin = await startTestOrigin({ token: TOKEN });
  try {
    const child = startLikeService(seconds, ['--log-level', 'trace', '--output', `${origin.base}/live/live.mpd`], {
      APPLIANCE_PUSH_TOKEN: TOKEN,
    });
    const samples = await sample(child);
    const result = await child;
    if (result.exitCode !== 0)
      throw new Error(`appliance exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    const handedOver = new Map<string, number>();
    for (const line of String(result.stderr).split('\n')) {
      if (!line.includes('"msg":"chunk"')) continue;
      const l = JSON.parse(line) as { track: string; mediaEndMs: number; at: number };
      handedOver.set(`${l.track}:${l.mediaEndMs}`, l.at);
    }
    const latencies: number[] = [];
    for (const upload of origin.uploads) {
      const track = upload.path.split('/').slice(-2, -1)[0]!;
      for (const c of upload.chunks) {
        const at = handedOver.get(`${track}:${c.mediaEndMs}`);
        if (at !== undefined) latencies.push(c.at - at);
      }
    }
    return {
      ...originFigures(origin, ['1080p', '720p', 'audio']),
      pushLatencyMs: {
        p50: round(quantile(latencies, 0.5)),
        p95: round(quantile(latencies, 0.95)),
        p99: round(quantile(latencies, 0.99)),
      },
      nodeCpuPercent: round(share(samples.own)),
      totalCpuPercent: round(share(samples.all)),
      nodePeakRssMiB: round(Math.max(...samples.own.map((s) => s.peakRssMiB))),
      load1: loadavg()[0]!,
    };
  } finally {
    await origin.close();
  }
}

/**
 * FFmpeg's dash muxer in LL mode on the same source and ladder, PUTting chunked to the same
 * origin. Its media times start at 0, so the wall-clock instant of media time 0 is taken from its
 * own progress reports as the earliest (report time − out_time): the latest media it has written is
 * never ahead of what -re let it read, so that instant is at or after the true one, and ffmpeg's
 * chunk delay is measured generously (never more than it is).
 */
export async function ffmpegDashRun(seconds: number): Promise<PushRun> {
  const origin = await startTestOrigin({ token: TOKEN });
  try {
    const child = execa(
      'ffmpeg',
      [
        '-hide_banner',
        '-loglevel',
        'error',
        '-re',
        '-f',
        'lavfi',
        '-i',
        'testsrc2=size=1920x1080:rate=30',
        '-f',
        'lavfi',
        '-i',
        'sine=frequency=1000:sample_rate=48000',
        '-progress',
        'pipe:1',
        '-t',
        String(seconds),
        '-map',
        '0:v',
        '-map',
        '0:v',
        '-map',
        '1:a',
        '-c:v',
        'libx264',
        '-preset',
        'veryfast',
        '-tune',
        'zerolatency',
        '-pix_fmt',
        'yuv420p',
        '-g',
        '30',
        '-keyint_min',
        '30',
        '-sc_threshold',
        '0',
        '-b:v:0',
        '6M',
        '-maxrate:v:0',
        '6M',
        '-bufsize:v:0',
        '6M',
        '-filter:v:1',
        'scale=1280:720',
        '-b:v:1',
        '3M',
        '-maxrate:v:1',
        '3M',
        '-bufsize:v:1',
        '3M',
        '-c:a',
        'aac',
        '-b:a',
        '128k',
        '-ac',
        '2',
        '-f',
        'dash',
        '-ldash',
        '1',
        '-streaming',
        '1',
        '-seg_duration',
        '1',
        '-frag_type',
        'duration',
        '-frag_duration',
        '0.1',
        '-use_template',
        '1',
        '-use_timeline',
        '0',
        '-window_size',
        '30',
        '-remove_at_exit',
        '0',
        '-method',
        'PUT',
        '-http_persistent',
        '1',
        '-headers',
        `Authorization: Bearer ${TOKEN}\r\n`,
        `${origin.base}/ff/live.mpd`,
      ],
      { reject: false, timeout: (seconds + 30) * 1000 },
    );
    let mediaZero = Infinity;
    child.stdout!.on('data', (text: Buffer) => {
      const at = performance.timeOrigin + performance.now();
      for (const match of text.toString().matchAll(/out_time_us=(\d+)/g))
        mediaZero = Math.min(mediaZero, at - Number(match[1]) / 1000);
    });
    const samples = await sample(child);
    const result = await child;
    if (result.exitCode !== 0)
      throw new Error(`ffmpeg dash exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    return {
      ...originFigures(origin, ['stream0', 'stream1', 'stream2'], mediaZero),
      pushLatencyMs: undefined,
      nodeCpuPercent: undefined,
      totalCpuPercent: round(share(samples.all)),
      nodePeakRssMiB: undefined,
      load1: loadavg()[0]!,
    };
  } finally {
    await origin.close();
  }
}
