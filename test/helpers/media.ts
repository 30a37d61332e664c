import { readFile } from 'node:fs/promises';
import { codecString, readFmp4, type Sample, type TrackInfo } from '../../src/packager/fmp4.ts';
import { segmentTicks } from '../../src/encode/epoch-grid.ts';

export interface TrackReport {
  track: TrackInfo;
  codec: string;
  samples: Sample[];
  syncTimes: bigint[];
  /** Whole segments only (from one grid boundary to the next): bits per second of media. */
  segmentBitrates: { segment: bigint; bitsPerSecond: number }[];
  frameRate: number;
}

/** Reads one track's fMP4 file and measures it against the epoch grid of `segdur`. */
export async function analyseTrack(path: string, segdur: number): Promise<TrackReport> {
  const { tracks, fragments } = readFmp4(await readFile(path));
  const track = tracks[0];
  if (!track) throw new Error(`${path}: no track`);
  const samples = fragments.flatMap((f) => f.tracks.flatMap((t) => t.samples));
  const ticks = segmentTicks(segdur, track.timescale);
  const bySegment = new Map<bigint, { bytes: number; ticks: bigint; starts: boolean }>();
  for (const s of samples) {
    const segment = s.decodeTime / ticks;
    const entry = bySegment.get(segment) ?? { bytes: 0, ticks: 0n, starts: s.decodeTime % ticks === 0n };
    entry.bytes += s.size;
    entry.ticks += BigInt(s.duration);
    bySegment.set(segment, entry);
  }
  const segmentBitrates = [...bySegment]
    .filter(([, e]) => e.starts && e.ticks === ticks)
    .map(([segment, e]) => ({ segment, bitsPerSecond: (e.bytes * 8) / segdur }));
  const durations = samples.map((s) => s.duration).sort((a, b) => a - b);
  const median = durations[Math.floor(durations.length / 2)] ?? 0;
  return {
    track,
    codec: codecString(track),
    samples,
    syncTimes: samples.filter((s) => s.sync).map((s) => s.decodeTime),
    segmentBitrates,
    frameRate: median ? track.timescale / median : 0,
  };
}
