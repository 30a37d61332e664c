import { prepareSlate } from '../encode/slate-encoder.ts';
import type { EncoderSupervisor } from '../encode/supervisor.ts';
import { type RealtimeLevel, realtimeLevels } from '../ladder/realtime-steps.ts';
import type { Logger } from '../log.ts';
import type { Packager } from '../packager/packager.ts';
import type { SlateClip } from '../packager/slate.ts';
import type { LiveSession } from '../run/live-session.ts';
import { type LevelShape, RealtimeRun } from '../run/realtime-run.ts';
import type { Telemetry } from '../service/telemetry.ts';
import type { ResolvedStart } from './start-settings.ts';

// `appliance start`'s part of the real-time controller: the levels of the profile, their slates
// (encoded once per level's settings, cached with the profile's under the state directory), and
// the session, supervisor and telemetry it acts on.

export interface RealtimeWiring {
  resolved: ResolvedStart;
  packager: Packager;
  session: LiveSession;
  telemetry: Telemetry;
  logger: Logger;
  supervisor: () => EncoderSupervisor;
}

/**
 * The run's real-time controller (the caller starts it once the encoder runs), for sources captured here (the test pattern, a
 * camera and microphone); levels beyond 0 only where the profile adapts. A file or a feed is not
 * watched yet: a feed's chunks are a network's delay late by design and its frames come in bursts,
 * which the controller would read as an encoder behind (each needs a baseline of its own).
 */
export function createRealtime(wiring: RealtimeWiring): RealtimeRun & { watched: boolean } {
  const { resolved, packager, session, telemetry, logger } = wiring;
  const watched = resolved.source.kind === 'test' || resolved.source.kind === 'device';
  // A level whose command line is the one before's saves nothing (a top rendition the source
  // was already too small for): left out.
  const candidates = watched ? realtimeLevels(resolved.profile) : [{ profile: resolved.profile, change: '' }];
  const commandLines = candidates.map((level) => JSON.stringify(resolved.slatePlanFor(level.profile).args));
  const levels = candidates.filter((_level, i) => i === 0 || commandLines[i] !== commandLines[i - 1]);
  if (levels.length > 1)
    logger.info(
      { levels: levels.slice(1).map((l, i) => `${i + 1}: ${l.change}`) },
      'real time: the steps down the encoder may take when it falls behind',
    );
  const slates = new Map<RealtimeLevel, { clips: Promise<SlateClip[]>; background: boolean }>();
  const encodeSlate = (level: RealtimeLevel, background: boolean) =>
    prepareSlate({
      ffmpegPath: resolved.ffmpeg.path,
      plan: resolved.slatePlanFor(level.profile),
      timing: level.profile,
      cacheDir: resolved.stateDir,
      logger,
      background,
    }).then((made) => {
      // An interruption at this level is covered by the slate of its settings.
      for (const clip of made) packager.setSlate(clip);
      return made;
    });
  const slateFor = (level: RealtimeLevel, background = false) => {
    const known = slates.get(level);
    // Needed now while only a background encode (the lowest priority) is under way: another at
    // the normal priority, and whichever ends first.
    if (known && !(known.background && !background)) return known.clips;
    const fresh = encodeSlate(level, background);
    const clips = known ? Promise.any([known.clips, fresh]) : fresh;
    // A failed encode is tried again at the next step rather than remembered.
    clips.catch(() => slates.delete(level));
    slates.set(level, { clips, background });
    return clips;
  };
  const realtime = new RealtimeRun({
    levels,
    logger,
    hooks: {
      slateFor,
      shapeOf: (level) => shapeOf(resolved, level),
      announce: (start, shape, inits) => session.announcePeriod(start, shape, inits),
      restart: (why) => wiring.supervisor().replace(why),
      alarm: (raised, detail) => {
        telemetry.alarm('encoder-behind', raised, detail);
        if (raised) logger.warn({ alarm: 'encoder-behind' }, `alarm: ${detail}`);
        else logger.info({ alarm: 'encoder-behind' }, `alarm cleared: ${detail}`);
      },
      margin: (ms) => {
        session.latencyMargin(ms);
        telemetry.latencyMargin(ms);
      },
      levelChanged: (level, change) => telemetry.realtimeLevel(level, change),
      encoderPid: () => wiring.supervisor().pid,
    },
  });
  return Object.assign(realtime, { watched });
}

/** The tracks and frame rate the encoder makes at `level`. */
export function shapeOf(resolved: ResolvedStart, level: RealtimeLevel): LevelShape {
  const tracks = resolved.slatePlanFor(level.profile).tracks;
  return {
    tracks: tracks.map((t) => t.id),
    frameRate: level.profile.video.framerate,
    videoTracks: tracks.filter((t) => t.kind === 'video').length,
  };
}
