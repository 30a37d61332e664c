import {
  logLines,
  withoutLogPrefix,
  type Camera,
  type CaptureDevice,
  type Microphone,
  type VideoMode,
} from './types.ts';

// Pure parsers for ffmpeg's avfoundation messages (macOS). avfoundation has no option listing:
// a camera's modes come from the error it prints for a mode it does not have.

/**
 * Pure: `ffmpeg -f avfoundation -list_devices true -i ""` → cameras and microphones. Both log
 * styles: `[AVFoundation indev @ …]` (ffmpeg ≥ 4.4) and `[AVFoundation input device @ …]`.
 */
export function parseAvfoundationDevices(text: string): CaptureDevice[] {
  const devices: CaptureDevice[] = [];
  let section: 'video' | 'audio' | undefined;
  for (const line of logLines(text)) {
    if (!/^\[AVFoundation (?:indev|input device) @/.test(line)) continue;
    const body = withoutLogPrefix(line);
    if (/video devices:$/.test(body)) section = 'video';
    else if (/audio devices:$/.test(body)) section = 'audio';
    const entry = /^\[(\d+)\] (.+)$/.exec(body);
    if (!entry || !section) continue;
    const index = Number(entry[1]);
    const base = { api: 'avfoundation' as const, id: String(index), name: entry[2]!.trim(), index };
    if (section === 'video') {
      const screen = /^Capture screen \d+/.test(base.name);
      devices.push({
        kind: 'video',
        ...base,
        modes: [],
        ...(screen ? { notForDefault: 'a screen, not a camera' } : {}),
      } satisfies Camera);
    } else {
      devices.push({ kind: 'audio', ...base, modes: [] } satisfies Microphone);
    }
  }
  return devices;
}

/**
 * Pure: the `Supported modes:` avfoundation prints after `Selected framerate (…) is not supported`
 * → modes. Each range is selectable only at its maximum rate (ffmpeg matches the max within 0.01).
 */
export function parseAvfoundationModes(text: string): VideoMode[] {
  const modes: VideoMode[] = [];
  for (const line of logLines(text).map(withoutLogPrefix)) {
    const match = /^\s*(\d+)x(\d+)@\[([\d.]+) ([\d.]+)\]fps/.exec(line);
    if (!match) continue;
    const [width, height, min, max] = [Number(match[1]), Number(match[2]), Number(match[3]), Number(match[4])];
    const same = modes.find((m) => m.width === width && m.height === height);
    const rate = { min, max };
    if (same) {
      if (!same.rates.some((r) => r.min === min && r.max === max)) same.rates.push(rate);
    } else {
      modes.push({ format: 'uyvy422', compressed: false, width, height, rates: [rate] });
    }
  }
  return modes;
}

/** Pure: the `Supported pixel formats:` avfoundation prints for one it does not take. */
export function parseAvfoundationPixelFormats(text: string): string[] {
  const lines = logLines(text).map(withoutLogPrefix);
  const start = lines.findIndex((l) => /Supported pixel formats:/.test(l));
  if (start < 0) return [];
  const formats: string[] = [];
  for (const line of lines.slice(start + 1)) {
    const match = /^\s{2,}(\w+)\s*$/.exec(line);
    if (!match) break;
    formats.push(match[1]!);
  }
  return formats;
}
