import type { HlsChunk } from '../../src/packager/hls-timeline.ts';

/** Chunks of a 1 s segment as the chunker makes them: 10 video chunks of 3 frames, or audio chunks of 5/4 AAC frames. */
export function videoChunks(
  track: string,
  segment: bigint,
  sizes = Array.from({ length: 10 }, (_, i) => 1000 + i),
): HlsChunk[] {
  return sizes.map((byteLength, part) => ({
    track,
    segment,
    part,
    byteLength,
    duration: 9000,
    timescale: 90000,
    decodeTime: segment * 90000n + BigInt(part * 9000),
    independent: part === 0,
    segmentComplete: part === sizes.length - 1,
  }));
}
export function audioChunks(segment: bigint): HlsChunk[] {
  const frames = [5, 4, 5, 5, 5, 4, 5, 5, 4, 5];
  let at = segment * 48000n;
  return frames.map((n, part) => {
    const chunk = {
      track: 'audio',
      segment,
      part,
      byteLength: n * 400,
      duration: n * 1024,
      timescale: 48000,
      decodeTime: at,
      independent: true,
      segmentComplete: part === frames.length - 1,
    };
    at += BigInt(n * 1024);
    return chunk;
  });
}
