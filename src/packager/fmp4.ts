import { readFullBox, SAMPLE_IS_NON_SYNC, TFHD, timesSize, TRUN } from './box-fields.ts';
import { BoxFormatError, childBoxes, findBox, findBoxes, view, type Box } from './boxes.ts';

/** What the init segment says about a track. */
export interface TrackInfo {
  trackId: number;
  timescale: number;
  handler: string;
  /** Sample entry type: `avc1`, `mp4a`, … */
  sampleEntry: string;
  width?: number | undefined;
  height?: number | undefined;
  /** avcC profile_idc, constraint flags and level_idc, e.g. 0x64, 0x00, 0x28 → `avc1.640028`. */
  avc?: { profile: number; compatibility: number; level: number } | undefined;
  /** Sample aspect ratio from `pasp`, e.g. "1:1"; undefined when absent (square pixels). */
  sar?: string | undefined;
  channels?: number | undefined;
  sampleRate?: number | undefined;
  defaults: SampleDefaults;
}

interface SampleDefaults {
  duration: number;
  size: number;
  flags: number;
}

export interface Sample {
  decodeTime: bigint;
  duration: number;
  size: number;
  flags: number;
  /** A sync sample (IDR for video): `sample_is_non_sync_sample` is clear. */
  sync: boolean;
  compositionOffset: number;
  /** Where the sample's data starts, counted from the start of its moof (base is moof). */
  dataOffset: number;
}

export interface TrackFragment {
  trackId: number;
  baseDecodeTime: bigint;
  samples: Sample[];
}

export interface Fragment {
  sequenceNumber: number;
  tracks: TrackFragment[];
}

export function codecString(track: TrackInfo): string {
  if (track.avc) {
    const hex = (n: number) => n.toString(16).padStart(2, '0');
    return `${track.sampleEntry}.${hex(track.avc.profile)}${hex(track.avc.compatibility)}${hex(track.avc.level)}`;
  }
  return track.sampleEntry === 'mp4a' ? 'mp4a.40.2' : track.sampleEntry;
}

/** Pure: the payload of a `moov` box → its tracks. */
export function parseMoov(moov: Uint8Array): TrackInfo[] {
  const trexes = new Map<number, SampleDefaults>();
  const mvex = findBox(moov, ['mvex']);
  for (const trex of mvex ? findBoxes(mvex.payload, 'trex') : []) {
    // track_ID, default_sample_description_index, then the sample defaults.
    const { fields } = readFullBox(trex.payload);
    trexes.set(fields.getUint32(0), {
      duration: fields.getUint32(8),
      size: fields.getUint32(12),
      flags: fields.getUint32(16),
    });
  }
  return findBoxes(moov, 'trak').map((trak) => parseTrak(trak, trexes));
}

function parseTrak(trak: Box, trexes: Map<number, SampleDefaults>): TrackInfo {
  const need = (path: string[]) => {
    const box = findBox(trak.payload, path);
    if (!box) throw new BoxFormatError(`trak without ${path.join('/')}`);
    return box;
  };
  // tkhd and mdhd: creation and modification times, then track_ID or timescale.
  const tkhd = readFullBox(need(['tkhd']).payload);
  const trackId = tkhd.fields.getUint32(timesSize(tkhd.version));
  const mdhd = readFullBox(need(['mdia', 'mdhd']).payload);
  const timescale = mdhd.fields.getUint32(timesSize(mdhd.version));
  // hdlr: pre_defined, then handler_type.
  const hdlr = need(['mdia', 'hdlr']);
  const handler = String.fromCharCode(...hdlr.payload.subarray(8, 12));
  // stsd: entry_count, then the sample entries.
  const stsd = need(['mdia', 'minf', 'stbl', 'stsd']);
  const entry = childBoxes(stsd.payload.subarray(8)).next().value;
  if (!entry) throw new BoxFormatError(`track ${trackId}: empty stsd`);
  const info: TrackInfo = {
    trackId,
    timescale,
    handler,
    sampleEntry: entry.type,
    defaults: trexes.get(trackId) ?? { duration: 0, size: 0, flags: 0 },
  };
  const e = view(entry.payload);
  if (handler === 'vide') {
    // VisualSampleEntry: 8 bytes of SampleEntry, 16 reserved, width, height; its boxes after 78 bytes.
    info.width = e.getUint16(24);
    info.height = e.getUint16(26);
    const children = entry.payload.subarray(78);
    const avcC = findBox(children, ['avcC']);
    if (avcC) info.avc = { profile: avcC.payload[1]!, compatibility: avcC.payload[2]!, level: avcC.payload[3]! };
    const pasp = findBox(children, ['pasp']);
    if (pasp) info.sar = `${view(pasp.payload).getUint32(0)}:${view(pasp.payload).getUint32(4)}`;
  } else if (handler === 'soun') {
    // AudioSampleEntry: 8 bytes of SampleEntry, 8 reserved, channelcount, samplesize, 4 reserved, samplerate 16.16.
    info.channels = e.getUint16(16);
    info.sampleRate = e.getUint32(24) >>> 16;
  }
  return info;
}

/** More samples than a live fragment has (1.4 s of 48 kHz PCM, 36 min of 30 fps video): a forged count. */
const MAX_SAMPLES_PER_TRUN = 65_536;

/** Pure: the payload of a `moof` box → its track fragments and samples. */
export function parseMoof(moof: Uint8Array, tracks: ReadonlyMap<number, TrackInfo>): Fragment {
  const mfhd = findBox(moof, ['mfhd']);
  const sequenceNumber = mfhd ? readFullBox(mfhd.payload).fields.getUint32(0) : 0;
  return { sequenceNumber, tracks: findBoxes(moof, 'traf').map((traf) => parseTraf(traf.payload, tracks)) };
}

function parseTraf(traf: Uint8Array, tracks: ReadonlyMap<number, TrackInfo>): TrackFragment {
  const tfhd = findBox(traf, ['tfhd']);
  if (!tfhd) throw new BoxFormatError('traf without tfhd');
  const { flags: tfhdFlags, fields: h } = readFullBox(tfhd.payload);
  const trackId = h.getUint32(0);
  const defaults = { ...(tracks.get(trackId)?.defaults ?? { duration: 0, size: 0, flags: 0 }) };
  let at = 4;
  if (tfhdFlags & TFHD.BASE_DATA_OFFSET) at += 8;
  if (tfhdFlags & TFHD.SAMPLE_DESCRIPTION_INDEX) at += 4;
  if (tfhdFlags & TFHD.DEFAULT_SAMPLE_DURATION) {
    defaults.duration = h.getUint32(at);
    at += 4;
  }
  if (tfhdFlags & TFHD.DEFAULT_SAMPLE_SIZE) {
    defaults.size = h.getUint32(at);
    at += 4;
  }
  if (tfhdFlags & TFHD.DEFAULT_SAMPLE_FLAGS) {
    defaults.flags = h.getUint32(at);
    at += 4;
  }

  const tfdtBox = findBox(traf, ['tfdt']);
  if (!tfdtBox) throw new BoxFormatError(`track ${trackId}: traf without tfdt`);
  const tfdt = readFullBox(tfdtBox.payload);
  const baseDecodeTime = tfdt.version === 1 ? tfdt.fields.getBigUint64(0) : BigInt(tfdt.fields.getUint32(0));

  const samples: Sample[] = [];
  let decodeTime = baseDecodeTime;
  // Without a data_offset, a trun's data follows the previous one's; the first starts after the moof.
  let nextDataOffset = 0;
  for (const trun of findBoxes(traf, 'trun')) {
    const { flags, fields: r } = readFullBox(trun.payload);
    const count = r.getUint32(0);
    // Work bounded by a constant, not by a count the writer chose (a trun without per-sample fields).
    if (count > MAX_SAMPLES_PER_TRUN)
      throw new BoxFormatError(`track ${trackId}: a trun of ${count} samples (at most ${MAX_SAMPLES_PER_TRUN})`);
    let p = 4;
    /** The next field of the trun when `flag` says it is there. */
    const field = (flag: number, read: (at: number) => number): number | undefined => {
      if (!(flags & flag)) return undefined;
      const value = read(p);
      p += 4;
      return value;
    };
    const u32 = (at: number) => r.getUint32(at);
    const i32 = (at: number) => r.getInt32(at);
    let dataOffset = field(TRUN.DATA_OFFSET, i32) ?? nextDataOffset;
    const firstFlags = field(TRUN.FIRST_SAMPLE_FLAGS, u32);
    for (let i = 0; i < count; i++) {
      const duration = field(TRUN.SAMPLE_DURATION, u32) ?? defaults.duration;
      const size = field(TRUN.SAMPLE_SIZE, u32) ?? defaults.size;
      const ownFlags = field(TRUN.SAMPLE_FLAGS, u32) ?? defaults.flags;
      const sampleFlags = i === 0 && firstFlags !== undefined ? firstFlags : ownFlags;
      const compositionOffset = field(TRUN.SAMPLE_COMPOSITION_TIME_OFFSET, i32) ?? 0;
      samples.push({
        decodeTime,
        duration,
        size,
        flags: sampleFlags,
        sync: (sampleFlags & SAMPLE_IS_NON_SYNC) === 0,
        compositionOffset,
        dataOffset,
      });
      decodeTime += BigInt(duration);
      dataOffset += size;
    }
    nextDataOffset = dataOffset;
  }
  return { trackId, baseDecodeTime, samples };
}
