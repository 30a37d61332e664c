import type { Writable } from 'node:stream';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { restartDelay } from '../backoff.ts';
import type { Logger } from '../log.ts';
import { RELAY_SCRIPT_FD, redact, relayPlan, type FeedRequest } from './feed-source.ts';
import { parseInputInfo, type InputInfo } from './media-info.ts';
import { TsRestamper } from './ts-restamp.ts';

/**
 * Shell: receives a feed with a relay ffmpeg (UDP, SRT caller/listener; restarted whenever it
 * exits, e.g. an SRT caller going away), puts it on the wall clock (TsRestamper) and writes it
 * into whichever encoder run is current. Nothing it logs carries the passphrase.
 */
export class FeedRelay {
  readonly #ffmpegPath: string;
  readonly #request: FeedRequest;
  readonly #passphrase: string | undefined;
  readonly #restamper: TsRestamper;
  #child: ResultPromise | undefined;
  #sink: Writable | undefined;
  #stopped = false;
  #attempt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stderr = '';
  #info: InputInfo | undefined;
  #infoWaiters: ((info: InputInfo) => void)[] = [];
  #eventsLogged = 0;
  logger: Logger | undefined;
  /** The feed came back after a silence, or its clock jumped: the encoder run should start afresh on it. */
  onReanchored: (() => void) | undefined;

  /** `keyframeGrid`: the video is copied (passthrough), so its keyframes are put on the segment boundaries. */
  constructor(options: {
    ffmpegPath: string;
    request: FeedRequest;
    passphrase: string | undefined;
    segdur: number;
    keyframeGrid?: boolean;
  }) {
    this.#ffmpegPath = options.ffmpegPath;
    this.#request = options.request;
    this.#passphrase = options.passphrase;
    this.#restamper = new TsRestamper({ segdur: options.segdur, base: 0, keyframeGrid: options.keyframeGrid ?? false });
  }

  start(): void {
    if (this.#stopped) return;
    this.#stderr = '';
    const plan = relayPlan(this.#request, this.#passphrase);
    const stdio =
      plan.script === undefined ? (['ignore', 'pipe', 'pipe'] as const) : (['ignore', 'pipe', 'pipe', 'pipe'] as const);
    const child = execa(this.#ffmpegPath, plan.args, { stdio, buffer: false, reject: false, encoding: 'buffer' });
    this.#child = child;
    if (plan.script !== undefined) {
      const script = child.stdio[RELAY_SCRIPT_FD] as Writable;
      // A relay that ends before reading it is seen (and restarted) through its exit.
      script.on('error', () => undefined);
      script.end(plan.script);
    }
    child.stdout?.on('data', (bytes: Uint8Array) => {
      this.#attempt = 0;
      const out = this.#restamper.push(bytes, Date.now() / 1000);
      this.#logEvents();
      if (this.#sink && !this.#sink.destroyed && !this.#sink.writableEnded && out.length)
        this.#sink.write(Buffer.from(out));
    });
    child.stderr?.setEncoding('utf8');
    child.stderr?.on('data', (text: string) => {
      if (this.#stderr.length < 64_000) this.#stderr += text;
      if (!this.#info && /^(Output #0|Stream mapping:)/m.test(this.#stderr)) {
        this.#info = parseInputInfo(this.#stderr);
        for (const waiter of this.#infoWaiters.splice(0)) waiter(this.#info);
      }
    });
    void child.then((result) => {
      if (child !== this.#child || this.#stopped) return;
      const tail = redact(this.#stderr, this.#passphrase)
        .split('\n')
        .filter((l) => l.trim() && !/^\s/.test(l))
        .slice(-4);
      const delay = restartDelay(++this.#attempt, 500, 5000);
      this.logger?.warn(
        {
          feed: redact(this.#request.url, this.#passphrase),
          code: result.exitCode,
          signal: result.signal,
          stderr: tail,
          retryInMs: delay,
        },
        "the feed's receiver ended: listening again",
      );
      this.#timer = setTimeout(() => this.start(), delay);
    });
  }

  #logEvents(): void {
    if (!this.logger) return;
    const fresh = this.#restamper.events.slice(this.#eventsLogged);
    for (const event of fresh) {
      const level = event.kind === 'offGrid' ? 'error' : event.kind === 'jump' ? 'warn' : 'info';
      this.logger[level](
        { feed: redact(this.#request.url, this.#passphrase), offsetSeconds: Number(event.offsetSeconds.toFixed(3)) },
        event.detail,
      );
    }
    const reanchors = fresh.filter((e) => e.kind !== 'offGrid' && e !== this.#restamper.events[0]);
    this.#eventsLogged = this.#restamper.events.length;
    if (reanchors.length) this.onReanchored?.();
  }

  /**
   * Passthrough: waits (up to `timeoutMs`) until the feed is on the keyframe grid and the time
   * between two of its keyframes is known; undefined if that takes longer.
   */
  async keyframeInterval(timeoutMs: number): Promise<number | undefined> {
    for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(50)) {
      if (this.#restamper.offsetSeconds !== undefined && this.#restamper.keyframeInterval !== undefined)
        return this.#restamper.keyframeInterval;
    }
    return undefined;
  }

  /** What the feed holds, once the relay has printed it; undefined if that takes longer than `timeoutMs`. */
  info(timeoutMs: number): Promise<InputInfo | undefined> {
    if (this.#info) return Promise.resolve(this.#info);
    return new Promise((resolve) => {
      const timer = setTimeout(() => resolve(undefined), timeoutMs);
      this.#infoWaiters.push((info) => {
        clearTimeout(timer);
        resolve(info);
      });
    });
  }

  /** The relay's own words so far, safe to show. */
  get stderrForLogs(): string {
    return redact(this.#stderr, this.#passphrase);
  }

  /** The feed goes into this encoder run from now on, its stamps counted from `baseSeconds`. */
  attach(sink: Writable | undefined, baseSeconds: number): void {
    this.#restamper.base = baseSeconds;
    this.#sink = sink;
  }

  stop(): void {
    this.#stopped = true;
    clearTimeout(this.#timer);
    this.#child?.kill('SIGKILL');
    this.#sink = undefined;
  }
}
