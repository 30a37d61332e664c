/**
 * Pure helpers for the epoch timeline: segment n covers [n·segdur, (n+1)·segdur) since 1970.
 * Video frames sit on n/framerate; AAC frame k covers samples [k·1024, (k+1)·1024) counted from
 * 1970-01-01T00:00:00Z at the audio's sample rate (its timescale), in every run of every encoder.
 */

/** Samples in one AAC-LC frame: the step of the audio grid. */
export const AAC_FRAME_SAMPLES = 1024;

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

/** The audio grid's frame start at or before a wall-clock instant (ms since 1970), in samples. */
export function audioFrameAtOrBefore(wallMs: number, sampleRate: number): bigint {
  const frame = BigInt(AAC_FRAME_SAMPLES);
  const samples = (BigInt(Math.floor(wallMs)) * BigInt(sampleRate)) / 1000n;
  return (samples / frame) * frame;
}

/**
 * Where audio segment n starts: the grid frame nearest n·segdur, the earlier of two equally near
 * (the frame whose middle falls in the segment). Every encoder on the grid starts it there, so a
 * segment's frames, and so its duration (46 or 47 frames at 48 kHz and 1 s), are the timeline's.
 */
export function audioSegmentStart(segment: bigint, segdur: number, sampleRate: number): bigint {
  const frame = BigInt(AAC_FRAME_SAMPLES);
  const half = frame / 2n;
  const boundary = segment * segmentTicks(segdur, sampleRate) - half;
  // The first multiple of a frame at or after the boundary less half a frame (ceiling division).
  const k = boundary >= 0n ? (boundary + frame - 1n) / frame : boundary / frame;
  return k * frame;
}

/** Where a track's segment n starts on the timeline: n·segdur for video, the grid frame for audio. */
export function trackSegmentStart(kind: 'video' | 'audio', segment: bigint, segdur: number, timescale: number): bigint {
  return kind === 'audio' ? audioSegmentStart(segment, segdur, timescale) : segment * segmentTicks(segdur, timescale);
}
