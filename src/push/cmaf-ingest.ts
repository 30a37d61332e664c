import { createHash } from 'node:crypto';
import { ConfigError } from '../errors.ts';
import { chunkSequenceNumber } from '../packager/chunker.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';
import type { Ingest } from './push-types.ts';

// CMAF ingest (DASH-IF Live Media Ingest, Interface-1): per track a CMAF header first on every
// connection, then one CMAF segment per request, each streamed chunk by chunk. What differs
// between receivers is how the objects are named; this file holds those rules, pure.

/** Pure: the ingest an output uses: the one given for it (or for all), else its origin profile's. */
export function resolveIngest(given: Ingest | undefined, origin: OriginCapabilities, output: string): Ingest {
  const ingest = given ?? origin.ingests[0]!;
  if (origin.ingests.includes(ingest)) return ingest;
  if (ingest === 'cmaf')
    throw new ConfigError(
      `--ingest cmaf for ${output}: the ${origin.profile} origin profile takes --ingest dash (DASH/HLS objects with manifests); CMAF ingest goes to --origin-profile appliance (appliance origin packages it), unified, mediapackage-v2 or generic-cmaf`,
    );
  throw new ConfigError(
    `--ingest dash for ${output}: --origin-profile ${origin.profile} is a CMAF ingest receiver (it packages the stream itself): leave --ingest out or give --ingest cmaf`,
  );
}

/**
 * Pure: where a push URL's objects go. DASH ingest names a manifest (`live.mpd` appended to a
 * directory); CMAF ingest names a publishing point, whose objects go inside it (`…/channel.isml`
 * → `…/channel.isml/Streams(…)`), and a receiver that takes a posted MPD gets `live.mpd` there,
 * unless the URL names the MPD itself.
 */
export function cmafPublishingPoint(given: URL): { base: URL; manifest: string } {
  const path = given.pathname;
  if (/\.mpd$/i.test(path)) {
    const slash = path.lastIndexOf('/');
    return { base: new URL(`${path.slice(0, slash + 1)}${given.search}`, given), manifest: path.slice(slash + 1) };
  }
  return { base: new URL(`${path.replace(/\/?$/, '/')}${given.search}`, given), manifest: 'live.mpd' };
}

export interface CmafObjectNames {
  /** The CMAF header's path, relative to the publishing point. */
  init: string;
  segment(segment: bigint): string;
}

/**
 * Pure: a track's object names at a receiver. `stream` is its name there without extension (see
 * CmafTrackNames); `.cmfv`/`.cmfa` by kind where the name carries one.
 */
export function cmafObjectNames(
  naming: OriginCapabilities['cmafNaming'],
  stream: string,
  kind: 'video' | 'audio',
  chunksPerSegment: number,
): CmafObjectNames {
  const streams = `Streams(${stream}.${kind === 'video' ? 'cmfv' : 'cmfa'})`;
  if (naming === 'streams') return { init: streams, segment: () => streams };
  if (naming === 'mediapackage')
    return {
      init: `${streams}/InitializationSegment`,
      // Its number is the segment's mfhd sequence number (that of its first chunk), as MediaPackage asks.
      segment: (segment) => `${streams}/Segment(${chunkSequenceNumber(segment, 0, chunksPerSegment)})`,
    };
  // The posted MPD's SegmentTemplate (`$RepresentationID$/init.mp4`, `$RepresentationID$/$Number$.m4s`, single Period at PT0S).
  return { init: `${stream}/init.mp4`, segment: (segment) => `${stream}/${segment}.m4s` };
}

/** Pure: a track's names in words, for `--dry-run` (n: the segment's number since 1970). */
export function cmafLayoutOf(
  naming: OriginCapabilities['cmafNaming'],
  track: string,
  kind: 'video' | 'audio',
  chunksPerSegment: number,
): string {
  const names = cmafObjectNames(naming, track, kind, chunksPerSegment);
  const segment =
    naming === 'streams'
      ? `${names.init} (one request per segment)`
      : naming === 'mediapackage'
        ? names.init.replace(/InitializationSegment$/, `Segment(<n·${chunksPerSegment} mod 2^32>)`)
        : `${track}/<n>.m4s`;
  return `${names.init}, then ${segment}`;
}

/**
 * A track's names at a CMAF ingest receiver. A CMAF track has one header for its whole life (the
 * spec allows only a changed language), so when the encoder's init changes (a new DASH period: a
 * realtime step, a restart with other settings), the media after it is another track: its own
 * name, `<track>-<8 hex digits of the header's SHA-256>`, the same on any encoder that makes the
 * same header. Going back to the first header goes back to `<track>`.
 */
export class CmafTrackNames {
  readonly #first = new Map<string, Uint8Array>();

  /** The stream name for `track`'s media described by `header`. */
  nameOf(track: string, header: Uint8Array): string {
    const first = this.#first.get(track);
    if (!first) {
      this.#first.set(track, header);
      return track;
    }
    if (Buffer.compare(first, header) === 0) return track;
    return `${track}-${createHash('sha256').update(header).digest('hex').slice(0, 8)}`;
  }
}
