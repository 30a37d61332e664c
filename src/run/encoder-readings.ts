// What the real-time shell reads off a running encoder, as pure functions: its speed between two
// `-progress` readings, and whether a restarted run was ready for its Period's first frame.

/** One `-progress` reading, kept to measure the speed until the next. */
export interface ProgressPoint {
  at: number;
  outUs: number;
  frame: number;
  dup: number;
}

/**
 * Pure: how fast the encoder went between two readings, in media seconds per second: the lower
 * of its output time's progress and of the source frames it took (frames out less the copies it
 * made, over the frame rate). A source late for lack of CPU leaves slots that ffmpeg fills with
 * copies, so its output keeps time while the picture does not (1.03x measured at 8 copies a
 * second, 1.7 s late). `video`: the run's frame rate and video outputs. Undefined until both
 * readings carry media: the output time jumps from 0 to the epoch at the first frame.
 */
export function speedBetween(
  before: ProgressPoint,
  after: ProgressPoint,
  video: { framerate: number; tracks: number },
): number | undefined {
  const seconds = (after.at - before.at) / 1000;
  if (seconds <= 0 || before.frame <= 0 || after.frame < before.frame) return undefined;
  const output = (after.outUs - before.outUs) / 1e6 / seconds;
  if (!(output >= 0 && output <= MAX_PLAUSIBLE_SPEED)) return undefined;
  // ffmpeg counts one copy per video output, and frames of the first one only.
  const copies = Math.max(0, after.dup - before.dup) / Math.max(1, video.tracks);
  const sourceFrames = after.frame - before.frame - copies;
  return Math.min(output, Math.max(0, sourceFrames) / video.framerate / seconds);
}

/**
 * Pure: the restart lead after a restarted run's first chunk (ms since 1970): the same when the
 * chunk is the Period's first; `RESTART_LEAD_STEP_MS` longer, up to `maxMs`, when it starts later
 * (the run was not ready for the Period's first frame and took the next boundary).
 */
export function restartLeadAfter(
  leadMs: number,
  run: { periodStartMs: number; firstChunkEndMs: number; chunkMs: number; maxMs: number },
): number {
  const missed = run.firstChunkEndMs - run.chunkMs >= run.periodStartMs + run.chunkMs / 2;
  return missed ? Math.min(run.maxMs, leadMs + RESTART_LEAD_STEP_MS) : leadMs;
}

/** How much earlier each restart after a missed Period start comes. */
export const RESTART_LEAD_STEP_MS = 250;

/** Faster than this between two readings is no measurement (the output time's first jump). */
const MAX_PLAUSIBLE_SPEED = 10;
