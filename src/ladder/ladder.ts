import type { Profile, Rendition } from '../config/schema.ts';

export interface LadderPlan {
  renditions: Rendition[];
  /** Renditions larger than the source: dropped, never upscaled. */
  dropped: Rendition[];
}

export function planLadder(renditions: readonly Rendition[], source: { width: number; height: number }): LadderPlan {
  const fits = (r: Rendition) => r.width <= source.width && r.height <= source.height;
  return { renditions: renditions.filter(fits), dropped: renditions.filter((r) => !fits(r)) };
}

export interface VideoGraphOptions {
  profile: Profile;
  renditions: readonly Rendition[];
  source: { width: number; height: number };
  /** Extra filters applied once, at source size, before the split (e.g. the burnt-in clock). */
  overlay?: string | undefined;
  /** The input stream (default `0:v`). */
  input?: string | undefined;
  /** The rate the camera delivers when above the profile's (a 60 fps-only mode): decimated first. */
  captureRate?: number | undefined;
  /** Filters before everything else (a file's deinterlacer and wall-clock anchor). */
  prelude?: readonly string[] | undefined;
  /** A branch of the source picture (before the overlay) ending in the detectors' sink. */
  detectors?: string | undefined;
  /** Frames later than this at the graph are dropped (see DropLate); undefined: none is. */
  dropLateSeconds?: number | undefined;
}

/** The label of rendition `index` in the filter graph; `-map` uses it. */
export const videoLabel = (index: number) => `v${index}`;

/**
 * How fast the lateness estimate follows the stamps: the mean of the frames so far, then from the
 * 16th frame 1/16 per frame (about half a second at 30 fps).
 */
const LATENESS_FRAMES = 16;
/**
 * The lateness estimate starts as the first frame's phase, in [-0.5, 0.5) frame (the stamps are
 * the best word on when a frame was taken: any whole frame more would be a guess), and is moved
 * back by a whole frame only past ±0.75: a stamp phase near ±0.5 does not flip between two slots
 * on noise (0.25 frame is six times the estimate's own noise under ±0.4 frame of jitter).
 */
const LATENESS_WRAP = 0.75;

/**
 * Assigns each frame a slot of the epoch's frame grid, in the input's time base (an ffmpeg
 * expression; `st`/`ld` variables persist from frame to frame). Wall-clock stamps arrive late by a
 * typical amount plus jitter; var 0 follows that typical lateness, in frames (starting from the
 * first frame's phase), and each stamp minus it is rounded to its slot (var 1): jitter up to half a
 * frame either side of the typical lateness never moves a frame off its slot, whatever the phase.
 * A camera slower or faster than the grid moves the estimate steadily; moving it back by a whole
 * frame skips or repeats one slot, so the video stays on the wall clock. No lookahead: a frame
 * leaves as soon as it arrives.
 */
export function frameSlotExpression(fps: number, dropLate?: DropLate): string {
  const frames = `T*${fps}`;
  const slot = [
    `st(0,if(N,ld(0),${frames}-round(${frames})))`,
    `st(1,round(${frames}-ld(0)))`,
    `st(0,ld(0)+(${frames}-ld(1)-ld(0))/min(N+1,${LATENESS_FRAMES}))`,
    `st(0,ld(0)-gt(ld(0),${LATENESS_WRAP})+lt(ld(0),-${LATENESS_WRAP}))`,
  ];
  if (!dropLate) return [...slot, `round(ld(1)/(${fps}*TB))`].join(';');
  // var 5: how late this frame reaches the graph (s); var 4: the source's own lateness, the least
  // seen, let rise by BASELINE_RISE; var 2: the run's first frame (on a segment boundary, the one
  // select takes) has passed; var 3: this frame is dropped. Slot -1 is one select never takes.
  const rise = BASELINE_RISE / fps;
  return [
    ...slot,
    'st(5,RTCTIME/1000000-T)',
    `st(4,if(N,min(ld(4)+${rise},ld(5)),ld(5)))`,
    `st(3,ld(2)*gt(ld(5)-ld(4),${dropLate.seconds}))`,
    `st(2,max(ld(2),eq(mod(ld(1),${dropLate.segmentFrames}),0)))`,
    `if(ld(3),-1/(${fps}*TB),round(ld(1)/(${fps}*TB)))`,
  ].join(';');
}

/**
 * How fast (s per s) the source's own lateness may rise: a camera's stamps can sit a constant
 * time before this box's clock (its transfer, a clock slewed by NTP at up to 0.5 ms/s), which is
 * no backlog; a queue shed by dropping falls back to it.
 */
const BASELINE_RISE = 0.01;

/**
 * Frames that reach the graph this many seconds later than the source's own lateness (the least
 * seen) are dropped, their slots repeating the frame before; never the run's first. For sources
 * stamped with this box's clock as they are taken (the test pattern, cameras): an encoder short of
 * CPU otherwise queues them (64 frames, 2 s) and every later frame is as late until it has CPU to
 * spare, which a box short of CPU does not have. A repeated frame costs x264 a fraction of a new
 * one: ultra-ll's ladder beside a busy loop on one core keeps 30 frames a second out this way,
 * against 27 and falling behind without.
 */
export interface DropLate {
  seconds: number;
  /** Frames per segment: the run's first frame is on a segment boundary. */
  segmentFrames: number;
}

/**
 * The filters that make a source picture a rendition's: none at the same size; a scale at the same
 * shape; otherwise (a 4:3 camera into a 16:9 ladder) scaled to cover the rendition and cropped to
 * its centre, so nothing is stretched and no black bars are encoded.
 */
export function scaleTo(
  rendition: { width: number; height: number },
  source: { width: number; height: number },
): string | undefined {
  const { width, height } = rendition;
  if (width === source.width && height === source.height) return undefined;
  if (width * source.height === height * source.width) return `scale=${width}:${height}`;
  return `scale=${width}:${height}:force_original_aspect_ratio=increase,crop=${width}:${height},setsar=1`;
}

/**
 * One filter graph for every rendition, so the source is decoded once and all renditions share
 * the same frames (and so the same IDR times):
 * - `setpts` puts each frame on its slot of the epoch's frame grid (see frameSlotExpression), and
 *   `settb` makes that slot its timestamp;
 * - `select` drops frames until the first one on a segment boundary (n·segdur since 1970), so the
 *   first IDR, and with `force_key_frames` every later one, lands on the epoch grid; after it, a
 *   frame whose slot is already taken (one late by a frame or more, or a fast camera's extra
 *   frame) is dropped rather than pushing every later frame off its slot, and a slot left empty is
 *   filled by ffmpeg's constant-rate output (`-r`) repeating the frame before;
 * - the overlay, then `split` and one `scale` (and crop, see scaleTo) per rendition of another size.
 */
export function videoFilterGraph({
  profile,
  renditions,
  source,
  overlay,
  input = '0:v',
  captureRate,
  prelude = [],
  detectors,
  dropLateSeconds,
}: VideoGraphOptions): string {
  const fps = profile.video.framerate;
  const segmentFrames = Math.round(profile.segdur * fps);
  const dropLate = dropLateSeconds === undefined ? undefined : { seconds: dropLateSeconds, segmentFrames };
  const head = [
    ...prelude,
    // Twice the frames would fight for the grid's slots below (every other one dropped unevenly).
    ...(captureRate !== undefined && captureRate > fps * 1.01 ? [`fps=${fps}`] : []),
    `setpts='${frameSlotExpression(fps, dropLate)}'`,
    `settb=1/${fps}`,
    'format=yuv420p',
    `select='if(selected_n,gt(pts,prev_selected_pts),eq(mod(round(t*${fps}),${segmentFrames}),0))'`,
  ];
  // The detectors see the source's own picture: the burnt-in clock would never freeze.
  const picture = detectors ? `[${input}]${head.join(',')},split=2[picture][detect];[detect]${detectors}` : undefined;
  const from = picture ? 'picture' : input;
  const shared = picture ? (overlay ? [overlay] : []) : [...head, ...(overlay ? [overlay] : [])];
  const branches = renditions.map((r, i) => ({ label: videoLabel(i), scale: scaleTo(r, source) }));
  const chain = (filters: readonly string[]) => (filters.length ? filters.join(',') : 'null');
  if (branches.length === 1) {
    const only = branches[0]!;
    return [
      ...(picture ? [picture] : []),
      `[${from}]${chain([...shared, ...(only.scale ? [only.scale] : [])])}[${only.label}]`,
    ].join(';');
  }
  const splitLabels = branches.map((b, i) => (b.scale ? `s${i}` : b.label));
  const chains = branches.flatMap((b, i) => (b.scale ? [`[s${i}]${b.scale}[${b.label}]`] : []));
  return [
    ...(picture ? [picture] : []),
    `[${from}]${[...shared, `split=${branches.length}${splitLabels.map((l) => `[${l}]`).join('')}`].join(',')}`,
    ...chains,
  ].join(';');
}
