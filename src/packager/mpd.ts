import { XMLBuilder } from 'fast-xml-parser';
import { laterOf } from '../timeline/bigint.ts';
import { audioSegmentStart } from '../timeline/epoch-grid.ts';
import { segmentTemplate as templateNames } from '../layout/object-names.ts';

/** Everything the LL-DASH manifest says, as data; the MPD is rebuilt from it, never patched. */
export interface MpdModel {
  publishTime: Date;
  segdur: number;
  cdur: number;
  asto: number;
  timeShiftBufferDepth: number;
  minimumUpdatePeriod: number;
  /** Longest segment of any track (audio segments of 47 AAC frames run past segdur). */
  maxSegmentDuration: number;
  latency: { target: number; min: number; max: number; playbackRate: { min: number; max: number } };
  utcTimingUrl: string;
  /** A wall-clock instant on the epoch timeline (a segment start), for ProducerReferenceTime. */
  referenceSeconds: number;
  video: VideoRepresentation[];
  audio: AudioRepresentation[];
  /**
   * The first segment of the current period (0: the whole timeline, PT0S). Encoder restarts with
   * another init start new periods; earlier ones still in the time-shift window come first.
   */
  periodStart?: bigint | undefined;
  earlierPeriods?: { start: bigint; video: VideoRepresentation[]; audio: AudioRepresentation[] }[] | undefined;
  /** Set once the stream has ended (after --duration): the end on the epoch timeline, in seconds. */
  endedAt?: number | undefined;
  /**
   * Set for origins that serve only complete files: the segments each content type may announce
   * (those the origin acknowledged), listed in a SegmentTimeline instead of a open-ended template.
   */
  announced?: { video?: SegmentRun | undefined; audio?: SegmentRun | undefined } | undefined;
}

export interface SegmentRun {
  first: bigint;
  last: bigint;
}

export interface VideoRepresentation {
  id: string;
  codecs: string;
  bandwidth: number;
  width: number;
  height: number;
  frameRate: number;
  sar: string;
  timescale: number;
}

export interface AudioRepresentation {
  id: string;
  codecs: string;
  bandwidth: number;
  samplingRate: number;
  channels: number;
  timescale: number;
}

export const MPD_PROFILES = [
  'urn:mpeg:dash:profile:isoff-live:2011',
  'urn:mpeg:dash:profile:cmaf:2019',
  'http://www.dashif.org/guidelines/low-latency-live-v5',
].join(',');

const HTTP_ISO = 'urn:mpeg:dash:utc:http-iso:2014';

/** xs:duration with millisecond precision, e.g. PT0.9S, PT30S. */
export function isoDuration(seconds: number): string {
  return `PT${Number(seconds.toFixed(3))}S`;
}

const gcd = (a: number, b: number): number => (b ? gcd(b, a % b) : a);
const ratio = (w: number, h: number) => `${w / gcd(w, h)}:${h / gcd(w, h)}`;
const ms = (seconds: number) => Math.round(seconds * 1000);

/** The span of one Period: its first segment and the first of the next (undefined: open-ended). */
interface PeriodSpan {
  start: bigint;
  end: bigint | undefined;
}

/**
 * Audio segments as they are: each from its grid frame to the next one's (46 or 47 AAC frames at
 * 48 kHz and 1 s), equal neighbours folded into one S with @r. `run` is at most the time-shift
 * window long.
 */
function audioTimeline(run: SegmentRun, segdur: number, timescale: number) {
  const entries: { '@_t'?: string; '@_d': number; '@_r'?: number }[] = [];
  let start = audioSegmentStart(run.first, segdur, timescale);
  for (let n = run.first; n <= run.last; n++) {
    const next = audioSegmentStart(n + 1n, segdur, timescale);
    const d = Number(next - start);
    const previous = entries.at(-1);
    if (previous?.['@_d'] === d) previous['@_r'] = (previous['@_r'] ?? 0) + 1;
    else entries.push(entries.length ? { '@_d': d } : { '@_t': start.toString(), '@_d': d });
    start = next;
  }
  return entries;
}

function segmentTemplate(model: MpdModel, timescale: number, contentType: 'video' | 'audio', span: PeriodSpan) {
  const duration = Math.round(model.segdur * timescale);
  const announced = model.announced?.[contentType];
  // A generic origin's acknowledged run, within this period.
  const run = announced && {
    first: laterOf(announced.first, span.start),
    last: span.end !== undefined && announced.last >= span.end ? span.end - 1n : announced.last,
  };
  const offset = span.start > 0n ? { '@_presentationTimeOffset': (span.start * BigInt(duration)).toString() } : {};
  const timing = run
    ? {
        '@_startNumber': run.first.toString(),
        ...offset,
        SegmentTimeline:
          run.last >= run.first
            ? {
                S:
                  contentType === 'audio'
                    ? audioTimeline(run, model.segdur, timescale)
                    : {
                        '@_t': (run.first * BigInt(duration)).toString(),
                        '@_d': duration,
                        '@_r': (run.last - run.first).toString(),
                      },
              }
            : undefined,
      }
    : { '@_duration': duration, '@_startNumber': span.start.toString(), ...offset };
  return {
    '@_timescale': timescale,
    ...(run ? {} : timing),
    '@_initialization': templateNames(span.start).initialization,
    '@_media': templateNames(span.start).media,
    ...(run ? timing : {}),
    // asto 0 (no early availability) is no low-latency template: leave both attributes out.
    ...(model.asto > 0 ? { '@_availabilityTimeOffset': model.asto, '@_availabilityTimeComplete': 'false' } : {}),
  };
}

function producerReferenceTime(model: MpdModel, timescale: number, span: PeriodSpan) {
  // A media time of the period itself: its start when the reference lies outside it.
  const periodStart = Number(span.start) * model.segdur;
  const periodEnd = span.end === undefined ? Infinity : Number(span.end) * model.segdur;
  const reference =
    model.referenceSeconds >= periodStart && model.referenceSeconds < periodEnd ? model.referenceSeconds : periodStart;
  return {
    '@_id': 0,
    '@_type': 'captured',
    '@_inband': 'true',
    '@_wallClockTime': new Date(reference * 1000).toISOString(),
    '@_presentationTime': Math.round(reference * timescale),
    UTCTiming: { '@_schemeIdUri': HTTP_ISO, '@_value': model.utcTimingUrl },
  };
}

function resync(model: MpdModel, timescale: number) {
  return { '@_type': 0, '@_dT': Math.round(model.cdur * timescale), '@_marker': 'true' };
}

/** One AdaptationSet: what video and audio sets share, around their own attributes and Representations. */
function adaptationSet(
  model: MpdModel,
  span: PeriodSpan,
  id: number,
  contentType: 'video' | 'audio',
  timescale: number,
  attributes: Record<string, unknown>,
  representations: Record<string, unknown>[],
) {
  return {
    '@_id': id,
    '@_contentType': contentType,
    '@_mimeType': `${contentType}/mp4`,
    '@_segmentAlignment': 'true',
    '@_startWithSAP': 1,
    ...attributes,
    ProducerReferenceTime: producerReferenceTime(model, timescale, span),
    Role: { '@_schemeIdUri': 'urn:mpeg:dash:role:2011', '@_value': 'main' },
    SegmentTemplate: segmentTemplate(model, timescale, contentType, span),
    Representation: representations,
  };
}

function representation(
  model: MpdModel,
  r: { id: string; codecs: string; bandwidth: number; timescale: number },
  attributes: Record<string, unknown>,
  children: Record<string, unknown> = {},
) {
  return {
    '@_id': r.id,
    '@_codecs': r.codecs,
    '@_bandwidth': r.bandwidth,
    ...attributes,
    ...children,
    Resync: resync(model, r.timescale),
  };
}

/** One Period's AdaptationSets: the video renditions and the audio. */
function periodSets(model: MpdModel, span: PeriodSpan, videos: VideoRepresentation[], audios: AudioRepresentation[]) {
  const adaptationSets = [];
  const video = videos[0];
  if (video) {
    const size = {
      '@_maxWidth': Math.max(...videos.map((r) => r.width)),
      '@_maxHeight': Math.max(...videos.map((r) => r.height)),
    };
    adaptationSets.push(
      adaptationSet(
        model,
        span,
        0,
        'video',
        video.timescale,
        { ...size, '@_par': ratio(video.width, video.height), '@_frameRate': video.frameRate },
        videos.map((r) =>
          representation(model, r, {
            '@_width': r.width,
            '@_height': r.height,
            '@_frameRate': r.frameRate,
            '@_sar': r.sar,
          }),
        ),
      ),
    );
  }
  const audio = audios[0];
  if (audio) {
    adaptationSets.push(
      adaptationSet(
        model,
        span,
        1,
        'audio',
        audio.timescale,
        {},
        audios.map((r) =>
          representation(
            model,
            r,
            { '@_audioSamplingRate': r.samplingRate },
            {
              AudioChannelConfiguration: {
                '@_schemeIdUri': 'urn:mpeg:dash:23003:3:audio_channel_configuration:2011',
                '@_value': r.channels,
              },
            },
          ),
        ),
      ),
    );
  }
  return adaptationSets;
}

/**
 * Pure: the MPD posted to a CMAF ingest receiver (DASH-IF Live Media Ingest, Interface-1), from
 * which it names the tracks: a single Period at PT0S (startNumber 0: $Number$ counts segments
 * since 1970, as every segment name does), the tracks being sent under their names there, no
 * low-latency offset, no end.
 */
export function cmafIngestModel(model: MpdModel, streamName: (track: string) => string): MpdModel {
  return {
    ...model,
    asto: 0,
    periodStart: 0n,
    earlierPeriods: [],
    endedAt: undefined,
    announced: undefined,
    video: model.video.map((r) => ({ ...r, id: streamName(r.id) })),
    audio: model.audio.map((r) => ({ ...r, id: streamName(r.id) })),
  };
}

/** Pure: the model → the MPD document. */
export function buildMpd(model: MpdModel): string {
  const ended = model.endedAt !== undefined;
  const periods = [
    ...(model.earlierPeriods ?? []),
    { start: model.periodStart ?? 0n, video: model.video, audio: model.audio },
  ];
  const Period = periods.map((p, i) => {
    const span = { start: p.start, end: periods[i + 1]?.start };
    return {
      '@_id': String(p.start),
      '@_start': isoDuration(Number(p.start) * model.segdur),
      AdaptationSet: periodSets(model, span, p.video, p.audio),
    };
  });
  const document = {
    '?xml': { '@_version': '1.0', '@_encoding': 'UTF-8' },
    MPD: {
      '@_xmlns': 'urn:mpeg:dash:schema:mpd:2011',
      '@_profiles': MPD_PROFILES,
      '@_type': 'dynamic',
      '@_availabilityStartTime': '1970-01-01T00:00:00Z',
      '@_publishTime': model.publishTime.toISOString(),
      // An ended stream stops asking for updates and states where it ends (DASH-IF IOP).
      ...(ended
        ? { '@_mediaPresentationDuration': isoDuration(model.endedAt!) }
        : { '@_minimumUpdatePeriod': isoDuration(model.minimumUpdatePeriod) }),
      '@_timeShiftBufferDepth': isoDuration(model.timeShiftBufferDepth),
      '@_maxSegmentDuration': isoDuration(model.maxSegmentDuration),
      '@_minBufferTime': isoDuration(model.segdur),
      ServiceDescription: {
        '@_id': 0,
        Latency: {
          '@_referenceId': 0,
          '@_target': ms(model.latency.target),
          '@_min': ms(model.latency.min),
          '@_max': ms(model.latency.max),
        },
        PlaybackRate: { '@_min': model.latency.playbackRate.min, '@_max': model.latency.playbackRate.max },
      },
      Period: Period.length === 1 ? Period[0] : Period,
      UTCTiming: { '@_schemeIdUri': HTTP_ISO, '@_value': model.utcTimingUrl },
    },
  };
  const builder = new XMLBuilder({
    ignoreAttributes: false,
    attributeNamePrefix: '@_',
    format: true,
    indentBy: '  ',
    suppressEmptyNode: true,
    suppressBooleanAttributes: false,
  });
  return builder.build(document) as string;
}
