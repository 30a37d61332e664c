import { createHash } from 'node:crypto';
import { createServer, type IncomingMessage, type Server } from 'node:http';
import type { Socket } from 'node:net';

// An independent CMAF ingest receiver for the tests and the bench (DASH-IF Live Media Ingest,
// Interface-1): it reads what arrives box by box with its own small ISO-BMFF reader (nothing from
// src/, so a bug in the packager's box code cannot hide itself) and notes every rule a request
// breaks: the header first on each connection, one segment per request, chunked transfer,
// increasing tfdt and mfhd, a prft in every segment, a sync sample first, segments on the epoch
// grid. It answers 200 to everything unless told to cut a connection.

export interface CheckedSegment {
  stream: string;
  path: string;
  connection: number;
  tfdt: bigint;
  /** mfhd of the segment's first fragment (chunk). */
  sequence: number;
  chunks: number;
  brands: string[];
  bytes: number;
  /** SHA-256 of the whole body. */
  hash: string;
  /**
   * Per chunk: when its mdat ended here, its prft's wall clock (ms since 1970), its duration and
   * when its media ends on the timeline (ms since 1970: the timeline is the epoch's).
   */
  chunkTimes: { arrivedAt: number; prftMs: number | undefined; durationMs: number; mediaEndMs: number }[];
}

export interface CheckerOptions {
  segdur: number;
  /** How a request path names its stream (the part of the name that is the same for the header and the segments). */
  streamOf(path: string): string;
  /** Requests a connection serves before the receiver closes it (`Connection: close`), as Apache's MaxKeepAliveRequests. */
  maxRequestsPerSocket?: number;
  /** Cut the connection of this request after this many body bytes (simulates a receiver failing mid-segment). */
  cutAfter?: (path: string, request: number) => number | undefined;
}

interface StreamState {
  timescale: number | undefined;
  handler: string | undefined;
  headers: number;
  lastTfdt: bigint | undefined;
  lastSequence: number | undefined;
}

interface Box {
  type: string;
  payload: Uint8Array;
}

const NTP_UNIX_OFFSET = 2_208_988_800;

/** The boxes directly inside `data` (a whole box's payload, or a buffer of whole boxes). */
function childBoxes(data: Uint8Array): Box[] {
  const boxes: Box[] = [];
  const view = new DataView(data.buffer, data.byteOffset, data.byteLength);
  for (let at = 0; at + 8 <= data.byteLength; ) {
    let size = view.getUint32(at);
    let header = 8;
    if (size === 1) {
      size = Number(view.getBigUint64(at + 8));
      header = 16;
    }
    if (size < header || at + size > data.byteLength) break;
    const type = String.fromCharCode(...data.subarray(at + 4, at + 8));
    boxes.push({ type, payload: data.subarray(at + header, at + size) });
    at += size;
  }
  return boxes;
}

const child = (box: Box | undefined, type: string) =>
  box ? childBoxes(box.payload).find((b) => b.type === type) : undefined;
const viewOf = (b: Uint8Array) => new DataView(b.buffer, b.byteOffset, b.byteLength);

/** A moof's sequence number, base decode time, whether its first sample is a sync sample, and its duration in ticks. */
function readMoof(moof: Box): { sequence: number; tfdt: bigint; firstSync: boolean; duration: number } {
  const mfhd = child(moof, 'mfhd')!;
  const sequence = viewOf(mfhd.payload).getUint32(4);
  const traf = child(moof, 'traf')!;
  const tfdtBox = child(traf, 'tfdt')!;
  const tfdtView = viewOf(tfdtBox.payload);
  const tfdt = tfdtBox.payload[0] === 1 ? tfdtView.getBigUint64(4) : BigInt(tfdtView.getUint32(4));
  const tfhd = viewOf(child(traf, 'tfhd')!.payload);
  const tfhdFlags = tfhd.getUint32(0) & 0xffffff;
  let at = 8;
  if (tfhdFlags & 0x1) at += 8;
  if (tfhdFlags & 0x2) at += 4;
  const defaultDuration = tfhdFlags & 0x8 ? tfhd.getUint32(at) : 0;
  if (tfhdFlags & 0x8) at += 4;
  if (tfhdFlags & 0x10) at += 4;
  const defaultFlags = tfhdFlags & 0x20 ? tfhd.getUint32(at) : 0;
  const trun = viewOf(child(traf, 'trun')!.payload);
  const trunFlags = trun.getUint32(0) & 0xffffff;
  const count = trun.getUint32(4);
  let p = 8;
  if (trunFlags & 0x1) p += 4;
  let firstFlags = defaultFlags;
  if (trunFlags & 0x4) {
    firstFlags = trun.getUint32(p);
    p += 4;
  }
  let duration = 0;
  for (let i = 0; i < count; i++) {
    duration += trunFlags & 0x100 ? trun.getUint32(p) : defaultDuration;
    if (trunFlags & 0x100) p += 4;
    if (trunFlags & 0x200) p += 4;
    if (trunFlags & 0x400) {
      if (i === 0 && !(trunFlags & 0x4)) firstFlags = trun.getUint32(p);
      p += 4;
    }
    if (trunFlags & 0x800) p += 4;
  }
  // sample_is_non_sync_sample is bit 16 of the sample flags.
  return { sequence, tfdt, firstSync: (firstFlags & 0x10000) === 0, duration };
}

/** The header's first track: its timescale and handler. */
function readHeader(moov: Box): { timescale: number; handler: string; fragmented: boolean } {
  const mdia = child(child(moov, 'trak'), 'mdia');
  const mdhd = child(mdia, 'mdhd')!.payload;
  const timescale = viewOf(mdhd).getUint32(mdhd[0] === 1 ? 20 : 12);
  const hdlr = child(mdia, 'hdlr')!.payload;
  return {
    timescale,
    handler: String.fromCharCode(...hdlr.subarray(8, 12)),
    fragmented: child(moov, 'mvex') !== undefined,
  };
}

function prftMs(prft: Box): number {
  const view = viewOf(prft.payload);
  const seconds = view.getUint32(8);
  const fraction = view.getUint32(12);
  return (seconds - NTP_UNIX_OFFSET) * 1000 + (fraction / 2 ** 32) * 1000;
}

export class CmafIngestChecker {
  readonly violations: string[] = [];
  readonly segments: CheckedSegment[] = [];
  /** Bodies of MPDs posted, in order, with when. */
  readonly manifests: { path: string; text: string; at: number }[] = [];
  /** Every request in arrival order: what it carried. */
  readonly requests: {
    path: string;
    method: string;
    headers: IncomingMessage['headers'];
    connection: number;
    kind: 'header' | 'segment' | 'empty' | 'manifest' | 'cut';
  }[] = [];
  readonly streams = new Map<string, StreamState>();
  readonly #options: CheckerOptions;
  readonly #server: Server;
  readonly #sockets = new Map<Socket, number>();
  /** Per connection, the streams whose header it carried. */
  readonly #headersOn = new Map<number, Set<string>>();
  #requests = 0;

  constructor(options: CheckerOptions) {
    this.#options = options;
    this.#server = createServer((request, response) =>
      this.#handle(request, response.writeHead.bind(response), () => response.end()),
    );
    this.#server.on('connection', (socket) => this.#sockets.set(socket, this.#sockets.size + 1));
    if (options.maxRequestsPerSocket) this.#server.maxRequestsPerSocket = options.maxRequestsPerSocket;
  }

  async listen(): Promise<number> {
    await new Promise<void>((resolve) => this.#server.listen(0, '127.0.0.1', resolve));
    return (this.#server.address() as { port: number }).port;
  }

  async close(): Promise<void> {
    this.#server.closeAllConnections();
    await new Promise((resolve) => this.#server.close(resolve));
  }

  #stream(name: string): StreamState {
    let state = this.streams.get(name);
    if (!state) {
      state = { timescale: undefined, handler: undefined, headers: 0, lastTfdt: undefined, lastSequence: undefined };
      this.streams.set(name, state);
    }
    return state;
  }

  #handle(request: IncomingMessage, writeHead: (status: number) => void, end: () => void): void {
    const index = ++this.#requests;
    const path = decodeURIComponent(new URL(request.url ?? '/', 'http://x').pathname);
    const connection = this.#sockets.get(request.socket) ?? 0;
    const pieces: Buffer[] = [];
    let received = 0;
    // Top-level boxes as they complete, with when.
    const boxes: { box: Box; at: number }[] = [];
    let pending: Buffer = Buffer.alloc(0);
    const cutAt = this.#options.cutAfter?.(path, index);
    request.on('data', (piece: Buffer) => {
      received += piece.byteLength;
      pieces.push(piece);
      pending = pending.byteLength ? Buffer.concat([pending, piece]) : piece;
      const at = performance.timeOrigin + performance.now();
      for (;;) {
        if (pending.byteLength < 8) break;
        const size = pending.readUInt32BE(0);
        if (size < 8 || pending.byteLength < size) break;
        boxes.push({ box: { type: pending.toString('latin1', 4, 8), payload: pending.subarray(8, size) }, at });
        pending = pending.subarray(size);
      }
      if (cutAt !== undefined && received >= cutAt) {
        this.requests.push({ path, method: request.method ?? '', headers: request.headers, connection, kind: 'cut' });
        request.socket.destroy();
      }
    });
    request.on('end', () => {
      try {
        this.#check(path, connection, request, boxes, received, Buffer.concat(pieces));
      } catch (error) {
        this.violations.push(`${path}: unreadable (${(error as Error).message})`);
      }
      writeHead(200);
      end();
    });
  }

  #record(
    path: string,
    request: IncomingMessage,
    connection: number,
    kind: CmafIngestChecker['requests'][number]['kind'],
  ) {
    this.requests.push({ path, method: request.method ?? '', headers: request.headers, connection, kind });
  }

  #check(
    path: string,
    connection: number,
    request: IncomingMessage,
    boxes: { box: Box; at: number }[],
    bytes: number,
    body: Buffer,
  ): void {
    if (/\.mpd$/i.test(path)) {
      this.manifests.push({ path, text: body.toString('utf8'), at: Date.now() });
      this.#record(path, request, connection, 'manifest');
      return;
    }
    const name = this.#options.streamOf(path);
    const stream = this.#stream(name);
    const on = this.#headersOn.get(connection) ?? new Set<string>();
    this.#headersOn.set(connection, on);
    if (!boxes.length) {
      this.#record(path, request, connection, 'empty');
      return;
    }
    const types = boxes.map((b) => b.box.type);
    if (types[0] === 'ftyp' || types.includes('moov')) {
      const moov = boxes.find((b) => b.box.type === 'moov');
      if (!moov) return void this.violations.push(`${path}: a header without moov`);
      const header = readHeader(moov.box);
      if (!header.fragmented) this.violations.push(`${path}: the header's moov has no mvex`);
      stream.timescale = header.timescale;
      stream.handler = header.handler;
      stream.headers++;
      on.add(name);
      this.#record(path, request, connection, 'header');
      return;
    }
    this.#record(path, request, connection, 'segment');
    const where = `${path} (connection ${connection})`;
    if (!on.has(name)) this.violations.push(`${where}: a segment on a connection that carried no header of ${name}`);
    if (!/chunked/i.test(String(request.headers['transfer-encoding'] ?? '')))
      this.violations.push(`${where}: not sent with chunked transfer encoding`);
    if (types.filter((t) => t === 'styp').length > 1 || (types.includes('styp') && types[0] !== 'styp'))
      this.violations.push(`${where}: more than one segment in one request (${types.join(',')})`);
    if (!types.includes('prft')) this.violations.push(`${where}: no prft`);
    const moofs = boxes.filter((b) => b.box.type === 'moof');
    if (!moofs.length) return void this.violations.push(`${where}: no moof`);
    const fragments = moofs.map((m) => readMoof(m.box));
    const first = fragments[0]!;
    if (!first.firstSync) this.violations.push(`${where}: its first sample is not a sync sample`);
    for (let i = 1; i < fragments.length; i++) {
      if (fragments[i]!.sequence !== fragments[i - 1]!.sequence + 1)
        this.violations.push(`${where}: mfhd ${fragments[i - 1]!.sequence} then ${fragments[i]!.sequence}`);
      if (fragments[i]!.tfdt <= fragments[i - 1]!.tfdt) this.violations.push(`${where}: tfdt not increasing in it`);
    }
    if (stream.lastTfdt !== undefined && first.tfdt <= stream.lastTfdt)
      this.violations.push(`${where}: tfdt ${first.tfdt} after ${stream.lastTfdt}`);
    if (stream.lastSequence !== undefined && first.sequence <= stream.lastSequence)
      this.violations.push(`${where}: mfhd ${first.sequence} after ${stream.lastSequence}`);
    stream.lastTfdt = fragments.at(-1)!.tfdt;
    stream.lastSequence = fragments.at(-1)!.sequence;
    const timescale = stream.timescale;
    if (timescale === undefined) this.violations.push(`${where}: media of a stream whose header never came`);
    else {
      const grid = BigInt(Math.round(this.#options.segdur * timescale));
      const off = first.tfdt % grid;
      const distance = off < grid - off ? off : grid - off;
      // Video starts exactly on n·segdur; audio at the frame nearest it (an AAC frame is 1024 samples).
      const tolerance = stream.handler === 'soun' ? 1024n : 0n;
      if (distance > tolerance) this.violations.push(`${where}: starts ${distance} ticks off the epoch grid`);
    }
    const styp = boxes.find((b) => b.box.type === 'styp');
    const brands: string[] = [];
    if (styp)
      for (let i = 8; i + 4 <= styp.box.payload.byteLength; i += 4)
        brands.push(String.fromCharCode(...styp.box.payload.subarray(i, i + 4)));
    // Each chunk: the prft before its moof (if any), ended by its mdat.
    const chunkTimes: CheckedSegment['chunkTimes'] = [];
    let prft: number | undefined;
    let moofIndex = 0;
    for (const { box, at } of boxes) {
      if (box.type === 'prft') prft = prftMs(box);
      if (box.type === 'mdat') {
        const fragment = fragments[moofIndex++];
        chunkTimes.push({
          arrivedAt: at,
          prftMs: prft,
          durationMs: fragment && timescale ? (fragment.duration / timescale) * 1000 : 0,
          mediaEndMs:
            fragment && timescale ? (Number(fragment.tfdt + BigInt(fragment.duration)) / timescale) * 1000 : Number.NaN,
        });
        prft = undefined;
      }
    }
    this.segments.push({
      stream: name,
      path,
      connection,
      tfdt: first.tfdt,
      sequence: first.sequence,
      chunks: fragments.length,
      brands,
      bytes,
      hash: createHash('sha256').update(body).digest('hex'),
      chunkTimes,
    });
  }
}
