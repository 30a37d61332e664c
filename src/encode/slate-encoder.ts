import { setPriority } from 'node:os';
import { createHash } from 'node:crypto';
import { mkdir, readdir, readFile } from 'node:fs/promises';
import { writeAtomically } from '../files.ts';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import type { Logger } from '../log.ts';
import { TrackChunker, type InitEvent, type SampleWithData } from '../packager/chunker.ts';
import type { SlateClip } from '../packager/slate.ts';
import { startEncoder } from './encoder.ts';
import type { EncoderPlan } from './ffmpeg-args.ts';

/** Pure: one track's encoded slate (fMP4 bytes) → its clip. */
export function slateClipFrom(track: string, bytes: Uint8Array, timing: { segdur: number; cdur: number }): SlateClip {
  const reader = new TrackChunker(track, timing);
  let init: InitEvent | undefined;
  const samples: SampleWithData[] = [];
  for (const item of reader.read(bytes)) {
    if (item.init) init = item.init;
    else samples.push(item.sample);
  }
  if (!init || !samples.length) throw new Error(`the slate of ${track} has no ${init ? 'samples' : 'init segment'}`);
  return { init, samples };
}

const collect = (stream: Readable) =>
  new Promise<Uint8Array>((resolve, reject) => {
    const pieces: Buffer[] = [];
    stream.on('data', (piece: Buffer) => pieces.push(piece));
    stream.on('end', () => resolve(Buffer.concat(pieces)));
    stream.on('error', reject);
  });

/**
 * Every slate cached under `cacheDir` but `except` (the current settings', which prepareSlate
 * has read): a restart after a settings change fills the previous period with the slate made for it.
 */
export async function cachedSlates(
  cacheDir: string,
  tracks: readonly string[],
  timing: { segdur: number; cdur: number },
  except?: string,
): Promise<SlateClip[]> {
  const keys = (await readdir(join(cacheDir, 'slate')).catch(() => [] as string[])).filter((key) => key !== except);
  const clips: SlateClip[] = [];
  for (const key of keys) {
    for (const track of tracks) {
      try {
        clips.push(
          slateClipFrom(track, new Uint8Array(await readFile(join(cacheDir, 'slate', key, `${track}.mp4`))), timing),
        );
      } catch {
        // Not a slate of this track.
      }
    }
  }
  return clips;
}

/** Pure: the slate cache's name for a command line (the same command line, the same slate). */
/** The lowest scheduling priority (nice 19 on Linux and macOS; Windows maps it to idle). */
const BACKGROUND_PRIORITY = 19;

export const slateCacheKey = (ffmpegPath: string, plan: EncoderPlan) =>
  createHash('sha256')
    .update(JSON.stringify([ffmpegPath, plan.args]))
    .digest('hex')
    .slice(0, 16);

/**
 * Encodes the slate with the live encoder's settings (the plan built with `slate`), or reads it
 * from `cacheDir` where the same command line encoded it before. Returns a clip per track.
 */
export async function prepareSlate(options: {
  ffmpegPath: string;
  plan: EncoderPlan;
  timing: { segdur: number; cdur: number };
  cacheDir: string | undefined;
  logger: Logger;
  /** Made ahead of need, at the lowest CPU priority: on a box short of CPU the live encode goes first. */
  background?: boolean;
}): Promise<SlateClip[]> {
  const { plan, logger } = options;
  const dir = options.cacheDir && join(options.cacheDir, 'slate', slateCacheKey(options.ffmpegPath, plan));
  if (dir) {
    try {
      const clips = await Promise.all(
        plan.tracks.map(async (t) =>
          slateClipFrom(t.id, new Uint8Array(await readFile(join(dir, `${t.id}.mp4`))), options.timing),
        ),
      );
      logger.debug({ dir }, 'slate read from the cache');
      return clips;
    } catch {
      // Not cached yet (or unreadable): encode it.
    }
  }
  const started = Date.now();
  const encoder = startEncoder({ ffmpegPath: options.ffmpegPath, plan, logger: logger.child({ component: 'slate' }) });
  if (options.background && encoder.pid !== undefined) {
    try {
      setPriority(encoder.pid, BACKGROUND_PRIORITY);
    } catch {
      // Not allowed here (some platforms): it runs at the normal priority.
    }
  }
  const bytes = await Promise.all(plan.tracks.map((t) => collect(encoder.tracks.get(t.id)!)));
  const exit = await encoder.exited;
  if (exit.code !== 0)
    throw new Error(
      `ffmpeg could not encode the slate (exit ${exit.code ?? exit.signal}): ${exit.stderrTail.slice(-3).join(' | ')}`,
    );
  const clips = plan.tracks.map((t, i) => slateClipFrom(t.id, bytes[i]!, options.timing));
  logger.info(
    { ms: Date.now() - started, tracks: clips.map((c) => `${c.init.track}: ${c.samples.length} samples`) },
    'slate encoded',
  );
  if (dir) {
    try {
      await mkdir(dir, { recursive: true });
      await Promise.all(plan.tracks.map((t, i) => writeAtomically(join(dir, `${t.id}.mp4`), bytes[i]!)));
    } catch (error) {
      logger.warn({ err: error, dir }, 'cannot cache the slate; it will be encoded again at the next start');
    }
  }
  return clips;
}
