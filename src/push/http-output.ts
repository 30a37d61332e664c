import { RepeatLimiter, type Logger } from '../log.ts';
import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import { oldestKept } from '../timeline/window.ts';
import { Lane, type LaneOptions } from './lane.ts';
import type { OriginCapabilities } from './origin-capabilities.ts';
import type { Delivery, DropReason, ManifestBuilder, PushEvent, SegmentUpload } from './push-types.ts';
import { ControlLane } from './control-lane.ts';
import { Deliverer } from './deliverer.ts';
import { UploadBody } from './upload-body.ts';
import { SharedMedia } from './shared-media.ts';
import type { ClientCertificate } from './client-certificate.ts';
import { RetryStreak, safeUrl } from './upload-outcome.ts';
import { Wakeup } from './wakeup.ts';
import { HlsPush } from './hls-push.ts';
import { ShedState } from '../packager/shed.ts';
import type { HlsSession, OutputFormats } from '../packager/hls-playlists.ts';
import { HLS_CONTENT_TYPE } from '../packager/hls-playlist.ts';
import { CmafTrackNames } from './cmaf-ingest.ts';
import { TrackHeaders, type CmafNaming } from './track-headers.ts';

export interface HttpPushOptions {
  /**
   * The manifest's URL; every other object goes next to it. With `cmaf`, the publishing point's
   * (a URL ending in `/`): every object goes inside it.
   */
  url: URL;
  /**
   * CMAF ingest (DASH-IF Interface-1) instead of DASH/HLS objects with manifests: each track's
   * header and segments under the names the origin profile's receiver takes; a posted MPD only
   * for a receiver that names tracks from one (`formats.dash`), no playlists, no DELETEs.
   */
  cmaf?: { chunksPerSegment: number } | undefined;
  /** What the origin does (from --origin-profile): what the manifests may promise. */
  origin: OriginCapabilities;
  method: 'PUT' | 'POST';
  segdur: number;
  tsb: number;
  /** availabilityTimeOffset for origins that serve growing segments. */
  asto: number;
  utcTimingUrl: string;
  /**
   * Where unacknowledged media is held: shared by every push output of a run (each chunk held once
   * whatever the number of origins), under one budget. Without it, a budget of this output's own.
   */
  media?: SharedMedia | undefined;
  /** Unacknowledged media kept at most, in bytes, when no shared media is given; beyond it the oldest unsent is dropped. */
  budgetBytes?: number | undefined;
  /** Sent with every request (credentials, the user's headers). */
  headers: Record<string, string>;
  ca: string[] | undefined;
  /** Presented to the output's own origin (never to one it is redirected to). */
  clientCertificate?: ClientCertificate | undefined;
  userAgent: string;
  deleteExpired: boolean;
  logger: Logger;
  /** The formats the output carries and their names; HLS playlists (and part files) when `hls` is set. */
  formats: OutputFormats;
  hls?: HlsSession | undefined;
  onEvent?: ((event: PushEvent) => void) | undefined;
  onChunkWritten?: ((event: ChunkEvent, writtenAt: number) => void) | undefined;
  /** The output gave up for good (refused credentials, an untrusted certificate, a refused init). */
  onFatal?: ((error: Error) => void) | undefined;
}

interface TrackState {
  id: string;
  kind: 'video' | 'audio';
  /** Its inits by period, and where each and its media go. */
  headers: TrackHeaders;
  /** The newest header was acknowledged once. */
  initAcknowledged: boolean;
  /**
   * CMAF ingest with a posted MPD: the track's name in the last MPD built, and in the last one the
   * receiver acknowledged; no header goes before the receiver knows its name (or refused the MPD).
   */
  nameBuilt: string | undefined;
  nameKnown: string | undefined;
  queue: SegmentUpload[];
  growing: SegmentUpload | undefined;
  live: bigint | undefined;
  lane: Lane;
  wakeup: Wakeup;
  /** Consecutive failed attempts on the track's connection, and the backoff after each. */
  streak: RetryStreak;
  failingSince: number | undefined;
  acknowledged: Set<bigint>;
  /** Segments dropped for good (budget, expiry, refusal): gaps in this origin's playlists. */
  gaps: Set<bigint>;
  loop: Promise<void>;
}

/** Gaps remembered per track: more than any playlist window names. */
const GAPS_KEPT = 64;

/** Segments this far behind the newest are sent by the backfill connection, not ahead of live media. */
const BACKFILL_AFTER = 3n;

const now = () => performance.timeOrigin + performance.now();
const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/**
 * Pushes the stream to one origin over HTTP: per track one keep-alive connection carrying one
 * request per segment, opened with the segment's first chunk and fed each chunk as it is made;
 * manifests (coalesced: one in flight, the newest pending) and DELETEs on a connection of their
 * own; missed segments re-sent by a backfill connection. Nothing here ever waits on the encoder's
 * side: `handle` only appends to memory, bounded by the budget.
 */
export class HttpPushOutput {
  readonly name: string;
  readonly #options: HttpPushOptions;
  readonly #deliverer: Deliverer;
  readonly #manifestName: string;
  readonly #tracks = new Map<string, TrackState>();
  readonly #laneOptions: LaneOptions;
  readonly #control: ControlLane;
  readonly #backfill: Lane;
  readonly #backfillWakeup = new Wakeup();
  readonly #loops: Promise<void>[] = [];
  /** At most one "media dropped" warning per reason per 10 s. */
  readonly #dropWarnings = new RepeatLimiter(10_000);
  #droppedSegments = 0;
  #backlogBytes = 0;
  /** Where the media waiting for the origin is held (with the other push outputs'): its limit is the budget. */
  readonly #media: SharedMedia;
  readonly #leaveMedia: () => void;
  /** Aborted when the output stops (flushed, or failed for good): loops end, pauses are cut short. */
  readonly #stopController = new AbortController();
  #fatal: Error | undefined;
  readonly #hls: HlsPush | undefined;
  readonly #shedding = new ShedState();
  /** Bytes of the shed segment in progress, per track. */
  readonly #shedBytes = new Map<string, number>();
  #manifest: ManifestBuilder | undefined;
  /** CMAF ingest naming (undefined: DASH ingest). */
  readonly #cmafNaming: CmafNaming | undefined;
  /** CMAF ingest with a posted MPD that the receiver refused: the tracks go without waiting for it. */
  #manifestRefused = false;
  /** Late segments (moved to the backfill connection) are dropped, never sent after newer ones. */
  readonly #inOrderOnly: boolean;

  constructor(options: HttpPushOptions) {
    this.#options = options;
    this.name = safeUrl(options.url);
    const cmaf = options.cmaf !== undefined;
    this.#cmafNaming = options.cmaf && {
      naming: options.origin.cmafNaming,
      chunksPerSegment: options.cmaf.chunksPerSegment,
      names: new CmafTrackNames(),
    };
    this.#inOrderOnly = cmaf && !options.origin.acceptsLateSegments;
    this.#media = options.media ?? new SharedMedia(options.budgetBytes ?? 0);
    this.#leaveMedia = this.#media.join({
      oldestDroppable: () => this.#oldestDroppable()?.segment,
      dropOldest: () => {
        const oldest = this.#oldestDroppable();
        if (oldest) this.#drop(oldest, 'budget');
      },
    });
    this.#deliverer = new Deliverer({
      ...options,
      name: this.name,
      emit: (event) => this.#emit(event),
      fail: (error) => this.#fail(error),
      pause: (ms) => this.#pause(ms),
      stopped: () => this.#done,
      headerFirst: options.cmaf && {
        moved: () => {
          for (const lane of [this.#backfill, ...[...this.#tracks.values()].map((t) => t.lane)]) lane.initsSent.clear();
        },
      },
    });
    this.#manifestName = options.formats.mpd;
    const laneOptions = {
      ca: options.url.protocol === 'https:' ? options.ca : undefined,
      clientCertificate:
        options.url.protocol === 'https:' && options.clientCertificate
          ? { cert: options.clientCertificate.cert, key: options.clientCertificate.key, origin: options.url.origin }
          : undefined,
      connectMs: Math.max(1000, Math.min(6000, options.segdur * 1000)),
      stallMs: Math.max(2000, 2 * options.segdur * 1000),
    };
    this.#backfill = new Lane(laneOptions);
    this.#laneOptions = laneOptions;
    this.#control = new ControlLane(
      {
        ...options,
        manifestName: this.#manifestName,
        tracks: () => this.#tracks.values(),
        deliver: (lane, path, body, contentType, method) =>
          this.#deliverer.deliver({ lane, stream: method ? 'delete' : 'manifest', path, body, contentType, method }),
        companions: (track, segment) => this.#hls?.companions(track, segment) ?? [],
        pause: (ms) => this.#pause(ms),
        stopped: () => this.#done,
        onManifestAcknowledged: (bytes, attempts) => {
          this.#namesKnown();
          this.#emit({
            type: 'acknowledged',
            output: this.name,
            track: 'manifest',
            object: 'manifest',
            bytes,
            attempts,
            ackMs: undefined,
          });
        },
        onDeleteGivenUp: (path, attempts) => {
          this.#emit({ type: 'delete-given-up', output: this.name, path, attempts });
          if (this.#dropWarnings.admit('delete', Date.now()).log)
            this.#options.logger.warn(
              { output: this.name, path, attempts },
              'push: an expired object could not be deleted at the origin; it stays there (counted as deletesGivenUp in the push log)',
            );
        },
        shedSpans: () => this.#shedding.spans,
        manifestFirst: cmaf,
        streamName: cmaf
          ? (id) => {
              const track = this.#tracks.get(id);
              if (!track) return id;
              track.nameBuilt = track.headers.newest.streamName;
              return track.nameBuilt;
            }
          : undefined,
        onManifestRefused: () => {
          if (!cmaf || this.#manifestRefused) return;
          this.#manifestRefused = true;
          this.#options.logger.warn(
            { output: this.name },
            'push: the CMAF ingest receiver refused the MPD (see the log); the tracks go under their names anyway',
          );
          for (const track of this.#tracks.values()) track.wakeup.wake();
        },
      },
      new Lane(laneOptions),
      new Lane({ ...laneOptions, pipelining: 8 }),
    );
    this.#loops.push(this.#control.loop, this.#runBackfill());
    if (options.formats.hls && options.hls) {
      const hls = options.hls;
      this.#hls = new HlsPush({
        session: hls,
        formats: options.formats,
        origin: options.origin,
        segdur: options.segdur,
        laneOptions,
        deliver: (lane, path, body, contentType) =>
          this.#deliverer.deliver({ lane, stream: 'playlist', path, body, contentType }),
        pause: (ms) => this.#pause(ms),
        stopped: () => this.#done,
        track: (id) => this.#tracks.get(id),
        onPartDropped: (track, part) =>
          this.#emit({
            type: 'dropped',
            output: this.name,
            track,
            segment: part.segment,
            bytes: part.bytes.byteLength,
            reason: this.#done ? 'stopped' : 'expired',
          }),
        onPlaylistDelivered: () => this.#control.touchDocument(options.formats.multivariant),
      });
      this.#control.publishDocument(options.formats.multivariant, HLS_CONTENT_TYPE, () => this.#hls!.multivariant(), {
        onDelivered: () => {
          this.#hls!.multivariantDelivered = true;
        },
      });
    }
  }

  get #done(): boolean {
    return this.#stopController.signal.aborted;
  }

  /** The output stopped for good; its error says why. */
  get fatal(): Error | undefined {
    return this.#fatal;
  }

  get failures(): number {
    return this.#fatal ? 1 : 0;
  }

  get backlogBytes(): number {
    return this.#backlogBytes;
  }

  /** Memory holding push media now (shared by every push output), and the most it ever held: the budget bounds both. */
  get heldBytes(): number {
    return this.#media.pool.allocatedBytes;
  }

  get peakHeldBytes(): number {
    return this.#media.pool.peakBytes;
  }

  handle(event: PackagerEvent): void {
    if (this.#done) return;
    if (event.type === 'init') {
      this.#onInit(
        event.track,
        event.info.handler === 'soun' ? 'audio' : 'video',
        event.bytes,
        event.path,
        event.periodStart ?? 0n,
      );
      return;
    }
    const track = this.#tracks.get(event.track);
    if (!track) return;
    if (event.type === 'chunk') {
      if (this.#shedding.covers(track.id, event.segment)) {
        // Not sent, and counted as such (reason `shed`) when the segment ends.
        if (event.part === 0) {
          track.growing = undefined;
          track.live = event.segment;
        }
        this.#shedBytes.set(track.id, (this.#shedBytes.get(track.id) ?? 0) + event.byteLength);
        return;
      }
      if (event.part === 0) {
        const header = track.headers.of(event.segment);
        const upload: SegmentUpload = {
          track: track.id,
          segment: event.segment,
          path: header.segmentPath(event.segment),
          header: { path: header.path, bytes: header.bytes },
          body: new UploadBody(),
          attempts: 0,
          completedAt: undefined,
          sending: false,
          lane: 'live',
          redirectedTo: undefined,
          redirects: 0,
        };
        track.queue.push(upload);
        track.growing = upload;
        track.live = event.segment;
      }
      if (track.growing?.segment !== event.segment) return;
      const chunk = this.#hold(track, event);
      // A segment dropped while it grew (now, to make room, or before) takes none of its later chunks.
      const upload = track.growing;
      if (!chunk || !upload || upload.segment !== event.segment) return;
      upload.body.append(chunk);
      this.#backlogBytes += chunk.byteLength;
      this.#hls?.onChunk(event);
      this.#options.onChunkWritten?.(event, now());
    } else {
      const shedBytes = this.#shedBytes.get(track.id);
      if (shedBytes !== undefined) {
        this.#shedBytes.delete(track.id);
        this.#emit({
          type: 'dropped',
          output: this.name,
          track: track.id,
          segment: event.segment,
          bytes: shedBytes,
          reason: 'shed',
        });
      }
      const upload = track.growing;
      if (upload && upload.segment === event.segment) {
        upload.body.finish();
        upload.completedAt = now();
      }
      track.growing = undefined;
      this.#control.expire(track, event.segment);
      this.#emit({
        type: 'backlog',
        output: this.name,
        bytes: this.#backlogBytes,
        heldBytes: this.#media.pool.allocatedBytes,
        peakHeldBytes: this.#media.pool.peakBytes,
      });
      this.#backfillWakeup.wake();
    }
    track.wakeup.wake();
  }

  /** Sets what the manifest says; it is sent once every init segment is acknowledged, and again whenever it changes. */
  publishManifest(build: ManifestBuilder): void {
    // The MPD posted for CMAF ingest says only which tracks there are and their names: it goes
    // once, and again only when a name changes (#onInit), never with a new period.
    if (this.#options.cmaf && this.#manifest) return;
    this.#manifest = build;
    if (this.#options.formats.dash) this.#control.publish(build);
    this.#hls?.publishAll();
  }

  /**
   * Stops (or resumes) delivering `track` from the next segment boundary, and says so in the
   * manifests (a new period; the multivariant playlist). Returns that boundary.
   */
  shed(track: string, on: boolean): bigint | undefined {
    const state = this.#tracks.get(track);
    if (!state || state.live === undefined) return undefined;
    const boundary = state.live + 1n;
    if (on) this.#shedding.shed(track, boundary);
    else this.#shedding.restore(track, boundary);
    this.#shedding.forgetBefore(boundary - BigInt(Math.ceil(this.#options.tsb / this.#options.segdur)) - 1n);
    if (on) this.#hls?.playlists.hidden.add(track);
    else this.#hls?.playlists.hidden.delete(track);
    if (this.#hls) this.#control.touchDocument(this.#options.formats.multivariant);
    if (this.#manifest) this.publishManifest(this.#manifest);
    return boundary;
  }

  /**
   * Waits (up to `timeoutMs`) for everything made so far to be acknowledged and the manifest to
   * be delivered; what is still unsent then is dropped and counted. The output is closed after.
   */
  async flush(timeoutMs = Math.max(5000, 3 * this.#options.segdur * 1000)): Promise<void> {
    const deadline = now() + timeoutMs;
    while (
      !this.#fatal &&
      now() < deadline &&
      (this.#control.pending || this.#hls?.pending || [...this.#tracks.values()].some((t) => t.queue.length))
    )
      await sleep(20);
    const left = [...this.#tracks.values()].flatMap((t) => t.queue);
    if (left.length)
      this.#options.logger.warn(
        { output: this.name, segments: left.length },
        'push: segments still unacknowledged at stop are dropped',
      );
    for (const upload of left) this.#drop(upload, this.#fatal ? 'fatal' : 'stopped');
    this.#hls?.dropQueued();
    this.#stop();
    await Promise.all([...this.#loops, ...(this.#hls?.loops ?? []), ...[...this.#tracks.values()].map((t) => t.loop)]);
    await Promise.all([
      this.#control.close(),
      this.#backfill.close(),
      this.#hls?.close(),
      ...[...this.#tracks.values()].map((t) => t.lane.close()),
    ]);
  }

  #onInit(id: string, kind: 'video' | 'audio', init: Uint8Array, packagerPath: string, periodStart: bigint): void {
    const track = this.#tracks.get(id);
    if (track) {
      const { changed, renamed } = track.headers.set(periodStart, init, packagerPath);
      // A new init (a new period) goes out again on every connection before more media.
      if (changed) {
        track.initAcknowledged = false;
        const path = track.headers.newest.path;
        for (const lane of [track.lane, this.#backfill]) lane.initsSent.delete(path);
      }
      if (renamed) {
        this.#options.logger.info(
          { output: this.name, track: id, to: track.headers.newest.streamName },
          'push: the track has a new CMAF header: its media goes on as another track at the receiver',
        );
        this.#control.touch();
      }
      track.wakeup.wake();
      return;
    }
    const headers = new TrackHeaders(id, kind, this.#cmafNaming);
    headers.set(periodStart, init, packagerPath);
    const state: TrackState = {
      id,
      kind,
      headers,
      initAcknowledged: false,
      nameBuilt: undefined,
      nameKnown: undefined,
      queue: [],
      growing: undefined,
      live: undefined,
      lane: new Lane(this.#laneOptions),
      wakeup: new Wakeup(),
      streak: new RetryStreak(this.#options.segdur, (ms) => this.#pause(ms)),
      failingSince: undefined,
      acknowledged: new Set(),
      gaps: new Set(),
      loop: Promise.resolve(),
    };
    // A track the posted MPD does not name yet (one that starts mid-run): the MPD goes again.
    if (this.#cmafNaming && this.#manifest) this.#control.touch();
    this.#tracks.set(id, state);
    this.#hls?.addTrack(id, kind);
    state.loop = this.#runTrack(state);
  }

  // ---- the track's own connection: init, then its segments in order, live first after a long outage

  async #runTrack(track: TrackState): Promise<void> {
    while (!this.#done) {
      // The newest header (and its media) waits until the receiver knows its name; media of an
      // earlier one goes on meanwhile.
      const newest = track.headers.newest;
      const named = !this.#awaitingName(track);
      if (named && !track.lane.initsSent.has(newest.path)) {
        if (!(await this.#sendInit(track, track.lane, newest))) {
          await this.#afterFailure(track);
          continue;
        }
      }
      const next = this.#nextLive(track);
      if (!next || (!named && next.header.path === newest.path)) {
        await track.wakeup.wait();
        continue;
      }
      const result = await this.#sendWithHeader(track, track.lane, next);
      if (result === 'retry') await this.#afterFailure(track);
      else this.#recovered(track);
    }
  }

  #nextLive(track: TrackState): SegmentUpload | undefined {
    for (const upload of [...track.queue]) {
      if (
        upload.sending ||
        upload.lane !== 'live' ||
        track.live === undefined ||
        track.live - upload.segment < BACKFILL_AFTER
      )
        continue;
      // A receiver taking segments in increasing order only would refuse it after newer ones.
      if (this.#inOrderOnly) {
        this.#drop(upload, 'expired');
        continue;
      }
      upload.lane = 'backfill';
      this.#backfillWakeup.wake();
    }
    return track.queue.find((u) => u.lane === 'live' && !u.sending);
  }

  async #afterFailure(track: TrackState): Promise<void> {
    track.failingSince ??= now();
    await track.streak.failed(track.lane);
  }

  /** A backoff pause: new media does not cut it short (that would be a retry storm), a stop does. */
  #pause(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(done, ms);
      const stop = this.#stopController.signal;
      function done() {
        clearTimeout(timer);
        stop.removeEventListener('abort', done);
        resolve();
      }
      stop.addEventListener('abort', done, { once: true });
    });
  }

  #recovered(track: TrackState): void {
    if (track.failingSince !== undefined) {
      this.#options.logger.info(
        {
          output: this.name,
          track: track.id,
          downMs: Math.round(now() - track.failingSince),
          backlogBytes: this.#backlogBytes,
        },
        'push: origin reachable again',
      );
      this.#backfillWakeup.wake();
    }
    track.streak.succeeded();
    track.failingSince = undefined;
  }

  async #sendInit(track: TrackState, lane: Lane, header: { path: string; bytes: Uint8Array }): Promise<boolean> {
    const result = await this.#deliverer.deliver({
      lane,
      stream: track.id,
      path: header.path,
      body: header.bytes,
      contentType: `${track.kind}/mp4`,
    });
    if (result === 'ok') {
      lane.initsSent.add(header.path);
      if (!track.initAcknowledged && header.path === track.headers.newest.path) {
        track.initAcknowledged = true;
        this.#emit({
          type: 'acknowledged',
          output: this.name,
          track: track.id,
          object: 'init',
          bytes: header.bytes.byteLength,
          attempts: 0,
          ackMs: undefined,
        });
        if (!this.#options.cmaf) this.#control.touch();
        this.#hls?.onInitAcknowledged(track.id);
      }
      return true;
    }
    if (result === 'gave-up' && !this.#done)
      this.#fail(
        new Error(
          `${this.name}: the origin refused the init segment of track ${track.id} (see the log): check the URL, its path and the origin's configuration${this.#options.url.protocol === 'https:' && !this.#options.clientCertificate ? ' (an origin that admits encoders by TLS client certificate, nginx answering 400, wants --client-cert and --client-key)' : ''}`,
        ),
      );
    return false;
  }

  async #sendSegment(lane: Lane, upload: SegmentUpload): Promise<Delivery> {
    upload.sending = true;
    const result = await this.#deliverer.deliver({
      lane,
      stream: upload.track,
      path: upload.path,
      upload,
      body: upload.body,
      contentType: `${this.#tracks.get(upload.track)!.kind}/mp4`,
    });
    upload.sending = false;
    if (result === 'ok') this.#acknowledged(upload);
    else if (result === 'retry') upload.attempts++;
    else if (!this.#done) this.#drop(upload, 'rejected');
    return result;
  }

  #acknowledged(upload: SegmentUpload): void {
    const track = this.#tracks.get(upload.track)!;
    this.#remove(upload);
    track.acknowledged.add(upload.segment);
    this.#emit({
      type: 'acknowledged',
      output: this.name,
      track: track.id,
      object: 'segment',
      segment: upload.segment,
      bytes: upload.body.bytes,
      attempts: upload.attempts,
      ackMs: upload.completedAt === undefined ? undefined : now() - upload.completedAt,
    });
    // An origin serving only complete files is told of each segment it holds in a new manifest.
    if (!this.#options.origin.servesGrowingObjects && !this.#options.cmaf) this.#control.touch();
    this.#hls?.onSegmentAcknowledged(track.id);
  }

  #remove(upload: SegmentUpload): void {
    const track = this.#tracks.get(upload.track)!;
    const index = track.queue.indexOf(upload);
    if (index < 0) return;
    track.queue.splice(index, 1);
    this.#backlogBytes -= upload.body.bytes;
    this.#media.release(upload.body.release());
    if (track.growing === upload) track.growing = undefined;
  }

  #drop(upload: SegmentUpload, reason: DropReason): void {
    const bytes = upload.body.bytes;
    this.#remove(upload);
    upload.body.abandon(`dropped (${reason})`);
    this.#droppedSegments++;
    const gaps = this.#tracks.get(upload.track)?.gaps;
    if (gaps && reason !== 'stopped' && reason !== 'fatal') {
      gaps.add(upload.segment);
      for (const old of gaps) if (gaps.size > GAPS_KEPT) gaps.delete(old);
    }
    this.#emit({ type: 'dropped', output: this.name, track: upload.track, segment: upload.segment, bytes, reason });
    if (reason !== 'stopped' && reason !== 'fatal' && this.#dropWarnings.admit(reason, Date.now()).log) {
      this.#options.logger.warn(
        {
          output: this.name,
          track: upload.track,
          segment: upload.segment.toString(),
          reason,
          droppedSegments: this.#droppedSegments,
        },
        'push: media dropped',
      );
    }
  }

  /**
   * The chunk's shared copy, media being dropped first while it does not fit the budget (see
   * SharedMedia). Undefined when the chunk's own segment was dropped to make room.
   */
  #hold(track: TrackState, event: ChunkEvent): Buffer | undefined {
    const chunk = this.#media.hold(event);
    if (track.growing?.segment === event.segment) return chunk;
    this.#media.release([chunk]);
    return undefined;
  }

  /** What goes first when the budget is full: the oldest upload not being sent (media being sent is never cut). */
  #oldestDroppable(): SegmentUpload | undefined {
    let oldest: SegmentUpload | undefined;
    for (const t of this.#tracks.values()) {
      for (const upload of t.queue)
        if (!upload.sending && (!oldest || upload.segment < oldest.segment)) oldest = upload;
    }
    return oldest;
  }

  /** CMAF ingest with a posted MPD: the receiver does not know the track's newest name yet. */
  #awaitingName(track: TrackState): boolean {
    return (
      this.#cmafNaming !== undefined &&
      this.#options.formats.dash &&
      !this.#manifestRefused &&
      track.nameKnown !== track.headers.newest.streamName
    );
  }

  /** The MPD built last reached the receiver: the names in it are known there. */
  #namesKnown(): void {
    for (const track of this.#tracks.values()) {
      if (track.nameBuilt === undefined || track.nameKnown === track.nameBuilt) continue;
      track.nameKnown = track.nameBuilt;
      track.wakeup.wake();
    }
  }

  /**
   * Sends `upload` after the header its media needs, when the connection has not carried it (media
   * of an earlier period after a new init was announced, a fresh connection). The upload stays
   * droppable while the header goes (a slow origin must not hold media past the budget): one
   * dropped meanwhile is not sent.
   */
  async #sendWithHeader(track: TrackState, lane: Lane, upload: SegmentUpload): Promise<Delivery> {
    if (!lane.initsSent.has(upload.header.path)) {
      if (!(await this.#sendInit(track, lane, upload.header))) return 'retry';
      if (!track.queue.includes(upload)) return 'gave-up';
    }
    return this.#sendSegment(lane, upload);
  }

  #fail(error: Error): void {
    if (this.#fatal) return;
    this.#fatal = error;
    this.#options.logger.error({ output: this.name }, `push: ${error.message}; this output stops`);
    for (const track of this.#tracks.values()) for (const upload of [...track.queue]) this.#drop(upload, 'fatal');
    this.#stop();
    this.#options.onFatal?.(error);
  }

  /** Every loop wakes up to see the output stopped and ends; pauses end at once. */
  #stop(): void {
    this.#stopController.abort();
    this.#leaveMedia();
    this.#control.wake();
    this.#hls?.wake();
    this.#backfillWakeup.close();
    for (const track of this.#tracks.values()) track.wakeup.close();
  }

  #emit(event: PushEvent): void {
    this.#options.onEvent?.(event);
  }

  // ---- the backfill connection: segments missed in an outage, oldest first, while live is healthy

  async #runBackfill(): Promise<void> {
    const streak = new RetryStreak(this.#options.segdur, (ms) => this.#pause(ms));
    while (!this.#done) {
      const tracks = [...this.#tracks.values()];
      const next = tracks.every((t) => t.streak.failures === 0) ? this.#nextBackfill(tracks) : undefined;
      if (!next) {
        await this.#backfillWakeup.wait(1000);
        continue;
      }
      const track = this.#tracks.get(next.track)!;
      const result = await this.#sendWithHeader(track, this.#backfill, next);
      if (result === 'retry') await streak.failed(this.#backfill);
      else streak.succeeded();
    }
  }

  #nextBackfill(tracks: TrackState[]): SegmentUpload | undefined {
    let oldest: SegmentUpload | undefined;
    for (const track of tracks) {
      const keptFrom =
        track.live === undefined ? undefined : oldestKept(track.live, this.#options.segdur, this.#options.tsb);
      for (const upload of [...track.queue]) {
        if (upload.lane !== 'backfill' || upload.sending) continue;
        // Media older than the time-shift window is no use to any viewer.
        if (keptFrom !== undefined && upload.segment < keptFrom) this.#drop(upload, 'expired');
        else if (!oldest || upload.segment < oldest.segment) oldest = upload;
      }
    }
    return oldest;
  }
}
