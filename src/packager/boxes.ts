/** ISO-BMFF box headers over Uint8Array views: 32- and 64-bit sizes, no copies of payloads. */

export interface Box {
  type: string;
  /** Offset of the box header within the array it was read from. */
  offset: number;
  /** Whole box, header included. */
  size: number;
  headerSize: number;
  /** A view (not a copy) of the payload. */
  payload: Uint8Array;
  /** A view of the whole box, header included. */
  bytes: Uint8Array;
}

export interface BoxHeader {
  type: string;
  size: number;
  headerSize: number;
}

export class BoxFormatError extends Error {
  override name = 'BoxFormatError';
}

const fourcc = (bytes: Uint8Array, at: number) =>
  String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);

export function view(bytes: Uint8Array): DataView {
  return new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
}

/** Header at `offset`, or undefined when fewer bytes than the header are there yet. */
export function readBoxHeader(bytes: Uint8Array, offset: number): BoxHeader | undefined {
  if (bytes.length - offset < 8) return undefined;
  const data = view(bytes);
  const size32 = data.getUint32(offset);
  const type = fourcc(bytes, offset + 4);
  if (size32 === 1) {
    if (bytes.length - offset < 16) return undefined;
    const size = data.getBigUint64(offset + 8);
    if (size > BigInt(Number.MAX_SAFE_INTEGER) || size < 16n)
      throw new BoxFormatError(`box ${type}: unusable 64-bit size ${size}`);
    return { type, size: Number(size), headerSize: 16 };
  }
  if (size32 === 0) throw new BoxFormatError(`box ${type}: size 0 (to end of file) cannot be used in a stream`);
  if (size32 < 8) throw new BoxFormatError(`box ${type}: size ${size32} is smaller than its header`);
  return { type, size: size32, headerSize: 8 };
}

/** The boxes laid end to end in `bytes` (a file, or the payload of a container box). */
export function* childBoxes(bytes: Uint8Array): Generator<Box> {
  let offset = 0;
  while (offset < bytes.length) {
    const header = readBoxHeader(bytes, offset);
    if (!header || offset + header.size > bytes.length) throw new BoxFormatError(`truncated box at offset ${offset}`);
    yield {
      ...header,
      offset,
      payload: bytes.subarray(offset + header.headerSize, offset + header.size),
      bytes: bytes.subarray(offset, offset + header.size),
    };
    offset += header.size;
  }
}

/** First box along a path of types, e.g. `['trak', 'mdia', 'mdhd']`, searched from `bytes`. */
export function findBox(bytes: Uint8Array, path: readonly string[]): Box | undefined {
  const [first, ...rest] = path;
  for (const box of childBoxes(bytes)) {
    if (box.type !== first) continue;
    return rest.length === 0 ? box : findBox(box.payload, rest);
  }
  return undefined;
}

export function findBoxes(bytes: Uint8Array, type: string): Box[] {
  return [...childBoxes(bytes)].filter((box) => box.type === type);
}

/** A top-level box of a stream: the views it arrived in, in order, header included. */
export interface StreamBox extends BoxHeader {
  /** Offset of the box in the whole stream. */
  offset: number;
  pieces: Uint8Array[];
}

/** The box's bytes in one array: the piece itself when it arrived whole, else a joined copy. */
export function joined(box: StreamBox): Uint8Array {
  if (box.pieces.length === 1) return box.pieces[0]!;
  const out = new Uint8Array(box.size);
  let at = 0;
  for (const piece of box.pieces) {
    out.set(piece, at);
    at += piece.length;
  }
  return out;
}

/** Views of `length` bytes from `offset` across `pieces`, without copying. */
export function sliceViews(pieces: readonly Uint8Array[], offset: number, length: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let skip = offset;
  let wanted = length;
  for (const piece of pieces) {
    if (wanted === 0) break;
    if (skip >= piece.length) {
      skip -= piece.length;
      continue;
    }
    const view = piece.subarray(skip, Math.min(piece.length, skip + wanted));
    out.push(view);
    wanted -= view.length;
    skip = 0;
  }
  if (wanted > 0) throw new BoxFormatError(`slice of ${length} bytes at ${offset} runs past its box`);
  return out;
}

const HEADER_PEEK = 16;

/**
 * Splits a byte stream, arriving in pieces cut anywhere, into whole top-level boxes. Nothing is
 * copied: a box is returned as views of the pieces it arrived in (only a box header split across
 * pieces is read through a 16-byte scratch buffer).
 */
export class TopLevelBoxSplitter {
  #queue: Uint8Array[] = [];
  #queued = 0;
  #consumed = 0;
  readonly #scratch = new Uint8Array(HEADER_PEEK);

  /** Bytes of the stream consumed into whole boxes so far. */
  get position(): number {
    return this.#consumed;
  }

  /** Bytes of an incomplete box still waiting for the rest. */
  get buffered(): number {
    return this.#queued;
  }

  push(piece: Uint8Array): StreamBox[] {
    if (piece.length) {
      this.#queue.push(piece);
      this.#queued += piece.length;
    }
    const out: StreamBox[] = [];
    for (;;) {
      const header = readBoxHeader(this.#peek(), 0);
      if (!header || this.#queued < header.size) break;
      out.push({ ...header, offset: this.#consumed, pieces: this.#take(header.size) });
      this.#consumed += header.size;
    }
    return out;
  }

  #peek(): Uint8Array {
    const first = this.#queue[0];
    if (!first) return this.#scratch.subarray(0, 0);
    if (first.length >= HEADER_PEEK || this.#queue.length === 1) return first;
    let at = 0;
    for (const piece of this.#queue) {
      const n = Math.min(piece.length, HEADER_PEEK - at);
      this.#scratch.set(piece.subarray(0, n), at);
      at += n;
      if (at === HEADER_PEEK) break;
    }
    return this.#scratch.subarray(0, at);
  }

  #take(size: number): Uint8Array[] {
    const taken: Uint8Array[] = [];
    let wanted = size;
    while (wanted > 0) {
      const first = this.#queue[0]!;
      if (first.length <= wanted) {
        taken.push(first);
        this.#queue.shift();
        wanted -= first.length;
      } else {
        taken.push(first.subarray(0, wanted));
        this.#queue[0] = first.subarray(wanted);
        wanted = 0;
      }
    }
    this.#queued -= size;
    return taken;
  }
}
