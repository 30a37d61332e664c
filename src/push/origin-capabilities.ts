import type { Ingest, OriginProfile } from './push-types.ts';

/**
 * What an origin does with what is pushed to it, resolved once from `--origin-profile`: every
 * rule that differs between origins (what the MPD and playlists may promise, which clock to name,
 * what to expect of the server) reads these, never the profile's name.
 */
export interface OriginCapabilities {
  readonly profile: OriginProfile;
  /**
   * Serves a segment while its upload arrives (chunked transfer): the MPD may promise
   * availabilityTimeOffset and the playlists may name what was handed to the uploads. Otherwise
   * manifests name only what the origin acknowledged, and are sent again as that grows.
   */
  readonly servesGrowingObjects: boolean;
  /** Holds LL-HLS blocking playlist reloads (`_HLS_msn`) and serves preload hints. */
  readonly blockingReload: boolean;
  /** Serves its clock at `/time` next to the stream (UTCTiming, the clock check). */
  readonly timeEndpoint: boolean;
  /** Its `Server:` header, when it is the kind of origin the profile says (checked once, warned). */
  readonly serverHeader: RegExp | undefined;
  /** How `appliance check` describes it. */
  readonly description: string;
  /** The ingest it takes; the first is the default. */
  readonly ingests: readonly Ingest[];
  /**
   * How CMAF ingest names a track's objects: `streams` (`Streams(<name>)` for every request),
   * `mediapackage` (`Streams(<name>)/InitializationSegment`, `…/Segment(<mfhd>)`), `template` (the
   * posted MPD's SegmentTemplate: `<name>/init.mp4`, `<name>/<n>.m4s`).
   */
  readonly cmafNaming: 'streams' | 'mediapackage' | 'template';
  /** Takes a segment older than one it already has (a backfilled one): else late segments are dropped, never sent out of order. */
  readonly acceptsLateSegments: boolean;
  /** The upload method unless --method says otherwise. */
  readonly method: 'PUT' | 'POST';
  /**
   * Gets the push credentials and `--header-file` headers. MediaPackage v2 admits encoders by its
   * channel's policy: a token meant for another output is not its to see.
   */
  readonly takesCredentials: boolean;
}

const INTERFACE_1 = {
  takesCredentials: true,
  servesGrowingObjects: false,
  blockingReload: false,
  timeEndpoint: false,
  serverHeader: undefined,
  ingests: ['cmaf'],
} as const;

const CAPABILITIES: Record<OriginProfile, OriginCapabilities> = {
  appliance: {
    profile: 'appliance',
    servesGrowingObjects: true,
    blockingReload: true,
    timeEndpoint: true,
    serverHeader: /^appliance\b/i,
    description: 'it serves uploads while they arrive',
    // CMAF ingest it packages itself (appliance origin), under Unified's names.
    ingests: ['dash', 'cmaf'],
    cmafNaming: 'streams',
    acceptsLateSegments: true,
    method: 'PUT',
    takesCredentials: true,
  },
  generic: {
    profile: 'generic',
    servesGrowingObjects: false,
    blockingReload: false,
    timeEndpoint: false,
    serverHeader: undefined,
    description: 'it serves a file only once its upload ends',
    ingests: ['dash'],
    cmafNaming: 'template',
    acceptsLateSegments: true,
    method: 'PUT',
    takesCredentials: true,
  },
  // CMAF ingest (Interface-1) receivers: they package what arrives themselves.
  unified: {
    profile: 'unified',
    ...INTERFACE_1,
    description: 'Unified Origin: CMAF ingest to <publishing point>/Streams(<track>)',
    cmafNaming: 'streams',
    // It fills a track's gaps with what arrives later (the way it merges redundant encoders).
    acceptsLateSegments: true,
    method: 'POST',
  },
  'mediapackage-v2': {
    profile: 'mediapackage-v2',
    ...INTERFACE_1,
    description: 'AWS Elemental MediaPackage v2: CMAF ingest, Segment(<n>) numbers only ever increasing',
    cmafNaming: 'mediapackage',
    acceptsLateSegments: false,
    method: 'PUT',
    takesCredentials: false,
  },
  'generic-cmaf': {
    profile: 'generic-cmaf',
    ...INTERFACE_1,
    description: 'a DASH-IF CMAF ingest receiver: names from the posted MPD',
    cmafNaming: 'template',
    acceptsLateSegments: true,
    method: 'POST',
  },
};

export const originCapabilities = (profile: OriginProfile): OriginCapabilities => CAPABILITIES[profile];

/** The origin's own clock, when it serves one. */
export const originTimeUrl = (origin: OriginCapabilities, streamUrl: URL): string | undefined =>
  origin.timeEndpoint ? new URL('/time', streamUrl).href : undefined;
