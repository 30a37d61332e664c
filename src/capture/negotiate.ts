import { sizeOf, type Camera, type CaptureApi, type RateRange, type VideoMode } from './devices/types.ts';

// Pure: which of a camera's modes to capture, and why. Sizes and rates come from the listing;
// the wanted size is the ladder's top rendition and the wanted rate the profile's.

export interface VideoWant {
  width: number;
  height: number;
  framerate: number;
  /** Frame counts must be whole per segment and per IDR interval. */
  segdur: number;
  idr: number;
}

export interface VideoChoice {
  /** ffmpeg's name for what the camera sends; undefined: the driver's choice (nothing listed). */
  format: string | undefined;
  compressed: boolean;
  width: number;
  height: number;
  /** The rate the timeline and the encoder run at: whole frames per segment. */
  framerate: number;
  /** The rate asked of the device: ≥ framerate (decimated when higher); avfoundation wants a range's exact maximum. */
  captureRate: number;
  /** One line per decision, for the log and --dry-run. */
  reasons: string[];
}

/** USB 2 isochronous video carries ≈ 24 MB/s (3 × 1024 bytes per 125 µs microframe). */
const USB2_BYTES_PER_SECOND = 24_576_000;
const RAW_BYTES_PER_PIXEL: Record<string, number> = {
  yuyv422: 2,
  uyvy422: 2,
  yvyu422: 2,
  nv12: 1.5,
  nv21: 1.5,
  yuv420p: 1.5,
  gray: 1,
  rgb24: 3,
  bgr24: 3,
  '0rgb': 4,
  bgr0: 4,
};
/** Raw before compressed (no decoding: MJPEG decode alone costs ≈ 0.5 core at 1080p30), then cheaper conversions. */
const FORMAT_ORDER = ['nv12', 'yuv420p', 'uyvy422', 'yuyv422', 'yvyu422', 'mjpeg', 'h264'];

const isWhole = (x: number) => Math.abs(x - Math.round(x)) < 1e-6;
/** 29.97 is NTSC's 30: within 0.2 % of a whole rate, the timeline runs at the whole rate. */
const nominal = (rate: number) => (Math.abs(rate - Math.round(rate)) / rate < 0.002 ? Math.round(rate) : rate);

/** A rate the timeline can run at: whole frames per segment and per IDR interval. */
export const usableRate = (rate: number, want: Pick<VideoWant, 'segdur' | 'idr'>) =>
  isWhole(rate * want.segdur) && isWhole(rate * want.idr);

interface Candidate {
  mode: VideoMode;
  width: number;
  height: number;
  framerate: number;
  captureRate: number;
  rateNote: string;
  rateClass: number;
}

/** The rates one range can be asked for: any within it, or (avfoundation) only its maximum. */
function selectable(range: RateRange, api: CaptureApi): number[] {
  if (api === 'avfoundation' || range.min === range.max) return [range.max];
  return [range.max, 60, 50, 30, 25, 24, range.min].filter((r) => r >= range.min - 1e-6 && r <= range.max + 1e-6);
}

/** Pure: the rate to run at from what can be asked, best first by class (0 best). */
function rateCandidates(
  rates: readonly number[],
  want: VideoWant,
): { framerate: number; captureRate: number; rateClass: number; note: string }[] {
  const out: { framerate: number; captureRate: number; rateClass: number; note: string }[] = [];
  for (const rate of rates) {
    const whole = nominal(rate);
    if (whole === want.framerate)
      out.push({ framerate: want.framerate, captureRate: rate, rateClass: 0, note: `${rate} fps as the profile asks` });
    else if (isWhole(whole / want.framerate) && whole > want.framerate)
      out.push({
        framerate: want.framerate,
        captureRate: rate,
        rateClass: 1,
        note: `${rate} fps, every ${whole / want.framerate}th frame kept for the profile's ${want.framerate} fps`,
      });
    else if (usableRate(whole, want) && (whole === 25 || whole === 50))
      out.push({
        framerate: whole,
        captureRate: rate,
        rateClass: 2,
        note: `${rate} fps kept (a 25/50 fps camera: segments stay whole frames)`,
      });
    else if (usableRate(whole, want) && whole < want.framerate)
      out.push({
        framerate: whole,
        captureRate: rate,
        rateClass: 3 + (want.framerate - whole) / want.framerate,
        note: `${rate} fps, the best this mode offers below the profile's ${want.framerate}`,
      });
  }
  return out.sort((a, b) => a.rateClass - b.rateClass);
}

/** Size score, lower is better: the smallest size covering the top rendition, else the largest; other aspect ratios later. */
function sizeScore(width: number, height: number, want: VideoWant): number {
  const aspect = Math.abs(width / height - want.width / want.height) > 0.02 ? 0.5 : 0;
  const covers = width >= want.width && height >= want.height;
  const area = (width * height) / (want.width * want.height);
  return (covers ? area - 1 : 1 + (1 - area)) / 2 + aspect;
}

/**
 * Pure: the mode to capture. Rate first (the profile's, a multiple of it, a 25/50 fps camera's
 * own, then the best below), then size (the top rendition's, or the smallest above it, else the
 * largest), then format (raw where it reaches the rate, MJPEG where raw cannot, as on USB 2).
 */
export function negotiateVideo(camera: Pick<Camera, 'name' | 'api' | 'modes'>, want: VideoWant): VideoChoice {
  const wantSize = sizeOf(want);
  // Nothing to choose from: the top rendition at the profile's rate, in the driver's format.
  const askAnyway = (reason: string): VideoChoice => ({
    format: undefined,
    compressed: false,
    width: want.width,
    height: want.height,
    framerate: want.framerate,
    captureRate: want.framerate,
    reasons: [reason],
  });
  if (camera.modes.length === 0)
    return askAnyway(
      `the listing shows no modes for "${camera.name}": asking for ${wantSize} at ${want.framerate} fps and the driver's format`,
    );
  const candidates: Candidate[] = [];
  for (const mode of camera.modes) {
    const size =
      mode.stepwise && mode.width >= want.width && mode.height >= want.height
        ? { width: want.width, height: want.height }
        : { width: mode.width, height: mode.height };
    let rates: number[];
    let unknownNote = '';
    if (mode.rates.length) rates = mode.rates.flatMap((r) => selectable(r, camera.api));
    else {
      // Nothing listed (ffmpeg's v4l2 listing has no rates): raw is assumed to go as far as USB 2 carries.
      const bytes = RAW_BYTES_PER_PIXEL[mode.format];
      const reach =
        mode.compressed || bytes === undefined
          ? want.framerate
          : Math.floor(USB2_BYTES_PER_SECOND / (size.width * size.height * bytes));
      rates = [Math.min(want.framerate, reach)];
      if (!mode.compressed && bytes !== undefined && reach < want.framerate)
        unknownNote = ` (no rates listed: raw ${sizeOf(size)} at ${want.framerate} fps needs ${Math.round((size.width * size.height * bytes * want.framerate) / 1e6)} MB/s, more than USB 2 carries)`;
    }
    for (const rate of rateCandidates(rates, want))
      candidates.push({
        mode,
        ...size,
        framerate: rate.framerate,
        captureRate: rate.captureRate,
        rateNote: rate.note + unknownNote,
        rateClass: rate.rateClass,
      });
  }
  const formatRank = (m: VideoMode) => {
    const i = FORMAT_ORDER.indexOf(m.format);
    return i < 0 ? FORMAT_ORDER.length : i;
  };
  candidates.sort(
    (a, b) =>
      a.rateClass - b.rateClass ||
      sizeScore(a.width, a.height, want) - sizeScore(b.width, b.height, want) ||
      formatRank(a.mode) - formatRank(b.mode) ||
      a.captureRate - b.captureRate,
  );
  const best = candidates[0];
  if (!best) {
    const offered = [
      ...new Set(camera.modes.flatMap((m) => m.rates.map((r) => (r.min === r.max ? `${r.max}` : `${r.min}–${r.max}`)))),
    ].join(', ');
    return askAnyway(
      `no mode of "${camera.name}" has a rate that makes whole frames per ${want.segdur} s segment (it offers ${offered} fps): asking for ${want.framerate} fps anyway`,
    );
  }
  const reasons = [`${best.mode.format} ${sizeOf(best)} at ${best.rateNote}`];
  if (best.width !== want.width || best.height !== want.height) {
    reasons.push(
      best.width >= want.width && best.height >= want.height
        ? `no ${wantSize} mode: the smallest larger one, scaled down`
        : `the camera's largest mode is below ${wantSize}: larger renditions are dropped, never upscaled`,
    );
  }
  const rawSameSize = candidates.find((c) => !c.mode.compressed && c.width === best.width && c.height === best.height);
  if (best.mode.compressed && rawSameSize && rawSameSize.rateClass > best.rateClass) {
    reasons.push(
      `${best.mode.format} rather than raw ${rawSameSize.mode.format}, which reaches only ${rawSameSize.captureRate} fps at ${sizeOf(best)} (USB 2 bandwidth)`,
    );
  } else if (best.mode.compressed && !rawSameSize) {
    reasons.push(`${best.mode.format}: no raw format at ${sizeOf(best)}`);
  } else if (!best.mode.compressed) {
    reasons.push(`raw ${best.mode.format}: no decoding needed`);
  }
  return {
    format: best.mode.format,
    compressed: best.mode.compressed,
    width: best.width,
    height: best.height,
    framerate: best.framerate,
    captureRate: best.captureRate,
    reasons,
  };
}

/**
 * Pure: the rate a source of fixed rate (a file, a feed) runs the timeline at, by the cameras'
 * rules (the profile's; a multiple decimated; 25/50 kept; a lower usable rate kept), else the
 * profile's with frames repeated or dropped to fill its grid.
 */
export function sourceRate(
  rate: number | undefined,
  want: VideoWant,
): { framerate: number; captureRate: number; note: string } {
  if (rate === undefined || !(rate > 0))
    return {
      framerate: want.framerate,
      captureRate: want.framerate,
      note: `no frame rate known: the profile's ${want.framerate} fps`,
    };
  const best = rateCandidates([rate], want)[0];
  return (
    best ?? {
      framerate: want.framerate,
      captureRate: want.framerate,
      note: `${rate} fps makes no whole frames per segment: frames repeated or dropped onto the profile's ${want.framerate} fps`,
    }
  );
}
