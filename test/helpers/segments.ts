import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { childBoxes } from '../../src/packager/boxes.ts';
import { parseMoof } from '../../src/packager/fmp4.ts';

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
    await writeFile(file, Buffer.concat([await readFile(join(dir, track, 'init.mp4')), await readFile(join(dir, track, `${segment}.m4s`))]));
    const { stdout } = await execa('ffprobe', ['-v', 'error', '-count_frames', '-show_entries', 'packet=pts_time,duration_time,flags:stream=nb_read_frames', '-of', 'json', file]);
    const json = JSON.parse(stdout) as { packets: { pts_time: string; duration_time: string; flags: string }[]; streams: { nb_read_frames: string }[] };
    return {
      packets: json.packets.map((p) => ({ pts: Number(p.pts_time), duration: Number(p.duration_time), key: p.flags.startsWith('K') })),
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
  const brands = styp ? Array.from({ length: (styp.payload.length - 8) / 4 }, (_, i) => new TextDecoder().decode(styp.payload.subarray(8 + 4 * i, 12 + 4 * i))) : [];
  const chunkTimes = top.filter((b) => b.type === 'moof').map((b) => parseMoof(b.payload, new Map()).tracks[0]!.baseDecodeTime);
  return { types: top.map((b) => b.type), brands, chunkTimes, prfts: top.filter((b) => b.type === 'prft').length };
}
