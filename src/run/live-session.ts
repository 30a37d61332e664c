import type { Profile } from '../config/schema.ts';
import { AvOffsetMeter } from '../encode/av-offset.ts';
import { ClockStepDetector } from '../encode/clock.ts';
import type { Logger } from '../log.ts';
import type { ChunkEvent, InitEvent, PackagerEvent } from '../packager/chunker.ts';
import { buildMpd, cmafIngestModel } from '../packager/mpd.ts';
import type { Packager, Period, RunShape } from '../packager/packager.ts';
import { withoutShed } from '../packager/shed.ts';
import { laterOf } from '../timeline/bigint.ts';
import { mediaTimeToDate } from '../timeline/epoch-grid.ts';
import type { OutputSet } from './output-set.ts';

// One live run between the encoder and the outputs: media in, interruptions and slate, the clock
// watch, the manifest's periods, the session saved for the next process, and how the run stops or
// ends. Every decision is here, on an injected clock and encoder, so it is tested without ffmpeg;
// `appliance start` wires it to the real supervisor, timers and signals.

/** The wall-clock end of a chunk's media, in ms since 1970. */
export const mediaEndMsOf = (chunk: ChunkEvent) =>
  Number(((chunk.decodeTime + BigInt(chunk.duration)) * 1000n) / BigInt(chunk.timescale));

/** Wall time (ms since 1970, may step) and a monotonic time (ms) to tell a clock step from time passing. */
export interface SessionClock {
  now(): number;
  monotonic(): number;
}

const systemClock: SessionClock = { now: Date.now, monotonic: () => performance.now() };

/** What the session asks of the encoder's supervisor. */
export interface EncoderControl {
  /** Ends the encoder for good (the run ends when it has). */
  stop(): Promise<unknown>;
  /** Ends the current encoder run and starts another. */
  restartNow(why: string): void;
}

/** Where the session reports what it sees: the run's telemetry. */
export interface SessionReports {
  chunkProduced(slate: boolean): void;
  avOffset(ms: number): void;
  /** The slate is on (since `since`) or off (`since` is now). */
  slate(active: boolean, since: number): void;
  encoderRestarted(): void;
}

/** The run monitor's part: alarms reset on a new encoder run, systemd told of a stop. */
export interface SessionMonitor {
  newRun(): void;
  stopping(): void;
}

export interface SessionSaving {
  save(periods: readonly Period[], lastSegment: bigint): void;
  forget(): Promise<void>;
}

export interface LiveSessionOptions {
  profile: Profile;
  /** The ladder's tracks, top rendition first. */
  tracks: readonly { id: string; kind: 'video' | 'audio' }[];
  packager: Packager;
  outputs: OutputSet;
  logger: Logger;
  reports: SessionReports;
  /** Saves the session as it goes, for the next process on these outputs. */
  saver?: SessionSaving | undefined;
  clock?: SessionClock;
  /** Each chunk of the source's media, as it is handed over `lateMs` after the end of its media. */
  onSourceChunk?: ((lateMs: number, video: boolean) => void) | undefined;
  /**
   * What the manifests add to their latency promises while the encoder is late (ms); the session
   * moves it at segment boundaries, the HLS playlists read it as they are written.
   */
  latencyMargin?: { ms: number };
  /** The session wants ticks every TICK_MS from now on: slate is due by the clock. */
  onTicksWanted?: (() => void) | undefined;
}

/** How often the session is ticked while slate is due by the clock. */
export const TICK_MS = 20;
/**
 * How often otherwise: a clock step and the deadlines (seconds long) are then all it looks for.
 * Fifty wakeups a second for nothing cost a small box's encoder CPU it needs.
 */
export const CALM_TICK_MS = 250;

/** A planned end that has not come this long after its time stops the run anyway: an end must end. */
const overdueMsOf = (segdur: number) => (2 * segdur + 3) * 1000;

/**
 * How much longer an encoder behind real time gets while every track still delivers media: its
 * end comes late, not never. With 1 s segments a stop then takes at most 5 + 3 s, ffmpeg's 5 s to
 * exit and the outputs' 5 s flush: inside the unit's TimeoutStopSec (20 s).
 */
const STILL_DELIVERING_GRACE_MS = 3000;

export class LiveSession {
  readonly #profile: LiveSessionOptions['profile'];
  readonly #tracks: LiveSessionOptions['tracks'];
  readonly #packager: Packager;
  readonly #outputs: OutputSet;
  readonly #logger: Logger;
  readonly #reports: SessionReports;
  readonly #saver: SessionSaving | undefined;
  readonly #clock: SessionClock;
  readonly #onSourceChunk: ((lateMs: number, video: boolean) => void) | undefined;
  readonly #latencyMargin: { ms: number };
  readonly #onTicksWanted: (() => void) | undefined;
  #wantedMarginMs = 0;
  readonly #clockWatch: ClockStepDetector;
  readonly #avOffset = new AvOffsetMeter();
  readonly #firstSeen = new Set<string>();
  readonly #topVideo: string | undefined;
  /** Longer than the slate lasts while a restarted encoder's media is on its way: its start, a segment, a new period's lead (3 s) and a boundary. */
  readonly #unusableSourceMs: number;

  #encoder: EncoderControl | undefined;
  #monitor: SessionMonitor | undefined;
  #hasSlate = false;
  #mediaSeen = false;
  #sourceDataAt = -Infinity;
  #slateSince: number | undefined;
  #unusableSince: number | undefined;
  #avWarned = false;
  #savedAt = 0;
  #manifestPublished = false;
  /** The periods the published manifest has (how many, and where the last starts). */
  #periodsPublished = '';
  #halting: 'stop' | 'end' | undefined;
  /** When the run is stopped regardless if the planned end or the stop has not come, and what is said then. */
  #deadline: { atMonotonicMs: number; why: string } | undefined;
  /** When each track last brought media (monotonic clock). */
  readonly #trackDataAt = new Map<string, number>();
  #finishing: Promise<unknown> | undefined;

  constructor(options: LiveSessionOptions) {
    this.#profile = options.profile;
    this.#tracks = options.tracks;
    this.#packager = options.packager;
    this.#outputs = options.outputs;
    this.#logger = options.logger;
    this.#reports = options.reports;
    this.#saver = options.saver;
    this.#clock = options.clock ?? systemClock;
    this.#onSourceChunk = options.onSourceChunk;
    this.#latencyMargin = options.latencyMargin ?? { ms: 0 };
    this.#onTicksWanted = options.onTicksWanted;
    this.#clockWatch = new ClockStepDetector(1000 / options.profile.video.framerate);
    this.#topVideo = options.tracks.find((t) => t.kind === 'video')?.id;
    this.#unusableSourceMs = (4 * options.profile.segdur + 6) * 1000;
  }

  /** The encoder's supervisor, made after the session because its callbacks are the session's methods. */
  attach(encoder: EncoderControl, monitor?: SessionMonitor): void {
    this.#encoder = encoder;
    this.#monitor = monitor;
  }

  /** Slate clips are set on the packager: an interruption is covered (else a hole, as warned). */
  slateReady(): void {
    this.#hasSlate = true;
  }

  get mediaSeen(): boolean {
    return this.#mediaSeen;
  }

  /** The audio/video offset measured on the run, for the log. */
  get avFigures(): { offsetMs: number; worstMs: number } | undefined {
    return this.#avOffset.figures;
  }

  /** Settles when the planned end or stop has been reached and the encoder stopped. */
  get finishing(): Promise<unknown> | undefined {
    return this.#finishing;
  }

  /** Ends the stream before segment `end` (lmsg on the last one), unless an earlier end is planned. */
  planEnd(end: bigint): void {
    const planned = this.#packager.end;
    if (planned && planned.segment <= end) return;
    this.#packager.endBefore(end, { last: true });
    this.#logger.info(
      {
        lastSegment: (end - 1n).toString(),
        endsAt: new Date(Number(end) * this.#profile.segdur * 1000).toISOString(),
      },
      'stream end planned',
    );
    if (!this.#halting)
      this.#deadline = {
        // On the monotonic clock, like the timer it stands for: a clock step neither hastens nor delays it.
        atMonotonicMs:
          this.#clock.monotonic() +
          Number(end) * this.#profile.segdur * 1000 -
          this.#clock.now() +
          overdueMsOf(this.#profile.segdur),
        why: 'the planned end did not come: stopping',
      };
  }

  /** Continues the session a previous process left on these outputs: slate until the encoder delivers. */
  resume(periods: readonly Period[], lastSegment: bigint): void {
    this.#slateSince = this.#clock.now();
    this.#emit(this.#packager.resume(periods, lastSegment));
  }

  /** Bytes of a track's fMP4 stream from the encoder. */
  media(track: string, piece: Uint8Array): void {
    this.#mediaSeen = true;
    this.#sourceDataAt = this.#clock.now();
    this.#trackDataAt.set(track, this.#clock.monotonic());
    this.#emit(this.#packager.push(track, piece));
  }

  /** The encoder run ended or stalled: slate from each track's last whole chunk. */
  interrupted(why: string): void {
    this.#slateSince ??= this.#clock.now();
    // A device not there at start, retried: the stream begins on slate.
    if (!this.#packager.periods.length) this.#emit(this.#packager.startOnSlate(this.#segmentNow() - 1n));
    this.#emit(this.#packager.interrupt());
    this.#logger.info(
      { why, slate: this.#packager.slateTracks.filter((t) => this.#packager.slateUsable(t)) },
      'source interrupted',
    );
  }

  /** The tracks and frame rate of the encoder run starting now. */
  useRun(shape: RunShape): void {
    this.#packager.useRun(shape);
  }

  /** A period for a planned restart with other settings, announced ahead (its inits from the new settings' slate). */
  announcePeriod(start: bigint, shape: RunShape, inits: ReadonlyMap<string, InitEvent>): void {
    this.#emit(this.#packager.announcePeriod(start, shape, inits));
  }

  /**
   * The latency promises' margin wanted now (ms); it takes effect in the manifests at the next
   * segment boundary, and at once for how long slate waits for late media.
   */
  latencyMargin(ms: number): void {
    this.#wantedMarginMs = ms;
    this.#packager.allowLateSource(ms);
  }

  /** A new encoder run began: its media starts a fresh timeline for the A/V meter and the chunker. */
  newRun(): void {
    // A fresh run is given its own time to deliver usable media.
    this.#unusableSince = undefined;
    this.#avOffset.restart();
    this.#reports.encoderRestarted();
    this.#monitor?.newRun();
    this.#emit(this.#packager.newRun());
  }

  /** When the next tick is wanted: soon while slate is due by the clock (deadlines are seconds long). */
  nextTickMs(): number {
    return this.#packager.onSlate ? TICK_MS : CALM_TICK_MS;
  }

  /** Called every nextTickMs(): clock steps, slate due by the clock, a source that never becomes usable, deadlines. */
  tick(): void {
    const now = this.#clock.now();
    const step = this.#clockWatch.check(now, this.#clock.monotonic());
    if (step !== undefined) {
      this.#logger.warn(
        { stepMs: Math.round(step) },
        'the system clock stepped: slate, then a clean restart of the encoder at the next boundary',
      );
      this.#emit(this.#packager.interrupt());
      this.#encoder?.restartNow('clock step');
    }
    if (this.#packager.slateTracks.length) {
      this.#emit(this.#packager.tick());
      // Media flowing that the packager never takes (no IDR on a boundary, a period that never
      // comes) would leave the slate on for good: a fresh encoder run is the remedy at hand.
      this.#unusableSince ??= now;
      if (now - this.#unusableSince > this.#unusableSourceMs && now - this.#sourceDataAt < 1000) {
        this.#logger.error(
          {
            tracks: this.#packager.trackStates,
            counters: { ...this.#packager.counters, slateSamples: undefined },
          },
          'ffmpeg delivers media the packager cannot take: restarting it',
        );
        this.#unusableSince = now;
        this.#emit(this.#packager.interrupt());
        this.#encoder?.restartNow('media not usable');
      }
    } else {
      this.#unusableSince = undefined;
      if (this.#slateSince !== undefined)
        this.#logger.info({ slateMs: now - this.#slateSince }, 'source back: slate ended');
      this.#slateSince = undefined;
    }
    this.#reports.slate(this.#slateSince !== undefined, this.#slateSince ?? now);
    if (this.#deadline && this.#clock.monotonic() >= this.#deadline.atMonotonicMs && !this.#stillDelivering()) {
      const { why } = this.#deadline;
      this.#deadline = undefined;
      if (!this.#packager.finished) {
        this.#logger.error({ tracks: this.#packager.trackStates }, why);
        void this.#encoder?.stop();
      }
    }
  }

  /**
   * Stops after the segment in progress (`last`: ends the stream for viewers there, lmsg; else a
   * restart of the service continues it). A stop after a stop, or anything after an end, changes
   * nothing; an end upgrades a stop.
   */
  halt(last: boolean): void {
    if (this.#halting === 'end' || (this.#halting === 'stop' && !last)) return;
    this.#halting = last ? 'end' : 'stop';
    this.#monitor?.stopping();
    const current = this.#packager.currentSegment;
    if (current === undefined) return void this.#encoder?.stop();
    // An encoder behind real time is still making the segment in progress: that one is finished,
    // not the wall clock's, which would be seconds more media for an encoder already short of CPU
    // (past the stop's deadline on a loaded box, seen) — also when its media comes in bursts more
    // than a second apart (mandelbrot on a busy core: the deadline cut 720p's last segment short
    // while 1080p's was whole, seen in CI). On slate, the clock's segment: slate follows the clock.
    const from = this.#packager.slateTracks.length ? laterOf(current, this.#segmentNow()) : current;
    // lmsg goes in the styp of the last segment's first chunk: an end needs a segment not yet begun.
    this.#packager.endBefore(from + (last ? 2n : 1n), { last });
    this.#logger.info(
      { lastSegment: `${this.#packager.end!.segment - 1n}` },
      last
        ? 'end requested: the stream ends after the current segment'
        : 'stop requested: finishing the current segment',
    );
    if (this.#packager.finished) void this.#finish();
    this.#deadline = {
      atMonotonicMs: this.#clock.monotonic() + overdueMsOf(this.#profile.segdur),
      why: 'the current segment did not finish: stopping',
    };
  }

  /** Every track brought media within the last second, and the deadline's grace for a late encoder is not over. */
  #stillDelivering(): boolean {
    if (this.#clock.monotonic() >= this.#deadline!.atMonotonicMs + STILL_DELIVERING_GRACE_MS) return false;
    return this.#everyTrackDelivering();
  }

  #everyTrackDelivering(): boolean {
    const now = this.#clock.monotonic();
    return this.#tracks.every((t) => now - (this.#trackDataAt.get(t.id) ?? -Infinity) < 1000);
  }

  /** Wall-clock now as a segment number on the epoch grid. */
  #segmentNow(): bigint {
    return BigInt(Math.floor(this.#clock.now() / 1000 / this.#profile.segdur));
  }

  #emit(events: readonly PackagerEvent[]): void {
    for (const event of events) {
      this.#outputs.handle(event);
      if (event.type === 'chunk') this.#chunkMade(event);
      if (event.type === 'segmentEnd') this.#save(event.segment);
    }
    const marginMoves = this.#wantedMarginMs !== this.#latencyMargin.ms && events.some((e) => e.type === 'segmentEnd');
    if (marginMoves) this.#latencyMargin.ms = this.#wantedMarginMs;
    const packager = this.#packager;
    const periods = `${packager.periods.length}:${packager.periods.at(-1)?.start}`;
    if (packager.ready && (!this.#manifestPublished || periods !== this.#periodsPublished)) {
      if (this.#manifestPublished)
        this.#logger.warn(
          { period: packager.periods.at(-1)!.start.toString() },
          'the encoder restarted with another init segment: a new period',
        );
      else this.#warnWithoutSlate();
      this.#manifestPublished = true;
      this.#periodsPublished = periods;
      this.#publishManifest();
    } else if (marginMoves && this.#manifestPublished) this.#publishManifest();
    if (packager.end && packager.finished) void this.#finish();
  }

  #chunkMade(chunk: ChunkEvent): void {
    this.#reports.chunkProduced(Boolean(chunk.slate));
    if (!chunk.slate) this.#onSourceChunk?.(this.#clock.now() - mediaEndMsOf(chunk), chunk.track !== 'audio');
    if (!chunk.slate && (chunk.track === this.#topVideo || chunk.track === 'audio')) {
      this.#avOffset.add(chunk.track === 'audio' ? 'audio' : 'video', mediaEndMsOf(chunk), this.#clock.now());
      const av = this.#avOffset.figures;
      const off = Boolean(av && Math.abs(av.offsetMs) > 1000 / this.#profile.video.framerate);
      if (av) this.#reports.avOffset(av.offsetMs);
      if (off && !this.#avWarned) this.#logger.warn(av, 'audio is more than one frame off video');
      this.#avWarned = off;
    }
    if (!this.#firstSeen.has(chunk.track)) {
      this.#firstSeen.add(chunk.track);
      this.#logger.info(
        {
          track: chunk.track,
          segment: chunk.segment.toString(),
          at: mediaTimeToDate(chunk.decodeTime, chunk.timescale).toISOString(),
        },
        'first segment',
      );
    }
  }

  /** At most once a second: what a restarted process needs to continue these outputs' session. */
  #save(segment: bigint): void {
    const now = this.#clock.now();
    if (!this.#saver || now - this.#savedAt < 1000 || !this.#packager.ready) return;
    this.#savedAt = now;
    this.#saver.save(this.#packager.periods, segment);
  }

  #warnWithoutSlate(): void {
    if (!this.#hasSlate) return;
    const withoutSlate = this.#tracks.map((t) => t.id).filter((id) => !this.#packager.slateUsable(id));
    if (!withoutSlate.length) return;
    this.#logger.warn(
      { tracks: withoutSlate },
      this.#profile.video.passthrough
        ? "passthrough: the slate (encoded here) cannot stand in for the feed's own H.264: an interruption leaves a hole in these tracks"
        : "the slate's init segment differs from the live one: an interruption would leave a hole in these tracks",
    );
  }

  #publishManifest(): void {
    const profile = this.#profile;
    this.#outputs.publishManifest((view) => {
      const full = this.#packager.mpdModel(
        profile,
        { timeShiftBufferDepth: profile.tsb, utcTimingUrl: view.utcTimingUrl },
        new Date(this.#clock.now()),
      );
      if (view.cmafIngest) return buildMpd(cmafIngestModel(full, view.cmafIngest.streamName));
      const model = withoutShed(full, view.shed ?? []);
      // Origins that only serve complete files list what they have and are asked again every segment.
      // While chunks come later than promised, players are told so: a later target, a smaller offset.
      const margin = this.#latencyMargin.ms / 1000;
      return buildMpd({
        ...model,
        ...(margin > 0 && {
          latency: {
            ...model.latency,
            target: model.latency.target + margin,
            max: Math.max(model.latency.max, model.latency.target + margin),
          },
        }),
        // A chunk's worth of offset stays: an offset of 0 would leave the low-latency template out.
        asto:
          view.asto > 0
            ? Math.min(view.asto, Math.max(profile.cdur, Math.round((view.asto - margin) * 1000) / 1000))
            : view.asto,
        announced: view.announced,
        minimumUpdatePeriod: view.announced ? profile.segdur : model.minimumUpdatePeriod,
      });
    });
  }

  #finish(): Promise<unknown> {
    this.#finishing ??= (async () => {
      const end = this.#packager.end;
      if (end?.last) {
        this.#publishManifest();
        await this.#saver?.forget();
      } else if (end && this.#packager.ready) this.#saver?.save(this.#packager.periods, end.segment - 1n);
      this.#logger.info(
        { lastSegment: this.#packager.currentSegment?.toString() },
        end?.last ? 'stream ended' : 'segment finished; stopping',
      );
      await this.#encoder?.stop();
    })();
    return this.#finishing;
  }
}
