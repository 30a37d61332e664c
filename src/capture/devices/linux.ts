import { parseFfmpegSources } from './ffmpeg-sources.ts';
import { logLines, withoutLogPrefix, type AudioMode, type Camera, type Microphone, type VideoMode } from './types.ts';

// Pure parsers for what Linux tools say about cameras (v4l2) and microphones (ALSA, Pulse/PipeWire).

/** V4L2 fourcc → ffmpeg's name for it (v4l2-ctl prints fourccs, ffmpeg takes names). */
const FOURCC: Record<string, { format: string; compressed: boolean }> = {
  YUYV: { format: 'yuyv422', compressed: false },
  UYVY: { format: 'uyvy422', compressed: false },
  YVYU: { format: 'yvyu422', compressed: false },
  NV12: { format: 'nv12', compressed: false },
  NV21: { format: 'nv21', compressed: false },
  YU12: { format: 'yuv420p', compressed: false },
  GREY: { format: 'gray', compressed: false },
  RGB3: { format: 'rgb24', compressed: false },
  BGR3: { format: 'bgr24', compressed: false },
  MJPG: { format: 'mjpeg', compressed: true },
  JPEG: { format: 'mjpeg', compressed: true },
  H264: { format: 'h264', compressed: true },
};

/** Pure: `ffmpeg -f v4l2 -list_formats all -i /dev/videoN` → modes (sizes only: ffmpeg lists no rates). */
export function parseV4l2ListFormats(text: string): VideoMode[] {
  const modes: VideoMode[] = [];
  for (const line of logLines(text).map(withoutLogPrefix)) {
    // Columns are separated by " : "; descriptions hold colons of their own (Y/UV 4:2:0).
    const match = /^(Raw|Compressed)\s*:\s+(\S+)\s+:\s+(.+?)\s+:\s+(?:Emulated\s+:\s+)?(.*)$/.exec(line);
    if (!match || match[2] === 'Unsupported') continue;
    const compressed = match[1] === 'Compressed';
    const format = match[2]!;
    const stepwise = /^\{(\d+)-(\d+), ?(\d+)\}x\{(\d+)-(\d+), ?(\d+)\}/.exec(match[4]!);
    if (stepwise) {
      modes.push({
        format,
        compressed,
        width: Number(stepwise[2]),
        height: Number(stepwise[5]),
        rates: [],
        stepwise: true,
      });
      continue;
    }
    for (const size of match[4]!.matchAll(/(\d+)x(\d+)/g))
      modes.push({ format, compressed, width: Number(size[1]), height: Number(size[2]), rates: [] });
  }
  return modes;
}

/** Pure: `v4l2-ctl -d /dev/videoN --list-formats-ext` → modes with their frame rates. */
export function parseV4l2CtlFormats(text: string): VideoMode[] {
  const modes: VideoMode[] = [];
  let format: { format: string; compressed: boolean } | undefined;
  let mode: VideoMode | undefined;
  for (const line of text.split(/\r?\n/)) {
    const fmt = /^\s*\[\d+\]: '([^']+)'/.exec(line);
    if (fmt) {
      const fourcc = fmt[1]!.trim();
      format = FOURCC[fourcc] ?? { format: fourcc.toLowerCase(), compressed: false };
      mode = undefined;
      continue;
    }
    const discrete = /^\s*Size: Discrete (\d+)x(\d+)/.exec(line);
    const stepwise = /^\s*Size: (?:Stepwise|Continuous) \d+x\d+ - (\d+)x(\d+)/.exec(line);
    if (format && (discrete || stepwise)) {
      const size = (discrete ?? stepwise)!;
      mode = {
        ...format,
        width: Number(size[1]),
        height: Number(size[2]),
        rates: [],
        ...(stepwise ? { stepwise: true } : {}),
      };
      modes.push(mode);
      continue;
    }
    const interval = /^\s*Interval: Discrete [\d.]+s \(([\d.]+) fps\)/.exec(line);
    if (mode && interval) mode.rates.push({ min: Number(interval[1]), max: Number(interval[1]) });
    const range = /^\s*Interval: (?:Stepwise|Continuous) .*\(([\d.]+)-([\d.]+) fps\)/.exec(line);
    if (mode && range) mode.rates.push({ min: Number(range[1]), max: Number(range[2]) });
  }
  return modes;
}

/** Pure: `v4l2-ctl --list-devices` → each device's name and its /dev/video nodes, in order. */
export function parseV4l2CtlDevices(text: string): { name: string; bus: string | undefined; nodes: string[] }[] {
  const devices: { name: string; bus: string | undefined; nodes: string[] }[] = [];
  for (const line of text.split(/\r?\n/)) {
    const header = /^(\S.*?)(?: \(([^()]*)\))?:\s*$/.exec(line);
    if (header) devices.push({ name: header[1]!, bus: header[2], nodes: [] });
    else if (/^\s+\/dev\/video\d+/.test(line) && devices.length) devices.at(-1)!.nodes.push(line.trim());
  }
  return devices;
}

/** Pure: the v4l2 nodes (`ffmpeg -sources v4l2`) with each node's modes → cameras; nodes without modes are metadata nodes. */
export function v4l2Cameras(sourcesText: string, modesOf: (node: string) => VideoMode[]): Camera[] {
  const cameras: Camera[] = [];
  for (const source of parseFfmpegSources(sourcesText).sources) {
    const modes = modesOf(source.id);
    if (modes.length === 0) continue;
    cameras.push({ kind: 'video', api: 'v4l2', id: source.id, name: source.description, index: cameras.length, modes });
  }
  return cameras;
}

/** Pure: `arecord -l` → the capture cards and devices with their friendly names. */
export function parseArecordList(text: string): { card: string; device: number; name: string }[] {
  const found: { card: string; device: number; name: string }[] = [];
  for (const line of text.split(/\r?\n/)) {
    const match = /^card \d+: (\S+) \[([^\]]*)\], device (\d+): [^[]*\[([^\]]*)\]/.exec(line);
    if (match) found.push({ card: match[1]!, device: Number(match[3]), name: `${match[2]} (${match[4]})` });
  }
  return found;
}

/**
 * Pure: ALSA capture devices: the `hw:` entries of `ffmpeg -sources alsa` (one per card and
 * device; `plughw:` and `dsnoop:` are other ways into the same ones), named from `arecord -l`.
 */
export function alsaMicrophones(sourcesText: string, arecordText = ''): Microphone[] {
  const names = new Map(parseArecordList(arecordText).map((d) => [`hw:CARD=${d.card},DEV=${d.device}`, d.name]));
  const ids = parseFfmpegSources(sourcesText)
    .sources.map((s) => s.id)
    .filter((id) => id.startsWith('hw:'));
  for (const id of names.keys()) if (!ids.includes(id)) ids.push(id);
  return ids.map((id, index) => {
    const card = /CARD=([^,]+)/.exec(id)?.[1] ?? id;
    return { kind: 'audio', api: 'alsa', id, name: names.get(id) ?? card, index, modes: [] };
  });
}

/** Pure: a `pactl list short sources` spec such as `s16le 2ch 48000Hz` → an audio mode. */
function pulseMode(spec: string): AudioMode | undefined {
  const match = /^(\S+) (\d+)ch (\d+)Hz$/.exec(spec.trim());
  return match ? { sampleFormat: match[1]!, channels: Number(match[2]), sampleRate: Number(match[3]) } : undefined;
}

/** Pure: Pulse/PipeWire sources from `ffmpeg -sources pulse` (default marked) and/or `pactl list short sources` (formats). */
export function pulseMicrophones(sourcesText: string, pactlText = ''): { microphones: Microphone[]; problem?: string } {
  const listed = parseFfmpegSources(sourcesText);
  const specs = new Map<string, AudioMode>();
  const order: string[] = listed.sources.map((s) => s.id);
  for (const line of pactlText.split(/\r?\n/)) {
    const [, name, , spec] = line.split('\t');
    if (!name || !spec) continue;
    const mode = pulseMode(spec);
    if (mode) specs.set(name, mode);
    if (!order.includes(name)) order.push(name);
  }
  const microphones = order.map((id, index): Microphone => {
    const source = listed.sources.find((s) => s.id === id);
    const mode = specs.get(id);
    return {
      kind: 'audio',
      api: 'pulse',
      id,
      name: source?.description ?? id,
      index,
      modes: mode ? [mode] : [],
      ...(source?.isDefault ? { isDefault: true } : {}),
      ...(id.endsWith('.monitor')
        ? { notForDefault: 'the monitor of an output (what the machine plays), not a microphone' }
        : {}),
    };
  });
  return listed.problem === undefined
    ? { microphones }
    : { microphones, problem: `PulseAudio/PipeWire: ${listed.problem}` };
}
