import type { Profile } from '../config/schema.ts';
import { TrackChunker, type InitEvent, type PackagerEvent } from './chunker.ts';
import { codecString } from './fmp4.ts';
import type { MpdModel } from './mpd.ts';
import type { HlsAudioRendition, HlsVideoRendition } from './hls-playlist.ts';

export interface PackagedTrack {
  id: string;
  kind: 'video' | 'audio';
  bitrate: number;
}

export interface ManifestOptions {
  timeShiftBufferDepth: number;
  utcTimingUrl: string;
}

/**
 * Pure: every track's fMP4 stream → CMAF events, plus the state the manifests are built from.
 * `push` returns the events the bytes completed; nothing waits for later input.
 */
export class Packager {
  readonly #chunkers: Map<string, TrackChunker>;
  readonly #tracks: readonly PackagedTrack[];
  readonly #inits = new Map<string, InitEvent>();
  #firstSegment: bigint | undefined;
  #end: { segment: bigint; last: boolean } | undefined;

  constructor(tracks: readonly PackagedTrack[], timing: { segdur: number; cdur: number }) {
    this.#tracks = tracks;
    this.#chunkers = new Map(tracks.map((t) => [t.id, new TrackChunker(t.id, timing)]));
  }

  push(track: string, piece: Uint8Array): PackagerEvent[] {
    const chunker = this.#chunkers.get(track);
    if (!chunker) throw new Error(`unknown track ${track}`);
    const events = chunker.push(piece);
    for (const event of events) {
      if (event.type === 'init') this.#inits.set(track, event);
      else if (event.type === 'chunk' && event.part === 0 && this.#firstSegment === undefined) this.#firstSegment = event.segment;
    }
    return events;
  }

  /** Every track's init segment has arrived: the manifest can be written. */
  get ready(): boolean {
    return this.#inits.size === this.#tracks.length;
  }

  /** Every track has completed the segment before the requested end. */
  get finished(): boolean {
    return [...this.#chunkers.values()].every((c) => c.finished);
  }

  get firstSegment(): bigint | undefined {
    return this.#firstSegment;
  }

  get end(): { segment: bigint; last: boolean } | undefined {
    return this.#end;
  }

  /** The furthest segment any track has begun or completed. */
  get currentSegment(): bigint | undefined {
    let furthest: bigint | undefined;
    for (const c of this.#chunkers.values()) {
      const s = c.openSegment ?? c.lastCompletedSegment;
      if (s !== undefined && (furthest === undefined || s > furthest)) furthest = s;
    }
    return furthest;
  }

  /** Ends every track before `segment`; with `last`, the final segment carries lmsg. */
  endBefore(segment: bigint, options: { last: boolean }): void {
    this.#end = { segment, ...options };
    for (const c of this.#chunkers.values()) c.endBefore(segment, options);
  }

  /**
   * The HLS variants, once every init is known. BANDWIDTH is the most a segment can carry: capped
   * VBR lets a segment hold maxrate·segdur plus the VBV buffer; AAC stays within 10 % of its rate.
   * A few percent on top cover the CMAF boxes (styp, prft, moof per chunk).
   */
  hlsRenditions(profile: Profile): { video: HlsVideoRendition[]; audio: HlsAudioRendition | undefined } | undefined {
    if (!this.ready) return undefined;
    const info = (id: string) => this.#inits.get(id)!.info;
    const boxes = 1.03;
    const audioTrack = this.#tracks.find((t) => t.kind === 'audio');
    return {
      video: this.#tracks.filter((t) => t.kind === 'video').map((t) => {
        const i = info(t.id);
        const peak = Math.ceil(t.bitrate * (1 + profile.video.vbvBuffer / profile.segdur) * boxes);
        return { id: t.id, codecs: codecString(i), bitrate: t.bitrate, averageBandwidth: Math.ceil(t.bitrate * boxes), peakBandwidth: peak, width: i.width!, height: i.height!, frameRate: profile.video.framerate };
      }),
      audio: audioTrack && {
        id: audioTrack.id,
        codecs: codecString(info(audioTrack.id)),
        bitrate: audioTrack.bitrate,
        averageBandwidth: Math.ceil(audioTrack.bitrate * boxes),
        peakBandwidth: Math.ceil(audioTrack.bitrate * 1.1 * boxes),
        channels: info(audioTrack.id).channels ?? 2,
      },
    };
  }

  /** Pure: the manifest's model from the profile, the tracks' init segments and the options. */
  mpdModel(profile: Profile, options: ManifestOptions, now: Date): MpdModel {
    const info = (id: string) => this.#inits.get(id)!.info;
    const video = this.#tracks.filter((t) => t.kind === 'video');
    const audio = this.#tracks.filter((t) => t.kind === 'audio');
    const audioFrameSeconds = audio.length ? 1024 / (info(audio[0]!.id).sampleRate ?? 48000) : 0;
    const reference = this.#firstSegment ?? BigInt(Math.floor(now.getTime() / 1000 / profile.segdur));
    return {
      publishTime: now,
      segdur: profile.segdur,
      cdur: profile.cdur,
      asto: profile.asto,
      timeShiftBufferDepth: options.timeShiftBufferDepth,
      minimumUpdatePeriod: Math.max(2, profile.segdur),
      maxSegmentDuration: Math.ceil((profile.segdur + audioFrameSeconds) * 1000) / 1000,
      latency: profile.latency,
      utcTimingUrl: options.utcTimingUrl,
      referenceSeconds: Number(reference) * profile.segdur,
      video: video.map((t) => {
        const i = info(t.id);
        return { id: t.id, codecs: codecString(i), bandwidth: t.bitrate, width: i.width!, height: i.height!, frameRate: profile.video.framerate, sar: i.sar ?? '1:1', timescale: i.timescale };
      }),
      audio: audio.map((t) => {
        const i = info(t.id);
        return { id: t.id, codecs: codecString(i), bandwidth: t.bitrate, samplingRate: i.sampleRate!, channels: i.channels!, timescale: i.timescale };
      }),
      // Only once every track has completed its last segment: until then the stream is still live.
      endedAt: this.#end?.last && this.finished ? Number(this.#end.segment) * profile.segdur : undefined,
    };
  }
}
