import { restartDelay } from '../backoff.ts';
import type { Logger } from '../log.ts';
import type { EncoderExit, EncoderProcess } from './encoder.ts';
import { failureHint, howItEnded } from './failure-hints.ts';

export interface SupervisorOptions {
  /** Starts one run of the encoder. */
  start(): EncoderProcess;
  /** A run's bytes for a track. */
  onData(track: string, piece: Uint8Array): void;
  /** The running encoder stopped delivering (it exited, stalled, or was restarted on purpose). */
  onInterrupted(why: string): void;
  /** A new run is about to start (after an interruption). */
  onNewRun(): void;
  /** The first run failed before any media: a broken setup, not a passing fault (unless `retryAtStart`). */
  onFailedAtStart(exit: EncoderExit): void;
  /** Runs that fail before any media are retried like later failures (a capture device not there yet). */
  retryAtStart?: boolean;
  /** A clean exit (code 0) is the source's end (a file played once), not a failure to restart from. */
  cleanExitEnds?: boolean;
  /** Every run that ended without being asked to. */
  onRunFailed?(exit: EncoderExit): void;
  logger: Logger;
  /** No bytes from a running encoder for this long: slate, and after `stallKillMs` a restart. */
  stallMs: number;
  stallKillMs: number;
  /** A run that delivered media this long resets the backoff. */
  stableMs?: number;
  now?: () => number;
}

/**
 * Keeps one encoder running: an exit for any reason (crash, kill -9, device error) is logged with
 * ffmpeg's last words and followed by a restart after a backoff; a run that stops delivering bytes
 * is reported as stalled and killed. Stops for good only when asked.
 */
export class EncoderSupervisor {
  readonly #options: SupervisorOptions;
  readonly #now: () => number;
  #encoder: EncoderProcess | undefined;
  #stopping = false;
  #attempt = 0;
  #runStartedAt = 0;
  #lastDataAt = 0;
  #mediaEver = false;
  #stalled = false;
  #runExited = false;
  #restartTimer: NodeJS.Timeout | undefined;
  /** Why the running encoder is being replaced on purpose (another level of settings), if it is. */
  #replacing: string | undefined;
  #watchdog: NodeJS.Timeout | undefined;
  #done: { resolve: (exit: EncoderExit) => void; promise: Promise<EncoderExit> };
  restarts = 0;
  stalls = 0;

  constructor(options: SupervisorOptions) {
    this.#options = options;
    this.#now = options.now ?? Date.now;
    let resolve!: (exit: EncoderExit) => void;
    const promise = new Promise<EncoderExit>((r) => (resolve = r));
    this.#done = { resolve, promise };
  }

  /** Resolves with the last run's exit once stopped for good. */
  get done(): Promise<EncoderExit> {
    return this.#done.promise;
  }

  get pid(): number | undefined {
    return this.#encoder?.pid;
  }

  start(): void {
    this.#run();
    this.#watchdog = setInterval(() => this.#checkStall(), 100);
    this.#watchdog.unref();
  }

  #run(): void {
    const encoder = this.#options.start();
    this.#encoder = encoder;
    this.#runExited = false;
    this.#runStartedAt = this.#now();
    this.#lastDataAt = this.#now();
    this.#stalled = false;
    let mediaThisRun = false;
    for (const [track, stream] of encoder.tracks) {
      stream.on('data', (piece: Uint8Array) => {
        if (encoder !== this.#encoder) return;
        this.#lastDataAt = this.#now();
        mediaThisRun = true;
        this.#mediaEver = true;
        this.#stalled = false;
        this.#options.onData(track, piece);
      });
    }
    void encoder.exited.then((exit) => this.#exited(encoder, exit, mediaThisRun));
  }

  #exited(encoder: EncoderProcess, exit: EncoderExit, mediaThisRun: boolean): void {
    if (encoder !== this.#encoder) return;
    this.#runExited = true;
    if (this.#stopping || exit.requested) {
      this.#finish(exit);
      return;
    }
    const { logger } = this.#options;
    if (this.#replacing !== undefined) {
      const why = this.#replacing;
      this.#replacing = undefined;
      this.#options.onInterrupted(why);
      this.#attempt = 0;
      this.restarts++;
      this.#options.onNewRun();
      this.#run();
      logger.info({ pid: this.#encoder?.pid, why }, 'ffmpeg restarted with other settings');
      return;
    }
    if (exit.code === 0 && this.#options.cleanExitEnds && mediaThisRun) {
      logger.info('the source ended');
      this.#finish(exit);
      return;
    }
    this.#options.onRunFailed?.(exit);
    if (!this.#mediaEver && !this.#options.retryAtStart) {
      this.#options.onFailedAtStart(exit);
      this.#finish(exit);
      return;
    }
    const how = howItEnded(exit);
    const hint = failureHint(exit.stderrTail);
    logger.error(
      { stderr: exit.stderrTail.slice(-8), ...(hint ? { hint } : {}) },
      `ffmpeg ${how}; slate until it is back`,
    );
    this.#options.onInterrupted(`ffmpeg ${how}`);
    const stable = mediaThisRun && this.#now() - this.#runStartedAt >= (this.#options.stableMs ?? 30_000);
    this.#attempt = stable ? 1 : this.#attempt + 1;
    const delay = restartDelay(this.#attempt);
    logger.info({ delayMs: delay, attempt: this.#attempt }, 'restarting ffmpeg');
    this.#restartTimer = setTimeout(() => {
      if (this.#stopping) return;
      this.restarts++;
      this.#options.onNewRun();
      this.#run();
      this.#options.logger.info({ pid: this.#encoder?.pid }, 'ffmpeg restarted');
    }, delay);
  }

  #checkStall(): void {
    if (this.#stopping || !this.#encoder || (!this.#mediaEver && !this.#options.retryAtStart)) return;
    const silentMs = this.#now() - this.#lastDataAt;
    // Before any media a source waited for gets a start-up's time (the first IDR on a boundary).
    const stallMs = this.#mediaEver ? this.#options.stallMs : this.#options.stallKillMs;
    if (!this.#stalled && silentMs >= stallMs) {
      this.#stalled = true;
      this.stalls++;
      this.#options.logger.warn({ silentMs }, 'ffmpeg delivers no media: slate until it does');
      this.#options.onInterrupted('ffmpeg stalled');
    }
    if (silentMs >= (this.#mediaEver ? this.#options.stallKillMs : 2 * this.#options.stallKillMs)) {
      this.#options.logger.error({ silentMs }, 'ffmpeg still delivers nothing: killing it for a restart');
      this.#lastDataAt = this.#now();
      this.#encoder.kill();
    }
  }

  /** Kills the running encoder on purpose (e.g. after a clock step): a clean restart, no backoff. */
  restartNow(why: string): void {
    if (this.#stopping || !this.#encoder) return;
    this.#options.logger.warn({ why }, 'restarting ffmpeg');
    this.#attempt = 0;
    this.#encoder.kill();
  }

  /**
   * Ends the running encoder and starts the next at once, with whatever settings `start` gives it
   * now (a step of the real-time controller): not a failure, no backoff. The next starts once the
   * running one has exited, so a capture device is free for it.
   */
  replace(why: string): void {
    if (this.#stopping || !this.#encoder || this.#runExited) return;
    this.#replacing = why;
    this.#encoder.kill();
  }

  /** Stops for good: no more restarts; the running encoder finishes what it has (`q`). */
  async stop(graceMs?: number): Promise<EncoderExit> {
    // From here no restart is scheduled and the watchdog does nothing; #finish clears both.
    this.#stopping = true;
    const encoder = this.#encoder;
    if (encoder && !this.#runExited) {
      const exit = await encoder.stop(graceMs);
      this.#finish(exit);
    } else {
      this.#finish({ code: 0, signal: undefined, stderrTail: [], requested: true });
    }
    return this.done;
  }

  #finish(exit: EncoderExit): void {
    this.#stopping = true;
    clearTimeout(this.#restartTimer);
    clearInterval(this.#watchdog);
    this.#done.resolve(exit);
  }
}
