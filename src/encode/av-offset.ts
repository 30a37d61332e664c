const median = (values: number[]) => {
  const sorted = [...values].sort((a, b) => a - b);
  const mid = sorted.length >> 1;
  return sorted.length % 2 ? sorted[mid]! : (sorted[mid - 1]! + sorted[mid]!) / 2;
};

/**
 * The A/V offset as the packager sees it, without looking at the content: each track's lag
 * (arrival minus the end of its media, on the wall clock), its median over a window, audio's minus
 * video's, relative to the run's second window (the first holds the start's bursts). Medians:
 * both tracks' lags move together with the machine's scheduling (±10 ms at their floors here),
 * their medians' difference held within 1 ms. At the start of a run both tracks are
 * on their capture stamps; a sound card whose samples drift from the wall clock shows as audio's
 * lag moving away from video's. Positive: audio is late against video.
 */
export class AvOffsetMeter {
  readonly #windowMs: number;
  #windowStart: number | undefined;
  #lags: { video: number[]; audio: number[] } = { video: [], audio: [] };
  #windows = 0;
  #baseline: number | undefined;
  #latest: number | undefined;
  #worst = 0;

  constructor(windowMs = 5000) {
    this.#windowMs = windowMs;
  }

  add(kind: 'video' | 'audio', mediaEndMs: number, atMs: number): void {
    this.#windowStart ??= atMs;
    if (atMs - this.#windowStart >= this.#windowMs) this.#closeWindow(atMs);
    this.#lags[kind].push(atMs - mediaEndMs);
  }

  #closeWindow(atMs: number): void {
    const { video, audio } = this.#lags;
    if (video.length && audio.length && ++this.#windows > 1) {
      const difference = median(audio) - median(video);
      this.#baseline ??= difference;
      this.#latest = difference - this.#baseline;
      if (Math.abs(this.#latest) > Math.abs(this.#worst)) this.#worst = this.#latest;
    }
    this.#windowStart = atMs;
    this.#lags = { video: [], audio: [] };
  }

  /** A new encoder run: its pipeline may be another; measure from its start again. */
  restart(): void {
    this.#windowStart = undefined;
    this.#lags = { video: [], audio: [] };
    this.#windows = 0;
    this.#baseline = undefined;
    this.#latest = undefined;
  }

  /** The last window's offset and the largest seen, in ms; undefined until three windows are complete. */
  get figures(): { offsetMs: number; worstMs: number } | undefined {
    if (this.#latest === undefined) return undefined;
    const round = (x: number) => Math.round(x * 10) / 10;
    return { offsetMs: round(this.#latest), worstMs: round(this.#worst) };
  }
}
