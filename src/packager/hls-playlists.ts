import { laterOf } from '../timeline/bigint.ts';
import { HlsTimeline, positionOf, type HlsChunk, type HlsPart, type HlsSegment } from './hls-timeline.ts';
import {
  buildMediaPlaylist,
  buildMultivariantPlaylist,
  hlsNames,
  type HlsAudioRendition,
  type HlsDelivery,
  type HlsNames,
  type HlsTiming,
  type HlsVideoRendition,
  type LlhlsMode,
} from './hls-playlist.ts';

/** What every output's playlists share: fixed timing, the renditions (once the inits are known), the end. */
export interface HlsSession {
  llhls: LlhlsMode;
  partChunks: number;
  timing: HlsTiming;
  /** Undefined until every track's init segment is known. */
  renditions(): { video: HlsVideoRendition[]; audio: HlsAudioRendition | undefined } | undefined;
  /** The stream has ended (after --duration): playlists get EXT-X-ENDLIST. */
  ended(): boolean;
  /** First segments of the periods so far (encoder restarts with another init). */
  periods?: () => readonly bigint[];
  /** Whether the period segment `msn` falls in has `track` (a rendition not encoded then has none); default yes. */
  hasTrack?: (track: string, msn: bigint) => boolean;
}

/** Which formats an output carries, and what its manifests are called. */
export interface OutputFormats {
  dash: boolean;
  hls: boolean;
  mpd: string;
  multivariant: string;
  names: HlsNames;
}

/** Pure: `live.mpd` or `live.m3u8` → the formats (both with `dual`) and the names next to it. */
export function outputFormats(manifest: string, dual: boolean): OutputFormats {
  const base = manifest.replace(/\.(mpd|m3u8)$/i, '');
  const hlsAsked = /\.m3u8$/i.test(manifest);
  return {
    dash: dual || !hlsAsked,
    hls: dual || hlsAsked,
    mpd: `${base}.mpd`,
    multivariant: `${base}.m3u8`,
    names: hlsNames(base),
  };
}

/**
 * One output's HLS playlists: fed each chunk once its bytes are where the playlists will be read,
 * so a playlist never names a part before that. `view` narrows what may be named further (an
 * origin that serves only acknowledged uploads).
 */
export class HlsPlaylists {
  readonly session: HlsSession;
  /** Video renditions left out of the multivariant playlist. */
  readonly hidden = new Set<string>();
  readonly names: HlsNames;
  readonly delivery: HlsDelivery;
  readonly timeline: HlsTimeline;
  readonly #view: ((track: string, segments: readonly HlsSegment[]) => readonly HlsSegment[]) | undefined;
  /** With \`sf\`: the bytes of each track's part in progress. */
  readonly #partBytes = new Map<string, Uint8Array[]>();
  /** Every track has had a media playlist (said once through onChunk's \`multivariantReady\`). */
  #mediaReady = false;
  /** The first segment every listed track has: no playlist lists an older one. */
  #commonStart: bigint | undefined;

  constructor(
    session: HlsSession,
    names: HlsNames,
    delivery: Omit<HlsDelivery, 'llhls'>,
    view?: (track: string, segments: readonly HlsSegment[]) => readonly HlsSegment[],
  ) {
    this.session = session;
    this.names = names;
    this.delivery = { ...delivery, llhls: session.llhls };
    this.timeline = new HlsTimeline({
      partChunks: session.partChunks,
      keepSegments: session.timing.windowSegments + 2,
    });
    this.#view = view;
  }

  /**
   * A chunk's bytes are available where the playlists are read: what to write now — with \`sf\`, the
   * part file it completed; the track's media playlist whenever it changed.
   */
  onChunk(chunk: HlsChunk & { parts: readonly Uint8Array[] }): {
    partFile?: { path: string; index: number; bytes: Uint8Array[] };
    playlist?: { name: string; text: string };
    /** The multivariant playlist can be written now: every playlist it names exists (once). */
    multivariantReady?: true;
    /** Playlists of tracks not encoded at this segment, which the segment just completed gave a gap. */
    absentPlaylists?: { track: string; name: string; text: string }[];
  } {
    const { changed, partFile, absentTracks } = this.advance(chunk);
    if (!changed) return {};
    const text = this.media(chunk.track);
    const absentPlaylists = absentTracks.flatMap((t) => {
      const absentText = this.media(t);
      return absentText ? [{ track: t, name: this.names.mediaPlaylist(t), text: absentText }] : [];
    });
    return {
      ...(partFile ? { partFile } : {}),
      ...(text ? { playlist: { name: this.names.mediaPlaylist(chunk.track), text } } : {}),
      ...(text && !this.#mediaReady && this.mediaPlaylistsReady() ? { multivariantReady: true as const } : {}),
      ...(absentPlaylists.length ? { absentPlaylists } : {}),
    };
  }

  /**
   * As onChunk, without rendering anything: whether the track's playlist changed, the part file
   * completed (\`sf\`), and the tracks absent at the segment just completed, whose playlists it
   * extends with a gap. For a writer that renders playlists when it sends them, not per chunk.
   */
  advance(chunk: HlsChunk & { parts: readonly Uint8Array[] }): {
    changed: boolean;
    partFile?: { path: string; index: number; bytes: Uint8Array[] };
    absentTracks: string[];
  } {
    let pending = this.#partBytes.get(chunk.track);
    if (this.session.llhls === 'sf') {
      if (chunk.part % this.session.partChunks === 0 || !pending) {
        pending = [];
        this.#partBytes.set(chunk.track, pending);
      }
      pending.push(...chunk.parts);
    }
    const part = this.add(chunk);
    if (!part) return { changed: false, absentTracks: [] };
    return {
      changed: true,
      ...(this.session.llhls === 'sf' && pending
        ? {
            partFile: {
              path: this.names.partFile(chunk.track, chunk.segment, part.index),
              index: part.index,
              bytes: pending,
            },
          }
        : {}),
      absentTracks: chunk.segmentComplete ? this.#absentAt(chunk) : [],
    };
  }

  /** The tracks absent at `chunk`'s segment, whose playlists its completion extends with a gap. */
  #absentAt(chunk: HlsChunk): string[] {
    const hasTrack = this.session.hasTrack;
    if (!hasTrack) return [];
    return this.timeline.tracks().filter((t) => t !== chunk.track && !hasTrack(t, chunk.segment));
  }

  /**
   * Every track has a media playlist. Until then the multivariant playlist is not written: a player
   * that read it would ask for a playlist not there yet (a 404), and hls.js gives up on an audio
   * playlist that fails to load (seen when the encoder made its first audio segment 1.5 s after
   * the first video one, on a busy machine).
   */
  mediaPlaylistsReady(): boolean {
    if (this.#mediaReady) return true;
    const tracks = this.listedTracks();
    this.#mediaReady = tracks?.every((track) => this.#segments(track).some((s) => s.complete)) ?? false;
    return this.#mediaReady;
  }

  /**
   * The tracks the multivariant playlist names (renditions this output sheds are left out, unless
   * all are); undefined until every init segment is known.
   */
  listedTracks(): string[] | undefined {
    const renditions = this.session.renditions();
    if (!renditions) return undefined;
    const shown = renditions.video.filter((r) => !this.hidden.has(r.id));
    return [
      ...(shown.length ? shown : renditions.video).map((r) => r.id),
      ...(renditions.audio ? [renditions.audio.id] : []),
    ];
  }

  /**
   * Every playlist starts at the same segment. An encoder starting on a busy machine can make its
   * first audio segment a segment after the first video one; hls.js then starts at the video's
   * first segment and waits for audio that never comes there (a stall of the whole run, seen).
   */
  #startSegment(): bigint | undefined {
    if (this.#commonStart !== undefined) return this.#commonStart;
    const firsts = this.listedTracks()?.map((track) => this.timeline.segments(track)[0]?.msn);
    if (!firsts?.length || firsts.some((first) => first === undefined)) return undefined;
    this.#commonStart = (firsts as bigint[]).reduce(laterOf);
    return this.#commonStart;
  }

  /** The chunk's bytes are available; returns the part it completed (the track's playlist changed). */
  add(chunk: HlsChunk): HlsPart | undefined {
    const part = this.timeline.addChunk(chunk);
    // Classic HLS changes only when a segment completes.
    return this.session.llhls === 'off' && !chunk.segmentComplete ? undefined : part;
  }

  /** The periods (their first segments) that do not have `track`. */
  #absentPeriods(track: string): bigint[] {
    const hasTrack = this.session.hasTrack;
    return hasTrack ? (this.session.periods?.() ?? []).filter((start) => !hasTrack(track, start)) : [];
  }

  /**
   * The track's segments with a gap (EXT-X-GAP) for each segment of a period without it that the
   * other tracks completed: its playlist goes on, numbered as theirs, while it is not encoded, so
   * a player on it moves to another variant, and the media sequence numbers of every variant
   * still name the same media.
   */
  #withAbsence(track: string, own: readonly HlsSegment[]): readonly HlsSegment[] {
    if (!this.#absentPeriods(track).length) return own;
    const reference = new Map<bigint, HlsSegment>();
    // Another video track's segment first: its start and duration are the video grid's (audio's
    // segments follow the AAC frames, a few ms off).
    const video = new Set(this.session.renditions()?.video.map((r) => r.id));
    const others = this.timeline.tracks().filter((t) => t !== track);
    for (const other of [...others.filter((t) => video.has(t)), ...others.filter((t) => !video.has(t))])
      if (other !== track)
        for (const s of this.timeline.segments(other)) if (s.complete && !reference.has(s.msn)) reference.set(s.msn, s);
    const gaps = [...reference.values()]
      .filter((s) => !this.session.hasTrack!(track, s.msn) && !own.some((o) => o.msn === s.msn))
      .map(
        (s): HlsSegment => ({
          msn: s.msn,
          start: s.start,
          duration: s.duration,
          length: 0,
          parts: [],
          complete: true,
          gap: true,
        }),
      );
    if (!gaps.length) return own;
    return [...own, ...gaps].sort((a, b) => (a.msn < b.msn ? -1 : a.msn > b.msn ? 1 : 0));
  }

  #segments(track: string): readonly HlsSegment[] {
    const start = this.#startSegment();
    const all = this.#withAbsence(track, this.timeline.segments(track));
    const segments =
      start === undefined || !all.length || all[0]!.msn >= start ? all : all.filter((s) => s.msn >= start);
    return this.#view ? this.#view(track, segments) : segments;
  }

  /**
   * The track's media playlist; undefined until it names a whole segment. Parts alone are no
   * playlist to hls.js ("No Segments found in Playlist"): after a service restart such a playlist
   * would replace the previous process's at the origin and stall the players reading it.
   */
  media(track: string): string | undefined {
    const segments = this.#segments(track);
    if (!segments.some((s) => s.complete)) return undefined;
    const others = this.timeline
      .tracks()
      .filter((t) => t !== track)
      .flatMap((t) => {
        const position = positionOf(this.#segments(t));
        return position ? [{ track: t, position }] : [];
      });
    return buildMediaPlaylist({
      track,
      segments,
      others,
      timing: this.session.timing,
      names: this.names,
      delivery: this.delivery,
      ended: this.session.ended(),
      periods: this.session.periods?.(),
      absentPeriods: this.#absentPeriods(track),
    });
  }

  /** The multivariant playlist; undefined until every init segment is known and every media playlist exists. */
  multivariant(): string | undefined {
    const renditions = this.session.renditions();
    if (!this.mediaPlaylistsReady()) return undefined;
    // Renditions this output sheds (its uplink is too slow for them) are not offered to new players.
    const video = renditions?.video.filter((r) => !this.hidden.has(r.id));
    return (
      renditions &&
      buildMultivariantPlaylist({
        ...renditions,
        video: video?.length ? video : renditions.video,
        names: this.names,
        delivery: this.delivery,
      })
    );
  }
}
