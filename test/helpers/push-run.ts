import { createHash } from 'node:crypto';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { startAppliance } from './run.ts';
import type { TestOrigin, UploadRecord } from './push-origin.ts';
import { LIGHT_PAIR, tracksOf } from './light-profile.ts';

// The appliance pushing to test origins: shared by the push test files. ultra-ll's timing on a light
// pair of renditions (delivery is under test, not the encode); the memory test keeps the default
// ladder, whose media rate is what a budget must hold back.
export const TRACKS = tracksOf(LIGHT_PAIR);
export const DEFAULT_TRACKS = ['1080p', '720p', 'audio'];
export const TOKEN = 'push-test-token';
// As the launcher (and a unit file) run the pinned Node: two malloc arenas.
export const env = { ...process.env, MALLOC_ARENA_MAX: '2', APPLIANCE_PUSH_TOKEN: TOKEN };

/**
 * The appliance on the pinned Node, one process (as the service runs it), with the push token;
 * delivery is the subject, so a loaded machine does not step the encoder down (--no-adapt).
 */
export function pushingAppliance(args: string[], profile: string, extraEnv: Record<string, string> = {}) {
  return startAppliance(process.execPath, ['start', '--no-adapt', '--profile', profile, ...args], {
    env: { ...env, ...extraEnv },
    timeout: 90_000,
  });
}

/** Every segment the directory output holds, which the origin must hold byte for byte too. */
export async function producedSegments(dir: string, tracks = TRACKS): Promise<{ path: string; hash: string }[]> {
  const out: { path: string; hash: string }[] = [];
  for (const track of tracks) {
    for (const name of (await readdir(join(dir, track))).filter((n) => n.endsWith('.m4s'))) {
      out.push({
        path: `${track}/${name}`,
        hash: createHash('sha256')
          .update(await readFile(join(dir, track, name)))
          .digest('hex'),
      });
    }
  }
  return out;
}

/** Per chunk of live media (earliest arrival of each, over every request): arrival − media end. */
export function chunkDelays(origin: TestOrigin, track: string, from = 0, to = Infinity): number[] {
  const earliest = new Map<number, number>();
  for (const upload of origin.uploads.filter((u) => u.path.startsWith(`live/${track}/`))) {
    for (const c of upload.chunks)
      if (c.mediaEndMs >= from && c.mediaEndMs < to)
        earliest.set(c.mediaEndMs, Math.min(earliest.get(c.mediaEndMs) ?? Infinity, c.at));
  }
  return [...earliest].map(([end, at]) => at - end);
}

export const segmentUploads = (origin: TestOrigin, track: string): UploadRecord[] =>
  origin.uploads.filter((u) => u.path.startsWith(`live/${track}/`) && u.path.endsWith('.m4s'));
