import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { EncoderProgress } from '../encode/progress.ts';
import type { PushEvent } from '../push/push-types.ts';
import { PushStats } from '../push/push-stats.ts';
import type { RecentValues } from '../stats.ts';
import type { HostFigures } from './host-sampler.ts';

// Every figure an operator watches from afar, kept in one place: the Prometheus registry that
// /metrics renders, and the plain figures /status, the terminal's status line and systemd's
// STATUS= are made of. Updated from the run's callbacks (cheap increments); nothing here does I/O.

/** Goodput is acknowledged bytes over this window. */
const GOODPUT_WINDOW_MS = 10_000;

export type AlarmName = 'silence' | 'black' | 'freeze' | 'uplink' | 'encoder-behind';
export const ALARM_NAMES: readonly AlarmName[] = ['silence', 'black', 'freeze', 'uplink', 'encoder-behind'];

export interface OutputStatus {
  name: string;
  kind: 'push' | 'local';
  goodputBitsPerSecond: number | undefined;
  backlogBytes: number;
  /** Memory holding this output's media now, and the most it ever held: never above the budget. */
  heldBytes: number;
  peakHeldBytes: number;
  retries: number;
  dropped: number;
  shed: string[];
  failed: boolean;
}

export interface RunStatus {
  state: 'starting' | 'live' | 'slate' | 'ended';
  healthy: boolean;
  why: string;
  uptimeSeconds: number;
  profile: string;
  source: string;
  encoder:
    | {
        fps: number;
        speed: number | undefined;
        bitrateKbps: number | undefined;
        droppedFrames: number;
        duplicatedFrames: number;
        restarts: number;
      }
    | undefined;
  chunkDelayMs: Record<string, { p50: number; p95: number } | undefined>;
  avOffsetMs: number | undefined;
  clockOffsetMs: number | undefined;
  slateSeconds: number;
  outputs: OutputStatus[];
  alarms: { name: AlarmName; since: string; detail: string }[];
  /** The real-time level the encoder runs at (0: the profile as written) and what it gave up. */
  realtime: { level: number; change: string; latencyMarginMs: number };
  host: HostFigures | undefined;
  /** This process's memory (process.memoryUsage()): what a footprint check reads. */
  memory: {
    rssBytes: number;
    heapUsedBytes: number;
    heapTotalBytes: number;
    externalBytes: number;
    arrayBuffersBytes: number;
  };
}

/** A rolling sum of (time, bytes) pairs over a window. */
class RateWindow {
  readonly #entries: { at: number; bytes: number }[] = [];
  add(at: number, bytes: number): void {
    this.#entries.push({ at, bytes });
  }
  bitsPerSecond(now: number, windowMs: number, since: number): number | undefined {
    while (this.#entries.length && this.#entries[0]!.at < now - windowMs) this.#entries.shift();
    // Not a full window of evidence yet: a rate over a fraction of it would be noise.
    if (now - since < windowMs / 2) return undefined;
    const span = Math.min(windowMs, now - since);
    return (this.#entries.reduce((n, e) => n + e.bytes, 0) * 8 * 1000) / span;
  }
}

export class Telemetry {
  readonly registry = new Registry();
  readonly #startedAt: number;
  readonly #profile: string;
  readonly #source: string;
  /** Media (not slate) stops counting as flowing after this long without a chunk. */
  readonly #staleMs: number;
  readonly #chunks: Counter<'track' | 'output'>;
  readonly #bytes: Counter<'track' | 'output'>;
  readonly #acknowledged: Counter<'output'>;
  readonly #pushLatency: Histogram<'output'>;
  readonly #goodput: Gauge<'output'>;
  readonly #retries: Counter<'output'>;
  readonly #drops: Counter<'output' | 'reason'>;
  readonly #deletesGivenUp: Counter<'output'>;
  readonly #backlog: Gauge<'output'>;
  readonly #chunkDelay: Histogram<'track'>;
  readonly #fps: Gauge;
  readonly #speed: Gauge;
  readonly #droppedFrames: Counter;
  readonly #duplicatedFrames: Counter;
  readonly #restarts: Counter;
  readonly #avOffset: Gauge;
  readonly #clockOffset: Gauge;
  readonly #slateSeconds: Counter;
  readonly #slateActive: Gauge;
  readonly #alarm: Gauge<'alarm'>;
  readonly #alarmsRaised: Counter<'alarm'>;
  readonly #shed: Gauge<'output' | 'rendition'>;
  readonly #realtimeLevel: Gauge;
  readonly #latencyMargin: Gauge;
  #realtime = { level: 0, change: '', latencyMarginMs: 0 };
  readonly #host: { cpu: Gauge; memoryUsed: Gauge; memoryTotal: Gauge; temperature: Gauge; load1: Gauge };

  #lastMediaAt: number | undefined;
  #lastChunkAt: number | undefined;
  #slateSince: number | undefined;
  #slateMsBefore = 0;
  #ended = false;
  #progress: EncoderProgress | undefined;
  #lastDrops = { drop: 0, dup: 0 };
  #restartCount = 0;
  #avOffsetMs: number | undefined;
  #clockOffsetMs: number | undefined;
  #hostFigures: HostFigures | undefined;
  /** The run's chunk-delay windows (the log's), per track: /status reports the same figures. */
  readonly #delays: ReadonlyMap<string, RecentValues>;
  readonly #written = new Map<
    string,
    Map<
      string,
      {
        chunks: ReturnType<Counter<'track' | 'output'>['labels']>;
        bytes: ReturnType<Counter<'track' | 'output'>['labels']>;
      }
    >
  >();
  readonly #outputs = new Map<
    string,
    {
      kind: 'push' | 'local';
      since: number;
      acked: RateWindow;
      backlog: number;
      held: number;
      peakHeld: number;
      shed: Set<string>;
      failed: boolean;
    }
  >();
  /** Push events folded per origin for the `push` log line; /status takes its counts from it too. */
  readonly pushStats = new PushStats();
  readonly #alarms = new Map<AlarmName, { since: number; detail: string }>();

  constructor(options: {
    profile: string;
    source: string;
    segdur: number;
    chunkDelays?: ReadonlyMap<string, RecentValues>;
    now?: number;
  }) {
    this.#startedAt = options.now ?? Date.now();
    this.#delays = options.chunkDelays ?? new Map();
    this.#profile = options.profile;
    this.#source = options.source;
    this.#staleMs = Math.max(3000, 2 * options.segdur * 1000 + 1000);
    const registers = [this.registry];
    const counter = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Counter<L>({ name: `appliance_${name}`, help, labelNames, registers });
    const gauge = <L extends string>(name: string, help: string, labelNames: readonly L[] = []) =>
      new Gauge<L>({ name: `appliance_${name}`, help, labelNames, registers });
    this.#chunks = counter(
      'chunks_total',
      'CMAF chunks written to an output (a file, the built-in store, an upload body)',
      ['track', 'output'],
    );
    this.#bytes = counter('chunk_bytes_total', 'Bytes of the chunks written to an output', ['track', 'output']);
    this.#acknowledged = counter('acknowledged_bytes_total', 'Media bytes an origin acknowledged (2xx)', ['output']);
    this.#pushLatency = new Histogram({
      name: 'appliance_push_latency_seconds',
      help: "From a segment's last chunk to the origin's acknowledgement",
      labelNames: ['output'],
      buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
      registers,
    });
    this.#goodput = gauge(
      'goodput_bits_per_second',
      `Media acknowledged by an origin over the last ${GOODPUT_WINDOW_MS / 1000} s`,
      ['output'],
    );
    this.#retries = counter('push_retries_total', 'Requests to an origin re-sent after a failure', ['output']);
    this.#drops = counter('push_dropped_total', 'Segments given up for an origin, by reason', ['output', 'reason']);
    this.#deletesGivenUp = counter(
      'push_deletes_given_up_total',
      'Expired objects whose DELETE failed for good (they stay at the origin)',
      ['output'],
    );
    this.#backlog = gauge('push_backlog_bytes', "Media waiting for an origin's acknowledgement", ['output']);
    this.#chunkDelay = new Histogram({
      name: 'appliance_chunk_delay_seconds',
      help: "From the wall-clock end of a chunk's media to its last byte written",
      labelNames: ['track'],
      buckets: [0.05, 0.1, 0.15, 0.2, 0.3, 0.5, 0.75, 1, 1.5, 2, 5],
      registers,
    });
    this.#fps = gauge('encoder_fps', 'Frames per second ffmpeg reports');
    this.#speed = gauge('encoder_speed_ratio', "ffmpeg's speed: 1 is real time");
    this.#droppedFrames = counter('encoder_dropped_frames_total', 'Frames ffmpeg dropped to hold the frame rate');
    this.#duplicatedFrames = counter(
      'encoder_duplicated_frames_total',
      'Frames ffmpeg repeated to hold the frame rate',
    );
    this.#restarts = counter('encoder_restarts_total', 'Encoder runs after the first');
    this.#avOffset = gauge(
      'av_offset_seconds',
      "Audio minus video, by their chunks' wall-clock ends (positive: audio late)",
    );
    this.#clockOffset = gauge('clock_offset_seconds', 'The system clock minus the reference clock, measured at start');
    const telemetry = this;
    this.#slateSeconds = new Counter({
      name: 'appliance_slate_seconds_total',
      help: 'Time the slate stood in for the source',
      registers,
      collect: () => telemetry.#foldSlate(Date.now()),
    });
    this.#slateActive = gauge('slate_active', '1 while the slate stands in for the source');
    this.#alarm = gauge('alarm', '1 while an alarm is raised', ['alarm']);
    this.#alarmsRaised = counter('alarms_total', 'Alarms raised', ['alarm']);
    this.#shed = gauge('rendition_shed', '1 while a rendition is not sent to an output (its uplink is too slow)', [
      'output',
      'rendition',
    ]);
    this.#realtimeLevel = gauge(
      'realtime_level',
      'The real-time step the encoder runs at: 0 is the profile as written, each step gives up more',
    );
    this.#latencyMargin = gauge(
      'latency_margin_seconds',
      "Added to the manifests' latency promises while chunks come late (0: the profile's own)",
    );
    // Registered, and read only through its collect callback.
    new Gauge({
      name: 'appliance_source_media_age_seconds',
      help: 'Since the last chunk of source media (not slate); -1 before the first',
      registers,
      collect() {
        this.set(telemetry.#lastMediaAt === undefined ? -1 : (Date.now() - telemetry.#lastMediaAt) / 1000);
      },
    });
    this.#host = {
      cpu: gauge('host_cpu_load_ratio', "The host's CPU load, 0 to 1, all cores"),
      load1: gauge('host_load1', "The host's 1-minute load average"),
      memoryUsed: gauge('host_memory_used_bytes', 'Host memory in use (without caches)'),
      memoryTotal: gauge('host_memory_total_bytes', 'Host memory'),
      temperature: gauge('host_temperature_celsius', 'The hottest CPU sensor (absent without a sensor)'),
    };
    for (const name of ALARM_NAMES) this.#alarm.set({ alarm: name }, 0);
    // The event-loop delay histogram samples on a timer of this period: prom-client's default
    // (10 ms) woke the process a hundred times a second for a figure read every 15 s or so.
    collectDefaultMetrics({ register: this.registry, prefix: 'appliance_', eventLoopMonitoringPrecision: 250 });
  }

  /** A chunk left the packager (the source's media, or slate standing in for it). */
  chunkProduced(slate: boolean, now = Date.now()): void {
    this.#lastChunkAt = now;
    if (!slate) this.#lastMediaAt = now;
  }

  /** A chunk written to an output. */
  chunkWritten(output: string, track: string, bytes: number): void {
    // The labelled series are looked up once: prom-client hashes the labels on every inc() otherwise,
    // and this runs for every chunk of every output.
    let byTrack = this.#written.get(output);
    if (!byTrack) {
      byTrack = new Map();
      this.#written.set(output, byTrack);
    }
    let series = byTrack.get(track);
    if (!series) {
      series = { chunks: this.#chunks.labels({ track, output }), bytes: this.#bytes.labels({ track, output }) };
      byTrack.set(track, series);
    }
    series.chunks.inc();
    series.bytes.inc(bytes);
  }

  /** The chunk delay of the first output (one figure per track), for the histogram. */
  chunkDelay(track: string, ms: number): void {
    this.#chunkDelay.observe({ track }, ms / 1000);
  }

  output(name: string, kind: 'push' | 'local', now = Date.now()): void {
    if (!this.#outputs.has(name))
      this.#outputs.set(name, {
        kind,
        since: now,
        acked: new RateWindow(),
        backlog: 0,
        held: 0,
        peakHeld: 0,
        shed: new Set(),
        failed: false,
      });
  }

  push(event: PushEvent, now = Date.now()): void {
    this.pushStats.add(event);
    this.output(event.output, 'push', now);
    const figures = this.#outputs.get(event.output)!;
    if (event.type === 'chunk') this.chunkWritten(event.output, event.track, event.bytes);
    else if (event.type === 'backlog') {
      figures.backlog = event.bytes;
      figures.held = event.heldBytes ?? figures.held;
      figures.peakHeld = Math.max(figures.peakHeld, event.peakHeldBytes ?? 0);
      this.#backlog.set({ output: event.output }, event.bytes);
    } else if (event.type === 'retry') {
      this.#retries.inc({ output: event.output });
    } else if (event.type === 'dropped') {
      this.#drops.inc({ output: event.output, reason: event.reason });
    } else if (event.type === 'delete-given-up') {
      this.#deletesGivenUp.inc({ output: event.output });
    } else if (event.object !== 'manifest') {
      figures.acked.add(now, event.bytes);
      this.#acknowledged.inc({ output: event.output }, event.bytes);
      if (event.ackMs !== undefined) this.#pushLatency.observe({ output: event.output }, event.ackMs / 1000);
    }
  }

  /** Acknowledged bits per second over the window; undefined before half a window of evidence. */
  goodput(output: string, now = Date.now()): number | undefined {
    const figures = this.#outputs.get(output);
    if (figures?.kind !== 'push') return undefined;
    const rate = figures.acked.bitsPerSecond(now, GOODPUT_WINDOW_MS, figures.since);
    if (rate !== undefined) this.#goodput.set({ output }, rate);
    return rate;
  }

  backlog(output: string): number {
    return this.#outputs.get(output)?.backlog ?? 0;
  }

  outputFailed(output: string): void {
    const figures = this.#outputs.get(output);
    if (figures) figures.failed = true;
  }

  shed(output: string, rendition: string, shed: boolean): void {
    const figures = this.#outputs.get(output);
    if (!figures) return;
    if (shed) figures.shed.add(rendition);
    else figures.shed.delete(rendition);
    this.#shed.set({ output, rendition }, shed ? 1 : 0);
  }

  /** The encoder now runs at real-time `level`, which gave up `change` (nothing at level 0). */
  realtimeLevel(level: number, change: string): void {
    this.#realtime = { ...this.#realtime, level, change };
    this.#realtimeLevel.set(level);
  }

  latencyMargin(ms: number): void {
    this.#realtime = { ...this.#realtime, latencyMarginMs: ms };
    this.#latencyMargin.set(ms / 1000);
  }

  progress(p: EncoderProgress): void {
    // ffmpeg's counts start again with each run.
    const drop = Math.max(0, p.dropFrames - (p.dropFrames >= this.#lastDrops.drop ? this.#lastDrops.drop : 0));
    const dup = Math.max(0, p.dupFrames - (p.dupFrames >= this.#lastDrops.dup ? this.#lastDrops.dup : 0));
    this.#droppedFrames.inc(drop);
    this.#duplicatedFrames.inc(dup);
    this.#lastDrops = { drop: p.dropFrames, dup: p.dupFrames };
    this.#fps.set(p.fps);
    if (p.speed !== undefined) this.#speed.set(p.speed);
    this.#progress = p;
  }

  encoderRestarted(): void {
    this.#restartCount++;
    this.#restarts.inc();
    this.#lastDrops = { drop: 0, dup: 0 };
  }

  avOffset(ms: number): void {
    this.#avOffsetMs = ms;
    this.#avOffset.set(ms / 1000);
  }

  clockOffset(ms: number): void {
    this.#clockOffsetMs = ms;
    this.#clockOffset.set(ms / 1000);
  }

  slate(active: boolean, now = Date.now()): void {
    if (active && this.#slateSince === undefined) this.#slateSince = now;
    if (!active && this.#slateSince !== undefined) {
      this.#foldSlate(now);
      this.#slateSince = undefined;
    }
    this.#slateActive.set(active ? 1 : 0);
  }

  #foldSlate(now: number): void {
    if (this.#slateSince === undefined) return;
    this.#slateSeconds.inc((now - this.#slateSince) / 1000);
    this.#slateMsBefore += now - this.#slateSince;
    this.#slateSince = now;
  }

  alarm(name: AlarmName, raised: boolean, detail = '', now = Date.now()): void {
    if (raised && !this.#alarms.has(name)) {
      this.#alarms.set(name, { since: now, detail });
      this.#alarmsRaised.inc({ alarm: name });
    }
    if (!raised) this.#alarms.delete(name);
    this.#alarm.set({ alarm: name }, raised ? 1 : 0);
  }

  host(figures: HostFigures): void {
    this.#hostFigures = figures;
    this.#host.cpu.set(figures.cpuLoad);
    this.#host.load1.set(figures.load1);
    this.#host.memoryUsed.set(figures.memoryUsedBytes);
    this.#host.memoryTotal.set(figures.memoryTotalBytes);
    if (figures.temperatureCelsius !== undefined) this.#host.temperature.set(figures.temperatureCelsius);
  }

  ended(): void {
    this.#ended = true;
  }

  /** Chunks (source or slate) left the packager lately: the pipeline is alive (systemd's watchdog). */
  chunksFlowing(now = Date.now()): boolean {
    return this.#lastChunkAt !== undefined && now - this.#lastChunkAt < this.#staleMs;
  }

  /** Healthy while the source's media (not slate) flows to an output that has not failed for good. */
  health(now = Date.now()): { healthy: boolean; state: RunStatus['state']; why: string } {
    if (this.#ended) return { healthy: false, state: 'ended', why: 'the stream has ended' };
    const outputs = [...this.#outputs.values()];
    if (outputs.length && outputs.every((o) => o.failed))
      return { healthy: false, state: 'live', why: 'every output failed for good' };
    if (this.#lastMediaAt === undefined)
      return {
        healthy: false,
        state: this.#slateSince === undefined ? 'starting' : 'slate',
        why: 'no media from the source yet',
      };
    const age = now - this.#lastMediaAt;
    if (age >= this.#staleMs)
      return {
        healthy: false,
        state: this.#slateSince === undefined ? 'live' : 'slate',
        why: `no media from the source for ${(age / 1000).toFixed(1)} s${this.#slateSince === undefined ? '' : ' (slate on air)'}`,
      };
    return { healthy: true, state: 'live', why: 'media flows' };
  }

  status(now = Date.now()): RunStatus {
    const health = this.health(now);
    const p = this.#progress;
    return {
      state: health.state,
      healthy: health.healthy,
      why: health.why,
      uptimeSeconds: Math.round((now - this.#startedAt) / 1000),
      profile: this.#profile,
      source: this.#source,
      encoder: p && {
        fps: p.fps,
        speed: p.speed,
        bitrateKbps: p.bitrateKbps,
        droppedFrames: p.dropFrames,
        duplicatedFrames: p.dupFrames,
        restarts: this.#restartCount,
      },
      chunkDelayMs: Object.fromEntries(
        [...this.#delays].map(([track, d]) => {
          const summary = d.summary();
          return [track, summary && { p50: summary.p50, p95: summary.p95 }];
        }),
      ),
      avOffsetMs: this.#avOffsetMs,
      clockOffsetMs: this.#clockOffsetMs,
      slateSeconds:
        Math.round((this.#slateMsBefore + (this.#slateSince === undefined ? 0 : now - this.#slateSince)) / 100) / 10,
      outputs: [...this.#outputs].map(([name, o]) => ({
        name,
        kind: o.kind,
        goodputBitsPerSecond: this.goodput(name, now),
        backlogBytes: o.backlog,
        heldBytes: o.held,
        peakHeldBytes: o.peakHeld,
        ...this.pushStats.counts(name),
        shed: [...o.shed],
        failed: o.failed,
      })),
      alarms: [...this.#alarms].map(([name, a]) => ({
        name,
        since: new Date(a.since).toISOString(),
        detail: a.detail,
      })),
      realtime: this.#realtime,
      host: this.#hostFigures,
      memory: memoryFigures(),
    };
  }
}

function memoryFigures(): RunStatus['memory'] {
  const m = process.memoryUsage();
  return {
    rssBytes: m.rss,
    heapUsedBytes: m.heapUsed,
    heapTotalBytes: m.heapTotal,
    externalBytes: m.external,
    arrayBuffersBytes: m.arrayBuffers,
  };
}

/** Pure: one line saying how the run goes, for a terminal and systemd's STATUS=. */
export function statusLine(status: RunStatus): string {
  const parts: string[] = [status.state === 'live' && !status.healthy ? 'no media' : status.state];
  const e = status.encoder;
  if (e)
    parts.push(
      `${e.fps.toFixed(1)} fps`,
      ...(e.speed === undefined ? [] : [`speed ${e.speed.toFixed(2)}x`]),
      ...(e.bitrateKbps === undefined ? [] : [`${(e.bitrateKbps / 1000).toFixed(1)} Mb/s`]),
    );
  const delays = Object.values(status.chunkDelayMs).flatMap((d) => (d ? [d.p50] : []));
  if (delays.length) parts.push(`chunk delay ${Math.round(Math.max(...delays))} ms`);
  for (const o of status.outputs.filter((x) => x.kind === 'push')) {
    const state = o.failed
      ? 'failed'
      : o.shed.length
        ? `shed ${o.shed.join(',')}`
        : o.backlogBytes > 0 && o.retries
          ? 'retrying'
          : 'ok';
    parts.push(
      `origin ${state}${o.goodputBitsPerSecond !== undefined ? ` ${(o.goodputBitsPerSecond / 1e6).toFixed(1)} Mb/s` : ''}`,
    );
  }
  if (status.realtime.level > 0) parts.push(`real-time level ${status.realtime.level} (${status.realtime.change})`);
  if (status.alarms.length) parts.push(`ALARM ${status.alarms.map((a) => a.name).join(',')}`);
  return parts.join(' · ');
}
