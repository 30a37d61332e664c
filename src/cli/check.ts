import { randomBytes } from 'node:crypto';
import type { Readable } from 'node:stream';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { Client } from '../push/http-client.ts';
import { DEFAULT_PROFILE } from '../config/profile.ts';
import { ConfigError } from '../errors.ts';
import { checkCapture, describeCaptureReport } from './check-capture.ts';
import { pushHeaders, readHeaderFile, trustedCertificates } from '../push/credentials.ts';
import { parseOutputs, type PushTarget } from '../push/output-target.ts';
import { originCapabilities, originTimeUrl } from '../push/origin-capabilities.ts';
import type { OriginProfile } from '../push/push-types.ts';
import { safeUrl } from '../push/upload-outcome.ts';
import { probeIngestPoint } from './check-ingest.ts';
import { destinationOf } from './outputs.ts';
import { packageVersion, userAgent } from '../version.ts';
import { loadProfile } from '../config/profile.ts';
import { parseStartArgs, START_OPTION_SPECS } from './args.ts';
import { readConfigFile } from './config-file.ts';
import { type ClientCertificate, readClientCertificate, tlsConnectOptions } from '../push/client-certificate.ts';
import {
  checkClockOffset,
  checkCpu,
  checkFfmpeg,
  measureUpload,
  uploadFinding,
  type Finding,
  type Verdict,
} from './check-system.ts';

export const CHECK_USAGE = `appliance check [--config FILE] [--output URL] [--source SPEC] [options]
  Everything a start needs, line by line (✓ fine, ! works but worse, ✗ would stop a start or the
  stream): ffmpeg (path, version, encoders), the capture source's devices, each origin (reachable,
  credentials, --origin-profile, upload speed against the ladder), the clock's offset, and the CPU
  for the profile's ladder (a 4 s test encode). Run it as the service user too:
  sudo -u appliance appliance check --config /etc/appliance/appliance.yaml
  --config FILE         the service's configuration (as for "appliance start --config"); the flags win
  --output URL          the origin to probe, as given to "appliance start" (repeat for several)
  --source SPEC         the capture source, as given to "appliance start" (device, device:video=…,audio=…):
                        the devices and mode it would take; under systemd, a PulseAudio/PipeWire
                        microphone is refused with the ALSA devices (plughw:, dsnoop:) to use instead
  --profile NAME|FILE   the profile the source is checked for (default: ultra-ll)
  --ffmpeg PATH         the ffmpeg binary
  --header-file FILE    extra headers, as for "appliance start" (credentials from the environment too)
  --ca FILE             also trust the CA certificates in FILE (PEM)
  --client-cert FILE, --client-key FILE
                        the TLS client certificate for https origins, as for "appliance start"
  --origin-profile P, --ingest dash|cmaf, --method PUT|POST
                        as for "appliance start": a CMAF ingest receiver is probed as a session
                        starts (an empty request to the publishing point), nothing uploaded
  --no-cpu              skip the test encode
  --json                one JSON object {ok, findings, origins, capture} instead of text
It uploads a small probe object next to the manifest, reads it back while the upload is still
running (an appliance origin serves it; a generic one answers 404 until the upload ends), and
deletes it. Exit status: 0 nothing would stop a start, 1 something would, 2 bad arguments.`;

const OPTIONS = {
  output: { type: 'string', multiple: true },
  source: { type: 'string' },
  profile: { type: 'string' },
  ffmpeg: { type: 'string' },
  'header-file': { type: 'string' },
  ca: { type: 'string' },
  'client-cert': { type: 'string' },
  'client-key': { type: 'string' },
  json: { type: 'boolean' },
  config: { type: 'string' },
  'no-cpu': { type: 'boolean' },
  'origin-profile': { type: 'string', multiple: true },
  ingest: { type: 'string', multiple: true },
  method: { type: 'string' },
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

/** A probe's failure in words: the error's code, with the way out of a certificate problem. */
export function connectionProblem(error: unknown): string {
  const code = (error as { code?: string; cause?: { code?: string } }).cause?.code ?? (error as { code?: string }).code;
  return `${code ?? (error as Error).message}${code && /CERT|SELF_SIGNED|UNABLE_TO/.test(code) ? ": give the origin's CA with --ca FILE" : ''}`;
}

/** Probes one origin; never throws. */
export async function probeOrigin(
  target: PushTarget,
  headers: Record<string, string>,
  ca: string[] | undefined,
  client?: ClientCertificate | undefined,
): Promise<OriginReport> {
  const report: OriginReport = {
    url: safeUrl(target.url),
    reachable: false,
    uploadStatus: undefined,
    credentials: 'unknown',
    originProfile: undefined,
    deleteStatus: undefined,
    server: undefined,
    rttMs: undefined,
    problem: undefined,
  };
  const probe = new URL(`.appliance-check-${randomBytes(6).toString('hex')}.txt${target.url.search}`, target.url);
  const path = probe.pathname + probe.search;
  const options = {
    connect: {
      timeout: 5000,
      ...tlsConnectOptions(probe.origin, ca, client),
    },
    headersTimeout: 10_000,
    bodyTimeout: 10_000,
  };
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
    const upload = uploader.request({
      path,
      method: 'PUT',
      headers: { ...base, 'content-type': 'text/plain' },
      body: body as unknown as Readable,
    });
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
    report.credentials =
      answer.statusCode === 401 || answer.statusCode === 403
        ? 'refused'
        : answer.statusCode < 300
          ? 'accepted'
          : 'unknown';
    if (answer.statusCode >= 300) report.problem = `the probe upload was answered HTTP ${answer.statusCode}`;
    else report.originProfile = during?.status === 200 && during.data ? 'appliance' : 'generic';
    if (answer.statusCode < 300) {
      const removed = await uploader.request({ path, method: 'DELETE', headers: base });
      await removed.body.dump();
      report.deleteStatus = removed.statusCode;
      if (removed.statusCode >= 300 && removed.statusCode !== 404)
        report.problem = `DELETE is refused (HTTP ${removed.statusCode}): run with --no-delete, or let the origin expire old segments`;
    }
  } catch (error) {
    report.problem = connectionProblem(error);
  } finally {
    await Promise.all([uploader.destroy(), reader.destroy()]);
  }
  return report;
}

function describeReport(r: OriginReport): string {
  const line = (ok: boolean | undefined, text: string) => `  ${ok === undefined ? '-' : ok ? '✓' : '✗'} ${text}`;
  return [
    r.url,
    line(
      r.reachable,
      r.reachable ? `reachable (${r.rttMs} ms round trip${r.server ? `, Server: ${r.server}` : ''})` : 'not reachable',
    ),
    line(
      r.credentials === 'accepted' ? true : r.credentials === 'refused' ? false : undefined,
      `upload ${r.uploadStatus ?? 'not answered'}, credentials ${r.credentials}`,
    ),
    line(
      r.originProfile !== undefined ? true : undefined,
      r.originProfile
        ? `--origin-profile ${r.originProfile} (${originCapabilities(r.originProfile).description})`
        : 'origin profile unknown',
    ),
    line(
      r.deleteStatus === undefined ? undefined : r.deleteStatus < 300 || r.deleteStatus === 404,
      `DELETE ${r.deleteStatus ?? 'not tried'}`,
    ),
    ...(r.problem ? [`  problem: ${r.problem}`] : []),
  ].join('\n');
}

const MARK: Record<Verdict, string> = { ok: '✓', warn: '!', fail: '✗' };
const describeFinding = (f: Finding) => `  ${MARK[f.verdict]} ${f.check}: ${f.text}`;

const listOf = (value: unknown): string[] =>
  Array.isArray(value) ? value.map(String) : typeof value === 'string' ? [value] : [];

/** `appliance check`; returns the exit status. */
export async function runCheck(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let values: {
    output?: string[];
    source?: string;
    profile?: string;
    ffmpeg?: string;
    'header-file'?: string;
    ca?: string;
    'client-cert'?: string;
    'client-key'?: string;
    config?: string;
    json?: boolean;
    'no-cpu'?: boolean;
    'origin-profile'?: string[];
    ingest?: string[];
    method?: string;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${CHECK_USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${CHECK_USAGE}\n`);
    return 0;
  }
  // The service's configuration, if named: the same source, outputs, profile and credentials.
  const file = values.config ? await readConfigFile(values.config, START_OPTION_SPECS) : {};
  const fromFile = (key: string) => (typeof file[key] === 'string' ? (file[key] as string) : undefined);
  const profile = (await loadProfile(values.profile ?? fromFile('profile') ?? DEFAULT_PROFILE)).profile;
  const outputs = values.output ?? (file['output'] as string[] | undefined) ?? [];
  const targets = parseOutputs(outputs, process.cwd()).filter((t): t is PushTarget => t.kind === 'push');
  const source = values.source ?? fromFile('source') ?? profile.source;
  const ffmpegFlag = values.ffmpeg ?? fromFile('ffmpeg');

  const { ffmpeg, findings } = await checkFfmpeg(ffmpegFlag);
  let capture: Awaited<ReturnType<typeof checkCapture>> | undefined;
  if (source && ffmpeg)
    capture = await checkCapture(source, values.profile ?? fromFile('profile') ?? DEFAULT_PROFILE, ffmpegFlag);
  const headers = pushHeaders(env, await readHeaderFile(values['header-file'] ?? fromFile('header-file')));
  const ca = await trustedCertificates(values.ca ?? fromFile('ca'));
  const { certificate: client, warnings: clientWarnings } = await readClientCertificate(
    values['client-cert'] ?? fromFile('client-cert'),
    values['client-key'] ?? fromFile('client-key'),
  );
  for (const text of clientWarnings) findings.push({ check: 'client certificate', verdict: 'warn', text });
  // Which origins take CMAF ingest: the same flags (or configuration) and rules as a start's.
  // (The outputs go in as a configuration's would: a signed URL's query is no reason to refuse here.)
  const pushOptions = parseStartArgs(
    [
      ...(values['origin-profile'] ?? listOf(file['origin-profile'])).flatMap((p) => ['--origin-profile', p]),
      ...(values.ingest ?? listOf(file['ingest'])).flatMap((i) => ['--ingest', i]),
      ...((values.method ?? fromFile('method')) ? ['--method', (values.method ?? fromFile('method'))!] : []),
    ],
    { output: outputs },
  );
  const push = { profiles: pushOptions.originProfiles, ingests: pushOptions.ingests, method: pushOptions.method };
  // Indexed like --output (a directory output counts), as a start indexes --origin-profile.
  const destinations = parseOutputs(outputs, process.cwd()).flatMap((t, index) =>
    t.kind === 'push' ? [destinationOf(push, index, t)] : [],
  );
  const reports = await Promise.all(
    targets.map((t, i) =>
      destinations[i]!.ingest === 'cmaf'
        ? probeIngestPoint(destinations[i]!, destinations[i]!.origin.takesCredentials ? headers : {}, ca, client)
        : probeOrigin(t, headers, ca, client),
    ),
  );
  const uploads = new Map<OriginReport, Finding>();
  for (const [i, report] of reports.entries()) {
    if (!report.reachable || report.credentials !== 'accepted') continue;
    if (destinations[i]!.ingest === 'cmaf') {
      // A CMAF ingest receiver takes only media: the speed probe's object would be refused.
      const finding: Finding = {
        check: 'upload',
        verdict: 'ok',
        text: `${report.url}: CMAF ingest receiver; upload speed not measured (it takes only media: watch the push metrics after the start)`,
      };
      uploads.set(report, finding);
      findings.push(finding);
      continue;
    }
    const speed = await measureUpload(
      targets[i]!,
      { ...headers, 'user-agent': userAgent(await packageVersion()) },
      ca,
      profile,
      undefined,
      client,
    );
    const finding: Finding =
      speed === undefined
        ? { check: 'upload', verdict: 'warn', text: `${report.url}: the upload-speed probe failed` }
        : uploadFinding(report.url, speed, profile);
    uploads.set(report, finding);
    findings.push(finding);
  }
  const timeUrls = targets.flatMap((t, i) => {
    const profile = reports[i]?.originProfile;
    return (profile && originTimeUrl(originCapabilities(profile), t.url)) || [];
  });
  findings.push(await checkClockOffset(profile, timeUrls));
  if (ffmpeg && !values['no-cpu'] && !findings.some((f) => f.check === 'ffmpeg encoders' && f.verdict === 'fail'))
    findings.push(await checkCpu(ffmpeg.path, profile, undefined, capture?.decode));

  const originsOk = reports.every((r) => r.credentials === 'accepted' && !r.problem);
  const ok = originsOk && (capture?.ok ?? true) && findings.every((f) => f.verdict !== 'fail');
  if (values.json) {
    process.stdout.write(`${JSON.stringify({ ok, findings, origins: reports, capture })}\n`);
  } else {
    const sections = [
      [
        'this machine',
        findings
          .filter((f) => f.check !== 'upload')
          .map(describeFinding)
          .join('\n'),
      ],
      ...(capture ? [['capture', describeCaptureReport(capture)]] : []),
      ...reports.map((r) => [
        'origin',
        `${describeReport(r)}${uploads.has(r) ? `\n${describeFinding(uploads.get(r)!)}` : ''}`,
      ]),
    ];
    process.stdout.write(
      `${sections.map(([title, body]) => `${title}\n${body}`).join('\n\n')}\n\n${ok ? '✓ nothing stands in the way of a start' : '✗ something above would stop a start or the stream'}\n`,
    );
  }
  return ok ? 0 : 1;
}
