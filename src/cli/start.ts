import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { deviceProblem } from '../capture/device-errors.ts';
import { availableList } from '../capture/device-spec.ts';
import { listDevices } from '../capture/devices/list-devices.ts';
import { sourceSpecOf } from '../capture/source.ts';
import { startEncoder, type EncoderExit } from '../encode/encoder.ts';
import { failureHint, howItEnded } from '../encode/failure-hints.ts';
import { cachedSlates, prepareSlate, slateCacheKey } from '../encode/slate-encoder.ts';
import { EncoderSupervisor } from '../encode/supervisor.ts';
import { ConfigError, RuntimeFailure } from '../errors.ts';
import type { Logger, TerminalLog } from '../log.ts';
import { withLatencyMargin } from '../packager/hls-playlist.ts';
import type { HlsSession } from '../packager/hls-playlists.ts';
import { Packager } from '../packager/packager.ts';
import { Ticker } from '../run/ticker.ts';
import { LiveSession } from '../run/live-session.ts';
import { OutputSet } from '../run/output-set.ts';
import { chunkDelayWindows, RunReport } from '../run/run-report.ts';
import { loadSession, SessionSaver, sessionFileOf } from '../run/session-file.ts';
import { RunMonitor } from '../service/run-monitor.ts';
import { Telemetry } from '../service/telemetry.ts';
import type { StartOptions } from './args.ts';
import { openOutputs } from './outputs.ts';
import { createRealtime } from './start-realtime.ts';
import { checkClock, type ResolvedStart } from './start-settings.ts';
import { sessionHlsTiming } from '../packager/manifest-model.ts';
import { END_SIGNAL, pidFileOf } from './stop.ts';

export { describe, resolveStart, type ResolvedStart } from './start-settings.ts';

// `appliance start`: wires the live session (src/run/) to the real encoder supervisor, outputs,
// timers, the pid file and signals, and turns how the run ended into the exit status.

/** How long the slate holds a segment for a feed flowing again (its first chunks come ~1 s late after a new run's probe). */
const FEED_RESUME_WAIT_MS = 1500;

export async function runStart(
  resolved: ResolvedStart,
  options: StartOptions,
  logger: Logger,
  terminal?: TerminalLog,
): Promise<void> {
  const { profile, plan, ffmpeg } = resolved;
  for (const reason of resolved.sourceReasons) logger.info({ reason }, 'capture');
  for (const warning of resolved.warnings) logger.warn(warning);
  const clockOffsetMs = await checkClock(resolved, logger);
  logger.info({ path: ffmpeg.path, version: ffmpeg.version.text, from: ffmpeg.origin }, 'ffmpeg');
  logger.info(
    { profile: profile.name, segdur: profile.segdur, cdur: profile.cdur, asto: profile.asto, tsb: profile.tsb },
    'starting',
  );

  // A feed comes back through a receiver, a probe and the decoder: the slate waits longer for it.
  const packager = new Packager(plan.tracks, profile, {
    note: (fields, message) => logger.debug(fields, message),
    ...(resolved.source.kind === 'feed' ? { resumeWaitMs: FEED_RESUME_WAIT_MS } : {}),
  });
  const delays = chunkDelayWindows(plan.tracks);
  const telemetry = new Telemetry({
    profile: profile.name,
    source: sourceSpecOf(resolved.source),
    segdur: profile.segdur,
    chunkDelays: delays,
  });
  if (clockOffsetMs !== undefined) telemetry.clockOffset(clockOffsetMs);
  const report = new RunReport(delays, telemetry, logger);
  // What the manifests add to their latency promises while the encoder is late (the session moves it).
  const latencyMargin = { ms: 0 };
  // Opened before any timer or process exists: a --listen that fails leaves nothing running.
  const run = await openRunOutputs(resolved, options, packager, telemetry, report, latencyMargin, logger, terminal);
  const { outputs, monitor, fatalErrors } = run;
  const sessionFile = resolved.stateDir ? sessionFileOf(resolved.stateDir, resolved.outputs) : undefined;
  const saver = sessionFile ? new SessionSaver(sessionFile, logger) : undefined;
  const ticker = new Ticker();
  const session = new LiveSession({
    profile,
    tracks: plan.tracks,
    packager,
    outputs,
    logger,
    reports: telemetry,
    saver,
    onSourceChunk: (lateMs, video) => realtime.chunk(lateMs, video),
    latencyMargin,
    onTicksWanted: () => ticker.hurry(),
  });
  const realtime = createRealtime({ resolved, packager, session, telemetry, logger, supervisor: () => supervisor });
  const delayReport = setInterval(() => report.logDelays(session.avFigures, outputs), 60_000);
  delayReport.unref();
  // --duration ends at the first segment boundary at or after start + duration; a file played
  // once at the last boundary with half a segment of its media after it (to close the segment),
  // planned when its first run is anchored; the earlier of the two wins.
  const file = resolved.source.kind === 'file' && !resolved.source.loop ? resolved.source : undefined;
  if (options.duration) session.planEnd(BigInt(Math.ceil((Date.now() / 1000 + options.duration) / profile.segdur)));
  let runs = 0;
  const relay = resolved.feedRelay;
  if (relay) relay.logger = logger;
  const planForRun = () => {
    const level = realtime.current.profile;
    const runPlan = resolved.planForRun(level);
    session.useRun({ tracks: runPlan.tracks.map((t) => t.id), frameRate: level.video.framerate });
    if (runs++ === 0 && file?.duration && runPlan.anchorSeconds !== undefined)
      session.planEnd(
        BigInt(Math.floor((runPlan.anchorSeconds + file.duration - profile.segdur / 2) / profile.segdur)),
      );
    return runPlan;
  };

  const devices = deviceReports(resolved, logger);
  let failedAtStart: EncoderExit | undefined;
  const supervisor = new EncoderSupervisor({
    start: () => {
      const runPlan = planForRun();
      const encoder = startEncoder({
        ffmpegPath: ffmpeg.path,
        plan: runPlan,
        logger,
        onProgress: (p) => {
          report.progress(p);
          realtime.progress(p);
        },
        onDetector: (event) => monitor?.onDetector(event),
      });
      relay?.attach(encoder.input, runPlan.anchorSeconds!);
      return encoder;
    },
    onData: (track, piece) => session.media(track, piece),
    onInterrupted: (why) => session.interrupted(why),
    onNewRun: () => {
      session.newRun();
      realtime.newRun();
    },
    onFailedAtStart: (exit) => (failedAtStart = exit),
    // A feed not there yet, or a device, is waited for (slate meanwhile) rather than fatal.
    retryAtStart: (resolved.source.kind === 'device' && resolved.retryDevices) || Boolean(relay),
    cleanExitEnds: Boolean(file),
    // A failure at start without retry is reported once, with the listing, as the run's error.
    onRunFailed: (exit) => void (session.mediaSeen || resolved.retryDevices ? devices.retrying(exit) : undefined),
    logger,
    stallMs: Math.max(1500, profile.segdur * 1000),
    stallKillMs: Math.max(5000, 3 * profile.segdur * 1000),
  });
  session.attach(supervisor, monitor);
  // A feed back after a silence (or with a new clock) starts a fresh run: its grid, its first IDR
  // on a boundary; the run that waited through the silence would carry its gap into the encoder.
  if (relay) relay.onReanchored = () => supervisor.restartNow('the feed is back');
  run.onAllFatal = () => {
    logger.error('every output failed for good');
    void supervisor.stop();
  };
  ticker.start(() => {
    session.tick();
    return session.nextTickMs();
  }, session.nextTickMs());

  await slateAndPreviousSession(resolved, packager, session, sessionFile, logger);
  supervisor.start();
  realtime.newRun({ first: true });
  if (realtime.watched) realtime.start();
  logger.info({ pid: supervisor.pid }, 'ffmpeg started');

  const detachSignals = await handleSignals(session, resolved.stateDir, logger);
  let exit: EncoderExit;
  try {
    exit = await supervisor.done;
    await session.finishing;
    await outputs.flush();
    await saver?.flush();
  } finally {
    telemetry.ended();
    realtime.stop();
    await monitor.stop();
    relay?.stop();
    ticker.stop();
    await run.close();
    clearInterval(delayReport);
    await detachSignals();
  }
  if (failedAtStart) throw await devices.failureAtStart(failedAtStart);
  logger.info(
    {
      restarts: supervisor.restarts,
      stalls: supervisor.stalls,
      ...packager.counters,
      slateSamples: Object.fromEntries(packager.counters.slateSamples),
    },
    'continuity',
  );
  report.logDelays(session.avFigures, outputs);
  if (fatalErrors.length && outputs.allFatal) throw new ConfigError(fatalErrors.join('\n'));
  if (exit.code !== 0 && session.mediaSeen)
    logger.warn(
      { code: exit.code, signal: exit.signal, stderr: exit.stderrTail.slice(-5) },
      'ffmpeg did not exit cleanly after stop',
    );
  const failed = outputs.failed;
  if (failed.length)
    throw new RuntimeFailure(`delivery to ${failed.map((o) => o.name).join(', ')} failed (see the log)`, fatalErrors);
  logger.info({ outputs: outputs.names }, 'stopped');
}

interface RunOutputs {
  outputs: OutputSet;
  monitor: RunMonitor;
  /** What the outputs that gave up for good said. */
  fatalErrors: string[];
  close(): Promise<void>;
  /** Called when the last output still working gives up for good. */
  onAllFatal?: () => void;
}

/** The outputs, with their events reported to the telemetry, and the run monitor watching them. */
async function openRunOutputs(
  resolved: ResolvedStart,
  options: StartOptions,
  packager: Packager,
  telemetry: Telemetry,
  report: RunReport,
  latencyMargin: { ms: number },
  logger: Logger,
  terminal: TerminalLog | undefined,
): Promise<RunOutputs> {
  const { profile } = resolved;
  let monitor: RunMonitor | undefined;
  let run: RunOutputs | undefined;
  const fatalErrors: string[] = [];
  const hlsTiming = sessionHlsTiming(profile);
  const hls: HlsSession = {
    llhls: profile.hls.llhls,
    partChunks: profile.hls.partChunks,
    get timing() {
      return withLatencyMargin(hlsTiming, latencyMargin.ms);
    },
    renditions: () => packager.hlsRenditions(profile),
    ended: () => Boolean(packager.end?.last && packager.finished),
    periods: () => packager.periods.map((p) => p.start),
    hasTrack: (track, msn) => packager.hasTrack(track, msn),
  };
  const sink = await openOutputs(resolved.outputs, {
    profile,
    hls,
    utcTiming: options.utcTiming,
    logger,
    onChunkWritten: (chunk, writtenAt) => report.chunkWritten(chunk, writtenAt),
    onLocalChunk: (output, chunk) => {
      telemetry.chunkWritten(output, chunk.track, chunk.byteLength);
      monitor?.delivered();
    },
    status: () => telemetry.status(),
    push: resolved.push,
    onPushEvent: (event) => {
      telemetry.push(event);
      if (event.type === 'acknowledged' && event.object === 'init') monitor?.delivered();
    },
    onFatal: (output, error) => {
      telemetry.outputFailed(output.name);
      fatalErrors.push(error.message);
      if (outputs.allFatal) run?.onAllFatal?.();
    },
  });
  const outputs = new OutputSet(sink.outputs);
  for (const output of outputs.outputs) telemetry.output(output.name, output.shed ? 'push' : 'local');
  try {
    monitor = await RunMonitor.start({
      profile,
      tracks: resolved.plan.tracks,
      outputs: outputs.outputs,
      telemetry,
      logger,
      metrics: resolved.metrics,
      terminal,
    });
  } catch (error) {
    // A --metrics that cannot listen leaves nothing running.
    await outputs.flush();
    await sink.close();
    throw error;
  }
  run = { outputs, monitor, fatalErrors, close: () => sink.close() };
  return run;
}

/**
 * The slate clips (before the live encoder: beside it on a busy machine the slate took longer
 * than a failure may take to come), and the session a previous process left on these outputs.
 */
async function slateAndPreviousSession(
  resolved: ResolvedStart,
  packager: Packager,
  session: LiveSession,
  sessionFile: string | undefined,
  logger: Logger,
): Promise<void> {
  const { profile, ffmpeg } = resolved;
  try {
    for (const clip of await prepareSlate({
      ffmpegPath: ffmpeg.path,
      plan: resolved.slatePlan,
      timing: profile,
      cacheDir: resolved.stateDir,
      logger,
    }))
      packager.setSlate(clip);
    session.slateReady();
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'no slate: an interrupted source leaves a hole instead');
  }
  const previous = sessionFile ? await loadSession(sessionFile, profile, Date.now(), logger) : undefined;
  if (!previous || !resolved.stateDir) return;
  for (const clip of await cachedSlates(
    resolved.stateDir,
    resolved.plan.tracks.map((t) => t.id),
    profile,
    slateCacheKey(ffmpeg.path, resolved.slatePlan),
  ))
    packager.setSlate(clip);
  logger.info(
    { lastSegment: previous.lastSegment.toString(), periods: previous.periods.length },
    'continuing the session a previous run left on these outputs: slate until the encoder delivers',
  );
  session.resume(previous.periods, previous.lastSegment);
}

/**
 * A signal finishes the segment in progress (no lmsg: a service restart does not end the stream);
 * `appliance stop --end` (SIGUSR2) ends the stream for viewers at the same point. The pid file
 * lets `appliance stop` find this run. Returns what undoes both.
 */
async function handleSignals(session: LiveSession, stateDir: string | undefined, logger: Logger) {
  const stop = () => session.halt(false);
  const end = () => session.halt(true);
  const pidFile = stateDir ? pidFileOf(stateDir) : undefined;
  if (pidFile)
    await mkdir(dirname(pidFile), { recursive: true })
      .then(() => writeFile(pidFile, `${process.pid}\n`))
      .catch((error: Error) =>
        logger.warn({ err: error.message }, 'cannot write the pid file: appliance stop will not find this run'),
      );
  process.on(END_SIGNAL, end);
  for (const signal of STOP_SIGNALS) process.on(signal, stop);
  return async () => {
    process.off(END_SIGNAL, end);
    for (const signal of STOP_SIGNALS) process.off(signal, stop);
    if (pidFile) await rm(pidFile, { force: true });
  };
}

const STOP_SIGNALS = ['SIGTERM', 'SIGINT', 'SIGHUP'] as const;

/** What a device failure says: while retried, at most every 30 s with what is available; at start, as the run's error. */
function deviceReports(resolved: ResolvedStart, logger: Logger) {
  const problemOf = (exit: EncoderExit) =>
    resolved.source.kind === 'device' ? deviceProblem(exit.stderrTail) : undefined;
  const available = async () => {
    const listing = await listDevices(resolved.ffmpeg.path).catch(() => undefined);
    return (
      listing && {
        cameras: availableList(listing.devices, 'video'),
        microphones: availableList(listing.devices, 'audio'),
      }
    );
  };
  let listedAt = -Infinity;
  return {
    async retrying(exit: EncoderExit): Promise<void> {
      const problem = problemOf(exit);
      if (!problem || Date.now() - listedAt < 30_000) return;
      listedAt = Date.now();
      const devices = await available();
      if (devices)
        logger.warn({ problem: problem.message, ...devices }, 'capture device unavailable: retrying until it is back');
    },
    async failureAtStart(exit: EncoderExit): Promise<RuntimeFailure> {
      const problem = problemOf(exit);
      if (problem) {
        const devices = await available();
        return new RuntimeFailure(`${problem.message}; ffmpeg's last messages:`, [
          ...exit.stderrTail.slice(-6),
          ...(devices ? [devices.cameras, devices.microphones] : []),
          'Run "appliance devices" to see what is there; with --retry-devices (the default under systemd) the appliance waits for it, slate meanwhile.',
        ]);
      }
      const hint = failureHint(exit.stderrTail);
      return new RuntimeFailure(`ffmpeg ${howItEnded(exit)} at start, before any media; its last messages:`, [
        ...exit.stderrTail.slice(-12),
        ...(hint ? [`hint: ${hint}`] : []),
      ]);
    },
  };
}
