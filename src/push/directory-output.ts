import { mkdir, open, readdir, unlink, type FileHandle } from 'node:fs/promises';
import { join } from 'node:path';
import { writeAtomically } from '../files.ts';
import type { Logger } from '../log.ts';
import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import type { HlsPlaylists } from '../packager/hls-playlists.ts';
import { mediaFileSegment, segmentPath } from '../layout/object-names.ts';
import { oldestKept } from '../timeline/window.ts';

/**
 * Delivers packager events into a directory as they happen: a segment file is opened with its
 * first chunk and each chunk is appended at once (a reader sees the file grow chunk by chunk);
 * manifests and init segments replace their file atomically; segments older than the time-shift
 * window are deleted. Writes of one track stay in order; tracks do not wait for each other.
 */
export class DirectoryOutput {
  readonly dir: string;
  readonly #segdur: number;
  readonly #timeShiftBufferDepth: number;
  readonly #logger: Logger;
  readonly #onChunkWritten: ((event: ChunkEvent, writtenAt: number) => void) | undefined;
  readonly #queues = new Map<string, Promise<void>>();
  readonly #open = new Map<string, FileHandle>();
  #failures = 0;
  readonly #hls: HlsPlaylists | undefined;
  #multivariantName: string | undefined;
  #multivariantWritten: string | undefined;

  constructor(options: {
    dir: string;
    segdur: number;
    timeShiftBufferDepth: number;
    logger: Logger;
    onChunkWritten?: (event: ChunkEvent, writtenAt: number) => void;
    /** HLS playlists (and part files) written beside the segments. */
    hls?: HlsPlaylists | undefined;
  }) {
    this.#hls = options.hls;
    this.dir = options.dir;
    this.#segdur = options.segdur;
    this.#timeShiftBufferDepth = options.timeShiftBufferDepth;
    this.#logger = options.logger;
    this.#onChunkWritten = options.onChunkWritten;
  }

  /** Writes that failed (logged each time); the stream goes on. */
  get failures(): number {
    return this.#failures;
  }

  handle(event: PackagerEvent): void {
    this.#enqueue(event.track, () => this.#write(event));
  }

  async writeManifest(name: string, text: string): Promise<void> {
    await writeAtomically(join(this.dir, name), text);
  }

  /** The multivariant playlist and every media playlist as they stand (at start; at the end, with ENDLIST). */
  writePlaylists(multivariantName: string): void {
    const hls = this.#hls;
    if (!hls) return;
    this.#multivariantName = multivariantName;
    this.#writeMultivariant(hls.multivariant());
    for (const track of hls.timeline.tracks())
      this.#enqueue(track, async () => {
        const text = hls.media(track);
        if (text) await this.writeManifest(hls.names.mediaPlaylist(track), text);
      });
  }

  /** Writes the multivariant playlist if it changed, after what the other tracks' queues have under way. */
  #writeMultivariant(text: string | undefined, from?: string): void {
    const name = this.#multivariantName;
    if (!text || !name || text === this.#multivariantWritten) return;
    this.#multivariantWritten = text;
    const underWay = [...this.#queues.entries()].filter(([queue]) => queue !== from).map(([, p]) => p);
    this.#enqueue('', async () => {
      await Promise.all(underWay);
      await this.writeManifest(name, text);
    });
  }

  /** Resolves when everything handed over so far is on disk and every segment file is closed. */
  async flush(): Promise<void> {
    await Promise.all(this.#queues.values());
    await Promise.all([...this.#open.values()].map((handle) => handle.close()));
    this.#open.clear();
  }

  #enqueue(track: string, operation: () => Promise<void>): void {
    const previous = this.#queues.get(track) ?? Promise.resolve();
    this.#queues.set(
      track,
      previous.then(operation).catch((error: unknown) => {
        this.#failures++;
        this.#logger.error({ track, err: error }, 'directory output: write failed');
      }),
    );
  }

  async #write(event: PackagerEvent): Promise<void> {
    const track = event.track;
    if (event.type === 'init') {
      await mkdir(join(this.dir, track), { recursive: true });
      await writeAtomically(join(this.dir, event.path), event.bytes);
      await this.#expireLeftovers(track);
      // A new period may leave a rendition out or bring it back: new players see the variants it has.
      if (this.#multivariantWritten !== undefined) this.#writeMultivariant(this.#hls?.multivariant(), track);
    } else if (event.type === 'chunk') {
      let handle = this.#open.get(track);
      if (event.part === 0 || !handle) {
        await handle?.close();
        handle = await open(join(this.dir, segmentPath(track, event.segment)), 'w');
        this.#open.set(track, handle);
      }
      await handle.writev(event.parts);
      if (this.#hls) {
        const { partFile, playlist, multivariantReady, absentPlaylists } = this.#hls.onChunk(event);
        if (partFile) await writeAtomically(join(this.dir, partFile.path), Buffer.concat(partFile.bytes));
        if (playlist) await this.writeManifest(playlist.name, playlist.text);
        for (const absent of absentPlaylists ?? []) await this.writeManifest(absent.name, absent.text);
        // Written once every playlist it names exists (see HlsPlaylists.mediaPlaylistsReady).
        // After the other tracks' writes under way: their first playlists may still be on the way to disk.
        if (multivariantReady) this.#writeMultivariant(this.#hls.multivariant(), track);
      }
      this.#onChunkWritten?.(event, performance.timeOrigin + performance.now());
    } else {
      await this.#open.get(track)?.close();
      this.#open.delete(track);
      const expired = oldestKept(event.segment, this.#segdur, this.#timeShiftBufferDepth) - 1n;
      if (expired >= 0n) {
        await unlink(join(this.dir, segmentPath(track, expired))).catch(() => undefined);
        for (
          let index = 0;
          this.#hls?.session.llhls === 'sf' && index < this.#hls.session.timing.partsPerSegment;
          index++
        ) {
          await unlink(join(this.dir, this.#hls.names.partFile(track, expired, index))).catch(() => undefined);
        }
      }
    }
  }

  /** Segments a previous run left behind, older than the window of now. */
  async #expireLeftovers(track: string): Promise<void> {
    const now = BigInt(Math.floor(Date.now() / 1000 / this.#segdur));
    const oldest = oldestKept(now, this.#segdur, this.#timeShiftBufferDepth);
    for (const name of await readdir(join(this.dir, track))) {
      const segment = mediaFileSegment(name);
      if (segment !== undefined && segment < oldest) await unlink(join(this.dir, track, name)).catch(() => undefined);
    }
  }
}
