import { joined, TopLevelBoxSplitter } from '../../src/packager/boxes.ts';
import { type Fragment, parseMoof, parseMoov, type TrackInfo } from '../../src/packager/fmp4.ts';

// A second reader of fMP4, for tests and benchmarks only: what ffmpeg or the packager wrote, read
// whole (tracks and every sample) to check it, independent of the chunker that made it.

export type Fmp4Event = { type: 'init'; tracks: TrackInfo[] } | { type: 'fragment'; fragment: Fragment; bytes: number };

/** Incremental reader of a fragmented MP4 stream: init once, then one event per moof+mdat. */
export class Fmp4StreamReader {
  readonly #splitter = new TopLevelBoxSplitter();
  #tracks = new Map<number, TrackInfo>();
  #pendingFragment: { fragment: Fragment; bytes: number } | undefined;

  get tracks(): ReadonlyMap<number, TrackInfo> {
    return this.#tracks;
  }

  push(piece: Uint8Array): Fmp4Event[] {
    const events: Fmp4Event[] = [];
    for (const box of this.#splitter.push(piece)) {
      if (box.type === 'moov') {
        const tracks = parseMoov(joined(box).subarray(box.headerSize));
        this.#tracks = new Map(tracks.map((track) => [track.trackId, track]));
        events.push({ type: 'init', tracks });
      } else if (box.type === 'moof') {
        this.#pendingFragment = {
          fragment: parseMoof(joined(box).subarray(box.headerSize), this.#tracks),
          bytes: box.size,
        };
      } else if (box.type === 'mdat' && this.#pendingFragment) {
        events.push({
          type: 'fragment',
          fragment: this.#pendingFragment.fragment,
          bytes: this.#pendingFragment.bytes + box.size,
        });
        this.#pendingFragment = undefined;
      }
    }
    return events;
  }
}

/** Pure: a whole fMP4 file → its tracks and samples (for checks and tests). */
export function readFmp4(bytes: Uint8Array): { tracks: TrackInfo[]; fragments: Fragment[] } {
  const reader = new Fmp4StreamReader();
  const events = reader.push(bytes);
  return {
    tracks: [...reader.tracks.values()],
    fragments: events.flatMap((e) => (e.type === 'fragment' ? [e.fragment] : [])),
  };
}
