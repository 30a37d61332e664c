import { isAbsolute, resolve } from 'node:path';
import type { Profile } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import { lavfiInput, standInCard, standInSilence, type AudioFormat, type SourceInputs } from './device-args.ts';
import { isInterlaced, type InputInfo } from './media-info.ts';
import { sourceRate } from './negotiate.ts';

// Pure: a media file played out in real time as a live source, and the rules any source of
// known streams follows (size, rate, interlace, missing audio or video).

export interface FileRequest {
  kind: 'file';
  path: string;
}

/** What the graph takes from a source of known streams (a file, a feed). */
export interface PlayedStreams {
  hasVideo: boolean;
  hasAudio: boolean;
  width: number;
  height: number;
  framerate: number;
  /** The source's own rate when the timeline decimates it (60 → 30). */
  captureRate: number | undefined;
  deinterlace: boolean;
}

export interface FileSource extends PlayedStreams {
  kind: 'file';
  path: string;
  /** Played again from the start when it ends (`--loop`); otherwise the stream ends with it. */
  loop: boolean;
  /** Seconds of media; undefined when ffmpeg could not tell. */
  duration: number | undefined;
}

export const parseFileSpec = (spec: string, cwd: string): FileRequest => {
  const path = spec.slice('file:'.length);
  if (!path)
    throw new ConfigError(
      `--source "${spec}": a path is missing; accepted: file:PATH (absolute, or relative to the working directory)`,
    );
  return { kind: 'file', path: isAbsolute(path) ? path : resolve(cwd, path) };
};

/** Pure: the rules every source of known streams follows (size, rate, interlace, missing audio or video), one line per decision. */
export function streamPolicy(info: InputInfo, profile: Profile): { streams: PlayedStreams; reasons: string[] } {
  const top = profile.video.renditions[0]!;
  const reasons: string[] = [];
  const video = info.video;
  const rate = sourceRate(video?.framerate, {
    width: top.width,
    height: top.height,
    framerate: profile.video.framerate,
    segdur: profile.segdur,
    idr: profile.idr,
  });
  const deinterlace = Boolean(video && isInterlaced(video));
  if (video) {
    reasons.push(
      `video: ${video.codec} ${video.width}x${video.height}${video.framerate ? ` at ${video.framerate} fps` : ''}; ${rate.note}`,
    );
    if (deinterlace) reasons.push(`video is interlaced (${video.fieldOrder}): deinterlaced (bwdif, a frame per frame)`);
  } else reasons.push('no video: a card ("AUDIO ONLY") stands in for it');
  if (info.audio)
    reasons.push(
      `audio: ${info.audio.codec} ${info.audio.sampleRate} Hz ${info.audio.layout}, taken at ${profile.audio.samplerate} Hz, ${profile.audio.channels} channel(s)`,
    );
  else reasons.push('no audio: silence, so the audio track exists');
  const streams: PlayedStreams = {
    hasVideo: Boolean(video),
    hasAudio: Boolean(info.audio),
    width: video?.width ?? top.width,
    height: video?.height ?? top.height,
    framerate: rate.framerate,
    captureRate: video && rate.captureRate > rate.framerate * 1.01 ? rate.captureRate : undefined,
    deinterlace,
  };
  return { streams, reasons };
}

/** Pure: what the file holds → how it is played, with one line per decision for the log and --dry-run. */
export function fileSourcePolicy(
  request: FileRequest,
  info: InputInfo,
  profile: Profile,
  loop: boolean,
): { source: FileSource; reasons: string[] } {
  if (info.error) throw new ConfigError(`--source file:${request.path}: ffmpeg cannot open it: ${info.error}`);
  if (!info.video && !info.audio)
    throw new ConfigError(
      `--source file:${request.path}: neither a video nor an audio stream in it; a media file with H.264, HEVC, MPEG-2, … video and/or AAC, MP3, AC-3, … audio is accepted`,
    );
  if (loop && info.duration === undefined)
    throw new ConfigError(`--loop: file:${request.path} has no known duration, so it cannot be looped`);
  const shortest = 2 * profile.segdur + 1;
  if (!loop && info.duration !== undefined && info.duration < shortest)
    throw new ConfigError(
      `--source file:${request.path}: ${info.duration} s is too short to play once (at least ${shortest} s: two whole segments); add --loop to repeat it`,
    );
  const { streams, reasons } = streamPolicy(info, profile);
  reasons.push(
    loop
      ? `looped (${info.duration} s)`
      : `played once${info.duration ? ` (${info.duration} s)` : ''}: the stream ends with it`,
  );
  return { source: { kind: 'file', path: request.path, loop, duration: info.duration, ...streams }, reasons };
}

/** The inputs the graph maps for a source of known streams: its own, or (missing) the stand-in after it. */
export function playedStreamMaps(source: PlayedStreams): { video: string; audio: string } {
  return {
    video: source.hasVideo ? '0:v:0' : '1:v',
    audio: source.hasAudio ? '0:a:0' : `${source.hasVideo ? 1 : 2}:a`,
  };
}

/**
 * Pure: the file's inputs. `-re` releases packets at their own pace on this machine's clock (no
 * drift to follow), `-stream_loop -1` continues the timestamps across loops; the media starts at
 * zero (`-start_at_zero`) and the graph adds the wall-clock instant of that zero, one number for
 * every stream, so the file's own A/V relation is kept exactly.
 */
export function fileInputs(
  source: FileSource,
  audio: AudioFormat,
): SourceInputs & { anchored: { video: boolean; audio: boolean } } {
  const args = [
    '-re',
    ...(source.loop ? ['-stream_loop', '-1'] : []),
    '-thread_queue_size',
    '512',
    '-i',
    source.path,
    // A missing stream's stand-in is paced like the file and rebased like it, so it is anchored too.
    ...(source.hasVideo ? [] : lavfiInput(standInCard(source.width, source.height, source.framerate))),
    ...(source.hasAudio ? [] : lavfiInput(standInSilence(audio))),
  ];
  return { args, ...playedStreamMaps(source), anchored: { video: true, audio: true } };
}
