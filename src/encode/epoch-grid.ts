import { Fmp4StreamReader } from '../packager/fmp4.ts';

/** Pure helpers for the epoch timeline: segment n covers [n·segdur, (n+1)·segdur) since 1970. */

export function segmentTicks(segdur: number, timescale: number): bigint {
  return BigInt(Math.round(segdur * timescale));
}

/** The segment a decode time falls in, and whether it is exactly on the segment's start. */
export function placeOnGrid(decodeTime: bigint, timescale: number, segdur: number): { segment: bigint; aligned: boolean } {
  const ticks = segmentTicks(segdur, timescale);
  return { segment: decodeTime / ticks, aligned: decodeTime % ticks === 0n };
}

/** Wall-clock instant of a media time on the epoch timeline, to the millisecond. */
export function mediaTimeToDate(decodeTime: bigint, timescale: number): Date {
  return new Date(Number((decodeTime * 1000n) / BigInt(timescale)));
}

export interface IdrPlacement {
  decodeTime: bigint;
  timescale: number;
  segment: bigint;
  aligned: boolean;
}

/** Reads a video track's fMP4 stream as it arrives and places each IDR on the epoch grid. */
export class IdrGridCheck {
  readonly #reader = new Fmp4StreamReader();
  readonly #segdur: number;
  constructor(segdur: number) {
    this.#segdur = segdur;
  }

  push(piece: Uint8Array): IdrPlacement[] {
    const placements: IdrPlacement[] = [];
    for (const event of this.#reader.push(piece)) {
      if (event.type !== 'fragment') continue;
      for (const traf of event.fragment.tracks) {
        const timescale = this.#reader.tracks.get(traf.trackId)?.timescale ?? 1;
        for (const sample of traf.samples) {
          if (sample.sync) placements.push({ decodeTime: sample.decodeTime, timescale, ...placeOnGrid(sample.decodeTime, timescale, this.#segdur) });
        }
      }
    }
    return placements;
  }
}
