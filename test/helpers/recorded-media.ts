import { readFile } from 'node:fs/promises';
import { childBoxes, findBox, view } from '../../src/packager/boxes.ts';
import { TrackChunker } from '../../src/packager/chunker.ts';
import { parseMoof } from '../../src/packager/fmp4.ts';
import type { SlateClip } from '../../src/packager/slate.ts';
import { slateClipFrom } from '../../src/encode/slate-encoder.ts';

// Four seconds of a real encoder's output (a 320x180 rendition and AAC), recorded, for tests of
// the packager and the live session that need real fMP4 without running ffmpeg.

const fixture = async (name: string) =>
  new Uint8Array(await readFile(new URL(`../fixtures/media/${name}`, import.meta.url)));

/**
 * The recording with every tfdt moved by `ticks` (a copy): the audio was recorded before audio was
 * put on the epoch frame grid (tfdt mod 1024 = 432); moved by −432 it is what an encoder writes now.
 */
export function shiftedDecodeTimes(bytes: Uint8Array, ticks: bigint): Uint8Array {
  const out = bytes.slice();
  for (const box of childBoxes(out)) {
    if (box.type !== 'moof') continue;
    const tfdt = findBox(box.payload, ['traf', 'tfdt'])!;
    const fields = view(tfdt.payload);
    if (tfdt.payload[0] === 1) fields.setBigUint64(4, fields.getBigUint64(4) + ticks);
    else fields.setUint32(4, Number(BigInt(fields.getUint32(4)) + ticks));
  }
  return out;
}

const recordedAudioOffGrid = await fixture('recorded-audio-4s.mp4');
/** The audio recording's phase against the epoch frame grid (k·1024 samples since 1970). */
export const RECORDED_AUDIO_PHASE = 432n;
export const recorded = {
  '180p': await fixture('recorded-video-320x180-4s.mp4'),
  /** On the epoch frame grid, as every run of the encoder writes it. */
  audio: shiftedDecodeTimes(recordedAudioOffGrid, -RECORDED_AUDIO_PHASE),
  /** As recorded: the grid's phase of one run of an encoder that did not hold it. */
  audioOffGrid: recordedAudioOffGrid,
};
/** The recordings cover 1795219794.0 to 1795219798.0 on the epoch timeline. */
export const T0 = 1_795_219_794;
export const timing = { segdur: 1, cdur: 0.1 };
export const TRACKS = [
  { id: '180p', kind: 'video' as const, bitrate: 300_000 },
  { id: 'audio', kind: 'audio' as const, bitrate: 64_000 },
];
export type RecordedTrack = '180p' | 'audio';
export const RECORDED_TRACKS: readonly RecordedTrack[] = ['180p', 'audio'];

/** A recording as ffmpeg delivered it: the init, then each fragment with its first decode time (seconds). */
export function pieces(bytes: Uint8Array) {
  const boxes = [...childBoxes(bytes)];
  const moovEnd = boxes.find((b) => b.type === 'moov')!;
  const init = bytes.subarray(0, moovEnd.offset + moovEnd.size);
  let timescale = 0;
  const reader = new TrackChunker('probe', timing);
  for (const item of reader.read(init)) if (item.init) timescale = item.init.info.timescale;
  const fragments: { start: number; bytes: Uint8Array }[] = [];
  for (let i = 0; i < boxes.length; i++) {
    const b = boxes[i]!;
    if (b.type !== 'moof') continue;
    const mdat = boxes[i + 1]!;
    const start = Number(parseMoof(b.payload, new Map()).tracks[0]!.baseDecodeTime) / timescale;
    fragments.push({ start, bytes: bytes.subarray(b.offset, mdat.offset + mdat.size) });
  }
  return { init, fragments };
}

/** The slate clip of a track: its init and samples, here the recording's own first second. */
export function clipOf(track: RecordedTrack): SlateClip {
  const { init, samples } = slateClipFrom(track, recorded[track], timing);
  const firstSync = samples.findIndex((s) => s.sync);
  return { init, samples: samples.slice(firstSync, firstSync + (track === 'audio' ? 60 : 30)) };
}

/** Both recordings, split as ffmpeg delivers them. */
export const recordedFeeds = () => ({ '180p': pieces(recorded['180p']), audio: pieces(recorded.audio) });
