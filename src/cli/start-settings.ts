import { stringify as toYaml } from 'yaml';
import { parseSource, sourceSpecOf, type Source } from '../capture/source.ts';
import { listDevices } from '../capture/devices/list-devices.ts';
import { atRate, resolveDevices } from '../capture/resolve-devices.ts';
import { fileSourcePolicy } from '../capture/file-source.ts';
import { probeInput } from '../capture/probe-input.ts';
import { feedForLogs, feedSourcePolicy, srtPassphrase } from '../capture/feed-source.ts';
import { SRT_PASSPHRASE_ENV } from '../secret-environment.ts';
import { layoutOf } from '../layout/object-names.ts';
import { FeedRelay } from '../capture/feed-relay.ts';
import { KEYFRAME_GRID_LATE_TOLERANCE_SECONDS } from '../capture/ts-restamp.ts';
import { TEST_SOURCE_FILTERS } from '../capture/test-source.ts';
import { applyOverrides, checkTiming, loadProfile } from '../config/profile.ts';
import type { Profile } from '../config/schema.ts';
import { stateDirectory } from '../config/state-dir.ts';
import { CLOCK_REFUSE_MS, CLOCK_WARN_MS, measureClockOffset } from '../encode/clock.ts';
import { buildEncoderPlan, shellQuote, type EncoderPlan } from '../encode/ffmpeg-args.ts';
import { locateFfmpeg, type Ffmpeg } from '../encode/ffmpeg-resolve.ts';
import { ConfigError } from '../errors.ts';
import { mediaBudget } from '../run/media-budget.ts';
import { readClientCertificate } from '../push/client-certificate.ts';
import { memoryLimitWarning, memoryNeeded, readMemoryLimit } from '../service/memory-limit.ts';
import { planLadder } from '../ladder/ladder.ts';
import { checkKeyframeInterval, PASSTHROUGH_FIELD, passthroughRendition } from '../ladder/passthrough.ts';
import type { InputInfo } from '../capture/media-info.ts';
import type { Logger } from '../log.ts';
import { outputFormats } from '../packager/hls-playlists.ts';
import { sessionHlsTiming } from '../packager/manifest-model.ts';
import { pushHeaders, readHeaderFile, trustedCertificates } from '../push/credentials.ts';
import { originTimeUrl } from '../push/origin-capabilities.ts';
import { cmafLayoutOf } from '../push/cmaf-ingest.ts';
import { chunksPerSegment } from '../packager/chunker.ts';
import { ensureWritableDirectory, parseListen, parseOutputs, type OutputTarget } from '../push/output-target.ts';
import { userAgent, packageVersion } from '../version.ts';
import { DEFAULT_METRICS, DEFAULT_UTC_TIMING, type StartOptions } from './args.ts';
import { hostForUrl } from '../listen.ts';
import { destinationOf, originOf, pushUtcTiming, type PushSettings } from './outputs.ts';

/** What the ffmpeg a start uses must have. */
export const FFMPEG_NEEDS = {
  encoders: ['libx264', 'aac'],
  filters: [
    ...TEST_SOURCE_FILTERS,
    'select',
    'split',
    'scale',
    'format',
    'aresample',
    'fps',
    'color',
    'anullsrc',
    'blackdetect',
    'freezedetect',
    'silencedetect',
    'metadata',
    'ametadata',
    'nullsink',
  ],
} as const;

/** How long the start waits for a feed to say what it holds. */
const FEED_PROBE_MS = 10_000;

/**
 * A feed run's stamps are written counting from an hour before the run's start (whole seconds):
 * far from the 33-bit wrap (26.5 h) and never negative; the graph adds it back.
 */
const feedBase = () => Math.floor(Date.now() / 1000) - 3600;

/** What a feed not there yet is taken to be: the top rendition at the profile's rate, with audio. */
function assumedFeed(profile: Profile) {
  const top = profile.video.renditions[0]!;
  return {
    duration: undefined,
    start: undefined,
    error: undefined,
    video: {
      codec: 'h264',
      width: top.width,
      height: top.height,
      framerate: profile.video.framerate,
      fieldOrder: 'progressive',
    },
    audio: { codec: 'aac', sampleRate: profile.audio.samplerate, layout: 'stereo' },
  };
}

/** From spawning ffmpeg to a file's first packet released by `-re` (measured, see the README). */
const FILE_START_LEAD_SECONDS = 0.08;

// What `start` runs with, resolved and checked before anything runs, and how --dry-run shows it.

export interface ResolvedStart {
  profile: Profile;
  profileFile: string;
  source: Source;
  outputs: OutputTarget[];
  push: PushSettings;
  plan: EncoderPlan;
  /**
   * The plan for one run of the encoder (of `runProfile`, a real-time level of the profile, else
   * the profile): a file source is anchored on the wall clock when it starts.
   */
  planForRun(runProfile?: Profile): EncoderPlan;
  /** The slate's plan for a real-time level of the profile. */
  slatePlanFor(runProfile: Profile): EncoderPlan;
  /** A feed's receiver, running since the start was resolved (it also said what the feed holds). */
  feedRelay: FeedRelay | undefined;
  /** The same outputs and settings, encoding the slate. */
  slatePlan: EncoderPlan;
  /** Where state outlives the process (the slate cache); undefined: nowhere. */
  stateDir: string | undefined;
  ffmpeg: Ffmpeg;
  /** How the capture devices and their mode were chosen (empty for the test source). */
  sourceReasons: string[];
  /** Missing or busy devices are retried (slate meanwhile) rather than fatal: --retry-devices, or under systemd. */
  retryDevices: boolean;
  /** Explicit --utc-timing, if any; serving defaults to the server's own /time. */
  utcTiming: string | undefined;
  /** Where /metrics, /healthz and /status are served (--metrics; by default under systemd). */
  metrics: { host: string; port: number } | undefined;
  warnings: string[];
}

/** Everything `start` needs, checked before anything runs; every failure here is a ConfigError. */
export async function resolveStart(
  options: StartOptions,
  cwd: string,
  env: NodeJS.ProcessEnv = process.env,
): Promise<ResolvedStart> {
  const started: { relay?: FeedRelay } = {};
  try {
    return await resolveStartWith(options, cwd, env, started);
  } catch (error) {
    // A refused start leaves no feed receiver behind.
    started.relay?.stop();
    throw error;
  }
}

async function resolveStartWith(
  options: StartOptions,
  cwd: string,
  env: NodeJS.ProcessEnv,
  started: { relay?: FeedRelay },
): Promise<ResolvedStart> {
  const loaded = await loadProfile(options.profile);
  let profile = applyOverrides(loaded.profile, options);
  const request = parseSource(options.source ?? profile.source ?? 'test', cwd);
  const ffmpeg = await locateFfmpeg(options.ffmpeg, FFMPEG_NEEDS);
  const underService = Boolean(env['INVOCATION_ID']);
  const retryDevices = options.retryDevices ?? underService;
  let source: Source;
  let feedRelay: FeedRelay | undefined;
  let feedInfo: InputInfo | undefined;
  const sourceReasons: string[] = [];
  const sourceWarnings: string[] = [];
  if (request.kind === 'device') {
    const devices = resolveDevices(request, await listDevices(ffmpeg.path), profile, {
      allowMissing: retryDevices,
      underService,
    });
    ({ source, profile } = devices);
    sourceReasons.push(...devices.reasons);
    sourceWarnings.push(...devices.warnings);
  } else if (request.kind === 'file') {
    const played = fileSourcePolicy(request, await probeInput(ffmpeg.path, request.path), profile, options.loop);
    source = played.source;
    sourceReasons.push(...played.reasons);
    profile = atRate(profile, source.framerate, sourceReasons);
  } else if (request.kind === 'feed') {
    feedRelay = new FeedRelay({
      ffmpegPath: ffmpeg.path,
      request,
      passphrase: srtPassphrase(env[SRT_PASSPHRASE_ENV]),
      segdur: profile.segdur,
      keyframeGrid: profile.video.passthrough,
    });
    started.relay = feedRelay;
    feedRelay.start();
    const info = await feedRelay.info(FEED_PROBE_MS);
    feedInfo = info;
    // A refusal from here on stops the receiver in resolveStart. A copy needs the feed it copies.
    if (!info && (!retryDevices || profile.video.passthrough)) {
      const said = feedRelay.stderrForLogs
        .split('\n')
        .map((l) => l.trim())
        .filter(Boolean)
        .slice(-3);
      throw new ConfigError(
        `--source ${feedForLogs(request.url)}: no MPEG-TS feed within ${FEED_PROBE_MS / 1000} s${said.length ? ` (ffmpeg: ${said.join(' | ')})` : ''}; is the sender running and sending here? ${profile.video.passthrough ? `(${PASSTHROUGH_FIELD} copies the feed, so it must be there at the start)` : '(with --retry-devices, the default under systemd, the appliance starts on slate and waits for it)'}`,
      );
    }
    const played = feedSourcePolicy(request, info ?? assumedFeed(profile), profile);
    source = played.source;
    sourceReasons.push(...played.reasons);
    if (!info)
      sourceWarnings.push(
        `no feed on ${feedForLogs(request.url)} yet: assuming ${played.source.width}x${played.source.height} at ${played.source.framerate} fps with audio (the top rendition), slate until it comes`,
      );
    profile = atRate(profile, source.framerate, sourceReasons);
  } else source = request;
  if (options.loop && source.kind !== 'file')
    throw new ConfigError(
      `--loop applies to a file source (--source file:PATH); the source is ${sourceSpecOf(source)}`,
    );
  const timing = checkTiming(profile);
  if (timing.errors.length) {
    throw new ConfigError(
      `impossible timing (profile ${loaded.file} with overrides${source.kind === 'device' ? " at the camera's rate" : ''}):\n  ${timing.errors.join('\n  ')}`,
    );
  }
  const ladder = planLadder(profile.video.renditions, source);
  if (ladder.renditions.length === 0) {
    throw new ConfigError(
      `every rendition of ${loaded.file} is larger than the source (${source.width}x${source.height})`,
    );
  }
  if (profile.video.passthrough) {
    const copied = passthroughRendition(profile, source, feedInfo, ladder.renditions);
    sourceReasons.push(copied.reason);
    const interval = await feedRelay?.keyframeInterval(FEED_PROBE_MS);
    if (interval === undefined)
      throw new ConfigError(
        `${PASSTHROUGH_FIELD}: no two keyframes of the feed within ${FEED_PROBE_MS / 1000} s after it settled; a copy starts at one (set the sender's keyframe interval to ${profile.segdur} s)`,
      );
    checkKeyframeInterval(interval, profile.segdur);
    sourceReasons.push(
      `keyframes every ${interval} s: each segment starts with one, put on its boundary (the feed is mapped between ${KEYFRAME_GRID_LATE_TOLERANCE_SECONDS / 2} s before and a segment after its arrival)`,
    );
  }
  const warnings = [
    ...sourceWarnings,
    ...timing.warnings,
    ...ladder.dropped.map(
      (r) =>
        `rendition ${r.id} (${r.width}x${r.height}) is larger than the source (${source.width}x${source.height}): dropped, not upscaled`,
    ),
  ];
  const outputs = parseOutputs(options.outputs, cwd, options.listen);
  for (const output of outputs)
    if (output.kind === 'directory') await ensureWritableDirectory(output.dir, { create: !options.dryRun });
  // A level of the profile (fewer renditions) drops those above the source as the profile does.
  const renditionsOf = (p: Profile) =>
    p.video.renditions === profile.video.renditions
      ? ladder.renditions
      : planLadder(p.video.renditions, source).renditions;
  const planForRun = (runProfile: Profile = profile) => {
    const startMs = Date.now();
    return buildEncoderPlan(runProfile, source, renditionsOf(runProfile), {
      startMs,
      ...(source.kind === 'file'
        ? { anchorSeconds: startMs / 1000 + FILE_START_LEAD_SECONDS }
        : source.kind === 'feed'
          ? { anchorSeconds: feedBase() }
          : {}),
    });
  };
  const plan = planForRun();
  const slatePlan = buildEncoderPlan(profile, source, ladder.renditions, { slate: true });
  const pushing = outputs.some((o) => o.kind === 'push');
  if (
    !pushing &&
    (options.headerFile ||
      options.ca ||
      options.clientCert ||
      options.clientKey ||
      options.originProfiles.length ||
      options.ingests.length)
  )
    warnings.push(
      '--header-file, --ca, --client-cert/--client-key, --origin-profile and --ingest apply to origins (--output http(s)://…); there is none',
    );
  const client = await readClientCertificate(options.clientCert, options.clientKey);
  warnings.push(...client.warnings);
  if (client.certificate && pushing && !outputs.some((o) => o.kind === 'push' && o.url.protocol === 'https:'))
    warnings.push('--client-cert is presented over TLS only: no origin here is https://');
  const ladderBytesPerSecond = plan.tracks.reduce((sum, t) => sum + t.bitrate, 0) / 8;
  const push: PushSettings = {
    profiles: options.originProfiles,
    ingests: options.ingests,
    method: options.method,
    headers: pushing ? pushHeaders(env, await readHeaderFile(options.headerFile)) : {},
    ca:
      options.ca || outputs.some((o) => o.kind === 'push' && o.url.protocol === 'https:')
        ? await trustedCertificates(options.ca)
        : undefined,
    media: mediaBudget({
      ladderBytesPerSecond,
      segdur: profile.segdur,
      tsb: profile.tsb,
      serving: outputs.some((o) => o.kind === 'serve'),
      pushing,
      pushBudgetSeconds: options.pushBudget,
      memory:
        options.memory !== undefined
          ? { bytes: options.memory, from: '--memory' }
          : profile.memory !== undefined && options.pushBudget === undefined
            ? { bytes: profile.memory, from: `the profile's memory` }
            : undefined,
    }),
    clientCertificate: client.certificate,
    deleteExpired: options.deleteExpired,
    userAgent: userAgent(await packageVersion()),
  };
  // What does not go together (CMAF ingest to an origin that takes DASH objects…) stops the start here.
  for (const [index, output] of outputs.entries()) {
    if (output.kind !== 'push') continue;
    const { origin } = destinationOf(push, index, output);
    if (!origin.takesCredentials && Object.keys(push.headers).length)
      warnings.push(
        `${output.given.origin}: credentials and --header-file headers are not sent to ${origin.profile} (its channel policy admits encoders)`,
      );
  }
  const ladderPixels = ladder.renditions.reduce((sum, r) => sum + r.width * r.height, 0);
  const tooLittle = memoryLimitWarning(await readMemoryLimit(), memoryNeeded(push.media.budgetBytes, ladderPixels));
  if (tooLittle) warnings.push(tooLittle);
  return {
    profile,
    profileFile: loaded.file,
    source,
    outputs,
    push,
    plan,
    planForRun,
    slatePlanFor: (runProfile: Profile) =>
      buildEncoderPlan(runProfile, source, renditionsOf(runProfile), { slate: true }),
    feedRelay,
    slatePlan,
    stateDir: stateDirectory(options.stateDir),
    ffmpeg,
    sourceReasons,
    retryDevices,
    utcTiming: options.utcTiming,
    metrics:
      options.metrics === false
        ? undefined
        : (options.metrics ?? (underService ? parseListen(DEFAULT_METRICS, '--metrics') : undefined)),
    warnings,
  };
}

export function describe(resolved: ResolvedStart): string {
  const { profile, source, outputs, plan, ffmpeg, push } = resolved;
  const credentials = push.headers['authorization']?.split(' ')[0];
  const manifests = (manifest: string) => {
    const formats = outputFormats(manifest, profile.hls.dual);
    return [
      ...(formats.dash ? [formats.mpd] : []),
      ...(formats.hls ? [formats.multivariant, ...plan.tracks.map((t) => formats.names.mediaPlaylist(t.id))] : []),
    ];
  };
  const describeOutput = (output: OutputTarget, index: number) => {
    if (output.kind === 'directory')
      return {
        directory: output.dir,
        manifests: manifests(output.manifest),
        utcTiming: resolved.utcTiming ?? DEFAULT_UTC_TIMING,
      };
    if (output.kind === 'serve')
      return {
        serve: `http://${hostForUrl(output.host)}:${output.port}/`,
        manifests: manifests(output.manifest),
        utcTiming: resolved.utcTiming ?? `http://${hostForUrl(output.host)}:${output.port}/time`,
      };
    const destination = destinationOf(push, index, output);
    const { origin } = destination;
    const cmaf = destination.ingest === 'cmaf';
    const shown = (url: URL) => `${url.origin}${url.pathname}${url.search ? '?…' : ''}`;
    return {
      push: shown(destination.url),
      ingest: cmaf ? 'cmaf (DASH-IF Interface-1)' : 'dash (DASH-IF Interface-2)',
      ...(cmaf
        ? {
            objects: plan.tracks.map((t) =>
              cmafLayoutOf(origin.cmafNaming, t.id, t.rendition ? 'video' : 'audio', chunksPerSegment(profile)),
            ),
            manifests: origin.cmafNaming === 'template' ? [destination.manifest] : [],
          }
        : { manifests: manifests(output.manifest) }),
      originProfile: origin.profile,
      method: destination.method,
      utcTiming: pushUtcTiming(output, origin, resolved.utcTiming),
      credentials: !origin.takesCredentials
        ? 'none sent (its channel policy admits encoders)'
        : credentials
          ? `${credentials} (value hidden)`
          : 'none',
      clientCertificate:
        push.clientCertificate && output.url.protocol === 'https:'
          ? `${push.clientCertificate.subject}, valid to ${push.clientCertificate.validTo} (key hidden)`
          : 'none',
      headers: origin.takesCredentials ? Object.keys(push.headers).filter((h) => h !== 'authorization') : [],
      budgetBytes: push.media.pushBytes,
      deleteExpired: push.deleteExpired && !cmaf,
    };
  };
  const settings = {
    profile: { name: profile.name, file: resolved.profileFile },
    timing: { segdur: profile.segdur, cdur: profile.cdur, asto: profile.asto, idr: profile.idr, tsb: profile.tsb },
    memory: push.media,
    source: {
      spec: sourceSpecOf(source),
      width: source.width,
      height: source.height,
      framerate: profile.video.framerate,
      ...(source.kind === 'feed' ? { chosen: resolved.sourceReasons } : {}),
      ...(source.kind === 'file'
        ? { loop: source.loop, duration: source.duration, chosen: resolved.sourceReasons }
        : {}),
      ...(source.kind === 'device'
        ? {
            ...(source.video
              ? {
                  videoFormat: source.video.choice.format ?? "the driver's",
                  captureRate: source.video.choice.captureRate,
                }
              : {}),
            chosen: resolved.sourceReasons,
            retryDevices: resolved.retryDevices,
          }
        : {}),
    },
    tracks: plan.tracks.map((t) =>
      t.rendition
        ? profile.video.passthrough
          ? {
              id: t.id,
              codec: 'H.264, copied from the feed',
              width: t.rendition.width,
              height: t.rendition.height,
              bitrate: t.bitrate,
              pipe: t.fd,
            }
          : {
              id: t.id,
              codec: 'H.264 High',
              width: t.rendition.width,
              height: t.rendition.height,
              bitrate: t.bitrate,
              preset: profile.video.preset,
              pipe: t.fd,
            }
        : {
            id: t.id,
            codec: 'AAC-LC',
            bitrate: t.bitrate,
            samplerate: profile.audio.samplerate,
            channels: profile.audio.channels,
            pipe: t.fd,
          },
    ),
    latency: profile.latency,
    hls: describeHls(profile),
    outputs: outputs.map(describeOutput),
    segments: plan.tracks.map((t) => layoutOf(t.id)),
    timeShiftBufferDepth: profile.tsb,
    ffmpeg: { path: ffmpeg.path, version: ffmpeg.version.text, from: ffmpeg.origin },
    warnings: resolved.warnings,
  };
  return `# resolved settings\n${toYaml(settings)}\n# ffmpeg command line (tracks on fds ${plan.tracks.map((t) => t.fd).join(', ')}, -progress on stdout)\n${shellQuote([ffmpeg.path, ...plan.args])}\n`;
}

/**
 * The clock is the timeline: its offset is measured and reported, warned about above 20 ms, and
 * ultra-ll (whose latency budget it eats) refuses to start above 100 ms.
 */
/** Measures the clock offset (logged, refused when far off for ultra-ll); returns it in ms. */
export async function checkClock(resolved: ResolvedStart, logger: Logger): Promise<number | undefined> {
  const timeUrls = resolved.outputs.flatMap(
    (o, i) => (o.kind === 'push' && originTimeUrl(originOf(resolved.push, i), o.url)) || [],
  );
  const measured = await measureClockOffset({ timeUrls });
  if (!measured)
    return void logger.info(
      'clock offset: nothing to measure it against (no chrony, no systemd-timesyncd, no origin clock)',
    );
  const fields = { offsetMs: Math.round(measured.offsetMs * 10) / 10, source: measured.source };
  // Only the machine's own time daemon stops ultra-ll: a remote clock that disagrees may be the
  // wrong one, and refusing (exit 2) would keep a service down for good (systemd does not restart it).
  if (Math.abs(measured.offsetMs) > CLOCK_REFUSE_MS && resolved.profile.name === 'ultra-ll' && !measured.remote) {
    throw new ConfigError(
      `the system clock is ${fields.offsetMs} ms off (${measured.source}): ultra-ll needs it within ${CLOCK_REFUSE_MS} ms; synchronise it (chrony, systemd-timesyncd) or use --profile ll`,
    );
  }
  if (Math.abs(measured.offsetMs) > CLOCK_REFUSE_MS && measured.remote)
    logger.warn(
      fields,
      "the origin's clock and this one disagree (no local time daemon answered to say which is right): running on; players synchronised to the origin see the wrong latency; synchronise this machine (chrony, systemd-timesyncd) and check the origin's. The offset is in /status and clock_offset_seconds",
    );
  else if (Math.abs(measured.offsetMs) > CLOCK_WARN_MS)
    logger.warn(fields, 'the system clock is off: players synchronised to another clock see the wrong latency');
  else logger.info(fields, 'clock offset');
  return measured.offsetMs;
}

/** The HLS settings as --dry-run shows them: the mode and the timing every playlist will carry. */
function describeHls(profile: Profile) {
  const timing = sessionHlsTiming(profile);
  return {
    llhls: profile.hls.llhls,
    dual: profile.hls.dual,
    targetDuration: timing.targetDuration,
    ...(profile.hls.llhls === 'off'
      ? {}
      : { partChunks: profile.hls.partChunks, partTarget: timing.partTarget, partHoldBack: timing.partHoldBack }),
    holdBack: timing.holdBack,
  };
}
