import type { ChunkEvent } from '../packager/chunker.ts';
import { HlsPlaylists, type HlsSession, type OutputFormats } from '../packager/hls-playlists.ts';
import { acknowledgedView, markGaps } from '../packager/hls-timeline.ts';
import { HLS_CONTENT_TYPE } from '../packager/hls-playlist.ts';
import { Lane, type LaneOptions } from './lane.ts';
import { CoalescingSender } from './coalescing-sender.ts';
import { PartLane, type PartUpload } from './part-lane.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';
import type { Delivery } from './push-types.ts';

export interface HlsPushContext {
  session: HlsSession;
  formats: OutputFormats;
  origin: OriginCapabilities;
  segdur: number;
  laneOptions: LaneOptions;
  deliver(lane: Lane, path: string, body: Uint8Array, contentType: string): Promise<Delivery>;
  pause(ms: number): Promise<void>;
  stopped(): boolean;
  /** What the output knows of the track: its init acknowledged, its acknowledged segments, its newest segment. */
  track(id: string):
    | {
        initAcknowledged: boolean;
        acknowledged: ReadonlySet<bigint>;
        gaps: ReadonlySet<bigint>;
        live: bigint | undefined;
      }
    | undefined;
  onPartDropped(track: string, part: PartUpload): void;
  /**
   * A track's media playlist reached the origin while the multivariant playlist has not: it may
   * be buildable now (every playlist there, each listing a whole segment from the common start).
   */
  onPlaylistDelivered(track: string): void;
}

interface HlsTrack {
  /** The media playlist's path, sent by `sender` on a connection of its own. */
  playlistPath: string;
  sender: CoalescingSender;
  parts: PartLane | undefined;
  /** Segment → how many of its leading part files the origin acknowledged. */
  acknowledgedParts: Map<bigint, number>;
  /** The origin has acknowledged a media playlist of this track. */
  delivered: boolean;
}

/**
 * The HLS side of a push output: per track, the media playlist on a connection of its own
 * (coalesced, rebuilt at every part) and, with `sf`, the part files on another. Toward an appliance
 * origin a playlist names what was handed to the uploads (the origin serves it once those bytes
 * arrived); toward a generic origin only what the origin acknowledged, without blocking or hints.
 */
export class HlsPush {
  readonly playlists: HlsPlaylists;
  readonly #context: HlsPushContext;
  readonly #tracks = new Map<string, HlsTrack>();
  readonly #generic: boolean;
  /** The origin acknowledged a multivariant playlist. */
  multivariantDelivered = false;

  constructor(context: HlsPushContext) {
    this.#context = context;
    this.#generic = !context.origin.servesGrowingObjects;
    const window = context.session.timing.windowSegments;
    // Media dropped for good is a gap (EXT-X-GAP), not a hole the players trip over.
    const view = (track: string, segments: Parameters<typeof acknowledgedView>[0]) => {
      const known = context.track(track);
      const gaps = known?.gaps ?? new Set<bigint>();
      const marked = markGaps(segments, gaps);
      return this.#generic
        ? acknowledgedView(
            marked,
            new Set([...(known?.acknowledged ?? []), ...gaps]),
            this.#tracks.get(track)?.acknowledgedParts ?? new Map(),
            window,
          )
        : marked;
    };
    this.playlists = new HlsPlaylists(
      context.session,
      context.formats.names,
      { blocking: context.origin.blockingReload, hints: context.origin.blockingReload },
      view,
    );
  }

  /**
   * The multivariant playlist, once the origin holds a media playlist of every track it names (a
   * player reading it earlier would get a 404 for the others).
   */
  multivariant(): string | undefined {
    const listed = this.playlists.listedTracks();
    return listed?.every((id) => this.#tracks.get(id)?.delivered) ? this.playlists.multivariant() : undefined;
  }

  /** Playlists or part files still waiting for the origin. */
  get pending(): boolean {
    return [...this.#tracks.values()].some((t) => t.sender.pending || t.parts?.pending);
  }

  get loops(): Promise<void>[] {
    return [...this.#tracks.values()].flatMap((t) => [t.sender.loop, ...(t.parts ? [t.parts.loop] : [])]);
  }

  addTrack(id: string, kind: 'video' | 'audio'): void {
    if (this.#tracks.has(id)) return;
    const names = this.#context.formats.names;
    const lanes = {
      segdur: this.#context.segdur,
      deliver: this.#context.deliver,
      pause: this.#context.pause,
      stopped: this.#context.stopped,
    };
    const playlistPath = names.mediaPlaylist(id);
    const sender = new CoalescingSender(lanes, new Lane(this.#context.laneOptions));
    sender.add(
      playlistPath,
      HLS_CONTENT_TYPE,
      () => (this.#context.track(id)?.initAcknowledged ? this.playlists.media(id) : undefined),
      {
        onDelivered: () => {
          state.delivered = true;
          // Not only the first delivery: a playlist listing segments before the tracks' common
          // start does not make the multivariant buildable; a later one does (an encoder whose
          // first audio segment came a segment before the video's left nginx without one, seen).
          if (!this.multivariantDelivered) this.#context.onPlaylistDelivered(id);
        },
      },
    );
    const state: HlsTrack = { playlistPath, sender, parts: undefined, acknowledgedParts: new Map(), delivered: false };
    const touchPlaylist = () => sender.touch(playlistPath);
    if (this.#context.session.llhls === 'sf') {
      state.parts = new PartLane(
        {
          ...lanes,
          oldestUseful: () => {
            const live = this.#context.track(id)?.live;
            return live === undefined ? undefined : live - BigInt(this.#context.session.timing.partSegments);
          },
          onAcknowledged: (part) => {
            const count = state.acknowledgedParts.get(part.segment) ?? 0;
            if (part.index === count) state.acknowledgedParts.set(part.segment, count + 1);
            for (const segment of state.acknowledgedParts.keys())
              if (segment < part.segment - 3n) state.acknowledgedParts.delete(segment);
            if (this.#generic) touchPlaylist();
          },
          onDropped: (part) => this.#context.onPartDropped(id, part),
        },
        new Lane(this.#context.laneOptions),
        `${kind}/mp4`,
      );
    }
    this.#tracks.set(id, state);
  }

  /** A chunk was handed to the segment's upload. */
  onChunk(event: ChunkEvent): void {
    const track = this.#tracks.get(event.track);
    if (!track) return;
    // Rendered when the sender takes it, not here: a playlist still waiting for the connection is
    // rendered once, however many parts it gained meanwhile.
    const { changed, partFile, absentTracks } = this.playlists.advance(event);
    for (const absent of absentTracks) this.#touch(this.#tracks.get(absent));
    if (partFile && track.parts)
      track.parts.add({
        segment: event.segment,
        index: partFile.index,
        path: partFile.path,
        bytes: Buffer.concat(partFile.bytes),
      });
    if (changed && !this.#generic) this.#touch(track);
  }

  /** The init of `track` was acknowledged: its playlist may go. */
  onInitAcknowledged(track: string): void {
    this.#touch(this.#tracks.get(track));
  }

  #touch(track: HlsTrack | undefined): void {
    track?.sender.touch(track.playlistPath);
  }

  /** A segment of `track` was acknowledged: a generic origin's playlist may name it. */
  onSegmentAcknowledged(track: string): void {
    if (this.#generic) this.#touch(this.#tracks.get(track));
  }

  /** Every playlist again (at the end: with ENDLIST). */
  publishAll(): void {
    for (const track of this.#tracks.values()) this.#touch(track);
  }

  /** A segment's part files, which go (DELETE) with it. */
  companions(track: string, segment: bigint): string[] {
    if (this.#context.session.llhls !== 'sf') return [];
    return Array.from({ length: this.#context.session.timing.partsPerSegment }, (_, index) =>
      this.#context.formats.names.partFile(track, segment, index),
    );
  }

  /** Drops the part files still queued (at stop), for the counts. */
  dropQueued(): void {
    for (const [id, track] of this.#tracks)
      for (const part of track.parts?.clear() ?? []) this.#context.onPartDropped(id, part);
  }

  wake(): void {
    for (const track of this.#tracks.values()) {
      track.sender.wake();
      track.parts?.wake();
    }
  }

  async close(): Promise<void> {
    await Promise.all(
      [...this.#tracks.values()].flatMap((t) => [t.sender.close(), ...(t.parts ? [t.parts.close()] : [])]),
    );
  }
}
