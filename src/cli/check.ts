import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Client } from 'undici';
import { DEFAULT_PROFILE } from '../config/profile.ts';
import { ConfigError } from '../errors.ts';
import { checkCapture, describeCaptureReport } from './check-capture.ts';
import { pushHeaders, readHeaderFile, trustedCertificates } from '../push/credentials.ts';
import { parseOutputs, type PushTarget } from '../push/output-target.ts';
import type { OriginProfile } from '../push/push-types.ts';
import { safeUrl } from '../push/upload-outcome.ts';
import { packageVersion, userAgent } from '../version.ts';

export const CHECK_USAGE = `appliance check --output URL [options]   what an origin accepts, and which origin profile it needs
appliance check --source SPEC [--profile P] what a capture source would open here, and what is in its way
  --output URL          the origin to probe, as given to "appliance start" (repeat for several)
  --source SPEC         the capture source, as given to "appliance start" (device, device:video=…,audio=…):
                        the devices and mode it would take; under systemd, a PulseAudio/PipeWire
                        microphone is refused with the ALSA devices (plughw:, dsnoop:) to use instead
  --profile NAME|FILE   the profile the source is checked for (default: ultra-ll)
  --ffmpeg PATH         the ffmpeg binary
  --header-file FILE    extra headers, as for "appliance start" (credentials from the environment too)
  --ca FILE             also trust the CA certificates in FILE (PEM)
  --json                one JSON object per origin instead of text
It uploads a small probe object next to the manifest, reads it back while the upload is still
running (an appliance origin serves it; a generic one answers 404 until the upload ends), and
deletes it. Exit status: 0 every origin accepts uploads, 1 one does not, 2 bad arguments.`;

const OPTIONS = {
  output: { type: 'string', multiple: true },
  source: { type: 'string' },
  profile: { type: 'string' },
  ffmpeg: { type: 'string' },
  'header-file': { type: 'string' },
  ca: { type: 'string' },
  json: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export interface OriginReport {
  url: string;
  reachable: boolean;
  /** The probe upload's answer, e.g. 201; undefined when none came. */
  uploadStatus: number | undefined;
  credentials: 'accepted' | 'refused' | 'unknown';
  /** Which --origin-profile the origin needs; undefined when it could not be told. */
  originProfile: OriginProfile | undefined;
  deleteStatus: number | undefined;
  server: string | undefined;
  /** Round trip of a small request, in ms. */
  rttMs: number | undefined;
  problem: string | undefined;
}

const now = () => performance.now();

/** Probes one origin; never throws. */
export async function probeOrigin(target: PushTarget, headers: Record<string, string>, ca: string[] | undefined): Promise<OriginReport> {
  const report: OriginReport = { url: safeUrl(target.url), reachable: false, uploadStatus: undefined, credentials: 'unknown', originProfile: undefined, deleteStatus: undefined, server: undefined, rttMs: undefined, problem: undefined };
  const probe = new URL(`.appliance-check-${randomBytes(6).toString('hex')}.txt${target.url.search}`, target.url);
  const path = probe.pathname + probe.search;
  const options = { connect: { timeout: 5000, ...(ca && probe.protocol === 'https:' ? { ca } : {}) }, headersTimeout: 10_000, bodyTimeout: 10_000 };
  const uploader = new Client(probe.origin, options);
  const reader = new Client(probe.origin, options);
  const base = { ...headers, 'user-agent': userAgent(await packageVersion()) };
  try {
    const started = now();
    const head = await reader.request({ path: new URL('./', probe).pathname, method: 'HEAD', headers: base });
    await head.body.dump();
    report.rttMs = Math.round((now() - started) * 10) / 10;
    report.reachable = true;
    report.server = [head.headers['server']].flat()[0];
    let release: () => void = () => {};
    const released = new Promise<void>((resolve) => (release = resolve));
    const body = (async function* () {
      yield Buffer.from('appliance check: first half\n');
      await released;
      yield Buffer.from('appliance check: second half\n');
    })();
    const upload = uploader.request({ path, method: 'PUT', headers: { ...base, 'content-type': 'text/plain' }, body: body as unknown as Readable });
    // While the upload is still open: does the origin serve what it has so far?
    await new Promise((resolve) => setTimeout(resolve, 300));
    const during = await Promise.race([
      reader.request({ path, method: 'GET', headers: base }).then(async (r) => {
        const chunk = await new Promise<boolean>((resolve) => {
          r.body.once('data', () => resolve(true));
          r.body.once('end', () => resolve(false));
          r.body.once('error', () => resolve(false));
        });
        r.body.destroy();
        return { status: r.statusCode, data: chunk };
      }),
      new Promise<undefined>((resolve) => setTimeout(() => resolve(undefined), 2000)),
    ]).catch(() => undefined);
    release();
    const answer = await upload;
    await answer.body.dump();
    report.uploadStatus = answer.statusCode;
    report.credentials = answer.statusCode === 401 || answer.statusCode === 403 ? 'refused' : answer.statusCode < 300 ? 'accepted' : 'unknown';
    if (answer.statusCode >= 300) report.problem = `the probe upload was answered HTTP ${answer.statusCode}`;
    else report.originProfile = during?.status === 200 && during.data ? 'appliance' : 'generic';
    if (answer.statusCode < 300) {
      const removed = await uploader.request({ path, method: 'DELETE', headers: base });
      await removed.body.dump();
      report.deleteStatus = removed.statusCode;
      if (removed.statusCode >= 300 && removed.statusCode !== 404) report.problem = `DELETE is refused (HTTP ${removed.statusCode}): run with --no-delete, or let the origin expire old segments`;
    }
  } catch (error) {
    const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
    report.problem = `${code ?? (error as Error).message}${code && /CERT|SELF_SIGNED|UNABLE_TO/.test(code) ? ': give the origin\'s CA with --ca FILE' : ''}`;
  } finally {
    await Promise.all([uploader.destroy(), reader.destroy()]);
  }
  return report;
}

function describeReport(r: OriginReport): string {
  const line = (ok: boolean | undefined, text: string) => `  ${ok === undefined ? '-' : ok ? '✓' : '✗'} ${text}`;
  return [
    r.url,
    line(r.reachable, r.reachable ? `reachable (${r.rttMs} ms round trip${r.server ? `, Server: ${r.server}` : ''})` : 'not reachable'),
    line(r.credentials === 'accepted' ? true : r.credentials === 'refused' ? false : undefined, `upload ${r.uploadStatus ?? 'not answered'}, credentials ${r.credentials}`),
    line(r.originProfile !== undefined ? true : undefined, r.originProfile ? `--origin-profile ${r.originProfile}${r.originProfile === 'generic' ? ' (it serves a file only once its upload ends)' : ' (it serves uploads while they arrive)'}` : 'origin profile unknown'),
    line(r.deleteStatus === undefined ? undefined : r.deleteStatus < 300 || r.deleteStatus === 404, `DELETE ${r.deleteStatus ?? 'not tried'}`),
    ...(r.problem ? [`  problem: ${r.problem}`] : []),
  ].join('\n');
}

/** `appliance check`; returns the exit status. */
export async function runCheck(argv: readonly string[]): Promise<number> {
  let values: { output?: string[]; source?: string; profile?: string; ffmpeg?: string; 'header-file'?: string; ca?: string; json?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${CHECK_USAGE}`);
  }
  if (values.help) return void process.stdout.write(`${CHECK_USAGE}\n`), 0;
  const targets = parseOutputs(values.output ?? [], process.cwd()).filter((t): t is PushTarget => t.kind === 'push');
  if (!targets.length && !values.source) throw new ConfigError(`appliance check needs at least one --output http(s)://… or a --source\n${CHECK_USAGE}`);
  let captureOk = true;
  if (values.source) {
    const capture = await checkCapture(values.source, values.profile ?? DEFAULT_PROFILE, values.ffmpeg);
    process.stdout.write(values.json ? `${JSON.stringify(capture)}\n` : `${describeCaptureReport(capture)}\n${targets.length ? '\n' : ''}`);
    captureOk = capture.ok;
    if (!targets.length) return captureOk ? 0 : 1;
  }
  const headers = pushHeaders(process.env, await readHeaderFile(values['header-file']));
  const ca = await trustedCertificates(values.ca);
  const reports = await Promise.all(targets.map((t) => probeOrigin(t, headers, ca)));
  process.stdout.write(values.json ? reports.map((r) => JSON.stringify(r)).join('\n') + '\n' : reports.map(describeReport).join('\n\n') + '\n');
  return captureOk && reports.every((r) => r.credentials === 'accepted' && !r.problem) ? 0 : 1;
}
