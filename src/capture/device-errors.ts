// Pure: what ffmpeg's last words say about a capture device: which one, and what is wrong.

export type DeviceTrouble = 'missing' | 'busy' | 'permission' | 'no-server' | 'gone';

export interface DeviceProblem {
  trouble: DeviceTrouble;
  /** The device as ffmpeg named it; undefined when it did not say. */
  device: string | undefined;
  message: string;
}

const RULES: { pattern: RegExp; trouble: DeviceTrouble; say: (device: string) => string }[] = [
  {
    pattern: /Cannot open video device (\S+?): No such (?:file or directory|device)/,
    trouble: 'missing',
    say: (d) => `camera ${d} is not there (unplugged?)`,
  },
  {
    pattern: /Cannot open video device (\S+?): Device or resource busy/,
    trouble: 'busy',
    say: (d) => `camera ${d} is busy: another program has it open`,
  },
  {
    pattern: /Cannot open video device (\S+?): Permission denied/,
    trouble: 'permission',
    say: (d) => `camera ${d} may not be opened by this user (add it to the "video" group)`,
  },
  {
    pattern: /VIDIOC_\w+\)?: No such device|ioctl\(VIDIOC_\w+\): No such device/,
    trouble: 'gone',
    say: () => 'the camera went away while capturing (unplugged?)',
  },
  {
    pattern: /Unknown PCM (\S+)/,
    trouble: 'missing',
    say: (d) => `microphone ${d} is not there (no such ALSA device)`,
  },
  {
    pattern: /cannot open audio device (\S+) \((?:No such file or directory|No such device)\)/,
    trouble: 'missing',
    say: (d) => `microphone ${d} is not there (unplugged?)`,
  },
  {
    pattern: /cannot open audio device (\S+) \(Device or resource busy\)/,
    trouble: 'busy',
    say: (d) => `microphone ${d} is busy: another program has it (dsnoop: lets several record from one card)`,
  },
  {
    pattern: /cannot open audio device (\S+) \(Permission denied\)/,
    trouble: 'permission',
    say: (d) => `microphone ${d} may not be opened by this user (add it to the "audio" group)`,
  },
  {
    pattern: /ALSA read error: No such device|cannot read .* No such device/,
    trouble: 'gone',
    say: () => 'the microphone went away while capturing (unplugged?)',
  },
  {
    pattern: /^(\S+): (?:No such process|Connection refused)$/m,
    trouble: 'no-server',
    say: (d) =>
      `no PulseAudio/PipeWire server for ${d} (a system service cannot reach a desktop user's; use an ALSA device)`,
  },
  {
    pattern: /Failed to create AV capture input device: Cannot use (.+)$/m,
    trouble: 'permission',
    say: (d) =>
      `macOS refuses "${d}": allow Camera and Microphone for the program that runs the appliance (System Settings → Privacy & Security)`,
  },
  {
    pattern: /(Video|Audio) device not found/,
    trouble: 'missing',
    say: (d) => `the ${d.toLowerCase()} device is not there (unplugged?)`,
  },
  {
    pattern: /Could not find (?:video|audio) device with name \[(.+?)\]/,
    trouble: 'missing',
    say: (d) => `device "${d}" is not there (unplugged?)`,
  },
  {
    pattern: /Could not run graph \(sometimes caused by a device already in use/,
    trouble: 'busy',
    say: () => 'a device is busy: another program has the camera or microphone',
  },
];

/** Pure: the device problem in an ffmpeg run's last stderr lines, if any. */
export function deviceProblem(stderrTail: readonly string[]): DeviceProblem | undefined {
  const text = stderrTail.join('\n');
  for (const rule of RULES) {
    const match = rule.pattern.exec(text);
    if (match) return { trouble: rule.trouble, device: match[1]?.trim(), message: rule.say(match[1]?.trim() ?? '') };
  }
  return undefined;
}
