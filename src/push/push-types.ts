import type { SegmentRun } from '../packager/mpd.ts';
import type { UploadBody } from './upload-body.ts';
import type { ShedSpan } from '../packager/shed.ts';

export type { SegmentRun };

/** Which kind of origin receives the push; it decides what the manifests may promise. */
export const ORIGIN_PROFILES = ['appliance', 'generic', 'unified', 'mediapackage-v2', 'generic-cmaf'] as const;
export type OriginProfile = (typeof ORIGIN_PROFILES)[number];

/**
 * How the stream reaches an origin (DASH-IF Live Media Ingest): `dash` (Interface-2) pushes
 * DASH/HLS objects with the manifests; `cmaf` (Interface-1) sends each track as CMAF ingest, the
 * origin packaging it.
 */
export const INGESTS = ['dash', 'cmaf'] as const;
export type Ingest = (typeof INGESTS)[number];

/** How one object's delivery ended: acknowledged, worth sending again, or given up (refused, or the output stopped). */
export type Delivery = 'ok' | 'retry' | 'gave-up';

/** One segment of one track, held until the origin acknowledged it. */
export interface SegmentUpload {
  track: string;
  segment: bigint;
  path: string;
  /** The init (CMAF header) that goes before it on a connection: the track's when it was made. */
  header: { path: string; bytes: Uint8Array };
  body: UploadBody;
  /** Failed attempts so far. */
  attempts: number;
  /** When its last chunk was made (ms since the epoch). */
  completedAt: number | undefined;
  /** A request is carrying it right now. */
  sending: boolean;
  /** `live`: the track's own connection, in order; `backfill`: the output's backfill connection, when there is room. */
  lane: 'live' | 'backfill';
  /** Where a redirect sent it, and how many redirects it followed. */
  redirectedTo: URL | undefined;
  redirects: number;
}

/** What push reports, for logs now and metrics later. Times are ms since the epoch. */
export type PushEvent =
  | { type: 'chunk'; output: string; track: string; segment: bigint; bytes: number; at: number }
  | {
      type: 'acknowledged';
      output: string;
      track: string;
      object: 'init' | 'segment' | 'manifest';
      segment?: bigint;
      bytes: number;
      attempts: number;
      ackMs: number | undefined;
    }
  | { type: 'retry'; output: string; track: string; path: string; reason: string; attempt: number }
  | { type: 'dropped'; output: string; track: string; segment: bigint; bytes: number; reason: DropReason }
  /** `bytes` unacknowledged; `heldBytes` the memory holding media now, `peakHeldBytes` the most ever (the budget bounds both). */
  | { type: 'backlog'; output: string; bytes: number; heldBytes?: number; peakHeldBytes?: number }
  | { type: 'delete-given-up'; output: string; path: string; attempts: number };

/** `shed`: not sent by design, the output's uplink being too slow for that rendition (see UplinkMonitor). */
export type DropReason = 'budget' | 'expired' | 'rejected' | 'too-large' | 'stopped' | 'fatal' | 'shed';

/** What a manifest builder is told about the output it writes for. */
export interface ManifestView {
  utcTimingUrl: string;
  /** availabilityTimeOffset: the profile's for origins that serve growing segments, 0 otherwise. */
  asto: number;
  /** Only segments the origin acknowledged, per content type: a contiguous run (generic origins). */
  announced?: { video?: SegmentRun | undefined; audio?: SegmentRun | undefined } | undefined;
  /** Renditions this output does not deliver, and since when (its uplink is too slow for them). */
  shed?: readonly ShedSpan[] | undefined;
  /**
   * The MPD posted to a CMAF ingest receiver: one Period at PT0S with the tracks being sent, each
   * Representation named as the receiver knows the track (see CmafTrackNames).
   */
  cmafIngest?: { streamName(track: string): string } | undefined;
}

export type ManifestBuilder = (view: ManifestView) => string;
