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
}

/** The label of rendition `index` in the filter graph; `-map` uses it. */
export const videoLabel = (index: number) => `v${index}`;

/**
 * One filter graph for every rendition, so the source is decoded once and all renditions share
 * the same frames (and so the same IDR times):
 * - `fps` snaps the wall-clock stamps onto the frame grid of the epoch;
 * - `select` drops frames until the first one on a segment boundary (n·segdur since 1970), so the
 *   first IDR, and with `force_key_frames` every later one, lands on the epoch grid;
 * - the overlay, then `split` and one `scale` per smaller rendition.
 */
export function videoFilterGraph({ profile, renditions, source, overlay, input = '0:v', captureRate }: VideoGraphOptions): string {
  const fps = profile.video.framerate;
  const segmentFrames = Math.round(profile.segdur * fps);
  const head = [
    // Twice the frames would fight for the grid's slots below (each late one pushing the next).
    ...(captureRate !== undefined && captureRate > fps * 1.01 ? [`fps=${fps}`] : []),
    // Snap each wall-clock stamp to the nearest frame slot of the epoch, without the fps filter's
    // one-frame lookahead (33 ms at 30 fps); a late frame takes the next free slot.
    `settb=1/${fps}`,
    "setpts='if(isnan(PREV_OUTPTS),PTS,max(PTS,PREV_OUTPTS+1))'",
    'format=yuv420p',
    `select='if(selected_n,1,eq(mod(round(t*${fps}),${segmentFrames}),0))'`,
    ...(overlay ? [overlay] : []),
  ];
  const branches = renditions.map((r, i) => {
    const same = r.width === source.width && r.height === source.height;
    return { label: videoLabel(i), scale: same ? undefined : `scale=${r.width}:${r.height}` };
  });
  if (branches.length === 1) {
    const only = branches[0]!;
    return `[${input}]${[...head, ...(only.scale ? [only.scale] : [])].join(',')}[${only.label}]`;
  }
  const splitLabels = branches.map((b, i) => (b.scale ? `s${i}` : b.label));
  const chains = branches.flatMap((b, i) => (b.scale ? [`[s${i}]${b.scale}[${b.label}]`] : []));
  return [`[${input}]${head.join(',')},split=${branches.length}${splitLabels.map((l) => `[${l}]`).join('')}`, ...chains].join(';');
}
