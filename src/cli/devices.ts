import { parseArgs, type ParseArgsConfig } from 'node:util';
import { listDevices } from '../capture/devices/list-devices.ts';
import {
  sizeOf,
  type AudioMode,
  type CaptureDevice,
  type DeviceListing,
  type VideoMode,
} from '../capture/devices/types.ts';
import { locateFfmpeg } from '../encode/ffmpeg-resolve.ts';
import { ConfigError } from '../errors.ts';

export const DEVICES_USAGE = `appliance devices [--json] [--ffmpeg PATH]   the cameras and microphones ffmpeg can capture
  --json        one JSON array of devices (kind, api, id, name, index, modes); [] when none
  --ffmpeg PATH the ffmpeg binary (else APPLIANCE_FFMPEG, the system ffmpeg, ffmpeg-static)
Pick one with --source device:video=NAME|INDEX,audio=NAME|INDEX (or none for either).
Exit status: 0 listed (even when none are found), 2 bad arguments or no ffmpeg.`;

const OPTIONS = {
  json: { type: 'boolean' },
  ffmpeg: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

/** Sizes shown per format before "… N more". */
const SIZES_SHOWN = 5;

const rates = (mode: VideoMode) =>
  mode.rates.map((r) => (r.min === r.max ? `${r.max}` : `${r.min}–${r.max}`)).join('/');

/** Pure: a camera's modes in one line per format, largest sizes first: `mjpeg 1920x1080@30/24, 1280x720@30`. */
export function describeVideoModes(modes: readonly VideoMode[]): string[] {
  const byFormat = new Map<string, VideoMode[]>();
  for (const mode of modes) byFormat.set(mode.format, [...(byFormat.get(mode.format) ?? []), mode]);
  return [...byFormat].map(([format, list]) => {
    const sorted = [...list].sort((a, b) => b.width * b.height - a.width * a.height);
    const shown = sorted
      .slice(0, SIZES_SHOWN)
      .map((m) => `${m.stepwise ? 'up to ' : ''}${sizeOf(m)}${m.rates.length ? `@${rates(m)}` : ''}`);
    return `${format} ${shown.join(', ')}${sorted.length > SIZES_SHOWN ? `, … ${sorted.length - SIZES_SHOWN} more` : ''}${list.every((m) => !m.rates.length) ? ' (rates not listed)' : ' fps'}`;
  });
}

/** Pure: a microphone's modes: `s16le 2ch 48000 Hz`. */
export function describeAudioModes(modes: readonly AudioMode[]): string[] {
  return modes.map((m) =>
    [
      m.sampleFormat,
      m.channels === undefined
        ? undefined
        : typeof m.channels === 'number'
          ? `${m.channels}ch`
          : `${m.channels.min}–${m.channels.max}ch`,
      m.sampleRate === undefined
        ? undefined
        : typeof m.sampleRate === 'number'
          ? `${m.sampleRate} Hz`
          : `${m.sampleRate.min}–${m.sampleRate.max} Hz`,
    ]
      .filter(Boolean)
      .join(' '),
  );
}

function deviceRow(device: CaptureDevice): string[] {
  const formats = device.kind === 'video' ? describeVideoModes(device.modes) : describeAudioModes(device.modes);
  const notes = [
    device.isDefault ? 'default' : undefined,
    device.notForDefault,
    device.kind === 'video' && device.alsoAudio ? 'also audio' : undefined,
    device.alternativeName ? `alternative name ${device.alternativeName}` : undefined,
  ].filter(Boolean);
  const id = device.api === 'avfoundation' ? `${device.index}` : device.id;
  const lines = [
    `  #${device.index}  ${device.name}${id !== device.name ? `  (${device.api} ${id})` : ` (${device.api})`}${notes.length ? `  [${notes.join('; ')}]` : ''}`,
  ];
  const modeLines = formats.length
    ? formats
    : [
        device.api === 'alsa'
          ? "formats: the card's own (plughw: converts to any rate and channel count)"
          : 'formats: not listed',
      ];
  return [...lines, ...modeLines.map((f) => `       ${f}`)];
}

/** Pure: the listing as text for a terminal. */
export function formatDeviceTable(listing: DeviceListing): string {
  const cameras = listing.devices.filter((d) => d.kind === 'video');
  const microphones = listing.devices.filter((d) => d.kind === 'audio');
  const lines: string[] = [];
  if (!cameras.length && !microphones.length) {
    lines.push(
      'No cameras or microphones found.',
      listing.platform === 'linux'
        ? 'Linux: cameras are /dev/video* (v4l2), microphones ALSA cards (arecord -l) or PulseAudio/PipeWire sources; is the user in the "video" and "audio" groups?'
        : 'Is the device plugged in, and may this program use the camera and microphone (system privacy settings)?',
    );
  } else {
    lines.push(
      cameras.length ? 'Cameras' : 'Cameras: none found',
      ...cameras.flatMap(deviceRow),
      '',
      microphones.length ? 'Microphones' : 'Microphones: none found',
      ...microphones.flatMap(deviceRow),
    );
    lines.push(
      '',
      'Pick with --source device:video=NAME|INDEX,audio=NAME|INDEX (none for either); plain --source device takes the defaults.',
    );
  }
  for (const problem of listing.problems) lines.push(`note: ${problem}`);
  return `${lines.join('\n')}\n`;
}

export async function runDevices(argv: readonly string[]): Promise<number> {
  let values: { json?: boolean; ffmpeg?: string; help?: boolean };
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(
      `${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}\n${DEVICES_USAGE}`,
    );
  }
  if (values.help) {
    process.stdout.write(`${DEVICES_USAGE}\n`);
    return 0;
  }
  const ffmpeg = await locateFfmpeg(values.ffmpeg, { encoders: [], filters: [] });
  const listing = await listDevices(ffmpeg.path);
  process.stdout.write(values.json ? `${JSON.stringify(listing.devices, null, 2)}\n` : formatDeviceTable(listing));
  if (values.json) for (const problem of listing.problems) process.stderr.write(`appliance devices: ${problem}\n`);
  return 0;
}
