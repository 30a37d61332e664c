import { segmentPath } from '../layout/object-names.ts';
import { cmafObjectNames, type CmafTrackNames } from './cmaf-ingest.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';

/** One init (CMAF header) of a track: the period it describes and where it and its media go. */
export interface TrackHeader {
  /** The first segment of its period. */
  start: bigint;
  bytes: Uint8Array;
  /** Where the header goes. */
  path: string;
  /** The track's name at the origin: its id (DASH ingest), or its CMAF ingest stream name. */
  streamName: string;
  segmentPath(segment: bigint): string;
}

/** CMAF ingest naming for a push output; none: DASH ingest's object names. */
export interface CmafNaming {
  naming: OriginCapabilities['cmafNaming'];
  chunksPerSegment: number;
  names: CmafTrackNames;
}

/** Headers kept per track: more periods than any time-shift window holds media of. */
const KEPT = 16;

/**
 * A track's headers by period. The packager announces a new period's init seconds before the
 * period begins (so DASH players learn of it), while media of the current period is still being
 * made: each segment takes the header of the period it falls in, not the newest one.
 */
export class TrackHeaders {
  readonly #track: string;
  readonly #kind: 'video' | 'audio';
  readonly #cmaf: CmafNaming | undefined;
  /** By period start, ascending. */
  readonly #headers: TrackHeader[] = [];

  constructor(track: string, kind: 'video' | 'audio', cmaf: CmafNaming | undefined) {
    this.#track = track;
    this.#kind = kind;
    this.#cmaf = cmaf;
  }

  /** The header of the newest period known (announced or current): the one to send ahead. */
  get newest(): TrackHeader {
    return this.#headers.at(-1)!;
  }

  /** The header `segment`'s media needs: that of the period it falls in (the first one for older media). */
  of(segment: bigint): TrackHeader {
    return this.#headers.findLast((h) => h.start <= segment) ?? this.#headers[0]!;
  }

  /**
   * Records the init of the period starting at `start`. Says whether the newest header changed
   * (it must go out again before more media) and whether the track's name did (CMAF ingest: a
   * new header is another track).
   */
  set(start: bigint, bytes: Uint8Array, packagerPath: string): { changed: boolean; renamed: boolean } {
    const before = this.#headers.at(-1);
    const header = this.#header(start, bytes, packagerPath);
    const at = this.#headers.findIndex((h) => h.start >= start);
    if (at < 0) this.#headers.push(header);
    else if (this.#headers[at]!.start === start) this.#headers[at] = header;
    else this.#headers.splice(at, 0, header);
    if (this.#headers.length > KEPT) this.#headers.shift();
    const after = this.#headers.at(-1)!;
    return {
      changed: !before || before.path !== after.path || Buffer.compare(before.bytes, after.bytes) !== 0,
      renamed: before !== undefined && before.streamName !== after.streamName,
    };
  }

  #header(start: bigint, bytes: Uint8Array, packagerPath: string): TrackHeader {
    const cmaf = this.#cmaf;
    if (!cmaf)
      return {
        start,
        bytes,
        path: packagerPath,
        streamName: this.#track,
        segmentPath: (segment) => segmentPath(this.#track, segment),
      };
    const streamName = cmaf.names.nameOf(this.#track, bytes);
    const names = cmafObjectNames(cmaf.naming, streamName, this.#kind, cmaf.chunksPerSegment);
    return { start, bytes, path: names.init, streamName, segmentPath: names.segment };
  }
}
