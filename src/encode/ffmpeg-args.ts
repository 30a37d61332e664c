import type { Profile, Rendition } from '../config/schema.ts';
import type { Source } from '../capture/source.ts';
import { deviceInputs, type SourceInputs } from '../capture/device-args.ts';
import { fileInputs } from '../capture/file-source.ts';
import { feedInputs } from '../capture/feed-source.ts';
import { clockOverlay, testSourceInputs } from '../capture/test-source.ts';
import { videoFilterGraph, videoLabel } from '../ladder/ladder.ts';
import { lateMsOf } from '../ladder/realtime-steps.ts';
import { audioDetectorFilters, videoDetectorChain } from './detectors.ts';
import { AAC_FRAME_SAMPLES, audioFrameAtOrBefore } from '../timeline/epoch-grid.ts';

export interface TrackOutput {
  /** Names files and URLs: the rendition id, or `audio`. */
  id: string;
  kind: 'video' | 'audio';
  /** The child's file descriptor that carries this track's fragmented MP4. */
  fd: number;
  bitrate: number;
  rendition?: Rendition | undefined;
}

export interface EncoderPlan {
  args: string[];
  /** A feed's MPEG-TS goes in on this fd of the child. */
  inputFd?: number | undefined;
  /** A file source: the wall-clock instant of its media time zero in this plan. */
  anchorSeconds?: number | undefined;
  tracks: TrackOutput[];
  /** Encoder statistics (`-progress`) arrive on the child's stdout. */
  progressFd: 1;
}

/** Per-track outputs start after stdin, stdout (progress) and stderr. */
export const FIRST_TRACK_FD = 3;
export const VIDEO_TIMESCALE = 90_000;
/** A run's audio starts on the grid this long before the run starts: before any stamp it can have. */
export const AUDIO_GRID_LEAD_MS = 100;

const micros = (seconds: number) => String(Math.floor(seconds * 1e6));

/**
 * Fragmented MP4 with absolute (epoch) decode times: `-copyts` keeps the wall-clock stamps,
 * `frag_discont` + `make_non_negative` stop the muxer from rebasing each output to 0.
 */
function muxArgs(fragmentSeconds: number): string[] {
  return [
    '-f',
    'mp4',
    '-movflags',
    '+empty_moov+default_base_moof+frag_keyframe+frag_discont+skip_trailer+cmaf',
    '-avoid_negative_ts',
    'make_non_negative',
    '-frag_duration',
    micros(fragmentSeconds),
  ];
}

export function videoEncoderArgs(profile: Profile, rendition: Rendition): string[] {
  const gop = String(Math.round(profile.idr * profile.video.framerate));
  return [
    '-c:v',
    'libx264',
    // The encoder's rate, not ffmpeg's guess from the input's wall-clock stamps (29.92 in one
    // start in ~13 here): the guess goes into the SPS timing (a new init, so a new period, at
    // every restart that guesses otherwise) and paces ffmpeg's frame dup/drop off the 1/30 grid.
    '-r',
    String(profile.video.framerate),
    '-preset',
    profile.video.preset,
    '-tune',
    'zerolatency',
    '-profile:v',
    'high',
    '-pix_fmt',
    'yuv420p',
    '-bf',
    '0',
    '-g',
    gop,
    '-keyint_min',
    gop,
    '-sc_threshold',
    '0',
    // `t` counts from the first encoded frame, which the filter graph put on a segment boundary.
    '-force_key_frames',
    `expr:gte(t,n_forced*${profile.idr})`,
    '-b:v',
    String(rendition.bitrate),
    '-maxrate',
    String(rendition.bitrate),
    '-bufsize',
    String(Math.round(rendition.bitrate * profile.video.vbvBuffer)),
    // x264 starts with the VBV buffer 90 % full and spends it in the first second (+12–21 %
    // measured); half full keeps every 1 s segment within ±6 % of the rate on testsrc2 and mandelbrot.
    '-x264-params',
    'vbv-init=0.5',
    '-video_track_timescale',
    String(VIDEO_TIMESCALE),
  ];
}

/** The AAC encoder and the audio track's fMP4 muxer, up to its output. */
export function audioEncoderArgs(profile: Profile): string[] {
  return [
    '-c:a',
    'aac',
    '-b:a',
    String(profile.audio.bitrate),
    '-ar',
    String(profile.audio.samplerate),
    '-ac',
    String(profile.audio.channels),
    // One AAC frame per fragment: the packager groups 4–5 into a chunk and closes each chunk on its
    // own last frame; with cdur-long fragments (5 frames) a 4-frame chunk waited for the fifth.
    ...muxArgs(AAC_FRAME_SAMPLES / profile.audio.samplerate),
  ];
}

/**
 * The slate's inputs: a "signal lost" card at the source's size and silence, not paced (encoded as
 * fast as ffmpeg can), long enough for one segment of video and a few more AAC frames.
 */
function slateInputs(source: { width: number; height: number }, profile: Profile): string[] {
  const seconds = String(profile.segdur + 0.5);
  const scale = source.height / 1080;
  const card = [
    `color=c=0x1b1f24:size=${source.width}x${source.height}:rate=${profile.video.framerate}`,
    `drawtext=font=sans:text='SIGNAL LOST':fontcolor=white:fontsize=${Math.round(120 * scale)}:x=(w-text_w)/2:y=(h-text_h)/2-${Math.round(60 * scale)}`,
    `drawtext=font=sans:text='the picture returns by itself':fontcolor=0xb0b8c0:fontsize=${Math.round(48 * scale)}:x=(w-text_w)/2:y=(h/2)+${Math.round(60 * scale)}`,
  ].join(',');
  return [
    '-f',
    'lavfi',
    '-t',
    seconds,
    '-i',
    card,
    '-f',
    'lavfi',
    '-t',
    seconds,
    '-i',
    `anullsrc=r=${profile.audio.samplerate}:cl=stereo`,
  ];
}

/** Pure: the source's inputs and the streams the graph takes (the test source: video 0, audio 1); which of them carry media time less the plan's anchor. */
export function sourceInputs(
  profile: Profile,
  source: Source,
  inputFd: number,
): SourceInputs & { anchored?: { video: boolean; audio: boolean } } {
  const audio = { samplerate: profile.audio.samplerate, channels: profile.audio.channels };
  if (source.kind === 'feed') return feedInputs(source, inputFd, audio);
  if (source.kind === 'file') return fileInputs(source, audio);
  if (source.kind === 'device') return deviceInputs(source, audio);
  return {
    args: testSourceInputs(source, profile.video.framerate, profile.audio.samplerate),
    video: '0:v',
    audio: '1:a',
  };
}

/**
 * A/V sync: audio is made to follow its wall-clock stamps, which video follows too. A sound card's
 * sample clock drifts from the wall clock (±100 ppm is common; 1 ms every 10 s): soft compensation
 * stretches or squeezes audio by at most 0.2 % (inaudible) while it is off by more than 1 ms; a
 * step of more than 100 ms (a device losing samples) is filled with silence or trimmed at once.
 * A hard threshold of one frame also fired on scheduling jitter of the wall-clock stamps under load.
 * `flags=res` runs the resampler from the first sample: at equal rates libswresample otherwise
 * starts in bypass and re-initialises when compensation first begins, and its timeline then jumps
 * by the filter's delay (16–200 samples, a gap in the AAC track; measured on ffmpeg 5.1).
 *
 * The epoch grid: with `firstSample` (a grid frame's start, in samples since 1970), the output's
 * first sample is that one — silence pads up to the first real sample, or the samples before it
 * are trimmed — and from there the output's sample count is continuous (compensation inserts or
 * drops samples inside it), so the encoder's AAC frames, and its priming frame before them, fall
 * on k·1024 in every run. `first_pts` counts the filter's input samples (ffmpeg 5.1): the rate is
 * converted first, so input and output rates are the profile's.
 */
export function audioSyncFilter(profile: Profile, firstSample?: bigint): string {
  const rate = profile.audio.samplerate;
  const maxStretchPerSecond = Math.round(rate * 0.002);
  const sync = `aresample=async=${maxStretchPerSecond}:min_hard_comp=0.1:flags=res`;
  return firstSample === undefined ? sync : `aresample=${rate},${sync}:first_pts=${firstSample}`;
}

/**
 * Pure: profile + source + ladder → the complete ffmpeg argv (without the binary) and its outputs.
 * With `slate`, the same outputs and encoder settings (so the same init segments) encode the slate.
 */
export interface PlanOptions {
  /** Encode the slate instead of the source. */
  slate?: boolean;
  /** A file or feed source: the wall-clock instant (seconds since 1970) of its media time zero. */
  anchorSeconds?: number;
  /**
   * When the run starts (ms since 1970): its audio is put on the epoch grid from the grid frame
   * `AUDIO_GRID_LEAD_MS` before it. Without it (the slate, re-stamped by the packager) audio
   * starts wherever its first sample is.
   */
  startMs?: number;
  /**
   * `appliance check`'s CPU probe: the test source's whole live graph (clock, detectors, audio,
   * every rendition) for this long, as fast as the machine can (the test source only), stamped
   * from the boundary at or after `startMs`.
   */
  probeSeconds?: number;
}

/** `setpts` adding the wall-clock instant of media zero, in the stream's own time base. */
const anchorFilter = (name: 'setpts' | 'asetpts', seconds: number) => `${name}=PTS+${seconds.toFixed(6)}/TB`;

export function buildEncoderPlan(
  profile: Profile,
  source: Source,
  renditions: readonly Rendition[],
  options: PlanOptions = {},
): EncoderPlan {
  const tracks: TrackOutput[] = [
    ...renditions.map((rendition, i) => ({
      id: rendition.id,
      kind: 'video' as const,
      fd: FIRST_TRACK_FD + i,
      bitrate: rendition.bitrate,
      rendition,
    })),
    { id: 'audio', kind: 'audio', fd: FIRST_TRACK_FD + renditions.length, bitrate: profile.audio.bitrate },
  ];
  const live = !options.slate;
  const inputFd = FIRST_TRACK_FD + tracks.length;
  const feed = live && source.kind === 'feed' ? source : undefined;
  const probe =
    options.probeSeconds !== undefined && source.kind === 'test'
      ? {
          source,
          seconds: options.probeSeconds,
          startSeconds: Math.ceil((options.startMs ?? 0) / 1000 / profile.segdur) * profile.segdur,
        }
      : undefined;
  const inputs = probe
    ? {
        args: testSourceInputs(probe.source, profile.video.framerate, profile.audio.samplerate, probe),
        video: '0:v',
        audio: '1:a',
      }
    : live
      ? sourceInputs(profile, source, inputFd)
      : { args: slateInputs(source, profile), video: '0:v', audio: '1:a' };
  const file = live && source.kind === 'file' ? source : undefined;
  const played = file ?? feed;
  const anchored = live ? inputs.anchored : undefined;
  if (anchored && options.anchorSeconds === undefined)
    throw new Error(`a ${source.kind} source needs the wall-clock instant of its media time zero`);
  const captureRate = live && source.kind === 'device' ? source.video?.choice.captureRate : played?.captureRate;
  const prelude = played
    ? [
        ...(played.deinterlace ? ['bwdif=mode=send_frame:deint=interlaced'] : []),
        ...(anchored?.video ? [anchorFilter('setpts', options.anchorSeconds!)] : []),
      ]
    : [];
  // The burnt-in clock is for synthetic and camera pictures; a file's or a feed's picture is left as it is.
  const overlay = live && !played ? clockOverlay(source.height) : undefined;
  // Passthrough: the feed's H.264 as it came (the restamper put its keyframes on the boundaries).
  const copied = feed && profile.video.passthrough && feed.hasVideo;
  if (copied && renditions.length !== 1) throw new Error('a copied feed is exactly one rendition');
  const args = [
    // Tagged lines: each logged at its level; info brings the detectors' marks (see ffmpeg-log).
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'level+info',
    '-progress',
    'pipe:1',
    '-stats_period',
    '1',
    ...inputs.args,
    '-copyts',
    ...(file ? ['-start_at_zero'] : []),
    ...(copied
      ? []
      : [
          '-filter_complex',
          videoFilterGraph({
            profile,
            renditions,
            source,
            input: inputs.video,
            captureRate,
            prelude,
            overlay,
            detectors: live ? videoDetectorChain(profile.alarms) : undefined,
            // A file's or a feed's frames come in bursts by nature: late is not a backlog there; the
            // CPU probe runs faster than real time on stamps of its own.
            dropLateSeconds: live && !played && !probe ? lateMsOf(profile) / 1000 : undefined,
          }),
        ]),
  ];
  if (copied) {
    args.push(
      '-map',
      inputs.video,
      '-c:v',
      'copy',
      '-output_ts_offset',
      options.anchorSeconds!.toFixed(6),
      ...muxArgs(profile.cdur),
      `pipe:${FIRST_TRACK_FD}`,
    );
  } else {
    renditions.forEach((rendition, i) => {
      args.push(
        '-map',
        `[${videoLabel(i)}]`,
        ...videoEncoderArgs(profile, rendition),
        ...muxArgs(profile.cdur),
        `pipe:${FIRST_TRACK_FD + i}`,
      );
    });
  }
  // Audio gets its own simple graph: inside the video's complex graph ffmpeg 5.1 starved it.
  args.push(
    '-map',
    inputs.audio,
    '-af',
    [
      ...(anchored?.audio ? [anchorFilter('asetpts', options.anchorSeconds!)] : []),
      audioSyncFilter(
        profile,
        live && options.startMs !== undefined
          ? audioFrameAtOrBefore(options.startMs - AUDIO_GRID_LEAD_MS, profile.audio.samplerate)
          : undefined,
      ),
      ...(live ? audioDetectorFilters(profile.alarms) : []),
    ].join(','),
    ...audioEncoderArgs(profile),
    `pipe:${tracks.at(-1)!.fd}`,
  );
  return {
    args,
    tracks,
    progressFd: 1,
    ...(anchored ? { anchorSeconds: options.anchorSeconds } : {}),
    ...(feed ? { inputFd } : {}),
  };
}

/** POSIX-shell quoting, so a printed command line can be pasted and run as is. */
export function shellQuote(argv: readonly string[]): string {
  return argv.map((a) => (/^[\w@%+=,./:-]+$/.test(a) ? a : `'${a.replace(/'/g, `'\\''`)}'`)).join(' ');
}
