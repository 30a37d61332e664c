import type { Profile } from '../config/schema.ts';
import type { DetectorEvent } from '../encode/detectors.ts';
import type { Logger, TerminalLog } from '../log.ts';
import { AlarmTracker, type AlarmChange } from './alarms.ts';
import { sampleHost } from './host-sampler.ts';
import { serveMetrics } from './metrics-server.ts';
import { NotifyPlan, SystemdNotifier } from './systemd-notify.ts';
import { statusLine, type Telemetry } from './telemetry.ts';
import { UplinkMonitor } from './uplink.ts';

// The run as an operator sees it from afar: metrics and health over HTTP, systemd's notify
// protocol, alarms, the uplink's shedding, and the terminal's status line. A thin shell around
// Telemetry, AlarmTracker, UplinkMonitor and NotifyPlan, which decide everything.

/** What the monitor needs of an output: its name, backlog, and (push outputs) shedding. */
export interface MonitoredOutput {
  readonly name: string;
  readonly backlogBytes?: number;
  shed?(track: string, on: boolean): bigint | undefined;
}

export interface RunMonitorOptions {
  profile: Profile;
  /** The tracks and their bitrates, top rendition first. */
  tracks: readonly { id: string; kind: 'video' | 'audio'; bitrate: number }[];
  outputs: readonly MonitoredOutput[];
  telemetry: Telemetry;
  logger: Logger;
  metrics: { host: string; port: number } | undefined;
  env?: NodeJS.ProcessEnv;
  terminal?: TerminalLog | undefined;
}

export class RunMonitor {
  readonly #options: RunMonitorOptions;
  readonly #logger: Logger;
  readonly #alarms: AlarmTracker;
  readonly #uplinks = new Map<string, UplinkMonitor>();
  readonly #slowOrigins = new Set<string>();
  readonly #notifier: SystemdNotifier;
  readonly #notify: NotifyPlan;
  readonly #timers: NodeJS.Timeout[] = [];
  #stopHost: (() => void) | undefined;
  #closeMetrics: (() => Promise<void>) | undefined;
  #ready = false;
  /** The one-line status, made once a second for the terminal and systemd's STATUS=. */
  #statusLine: string | undefined;
  metricsUrl: string | undefined;

  private constructor(options: RunMonitorOptions) {
    this.#options = options;
    this.#logger = options.logger.child({ component: 'monitor' });
    this.#alarms = new AlarmTracker(options.profile.alarms);
    const env = options.env ?? process.env;
    this.#notifier = new SystemdNotifier(env, options.logger);
    this.#notify = new NotifyPlan(env['WATCHDOG_USEC'] ? Number(env['WATCHDOG_USEC']) : undefined);
    const videos = options.tracks.filter((t) => t.kind === 'video');
    const ladder = options.tracks.reduce((n, t) => n + t.bitrate, 0);
    const uplink = options.profile.alarms.uplink;
    for (const output of options.outputs) {
      if (!output.shed) continue;
      this.#uplinks.set(
        output.name,
        new UplinkMonitor({
          segdur: options.profile.segdur,
          ladderBitsPerSecond: ladder,
          shedBitsPerSecond: ladder - (videos[0]?.bitrate ?? 0),
          shed: uplink.shed && videos.length > 1,
          graceSeconds: uplink.graceSeconds,
          restoreSeconds: uplink.restoreSeconds,
        }),
      );
    }
  }

  static async start(options: RunMonitorOptions): Promise<RunMonitor> {
    const monitor = new RunMonitor(options);
    if (options.metrics) {
      const served = await serveMetrics(options.telemetry, options.metrics.host, options.metrics.port);
      monitor.#closeMetrics = served.close;
      monitor.metricsUrl = served.url;
      options.logger.info(
        { metrics: `${served.url}/metrics`, health: `${served.url}/healthz`, status: `${served.url}/status` },
        'serving metrics',
      );
    }
    monitor.#stopHost = sampleHost((figures) => options.telemetry.host(figures));
    const every = (ms: number, run: () => void) => {
      const timer = setInterval(run, ms);
      timer.unref();
      monitor.#timers.push(timer);
    };
    every(1000, () => monitor.#eachSecond(Date.now()));
    if (monitor.#notifier.enabled) every(monitor.#notify.tickMs, () => monitor.#tellSystemd(Date.now()));
    return monitor;
  }

  /** The first init segment reached an output: systemd hears READY=1. */
  delivered(): void {
    if (this.#ready) return;
    this.#ready = true;
    this.#tellSystemd(Date.now());
  }

  onDetector(event: DetectorEvent): void {
    this.#logger.debug({ detector: event.kind, edge: event.edge, mediaSeconds: event.mediaSeconds }, 'detector');
    this.#applyAlarms(this.#alarms.onDetector(event, Date.now()));
  }

  /** A new encoder run: its detectors start afresh. */
  newRun(): void {
    this.#applyAlarms(this.#alarms.reset());
  }

  #applyAlarms(changes: readonly AlarmChange[]): void {
    for (const change of changes) {
      this.#options.telemetry.alarm(change.name, change.raised, change.detail);
      if (change.raised) this.#logger.warn({ alarm: change.name }, `alarm: ${change.detail}`);
      else this.#logger.info({ alarm: change.name }, `alarm cleared: ${change.detail}`);
    }
  }

  #eachSecond(now: number): void {
    this.#applyAlarms(this.#alarms.tick(now));
    const { telemetry } = this.#options;
    const top = this.#options.tracks.find((t) => t.kind === 'video')?.id;
    for (const output of this.#options.outputs) {
      const uplink = this.#uplinks.get(output.name);
      if (!uplink) continue;
      for (const action of uplink.update(now, output.backlogBytes ?? 0, telemetry.goodput(output.name, now))) {
        if (action.type === 'alarm') {
          if (action.raised) this.#slowOrigins.add(output.name);
          else this.#slowOrigins.delete(output.name);
          telemetry.alarm('uplink', this.#slowOrigins.size > 0, action.detail);
          if (action.raised) this.#logger.warn({ alarm: 'uplink', output: output.name }, `alarm: ${action.detail}`);
          else this.#logger.info({ alarm: 'uplink', output: output.name }, `alarm cleared: ${action.detail}`);
        } else if (top) {
          const shed = action.type === 'shed';
          const boundary = output.shed?.(top, shed);
          telemetry.shed(output.name, top, shed);
          const fields = { output: output.name, rendition: top, fromSegment: boundary?.toString() };
          if (shed)
            this.#logger.warn(
              fields,
              `the uplink is too slow for the ladder: ${top} is not sent to this origin from the next segment`,
            );
          else
            this.#logger.info(
              { ...fields, nextRestoreWaitSeconds: uplink.restoreSeconds },
              `the uplink kept up: ${top} is sent again from the next segment`,
            );
        }
      }
    }
    if (!this.#options.terminal && !this.#notifier.enabled) return;
    this.#statusLine = statusLine(telemetry.status(now));
    this.#options.terminal?.status(this.#statusLine);
  }

  #tellSystemd(now: number): void {
    if (!this.#notifier.enabled) return;
    const { telemetry } = this.#options;
    this.#notifier.send(
      this.#notify.next(now, {
        ready: this.#ready,
        flowing: telemetry.chunksFlowing(now),
        status: this.#currentStatusLine(telemetry, now),
      }),
    );
  }

  /** The status line, built once per change of what it says (reset when the status changes). */
  #currentStatusLine(telemetry: Telemetry, now: number): string {
    this.#statusLine ??= statusLine(telemetry.status(now));
    return this.#statusLine;
  }

  /** A stop was asked for: systemd hears STOPPING=1 while the current segment is finished. */
  stopping(): void {
    this.#notifier.send(['STOPPING=1', 'STATUS=stopping: finishing the current segment']);
  }

  async stop(): Promise<void> {
    for (const timer of this.#timers) clearInterval(timer);
    this.#stopHost?.();
    this.#options.terminal?.end();
    await this.#notifier.settled();
    await this.#closeMetrics?.();
  }
}
