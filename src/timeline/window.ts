/** Pure: the oldest segment kept with `newest` the newest: the time-shift window and one more, for players still reading the segment leaving it. */
export function oldestKept(newest: bigint, segdur: number, timeShiftBufferDepth: number): bigint {
  return newest - BigInt(Math.ceil(timeShiftBufferDepth / segdur)) - 1n;
}
