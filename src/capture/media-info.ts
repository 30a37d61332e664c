// Pure: what ffmpeg says of an input when it opens it (`ffmpeg -i URL`, the "Input #0" dump on
// stderr), for files and feeds alike; any ffmpeg prints it, ffprobe or not.

export interface VideoStreamInfo {
  codec: string;
  width: number;
  height: number;
  /** Frames per second (an interlaced stream's frames, not its fields), when ffmpeg printed one. */
  framerate: number | undefined;
  /** `progressive`, `top first`, `bottom first`, or undefined when ffmpeg did not say. */
  fieldOrder: string | undefined;
}

export interface AudioStreamInfo {
  codec: string;
  sampleRate: number;
  /** The channel layout as printed: mono, stereo, 5.1(side), … */
  layout: string;
}

export interface InputInfo {
  /** Seconds; undefined for a live feed ("N/A"). */
  duration: number | undefined;
  start: number | undefined;
  video: VideoStreamInfo | undefined;
  audio: AudioStreamInfo | undefined;
  /** ffmpeg's own complaint when it could not open the input, e.g. "No such file or directory". */
  error: string | undefined;
}

const seconds = (hms: string) => hms.split(':').reduce((total, part) => total * 60 + Number(part), 0);

/** `29.97 fps`, `25 fps`, `1k fps` (a `k` is thousands; tbr/tbn are not rates). */
function fps(line: string): number | undefined {
  const match = /,\s*([\d.]+)(k?) fps\b/.exec(line);
  return match ? Number(match[1]) * (match[2] ? 1000 : 1) : undefined;
}

function videoStream(description: string): VideoStreamInfo | undefined {
  const codec = /^Video: (\w+)/.exec(description)?.[1];
  if (/\(attached pic\)/.test(description)) return undefined;
  const size = /,\s*(\d{2,5})x(\d{2,5})\b/.exec(description);
  if (!codec || !size) return undefined;
  const pixel = /,\s*\w+\(([^)]*)\)/.exec(description)?.[1];
  const fieldOrder = pixel
    ?.split(',')
    .map((p) => p.trim())
    .find((p) =>
      /^(progressive|top first|bottom first|top coded first \(swapped\)|bottom coded first \(swapped\))$/.test(p),
    );
  return { codec, width: Number(size[1]), height: Number(size[2]), framerate: fps(description), fieldOrder };
}

function audioStream(description: string): AudioStreamInfo | undefined {
  const match = /^Audio: (\w+).*?,\s*(\d+) Hz,\s*([^,]+)/.exec(description);
  return match ? { codec: match[1]!, sampleRate: Number(match[2]), layout: match[3]!.trim() } : undefined;
}

/** The first video and the first audio stream of input #0 (the ones ffmpeg maps by default). */
export function parseInputInfo(stderr: string): InputInfo {
  const info: InputInfo = {
    duration: undefined,
    start: undefined,
    video: undefined,
    audio: undefined,
    error: undefined,
  };
  let inInput = false;
  for (const line of stderr.split(/\r?\n/)) {
    if (/^Input #0\b/.test(line)) inInput = true;
    else if (/^(Input #[1-9]|Output #|Stream mapping:)/.test(line)) inInput = false;
    const timing = /^\s+Duration: ([\d:.]+|N\/A)(?:, start: (-?[\d.]+))?/.exec(line);
    if (inInput && timing) {
      info.duration = timing[1] === 'N/A' ? undefined : seconds(timing[1]!);
      info.start = timing[2] === undefined ? undefined : Number(timing[2]);
    }
    const stream = /^\s+Stream #0:\d+\S*: (.*)$/.exec(line);
    if (inInput && stream) {
      info.video ??= videoStream(stream[1]!);
      info.audio ??= audioStream(stream[1]!);
    }
  }
  if (!inInput && !info.video && !info.audio) {
    const lines = stderr
      .split(/\r?\n/)
      .map((l) => l.trim())
      .filter(Boolean);
    const last = lines.reverse().find((l) => !/^At least one output file must be specified$/.test(l));
    info.error = last?.replace(/^\S+: /, '') ?? 'ffmpeg could not open it';
  }
  return info;
}

/** Interlaced as far as ffmpeg says (a stream it calls progressive, or says nothing of, is not deinterlaced). */
export const isInterlaced = (video: VideoStreamInfo) =>
  video.fieldOrder !== undefined && video.fieldOrder !== 'progressive';
