import { ConfigError } from '../errors.ts';

/** What sizes the memory a run holds media in. */
export interface MediaBudgetInput {
  /** The ladder's bitrates together (video renditions and audio), bytes per second. */
  ladderBytesPerSecond: number;
  segdur: number;
  tsb: number;
  /** The built-in origin serves the stream (its store holds the time-shift window). */
  serving: boolean;
  pushing: boolean;
  /** --push-budget, seconds of the ladder; undefined: the default, 30. */
  pushBudgetSeconds?: number | undefined;
  /** An explicit budget in bytes, and where it was given (named in errors). */
  memory?: { bytes: number; from: string } | undefined;
}

export interface MediaBudget {
  /** Everything media may take: the store's window and the push outputs' unacknowledged media. */
  budgetBytes: number;
  /** What the built-in origin's time-shift window takes of it (0 when not serving). */
  storeWindowBytes: number;
  /** What is left for media the origins have not acknowledged (held once for every origin). */
  pushBytes: number;
}

export const DEFAULT_PUSH_BUDGET_SECONDS = 30;

/**
 * Bitrates are averages: x264's VBV lets a segment run over its share, and the store frees a
 * segment a second or so after it leaves the window. The window's bytes carry this margin.
 */
const WINDOW_MARGIN = 1.1;

const MiB = 2 ** 20;
const mib = (bytes: number) => `${Math.ceil(bytes / MiB)}M`;

/**
 * Pure: one budget for the media a run holds. The store's window cannot be dropped (viewers were
 * promised it), so it comes first; push outputs get the rest, at least two segments of the ladder
 * (the one being made and one being sent). A budget too small for that is refused, naming what
 * would do.
 */
export function mediaBudget(input: MediaBudgetInput): MediaBudget {
  const { ladderBytesPerSecond: rate, segdur } = input;
  const storeWindowBytes = input.serving ? Math.round((input.tsb + 2 * segdur + 1) * rate * WINDOW_MARGIN) : 0;
  const minimumPush = input.pushing ? Math.round(2 * segdur * rate) : 0;
  if (input.memory && input.pushBudgetSeconds !== undefined)
    throw new ConfigError(
      `${input.memory.from} and --push-budget contradict each other: give one (${input.memory.from} is the whole budget, the push outputs get what the time-shift window leaves)`,
    );
  if (!input.memory) {
    const pushBytes = input.pushing
      ? Math.max(minimumPush, Math.round((input.pushBudgetSeconds ?? DEFAULT_PUSH_BUDGET_SECONDS) * rate))
      : 0;
    return { budgetBytes: storeWindowBytes + pushBytes, storeWindowBytes, pushBytes };
  }
  const { bytes, from } = input.memory;
  const needed = storeWindowBytes + minimumPush;
  if (bytes < needed) {
    const parts = [
      ...(input.serving
        ? [`the built-in origin's time-shift window (tsb ${input.tsb} s) ${mib(storeWindowBytes)}`]
        : []),
      ...(input.pushing ? [`two segments for the origins ${mib(minimumPush)}`] : []),
    ];
    throw new ConfigError(
      `${from} ${mib(bytes)}: this ladder (${Math.round((rate * 8) / 1000)} kb/s) needs at least ${mib(needed)} for ${parts.join(' and ')}: give at least ${mib(needed)}${input.serving ? ', or a shorter --tsb' : ''}`,
    );
  }
  return { budgetBytes: bytes, storeWindowBytes, pushBytes: bytes - storeWindowBytes };
}
