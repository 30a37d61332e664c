import { RecentValues } from '../stats.ts';

// Whether the encoder keeps real time, and which step of the profile's ladder of savings it runs
// at: the CPU twin of the uplink monitor. Pure: fed once a second with what the run saw in that
// second, it answers with the changes to make.

export interface RealtimeSettings {
  segdur: number;
  /** How many steps down there are (0: none; the controller then only tells the truth). */
  steps: number;
  /** A second whose chunks' lateness (p95) is above this is behind. */
  lateMs: number;
  /** Behind this many seconds more than clear ones (a leaky count) steps down. */
  graceSeconds: number;
  /** After any change no other for this many segments: the restart and its slate are not judged. */
  holdSegments: number;
  /** Clear this long steps back up; a step up that does not hold doubles it (at most 10 minutes). */
  restoreSeconds: number;
  /**
   * Each level's encode cost (any unit, level 0 first): a step down goes straight to the first
   * level the measured speed says can keep real time. Without it, one level at a time.
   */
  costs?: readonly number[];
  /** Each level's frame duration in ms (level 0 first); see clearLatenessMs. */
  frameMs?: readonly number[];
}

/**
 * Pure: the lateness a clear second stays within: half of `lateMs`, or a frame and a quarter of
 * `lateMs` when that is more. A chunk is closed when the frame after it arrives, so at 10 fps its
 * lateness is always a 100 ms frame and more: half of 200 ms would never be clear, and a level at
 * 10 fps never stepped back up (3 bench runs). At 20 and 30 fps it stays half of `lateMs`.
 */
export const clearLatenessMs = (lateMs: number, frameMs = 0) => Math.max(lateMs / 2, frameMs + lateMs / 4);

/** What the run saw in one second. */
export interface RealtimeSample {
  now: number;
  /** p95 of the lateness of the chunks the encoder made in the second (handed over − end of their media); undefined: none. */
  latenessMs: number | undefined;
  /** Media encoded over wall time in the second; undefined: not measured. */
  speed: number | undefined;
  /** Frames ffmpeg duplicated or dropped in the second (it does so when its input outruns it). */
  droppedFrames: number;
  /** Share of the second ffmpeg's busiest thread waited for a CPU (Linux); undefined: not measured. */
  cpuWait?: number | undefined;
  /** The CPU ffmpeg used plus what stood idle on the CPUs it may use, over what it used (Linux). */
  capacity?: number | undefined;
}

export type RealtimeAction =
  | { type: 'step'; level: number; direction: 'down' | 'up'; why: string }
  | { type: 'alarm'; raised: boolean; detail: string }
  /** What the manifests add to their latency promises, in ms (0: the profile's own). */
  | { type: 'margin'; ms: number }
  /** A step down to `level` is likely: what it needs (its slate, its inits) is best made now. */
  | { type: 'prepare'; level: number };

/**
 * A level is expected to keep real time when its cost is at most this share of what the current
 * level gets done (speed × its cost): what the steps do not change (audio, the source, scaling,
 * this process) takes the rest, and a level that only just fits would be late again at once.
 */
const FIT_SHARE = 0.8;

/**
 * Pure: the level a step down from `level` goes to: the first whose cost fits what the encoder
 * achieved at `speed`; the last when none does; the next when nothing was measured.
 */
export function stepDownTo(level: number, steps: number, speed: number | undefined, costs?: readonly number[]): number {
  const next = Math.min(steps, level + 1);
  const current = costs?.[level];
  if (speed === undefined || speed >= 1 || current === undefined) return next;
  const achieved = current * speed * FIT_SHARE;
  for (let candidate = next; candidate <= steps; candidate++)
    if ((costs?.[candidate] ?? Infinity) <= achieved) return candidate;
  return steps;
}

/**
 * Pure: the level a step up from `level` goes to: the lowest whose cost fits the CPU the encoder
 * could have (`capacity`: what it used and what stood idle on its CPUs, over what it used), with
 * the same fifth to spare; never less than one level; one when nothing was measured.
 */
export function stepUpTo(level: number, capacity: number | undefined, costs?: readonly number[]): number {
  const previous = Math.max(0, level - 1);
  const current = costs?.[level];
  if (capacity === undefined || current === undefined) return previous;
  const achievable = current * capacity * FIT_SHARE;
  for (let candidate = 0; candidate < previous; candidate++)
    if ((costs?.[candidate] ?? Infinity) <= achievable) return candidate;
  return previous;
}

/** Speed below this is behind real time, at or above `CLEAR_SPEED` clear. */
const BEHIND_SPEED = 0.95;
const CLEAR_SPEED = 0.98;
/**
 * A thread waiting for a CPU this share of the time has no headroom for more work. Measured on
 * 2 cores: ffmpeg keeping real time alone on one core 0.13–0.22, on two 0.28–0.33 (its threads
 * wait for each other); sharing its core with a busy loop 0.65–0.89.
 */
const CLEAR_CPU_WAIT = 0.4;
/**
 * ffmpeg waiting for a CPU (a core shared with a busy process) while the CPUs it may use stand
 * idle for this much again of what it uses: headroom all the same, that more work spreads to
 * (the scheduler moves runnable threads to idle cores). Seen in CI with one core busy: at the last
 * level, real time kept at speed 1.0 and 65 ms, waiting 0.6 of the time, capacity 1.9–2.2 — never
 * clear by the wait alone, so never stepped back up.
 */
const IDLE_HEADROOM = 1.5;
/** ffmpeg waiting for a CPU this share of the time is short of CPU. */
const STARVED_CPU_WAIT = 0.5;
/** Seconds of lateness the manifests' margin is measured over. */
const MARGIN_WINDOW = 10;
const MAX_RESTORE_SECONDS = 600;
/** The most the manifests' promises move: beyond it a player is better told nothing it can plan on. */
const MAX_MARGIN_MS = 10_000;

type Verdict = 'behind' | 'clear' | 'neutral';

/**
 * Pure: one second → behind (late, slow or dropping), clear (headroom), or neither. Behind is
 * `encoderBound` when the encoder itself shows it (slow, dropping, or waiting for a CPU): late
 * chunks from an encoder at full speed are delayed elsewhere (this process, the disk), which a
 * lighter encode would not mend.
 */
export function judgeSecond(
  sample: RealtimeSample,
  lateMs: number,
  frameMs = 0,
): { verdict: Verdict; why: string; encoderBound: boolean } {
  const late = sample.latenessMs !== undefined && sample.latenessMs > lateMs;
  const slow = sample.speed !== undefined && sample.speed < BEHIND_SPEED;
  const starved = sample.cpuWait !== undefined && sample.cpuWait >= STARVED_CPU_WAIT;
  if (late || slow || sample.droppedFrames > 0) {
    const why = [
      ...(late ? [`chunks ${Math.round(sample.latenessMs!)} ms late (p95)`] : []),
      ...(slow ? [`speed ${sample.speed!.toFixed(2)}x`] : []),
      ...(sample.droppedFrames > 0 ? [`${sample.droppedFrames} frames duplicated or dropped`] : []),
    ].join(', ');
    return {
      verdict: 'behind',
      why: starved ? `${why}, ffmpeg waiting for a CPU ${Math.round(sample.cpuWait! * 100)} % of the time` : why,
      encoderBound: slow || sample.droppedFrames > 0 || starved,
    };
  }
  const clear =
    (sample.latenessMs === undefined || sample.latenessMs <= clearLatenessMs(lateMs, frameMs)) &&
    (sample.speed === undefined || sample.speed >= CLEAR_SPEED) &&
    (sample.cpuWait === undefined ||
      sample.cpuWait < CLEAR_CPU_WAIT ||
      (sample.capacity !== undefined && sample.capacity >= IDLE_HEADROOM));
  return { verdict: clear ? 'clear' : 'neutral', why: '', encoderBound: false };
}

/**
 * Behind for `graceSeconds` (net of clear seconds, so a brief spike passes) steps down one level
 * and raises `encoder-behind`; at the last level it only alarms. Clear for `restoreSeconds` steps
 * back up; a step up followed by a step down within a hold and a grace doubles the next wait, so a
 * box that cannot hold a level is probed less and less often. Each change is held
 * `holdSegments` before the next second is judged. While behind, the manifests' margin is the
 * lateness seen (p95 of the last 10 s, whole 100 ms); it returns to 0 once the alarm clears.
 */
export class RealtimeController {
  readonly #settings: RealtimeSettings;
  #level = 0;
  #behindScore = 0;
  /** The same count over the seconds the encoder itself was behind: only these step down. */
  #encoderScore = 0;
  #clearSince: number | undefined;
  #holdUntil = -Infinity;
  #holdEndsPastMs: number | undefined;
  #lastUpAt: number | undefined;
  #restoreSeconds: number;
  #alarmed = false;
  #margin = 0;
  readonly #lateness = new RecentValues(MARGIN_WINDOW);
  /** The encoder's speed over the seconds judged since the last change. */
  #speeds: RecentValues;
  /** The level a step down was last said to be likely to (since the last change). */
  #prepared: number | undefined;
  /** Seconds a due step down has waited for a measured speed (since the last change). */
  #waitedForSpeed = 0;
  /** The encoder's capacity (see RealtimeSample) over the clear seconds since the last change. */
  #capacities = new RecentValues(MARGIN_WINDOW);

  constructor(settings: RealtimeSettings) {
    this.#settings = settings;
    this.#restoreSeconds = settings.restoreSeconds;
    this.#speeds = this.#recentSpeeds();
  }

  /** The speeds a step down is judged on: those of the grace seconds. */
  #recentSpeeds(): RecentValues {
    return new RecentValues(Math.max(1, this.#settings.graceSeconds));
  }

  get level(): number {
    return this.#level;
  }

  get behind(): boolean {
    return this.#alarmed;
  }

  /** Seconds the next step up waits for (doubled after steps up that did not hold). */
  get restoreSeconds(): number {
    return this.#restoreSeconds;
  }

  /**
   * A change the controller did not make (an encoder restarted anyway) is held like its own.
   * `endsPastMs`: a second of the hold later than this, that the encoder itself shows (slow,
   * dropping, starved), ends it there (see RealtimeRun: the process's first run).
   */
  hold(now: number, options: { endsPastMs?: number } = {}): void {
    this.#holdEndsPastMs = options.endsPastMs;
    this.#holdUntil = now + this.#settings.holdSegments * this.#settings.segdur * 1000;
    this.#behindScore = 0;
    this.#encoderScore = 0;
    this.#clearSince = undefined;
    this.#speeds = this.#recentSpeeds();
    this.#prepared = undefined;
    this.#capacities = new RecentValues(MARGIN_WINDOW);
    this.#waitedForSpeed = 0;
  }

  update(sample: RealtimeSample): RealtimeAction[] {
    const { now } = sample;
    const settings = this.#settings;
    const actions: RealtimeAction[] = [];
    if (sample.latenessMs !== undefined) this.#lateness.add(sample.latenessMs);
    const { verdict, why, encoderBound } = judgeSecond(sample, settings.lateMs, settings.frameMs?.[this.#level]);
    const pastHold =
      this.#holdEndsPastMs !== undefined && encoderBound && (sample.latenessMs ?? 0) > this.#holdEndsPastMs;
    // Past the hold by the encoder's own fault, it has been behind since its start: the grace is
    // spent already, and every second more of it is backlog the step then loses to slate.
    if (pastHold) {
      this.#holdUntil = now;
      this.#holdEndsPastMs = undefined;
      this.#behindScore = this.#encoderScore = Math.max(0, settings.graceSeconds - 1);
    }
    if (now < this.#holdUntil) return actions;
    if (sample.speed !== undefined) this.#speeds.add(sample.speed);
    if (verdict === 'behind') {
      this.#behindScore = Math.min(settings.graceSeconds, this.#behindScore + 1);
      if (encoderBound) this.#encoderScore = Math.min(settings.graceSeconds, this.#encoderScore + 1);
      this.#clearSince = undefined;
      // From the first second the encoder itself is behind at a measured speed, the likely step is
      // prepared: on a box short of CPU its slate takes seconds to encode, which the step would
      // otherwise wait for. Not before the speed is known: a guess's slate (the next level's, 2.5 s
      // on the box of the notes) delays the one the step then needs.
      const speed = this.#speeds.quantile(0.5);
      if (encoderBound && this.#level < settings.steps && (speed !== undefined || !settings.costs)) {
        const likely = stepDownTo(this.#level, settings.steps, speed, settings.costs);
        if (likely !== this.#prepared) {
          this.#prepared = likely;
          actions.push({ type: 'prepare', level: likely });
        }
      }
    } else {
      if (verdict === 'clear') {
        this.#behindScore = Math.max(0, this.#behindScore - 1);
        this.#encoderScore = Math.max(0, this.#encoderScore - 1);
      }
      // Neutral seconds neither count towards a step up nor undo the clear ones before them.
      if (verdict === 'clear') this.#clearSince ??= now;
      if (verdict === 'clear' && sample.capacity !== undefined) this.#capacities.add(sample.capacity);
    }
    if (this.#behindScore >= settings.graceSeconds) {
      // How far to step is judged on the measured speed: without one a step goes one level, and a
      // box short of half its CPU then restarts twice (a second step 7.5 s after the first, seen).
      // The speed comes from ffmpeg's progress, which a starved ffmpeg reports late: a step waits
      // for it up to another grace.
      const unmeasured =
        settings.costs !== undefined &&
        this.#speeds.quantile(0.5) === undefined &&
        this.#waitedForSpeed++ < settings.graceSeconds;
      const stepping = this.#level < settings.steps && this.#encoderScore >= settings.graceSeconds && !unmeasured;
      if (!this.#alarmed) {
        this.#alarmed = true;
        actions.push({
          type: 'alarm',
          raised: true,
          detail: `the encoder is behind real time: ${why}${stepping ? `; stepping down to level ${this.#level + 1}` : this.#level < settings.steps ? '' : `; at the last step (${settings.steps})`}`,
        });
      }
      if (stepping) {
        if (this.#lastUpAt !== undefined && now - this.#lastUpAt < this.#bounceMs())
          this.#restoreSeconds = Math.min(MAX_RESTORE_SECONDS, this.#restoreSeconds * 2);
        this.#lastUpAt = undefined;
        this.#level = stepDownTo(this.#level, settings.steps, this.#speeds.quantile(0.5), settings.costs);
        actions.push({ type: 'step', level: this.#level, direction: 'down', why });
        this.hold(now);
      }
    } else if (verdict === 'clear' && this.#alarmed && this.#behindScore === 0) {
      this.#alarmed = false;
      actions.push({
        type: 'alarm',
        raised: false,
        detail: `the encoder keeps real time again at level ${this.#level}`,
      });
    }
    if (
      !this.#alarmed &&
      this.#level > 0 &&
      this.#clearSince !== undefined &&
      now - this.#clearSince >= this.#restoreSeconds * 1000
    ) {
      this.#level = stepUpTo(this.#level, this.#capacities.quantile(0.5), settings.costs);
      this.#lastUpAt = now;
      actions.push({
        type: 'step',
        level: this.#level,
        direction: 'up',
        why: `clear for ${this.#restoreSeconds} s`,
      });
      this.hold(now);
    }
    const margin = this.#alarmed
      ? Math.min(MAX_MARGIN_MS, Math.ceil((this.#lateness.quantile(0.95) ?? 0) / 100) * 100)
      : 0;
    if (margin !== this.#margin) {
      this.#margin = margin;
      actions.push({ type: 'margin', ms: margin });
    }
    return actions;
  }

  /** A step down this soon after a step up means the step up did not hold. */
  #bounceMs(): number {
    const { holdSegments, segdur, graceSeconds } = this.#settings;
    return (holdSegments * segdur + graceSeconds + 2) * 1000;
  }
}
