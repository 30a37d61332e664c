import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Logger } from '../log.ts';
import type { Profile } from '../config/schema.ts';
import { BoxFormatError, readBoxHeader, TopLevelBoxSplitter, type StreamBox } from '../packager/boxes.ts';
import { CORS } from './cors.ts';
import { IngestRefusal, IngestStream } from './cmaf-ingest-stream.ts';
import { DEFAULT_LIMITS, refuseUnread, watchBodyProgress, type OriginLimits } from './limits.ts';
import type { ObjectStore } from './store.ts';

// The HTTP side of CMAF ingest (DASH-IF Interface-1) at `appliance origin`: requests to
// `<stream path>/Streams(<track>.cmfv|.cmfa)` are read box by box as they arrive and handed to
// the stream's IngestStream, which packages them; whatever breaks a rule is answered with the
// status the spec gives it (412 media before a header, 415 not CMAF, 400 otherwise), naming the rule.

export interface CmafIngestTarget {
  directory: string;
  track: string;
  /** From the name's extension; `header`: told by the CMAF header's handler (v1.1 template names). */
  kind: 'video' | 'audio' | 'other' | 'header';
  /** A posted MPD (v1.1 template names): acknowledged, its names the ones taken here, not kept. */
  manifest?: boolean;
}

/**
 * Pure: a store key → the stream's directory, the track and its kind, when it names a CMAF ingest
 * stream: `<stream>/Streams(<track>.cmfv|.cmfa)`, or, from a sender that says it speaks DASH-IF
 * ingest (`DASH-IF-Ingest:`), the v1.1 names of its posted MPD's SegmentTemplate
 * (`<stream>/<track>/init.mp4`, `<stream>/<track>/<n>.m4s`, and the MPD itself). Without that header
 * such names are an Interface-2 push, stored as given.
 */
export function cmafIngestTarget(key: string, declared = false): CmafIngestTarget | undefined {
  const streams = /^(.+)\/Streams\(([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\.(cmfv|cmfa|cmft|cmfm)\)$/.exec(key);
  if (streams) {
    const kind = streams[3] === 'cmfv' ? 'video' : streams[3] === 'cmfa' ? 'audio' : 'other';
    return { directory: streams[1]!, track: streams[2]!, kind };
  }
  if (!declared) return undefined;
  const template = /^(.+)\/([A-Za-z0-9_][A-Za-z0-9_.-]{0,63})\/(?:init\.mp4|\d{1,20}\.m4s)$/.exec(key);
  if (template) return { directory: template[1]!, track: template[2]!, kind: 'header' };
  const mpd = /^(.+)\/[^/]+\.mpd$/.exec(key);
  if (mpd) return { directory: mpd[1]!, track: '', kind: 'header', manifest: true };
  return undefined;
}

/** Top-level boxes a CMAF header or segment may begin with. */
const CMAF_BOXES = new Set(['ftyp', 'moov', 'styp', 'prft', 'emsg', 'moof', 'sidx', 'free', 'mfra']);

const HEADER_BOXES = new Set(['ftyp', 'moov']);

/** Streams packaged at once, at most. */
const MAX_STREAMS = 64;
/** A CMAF header is a few hundred bytes to a few kB. */
const MAX_HEADER_BYTES = 1 << 20;

export interface CmafIngestOptions {
  store: ObjectStore;
  /** The packaging's timing: segdur (which senders must share), cdur, asto, LL-HLS. */
  profile: Profile;
  /** The largest box (a chunk's mdat) taken. */
  maxBodyBytes: number;
  limits?: OriginLimits | undefined;
  /** The clock the manifests name (the origin's own /time). */
  utcTimingUrl: () => string;
  logger: Logger;
}

export class CmafIngestReceiver {
  readonly #options: CmafIngestOptions;
  readonly #streams = new Map<string, IngestStream>();

  constructor(options: CmafIngestOptions) {
    this.#options = options;
  }

  /** Reads one request of a CMAF ingest stream and answers it; never throws. */
  receive(req: IncomingMessage, res: ServerResponse, target: CmafIngestTarget, key: string): void {
    const { logger } = this.#options;
    const { track, kind } = target;
    if (target.manifest) return void this.#postedManifest(req, res, key);
    if (kind === 'other') {
      refuseUnread(req, res, 415, `${key}: only video (.cmfv) and audio (.cmfa) tracks are packaged here`);
      return;
    }
    // A stream exists from its first header or media on: an empty body (a session opened) makes none.
    let opened: IngestStream | undefined;
    const stream = (): IngestStream => {
      opened ??= this.#stream(target.directory);
      if (!opened) throw new IngestRefusal(503, `this origin packages at most ${MAX_STREAMS} streams at once`);
      return opened;
    };
    const registerHeader = () => stream().header(track, kind === 'header' ? undefined : kind, header);
    const splitter = new TopLevelBoxSplitter();
    const progress = watchBodyProgress(req, this.#options.limits ?? DEFAULT_LIMITS, logger, key);
    let mode: 'header' | 'media' | undefined;
    const header: StreamBox[] = [];
    let headerBytes = 0;
    let reader: ReturnType<IngestStream['media']> | undefined;
    let answered = false;
    let started = false;
    let start: Buffer = Buffer.alloc(0);
    const refuse = (status: number, message: string) => {
      if (answered) return;
      answered = true;
      progress.done();
      reader?.abort();
      logger.warn({ path: key, status, problem: message }, 'origin: CMAF ingest refused');
      // The rest of the body is not read: the connection ends with the answer.
      refuseUnread(req, res, status, message);
    };
    const run = (step: () => void) => {
      if (answered) return;
      try {
        step();
      } catch (error) {
        if (error instanceof IngestRefusal) refuse(error.status, error.message);
        else if (error instanceof BoxFormatError) refuse(mode === 'media' ? 400 : 415, `${key}: ${error.message}`);
        else {
          logger.error({ err: error, path: key }, 'origin: CMAF ingest failed inside the origin; answered 500');
          refuse(500, 'internal error');
        }
      }
    };
    req.on('data', (piece: Buffer) =>
      run(() => {
        const boxes = splitter.push(new Uint8Array(piece.buffer, piece.byteOffset, piece.byteLength));
        if (splitter.buffered > this.#options.maxBodyBytes)
          throw new IngestRefusal(413, `${key}: a box larger than ${this.#options.maxBodyBytes} bytes`);
        if (!started) {
          // Not CMAF, told from the body's first box header as soon as it is here.
          start = start.byteLength ? Buffer.concat([start, piece]) : piece;
          const first = readBoxHeader(new Uint8Array(start.buffer, start.byteOffset, start.byteLength), 0);
          if (first && !CMAF_BOXES.has(first.type))
            throw new IngestRefusal(415, `${key}: not CMAF (a body starting with a "${first.type}" box)`);
          started = first !== undefined;
        }
        let at = 0;
        // A header (ftyp, moov) first; a v1.0 sender's long POST goes on with the media in the same body.
        while (mode !== 'media' && at < boxes.length && HEADER_BOXES.has(boxes[at]!.type)) {
          mode = 'header';
          header.push(boxes[at]!);
          headerBytes += boxes[at++]!.size;
          if (headerBytes > MAX_HEADER_BYTES)
            throw new IngestRefusal(413, `${key}: a CMAF header larger than ${MAX_HEADER_BYTES} bytes`);
        }
        if (at === boxes.length) return;
        if (mode === 'header') registerHeader();
        mode = 'media';
        reader ??= stream().media(track);
        reader.take(at ? boxes.slice(at) : boxes);
      }),
    );
    req.on('end', () =>
      run(() => {
        progress.done();
        if (splitter.buffered) throw new IngestRefusal(400, `${key}: the body ends inside a box`);
        if (mode === 'header') registerHeader();
        reader?.end();
        answered = true;
        // An empty body opens a session (DASH-IF ingest): nothing to keep.
        res.writeHead(200, { ...CORS, 'Cache-Control': 'no-store' });
        res.end();
      }),
    );
    req.on('close', () => {
      if (!answered) reader?.abort();
    });
  }

  /**
   * A posted MPD (v1.1 names): the origin names the tracks as the sender does and makes its own
   * manifests, so the body is read (within --max-body and the body timeout) and acknowledged.
   */
  #postedManifest(req: IncomingMessage, res: ServerResponse, key: string): void {
    const { logger, maxBodyBytes } = this.#options;
    const progress = watchBodyProgress(req, this.#options.limits ?? DEFAULT_LIMITS, logger, key);
    let received = 0;
    req.on('data', (piece: Buffer) => {
      received += piece.byteLength;
      if (received > maxBodyBytes && !res.headersSent) {
        progress.done();
        refuseUnread(req, res, 413, `${key}: body larger than ${maxBodyBytes} bytes`);
      }
    });
    req.on('end', () => {
      progress.done();
      if (res.headersSent) return;
      logger.debug({ path: key }, 'origin: CMAF ingest: a posted MPD, acknowledged (the manifests are made here)');
      res.writeHead(200, { ...CORS, 'Cache-Control': 'no-store' });
      res.end();
    });
  }

  /** Every stream received, per track (for /status). */
  status(): Record<string, ReturnType<IngestStream['status']>> {
    return Object.fromEntries([...this.#streams].map(([directory, stream]) => [directory, stream.status()]));
  }

  /** Whether `key` is under a stream this origin packages (it takes no other upload there). */
  packages(key: string): boolean {
    for (const directory of this.#streams.keys()) if (key.startsWith(`${directory}/`)) return true;
    return false;
  }

  #stream(directory: string): IngestStream | undefined {
    let stream = this.#streams.get(directory);
    if (stream) return stream;
    if (this.#streams.size >= MAX_STREAMS) {
      // Streams nothing came for in a time-shift window are forgotten (their objects expired with it).
      const idleSince = Date.now() - (this.#options.profile.tsb + 2 * this.#options.profile.segdur) * 1000;
      for (const [name, old] of this.#streams) if (old.lastActivity < idleSince) this.#streams.delete(name);
      if (this.#streams.size >= MAX_STREAMS) return undefined;
    }
    stream = new IngestStream({
      directory,
      store: this.#options.store,
      profile: this.#options.profile,
      utcTimingUrl: this.#options.utcTimingUrl,
      logger: this.#options.logger,
    });
    this.#streams.set(directory, stream);
    return stream;
  }
}
