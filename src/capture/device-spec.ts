import { ConfigError } from '../errors.ts';
import type { Camera, CaptureDevice, Microphone } from './devices/types.ts';

/** What `--source device[:video=…,audio=…]` asks for: a name, an index, the default, or none. */
export type DevicePick =
  | { by: 'default' }
  | { by: 'none' }
  | { by: 'index'; index: number }
  | { by: 'name'; name: string };

export interface DeviceRequest {
  kind: 'device';
  video: DevicePick;
  audio: DevicePick;
}

const pickOf = (value: string): DevicePick => {
  const v = value.trim();
  if (v === '' || v === 'default') return { by: 'default' };
  if (v === 'none') return { by: 'none' };
  if (/^\d+$/.test(v)) return { by: 'index', index: Number(v) };
  return { by: 'name', name: v };
};

/** Pure: `device`, `device:video=NAME|INDEX,audio=NAME|INDEX` (either may be left out, or `none`). */
export function parseDeviceSpec(spec: string): DeviceRequest {
  const rest = spec.replace(/^device:?/, '');
  const request: DeviceRequest = { kind: 'device', video: { by: 'default' }, audio: { by: 'default' } };
  if (rest.trim() === '') return request;
  // Device names may hold commas; a new part starts only where `video=` or `audio=` follows one.
  for (const part of rest.split(/,(?=\s*(?:video|audio)=)/)) {
    const match = /^\s*(video|audio)=(.*)$/s.exec(part);
    if (!match)
      throw new ConfigError(
        `--source "${spec}": "${part}" is not video=NAME|INDEX or audio=NAME|INDEX (use none for no camera or no microphone)`,
      );
    request[match[1] as 'video' | 'audio'] = pickOf(match[2]!);
  }
  if (request.video.by === 'none' && request.audio.by === 'none')
    throw new ConfigError(`--source "${spec}": video=none and audio=none leave nothing to capture`);
  return request;
}

export const describePick = (pick: DevicePick) =>
  pick.by === 'name' ? `"${pick.name}"` : pick.by === 'index' ? `#${pick.index}` : pick.by;

/** Every device of a kind as one line each, for error messages: `#0 "HD Pro Webcam C920" (/dev/video0)`. */
export function availableList(devices: readonly CaptureDevice[], kind: 'video' | 'audio'): string {
  const of = devices.filter((d) => d.kind === kind);
  if (!of.length) return kind === 'video' ? 'no camera is available' : 'no microphone is available';
  return `available ${kind === 'video' ? 'cameras' : 'microphones'}: ${of.map((d) => `#${d.index} "${d.name}"${d.id !== d.name && d.id !== String(d.index) ? ` (${d.id})` : ''}`).join(', ')}`;
}

/**
 * Pure: the device a pick names among those listed. Exact id, name or alternative name first,
 * then a unique case-insensitive part of a name (avfoundation matches name prefixes itself).
 * `default`: the system's default, else the first that is not a screen or an output's monitor.
 * Undefined: nothing matches (the caller says so, with the list).
 */
export function pickDevice<K extends 'video' | 'audio'>(
  devices: readonly CaptureDevice[],
  kind: K,
  pick: DevicePick,
): (K extends 'video' ? Camera : Microphone) | undefined {
  type Found = K extends 'video' ? Camera : Microphone;
  const of = devices.filter((d) => d.kind === kind) as Found[];
  if (pick.by === 'none') return undefined;
  if (pick.by === 'default') return of.find((d) => d.isDefault && !d.notForDefault) ?? of.find((d) => !d.notForDefault);
  if (pick.by === 'index') return of.find((d) => d.index === pick.index);
  const exact = of.find((d) => d.id === pick.name || d.name === pick.name || d.alternativeName === pick.name);
  if (exact) return exact;
  const needle = pick.name.toLowerCase();
  const partial = of.filter((d) => d.name.toLowerCase().includes(needle));
  return partial.length === 1 ? partial[0] : undefined;
}
