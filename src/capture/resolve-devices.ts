import type { Profile } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import type { DeviceSource, SelectedDevice } from './device-args.ts';
import { availableList, describePick, pickDevice, type DeviceRequest, type DevicePick } from './device-spec.ts';
import { dshowName } from './devices/list-devices.ts';
import type { Camera, CaptureDevice, DeviceListing, Microphone } from './devices/types.ts';
import { negotiateVideo, type VideoChoice } from './negotiate.ts';

// Pure: a device request + the listing + the profile → the devices to open, the mode to ask for,
// and the profile at the camera's rate. What cannot be found is an error listing what can.

export interface ResolvedDevices {
  source: DeviceSource;
  /** The profile at the camera's rate (and a chunk duration of whole frames at it). */
  profile: Profile;
  /** What was chosen and why, for the log and --dry-run. */
  reasons: string[];
  warnings: string[];
}

export interface ResolveOptions {
  /** A device not (yet) there is opened by its given name and retried, not refused (the service). */
  allowMissing: boolean;
  /** Under systemd: a desktop user's Pulse/PipeWire is out of reach, so not a default. */
  underService: boolean;
}

/** Linux names taken as given even when not listed: a v4l2 node, an ALSA PCM (hw:, plughw:, dsnoop:, …). */
const LINUX_DIRECT_VIDEO = /^\/dev\/video\d+$/;
const LINUX_DIRECT_AUDIO = /^(?:(?:hw|plughw|dsnoop|sysdefault|front|dmix):.+|null|default|pulse|pipewire)$/;

/** Where ALSA's hw: device is the default microphone, plughw: on the same card converts its own rate and channels (a C920 records 32 kHz). */
const plugOf = (id: string) => id.replace(/^hw:/, 'plughw:');

function unlisted(listing: DeviceListing, kind: 'video' | 'audio', pick: DevicePick): SelectedDevice | undefined {
  if (pick.by !== 'name') return undefined;
  if (listing.platform === 'linux' && kind === 'video' && LINUX_DIRECT_VIDEO.test(pick.name))
    return { api: 'v4l2', id: pick.name, name: pick.name };
  if (listing.platform === 'linux' && kind === 'audio' && LINUX_DIRECT_AUDIO.test(pick.name))
    return { api: 'alsa', id: pick.name, name: pick.name };
  return undefined;
}

const apiOf = (platform: DeviceListing['platform'], kind: 'video' | 'audio') =>
  platform === 'darwin' ? 'avfoundation' : platform === 'win32' ? 'dshow' : kind === 'video' ? 'v4l2' : 'alsa';

/** ffmpeg's -i value for a listed device on its platform. */
function inputId(device: CaptureDevice): string {
  if (device.api === 'avfoundation') return String(device.index);
  if (device.api === 'dshow') return dshowName(device);
  return device.id;
}

/** ALSA ways into each listed card, as advice: plughw: converts, dsnoop: shares the card with other programs. */
export function alsaAdvice(listing: DeviceListing): string {
  const cards = listing.devices
    .filter((d) => d.api === 'alsa')
    .map((d) => `audio=${plugOf(d.id)} or ${d.id.replace(/^hw:/, 'dsnoop:')} (${d.name})`);
  return cards.length
    ? `use an ALSA device instead: ${cards.join('; ')}`
    : 'use an ALSA device instead (hw:CARD=…,DEV=… from arecord -l, through plughw: or dsnoop:)';
}

/** Why a PulseAudio/PipeWire microphone is fine on a desktop and not under systemd. */
export const pulseUnderServiceNote = (name: string) =>
  `microphone "${name}" is a PulseAudio/PipeWire source: fine in a desktop session, but a systemd service cannot reach a desktop user's sound server`;

export function resolveDevices(
  request: DeviceRequest,
  listing: DeviceListing,
  profile: Profile,
  options: ResolveOptions,
): ResolvedDevices {
  const reasons: string[] = [];
  const warnings: string[] = [];
  const missing: string[] = [];
  const find = (
    kind: 'video' | 'audio',
    pick: DevicePick,
  ): (SelectedDevice & { listed?: CaptureDevice }) | undefined => {
    if (pick.by === 'none') return undefined;
    let devices = listing.devices;
    if (kind === 'audio' && pick.by === 'default' && options.underService)
      devices = devices.filter((d) => d.api !== 'pulse');
    const listed = pickDevice(devices, kind, pick);
    if (listed) {
      const viaPlug = listed.api === 'alsa' && pick.by === 'default' && listed.id.startsWith('hw:');
      if (viaPlug)
        reasons.push(
          `microphone: ${plugOf(listed.id)} (the default card through plughw:, which converts its own rate and channels to ${profile.audio.samplerate} Hz)`,
        );
      return { api: listed.api, id: viaPlug ? plugOf(listed.id) : inputId(listed), name: listed.name, listed };
    }
    const direct = unlisted(listing, kind, pick);
    if (direct) return direct;
    const what = kind === 'video' ? 'camera' : 'microphone';
    const none = !listing.devices.some((d) => d.kind === kind);
    const problem =
      pick.by === 'default' && none
        ? `no ${what} found (${kind}=none goes without one)`
        : `${what} ${describePick(pick)} not found; ${availableList(listing.devices, kind)}`;
    if (options.allowMissing && pick.by !== 'default') {
      warnings.push(`${problem}: waiting for it (slate meanwhile)`);
      return {
        api: apiOf(listing.platform, kind),
        id: pick.by === 'index' ? String(pick.index) : pick.name,
        name: pick.by === 'index' ? `#${pick.index}` : pick.name,
      };
    }
    missing.push(problem);
    return undefined;
  };
  const camera = find('video', request.video);
  const microphone = find('audio', request.audio);
  if (missing.length) {
    throw new ConfigError(
      `--source: ${missing.join('; ')}`,
      [
        ...listing.problems.map((p) => `note: ${p}`),
        'Run "appliance devices" to see what this machine offers; pick with --source device:video=NAME|INDEX,audio=NAME|INDEX (or none).',
      ].join('\n'),
    );
  }
  const top = profile.video.renditions[0]!;
  let choice: VideoChoice | undefined;
  if (camera) {
    choice = negotiateVideo(
      { name: camera.name, api: camera.api, modes: (camera.listed as Camera | undefined)?.modes ?? [] },
      {
        width: top.width,
        height: top.height,
        framerate: profile.video.framerate,
        segdur: profile.segdur,
        idr: profile.idr,
      },
    );
    reasons.unshift(`camera "${camera.name}" (${camera.id}): ${choice.reasons.join('; ')}`);
  }
  if (microphone) {
    const modes = (microphone.listed as Microphone | undefined)?.modes ?? [];
    const spec = modes
      .map((m) =>
        [
          m.sampleFormat,
          m.channels !== undefined &&
            `${typeof m.channels === 'number' ? m.channels : `${m.channels.min}–${m.channels.max}`}ch`,
          typeof m.sampleRate === 'number' && `${m.sampleRate} Hz`,
        ]
          .filter(Boolean)
          .join(' '),
      )
      .filter(Boolean);
    reasons.push(
      `microphone "${microphone.name}" (${microphone.id})${spec.length ? `, offers ${spec.join(', ')}` : ''}: taken at ${profile.audio.samplerate} Hz, ${profile.audio.channels} channel(s)`,
    );
  }
  if (microphone?.api === 'pulse' && options.underService)
    warnings.push(`${pulseUnderServiceNote(microphone.name)}; ${alsaAdvice(listing)}`);
  const framerate = choice?.framerate ?? profile.video.framerate;
  const adjusted = atRate(profile, framerate, reasons);
  const source: DeviceSource = {
    kind: 'device',
    platform: listing.platform,
    video: camera && choice ? { api: camera.api, id: camera.id, name: camera.name, choice } : undefined,
    audio: microphone ? { api: microphone.api, id: microphone.id, name: microphone.name } : undefined,
    width: choice?.width ?? top.width,
    height: choice?.height ?? top.height,
    framerate,
  };
  return { source, profile: adjusted, reasons, warnings };
}

/** Pure: the profile at a camera's rate; a chunk duration that is not whole frames there becomes the nearest shorter one that is. */
export function atRate(profile: Profile, framerate: number, reasons: string[] = []): Profile {
  if (framerate === profile.video.framerate) return profile;
  const frames = profile.cdur * framerate;
  const wholeFrames = Math.max(1, Math.floor(frames + 1e-6));
  const cdur = Number((wholeFrames / framerate).toFixed(6));
  reasons.push(
    `the timeline runs at the source's ${framerate} fps instead of the profile's ${profile.video.framerate}${cdur !== profile.cdur ? `; cdur ${profile.cdur} s is ${Number(frames.toFixed(3))} frames there, so chunks are ${cdur} s (${wholeFrames} frames)` : ''}`,
  );
  return { ...profile, cdur, video: { ...profile.video, framerate } };
}
