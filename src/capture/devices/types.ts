// One structure for what every platform's listing says about capture devices.

export type CaptureApi = 'v4l2' | 'alsa' | 'pulse' | 'avfoundation' | 'dshow';
export type Platform = 'linux' | 'darwin' | 'win32';

/** Frame rates a mode offers: a discrete rate is a range with min = max. */
export interface RateRange {
  min: number;
  max: number;
}

export interface VideoMode {
  /** ffmpeg's name: a pixel format (yuyv422, nv12, uyvy422) or a codec (mjpeg, h264). */
  format: string;
  compressed: boolean;
  width: number;
  height: number;
  /** Empty: the listing does not say (ffmpeg's v4l2 listing has no rates). */
  rates: RateRange[];
  /** Any even size up to width×height (v4l2 stepwise sizes). */
  stepwise?: boolean;
}

export interface AudioMode {
  /** Hz; a range when the device takes any rate in it. */
  sampleRate?: number | RateRange;
  channels?: number | { min: number; max: number };
  /** s16le, s32le, … or bits per sample as dshow prints them. */
  sampleFormat?: string;
}

interface DeviceBase {
  api: CaptureApi;
  /** What ffmpeg's `-i` takes: /dev/video0, hw:CARD=C920,DEV=0, a Pulse source, an index, a name. */
  id: string;
  /** The friendly name people see. */
  name: string;
  /** Its place in the platform's listing (avfoundation takes it as the id). */
  index: number;
  alternativeName?: string;
  /** The system's default (Pulse marks one). */
  isDefault?: boolean;
  /** Why the appliance would not pick it by itself (a monitor of an output, a screen). */
  notForDefault?: string;
}

export interface Camera extends DeviceBase {
  kind: 'video';
  modes: VideoMode[];
  /** Also offers audio in the same device (dshow "(video, audio)"). */
  alsoAudio?: boolean;
}

export interface Microphone extends DeviceBase {
  kind: 'audio';
  modes: AudioMode[];
}

export type CaptureDevice = Camera | Microphone;

/** A platform's listing: the devices, and what could not be listed (shown, never fatal). */
export interface DeviceListing {
  platform: Platform;
  devices: CaptureDevice[];
  problems: string[];
}

/** Both sizes, for messages and tables: 1920x1080. */
export const sizeOf = (mode: { width: number; height: number }) => `${mode.width}x${mode.height}`;

/** ffmpeg prefixes each log line with `[name @ 0x…] `; listings are read without it. */
export const withoutLogPrefix = (line: string) => line.replace(/^\[[^\]]*@ (?:0x)?[0-9a-fA-F]+\] ?/, '');

/** Lines of ffmpeg output: Windows line ends, and "Last message repeated N times" expanded. */
export function logLines(text: string): string[] {
  const lines: string[] = [];
  for (const raw of text.split(/\r?\n/)) {
    const repeated = /^\s*Last message repeated (\d+) times?$/.exec(raw);
    if (repeated && lines.length) {
      for (let i = 0; i < Number(repeated[1]); i++) lines.push(lines.at(-1)!);
    } else if (raw.trim() !== '') lines.push(raw);
  }
  return lines;
}
