import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';

/**
 * A light ladder for long runs on 2 cores (one 360p rendition, ultrafast), written as `light.yaml`
 * in `dir`; its 10-minute time-shift window keeps a whole run's segments for measuring.
 */
export async function writeLightProfile(dir: string): Promise<string> {
  const file = join(dir, 'light.yaml');
  await writeFile(
    file,
    `name: light
segdur: 1
cdur: 0.1
asto: 0.9
idr: 1
tsb: 600
video: { framerate: 30, preset: ultrafast, vbvBuffer: 0.5, renditions: [{ id: 360p, width: 640, height: 360, bitrate: 800k }] }
audio: { codec: aac, bitrate: 128k, samplerate: 48000, channels: 2 }
latency: { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } }
`,
  );
  return file;
}
