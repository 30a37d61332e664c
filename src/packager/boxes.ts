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

const fourcc = (bytes: Uint8Array, at: number) => String.fromCharCode(bytes[at]!, bytes[at + 1]!, bytes[at + 2]!, bytes[at + 3]!);

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
    if (size > BigInt(Number.MAX_SAFE_INTEGER) || size < 16n) throw new BoxFormatError(`box ${type}: unusable 64-bit size ${size}`);
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

/**
 * Splits a byte stream, arriving in pieces cut anywhere, into whole top-level boxes.
 * A box inside one piece is returned as a view of it; only a box spanning pieces is joined.
 */
export class TopLevelBoxSplitter {
  #pending: Uint8Array[] = [];
  #pendingLength = 0;
  #consumed = 0;

  /** Bytes of the stream consumed into whole boxes so far. */
  get position(): number {
    return this.#consumed;
  }

  push(piece: Uint8Array): Box[] {
    const out: Box[] = [];
    let bytes: Uint8Array;
    if (this.#pendingLength === 0) {
      bytes = piece;
    } else {
      bytes = new Uint8Array(this.#pendingLength + piece.length);
      let at = 0;
      for (const part of [...this.#pending, piece]) {
        bytes.set(part, at);
        at += part.length;
      }
    }
    let offset = 0;
    for (;;) {
      const header = readBoxHeader(bytes, offset);
      if (!header || bytes.length - offset < header.size) break;
      out.push({
        ...header,
        offset: this.#consumed,
        payload: bytes.subarray(offset + header.headerSize, offset + header.size),
        bytes: bytes.subarray(offset, offset + header.size),
      });
      offset += header.size;
      this.#consumed += header.size;
    }
    const rest = bytes.subarray(offset);
    this.#pending = rest.length ? [rest] : [];
    this.#pendingLength = rest.length;
    return out;
  }

  /** Bytes of an incomplete box still waiting for the rest. */
  get buffered(): number {
    return this.#pendingLength;
  }
}
