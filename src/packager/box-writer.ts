import { fullBoxHeader, TFHD, TRUN } from './box-fields.ts';

/** Pure ISO-BMFF box builders for what the packager writes itself: styp, prft, moof, mdat headers. */

const ascii = new TextEncoder();

export function box(type: string, ...parts: Uint8Array[]): Uint8Array {
  const size = 8 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  const d = new DataView(out.buffer);
  d.setUint32(0, size);
  // A box type is four ASCII letters: written as such, without an encoder call per box.
  for (let i = 0; i < 4; i++) out[4 + i] = type.charCodeAt(i);
  let at = 8;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

/** CMAF segment brands; `lmsg` marks the last segment of a stream, `slat` a slate (DASH-IF ingest). */
export function styp({ last, slate = false }: { last: boolean; slate?: boolean }): Uint8Array {
  const brands = ['cmfs', 'msdh', 'cmfc', 'iso6', ...(slate ? ['slat'] : []), ...(last ? ['lmsg'] : [])];
  return box('styp', ascii.encode('cmfs'), new Uint8Array(4), ...brands.map((b) => ascii.encode(b)));
}

const NTP_EPOCH_OFFSET_SECONDS = 2_208_988_800n;
/** prft flags: the UTC time is when the frame at media_time was captured (ISO/IEC 14496-12). */
export const PRFT_CAPTURED = 24;

/** Producer reference time: this chunk's first media time and the UTC instant it stands for. */
export function prft(trackId: number, mediaTime: bigint, utcMicros: bigint, flags = PRFT_CAPTURED): Uint8Array {
  const body = new Uint8Array(4 + 8 + 8);
  const d = new DataView(body.buffer);
  d.setUint32(0, trackId);
  const seconds = utcMicros / 1_000_000n + NTP_EPOCH_OFFSET_SECONDS;
  const fraction = ((utcMicros % 1_000_000n) << 32n) / 1_000_000n;
  d.setBigUint64(4, (seconds << 32n) | fraction);
  d.setBigUint64(12, mediaTime);
  return box('prft', fullBoxHeader(1, flags), body);
}

export interface OutSample {
  duration: number;
  size: number;
  flags: number;
  compositionOffset: number;
}

/**
 * One CMAF chunk header: mfhd, and a traf with tfhd (base is moof), a 64-bit tfdt and a trun that
 * lists every sample (duration, size, flags, and composition offsets when any is non-zero).
 * The trun's data offset points just past the mdat header that follows the moof.
 */
export function moof(
  sequenceNumber: number,
  trackId: number,
  baseDecodeTime: bigint,
  samples: readonly OutSample[],
): Uint8Array {
  const mfhd = box('mfhd', fullBoxHeader(0, 0), u32(sequenceNumber));
  const tfhd = box('tfhd', fullBoxHeader(0, TFHD.DEFAULT_BASE_IS_MOOF), u32(trackId));
  const tfdtBody = new Uint8Array(8);
  new DataView(tfdtBody.buffer).setBigUint64(0, baseDecodeTime);
  const tfdt = box('tfdt', fullBoxHeader(1, 0), tfdtBody);
  const withCts = samples.some((s) => s.compositionOffset !== 0);
  const perSample = withCts ? 16 : 12;
  const trunBody = new Uint8Array(8 + samples.length * perSample);
  const t = new DataView(trunBody.buffer);
  t.setUint32(0, samples.length);
  samples.forEach((s, i) => {
    const at = 8 + i * perSample;
    t.setUint32(at, s.duration);
    t.setUint32(at + 4, s.size);
    t.setUint32(at + 8, s.flags);
    if (withCts) t.setInt32(at + 12, s.compositionOffset);
  });
  const trunFlags =
    TRUN.DATA_OFFSET |
    TRUN.SAMPLE_DURATION |
    TRUN.SAMPLE_SIZE |
    TRUN.SAMPLE_FLAGS |
    (withCts ? TRUN.SAMPLE_COMPOSITION_TIME_OFFSET : 0);
  // Version 1 trun: signed composition offsets.
  const trun = box('trun', fullBoxHeader(withCts ? 1 : 0, trunFlags), trunBody);
  const traf = box('traf', tfhd, tfdt, trun);
  const out = box('moof', mfhd, traf);
  // data_offset sits right after the trun's sample_count, inside the traf inside the moof.
  const trunOffsetInMoof = 8 + mfhd.length + 8 + tfhd.length + tfdt.length;
  new DataView(out.buffer).setInt32(trunOffsetInMoof + 12 + 4, out.length + 8);
  return out;
}

export function mdatHeader(payloadSize: number): Uint8Array {
  const out = new Uint8Array(8);
  const d = new DataView(out.buffer);
  d.setUint32(0, payloadSize + 8);
  out.set(ascii.encode('mdat'), 4);
  return out;
}

function u32(value: number): Uint8Array {
  const out = new Uint8Array(4);
  new DataView(out.buffer).setUint32(0, value);
  return out;
}
