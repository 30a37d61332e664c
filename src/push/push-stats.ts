import { RecentValues } from '../stats.ts';
import type { DropReason, PushEvent } from './push-types.ts';

/** Acknowledgement times kept per origin: the last 5 minutes of 1 s segments of a 3-track ladder. */
const ACK_WINDOW = 900;

interface OriginFigures {
  segments: number;
  bytes: number;
  manifests: number;
  retries: number;
  dropped: Partial<Record<DropReason, number>>;
  /** Expired objects whose DELETE failed for good: they stay at the origin. */
  deletesGivenUp: number;
  ackMs: RecentValues;
}

/** Push events folded into per-origin figures for the `push` log line and /status (Telemetry owns one). */
export class PushStats {
  readonly #origins = new Map<string, OriginFigures>();

  #figures(output: string): OriginFigures {
    let figures = this.#origins.get(output);
    if (!figures) {
      figures = {
        segments: 0,
        bytes: 0,
        manifests: 0,
        retries: 0,
        dropped: {},
        deletesGivenUp: 0,
        ackMs: new RecentValues(ACK_WINDOW),
      };
      this.#origins.set(output, figures);
    }
    return figures;
  }

  add(event: PushEvent): void {
    if (event.type === 'chunk' || event.type === 'backlog') return;
    const figures = this.#figures(event.output);
    if (event.type === 'acknowledged') {
      if (event.object === 'manifest') figures.manifests++;
      if (event.object !== 'segment') return;
      figures.segments++;
      figures.bytes += event.bytes;
      if (event.ackMs !== undefined) figures.ackMs.add(event.ackMs);
    } else if (event.type === 'retry') figures.retries++;
    else if (event.type === 'delete-given-up') figures.deletesGivenUp++;
    else figures.dropped[event.reason] = (figures.dropped[event.reason] ?? 0) + 1;
  }

  /** An origin's retries and segments given up so far (every reason). */
  counts(output: string): { retries: number; dropped: number } {
    const figures = this.#origins.get(output);
    return {
      retries: figures?.retries ?? 0,
      dropped: Object.values(figures?.dropped ?? {}).reduce((a, b) => a + b, 0),
    };
  }

  /** One entry per origin, for a log line; `held` says what the output holds now and held at most. */
  summary(
    held: (output: string) => { backlogBytes: number; heldBytes: number; peakHeldBytes: number },
  ): Record<string, unknown>[] {
    return [...this.#origins].map(([output, f]) => ({
      output,
      acknowledgedSegments: f.segments,
      acknowledgedBytes: f.bytes,
      manifests: f.manifests,
      retries: f.retries,
      dropped: f.dropped,
      deletesGivenUp: f.deletesGivenUp,
      ...held(output),
      ackMs: f.ackMs.summary(),
    }));
  }
}
