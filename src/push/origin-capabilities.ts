import type { OriginProfile } from './push-types.ts';

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
}

const CAPABILITIES: Record<OriginProfile, OriginCapabilities> = {
  appliance: {
    profile: 'appliance',
    servesGrowingObjects: true,
    blockingReload: true,
    timeEndpoint: true,
    serverHeader: /^appliance\b/i,
    description: 'it serves uploads while they arrive',
  },
  generic: {
    profile: 'generic',
    servesGrowingObjects: false,
    blockingReload: false,
    timeEndpoint: false,
    serverHeader: undefined,
    description: 'it serves a file only once its upload ends',
  },
};

export const originCapabilities = (profile: OriginProfile): OriginCapabilities => CAPABILITIES[profile];

/** The origin's own clock, when it serves one. */
export const originTimeUrl = (origin: OriginCapabilities, streamUrl: URL): string | undefined =>
  origin.timeEndpoint ? new URL('/time', streamUrl).href : undefined;
