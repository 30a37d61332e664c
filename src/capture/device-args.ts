import type { CaptureApi, Platform } from './devices/types.ts';
import type { VideoChoice } from './negotiate.ts';

// Pure: ffmpeg input arguments for capture devices, per platform, with the stamping that puts
// device media on the epoch timeline (`-copyts` keeps it; the encoder plan adds that).

export interface SelectedDevice {
  api: CaptureApi;
  /** What ffmpeg's `-i` takes for it (a path, a PCM or Pulse source name, an index, a dshow name). */
  id: string;
  name: string;
}

export interface DeviceSource {
  kind: 'device';
  platform: Platform;
  video: (SelectedDevice & { choice: VideoChoice }) | undefined;
  audio: SelectedDevice | undefined;
  /** The captured picture's size (or the top rendition's when there is no camera). */
  width: number;
  height: number;
  framerate: number;
}

/** Input arguments and the stream specifiers the graph takes video and audio from. */
export interface SourceInputs {
  args: string[];
  video: string;
  audio: string;
}

export interface AudioFormat {
  samplerate: number;
  channels: number;
}

/** Seconds of frames the demuxer thread may queue: a slow start of the encoder must not block capture (5.1's default is 8 packets). */
const VIDEO_QUEUE_SECONDS = 2;
const AUDIO_QUEUE_PACKETS = 1024;
/** Audio is read in pieces of about one AAC frame (21 ms): the device's default is up to 500 ms (dshow) or 50 ms (Pulse). */
const AUDIO_BUFFER_MS = 20;

const videoQueue = (choice: VideoChoice) => String(Math.max(32, Math.ceil(VIDEO_QUEUE_SECONDS * choice.captureRate)));
const rate = (r: number) => String(Number(r.toFixed(6)));

/** dshow's real-time buffer: one second of the camera's frames at raw size (its 3 MB default holds one 1080p frame). */
export const dshowRtbufsize = (choice: VideoChoice) =>
  Math.ceil((choice.width * choice.height * 2 * choice.captureRate) / 2 ** 20) * 2 ** 20;

/**
 * One lavfi graph as an input. Its frame rate is the graph's own: ffmpeg's probe would otherwise
 * read 20 frames to estimate it, which a graph released in real time takes a second to give (a
 * second of every encoder start, and of slate at every restart).
 */
export const lavfiInput = (graph: string) => [
  '-f',
  'lavfi',
  '-fpsprobesize',
  '0',
  '-thread_queue_size',
  '64',
  '-i',
  graph,
];

/** The card standing in for a missing picture ("AUDIO ONLY"), released in real time; its stamps are the caller's. */
export function standInCard(width: number, height: number, framerate: number): string {
  const scale = height / 1080;
  return `color=c=0x1b1f24:size=${width}x${height}:rate=${framerate},drawtext=font=sans:text='AUDIO ONLY':fontcolor=white:fontsize=${Math.round(96 * scale)}:x=(w-text_w)/2:y=(h-text_h)/2,realtime`;
}

/** Silence standing in for missing sound, released in real time; its stamps are the caller's. */
export const standInSilence = (audio: AudioFormat) =>
  `anullsrc=r=${audio.samplerate}:cl=${audio.channels === 1 ? 'mono' : 'stereo'},arealtime`;

/** A card standing in for a missing camera: the ladder still has its picture, released in real time and stamped with the wall clock. */
export function noCameraInput(width: number, height: number, framerate: number): string[] {
  return lavfiInput(`${standInCard(width, height, framerate)},settb=AVTB,setpts=RTCTIME`);
}

/** Silence standing in for a missing microphone, stamped with the wall clock like a device. */
export function noMicrophoneInput(audio: AudioFormat): string[] {
  return lavfiInput(`${standInSilence(audio)},asettb=AVTB,asetpts=RTCTIME`);
}

function v4l2Input(device: SelectedDevice, choice: VideoChoice): string[] {
  return [
    '-f',
    'v4l2',
    '-thread_queue_size',
    videoQueue(choice),
    ...(choice.format ? ['-input_format', choice.format] : []),
    '-framerate',
    rate(choice.captureRate),
    '-video_size',
    `${choice.width}x${choice.height}`,
    // The kernel's capture time (CLOCK_MONOTONIC) converted to the wall clock: the stamp nearest the sensor.
    '-ts',
    'abs',
    '-i',
    device.id,
  ];
}

function linuxAudioInput(device: SelectedDevice, audio: AudioFormat): string[] {
  // ALSA and Pulse stamp with the wall clock themselves (ALSA less its buffer delay, smoothed).
  const common = [
    '-thread_queue_size',
    String(AUDIO_QUEUE_PACKETS),
    '-sample_rate',
    String(audio.samplerate),
    '-channels',
    String(audio.channels),
  ];
  if (device.api === 'pulse') {
    const fragmentBytes = Math.round((audio.samplerate * audio.channels * 2 * AUDIO_BUFFER_MS) / 1000);
    return ['-f', 'pulse', ...common, '-fragment_size', String(fragmentBytes), '-i', device.id];
  }
  return ['-f', 'alsa', ...common, '-i', device.id];
}

/** macOS: one avfoundation input for both (`"<video>:<audio>"`), so both come from one capture session. */
function avfoundationInput(source: DeviceSource): string[] {
  const choice = source.video?.choice;
  return [
    '-f',
    'avfoundation',
    '-thread_queue_size',
    choice ? videoQueue(choice) : String(AUDIO_QUEUE_PACKETS),
    ...(choice
      ? [
          // avfoundation takes only a rate equal to the maximum of one of the device's ranges.
          '-framerate',
          rate(choice.captureRate),
          '-video_size',
          `${choice.width}x${choice.height}`,
          // Its default (yuv420p) is one cameras rarely have.
          '-pixel_format',
          choice.format ?? 'uyvy422',
        ]
      : []),
    // Sample buffers carry host-clock (since boot) times: stamp at arrival with the wall clock instead.
    '-use_wallclock_as_timestamps',
    '1',
    '-i',
    `${source.video?.id ?? 'none'}:${source.audio?.id ?? 'none'}`,
  ];
}

/** Windows: one dshow input for both (`video=NAME:audio=NAME`), one graph and one clock. */
function dshowInput(source: DeviceSource, audio: AudioFormat): string[] {
  const choice = source.video?.choice;
  const names = [
    ...(source.video ? [`video=${source.video.id}`] : []),
    ...(source.audio ? [`audio=${source.audio.id}`] : []),
  ];
  return [
    '-f',
    'dshow',
    ...(choice
      ? [
          '-rtbufsize',
          String(dshowRtbufsize(choice)),
          '-thread_queue_size',
          videoQueue(choice),
          ...(choice.format ? (choice.compressed ? ['-vcodec', choice.format] : ['-pixel_format', choice.format]) : []),
          '-video_size',
          `${choice.width}x${choice.height}`,
          '-framerate',
          rate(choice.captureRate),
        ]
      : ['-thread_queue_size', String(AUDIO_QUEUE_PACKETS)]),
    ...(source.audio
      ? [
          '-audio_buffer_size',
          String(AUDIO_BUFFER_MS),
          '-sample_rate',
          String(audio.samplerate),
          '-channels',
          String(audio.channels),
        ]
      : []),
    // DirectShow's stream times count from the graph's start: stamp at arrival with the wall clock.
    '-use_wallclock_as_timestamps',
    '1',
    '-i',
    names.join(':'),
  ];
}

/** Pure: the inputs of a device source, and where the graph finds its video and audio. */
export function deviceInputs(source: DeviceSource, audio: AudioFormat): SourceInputs {
  const card = () => noCameraInput(source.width, source.height, source.framerate);
  if (source.platform === 'linux') {
    const video = source.video ? v4l2Input(source.video, source.video.choice) : card();
    return {
      args: [...video, ...(source.audio ? linuxAudioInput(source.audio, audio) : noMicrophoneInput(audio))],
      video: '0:v',
      audio: '1:a',
    };
  }
  const combined = source.platform === 'darwin' ? avfoundationInput(source) : dshowInput(source, audio);
  if (!source.video) return { args: [...combined, ...card()], video: '1:v', audio: '0:a' };
  if (!source.audio) return { args: [...combined, ...noMicrophoneInput(audio)], video: '0:v', audio: '1:a' };
  return { args: combined, video: '0:v', audio: '0:a' };
}
