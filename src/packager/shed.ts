import type { MpdModel } from './mpd.ts';

/** A rendition not delivered to an output from segment `from` until segment `until` (open: still shed). */
export interface ShedSpan {
  track: string;
  from: bigint;
  until?: bigint | undefined;
}

type Period = { start: bigint; video: MpdModel['video']; audio: MpdModel['audio'] };

/**
 * Pure: the manifest model as an output that shed renditions has it: a new Period begins where a
 * rendition was shed and where it came back, and the periods in between leave it out, so a player
 * moves to what the origin has at a period boundary instead of asking for segments it never gets.
 */
export function withoutShed(model: MpdModel, spans: readonly ShedSpan[]): MpdModel {
  if (!spans.length) return model;
  let periods: Period[] = [
    ...(model.earlierPeriods ?? []),
    { start: model.periodStart ?? 0n, video: model.video, audio: model.audio },
  ];
  const first = periods[0]!.start;
  // Split at every boundary that falls inside the listed periods.
  const cuts = [...new Set(spans.flatMap((s) => [s.from, ...(s.until === undefined ? [] : [s.until])]))]
    .filter((c) => c > first)
    .sort((a, b) => (a < b ? -1 : 1));
  for (const cut of cuts) {
    const at = periods.findLastIndex((p) => p.start <= cut);
    if (periods[at]!.start !== cut) periods.splice(at + 1, 0, { ...periods[at]!, start: cut });
  }
  periods = periods.map((p) => {
    // After the cuts a period lies wholly inside or outside every span.
    const shed = (track: string) =>
      spans.some((s) => s.track === track && s.from <= p.start && (s.until === undefined || p.start < s.until));
    return { start: p.start, video: p.video.filter((r) => !shed(r.id)), audio: p.audio.filter((r) => !shed(r.id)) };
  });
  const current = periods.at(-1)!;
  return {
    ...model,
    video: current.video,
    audio: current.audio,
    periodStart: current.start,
    earlierPeriods: periods.slice(0, -1),
  };
}

/** Which renditions an output sheds, and from which segment to which: the spans its manifests need. */
export class ShedState {
  #spans: ShedSpan[] = [];

  get spans(): readonly ShedSpan[] {
    return this.#spans;
  }

  /** Is `segment` of `track` one this output does not deliver? */
  covers(track: string, segment: bigint): boolean {
    return this.#spans.some(
      (s) => s.track === track && s.from <= segment && (s.until === undefined || segment < s.until),
    );
  }

  /** Shed now (an open span). */
  active(track: string): boolean {
    return this.#spans.some((s) => s.track === track && s.until === undefined);
  }

  shed(track: string, from: bigint): void {
    if (!this.active(track)) this.#spans.push({ track, from });
  }

  restore(track: string, from: bigint): void {
    this.#spans = this.#spans
      .map((s) => (s.track === track && s.until === undefined ? { ...s, until: from > s.from ? from : s.from } : s))
      .filter((s) => s.until === undefined || s.until > s.from);
  }

  /** Spans wholly before `oldest` (out of every manifest's window) are forgotten. */
  forgetBefore(oldest: bigint): void {
    this.#spans = this.#spans.filter((s) => s.until === undefined || s.until > oldest);
  }
}
