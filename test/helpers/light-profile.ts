import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

export interface LightRendition {
  id: string;
  width: number;
  height: number;
  bitrate: string;
}

/** One 360p rendition: what a test needs when the ladder's shape is not its subject. */
export const LIGHT_SINGLE: readonly LightRendition[] = [{ id: '360p', width: 640, height: 360, bitrate: '800k' }];

/**
 * Two renditions, so there is a top one to shed and a choice for players, at a few percent of a
 * core: the default ladder (1080p + 720p, superfast) takes ~0.7 of one, which a test that is not
 * about the encode should not spend on a machine whose other core may be busy.
 */
export const LIGHT_PAIR: readonly LightRendition[] = [
  ...LIGHT_SINGLE,
  { id: '180p', width: 320, height: 180, bitrate: '300k' },
];

/** The video tracks and the audio track a run on `renditions` makes. */
export const tracksOf = (renditions: readonly LightRendition[]) => [...renditions.map((r) => r.id), 'audio'];

/**
 * A light ladder for runs on 2 cores (ultrafast; one 360p rendition unless told), ultra-ll's
 * timing, written as `<name>.yaml` in `dir`; its default 10-minute time-shift window keeps a whole
 * run's segments for measuring.
 */
export async function writeLightProfile(
  dir: string,
  options: { renditions?: readonly LightRendition[]; tsb?: number; name?: string; passthrough?: boolean } = {},
): Promise<string> {
  const name = options.name ?? 'light';
  const renditions = (options.renditions ?? LIGHT_SINGLE)
    .map((r) => `{ id: ${r.id}, width: ${r.width}, height: ${r.height}, bitrate: ${r.bitrate} }`)
    .join(', ');
  const file = join(dir, `${name}.yaml`);
  await writeFile(
    file,
    `name: ${name}
segdur: 1
cdur: 0.1
asto: 0.9
idr: 1
tsb: ${options.tsb ?? 600}
video: { framerate: 30, preset: ultrafast, vbvBuffer: 0.5, passthrough: ${options.passthrough ?? false}, renditions: [${renditions}] }
audio: { codec: aac, bitrate: 128k, samplerate: 48000, channels: 2 }
latency: { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } }
`,
  );
  return file;
}
