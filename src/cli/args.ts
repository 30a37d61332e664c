import { parseArgs, type ParseArgsConfig } from 'node:util';
import { ConfigError } from '../errors.ts';
import { LOG_LEVELS, type LogLevel } from '../log.ts';
import { DEFAULT_PROFILE } from '../config/profile.ts';
import { secretQueryParameter, DEFAULT_LISTEN, parseListen } from '../push/output-target.ts';
import { INGESTS, ORIGIN_PROFILES, type Ingest, type OriginProfile } from '../push/push-types.ts';
import { LLHLS_MODES } from '../packager/hls-playlist.ts';
import type { OptionSpecs, OptionValues } from './config-file.ts';
import { BYTE_SIZE_EXAMPLES, parseByteSize } from '../config/byte-size.ts';

export const COMMANDS = ['start', 'stop', 'devices', 'origin', 'check', 'install-service'] as const;

export const USAGE = `Usage: appliance <command> [options]

Commands:
  start       capture, encode and deliver a live stream
  stop        stop the running appliance (viewers keep a live stream), or with --end end the stream
  devices     list cameras and microphones with their formats (--json for scripts)
  origin      a receiving origin for pushes from appliances (see appliance origin --help)
  check       everything a start needs: ffmpeg, devices, origins (credentials, profile, upload
              speed), clock, CPU; non-zero when something would stop a start (appliance check --help)
  install-service
              install the systemd unit, a starter configuration and the service user
  --version   the appliance's version and the Node it runs on

appliance start [options]
  --profile NAME|FILE   ultra-ll (default), ll, standard, or the path of a profile file
  --source SPEC         test (default: moving pattern, burnt-in UTC clock, 1 kHz tone),
                        test:mandelbrot (high-motion pattern), test:sync (a flash and a beep at
                        every second, for lip sync; test:sync:drift with a drifting sound card),
                        device (the default camera and microphone), or
                        device:video=NAME|INDEX|none,audio=NAME|INDEX|none (see appliance devices),
                        file:PATH (a media file played out in real time as a live source), or
                        udp://IP:PORT, srt://HOST:PORT?mode=caller|listener (a live MPEG-TS feed;
                        the SRT passphrase from APPLIANCE_SRT_PASSPHRASE);
                        default: the profile's source, else test
  --loop                play a file source again from its start when it ends (otherwise the
                        stream ends with the file)
  --retry-devices       a missing or busy camera/microphone is retried (slate meanwhile) instead
                        of failing the start (default under systemd; --no-retry-devices: never)
  --output DIR/live.mpd write the stream to a directory (default: serve it, see --listen)
  --output URL          push it to an origin, e.g. https://origin.example/live/live.mpd
                        (give --output several times for several destinations)
  --origin-profile P    appliance (default: an origin that serves segments while they arrive,
                        like "appliance origin"), generic (nginx/WebDAV, object stores: a file
                        exists once its upload ends), or a CMAF ingest receiver: unified (Unified
                        Origin), mediapackage-v2 (AWS), generic-cmaf (names from a posted MPD);
                        once for all outputs, or once per --output
  --ingest dash|cmaf    dash: DASH/HLS objects and manifests (DASH-IF ingest Interface-2, the
                        default for appliance and generic); cmaf: each track as CMAF ingest
                        (Interface-1) to a publishing point, e.g. https://origin/live/channel.isml
                        (the default for the CMAF ingest receivers); once, or once per --output
  --method PUT|POST     the upload method (default: POST for unified and generic-cmaf, else PUT)
  --header-file FILE    extra headers for every upload, "Name: value" per line (e.g. credentials);
                        or APPLIANCE_PUSH_TOKEN (bearer), APPLIANCE_PUSH_USER + APPLIANCE_PUSH_PASSWORD (basic)
  --ca FILE             also trust the CA certificates in FILE (PEM) for https origins
  --client-cert FILE    present this TLS client certificate (PEM, with any intermediates) to https
  --client-key FILE     origins that admit encoders by certificate; the key unencrypted, mode 600
  --push-budget S       unacknowledged media kept for the origins, in seconds of the ladder (default:
                        30; held once for all origins); beyond it the oldest unsent media is dropped
                        and counted
  --memory SIZE         one budget for media: the built-in origin's time-shift window plus what the
                        origins have not acknowledged, e.g. 160M (default: the profile's memory, else
                        sized from the ladder, --tsb and --push-budget)
  --no-delete           do not DELETE segments that left the time-shift window at the origin
  --adapt, --no-adapt   step the encoder down when it falls behind real time (a box short of CPU),
                        or never (default: the profile's realtime.adapt, off); either way the
                        encoder-behind alarm and the manifests' latency margin
  --llhls br|sf|off     LL-HLS parts as byte ranges of the segment being made (br), also as part
                        files <segment>.<N> (sf), or classic HLS (off) (default: the profile's)
  --part-chunks N       CMAF chunks per LL-HLS part (default: the profile's, 1)
  --dual, --no-dual     DASH and HLS from the same segments (ultra-ll: on), or only the format the
                        output's name asks for (live.mpd: DASH, live.m3u8: HLS)
  --listen HOST:PORT    where the built-in origin serves the stream without --output
                        (default: 127.0.0.1:8080; port 0 picks a free one)
  --segdur S            segment duration in seconds (overrides the profile)
  --cdur S              CMAF chunk duration in seconds (overrides the profile)
  --asto S              availabilityTimeOffset in seconds (overrides the profile)
  --tsb S               time-shift window in seconds: manifest depth and files kept (overrides the profile)
  --utc-timing URL      the clock players synchronise with (MPD UTCTiming, http-iso with milliseconds)
                        (default: the built-in server's /time, or https://time.akamai.com/?iso&ms)
  --duration S          stop after S seconds (default: run until SIGTERM or Ctrl-C)
  --state-dir DIR       where state outliving the process is kept: the slate cache and the session
                        (default: $STATE_DIRECTORY under systemd, else ~/.local/state/appliance)
  --ffmpeg PATH         the ffmpeg binary (else APPLIANCE_FFMPEG, the system ffmpeg, ffmpeg-static)
  --log-level LEVEL     ${LOG_LEVELS.join(', ')} (default: info)
  --metrics HOST:PORT   serve /metrics (Prometheus), /healthz and /status there (default under
                        systemd: 127.0.0.1:9464; off elsewhere; "off": never)
  --config FILE         start options from a YAML file, keyed by flag name (e.g. source: device);
                        the command line wins over it
  --dry-run             print the resolved settings and the ffmpeg command line, then exit
  -h, --help            this text

Exit status: 0 done, 1 failed while running, 2 bad arguments, configuration or ffmpeg.`;

const START_OPTIONS = {
  profile: { type: 'string' },
  source: { type: 'string' },
  output: { type: 'string', multiple: true },
  'origin-profile': { type: 'string', multiple: true },
  method: { type: 'string' },
  ingest: { type: 'string', multiple: true },
  'header-file': { type: 'string' },
  ca: { type: 'string' },
  'push-budget': { type: 'string' },
  memory: { type: 'string' },
  'client-cert': { type: 'string' },
  'client-key': { type: 'string' },
  'no-delete': { type: 'boolean' },
  llhls: { type: 'string' },
  'part-chunks': { type: 'string' },
  dual: { type: 'boolean' },
  'no-dual': { type: 'boolean' },
  listen: { type: 'string' },
  segdur: { type: 'string' },
  cdur: { type: 'string' },
  asto: { type: 'string' },
  tsb: { type: 'string' },
  'utc-timing': { type: 'string' },
  duration: { type: 'string' },
  ffmpeg: { type: 'string' },
  'state-dir': { type: 'string' },
  'log-level': { type: 'string' },
  'dry-run': { type: 'boolean' },
  'retry-devices': { type: 'boolean' },
  loop: { type: 'boolean' },
  'no-retry-devices': { type: 'boolean' },
  adapt: { type: 'boolean' },
  'no-adapt': { type: 'boolean' },
  metrics: { type: 'string' },
  config: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export const START_OPTION_SPECS: OptionSpecs = START_OPTIONS;

/** Options with a negated twin: either one on the command line overrides both in the file. */
const NEGATED: Record<string, string> = {
  dual: 'no-dual',
  'retry-devices': 'no-retry-devices',
  adapt: 'no-adapt',
};

/**
 * Pure: the configuration file's values under the command line's, key by key (a flag given on the
 * command line replaces the file's value, lists included); `dual: false` in a file is --no-dual.
 */
export function mergeOptionValues(fromFile: OptionValues, fromCommandLine: OptionValues): OptionValues {
  const merged: OptionValues = {};
  for (const [key, value] of Object.entries(fromFile)) {
    if (NEGATED[key] && value === false) merged[NEGATED[key]] = true;
    else if (value !== false || !NEGATED[key]) merged[key] = value;
  }
  for (const key of Object.keys(fromCommandLine)) {
    const twin = NEGATED[key] ?? Object.keys(NEGATED).find((k) => NEGATED[k] === key);
    delete merged[key];
    if (twin) delete merged[twin];
  }
  Object.assign(merged, fromCommandLine);
  return merged;
}

export interface StartOptions {
  profile: string;
  /** Undefined: the profile's `source`, else test. */
  source: string | undefined;
  /** Undefined: on under systemd, off otherwise. */
  retryDevices: boolean | undefined;
  /** A file source is played again from its start when it ends. */
  loop: boolean;
  /** Every --output, in order; none: serve. */
  outputs: string[];
  /** One per output (or one for all). */
  originProfiles: OriginProfile[];
  /** Undefined: each origin profile's own. */
  method: 'PUT' | 'POST' | undefined;
  /** Given once for all outputs, or once per output; none: each origin profile's default. */
  ingests: Ingest[];
  headerFile?: string | undefined;
  ca?: string | undefined;
  clientCert?: string | undefined;
  clientKey?: string | undefined;
  /** Seconds of the ladder's bitrate; undefined: 30, or what --memory or the profile's memory leaves. */
  pushBudget?: number | undefined;
  /** Bytes for media, the store's window and push backlog together (--memory). */
  memory?: number | undefined;
  deleteExpired: boolean;
  /** Whether the profile's real-time steps are taken (--adapt, --no-adapt); undefined: the profile's. */
  adapt?: boolean | undefined;
  listen: string;
  llhls?: 'br' | 'sf' | 'off' | undefined;
  partChunks?: number | undefined;
  dual?: boolean | undefined;
  segdur?: number | undefined;
  cdur?: number | undefined;
  asto?: number | undefined;
  tsb?: number | undefined;
  /** Explicit --utc-timing; otherwise the built-in server's /time, or DEFAULT_UTC_TIMING. */
  utcTiming?: string | undefined;
  duration?: number | undefined;
  stateDir?: string | undefined;
  ffmpeg?: string | undefined;
  logLevel: LogLevel;
  /** Where /metrics, /healthz and /status are served; undefined: on under systemd (DEFAULT_METRICS), else off; false: off. */
  metrics: { host: string; port: number } | false | undefined;
  /** The configuration file the options came from, if any. */
  config?: string | undefined;
  dryRun: boolean;
  help: boolean;
}

/** Where the service serves its metrics unless told otherwise (Prometheus' node-exporter neighbourhood). */
export const DEFAULT_METRICS = '127.0.0.1:9464';

function metrics(value: string | undefined): StartOptions['metrics'] {
  if (value === undefined) return undefined;
  if (value === 'off' || value === 'false') return false;
  return parseListen(value, '--metrics');
}

function seconds(flag: string, value: string | undefined, { allowZero = false } = {}): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (value.trim() === '' || !Number.isFinite(parsed) || parsed < 0 || (!allowZero && parsed === 0)) {
    throw new ConfigError(
      `--${flag} "${value}": expected a number of seconds ${allowZero ? '(0 or more)' : 'greater than 0'}, e.g. --${flag} 1`,
    );
  }
  return parsed;
}

export const DEFAULT_UTC_TIMING = 'https://time.akamai.com/?iso&ms';

function httpUrl(flag: string, value: string): string {
  try {
    const url = new URL(value);
    if (url.protocol === 'http:' || url.protocol === 'https:') return value;
  } catch {
    // reported below
  }
  throw new ConfigError(
    `--${flag} "${value}": expected an http:// or https:// URL, e.g. --${flag} ${DEFAULT_UTC_TIMING}`,
  );
}

function oneOf<T extends string>(flag: string, value: string, allowed: readonly T[]): T {
  if (!(allowed as readonly string[]).includes(value))
    throw new ConfigError(`--${flag} "${value}": expected one of ${allowed.join(', ')}`);
  return value as T;
}

/** A flag given once for all outputs, or once per --output in the same order. */
function perOutput<T extends string>(
  flag: string,
  given: readonly string[],
  outputs: number,
  allowed: readonly T[],
): T[] {
  const values = given.map((p) => oneOf(flag, p, allowed));
  if (values.length > 1 && values.length !== outputs) {
    throw new ConfigError(
      `--${flag} is given ${values.length} times for ${outputs} --output: give it once for all outputs, or once per --output in the same order`,
    );
  }
  return values;
}

function partChunks(value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const parsed = Number(value);
  if (!/^\d+$/.test(value.trim()) || parsed < 1 || parsed > 50)
    throw new ConfigError(`--part-chunks "${value}": expected a whole number of CMAF chunks per LL-HLS part, 1 to 50`);
  return parsed;
}

function byteSize(flag: string, value: string | undefined): number | undefined {
  if (value === undefined) return undefined;
  const bytes = parseByteSize(value);
  if (bytes === undefined) throw new ConfigError(`--${flag} "${value}": expected ${BYTE_SIZE_EXAMPLES}`);
  return bytes;
}

function contradiction(a: string, b: string): never {
  throw new ConfigError(`${a} and ${b} contradict each other: give one`);
}

function dual(on: boolean | undefined, off: boolean | undefined): boolean | undefined {
  if (on && off) contradiction('--dual', '--no-dual');
  return on ? true : off ? false : undefined;
}

type StartValues = ReturnType<
  typeof parseArgs<{ options: typeof START_OPTIONS; strict: true; allowPositionals: false }>
>['values'];

/** Pure: the arguments after `start` (over a configuration file's values, if any) → options, or a ConfigError naming the bad flag. */
export function parseStartArgs(argv: readonly string[], fromFile: OptionValues = {}): StartOptions {
  let commandLine: StartValues;
  try {
    ({ values: commandLine } = parseArgs({
      args: [...argv],
      options: START_OPTIONS,
      strict: true,
      allowPositionals: false,
    }));
  } catch (error) {
    throw new ConfigError(
      `${(error as Error).message.replace(/\. To specify a positional.*$/s, '')}\nRun "appliance start --help" for the options.`,
    );
  }
  for (const output of commandLine.output ?? []) {
    const secret = secretQueryParameter(output);
    if (secret)
      throw new ConfigError(
        `--output ${output.replace(/\?.*$/s, '?…')}: its query parameter "${secret}" looks like a secret, and the command line shows in the process list and the journal: put the output in the configuration file (output: in --config, readable by the service only), or send the secret as a header with --header-file`,
      );
  }
  const values = mergeOptionValues(fromFile, commandLine as OptionValues) as StartValues;
  const logLevel = values['log-level'] ?? 'info';
  if (!(LOG_LEVELS as readonly string[]).includes(logLevel)) {
    throw new ConfigError(`--log-level "${logLevel}": expected one of ${LOG_LEVELS.join(', ')}`);
  }
  return {
    profile: values.profile ?? DEFAULT_PROFILE,
    source: values.source,
    loop: Boolean(values.loop),
    retryDevices:
      values['retry-devices'] && values['no-retry-devices']
        ? contradiction('--retry-devices', '--no-retry-devices')
        : values['retry-devices']
          ? true
          : values['no-retry-devices']
            ? false
            : undefined,
    outputs: values.output ?? [],
    originProfiles: perOutput(
      'origin-profile',
      values['origin-profile'] ?? [],
      (values.output ?? []).length,
      ORIGIN_PROFILES,
    ),
    method:
      values.method === undefined ? undefined : oneOf('method', values.method.toUpperCase(), ['PUT', 'POST'] as const),
    ingests: perOutput('ingest', values.ingest ?? [], (values.output ?? []).length, INGESTS),
    headerFile: values['header-file'],
    ca: values.ca,
    clientCert: values['client-cert'],
    clientKey: values['client-key'],
    pushBudget: seconds('push-budget', values['push-budget']),
    memory: byteSize('memory', values.memory),
    deleteExpired: !values['no-delete'],
    adapt:
      values.adapt && values['no-adapt']
        ? contradiction('--adapt', '--no-adapt')
        : values.adapt
          ? true
          : values['no-adapt']
            ? false
            : undefined,
    listen: values.listen ?? DEFAULT_LISTEN,
    llhls: values.llhls === undefined ? undefined : oneOf('llhls', values.llhls, LLHLS_MODES),
    partChunks: partChunks(values['part-chunks']),
    dual: dual(values.dual, values['no-dual']),
    segdur: seconds('segdur', values.segdur),
    cdur: seconds('cdur', values.cdur),
    asto: seconds('asto', values.asto, { allowZero: true }),
    tsb: seconds('tsb', values.tsb),
    utcTiming: values['utc-timing'] === undefined ? undefined : httpUrl('utc-timing', values['utc-timing']),
    duration: seconds('duration', values.duration),
    ffmpeg: values.ffmpeg,
    logLevel: logLevel as LogLevel,
    metrics: metrics(values.metrics),
    config: values.config,
    dryRun: values['dry-run'] ?? false,
    stateDir: values['state-dir'],
    help: values.help ?? false,
  };
}
