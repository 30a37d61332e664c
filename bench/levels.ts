// What each real-time level of ultra-ll costs on this machine: the whole live command line (test
// source, burnt-in clock, renditions, audio, muxers) encoded as fast as one core allows, as the
// share of that core real time takes. levelCosts() in src/ladder/realtime-steps.ts is fitted to it.
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { parseTestSource } from '../src/capture/source.ts';
import { loadProfile } from '../src/config/profile.ts';
import { startEncoder } from '../src/encode/encoder.ts';
import { buildEncoderPlan } from '../src/encode/ffmpeg-args.ts';
import { planLadder } from '../src/ladder/ladder.ts';
import { levelCosts, realtimeLevels } from '../src/ladder/realtime-steps.ts';
import { createLogger } from '../src/log.ts';

export interface LevelCost {
  change: string;
  /** Share of one core the level's encode takes at real time. */
  measuredShare: number;
  /** What levelCosts() predicts, relative to level 0's measured share. */
  modelShare: number;
}

const SECONDS = 6;

/** Times each level pinned to core 0 (in a child, so this process is not on that core). */
export async function levelCostRun(): Promise<LevelCost[]> {
  const child = await execa('taskset', ['-c', '0', process.execPath, fileURLToPath(import.meta.url), '--probe']);
  return JSON.parse(child.stdout) as LevelCost[];
}

async function probe(): Promise<LevelCost[]> {
  const { profile } = await loadProfile('ultra-ll');
  const levels = realtimeLevels({
    ...profile,
    realtime: { ...profile.realtime, adapt: true, steps: ['preset', 'top-rendition', 'framerate', 'framerate'] },
  });
  const costs = levelCosts(levels);
  const shares: number[] = [];
  for (const level of levels) {
    const source = parseTestSource('test');
    const plan = buildEncoderPlan(
      level.profile,
      source,
      planLadder(level.profile.video.renditions, source).renditions,
      {
        probeSeconds: SECONDS,
        startMs: Date.now(),
      },
    );
    const started = performance.now();
    const encoder = startEncoder({ ffmpegPath: 'ffmpeg', plan, logger: createLogger('silent') });
    for (const stream of encoder.tracks.values()) stream.resume();
    await encoder.exited;
    shares.push((performance.now() - started) / 1000 / SECONDS);
  }
  const round = (x: number) => Math.round(x * 1000) / 1000;
  return levels.map((level, i) => ({
    change: level.change || 'ultra-ll as written',
    measuredShare: round(shares[i]!),
    modelShare: round((costs[i]! / costs[0]!) * shares[0]!),
  }));
}

if (process.argv.includes('--probe')) process.stdout.write(`${JSON.stringify(await probe())}\n`);
