import {
  type CpuTimes,
  idleCpus,
  readCpuTimes,
  readSchedTimes,
  type SchedTimes,
  waitShare,
} from '../encode/cpu-wait.ts';
import type { EncoderProgress } from '../encode/progress.ts';
import { lateMsOf, levelCosts, type RealtimeLevel } from '../ladder/realtime-steps.ts';
import type { Logger } from '../log.ts';
import type { InitEvent } from '../packager/chunker.ts';
import type { RunShape } from '../packager/packager.ts';
import type { SlateClip } from '../packager/slate.ts';
import { RecentValues } from '../stats.ts';
import { type ProgressPoint, restartLeadAfter, speedBetween } from './encoder-readings.ts';
import { type RealtimeAction, RealtimeController } from './realtime-controller.ts';

// The real-time controller's shell: what it is fed (each chunk's lateness, the encoder's
// progress, ffmpeg's CPU wait), once a second, and how a step is carried out: the level's slate
// (encoded once per settings), its period announced ahead, the encoder restarted just before it.

/** A level's run: its tracks and frame rate, and how many of the tracks are video. */
export interface LevelShape extends RunShape {
  videoTracks: number;
}

/** What carrying out the controller's decisions takes from the run. */
export interface RealtimeRunHooks {
  /**
   * A level's slate clips, encoded for its settings (cached): their inits are the level's.
   * `background`: made ahead of need, at the lowest CPU priority.
   */
  slateFor(level: RealtimeLevel, background?: boolean): Promise<SlateClip[]>;
  /** The tracks and frame rate a level's encoder run makes. */
  shapeOf(level: RealtimeLevel): LevelShape;
  /** A period for the next run from `start` on, announced now. */
  announce(start: bigint, shape: RunShape, inits: ReadonlyMap<string, InitEvent>): void;
  /** Restarts the encoder now; its plan is the level `current` says. */
  restart(why: string): void;
  alarm(raised: boolean, detail: string): void;
  /** What the manifests add to their latency promises, in ms. */
  margin(ms: number): void;
  /** The level the encoder runs at changed (telemetry, /status). */
  levelChanged(level: number, change: string): void;
  encoderPid(): number | undefined;
}

export interface RealtimeRunOptions {
  levels: readonly RealtimeLevel[];
  hooks: RealtimeRunHooks;
  logger: Logger;
  now?: () => number;
}

/** A new period starts at least this long after it is announced, so DASH players reload the MPD first. */
const PERIOD_LEAD_MS = 3000;
/**
 * The encoder is restarted this long before the announced period: ffmpeg takes ~0.2 s here to
 * open its input and be ready for the period's first frame, also beside a busy loop (1.1 s before
 * the lavfi probe was cut); the slate covers the rest. A run that misses the period's first
 * boundary (its first frame a boundary later, a second more of slate) lengthens it by
 * 0.25 s (see restartLeadAfter), up to `MAX_RESTART_LEAD_FRACTION` of a segment.
 */
const RESTART_LEAD_MS = 500;
const MAX_RESTART_LEAD_FRACTION = 0.8;
/** The background slates wait at most this long for the encoder to be clear. */
const MAX_SLATE_DEFER_SECONDS = 600;

export class RealtimeRun {
  readonly #levels: readonly RealtimeLevel[];
  readonly #hooks: RealtimeRunHooks;
  readonly #logger: Logger;
  readonly #now: () => number;
  readonly #controller: RealtimeController;
  readonly #segmentMs: number;
  #applied = 0;
  /** This second's chunk lateness (ms), source chunks only. */
  #lateness = new RecentValues(1000);
  /** When the newest source chunk's media ended (ms since 1970), this encoder run; undefined before its first. */
  #lastMediaEnd: number | undefined;
  readonly #chunkMs: number;
  #droppedTotal: number | undefined;
  #droppedThisSecond = 0;
  #progressAt: ProgressPoint | undefined;
  readonly #videoTracks = new Map<number, number>();
  /** How long before its Period an encoder is restarted (ms; see RESTART_LEAD_MS). */
  #restartLeadMs: number;
  /** The period a restarted run is to start, until its first chunk says whether it did (ms since 1970). */
  #periodStartMs: number | undefined;
  #speed: number | undefined;
  #sched: SchedTimes | undefined;
  #cpus: { times: CpuTimes; at: number } | undefined;
  #cpuWait: number | undefined;
  #switching: Promise<void> | undefined;
  #wanted: number | undefined;
  /** What the manifests add to their latency promises now (ms): how late players already expect media. */
  #marginMs = 0;
  readonly #timers = new Set<NodeJS.Timeout>();
  /** Ends the wait of a pending switch when the run stops. */
  #wake: (() => void) | undefined;
  #stopped = false;

  constructor(options: RealtimeRunOptions) {
    this.#levels = options.levels;
    this.#hooks = options.hooks;
    this.#logger = options.logger.child({ component: 'realtime' });
    this.#now = options.now ?? Date.now;
    const profile = options.levels[0]!.profile;
    this.#segmentMs = profile.segdur * 1000;
    this.#chunkMs = profile.cdur * 1000;
    this.#restartLeadMs = Math.min(RESTART_LEAD_MS, MAX_RESTART_LEAD_FRACTION * this.#segmentMs);
    this.#controller = new RealtimeController({
      segdur: profile.segdur,
      steps: options.levels.length - 1,
      lateMs: lateMsOf(profile),
      graceSeconds: profile.realtime.graceSeconds,
      holdSegments: profile.realtime.holdSegments,
      restoreSeconds: profile.realtime.restoreSeconds,
      costs: levelCosts(options.levels),
      frameMs: options.levels.map((l) => 1000 / l.profile.video.framerate),
    });
  }

  /** The level the next encoder run is made at. */
  get current(): RealtimeLevel {
    return this.#levels[this.#applied]!;
  }

  get level(): number {
    return this.#applied;
  }

  /**
   * Each second's decision, and the levels' slates encoded ahead: one at a time, once the live
   * encoder has had `slatesAfterMs` to settle (on a small box it needs the CPU more at its start).
   */
  start(slatesAfterMs = 10_000): void {
    const timer = setInterval(
      () =>
        void this.#second().catch((error: Error) =>
          this.#logger.error({ err: error.message }, 'the real-time controller failed this second'),
        ),
      1000,
    );
    timer.unref();
    this.#timers.add(timer);
    const slates = setTimeout(() => {
      this.#timers.delete(slates);
      void (async () => {
        for (const level of this.#levels.slice(1)) {
          // Not while the encoder is behind: on a box short of CPU a slate's encode takes from the
          // live one (a second 1.5 s late, and a needless step, seen); a likely step's is prepared.
          for (let waited = 0; this.#controller.behind && !this.#stopped && waited < MAX_SLATE_DEFER_SECONDS; waited++)
            await new Promise((resolve) => setTimeout(resolve, 1000).unref());
          if (this.#stopped) return;
          await this.#hooks
            .slateFor(level, true)
            .catch((error: Error) =>
              this.#logger.warn({ err: error.message, level: level.change }, 'no slate for this level yet'),
            );
        }
      })();
    }, slatesAfterMs);
    slates.unref();
    this.#timers.add(slates);
  }

  stop(): void {
    this.#stopped = true;
    for (const timer of this.#timers) clearTimeout(timer);
    this.#timers.clear();
    this.#wake?.();
  }

  /** A source chunk handed over `lateMs` after the end of its media. */
  chunk(lateMs: number, video = true): void {
    this.#lateness.add(lateMs);
    const mediaEnd = this.#now() - lateMs;
    // Audio starts with the run (silence before its first sample); video waits for a boundary.
    if (video) this.#checkRestartLead(mediaEnd);
    if (this.#lastMediaEnd === undefined || mediaEnd > this.#lastMediaEnd) this.#lastMediaEnd = mediaEnd;
  }

  progress(p: EncoderProgress): void {
    const now = this.#now();
    const dropped = p.dupFrames + p.dropFrames;
    if (this.#droppedTotal !== undefined && dropped > this.#droppedTotal)
      this.#droppedThisSecond += dropped - this.#droppedTotal;
    this.#droppedTotal = dropped;
    if (p.outTimeUs === undefined) return;
    const point = { at: now, outUs: p.outTimeUs, frame: p.frame, dup: p.dupFrames };
    const before = this.#progressAt;
    if (before && now - before.at >= 400)
      this.#speed = speedBetween(before, point, {
        framerate: this.current.profile.video.framerate,
        tracks: this.#videoTracksOf(this.#applied),
      });
    if (!before || now - before.at >= 400) this.#progressAt = point;
  }

  /**
   * The first chunk of a run restarted for a period (`#periodStartMs`) tells whether it was ready
   * for the period's first frame: a chunk ending past the period's first chunk came a boundary late.
   */
  #checkRestartLead(mediaEnd: number): void {
    const periodStart = this.#periodStartMs;
    // Chunks of the old run still in the pipes end before the period.
    if (periodStart === undefined || mediaEnd <= periodStart) return;
    this.#periodStartMs = undefined;
    const longer = restartLeadAfter(this.#restartLeadMs, {
      periodStartMs: periodStart,
      firstChunkEndMs: mediaEnd,
      chunkMs: this.#chunkMs,
      maxMs: MAX_RESTART_LEAD_FRACTION * this.#segmentMs,
    });
    if (longer === this.#restartLeadMs) return;
    this.#logger.info(
      { leadMs: longer, firstMediaMs: Math.round(mediaEnd - this.#chunkMs - periodStart) },
      "the restarted encoder missed its period's first frame: restarting earlier from now on",
    );
    this.#restartLeadMs = longer;
  }

  /**
   * A new encoder run (the first, a step, a crash, a clock step): its start is not judged; its
   * counters start at 0. The process's `first` run has no restart or slate to leave out: more
   * than a segment late, by the encoder's own fault, it is judged at once. On a box short of CPU
   * every second of a full hold is backlog a step down then loses to slate (chunks 1.1 s late a
   * second after the first, 3.2 s by the end of the hold, with ffmpeg on a core a busy loop
   * shares), while a slow start that settles stays under half a second.
   */
  newRun(options: { first?: boolean } = {}): void {
    this.#controller.hold(this.#now(), options.first ? { endsPastMs: this.#segmentMs } : {});
    this.#droppedTotal = undefined;
    this.#progressAt = undefined;
    this.#speed = undefined;
    this.#sched = undefined;
    this.#lastMediaEnd = undefined;
  }

  #videoTracksOf(level: number): number {
    let tracks = this.#videoTracks.get(level);
    if (tracks === undefined) {
      tracks = this.#hooks.shapeOf(this.#levels[level]!).videoTracks;
      this.#videoTracks.set(level, tracks);
    }
    return tracks;
  }

  async #second(): Promise<void> {
    const pid = this.#hooks.encoderPid();
    const sched = pid === undefined ? undefined : readSchedTimes(pid);
    const cpus = pid === undefined ? undefined : await readCpuTimes(pid);
    const now = this.#now();
    this.#cpuWait = sched && this.#sched ? waitShare(this.#sched, sched) : undefined;
    const capacity = this.#capacity(sched, cpus, now);
    this.#sched = sched;
    this.#cpus = cpus && { times: cpus.times, at: now };
    // No chunk this second from a run that made some: the next one is already this late.
    const overdue = this.#lastMediaEnd === undefined ? undefined : now - this.#lastMediaEnd - this.#chunkMs;
    const lateness = this.#lateness.quantile(0.95) ?? (overdue !== undefined && overdue > 0 ? overdue : undefined);
    const sample = {
      now,
      latenessMs: lateness,
      speed: this.#speed,
      droppedFrames: this.#droppedThisSecond,
      cpuWait: this.#cpuWait,
      capacity,
    };
    // What each second was judged on, for an operator asking why a step was (not) taken.
    this.#logger.debug({ ...sample, now: undefined }, 'real-time second');
    const actions = this.#controller.update(sample);
    this.#lateness = new RecentValues(1000);
    this.#droppedThisSecond = 0;
    for (const action of actions) this.#apply(action);
  }

  /** What ffmpeg used over the last second plus what its CPUs left idle, over what it used. */
  #capacity(
    sched: SchedTimes | undefined,
    cpus: { times: CpuTimes; allowed: number[] } | undefined,
    now: number,
  ): number | undefined {
    if (!sched || !this.#sched || !cpus || !this.#cpus || now <= this.#cpus.at) return undefined;
    const used = (sched.runNs - this.#sched.runNs) / 1e6 / (now - this.#cpus.at);
    const idle = idleCpus(this.#cpus.times, cpus.times, cpus.allowed);
    // Too little used to scale from (a run starting, slate).
    return idle === undefined || used < 0.05 ? undefined : (used + idle) / used;
  }

  #apply(action: RealtimeAction): void {
    if (action.type === 'alarm') this.#hooks.alarm(action.raised, action.detail);
    else if (action.type === 'prepare')
      void this.#hooks
        .slateFor(this.#levels[action.level]!)
        .catch((error: Error) =>
          this.#logger.warn({ err: error.message, level: action.level }, 'no slate for this level yet'),
        );
    else if (action.type === 'margin') {
      this.#marginMs = action.ms;
      this.#logger.info({ marginMs: action.ms }, 'manifests: latency promises moved by the lateness seen');
      this.#hooks.margin(action.ms);
    } else {
      this.#wanted = action.level;
      this.#switching ??= this.#switch(action.why)
        .catch((error: Error) => this.#logger.error({ err: error.message }, 'a real-time step failed'))
        .finally(() => (this.#switching = undefined));
    }
  }

  /** Carries out the wanted level (the newest, if the controller moved again meanwhile). */
  async #switch(why: string): Promise<void> {
    for (let guard = 0; guard < this.#levels.length && this.#wanted !== undefined; guard++) {
      const level = this.#wanted;
      this.#wanted = undefined;
      if (level === this.#applied || this.#stopped) continue;
      await this.#switchTo(level, why);
    }
  }

  async #switchTo(level: number, why: string): Promise<void> {
    const target = this.#levels[level]!;
    const shape = this.#hooks.shapeOf(target);
    const clips = await this.#hooks.slateFor(target).catch(() => [] as SlateClip[]);
    const inits = new Map(clips.map((c) => [c.init.track, c.init]));
    const now = this.#now();
    // Players already wait as long as the margin for media (a step down is taken late): the
    // period can start that much sooner, and every second sooner is one less of the old run's
    // backlog lost to slate. At least a segment ahead, so the restart comes before it.
    const leadMs = level > this.#applied ? Math.max(this.#segmentMs, PERIOD_LEAD_MS - this.#marginMs) : PERIOD_LEAD_MS;
    const start = BigInt(Math.ceil((now + leadMs) / this.#segmentMs));
    // Without the level's slate its inits are not known ahead: the packager opens the period when the run delivers.
    if (shape.tracks.every((t) => inits.has(t))) this.#hooks.announce(start, shape, inits);
    const periodStartMs = Number(start) * this.#segmentMs;
    const restartAt = periodStartMs - this.#restartLeadMs;
    // A step down may skip levels: it gives up what each of them gave up.
    const changes = (from: number, to: number) =>
      this.#levels
        .slice(from + 1, to + 1)
        .map((l) => l.change)
        .join(', ');
    const fields = {
      level,
      ...(level > this.#applied
        ? { givesUp: changes(this.#applied, level) }
        : { takesBack: changes(level, this.#applied) }),
      fromSegment: start.toString(),
      why,
    };
    if (level > this.#applied) this.#logger.warn(fields, 'the encoder is behind real time: stepping down');
    else this.#logger.info(fields, 'the encoder has had headroom: stepping back up');
    await new Promise<void>((resolve) => {
      const timer = setTimeout(
        () => {
          this.#timers.delete(timer);
          resolve();
        },
        Math.max(0, restartAt - this.#now()),
      );
      this.#timers.add(timer);
      this.#wake = resolve;
    });
    this.#wake = undefined;
    if (this.#stopped) return;
    this.#applied = level;
    this.#periodStartMs = periodStartMs;
    this.#hooks.levelChanged(level, changes(0, level));
    this.#hooks.restart(`real time: level ${level}${target.change ? ` (${target.change})` : ''}`);
  }
}
