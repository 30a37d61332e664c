import { execa } from 'execa';
import { alsaMicrophones, parseV4l2CtlFormats, parseV4l2ListFormats, pulseMicrophones, v4l2Cameras } from './linux.ts';
import { parseAvfoundationDevices, parseAvfoundationModes } from './macos.ts';
import { parseDshowAudioOptions, parseDshowDevices, parseDshowVideoOptions } from './windows.ts';
import type { CaptureDevice, DeviceListing, Platform, VideoMode } from './types.ts';

// The thin shell around the parsers: runs ffmpeg (and v4l2-ctl, arecord, pactl where present)
// and assembles one listing. Listing never opens a device for capture.

/** Runs a command; its stdout and stderr together (ffmpeg lists on either), or undefined if it does not exist. */
export type RunCommand = (command: string, args: readonly string[]) => Promise<string | undefined>;

const LIST_TIMEOUT_MS = 10_000;

export const runCommand: RunCommand = async (command, args) => {
  const result = await execa(command, args, {
    reject: false,
    all: true,
    timeout: LIST_TIMEOUT_MS,
    stdin: 'ignore',
    env: { AV_LOG_FORCE_NOCOLOR: '1' },
  });
  if (
    (result as { code?: string }).code === 'ENOENT' ||
    (result.failed && result.exitCode === undefined && !result.timedOut)
  )
    return undefined;
  return result.all ?? '';
};

export function currentPlatform(): Platform {
  return process.platform === 'darwin' || process.platform === 'win32' ? process.platform : 'linux';
}

/** ffmpeg's `-i` value for one dshow device: its alternative name where the friendly name has a `:` (the video/audio separator). */
export const dshowName = (device: { name: string; alternativeName?: string | undefined }) =>
  device.name.includes(':') && device.alternativeName ? device.alternativeName : device.name;

export async function listDevices(
  ffmpeg: string,
  platform: Platform = currentPlatform(),
  run: RunCommand = runCommand,
): Promise<DeviceListing> {
  const ff = (...args: string[]) => run(ffmpeg, ['-hide_banner', ...args]);
  const problems: string[] = [];
  let devices: CaptureDevice[] = [];
  if (platform === 'linux') {
    const v4l2Nodes = (await ff('-sources', 'v4l2')) ?? '';
    const modes = new Map<string, VideoMode[]>();
    for (const node of [...v4l2Nodes.matchAll(/^[* ] (\/dev\/\S+) \[/gm)].map((m) => m[1]!)) {
      const withRates = parseV4l2CtlFormats((await run('v4l2-ctl', ['-d', node, '--list-formats-ext'])) ?? '');
      modes.set(
        node,
        withRates.length
          ? withRates
          : parseV4l2ListFormats((await ff('-f', 'v4l2', '-list_formats', 'all', '-i', node)) ?? ''),
      );
    }
    const pulse = pulseMicrophones(
      (await ff('-sources', 'pulse')) ?? '',
      (await run('pactl', ['list', 'short', 'sources'])) ?? '',
    );
    if (pulse.problem) problems.push(`${pulse.problem}: no sound server reachable for this user`);
    devices = [
      ...v4l2Cameras(v4l2Nodes, (node) => modes.get(node) ?? []),
      ...pulse.microphones,
      ...alsaMicrophones((await ff('-sources', 'alsa')) ?? '', (await run('arecord', ['-l'])) ?? ''),
    ];
  } else if (platform === 'darwin') {
    devices = parseAvfoundationDevices((await ff('-f', 'avfoundation', '-list_devices', 'true', '-i', '')) ?? '');
    for (const camera of devices) {
      if (camera.kind !== 'video' || camera.notForDefault) continue;
      // A size no camera has: avfoundation refuses it and prints the modes it has.
      camera.modes = parseAvfoundationModes(
        (await ff('-f', 'avfoundation', '-video_size', '16x16', '-framerate', '1', '-i', `${camera.index}:none`)) ?? '',
      );
    }
  } else {
    devices = parseDshowDevices((await ff('-list_devices', 'true', '-f', 'dshow', '-i', 'dummy')) ?? '');
    for (const device of devices) {
      const options =
        (await ff('-list_options', 'true', '-f', 'dshow', '-i', `${device.kind}=${dshowName(device)}`)) ?? '';
      if (device.kind === 'video') device.modes = parseDshowVideoOptions(options);
      else device.modes = parseDshowAudioOptions(options);
    }
  }
  return { platform, devices, problems };
}
