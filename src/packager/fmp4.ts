import {
  BoxFormatError,
  childBoxes,
  findBox,
  findBoxes,
  joined,
  TopLevelBoxSplitter,
  view,
  type Box,
} from './boxes.ts';

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

const NON_SYNC_SAMPLE = 0x0001_0000;

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
    const d = view(trex.payload);
    trexes.set(d.getUint32(4), { duration: d.getUint32(12), size: d.getUint32(16), flags: d.getUint32(20) });
  }
  return findBoxes(moov, 'trak').map((trak) => parseTrak(trak, trexes));
}

function parseTrak(trak: Box, trexes: Map<number, SampleDefaults>): TrackInfo {
  const need = (path: string[]) => {
    const box = findBox(trak.payload, path);
    if (!box) throw new BoxFormatError(`trak without ${path.join('/')}`);
    return box;
  };
  const tkhd = need(['tkhd']);
  const trackId = view(tkhd.payload).getUint32(tkhd.payload[0] === 1 ? 20 : 12);
  const mdhd = need(['mdia', 'mdhd']);
  const timescale = view(mdhd.payload).getUint32(mdhd.payload[0] === 1 ? 20 : 12);
  const hdlr = need(['mdia', 'hdlr']);
  const handler = String.fromCharCode(...hdlr.payload.subarray(8, 12));
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
    info.width = e.getUint16(24);
    info.height = e.getUint16(26);
    const children = entry.payload.subarray(78);
    const avcC = findBox(children, ['avcC']);
    if (avcC) info.avc = { profile: avcC.payload[1]!, compatibility: avcC.payload[2]!, level: avcC.payload[3]! };
    const pasp = findBox(children, ['pasp']);
    if (pasp) info.sar = `${view(pasp.payload).getUint32(0)}:${view(pasp.payload).getUint32(4)}`;
  } else if (handler === 'soun') {
    info.channels = e.getUint16(16);
    info.sampleRate = e.getUint32(24) >>> 16;
  }
  return info;
}

/** Pure: the payload of a `moof` box → its track fragments and samples. */
export function parseMoof(moof: Uint8Array, tracks: ReadonlyMap<number, TrackInfo>): Fragment {
  const mfhd = findBox(moof, ['mfhd']);
  const sequenceNumber = mfhd ? view(mfhd.payload).getUint32(4) : 0;
  return { sequenceNumber, tracks: findBoxes(moof, 'traf').map((traf) => parseTraf(traf.payload, tracks)) };
}

function parseTraf(traf: Uint8Array, tracks: ReadonlyMap<number, TrackInfo>): TrackFragment {
  const tfhd = findBox(traf, ['tfhd']);
  if (!tfhd) throw new BoxFormatError('traf without tfhd');
  const h = view(tfhd.payload);
  const tfhdFlags = h.getUint32(0) & 0xffffff;
  const trackId = h.getUint32(4);
  const defaults = { ...(tracks.get(trackId)?.defaults ?? { duration: 0, size: 0, flags: 0 }) };
  let at = 8;
  if (tfhdFlags & 0x01) at += 8; // base_data_offset
  if (tfhdFlags & 0x02) at += 4; // sample_description_index
  if (tfhdFlags & 0x08) {
    defaults.duration = h.getUint32(at);
    at += 4;
  }
  if (tfhdFlags & 0x10) {
    defaults.size = h.getUint32(at);
    at += 4;
  }
  if (tfhdFlags & 0x20) {
    defaults.flags = h.getUint32(at);
    at += 4;
  }

  const tfdt = findBox(traf, ['tfdt']);
  if (!tfdt) throw new BoxFormatError(`track ${trackId}: traf without tfdt`);
  const t = view(tfdt.payload);
  const baseDecodeTime = tfdt.payload[0] === 1 ? t.getBigUint64(4) : BigInt(t.getUint32(4));

  const samples: Sample[] = [];
  let decodeTime = baseDecodeTime;
  // Without a data_offset, a trun's data follows the previous one's; the first starts after the moof.
  let nextDataOffset = 0;
  for (const trun of findBoxes(traf, 'trun')) {
    const r = view(trun.payload);
    const flags = r.getUint32(0) & 0xffffff;
    const count = r.getUint32(4);
    let p = 8;
    let dataOffset = nextDataOffset;
    if (flags & 0x01) {
      dataOffset = r.getInt32(p);
      p += 4;
    }
    let firstFlags: number | undefined;
    if (flags & 0x04) {
      firstFlags = r.getUint32(p);
      p += 4;
    }
    for (let i = 0; i < count; i++) {
      const duration = flags & 0x100 ? r.getUint32(p) : defaults.duration;
      if (flags & 0x100) p += 4;
      const size = flags & 0x200 ? r.getUint32(p) : defaults.size;
      if (flags & 0x200) p += 4;
      let sampleFlags = flags & 0x400 ? r.getUint32(p) : defaults.flags;
      if (flags & 0x400) p += 4;
      if (i === 0 && firstFlags !== undefined) sampleFlags = firstFlags;
      const compositionOffset = flags & 0x800 ? r.getInt32(p) : 0;
      if (flags & 0x800) p += 4;
      samples.push({
        decodeTime,
        duration,
        size,
        flags: sampleFlags,
        sync: (sampleFlags & NON_SYNC_SAMPLE) === 0,
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

export type Fmp4Event = { type: 'init'; tracks: TrackInfo[] } | { type: 'fragment'; fragment: Fragment; bytes: number };

/** Incremental reader of a fragmented MP4 stream: init once, then one event per moof+mdat. */
export class Fmp4StreamReader {
  readonly #splitter = new TopLevelBoxSplitter();
  #tracks = new Map<number, TrackInfo>();
  #pendingFragment: { fragment: Fragment; bytes: number } | undefined;

  get tracks(): ReadonlyMap<number, TrackInfo> {
    return this.#tracks;
  }

  push(piece: Uint8Array): Fmp4Event[] {
    const events: Fmp4Event[] = [];
    for (const box of this.#splitter.push(piece)) {
      if (box.type === 'moov') {
        const tracks = parseMoov(joined(box).subarray(box.headerSize));
        this.#tracks = new Map(tracks.map((track) => [track.trackId, track]));
        events.push({ type: 'init', tracks });
      } else if (box.type === 'moof') {
        this.#pendingFragment = {
          fragment: parseMoof(joined(box).subarray(box.headerSize), this.#tracks),
          bytes: box.size,
        };
      } else if (box.type === 'mdat' && this.#pendingFragment) {
        events.push({
          type: 'fragment',
          fragment: this.#pendingFragment.fragment,
          bytes: this.#pendingFragment.bytes + box.size,
        });
        this.#pendingFragment = undefined;
      }
    }
    return events;
  }
}

/** Pure: a whole fMP4 file → its tracks and samples (for checks and tests). */
export function readFmp4(bytes: Uint8Array): { tracks: TrackInfo[]; fragments: Fragment[] } {
  const reader = new Fmp4StreamReader();
  const events = reader.push(bytes);
  return {
    tracks: [...reader.tracks.values()],
    fragments: events.flatMap((e) => (e.type === 'fragment' ? [e.fragment] : [])),
  };
}
