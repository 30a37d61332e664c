import { mkdir, rm, writeFile } from 'node:fs/promises';
import { dirname } from 'node:path';
import { deviceProblem } from '../capture/device-errors.ts';
import { availableList } from '../capture/device-spec.ts';
import { listDevices } from '../capture/devices/list-devices.ts';
import { AvOffsetMeter } from '../encode/av-offset.ts';
import { ClockStepDetector } from '../encode/clock.ts';
import { startEncoder, type EncoderExit } from '../encode/encoder.ts';
import { mediaTimeToDate } from '../timeline/epoch-grid.ts';
import { failureHint, howItEnded } from '../encode/failure-hints.ts';
import type { EncoderProgress } from '../encode/progress.ts';
import { cachedSlates, prepareSlate, slateCacheKey } from '../encode/slate-encoder.ts';
import { EncoderSupervisor } from '../encode/supervisor.ts';
import { ConfigError, RuntimeFailure } from '../errors.ts';
import type { Logger } from '../log.ts';
import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import type { HlsSession } from '../packager/hls-playlists.ts';
import { buildMpd } from '../packager/mpd.ts';
import { Packager } from '../packager/packager.ts';
import { withoutShed } from '../packager/shed.ts';
import { RecentValues } from '../stats.ts';
import { sourceSpecOf } from '../capture/source.ts';
import type { TerminalLog } from '../log.ts';
import { RunMonitor } from '../service/run-monitor.ts';
import { Telemetry } from '../service/telemetry.ts';
import type { StartOptions } from './args.ts';
import { openOutputs, type Output } from './outputs.ts';
import { loadSession, SessionSaver, sessionFileOf } from './session-file.ts';
import { checkClock, sessionHlsTiming, type ResolvedStart } from './start-settings.ts';
import { END_SIGNAL, pidFileOf } from './stop.ts';
import { laterOf } from '../timeline/bigint.ts';

export { describe, resolveStart, type ResolvedStart } from './start-settings.ts';

// `appliance start`: the encoder under supervision, the packager, the outputs, slate and clock
// watch, signals, and the session that outlives the process.

/** How often progress is logged at info level, in progress reports (one a second). */
const PROGRESS_LOG_EVERY = 10;

/** Chunk delays kept for the quantiles in the log: the last 5 minutes of 100 ms chunks. */
const CHUNK_DELAY_WINDOW = 3000;

/** The wall-clock end of a chunk's media, in ms since 1970. */
const mediaEndMsOf = (chunk: ChunkEvent) =>
  Number(((chunk.decodeTime + BigInt(chunk.duration)) * 1000n) / BigInt(chunk.timescale));

/** How long the slate holds a segment for a feed flowing again (its first chunks come ~1 s late after a new run's probe). */
const FEED_RESUME_WAIT_MS = 1500;

/** Wall-clock now as a segment number on the epoch grid. */
const segmentNow = (segdur: number) => BigInt(Math.floor(Date.now() / 1000 / segdur));

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

  let reports = 0;
  let lastDrops = 0;
  const onProgress = (p: EncoderProgress) => {
    telemetry.progress(p);
    const fields = {
      frame: p.frame,
      fps: p.fps,
      speed: p.speed,
      bitrateKbps: p.bitrateKbps,
      dup: p.dupFrames,
      drop: p.dropFrames,
    };
    if (p.dupFrames + p.dropFrames > lastDrops)
      logger.warn(fields, 'encoder duplicated or dropped frames: it is not keeping up with real time');
    else if (++reports % PROGRESS_LOG_EVERY === 0) logger.info(fields, 'encoding');
    else logger.debug(fields, 'encoding');
    lastDrops = p.dupFrames + p.dropFrames;
  };

  // A feed comes back through a receiver, a probe and the decoder: the slate waits longer for it.
  const packager = new Packager(plan.tracks, profile, {
    note: (fields, message) => logger.debug(fields, message),
    ...(resolved.source.kind === 'feed' ? { resumeWaitMs: FEED_RESUME_WAIT_MS } : {}),
  });
  // Chunk delay: the chunk's last byte written (on disk, in the store, or handed to the uploads)
  // minus the wall-clock end of its media.
  const delays = new Map(plan.tracks.map((t) => [t.id, new RecentValues(CHUNK_DELAY_WINDOW)]));
  const telemetry = new Telemetry({
    profile: profile.name,
    source: sourceSpecOf(resolved.source),
    segdur: profile.segdur,
    chunkDelays: delays,
  });
  if (clockOffsetMs !== undefined) telemetry.clockOffset(clockOffsetMs);
  const tracing = logger.isLevelEnabled('trace');
  const onChunkWritten = (chunk: ChunkEvent, writtenAt: number) => {
    const mediaEndMs = mediaEndMsOf(chunk);
    delays.get(chunk.track)?.add(writtenAt - mediaEndMs);
    telemetry.chunkDelay(chunk.track, writtenAt - mediaEndMs);
    if (tracing)
      logger.trace(
        {
          track: chunk.track,
          segment: chunk.segment.toString(),
          part: chunk.part,
          bytes: chunk.byteLength,
          mediaEndMs,
          at: writtenAt,
          ...(chunk.slate && { slate: true }),
        },
        'chunk',
      );
  };
  let stopForGood: ((why: string) => void) | undefined;
  const fatalErrors: string[] = [];
  // Opened before any timer or process exists: a --listen that fails leaves nothing running.
  const hls: HlsSession = {
    llhls: profile.hls.llhls,
    partChunks: profile.hls.partChunks,
    timing: sessionHlsTiming(profile),
    renditions: () => packager.hlsRenditions(profile),
    ended: () => Boolean(packager.end?.last && packager.finished),
    periods: () => packager.periods.map((p) => p.start),
  };
  const sink = await openOutputs(resolved.outputs, {
    profile,
    hls,
    utcTiming: options.utcTiming,
    logger,
    onChunkWritten,
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
      if (outputs.every((o) => o.fatal)) stopForGood?.('every output failed for good');
    },
  });
  const outputs: Output[] = sink.outputs;
  for (const output of outputs) telemetry.output(output.name, output.shed ? 'push' : 'local');
  let monitor: RunMonitor | undefined;
  try {
    monitor = await RunMonitor.start({
      profile,
      tracks: plan.tracks,
      outputs,
      telemetry,
      logger,
      metrics: resolved.metrics,
      terminal,
    });
  } catch (error) {
    // A --metrics that cannot listen leaves nothing running.
    await Promise.all(outputs.map((o) => o.flush()));
    await sink.close();
    throw error;
  }
  const heldBy = (name: string) => {
    const output = outputs.find((o) => o.name === name);
    return {
      backlogBytes: output?.backlogBytes ?? 0,
      heldBytes: output?.heldBytes ?? 0,
      peakHeldBytes: output?.peakHeldBytes ?? 0,
    };
  };
  const logDelays = () => {
    logger.info(
      {
        chunkDelayMs: Object.fromEntries([...delays].map(([id, d]) => [id, d.summary()])),
        avOffset: avOffset.figures ?? 'not measured yet',
      },
      'chunk delay',
    );
    for (const figures of telemetry.pushStats.summary(heldBy)) logger.info(figures, 'push');
  };
  const delayReport = setInterval(logDelays, 60_000);
  delayReport.unref();
  const publishManifest = () => {
    for (const output of outputs) {
      output.publishManifest((view) => {
        const model = withoutShed(
          packager.mpdModel(
            profile,
            { timeShiftBufferDepth: profile.tsb, utcTimingUrl: view.utcTimingUrl },
            new Date(),
          ),
          view.shed ?? [],
        );
        // Origins that only serve complete files list what they have and are asked again every segment.
        return buildMpd({
          ...model,
          asto: view.asto,
          announced: view.announced,
          minimumUpdatePeriod: view.announced ? profile.segdur : model.minimumUpdatePeriod,
        });
      });
    }
  };
  // --duration ends at the first segment boundary at or after start + duration; a file played
  // once at the last boundary with half a segment of its media after it (to close the segment),
  // planned when its first run is anchored; the earlier of the two wins.
  const file = resolved.source.kind === 'file' && !resolved.source.loop ? resolved.source : undefined;
  const planEnd = (end: bigint) => {
    if (packager.end && packager.end.segment <= end) return;
    packager.endBefore(end, { last: true });
    logger.info(
      { lastSegment: (end - 1n).toString(), endsAt: new Date(Number(end) * profile.segdur * 1000).toISOString() },
      'stream end planned',
    );
  };
  if (options.duration) planEnd(BigInt(Math.ceil((Date.now() / 1000 + options.duration) / profile.segdur)));
  let runs = 0;
  const relay = resolved.feedRelay;
  if (relay) relay.logger = logger;
  const planForRun = () => {
    const plan = resolved.planForRun();
    if (runs++ === 0 && file?.duration && plan.anchorSeconds !== undefined)
      planEnd(BigInt(Math.floor((plan.anchorSeconds + file.duration - profile.segdur / 2) / profile.segdur)));
    return plan;
  };

  let mediaSeen = false;
  let manifestPublished = false;
  let periodsPublished = 0;
  let finishing: Promise<unknown> | undefined;
  let failedAtStart: EncoderExit | undefined;
  const firstSeen = new Set<string>();
  const sessionFile = resolved.stateDir ? sessionFileOf(resolved.stateDir, resolved.outputs) : undefined;
  const saver = sessionFile ? new SessionSaver(sessionFile, logger) : undefined;
  let savedAt = 0;
  const topVideo = plan.tracks.find((t) => t.kind === 'video')?.id;
  const avOffset = new AvOffsetMeter();
  const frameMs = 1000 / profile.video.framerate;
  let avWarned = false;
  const emit = (events: readonly PackagerEvent[]) => {
    for (const event of events) {
      for (const output of outputs) output.handle(event);
      if (event.type === 'chunk') telemetry.chunkProduced(Boolean(event.slate));
      if (event.type === 'chunk' && !event.slate && (event.track === topVideo || event.track === 'audio')) {
        avOffset.add(event.track === 'audio' ? 'audio' : 'video', mediaEndMsOf(event), Date.now());
        const av = avOffset.figures;
        if (av) telemetry.avOffset(av.offsetMs);
        if (av && Math.abs(av.offsetMs) > frameMs && !avWarned)
          logger.warn(av, 'audio is more than one frame off video');
        avWarned = Boolean(av && Math.abs(av.offsetMs) > frameMs);
      }
      if (event.type === 'segmentEnd' && saver && Date.now() - savedAt >= 1000 && packager.ready) {
        savedAt = Date.now();
        saver.save(packager.periods, event.segment);
      }
      if (event.type === 'chunk' && !firstSeen.has(event.track)) {
        firstSeen.add(event.track);
        logger.info(
          {
            track: event.track,
            segment: event.segment.toString(),
            at: mediaTimeToDate(event.decodeTime, event.timescale).toISOString(),
          },
          'first segment',
        );
      }
    }
    if (packager.ready && (!manifestPublished || packager.periods.length !== periodsPublished)) {
      if (manifestPublished)
        logger.warn(
          { period: packager.periods.at(-1)!.start.toString() },
          'the encoder restarted with another init segment: a new period',
        );
      const withoutSlate =
        manifestPublished || !slatePrepared
          ? []
          : plan.tracks.map((t) => t.id).filter((id) => !packager.slateUsable(id));
      if (withoutSlate.length) {
        logger.warn(
          { tracks: withoutSlate },
          profile.video.passthrough
            ? "passthrough: the slate (encoded here) cannot stand in for the feed's own H.264: an interruption leaves a hole in these tracks"
            : "the slate's init segment differs from the live one: an interruption would leave a hole in these tracks",
        );
      }
      manifestPublished = true;
      periodsPublished = packager.periods.length;
      publishManifest();
    }
    if (packager.end && packager.finished) void finish();
  };
  // A device failure, with what is available: when retried, at most every 30 s (a device is retried every 10 s).
  const deviceProblemOf = (exit: EncoderExit) =>
    resolved.source.kind === 'device' ? deviceProblem(exit.stderrTail) : undefined;
  const availableDevices = async () => {
    const listing = await listDevices(ffmpeg.path).catch(() => undefined);
    return (
      listing && {
        cameras: availableList(listing.devices, 'video'),
        microphones: availableList(listing.devices, 'audio'),
      }
    );
  };
  let devicesListedAt = -Infinity;
  const reportDevices = async (exit: EncoderExit) => {
    const problem = deviceProblemOf(exit);
    if (!problem || Date.now() - devicesListedAt < 30_000) return;
    devicesListedAt = Date.now();
    const available = await availableDevices();
    if (available)
      logger.warn({ problem: problem.message, ...available }, 'capture device unavailable: retrying until it is back');
  };
  const supervisor = new EncoderSupervisor({
    start: () => {
      const runPlan = planForRun();
      const encoder = startEncoder({
        ffmpegPath: ffmpeg.path,
        plan: runPlan,
        logger,
        onProgress,
        onDetector: (event) => monitor?.onDetector(event),
      });
      relay?.attach(encoder.input, runPlan.anchorSeconds!);
      return encoder;
    },
    onData: (track, piece) => {
      mediaSeen = true;
      sourceDataAt = Date.now();
      emit(packager.push(track, piece));
    },
    onInterrupted: (why) => {
      slateSince ??= Date.now();
      // A device not there at start, retried: the stream begins on slate.
      if (!packager.periods.length) emit(packager.startOnSlate(segmentNow(profile.segdur) - 1n));
      emit(packager.interrupt());
      logger.info({ why, slate: packager.slateTracks.filter((t) => packager.slateUsable(t)) }, 'source interrupted');
    },
    onNewRun: () => {
      avOffset.restart();
      telemetry.encoderRestarted();
      monitor?.newRun();
      emit(packager.newRun());
    },
    onFailedAtStart: (exit) => (failedAtStart = exit),
    // A feed not there yet, or a device, is waited for (slate meanwhile) rather than fatal.
    retryAtStart: (resolved.source.kind === 'device' && resolved.retryDevices) || Boolean(relay),
    cleanExitEnds: Boolean(file),
    // A failure at start without retry is reported once, with the listing, as the run's error.
    onRunFailed: (exit) => void (mediaSeen || resolved.retryDevices ? reportDevices(exit) : undefined),
    logger,
    stallMs: Math.max(1500, profile.segdur * 1000),
    stallKillMs: Math.max(5000, 3 * profile.segdur * 1000),
  });
  // A feed back after a silence (or with a new clock) starts a fresh run: its grid, its first IDR
  // on a boundary; the run that waited through the silence would carry its gap into the encoder.
  if (relay) relay.onReanchored = () => supervisor.restartNow('the feed is back');
  stopForGood = (why) => {
    logger.error(why);
    void supervisor.stop();
  };
  const finish = () =>
    (finishing ??= (async () => {
      if (packager.end?.last) publishManifest();
      if (packager.end?.last) await saver?.forget();
      else if (packager.end && packager.ready) saver?.save(packager.periods, packager.end.segment - 1n);
      logger.info(
        { lastSegment: packager.currentSegment?.toString() },
        packager.end?.last ? 'stream ended' : 'segment finished; stopping',
      );
      await supervisor.stop();
    })());

  // The slate is due by the clock; the same timer watches the clock for steps.
  let slateSince: number | undefined;
  let unusableSince: number | undefined;
  // Longer than the slate can last while a restarted encoder's media is on its way: its start, a
  // whole segment, a new period's lead (3 s) and a boundary to resume at.
  const unusableSourceMs = (4 * profile.segdur + 6) * 1000;
  let sourceDataAt = -Infinity;
  const clockWatch = new ClockStepDetector(1000 / profile.video.framerate);
  const ticker = setInterval(() => {
    const step = clockWatch.check(Date.now(), performance.now());
    if (step !== undefined) {
      logger.warn(
        { stepMs: Math.round(step) },
        'the system clock stepped: slate, then a clean restart of the encoder at the next boundary',
      );
      emit(packager.interrupt());
      supervisor.restartNow('clock step');
    }
    if (packager.slateTracks.length) {
      emit(packager.tick());
      // Media flowing that the packager never takes (no IDR on a boundary, a period that never
      // comes) would leave the slate on for good: a fresh encoder run is the remedy at hand.
      const now = Date.now();
      unusableSince ??= now;
      if (now - unusableSince > unusableSourceMs && now - sourceDataAt < 1000) {
        logger.error(
          { tracks: packager.trackStates, counters: { ...packager.counters, slateSamples: undefined } },
          'ffmpeg delivers media the packager cannot take: restarting it',
        );
        unusableSince = now;
        emit(packager.interrupt());
        supervisor.restartNow('media not usable');
      }
    } else {
      unusableSince = undefined;
      if (slateSince !== undefined) logger.info({ slateMs: Date.now() - slateSince }, 'source back: slate ended');
      slateSince = undefined;
    }
    telemetry.slate(slateSince !== undefined, slateSince ?? Date.now());
  }, 20);
  // Before the live encoder: beside it on a busy machine the slate took longer than a failure may take to come.
  let slatePrepared = false;
  try {
    for (const clip of await prepareSlate({
      ffmpegPath: ffmpeg.path,
      plan: resolved.slatePlan,
      timing: profile,
      cacheDir: resolved.stateDir,
      logger,
    }))
      packager.setSlate(clip);
    slatePrepared = true;
  } catch (error) {
    logger.warn({ err: (error as Error).message }, 'no slate: an interrupted source leaves a hole instead');
  }

  const previous = sessionFile ? await loadSession(sessionFile, profile, Date.now(), logger) : undefined;
  if (previous && resolved.stateDir) {
    for (const clip of await cachedSlates(
      resolved.stateDir,
      plan.tracks.map((t) => t.id),
      profile,
      slateCacheKey(ffmpeg.path, resolved.slatePlan),
    ))
      packager.setSlate(clip);
    logger.info(
      { lastSegment: previous.lastSegment.toString(), periods: previous.periods.length },
      'continuing the session a previous run left on these outputs: slate until the encoder delivers',
    );
    slateSince = Date.now();
    emit(packager.resume(previous.periods, previous.lastSegment));
  }
  supervisor.start();
  logger.info({ pid: supervisor.pid }, 'ffmpeg started');

  // A signal finishes the segment in progress (no lmsg: a service restart does not end the stream);
  // `appliance stop --end` (SIGUSR2) ends the stream for viewers at the same point.
  let safety: NodeJS.Timeout | undefined;
  // A planned end that has not come this long after its time (a track whose media stopped and
  // that has no slate cannot complete it) stops the run anyway: an end must end.
  const overdueMs = (2 * profile.segdur + 3) * 1000;
  const stopIfStuck = (why: string) => {
    if (packager.finished) return;
    logger.error({ tracks: packager.trackStates }, why);
    void supervisor.stop();
  };
  if (packager.end)
    safety = setTimeout(
      () => stopIfStuck('the planned end did not come: stopping'),
      Number(packager.end.segment) * profile.segdur * 1000 - Date.now() + overdueMs,
    );
  let halting: 'stop' | 'end' | undefined;
  const halt = (last: boolean) => {
    // A stop after a stop, or anything after an end, changes nothing; an end upgrades a stop.
    if (halting === 'end' || (halting === 'stop' && !last)) return;
    halting = last ? 'end' : 'stop';
    monitor?.stopping();
    const current = packager.currentSegment;
    if (current === undefined) return void supervisor.stop();
    const now = segmentNow(profile.segdur);
    // lmsg goes in the styp of the last segment's first chunk: an end needs a segment not yet begun.
    packager.endBefore(laterOf(current, now) + (last ? 2n : 1n), { last });
    logger.info(
      { lastSegment: `${packager.end!.segment - 1n}` },
      last
        ? 'end requested: the stream ends after the current segment'
        : 'stop requested: finishing the current segment',
    );
    if (packager.finished) void finish();
    clearTimeout(safety);
    safety = setTimeout(() => stopIfStuck('the current segment did not finish: stopping'), overdueMs);
  };
  const stop = () => halt(false);
  const end = () => halt(true);
  const pidFile = resolved.stateDir ? pidFileOf(resolved.stateDir) : undefined;
  if (pidFile)
    await mkdir(dirname(pidFile), { recursive: true })
      .then(() => writeFile(pidFile, `${process.pid}\n`))
      .catch((error: Error) =>
        logger.warn({ err: error.message }, 'cannot write the pid file: appliance stop will not find this run'),
      );
  process.on(END_SIGNAL, end);
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  process.on('SIGHUP', stop);
  let exit: EncoderExit;
  try {
    exit = await supervisor.done;
    await finishing;
    await Promise.all(outputs.map((o) => o.flush()));
    await saver?.flush();
  } finally {
    telemetry.ended();
    await monitor.stop();
    relay?.stop();
    clearInterval(ticker);
    await sink.close();
    clearTimeout(safety);
    clearInterval(delayReport);
    process.off('SIGTERM', stop);
    process.off(END_SIGNAL, end);
    if (pidFile) await rm(pidFile, { force: true });
    process.off('SIGINT', stop);
    process.off('SIGHUP', stop);
  }
  if (failedAtStart) {
    const problem = deviceProblemOf(failedAtStart);
    if (problem) {
      const available = await availableDevices();
      throw new RuntimeFailure(`${problem.message}; ffmpeg's last messages:`, [
        ...failedAtStart.stderrTail.slice(-6),
        ...(available ? [available.cameras, available.microphones] : []),
        'Run "appliance devices" to see what is there; with --retry-devices (the default under systemd) the appliance waits for it, slate meanwhile.',
      ]);
    }
    const hint = failureHint(failedAtStart.stderrTail);
    throw new RuntimeFailure(`ffmpeg ${howItEnded(failedAtStart)} at start, before any media; its last messages:`, [
      ...failedAtStart.stderrTail.slice(-12),
      ...(hint ? [`hint: ${hint}`] : []),
    ]);
  }
  logger.info(
    {
      restarts: supervisor.restarts,
      stalls: supervisor.stalls,
      ...packager.counters,
      slateSamples: Object.fromEntries(packager.counters.slateSamples),
    },
    'continuity',
  );
  logDelays();
  if (fatalErrors.length && outputs.every((o) => o.fatal)) throw new ConfigError(fatalErrors.join('\n'));
  if (exit.code !== 0 && mediaSeen)
    logger.warn(
      { code: exit.code, signal: exit.signal, stderr: exit.stderrTail.slice(-5) },
      'ffmpeg did not exit cleanly after stop',
    );
  const failed = outputs.filter((o) => o.failures);
  if (failed.length)
    throw new RuntimeFailure(`delivery to ${failed.map((o) => o.name).join(', ')} failed (see the log)`, fatalErrors);
  logger.info({ outputs: outputs.map((o) => o.name) }, 'stopped');
}
