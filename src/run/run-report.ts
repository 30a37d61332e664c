import type { EncoderProgress } from '../encode/progress.ts';
import type { Logger } from '../log.ts';
import type { ChunkEvent } from '../packager/chunker.ts';
import type { Telemetry } from '../service/telemetry.ts';
import { RecentValues } from '../stats.ts';
import { mediaEndMsOf } from './live-session.ts';
import type { OutputSet } from './output-set.ts';

// What the run's log says of it as it goes: the encoder's progress, each chunk's delay, and a
// minute's summary of delays, A/V offset and pushes. The same figures feed the telemetry.

/** How often progress is logged at info level, in progress reports (one a second). */
const PROGRESS_LOG_EVERY = 10;

/** Chunk delays kept for the quantiles in the log: the last 5 minutes of 100 ms chunks. */
const CHUNK_DELAY_WINDOW = 3000;

/** Per track, the chunk delays the log's quantiles (and /status) read. */
export const chunkDelayWindows = (tracks: readonly { id: string }[]): Map<string, RecentValues> =>
  new Map(tracks.map((t) => [t.id, new RecentValues(CHUNK_DELAY_WINDOW)]));

export class RunReport {
  readonly #logger: Logger;
  readonly #telemetry: Telemetry;
  readonly #tracing: boolean;
  #reports = 0;
  #lastDrops = 0;
  /** Chunk delay: the chunk's last byte written (on disk, in the store, or handed to the uploads) minus the wall-clock end of its media. */
  readonly #delays: Map<string, RecentValues>;

  constructor(delays: Map<string, RecentValues>, telemetry: Telemetry, logger: Logger) {
    this.#delays = delays;
    this.#telemetry = telemetry;
    this.#logger = logger;
    this.#tracing = logger.isLevelEnabled('trace');
  }

  /** A progress report of the encoder: a warning when it duplicated or dropped frames since the last. */
  progress(p: EncoderProgress): void {
    this.#telemetry.progress(p);
    const fields = {
      frame: p.frame,
      fps: p.fps,
      speed: p.speed,
      bitrateKbps: p.bitrateKbps,
      dup: p.dupFrames,
      drop: p.dropFrames,
    };
    if (p.dupFrames + p.dropFrames > this.#lastDrops)
      this.#logger.warn(fields, 'encoder duplicated or dropped frames: it is not keeping up with real time');
    else if (++this.#reports % PROGRESS_LOG_EVERY === 0) this.#logger.info(fields, 'encoding');
    else this.#logger.debug(fields, 'encoding');
    this.#lastDrops = p.dupFrames + p.dropFrames;
  }

  chunkWritten(chunk: ChunkEvent, writtenAt: number): void {
    const mediaEndMs = mediaEndMsOf(chunk);
    this.#delays.get(chunk.track)?.add(writtenAt - mediaEndMs);
    this.#telemetry.chunkDelay(chunk.track, writtenAt - mediaEndMs);
    if (this.#tracing)
      this.#logger.trace(
        {
          track: chunk.track,
          segment: chunk.segment.toString(),
          part: chunk.part,
          bytes: chunk.byteLength,
          mediaEndMs,
          at: writtenAt,
          ...(chunk.slate && { slate: true }),
        },
        'chunk',
      );
  }

  /** The minute's summary (and the run's, at its end). */
  logDelays(avOffset: { offsetMs: number; worstMs: number } | undefined, outputs: OutputSet): void {
    this.#logger.info(
      {
        chunkDelayMs: Object.fromEntries([...this.#delays].map(([id, d]) => [id, d.summary()])),
        avOffset: avOffset ?? 'not measured yet',
      },
      'chunk delay',
    );
    for (const figures of this.#telemetry.pushStats.summary((name) => outputs.heldBy(name)))
      this.#logger.info(figures, 'push');
  }
}
