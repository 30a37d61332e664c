import { createHash } from 'node:crypto';
import { HLS_CONTENT_TYPE } from '../packager/hls-playlist.ts';
import { classifyObject } from '../layout/object-names.ts';

export type ObjectState = 'growing' | 'complete' | 'aborted';

export type ObjectEvent = { type: 'data'; chunk: Uint8Array } | { type: 'end' } | { type: 'abort' };

/** What a listener that threw is reported to: one listener's fault never reaches the uploader (or ends the process). */
export type ListenerFault = (error: unknown, path: string) => void;

function callEach<T extends unknown[]>(
  listeners: Iterable<(...args: T) => void>,
  args: T,
  path: string,
  fault: ListenerFault | undefined,
): void {
  for (const listener of [...listeners]) {
    try {
      listener(...args);
    } catch (error) {
      fault?.(error, path);
    }
  }
}

/**
 * One stored object (a manifest, an init segment, a segment). A segment is created when its first
 * chunk arrives and grows chunk by chunk; readers subscribe and receive each chunk as it lands.
 */
export class StoredObject {
  readonly path: string;
  readonly createdAt: number;
  readonly chunks: Uint8Array[] = [];
  #length = 0;
  #state: ObjectState = 'growing';
  #etag: string | undefined;
  #completedAt: number | undefined;
  readonly #listeners = new Set<(event: ObjectEvent) => void>();
  readonly #boxes: BoxBoundaries | undefined;
  readonly #onChange: (() => void) | undefined;
  readonly #onFault: (() => ListenerFault | undefined) | undefined;

  /** `media`: an ISO-BMFF segment, whose bytes readers get a whole CMAF chunk at a time while it grows. */
  readonly #onGrow: ((bytes: number) => void) | undefined;

  constructor(
    path: string,
    now: number,
    options: {
      media?: boolean;
      onChange?: () => void;
      onFault?: () => ListenerFault | undefined;
      onGrow?: (bytes: number) => void;
    } = {},
  ) {
    this.path = path;
    this.createdAt = now;
    this.#boxes = options.media ? new BoxBoundaries() : undefined;
    this.#onChange = options.onChange;
    this.#onFault = options.onFault;
    this.#onGrow = options.onGrow;
  }

  get length(): number {
    return this.#length;
  }

  /**
   * Bytes a reader may have: all of them once complete; while a media segment grows, up to the end
   * of its last complete \`mdat\` (RFC 8216bis §6.2.6: no byte of a part before the whole part can
   * go at line speed).
   */
  get released(): number {
    if (this.#state === 'complete' || !this.#boxes) return this.#length;
    return this.#boxes.released ?? this.#length;
  }

  get state(): ObjectState {
    return this.#state;
  }

  get etag(): string | undefined {
    return this.#etag;
  }

  /** When the upload ended; the creation time while it is still growing. */
  get modifiedAt(): number {
    return this.#completedAt ?? this.createdAt;
  }

  append(chunk: Uint8Array): void {
    if (this.#state !== 'growing') throw new Error(`${this.path} is ${this.#state}`);
    if (!chunk.length) return;
    this.chunks.push(chunk);
    this.#boxes?.scan(chunk);
    this.#length += chunk.length;
    this.#onGrow?.(chunk.length);
    callEach(this.#listeners, [{ type: 'data', chunk }], this.path, this.#onFault?.());
    this.#onChange?.();
  }

  complete(now: number): void {
    if (this.#state !== 'growing') return;
    this.#state = 'complete';
    this.#completedAt = now;
    const hash = createHash('sha1');
    for (const chunk of this.chunks) hash.update(chunk);
    this.#etag = `"${hash.digest('base64url').slice(0, 20)}"`;
    this.#emit({ type: 'end' });
  }

  /** The upload was cut: readers must see a broken transfer, never a clean short one. */
  abort(): void {
    if (this.#state !== 'growing') return;
    this.#state = 'aborted';
    this.#emit({ type: 'abort' });
  }

  /** Follows the object: returns the unsubscribe function. Events only; read `chunks` for what is there. */
  subscribe(listener: (event: ObjectEvent) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #emit(event: ObjectEvent): void {
    callEach(this.#listeners, [event], this.path, this.#onFault?.());
    this.#listeners.clear();
    this.#onChange?.();
  }
}

/** Boxes a CMAF segment (or chunk) may begin with. */
const FIRST_BOXES = new Set(['styp', 'ftyp', 'prft', 'moof', 'sidx', 'emsg', 'free', 'skip', 'moov', 'mdat']);

/**
 * Follows the top-level boxes of a growing ISO-BMFF byte stream, cut anywhere: \`released\` is the
 * end of the last complete \`mdat\` (a CMAF chunk's end). Undefined when the bytes are not boxes.
 */
class BoxBoundaries {
  released: number | undefined = 0;
  #position = 0;
  #boxEnd: number | undefined;
  #isMdat = false;
  readonly #header = new Uint8Array(16);
  #headerBytes = 0;

  scan(chunk: Uint8Array): void {
    let at = 0;
    while (at < chunk.length && this.released !== undefined) {
      if (this.#boxEnd === undefined) {
        const wanted = this.#headerBytes >= 8 && this.#size32() === 1 ? 16 : 8;
        const take = Math.min(wanted - this.#headerBytes, chunk.length - at);
        this.#header.set(chunk.subarray(at, at + take), this.#headerBytes);
        this.#headerBytes += take;
        at += take;
        if (this.#headerBytes < wanted || (wanted === 8 && this.#size32() === 1)) continue;
        const view = new DataView(this.#header.buffer);
        const size = wanted === 16 ? Number(view.getBigUint64(8)) : this.#size32();
        const type = String.fromCharCode(...this.#header.subarray(4, 8));
        // Not boxes (or a box running to the end): no boundaries to keep, every byte goes at once.
        if (size < wanted || !/^[a-z0-9 ]{4}$/i.test(type) || (this.#position === 0 && !FIRST_BOXES.has(type))) {
          this.released = undefined;
          return;
        }
        this.#isMdat = type === 'mdat';
        this.#boxEnd = this.#position + size;
        this.#position += wanted;
        this.#headerBytes = 0;
      } else {
        const take = Math.min(this.#boxEnd - this.#position, chunk.length - at);
        at += take;
        this.#position += take;
      }
      if (this.#boxEnd !== undefined && this.#position === this.#boxEnd) {
        if (this.#isMdat) this.released = this.#boxEnd;
        this.#boxEnd = undefined;
      }
    }
  }

  #size32(): number {
    return new DataView(this.#header.buffer).getUint32(0);
  }
}

/** Pure: the content type for a path, from its extension (and the track kind for media). */
export function contentTypeFor(path: string, audio: boolean): string | undefined {
  const extension = /\.([a-z0-9]+)$/i.exec(path)?.[1]?.toLowerCase();
  switch (extension) {
    case 'mpd':
      return 'application/dash+xml';
    case 'm3u8':
      return HLS_CONTENT_TYPE;
    case 'cmfa':
      return 'audio/mp4';
    case 'cmfv':
      return 'video/mp4';
    case 'mp4':
    case 'm4s':
    case 'cmfi':
    case 'm4a':
    case 'm4v':
      return audio ? 'audio/mp4' : 'video/mp4';
    case 'html':
      return 'text/html; charset=utf-8';
    case 'js':
      return 'text/javascript; charset=utf-8';
    default:
      return undefined;
  }
}

/** The stream a path belongs to: its first segment (the root's own objects make the stream ''). */
export const streamOf = (path: string) => (path.includes('/') ? path.slice(0, path.indexOf('/')) : '');

export interface StoreOptions {
  /** Time-shift window, seconds: media older than this (plus a grace period) is freed. */
  timeShiftBufferDepth: number;
  /** Longest a GET for a segment not yet begun is held, milliseconds (one segment duration). */
  holdMs: number;
  now?: () => number;
}

/**
 * Objects by path. Segments are freed once they are older than the time-shift window (plus the
 * hold time, for players still reading the oldest); manifests and init segments are kept until
 * replaced or deleted. A GET for the next segment of a rendition waits for its upload to begin.
 */
export class ObjectStore {
  readonly #objects = new Map<string, StoredObject>();
  readonly #waiting = new Map<string, Set<(object: StoredObject | undefined) => void>>();
  /** Highest segment number seen per directory, and whether that directory holds audio. */
  readonly #directories = new Map<string, { latest: bigint | undefined; audio: boolean }>();
  readonly #options: StoreOptions;
  readonly #watchers = new Map<string, Set<() => void>>();
  readonly now: () => number;
  /** Where a watcher's or reader's exception goes (the server logs it and answers that request 500). */
  onListenerFault: ListenerFault | undefined;
  /** Bytes of the objects held (kept as they grow and go: read on every uploaded chunk). */
  #bytes = 0;
  /** Per stream (a path's first segment), when something was last uploaded under it. */
  readonly #lastUpload = new Map<string, number>();

  constructor(options: StoreOptions) {
    this.#options = options;
    this.now = options.now ?? (() => Date.now());
  }

  get(path: string): StoredObject | undefined {
    return this.#objects.get(path);
  }

  /** Bytes held by complete and growing objects. */
  get bytes(): number {
    return this.#bytes;
  }

  #forget(object: StoredObject): void {
    this.#bytes -= object.length;
  }

  paths(): string[] {
    return [...this.#objects.keys()];
  }

  /** Declares whether a directory's media is audio (from its init segment), for Content-Type. */
  markAudio(directory: string, audio: boolean): void {
    const entry = this.#directories.get(directory) ?? { latest: undefined, audio };
    entry.audio = audio;
    this.#directories.set(directory, entry);
  }

  /** The Content-Type of `path`: by extension, and for media by what its rendition's init segment holds. */
  contentTypeOf(path: string): string {
    return (
      contentTypeFor(path, this.#directories.get(classifyObject(path).directory)?.audio ?? false) ??
      'application/octet-stream'
    );
  }

  /**
   * Calls `listener` whenever the object at `path` begins, grows, completes, is cut or deleted
   * (whether or not it exists yet); returns the function that stops it.
   */
  watch(path: string, listener: () => void): () => void {
    const listeners = this.#watchers.get(path) ?? new Set();
    listeners.add(listener);
    this.#watchers.set(path, listeners);
    return () => {
      listeners.delete(listener);
      if (!listeners.size && this.#watchers.get(path) === listeners) this.#watchers.delete(path);
    };
  }

  #changed(path: string): void {
    const listeners = this.#watchers.get(path);
    if (listeners) callEach(listeners, [], path, this.onListenerFault);
  }

  /**
   * Starts (or restarts) the object at `path`; readers of a previous version keep theirs.
   * `uploadedAt`: when its upload began (for an object restored from disk, when it was written).
   */
  begin(path: string, uploadedAt = this.now()): StoredObject {
    const { kind, directory, number } = classifyObject(path);
    const entry = this.#directories.get(directory) ?? { latest: undefined, audio: false };
    if (kind === 'segment' && number !== undefined && (entry.latest === undefined || number > entry.latest))
      entry.latest = number;
    this.#directories.set(directory, entry);
    const object: StoredObject = new StoredObject(path, this.now(), {
      media: kind === 'segment',
      onChange: () => this.#objects.get(path) === object && this.#changed(path),
      onFault: () => this.onListenerFault,
      onGrow: (bytes) => {
        if (this.#objects.get(path) === object) this.#bytes += bytes;
      },
    });
    const previous = this.#objects.get(path);
    if (previous) {
      previous.abort();
      this.#forget(previous);
    }
    this.#objects.set(path, object);
    this.#lastUpload.set(streamOf(path), Math.max(this.#lastUpload.get(streamOf(path)) ?? 0, uploadedAt));
    this.#changed(path);
    const waiters = this.#waiting.get(path);
    if (waiters) {
      this.#waiting.delete(path);
      for (const resolve of waiters) resolve(object);
    }
    return object;
  }

  /** A whole object at once (manifests, init segments). */
  put(path: string, bytes: Uint8Array): StoredObject {
    const object = this.begin(path);
    object.append(bytes);
    object.complete(this.now());
    return object;
  }

  /** An object kept from before a restart, complete, with the time it was last written. */
  restore(path: string, bytes: Uint8Array, modifiedAt: number): StoredObject {
    const object = this.begin(path, modifiedAt);
    object.append(bytes);
    object.complete(modifiedAt);
    return object;
  }

  delete(path: string): boolean {
    const object = this.#objects.get(path);
    if (!object) return false;
    object.abort();
    this.#objects.delete(path);
    this.#forget(object);
    this.#changed(path);
    return true;
  }

  /**
   * The object at `path`, or, for the next segment of a rendition (number ≤ latest + 1) whose
   * upload has not begun, the object once it begins, waiting at most `holdMs`. Undefined if none.
   */
  async lookup(path: string): Promise<StoredObject | undefined> {
    const existing = this.#objects.get(path);
    if (existing) return existing;
    const { kind, directory, number } = classifyObject(path);
    const latest = this.#directories.get(directory)?.latest;
    if (
      kind !== 'segment' ||
      number === undefined ||
      latest === undefined ||
      number > latest + 1n ||
      number <= latest - 2n
    )
      return undefined;
    return new Promise((resolve) => {
      const waiters = this.#waiting.get(path) ?? new Set();
      const done = (object: StoredObject | undefined) => {
        clearTimeout(timer);
        resolve(object);
      };
      const timer = setTimeout(() => {
        waiters.delete(done);
        if (!waiters.size) this.#waiting.delete(path);
        resolve(this.#objects.get(path));
      }, this.#options.holdMs);
      waiters.add(done);
      this.#waiting.set(path, waiters);
    });
  }

  /**
   * Frees media segments older than the time-shift window, and whole streams (manifests and init
   * segments too) that nothing was uploaded under for that long; returns the paths freed.
   */
  expire(): string[] {
    const limit = this.now() - (this.#options.timeShiftBufferDepth * 1000 + this.#options.holdMs);
    const freed: string[] = [];
    const abandoned = new Set([...this.#lastUpload].filter(([, at]) => at < limit).map(([stream]) => stream));
    for (const stream of abandoned) this.#lastUpload.delete(stream);
    for (const [path, object] of this.#objects) {
      if (object.state === 'growing') continue;
      if (!abandoned.has(streamOf(path))) {
        if (object.modifiedAt >= limit) continue;
        const { kind } = classifyObject(path);
        if (kind === 'manifest' || kind === 'init') continue;
      }
      this.#objects.delete(path);
      this.#forget(object);
      freed.push(path);
    }
    return freed;
  }
}
