import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import { initPath, segmentPath } from '../push/directory-output.ts';
import type { ObjectStore, StoredObject } from './store.ts';

/**
 * Delivers packager events straight into the origin's store (the built-in server: no HTTP hop):
 * a segment object begins with its first chunk and each chunk is appended the moment it exists.
 */
export class StoreOutput {
  readonly #store: ObjectStore;
  readonly #onChunkWritten: ((event: ChunkEvent, writtenAt: number) => void) | undefined;
  readonly #growing = new Map<string, StoredObject>();

  constructor(store: ObjectStore, onChunkWritten?: (event: ChunkEvent, writtenAt: number) => void) {
    this.#store = store;
    this.#onChunkWritten = onChunkWritten;
  }

  get failures(): number {
    return 0;
  }

  handle(event: PackagerEvent): void {
    if (event.type === 'init') {
      this.#store.markAudio(event.track, event.info.handler === 'soun');
      this.#store.put(initPath(event.track), event.bytes);
    } else if (event.type === 'chunk') {
      let object = this.#growing.get(event.track);
      if (event.part === 0 || !object) {
        object?.complete(this.#store.now());
        object = this.#store.begin(segmentPath(event.track, event.segment));
        this.#growing.set(event.track, object);
      }
      for (const part of event.parts) object.append(part);
      this.#onChunkWritten?.(event, performance.timeOrigin + performance.now());
    } else {
      this.#growing.get(event.track)?.complete(this.#store.now());
      this.#growing.delete(event.track);
    }
  }

  async writeManifest(name: string, text: string): Promise<void> {
    this.#store.put(name, new TextEncoder().encode(text));
  }

  async flush(): Promise<void> {
    // Segments still growing at the end were cut: readers must not take them for complete.
    for (const object of this.#growing.values()) object.abort();
    this.#growing.clear();
  }
}
