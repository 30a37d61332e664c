import { mkdir, readdir, readFile, stat, unlink } from 'node:fs/promises';
import { dirname, join, relative, sep } from 'node:path';
import { TEMPORARY_PREFIX, writeAtomically } from '../files.ts';
import type { Logger } from '../log.ts';
import { handlerOf, storeKey } from './http.ts';
import type { ObjectStore, StoredObject } from './store.ts';
import { classifyObject } from '../layout/object-names.ts';

/**
 * `appliance origin --dir`: every complete upload is also a file, written before the upload is
 * acknowledged, so a restarted origin serves what its uploaders were told it had. No fsync per
 * object: a crash of the process loses nothing acknowledged, a power cut may lose the last seconds
 * the kernel had not written back.
 */
export class PersistedStore {
  readonly #dir: string;
  readonly #logger: Logger;
  readonly #writing = new Map<string, Promise<void>>();

  constructor(dir: string, logger: Logger) {
    this.#dir = dir;
    this.#logger = logger;
  }

  #file(key: string): string {
    return join(this.#dir, ...key.split('/'));
  }

  /** Writes the object; rejects (after logging) when it could not be kept. */
  keep(object: StoredObject): Promise<void> {
    // One path's writes land in the order their uploads completed: a newer upload is never
    // overwritten by an older one whose write happened to finish later.
    const previous = this.#writing.get(object.path) ?? Promise.resolve();
    const write = previous.then(() => this.#write(object));
    const settled = write.catch(() => undefined);
    this.#writing.set(object.path, settled);
    void settled.then(() => this.#writing.get(object.path) === settled && this.#writing.delete(object.path));
    return write;
  }

  async #write(object: StoredObject): Promise<void> {
    const file = this.#file(object.path);
    try {
      await mkdir(dirname(file), { recursive: true });
      await writeAtomically(file, Buffer.concat(object.chunks));
    } catch (error) {
      this.#logger.error({ err: error, path: object.path }, 'origin: writing to --dir failed; the upload is refused');
      throw error;
    }
  }

  remove(key: string): void {
    void unlink(this.#file(key)).catch(() => undefined);
  }

  /**
   * Loads what the directory holds into `store`, as it was (modification times kept, so expiry goes
   * on as before the restart): media older than the window is deleted instead, as are temporary
   * files a crash left. Returns how many objects were loaded.
   */
  async load(store: ObjectStore, windowMs: number): Promise<{ loaded: number; deleted: number }> {
    const oldest = store.now() - windowMs;
    let loaded = 0;
    let deleted = 0;
    const entries = await readdir(this.#dir, { recursive: true, withFileTypes: true });
    // Oldest first, so each rendition's newest segment is the one the store calls its latest.
    const files: { key: string; file: string; modifiedAt: number }[] = [];
    for (const entry of entries) {
      if (!entry.isFile()) continue;
      const file = join(entry.parentPath, entry.name);
      if (entry.name.startsWith(TEMPORARY_PREFIX)) {
        await unlink(file).catch(() => undefined);
        deleted++;
        continue;
      }
      const key = storeKey(`/${relative(this.#dir, file).split(sep).map(encodeURIComponent).join('/')}`);
      if (!key) continue;
      files.push({ key, file, modifiedAt: (await stat(file)).mtimeMs });
    }
    files.sort((a, b) => a.modifiedAt - b.modifiedAt);
    for (const { key, file, modifiedAt } of files) {
      const { kind, directory } = classifyObject(key);
      if (kind !== 'manifest' && kind !== 'init' && modifiedAt < oldest) {
        await unlink(file).catch(() => undefined);
        deleted++;
        continue;
      }
      const object = store.restore(key, await readFile(file), modifiedAt);
      if (kind === 'init') store.markAudio(directory, handlerOf(object) === 'soun');
      loaded++;
    }
    return { loaded, deleted };
  }
}
