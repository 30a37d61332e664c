import {
  logLines,
  withoutLogPrefix,
  type AudioMode,
  type Camera,
  type CaptureDevice,
  type Microphone,
  type VideoMode,
} from './types.ts';

// Pure parsers for ffmpeg's dshow listings (Windows), in both styles: ffmpeg ≤ 4.4 with section
// headers, ffmpeg ≥ 5.0 with a "(video)"/"(audio)"/"(video, audio)"/"(none)" suffix per device.

/** Pure: `ffmpeg -list_devices true -f dshow -i dummy` → cameras and microphones. */
export function parseDshowDevices(text: string): CaptureDevice[] {
  const devices: CaptureDevice[] = [];
  let section: 'video' | 'audio' | undefined;
  let last: CaptureDevice[] = [];
  const indexes = { video: 0, audio: 0 };
  for (const line of logLines(text)) {
    if (!/^\[dshow @/.test(line)) continue;
    const body = withoutLogPrefix(line);
    if (/^DirectShow video devices/.test(body)) section = 'video';
    else if (/^DirectShow audio devices/.test(body)) section = 'audio';
    const alternative = /^\s*Alternative name "(.*)"\s*$/.exec(body);
    if (alternative) {
      for (const device of last) device.alternativeName = alternative[1]!;
      continue;
    }
    const entry = /^\s*"(.*)"(?:\s+\(([^)]*)\))?\s*$/.exec(body);
    if (!entry) continue;
    const name = entry[1]!;
    const kinds =
      entry[2] === undefined
        ? section
          ? [section]
          : []
        : entry[2]
            .split(',')
            .map((k) => k.trim())
            .filter((k): k is 'video' | 'audio' => k === 'video' || k === 'audio');
    last = [];
    const both = kinds.includes('video') && kinds.includes('audio');
    for (const kind of kinds) {
      const device: CaptureDevice =
        kind === 'video'
          ? ({
              kind,
              api: 'dshow',
              id: name,
              name,
              index: indexes.video++,
              modes: [],
              ...(both ? { alsoAudio: true } : {}),
            } satisfies Camera)
          : ({ kind, api: 'dshow', id: name, name, index: indexes.audio++, modes: [] } satisfies Microphone);
      devices.push(device);
      last.push(device);
    }
  }
  return devices;
}

/** Pure: `ffmpeg -list_options true -f dshow -i video=NAME` → the camera's modes (one per size and format). */
export function parseDshowVideoOptions(text: string): VideoMode[] {
  const modes: VideoMode[] = [];
  for (const line of logLines(text).map(withoutLogPrefix)) {
    const match =
      /^\s*(pixel_format|vcodec)=(\S+)\s+min s=(\d+)x(\d+) fps=([\d.]+) max s=(\d+)x(\d+) fps=([\d.]+)/.exec(line);
    if (!match) continue;
    const format = match[2]!;
    const compressed = match[1] === 'vcodec';
    const rate = { min: Number(match[5]), max: Number(match[8]) };
    const [width, height] = [Number(match[6]), Number(match[7])];
    // ≥ 5.0 repeats a mode per colour description: one entry, the widest rates.
    const same = modes.find((m) => m.format === format && m.width === width && m.height === height);
    if (same) {
      const r = same.rates[0]!;
      same.rates[0] = { min: Math.min(r.min, rate.min), max: Math.max(r.max, rate.max) };
    } else {
      modes.push({ format, compressed, width, height, rates: [rate] });
    }
  }
  return modes;
}

/** Pure: `ffmpeg -list_options true -f dshow -i audio=NAME` → the microphone's modes (≥ 5.0 and older styles). */
export function parseDshowAudioOptions(text: string): AudioMode[] {
  const modes: AudioMode[] = [];
  for (const line of logLines(text).map(withoutLogPrefix)) {
    const current = /^\s*ch=\s*(\d+), bits=\s*(\d+), rate=\s*(\d+)/.exec(line);
    if (current) {
      modes.push({ channels: Number(current[1]), sampleFormat: `${current[2]} bit`, sampleRate: Number(current[3]) });
      continue;
    }
    const old = /^\s*min ch=\s*(\d+) bits=\s*(\d+) rate=\s*(\d+) max ch=\s*(\d+) bits=\s*(\d+) rate=\s*(\d+)/.exec(
      line,
    );
    if (old) {
      const [minCh, maxCh, minRate, maxRate] = [Number(old[1]), Number(old[4]), Number(old[3]), Number(old[6])];
      modes.push({
        channels: minCh === maxCh ? minCh : { min: minCh, max: maxCh },
        sampleFormat: old[2] === old[5] ? `${old[2]} bit` : `${old[2]}–${old[5]} bit`,
        sampleRate: minRate === maxRate ? minRate : { min: minRate, max: maxRate },
      });
    }
  }
  return modes;
}
