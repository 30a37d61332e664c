import type { Profile } from '../config/schema.ts';
import { codecString } from './fmp4.ts';
import { hlsTiming, type HlsAudioRendition, type HlsTiming, type HlsVideoRendition } from './hls-playlist.ts';
import type { MpdModel } from './mpd.ts';
import type { ManifestOptions, PackagedTrack, Period } from './packager.ts';

// Pure: what the manifests say of the packager's periods: the MPD's model and the HLS variants.

/**
 * The HLS variants of a period. BANDWIDTH is the most a segment can carry: capped VBR lets a
 * segment hold maxrate·segdur plus the VBV buffer; AAC stays within 10 % of its rate. A few
 * percent on top cover the CMAF boxes (styp, prft, moof per chunk).
 */
export function hlsRenditionsOf(
  tracks: readonly PackagedTrack[],
  period: Period,
  profile: Profile,
): { video: HlsVideoRendition[]; audio: HlsAudioRendition | undefined } {
  const info = (id: string) => period.inits.get(id)!.info;
  const boxes = 1.03;
  const present = tracks.filter((t) => period.inits.has(t.id));
  const audioTrack = present.find((t) => t.kind === 'audio');
  return {
    video: present
      .filter((t) => t.kind === 'video')
      .map((t) => {
        const i = info(t.id);
        const peak = Math.ceil(t.bitrate * (1 + profile.video.vbvBuffer / profile.segdur) * boxes);
        return {
          id: t.id,
          codecs: codecString(i),
          bitrate: t.bitrate,
          averageBandwidth: Math.ceil(t.bitrate * boxes),
          peakBandwidth: peak,
          width: i.width!,
          height: i.height!,
          frameRate: period.frameRate ?? profile.video.framerate,
        };
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

/** Pure: the manifest's model from the profile, the periods' init segments and the options. */
export function mpdModelOf(input: {
  tracks: readonly PackagedTrack[];
  periods: readonly Period[];
  firstSegment: bigint | undefined;
  endedAt: number | undefined;
  profile: Profile;
  options: ManifestOptions;
  now: Date;
}): MpdModel {
  const { tracks, periods, profile, options, now } = input;
  const current = periods.at(-1)!;
  const audio = tracks.filter((t) => t.kind === 'audio');
  const audioFrameSeconds = audio.length ? 1024 / (current.inits.get(audio[0]!.id)!.info.sampleRate ?? 48000) : 0;
  const reference = input.firstSegment ?? BigInt(Math.floor(now.getTime() / 1000 / profile.segdur));
  // Earlier periods stay listed while any of their segments is in the time-shift window.
  const windowStart = BigInt(Math.floor((now.getTime() / 1000 - options.timeShiftBufferDepth) / profile.segdur));
  const earlier = periods.slice(0, -1).filter((_p, i) => periods[i + 1]!.start > windowStart);
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
    ...representationsOf(tracks, profile, current),
    periodStart: current.start,
    earlierPeriods: earlier.map((p) => ({ start: p.start, ...representationsOf(tracks, profile, p) })),
    endedAt: input.endedAt,
  };
}

/** A period's Representations, from its init segments. */
function representationsOf(
  tracks: readonly PackagedTrack[],
  profile: Profile,
  period: Period,
): Pick<MpdModel, 'video' | 'audio'> {
  const present = tracks.filter((t) => period.inits.has(t.id));
  const info = (id: string) => period.inits.get(id)!.info;
  return {
    video: present
      .filter((t) => t.kind === 'video')
      .map((t) => {
        const i = info(t.id);
        return {
          id: t.id,
          codecs: codecString(i),
          bandwidth: t.bitrate,
          width: i.width!,
          height: i.height!,
          frameRate: period.frameRate ?? profile.video.framerate,
          sar: i.sar ?? '1:1',
          timescale: i.timescale,
        };
      }),
    audio: present
      .filter((t) => t.kind === 'audio')
      .map((t) => {
        const i = info(t.id);
        return {
          id: t.id,
          codecs: codecString(i),
          bandwidth: t.bitrate,
          samplingRate: i.sampleRate!,
          channels: i.channels!,
          timescale: i.timescale,
        };
      }),
  };
}

/** The timing every playlist of a session carries (the ladder always has its audio track). */
export function sessionHlsTiming(profile: Profile): HlsTiming {
  return hlsTiming({
    segdur: profile.segdur,
    cdur: profile.cdur,
    partChunks: profile.hls.partChunks,
    audioSampleRate: profile.audio.samplerate,
    tsb: profile.tsb,
    llhls: profile.hls.llhls,
    latencyTarget: profile.latency.target,
  });
}
