import { deviceProblem } from '../capture/device-errors.ts';

/** Pure: what an operator can do about a known ffmpeg failure, from its last stderr lines. */
const HINTS: { pattern: RegExp; hint: string }[] = [
  {
    pattern: /Cannot find a valid font|Could not load font|fontconfig/i,
    hint: 'the burnt-in clock needs a monospace font: install one (Debian/Ubuntu: apt-get install fonts-dejavu-core)',
  },
  {
    pattern: /Unknown encoder|Encoder not found/i,
    hint: 'this ffmpeg lacks an encoder the profile needs; see "appliance start --dry-run" for the command line',
  },
  {
    pattern: /Cannot allocate memory|Out of memory/i,
    hint: 'the machine ran out of memory; a lighter profile or fewer renditions may fit',
  },
];

/** Pure: how an ffmpeg run ended, for messages: `was killed by SIGKILL`, `exited with code 1`. */
export function howItEnded(exit: { signal?: string | undefined; code?: number | undefined }): string {
  return exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
}

export function failureHint(stderrTail: readonly string[]): string | undefined {
  const device = deviceProblem(stderrTail);
  if (device) return device.message;
  const text = stderrTail.join('\n');
  return HINTS.find(({ pattern }) => pattern.test(text))?.hint;
}
