import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { codecString, type Sample, type TrackInfo } from '../../src/packager/fmp4.ts';
import { readFmp4 } from './fmp4-reader.ts';
import { segmentTicks } from '../../src/timeline/epoch-grid.ts';

export interface TrackReport {
  track: TrackInfo;
  codec: string;
  samples: Sample[];
  syncTimes: bigint[];
  /** Whole segments only (from one grid boundary to the next): bits per second of media. */
  segmentBitrates: { segment: bigint; bitsPerSecond: number }[];
  frameRate: number;
}

/** Segment numbers present in a track's directory, in order. */
export async function segmentNumbers(dir: string, track: string): Promise<bigint[]> {
  const names = await readdir(join(dir, track));
  return names
    .flatMap((n) => (/^\d+\.m4s$/.test(n) ? [BigInt(n.slice(0, -4))] : []))
    .sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
}

/** A track as written by the directory output: its init segment, then every segment in order. */
export async function readTrack(dir: string, track: string): Promise<Uint8Array> {
  const parts = [await readFile(join(dir, track, 'init.mp4'))];
  for (const n of await segmentNumbers(dir, track)) parts.push(await readFile(join(dir, track, `${n}.m4s`)));
  return new Uint8Array(Buffer.concat(parts));
}

/** Measures one track's fMP4 bytes against the epoch grid of `segdur`. */
export async function analyseTrack(bytes: Uint8Array, segdur: number): Promise<TrackReport> {
  const { tracks, fragments } = readFmp4(bytes);
  const track = tracks[0];
  if (!track) throw new Error('no track in the init segment');
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
