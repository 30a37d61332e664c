// The fields of the ISO-BMFF boxes the packager reads and writes (ISO/IEC 14496-12), named once:
// fmp4.ts reads with these names what box-writer.ts writes with them.

/** tfhd flags: which optional fields follow the track_ID. */
export const TFHD = {
  BASE_DATA_OFFSET: 0x00_0001,
  SAMPLE_DESCRIPTION_INDEX: 0x00_0002,
  DEFAULT_SAMPLE_DURATION: 0x00_0008,
  DEFAULT_SAMPLE_SIZE: 0x00_0010,
  DEFAULT_SAMPLE_FLAGS: 0x00_0020,
  DEFAULT_BASE_IS_MOOF: 0x02_0000,
} as const;

/** trun flags: the optional data offset and first-sample flags, and which fields each sample carries. */
export const TRUN = {
  DATA_OFFSET: 0x000_001,
  FIRST_SAMPLE_FLAGS: 0x000_004,
  SAMPLE_DURATION: 0x000_100,
  SAMPLE_SIZE: 0x000_200,
  SAMPLE_FLAGS: 0x000_400,
  SAMPLE_COMPOSITION_TIME_OFFSET: 0x000_800,
} as const;

/** sample_flags: `sample_is_non_sync_sample` (clear on a sync sample, an IDR for video). */
export const SAMPLE_IS_NON_SYNC = 0x0001_0000;

/** A FullBox's version and 24-bit flags, and a view of the fields after them. */
export function readFullBox(payload: Uint8Array): { version: number; flags: number; fields: DataView } {
  const header = new DataView(payload.buffer, payload.byteOffset, payload.byteLength);
  return {
    version: payload[0] ?? 0,
    flags: header.getUint32(0) & 0xff_ffff,
    fields: new DataView(payload.buffer, payload.byteOffset + 4, Math.max(0, payload.byteLength - 4)),
  };
}

export function fullBoxHeader(version: number, flags: number): Uint8Array {
  return Uint8Array.of(version, (flags >> 16) & 0xff, (flags >> 8) & 0xff, flags & 0xff);
}

/** Bytes of creation_time + modification_time in tkhd and mdhd: 64-bit each in version 1. */
export const timesSize = (version: number) => (version === 1 ? 16 : 8);
