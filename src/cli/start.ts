import { stringify as toYaml } from 'yaml';
import { parseSource, type Source } from '../capture/source.ts';
import { TEST_SOURCE_FILTERS } from '../capture/test-source.ts';
import { applyOverrides, checkTiming, loadProfile } from '../config/profile.ts';
import type { Profile } from '../config/schema.ts';
import { startEncoder, type EncoderExit } from '../encode/encoder.ts';
import { IdrGridCheck, mediaTimeToDate } from '../encode/epoch-grid.ts';
import { failureHint } from '../encode/failure-hints.ts';
import { buildEncoderPlan, shellQuote, type EncoderPlan } from '../encode/ffmpeg-args.ts';
import { locateFfmpeg, type Ffmpeg } from '../encode/ffmpeg-resolve.ts';
import type { EncoderProgress } from '../encode/progress.ts';
import { ConfigError, RuntimeFailure } from '../errors.ts';
import { planLadder } from '../ladder/ladder.ts';
import type { Logger } from '../log.ts';
import { ensureWritableDirectory, parseOutput, type DirectoryTarget } from '../push/output-target.ts';
import { TrackFiles } from '../push/track-files.ts';
import type { StartOptions } from './args.ts';

export interface ResolvedStart {
  profile: Profile;
  profileFile: string;
  source: Source;
  output: DirectoryTarget;
  plan: EncoderPlan;
  ffmpeg: Ffmpeg;
  warnings: string[];
}

/** Everything `start` needs, checked before anything runs; every failure here is a ConfigError. */
export async function resolveStart(options: StartOptions, cwd: string): Promise<ResolvedStart> {
  const loaded = await loadProfile(options.profile);
  const profile = applyOverrides(loaded.profile, options);
  const timing = checkTiming(profile);
  if (timing.errors.length) {
    throw new ConfigError(`impossible timing (profile ${loaded.file} with overrides):\n  ${timing.errors.join('\n  ')}`);
  }
  const source = parseSource(options.source);
  const ladder = planLadder(profile.video.renditions, source);
  if (ladder.renditions.length === 0) {
    throw new ConfigError(`every rendition of ${loaded.file} is larger than the source (${source.width}x${source.height})`);
  }
  const warnings = [
    ...timing.warnings,
    ...ladder.dropped.map((r) => `rendition ${r.id} (${r.width}x${r.height}) is larger than the source (${source.width}x${source.height}): dropped, not upscaled`),
  ];
  const output = parseOutput(options.output, cwd);
  await ensureWritableDirectory(output.dir, { create: !options.dryRun });
  const plan = buildEncoderPlan(profile, source, ladder.renditions);
  const ffmpeg = await locateFfmpeg(options.ffmpeg, { encoders: ['libx264', 'aac'], filters: [...TEST_SOURCE_FILTERS, 'fps', 'select', 'split', 'scale', 'format', 'aresample'] });
  return { profile, profileFile: loaded.file, source, output, plan, ffmpeg, warnings };
}

export function describe(resolved: ResolvedStart): string {
  const { profile, source, output, plan, ffmpeg } = resolved;
  const settings = {
    profile: { name: profile.name, file: resolved.profileFile },
    timing: { segdur: profile.segdur, cdur: profile.cdur, asto: profile.asto, idr: profile.idr },
    source: { spec: `${source.kind}${source.pattern === 'testsrc2' ? '' : `:${source.pattern}`}`, width: source.width, height: source.height, framerate: profile.video.framerate },
    tracks: plan.tracks.map((t) =>
      t.rendition
        ? { id: t.id, codec: 'H.264 High', width: t.rendition.width, height: t.rendition.height, bitrate: t.bitrate, preset: profile.video.preset, pipe: t.fd }
        : { id: t.id, codec: 'AAC-LC', bitrate: t.bitrate, samplerate: profile.audio.samplerate, channels: profile.audio.channels, pipe: t.fd },
    ),
    latency: profile.latency,
    output: { directory: output.dir, manifest: output.manifest, files: plan.tracks.map((t) => `${t.id}.mp4`) },
    ffmpeg: { path: ffmpeg.path, version: ffmpeg.version.text, from: ffmpeg.origin },
    warnings: resolved.warnings,
  };
  return `# resolved settings\n${toYaml(settings)}\n# ffmpeg command line (tracks on fds ${plan.tracks.map((t) => t.fd).join(', ')}, -progress on stdout)\n${shellQuote([ffmpeg.path, ...plan.args])}\n`;
}

/** How often progress is logged at info level, in progress reports (one a second). */
const PROGRESS_LOG_EVERY = 10;

export async function runStart(resolved: ResolvedStart, options: StartOptions, logger: Logger): Promise<void> {
  const { profile, plan, ffmpeg, output } = resolved;
  for (const warning of resolved.warnings) logger.warn(warning);
  logger.info({ path: ffmpeg.path, version: ffmpeg.version.text, from: ffmpeg.origin }, 'ffmpeg');
  logger.info({ profile: profile.name, segdur: profile.segdur, cdur: profile.cdur, asto: profile.asto, output: output.dir }, 'starting');

  let reports = 0;
  let lastDrops = 0;
  const onProgress = (p: EncoderProgress) => {
    const fields = { frame: p.frame, fps: p.fps, speed: p.speed, bitrateKbps: p.bitrateKbps, dup: p.dupFrames, drop: p.dropFrames };
    if (p.dupFrames + p.dropFrames > lastDrops) logger.warn(fields, 'encoder duplicated or dropped frames: it is not keeping up with real time');
    else if (++reports % PROGRESS_LOG_EVERY === 0) logger.info(fields, 'encoding');
    else logger.debug(fields, 'encoding');
    lastDrops = p.dupFrames + p.dropFrames;
  };
  const encoder = startEncoder({ ffmpegPath: ffmpeg.path, plan, logger, onProgress });
  logger.info({ pid: encoder.pid }, 'ffmpeg started');

  let mediaSeen = false;
  const checks = new Map(plan.tracks.filter((t) => t.kind === 'video').map((t) => [t.id, { grid: new IdrGridCheck(profile.segdur), first: true }]));
  const files = new TrackFiles(output.dir, encoder.tracks, (id, piece) => {
    mediaSeen = true;
    const check = checks.get(id);
    for (const idr of check?.grid.push(piece) ?? []) {
      if (check!.first) logger.info({ track: id, segment: idr.segment.toString(), at: mediaTimeToDate(idr.decodeTime, idr.timescale).toISOString() }, 'first IDR');
      if (!idr.aligned) logger.warn({ track: id, decodeTime: idr.decodeTime.toString(), timescale: idr.timescale }, 'IDR off the epoch grid');
      check!.first = false;
    }
  });

  const stop = () => void encoder.stop();
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
  const timer = options.duration ? setTimeout(stop, options.duration * 1000) : undefined;
  let exit: EncoderExit;
  try {
    exit = await encoder.exited;
    await files.close();
  } finally {
    if (timer) clearTimeout(timer);
    process.off('SIGTERM', stop);
    process.off('SIGINT', stop);
    process.off('SIGHUP', stop);
  }
  if (!exit.requested) {
    const how = exit.signal ? `was killed by ${exit.signal}` : `exited with code ${exit.code}`;
    const hint = failureHint(exit.stderrTail);
    throw new RuntimeFailure(`ffmpeg ${how} ${mediaSeen ? 'while encoding' : 'at start, before any media'}; its last messages:`, [
      ...exit.stderrTail.slice(-12),
      ...(hint ? [`hint: ${hint}`] : []),
    ]);
  }
  if (exit.code !== 0) logger.warn({ code: exit.code, signal: exit.signal, stderr: exit.stderrTail.slice(-5) }, 'ffmpeg did not exit cleanly after stop');
  logger.info({ files: files.paths }, 'stopped');
}
