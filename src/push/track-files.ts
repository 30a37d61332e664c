import { createWriteStream, type WriteStream } from 'node:fs';
import { join } from 'node:path';
import { finished } from 'node:stream/promises';
import type { Readable } from 'node:stream';

/**
 * Writes each track's fragmented MP4 as it arrives to `<dir>/<track>.mp4`, until the packager
 * turns them into CMAF segments. Every byte ffmpeg produced is on disk when `close` resolves.
 */
export class TrackFiles {
  readonly #files = new Map<string, WriteStream>();
  readonly #done: Promise<void>[] = [];
  readonly dir: string;

  constructor(dir: string, tracks: ReadonlyMap<string, Readable>, onData?: (trackId: string, piece: Uint8Array) => void) {
    this.dir = dir;
    for (const [id, stream] of tracks) {
      const file = createWriteStream(join(dir, `${id}.mp4`));
      this.#files.set(id, file);
      if (onData) stream.on('data', (piece: Uint8Array) => onData(id, piece));
      stream.pipe(file);
      this.#done.push(finished(file));
    }
  }

  get paths(): string[] {
    return [...this.#files.keys()].map((id) => join(this.dir, `${id}.mp4`));
  }

  /** Resolves once every track's stream has ended and its file is flushed and closed. */
  async close(): Promise<void> {
    await Promise.all(this.#done);
  }
}
