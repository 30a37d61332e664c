import type { Profile, Rendition } from '../config/schema.ts';
import type { Source } from '../capture/source.ts';
import { sourceSpecOf } from '../capture/source.ts';
import { isInterlaced, type InputInfo } from '../capture/media-info.ts';
import { ConfigError } from '../errors.ts';

// Pure: whether the source's H.264 may be copied instead of encoded (the profile's
// video.passthrough). A copy is the source's pictures as they are: one rendition, at the
// source's size and rate; an encoded rendition beside it would not share its IDRs, so a ladder
// that needs one is refused rather than mixed.

export const PASSTHROUGH_FIELD = 'video.passthrough';

/** The one rendition copied from the source, and the line that says so; a ConfigError naming what stops it. */
export function passthroughRendition(
  profile: Profile,
  source: Source,
  info: InputInfo | undefined,
  renditions: readonly Rendition[],
): { rendition: Rendition; reason: string } {
  const refuse = (why: string) =>
    new ConfigError(`${PASSTHROUGH_FIELD}: ${why}; or set ${PASSTHROUGH_FIELD} to false to encode the source`);
  if (source.kind !== 'feed')
    throw refuse(
      `only a UDP or SRT feed is copied (its H.264 as sent); the source is ${sourceSpecOf(source)}, which is encoded`,
    );
  const video = info?.video;
  if (!video) throw refuse(`the feed ${sourceSpecOf(source)} has no video to copy`);
  if (video.codec !== 'h264')
    throw refuse(`the feed's video is ${video.codec}; only H.264 is copied (the ladder is H.264)`);
  if (isInterlaced(video)) throw refuse(`the feed is interlaced (${video.fieldOrder}); a copy cannot be deinterlaced`);
  if (video.framerate !== source.framerate || source.captureRate !== undefined) {
    throw refuse(
      `the feed runs at ${video.framerate ?? 'an unknown rate of'} fps; a copy keeps its rate, which must be whole frames per segment (e.g. 25, 30, 50)`,
    );
  }
  const size = `${source.width}x${source.height}`;
  const encoded = renditions.filter((r) => r.width !== source.width || r.height !== source.height);
  if (encoded.length) {
    throw refuse(
      `a copy is the feed's ${size} as is, and every rendition must be copied (an encoded one would not share its IDRs); ${encoded.map((r) => `${r.id} (${r.width}x${r.height})`).join(', ')} would be encoded: remove ${encoded.length > 1 ? 'them' : 'it'} from video.renditions`,
    );
  }
  if (renditions.length > 1)
    throw refuse(
      `renditions ${renditions.map((r) => r.id).join(', ')} would be the same copy of the feed's ${size}: keep one`,
    );
  const rendition = renditions[0]!;
  return {
    rendition,
    reason: `video: copied from the feed as ${rendition.id} (H.264 ${size} at ${video.framerate} fps, not re-encoded; profile ${profile.name})`,
  };
}

/** Every segment must start with one of the copied stream's keyframes: their interval must divide the segment. */
export function checkKeyframeInterval(interval: number, segdur: number): void {
  const perSegment = segdur / interval;
  if (Math.abs(perSegment - Math.round(perSegment)) > 1e-6 || Math.round(perSegment) < 1) {
    throw new ConfigError(
      `${PASSTHROUGH_FIELD}: the feed's keyframes come every ${interval.toFixed(3)} s; a copy needs one at the start of every ${segdur} s segment: set the sender's keyframe interval (GOP) to ${segdur} s, or a whole fraction of it, or set ${PASSTHROUGH_FIELD} to false to encode the source`,
    );
  }
}
