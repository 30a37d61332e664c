/** Pure helpers for the epoch timeline: segment n covers [n·segdur, (n+1)·segdur) since 1970. */

export function segmentTicks(segdur: number, timescale: number): bigint {
  return BigInt(Math.round(segdur * timescale));
}

/** The segment a decode time falls in, and whether it is exactly on the segment's start. */
export function placeOnGrid(
  decodeTime: bigint,
  timescale: number,
  segdur: number,
): { segment: bigint; aligned: boolean } {
  const ticks = segmentTicks(segdur, timescale);
  return { segment: decodeTime / ticks, aligned: decodeTime % ticks === 0n };
}

/** Wall-clock instant of a media time on the epoch timeline, to the millisecond. */
export function mediaTimeToDate(decodeTime: bigint, timescale: number): Date {
  return new Date(Number((decodeTime * 1000n) / BigInt(timescale)));
}
