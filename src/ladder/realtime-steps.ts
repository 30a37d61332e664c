import { X264_PRESETS, type Profile } from '../config/schema.ts';

// The levels a box short of CPU steps down through: level 0 is the profile as written, each next
// level applies the profile's next step that can apply (a faster x264 preset, the top rendition
// no longer encoded, a lower frame rate) on top of the ones before. Pure.

export interface RealtimeLevel {
  /** The profile this level encodes with. */
  profile: Profile;
  /** What this level gave up, for the log and /status ("" for level 0). */
  change: string;
}

const whole = (value: number) => Math.abs(value - Math.round(value)) < 1e-9;

/**
 * The highest frame rate below `fps` at which a chunk, an IDR interval and a segment are still
 * whole numbers of frames (30 → 20 → 10 at 100 ms chunks; never 15, whose chunk is 1.5 frames).
 */
export function lowerFrameRate(profile: Pick<Profile, 'cdur' | 'idr' | 'segdur'>, fps: number): number | undefined {
  for (let rate = fps - 1; rate >= 1; rate--)
    if (whole(rate * profile.cdur) && whole(rate * profile.idr) && whole(rate * profile.segdur)) return rate;
  return undefined;
}

function apply(profile: Profile, step: Profile['realtime']['steps'][number]): RealtimeLevel | undefined {
  const video = profile.video;
  if (step === 'preset') {
    const at = X264_PRESETS.indexOf(video.preset);
    if (at <= 0) return undefined;
    const preset = X264_PRESETS[at - 1]!;
    return { profile: { ...profile, video: { ...video, preset } }, change: `x264 preset ${video.preset} → ${preset}` };
  }
  if (step === 'top-rendition') {
    if (video.renditions.length < 2) return undefined;
    const [top, ...rest] = video.renditions;
    return { profile: { ...profile, video: { ...video, renditions: rest } }, change: `${top!.id} no longer encoded` };
  }
  const framerate = lowerFrameRate(profile, video.framerate);
  // Below 10 fps a picture is no longer live video: a lower step is not worth its restart.
  if (framerate === undefined || framerate < 10) return undefined;
  return {
    profile: { ...profile, video: { ...video, framerate } },
    change: `${video.framerate} → ${framerate} fps`,
  };
}

/**
 * Level 0 (`profile`) and one level per step of `profile.realtime.steps` that can apply, in order.
 * A copied feed (passthrough) is not encoded here: there is nothing to step down.
 */
export function realtimeLevels(profile: Profile): RealtimeLevel[] {
  const levels: RealtimeLevel[] = [{ profile, change: '' }];
  if (profile.video.passthrough || !profile.realtime.adapt) return levels;
  for (const step of profile.realtime.steps) {
    const next = apply(levels.at(-1)!.profile, step);
    if (next) levels.push(next);
  }
  return levels;
}

/**
 * x264's CPU per pixel at each preset, relative to ultrafast (tune zerolatency, one thread,
 * testsrc2 at 720p and 1080p, on the 2-core box of the notes: 1, 1.6, 2.5, 4; fast extrapolated).
 */
const PRESET_COST: Record<Profile['video']['preset'], number> = {
  ultrafast: 1,
  superfast: 1.6,
  veryfast: 2.5,
  faster: 4,
  fast: 5,
};
/** Making each source frame (its pixels, in ultrafast pixels): capture or the test pattern, the clock, scaling. */
const SOURCE_COST = 0.75;
/** What no step changes (audio, the muxers), in ultrafast pixels per second. */
const FIXED_COST = 11e6;

/**
 * Pure: what each level's encoder run costs, in ultrafast pixels per second: the source's frames
 * (its size is level 0's top rendition's; a step does not change it), every rendition's pixels at
 * the preset's cost, and the rest. Fitted to the whole live command line timed at each level on
 * one core (0.69, 0.46, 0.27, 0.21, 0.12 of it for ultra-ll down to 10 fps; the fit is within 0.05).
 */
export function levelCosts(levels: readonly RealtimeLevel[]): number[] {
  const sourcePixels = Math.max(...levels[0]!.profile.video.renditions.map((r) => r.width * r.height));
  return levels.map(({ profile }) => {
    const video = profile.video;
    const encoded = video.renditions.reduce((sum, r) => sum + r.width * r.height, 0) * PRESET_COST[video.preset];
    return video.framerate * (SOURCE_COST * sourcePixels + encoded) + FIXED_COST;
  });
}

/** The lateness (ms) above which a second is behind: the profile's, else two chunks. */
export const lateMsOf = (profile: Profile) => profile.realtime.lateMs ?? Math.max(100, 2 * profile.cdur * 1000);
