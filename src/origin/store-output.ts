import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import { segmentPath } from '../layout/object-names.ts';
import type { ObjectStore, StoredObject } from './store.ts';
import type { HlsPlaylists } from '../packager/hls-playlists.ts';

/**
 * Delivers packager events straight into the origin's store (the built-in server: no HTTP hop):
 * a segment object begins with its first chunk and each chunk is appended the moment it exists.
 */
export class StoreOutput {
  readonly #store: ObjectStore;
  readonly #onChunkWritten: ((event: ChunkEvent, writtenAt: number) => void) | undefined;
  readonly #growing = new Map<string, StoredObject>();

  readonly #hls: HlsPlaylists | undefined;
  /** Put before every path: the stream's directory in the store (`live/`), or nothing. */
  readonly #prefix: string;
  #multivariantName: string | undefined;
  #multivariantWritten: string | undefined;

  constructor(
    store: ObjectStore,
    onChunkWritten?: (event: ChunkEvent, writtenAt: number) => void,
    hls?: HlsPlaylists,
    directory?: string,
  ) {
    this.#store = store;
    this.#onChunkWritten = onChunkWritten;
    this.#hls = hls;
    this.#prefix = directory ? `${directory}/` : '';
  }

  /** The multivariant playlist and every media playlist, as they stand (at start, and at the end for ENDLIST). */
  writePlaylists(multivariantName: string): void {
    if (!this.#hls) return;
    this.#multivariantName = multivariantName;
    this.#writeMultivariant(this.#hls.multivariant());
    for (const track of this.#hls.timeline.tracks()) {
      const text = this.#hls.media(track);
      if (text) this.writeManifest(this.#hls.names.mediaPlaylist(track), text);
    }
  }

  get failures(): number {
    return 0;
  }

  handle(event: PackagerEvent): void {
    if (event.type === 'init') {
      this.#store.markAudio(this.#prefix + event.track, event.info.handler === 'soun');
      this.#store.put(this.#prefix + event.path, event.bytes);
      // A new period may leave a rendition out or bring it back: new players see the variants it has.
      if (this.#multivariantWritten !== undefined) this.#writeMultivariant(this.#hls?.multivariant());
    } else if (event.type === 'chunk') {
      let object = this.#growing.get(event.track);
      if (event.part === 0 || !object) {
        object?.complete(this.#store.now());
        object = this.#store.begin(this.#prefix + segmentPath(event.track, event.segment));
        this.#growing.set(event.track, object);
      }
      for (const part of event.parts) object.append(part);
      if (this.#hls) {
        const { partFile, playlist, multivariantReady, absentPlaylists } = this.#hls.onChunk(event);
        if (partFile) this.#store.put(this.#prefix + partFile.path, Buffer.concat(partFile.bytes));
        if (playlist) this.writeManifest(playlist.name, playlist.text);
        for (const absent of absentPlaylists ?? []) this.writeManifest(absent.name, absent.text);
        // Written once every playlist it names exists (see HlsPlaylists.mediaPlaylistsReady).
        if (multivariantReady) this.#writeMultivariant(this.#hls.multivariant());
      }
      this.#onChunkWritten?.(event, performance.timeOrigin + performance.now());
    } else {
      this.#growing.get(event.track)?.complete(this.#store.now());
      this.#growing.delete(event.track);
    }
  }

  #writeMultivariant(text: string | undefined): void {
    if (!text || !this.#multivariantName || text === this.#multivariantWritten) return;
    this.#multivariantWritten = text;
    this.writeManifest(this.#multivariantName, text);
  }

  writeManifest(name: string, text: string): void {
    this.#store.put(this.#prefix + name, new TextEncoder().encode(text));
  }

  /** The segment `track` is making was cut short: readers must not take it for complete. */
  abortSegment(track: string): void {
    this.#growing.get(track)?.abort();
    this.#growing.delete(track);
  }

  async flush(): Promise<void> {
    // Segments still growing at the end were cut: readers must not take them for complete.
    for (const object of this.#growing.values()) object.abort();
    this.#growing.clear();
  }
}
