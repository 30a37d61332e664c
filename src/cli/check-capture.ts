import { listDevices } from '../capture/devices/list-devices.ts';
import type { DeviceListing } from '../capture/devices/types.ts';
import { alsaAdvice, pulseUnderServiceNote, resolveDevices } from '../capture/resolve-devices.ts';
import { parseSource } from '../capture/source.ts';
import { loadProfile } from '../config/profile.ts';
import type { Profile } from '../config/schema.ts';
import { locateFfmpeg } from '../encode/ffmpeg-resolve.ts';
import { ConfigError } from '../errors.ts';
import type { CameraDecode } from './check-decode.ts';

export interface CaptureReport {
  source: string;
  ok: boolean;
  /** What would be opened, and why. */
  chosen: string[];
  problems: string[];
  advice: string[];
  /** The chosen camera mode's compressed video, which the encoder decodes first (`appliance check`'s CPU probe adds it). */
  decode?: CameraDecode | undefined;
}

/** Pure: what a capture source would open here, and what stands in its way (a sound server a service cannot reach). */
export function captureReport(
  spec: string,
  listing: DeviceListing,
  profile: Profile,
  underService: boolean,
): CaptureReport {
  const report: CaptureReport = { source: spec, ok: true, chosen: [], problems: [], advice: [] };
  const request = parseSource(spec);
  if (request.kind !== 'device') return { ...report, chosen: [`the test source (${spec}): nothing to open`] };
  const useAlsa = alsaAdvice(listing);
  try {
    const resolved = resolveDevices(request, listing, profile, { allowMissing: false, underService });
    report.chosen.push(...resolved.reasons);
    const choice = resolved.source.video?.choice;
    if (choice?.compressed && choice.format)
      report.decode = {
        format: choice.format,
        width: choice.width,
        height: choice.height,
        framerate: choice.captureRate,
      };
    report.problems.push(...resolved.warnings);
    if (resolved.source.audio?.api === 'pulse' && !underService)
      report.advice.push(`${pulseUnderServiceNote(resolved.source.audio.name)}; for the service, ${useAlsa}`);
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    report.problems.push(error.message.replace(/^--source: /, ''));
  }
  for (const problem of listing.problems)
    report.advice.push(/PulseAudio/.test(problem) ? `${problem}; ${useAlsa}` : problem);
  report.ok = report.problems.length === 0;
  return report;
}

export function describeCaptureReport(r: CaptureReport): string {
  return [
    `capture: ${r.source}`,
    ...r.chosen.map((c) => `  ✓ ${c}`),
    ...r.problems.map((p) => `  ✗ ${p}`),
    ...r.advice.map((a) => `  note: ${a}`),
  ].join('\n');
}

export async function checkCapture(
  spec: string,
  profileSpec: string,
  ffmpegFlag: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
): Promise<CaptureReport> {
  const { profile } = await loadProfile(profileSpec);
  const ffmpeg = await locateFfmpeg(ffmpegFlag, { encoders: [], filters: [] });
  return captureReport(spec, await listDevices(ffmpeg.path), profile, Boolean(env['INVOCATION_ID']));
}
