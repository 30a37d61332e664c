// Pure: how long to wait before trying again, shared by whatever restarts a process.

/** The wait before restart `attempt` (1-based): doubling from `firstMs`, at most `maxMs`. */
export function restartDelay(attempt: number, firstMs = 500, maxMs = 10_000): number {
  return Math.min(maxMs, firstMs * 2 ** Math.max(0, attempt - 1));
}
