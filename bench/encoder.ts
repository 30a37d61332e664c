import { readFile } from 'node:fs/promises';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseTestSource } from '../src/capture/source.ts';
import { TEST_SOURCE_FILTERS } from '../src/capture/test-source.ts';
import { loadProfile } from '../src/config/profile.ts';
import { startEncoder } from '../src/encode/encoder.ts';
import { placeOnGrid, segmentTicks } from '../src/timeline/epoch-grid.ts';
import { buildEncoderPlan } from '../src/encode/ffmpeg-args.ts';
import { locateFfmpeg } from '../src/encode/ffmpeg-resolve.ts';
import { createLogger } from '../src/log.ts';
import type { Sample } from '../src/packager/fmp4.ts';
import { Fmp4StreamReader } from '../test/helpers/fmp4-reader.ts';

export interface EncoderRun {
  /** Per track: wall-clock arrival of each fragment in Node minus the media end of its last sample. */
  latencyMs: Record<string, number[]>;
  /** Per video track: (segment bits / target) − 1, whole segments only, in %. */
  bitrateDeviationPct: Record<string, number[]>;
  idrs: number;
  idrsOnGrid: number;
  ffmpegCoresPerMediaSecond: number;
  ffmpegPeakRssMiB: number;
  speed: number | undefined;
}

const CLOCK_TICKS_PER_SECOND = 100;

async function procStat(pid: number): Promise<{ cpuSeconds: number; peakRssMiB: number }> {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  const hwmKiB = Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0);
  // Fields 14 and 15 (utime, stime) are at 11 and 12 after the command name.
  return { cpuSeconds: (Number(stat[11]) + Number(stat[12])) / CLOCK_TICKS_PER_SECOND, peakRssMiB: hwmKiB / 1024 };
}

export async function runEncoderOnce(options: {
  seconds: number;
  profile: string;
  source: string;
}): Promise<EncoderRun> {
  const { profile } = await loadProfile(options.profile);
  const source = parseTestSource(options.source);
  const plan = buildEncoderPlan(profile, source, profile.video.renditions);
  const ffmpeg = await locateFfmpeg(undefined, { encoders: ['libx264', 'aac'], filters: [...TEST_SOURCE_FILTERS] });
  const logger = createLogger('error');
  let speed: number | undefined;
  const encoder = startEncoder({
    ffmpegPath: ffmpeg.path,
    plan,
    logger,
    onProgress: (p) => (speed = p.speed ?? speed),
  });

  const latencyMs: Record<string, number[]> = {};
  const samples: Record<string, { timescale: number; list: Sample[] }> = {};
  for (const track of plan.tracks) {
    const reader = new Fmp4StreamReader();
    latencyMs[track.id] = [];
    encoder.tracks.get(track.id)!.on('data', (piece: Uint8Array) => {
      const arrival = performance.timeOrigin + performance.now();
      for (const event of reader.push(piece)) {
        if (event.type !== 'fragment') continue;
        for (const traf of event.fragment.tracks) {
          const timescale = reader.tracks.get(traf.trackId)!.timescale;
          const last = traf.samples.at(-1);
          if (!last) continue;
          const endMs = Number(((last.decodeTime + BigInt(last.duration)) * 1000n) / BigInt(timescale));
          latencyMs[track.id]!.push(arrival - endMs);
          samples[track.id] ??= { timescale, list: [] };
          samples[track.id]!.list.push(...traf.samples);
        }
      }
    });
  }

  const started = await procStat(encoder.pid!);
  await sleep(options.seconds * 1000);
  const ended = await procStat(encoder.pid!);
  await encoder.stop();

  const bitrateDeviationPct: Record<string, number[]> = {};
  let idrs = 0;
  let idrsOnGrid = 0;
  for (const track of plan.tracks.filter((t) => t.kind === 'video')) {
    const { timescale, list } = samples[track.id]!;
    const ticks = segmentTicks(profile.segdur, timescale);
    const bytes = new Map<bigint, { size: number; ticks: bigint; starts: boolean }>();
    for (const s of list) {
      const { segment, aligned } = placeOnGrid(s.decodeTime, timescale, profile.segdur);
      const e = bytes.get(segment) ?? { size: 0, ticks: 0n, starts: aligned };
      e.size += s.size;
      e.ticks += BigInt(s.duration);
      bytes.set(segment, e);
      if (s.sync) {
        idrs++;
        if (aligned) idrsOnGrid++;
      }
    }
    bitrateDeviationPct[track.id] = [...bytes.values()]
      .filter((e) => e.starts && e.ticks === ticks)
      .map((e) => ((e.size * 8) / profile.segdur / track.bitrate - 1) * 100);
  }
  return {
    latencyMs,
    bitrateDeviationPct,
    idrs,
    idrsOnGrid,
    ffmpegCoresPerMediaSecond: (ended.cpuSeconds - started.cpuSeconds) / options.seconds,
    ffmpegPeakRssMiB: ended.peakRssMiB,
    speed,
  };
}
