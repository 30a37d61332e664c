import type { InitEvent, SampleWithData } from './chunker.ts';

/**
 * A track's pre-encoded slate: the "signal lost" picture (one GOP per segment, from an IDR) or
 * silent AAC, encoded with the live encoder's settings, so its init segment is the live one's.
 */
export interface SlateClip {
  init: InitEvent;
  /** Video: at least one segment of frames, the first an IDR. Audio: silent frames, all sync. */
  samples: SampleWithData[];
}

/** AAC frames at the start of an encode carry the encoder's priming; the slate repeats later ones. */
const AUDIO_SKIP = 2;

/**
 * Audio: only whole frames (the encode's last frame is shorter), so repeated slate audio stays on
 * the frame grid the packager splits segments by.
 */
function steadyFrames(clip: SlateClip): SlateClip {
  if (clip.init.info.handler !== 'soun') return clip;
  const frame = clip.samples[AUDIO_SKIP]?.duration;
  return { ...clip, samples: clip.samples.filter((s, i) => i < AUDIO_SKIP || s.duration === frame) };
}

/**
 * Pure: the slate's samples for one track, re-stamped onto the timeline from `start` on. Video
 * restarts the clip (an IDR) where the slate begins and at every segment boundary, and shortens
 * the frame before a boundary that is not on the frame grid; audio repeats silent frames, keeping
 * the frame grid of the media before it, so the packager splits segments where live audio would.
 */
export class SlateCursor {
  readonly #clip: SlateClip;
  readonly #segmentTicks: bigint;
  readonly #video: boolean;
  #next: bigint;
  #index = 0;

  constructor(clip: SlateClip, segmentTicks: bigint, start: bigint) {
    this.#clip = steadyFrames(clip);
    this.#segmentTicks = segmentTicks;
    this.#video = clip.init.info.handler !== 'soun';
    this.#next = start;
    if (!clip.samples.length || (this.#video && !clip.samples[0]!.sync))
      throw new Error(`slate of ${clip.init.track}: no samples, or not starting with a sync sample`);
    if (!this.#video && clip.samples.length <= AUDIO_SKIP)
      throw new Error(`slate of ${clip.init.track}: too few audio frames`);
  }

  /** Decode time of the next slate sample. */
  get next(): bigint {
    return this.#next;
  }

  /** The next sample's duration, without taking it. */
  peekDuration(): number {
    return this.#take(false).duration;
  }

  /** The next sample, stamped at `next`. */
  take(): SampleWithData {
    return this.#take(true);
  }

  #take(advance: boolean): SampleWithData {
    const samples = this.#clip.samples;
    const t = this.#next;
    const S = this.#segmentTicks;
    let index = this.#index;
    if (this.#video && (t % S === 0n || index >= samples.length)) index = 0;
    if (!this.#video && (index < AUDIO_SKIP || index >= samples.length)) index = AUDIO_SKIP;
    const source = samples[index]!;
    let duration = source.duration;
    if (this.#video) {
      const boundary = (t / S + 1n) * S;
      if (t + BigInt(duration) > boundary) duration = Number(boundary - t);
    }
    if (advance) {
      this.#index = index + 1;
      this.#next = t + BigInt(duration);
    }
    return { ...source, decodeTime: t, duration };
  }
}
