import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { childBoxes } from '../../src/packager/boxes.ts';
import { parseMoof } from '../../src/packager/fmp4.ts';
import { segmentNumbers } from './media.ts';

export interface ProbedSegment {
  /** Packet times in seconds, in decode order. */
  packets: { pts: number; duration: number; key: boolean }[];
  /** Frames ffmpeg decoded: the segment decodes after its init segment. */
  decodedFrames: number;
}

/** ffprobe on init + one segment, decoding every frame. */
export async function probeSegment(dir: string, track: string, segment: bigint): Promise<ProbedSegment> {
  const scratch = await mkdtemp(join(tmpdir(), 'appliance-probe-'));
  const file = join(scratch, 'segment.mp4');
  try {
    await writeFile(
      file,
      Buffer.concat([await readFile(join(dir, track, 'init.mp4')), await readFile(join(dir, track, `${segment}.m4s`))]),
    );
    const { stdout } = await execa('ffprobe', [
      '-v',
      'error',
      '-count_frames',
      '-show_entries',
      'packet=pts_time,duration_time,flags:stream=nb_read_frames',
      '-of',
      'json',
      file,
    ]);
    const json = JSON.parse(stdout) as {
      packets: { pts_time: string; duration_time: string; flags: string }[];
      streams: { nb_read_frames: string }[];
    };
    return {
      packets: json.packets.map((p) => ({
        pts: Number(p.pts_time),
        duration: Number(p.duration_time),
        key: p.flags.startsWith('K'),
      })),
      decodedFrames: Number(json.streams[0]?.nb_read_frames ?? 0),
    };
  } finally {
    await rm(scratch, { recursive: true, force: true });
  }
}

/** The top-level layout of a segment file: box types, styp brands, and each chunk's tfdt. */
export async function segmentLayout(dir: string, track: string, segment: bigint) {
  const bytes = new Uint8Array(await readFile(join(dir, track, `${segment}.m4s`)));
  const top = [...childBoxes(bytes)];
  const styp = top[0]?.type === 'styp' ? top[0] : undefined;
  const brands = styp
    ? Array.from({ length: (styp.payload.length - 8) / 4 }, (_, i) =>
        new TextDecoder().decode(styp.payload.subarray(8 + 4 * i, 12 + 4 * i)),
      )
    : [];
  const chunkTimes = top
    .filter((b) => b.type === 'moof')
    .map((b) => parseMoof(b.payload, new Map()).tracks[0]!.baseDecodeTime);
  return { types: top.map((b) => b.type), brands, chunkTimes, prfts: top.filter((b) => b.type === 'prft').length };
}

/**
 * The segment checks every source's output passes (those first written for the test source):
 * each segment decodes after its init, starts on a keyframe at n·segdur (audio: within half a
 * frame; a frame exactly half a frame early starts the segment, and ffprobe prints 6 decimals),
 * lasts segdur ± one frame, holds `segdur / cdur` chunks each with tfdt and prft behind a CMAF styp,
 * and only the last carries lmsg.
 */
export async function assertSegmentsConform(
  dir: string,
  track: string,
  options: { segdur: number; cdur: number; minSegments: number; ended: boolean },
): Promise<void> {
  const numbers = await segmentNumbers(dir, track);
  assert.ok(numbers.length >= options.minSegments, `${track}: ${numbers.length} segments`);
  const frame = track === 'audio' ? 1024 / 48000 : 1 / 30;
  for (const n of numbers) {
    const probed = await probeSegment(dir, track, n);
    const first = probed.packets[0]!;
    assert.equal(probed.decodedFrames, probed.packets.length, `${track}/${n}: every frame decodes`);
    assert.ok(first.key, `${track}/${n}: starts on a keyframe`);
    assert.ok(
      Math.abs(first.pts - Number(n) * options.segdur) <= (track === 'audio' ? frame / 2 : 0) + 1e-6,
      `${track}/${n}: starts at ${first.pts}`,
    );
    // ffprobe leaves the first AAC packet's duration out; the span from first start to last end is exact.
    const last = probed.packets.at(-1)!;
    const duration = last.pts + last.duration - first.pts;
    assert.ok(Math.abs(duration - options.segdur) <= frame + 1e-6, `${track}/${n}: lasts ${duration} s`);
    const layout = await segmentLayout(dir, track, n);
    const chunks = Math.round(options.segdur / options.cdur);
    assert.equal(layout.types[0], 'styp', `${track}/${n}`);
    assert.ok(
      layout.brands.includes('cmfs') && layout.brands.includes('cmfc'),
      `${track}/${n}: brands ${layout.brands}`,
    );
    assert.equal(
      layout.brands.includes('lmsg'),
      options.ended && n === numbers.at(-1),
      `${track}/${n}: lmsg only on the last segment`,
    );
    assert.equal(layout.chunkTimes.length, chunks, `${track}/${n}: chunks`);
    assert.equal(layout.prfts, chunks, `${track}/${n}: prft per chunk`);
    assert.ok(
      layout.chunkTimes.every((t, i) => i === 0 || t > layout.chunkTimes[i - 1]!),
      `${track}/${n}: tfdt increases chunk by chunk`,
    );
  }
}
