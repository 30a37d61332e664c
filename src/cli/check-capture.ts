import { listDevices } from '../capture/devices/list-devices.ts';
import type { DeviceListing } from '../capture/devices/types.ts';
import { resolveDevices } from '../capture/resolve-devices.ts';
import { parseSource } from '../capture/source.ts';
import { loadProfile } from '../config/profile.ts';
import type { Profile } from '../config/schema.ts';
import { locateFfmpeg } from '../encode/ffmpeg-resolve.ts';
import { ConfigError } from '../errors.ts';

export interface CaptureReport {
  source: string;
  ok: boolean;
  /** What would be opened, and why. */
  chosen: string[];
  problems: string[];
  advice: string[];
}

/** ALSA ways into each listed card: plughw: converts, dsnoop: shares the card with other programs. */
const alsaAlternatives = (listing: DeviceListing) =>
  listing.devices.filter((d) => d.api === 'alsa').map((d) => `${d.id.replace(/^hw:/, 'plughw:')} or ${d.id.replace(/^hw:/, 'dsnoop:')} (${d.name})`);

/** Pure: what a capture source would open here, and what stands in its way (a sound server a service cannot reach). */
export function captureReport(spec: string, listing: DeviceListing, profile: Profile, underService: boolean): CaptureReport {
  const report: CaptureReport = { source: spec, ok: true, chosen: [], problems: [], advice: [] };
  const request = parseSource(spec);
  if (request.kind !== 'device') return { ...report, chosen: [`the test source (${spec}): nothing to open`] };
  const alternatives = alsaAlternatives(listing);
  const useAlsa = alternatives.length ? `use an ALSA device instead: ${alternatives.map((a) => `audio=${a}`).join('; ')}` : 'use an ALSA device instead (hw:CARD=…,DEV=… from arecord -l, through plughw: or dsnoop:)';
  try {
    const resolved = resolveDevices(request, listing, profile, { allowMissing: false, underService });
    report.chosen.push(...resolved.reasons);
    report.problems.push(...resolved.warnings);
    if (resolved.source.audio?.api === 'pulse') {
      const text = `microphone "${resolved.source.audio.name}" is a PulseAudio/PipeWire source: fine in a desktop session, but a systemd service cannot reach a desktop user's sound server`;
      if (underService) report.problems.push(`${text}; ${useAlsa}`);
      else report.advice.push(`${text}; for the service, ${useAlsa}`);
    }
  } catch (error) {
    if (!(error instanceof ConfigError)) throw error;
    report.problems.push(error.message.replace(/^--source: /, ''));
  }
  for (const problem of listing.problems) report.advice.push(/PulseAudio/.test(problem) ? `${problem}; ${useAlsa}` : problem);
  report.ok = report.problems.length === 0;
  return report;
}

export function describeCaptureReport(r: CaptureReport): string {
  return [`capture: ${r.source}`, ...r.chosen.map((c) => `  ✓ ${c}`), ...r.problems.map((p) => `  ✗ ${p}`), ...r.advice.map((a) => `  note: ${a}`)].join('\n');
}

export async function checkCapture(spec: string, profileSpec: string, ffmpegFlag: string | undefined, env: NodeJS.ProcessEnv = process.env): Promise<CaptureReport> {
  const { profile } = await loadProfile(profileSpec);
  const ffmpeg = await locateFfmpeg(ffmpegFlag, { encoders: [], filters: [] });
  return captureReport(spec, await listDevices(ffmpeg.path), profile, Boolean(env['INVOCATION_ID']));
}
