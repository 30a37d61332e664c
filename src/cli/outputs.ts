import type { Profile } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { hostForUrl, listenFor } from '../listen.ts';
import { createOriginServer } from '../origin/http.ts';
import { ObjectStore } from '../origin/store.ts';
import { StoreOutput } from '../origin/store-output.ts';
import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import { DirectoryOutput } from '../push/directory-output.ts';
import { HttpPushOutput } from '../push/http-output.ts';
import { SharedMedia } from '../push/shared-media.ts';
import type { ClientCertificate } from '../push/client-certificate.ts';
import type { MediaBudget } from '../run/media-budget.ts';
import type { OutputTarget, PushTarget } from '../push/output-target.ts';
import { originCapabilities, originTimeUrl, type OriginCapabilities } from '../push/origin-capabilities.ts';
import type { Ingest, ManifestBuilder, ManifestView, OriginProfile, PushEvent } from '../push/push-types.ts';
import { cmafPublishingPoint, resolveIngest } from '../push/cmaf-ingest.ts';
import { chunksPerSegment } from '../packager/chunker.ts';
import { safeUrl } from '../push/upload-outcome.ts';
import { ConfigError } from '../errors.ts';
import { DEFAULT_UTC_TIMING } from './args.ts';
import type { Output } from '../run/output-set.ts';
import { PLAYER_SCRIPTS, previewInfo, previewPage } from '../origin/preview-page.ts';
import { HlsPlaylists, outputFormats, type HlsSession, type OutputFormats } from '../packager/hls-playlists.ts';

export interface PushSettings {
  profiles: OriginProfile[];
  /** Given once for all outputs, or once per output; none: each profile's default. */
  ingests: Ingest[];
  /** Undefined: each origin profile's own. */
  method: 'PUT' | 'POST' | undefined;
  headers: Record<string, string>;
  ca: string[] | undefined;
  /** Presented to https origins that ask for one (--client-cert, --client-key). */
  clientCertificate?: ClientCertificate | undefined;
  /** One budget for media: the built-in origin's window and what the origins have not acknowledged. */
  media: MediaBudget;
  deleteExpired: boolean;
  userAgent: string;
}

export interface OpenedOutputs {
  outputs: Output[];
  /** For messages: the directories and URLs. */
  where: string;
  close(): Promise<void>;
}

/** What the origin of the output at `index` does: its profile given per output, once for all, or the default. */
export const originOf = (push: Pick<PushSettings, 'profiles'>, index: number): OriginCapabilities =>
  originCapabilities(push.profiles[index] ?? push.profiles[0] ?? 'appliance');

/** How one push output reaches its origin, resolved from its flags and its origin profile. */
export interface PushDestination {
  origin: OriginCapabilities;
  ingest: Ingest;
  method: 'PUT' | 'POST';
  /** The manifest's URL (DASH ingest), or the publishing point's, ending in `/` (CMAF ingest). */
  url: URL;
  /** The manifest's name next to `url`: `live.mpd` unless the URL names one. */
  manifest: string;
}

/** Pure: the output at `index`'s destination, or a ConfigError naming what does not go together. */
export function destinationOf(
  push: Pick<PushSettings, 'profiles' | 'ingests' | 'method'>,
  index: number,
  target: PushTarget,
): PushDestination {
  const origin = originOf(push, index);
  const shown = safeUrl(target.given);
  const ingest = resolveIngest(push.ingests[index] ?? push.ingests[0], origin, shown);
  const method = push.method ?? origin.method;
  if (ingest === 'dash') return { origin, ingest, method, url: target.url, manifest: target.manifest };
  const path = target.given.pathname;
  if (/\.m3u8$/i.test(path) || (/\.mpd$/i.test(path) && origin.cmafNaming !== 'template'))
    throw new ConfigError(
      `--output ${shown}: CMAF ingest sends to a publishing point (e.g. https://origin/live/channel.isml or a directory URL), not to a manifest: leave the manifest's name out`,
    );
  const point = cmafPublishingPoint(target.given);
  return { origin, ingest, method, url: point.base, manifest: point.manifest };
}

/** The clock a push target's manifest names: the origin's own when it serves one, else the public default. */
export function pushUtcTiming(target: PushTarget, origin: OriginCapabilities, explicit: string | undefined): string {
  return explicit ?? originTimeUrl(origin, target.url) ?? DEFAULT_UTC_TIMING;
}

/**
 * Writes manifests for outputs that take text at once (directory, store): each published manifest
 * is built and written in order, a newer one replacing any not yet started.
 */
class ManifestWriter {
  readonly #view: ManifestView;
  readonly #write: (text: string) => Promise<void>;
  readonly #onError: (error: unknown) => void;
  #pending: ManifestBuilder | undefined;
  #chain = Promise.resolve();

  constructor(view: ManifestView, write: (text: string) => Promise<void>, onError: (error: unknown) => void) {
    this.#view = view;
    this.#write = write;
    this.#onError = onError;
  }

  publish(build: ManifestBuilder): void {
    const first = this.#pending === undefined;
    this.#pending = build;
    if (!first) return;
    this.#chain = this.#chain.then(() => {
      const builder = this.#pending!;
      this.#pending = undefined;
      return this.#write(builder(this.#view)).catch(this.#onError);
    });
  }

  flush(): Promise<void> {
    return this.#chain;
  }
}

/** What the directory and the built-in server's store take: events, playlists on demand, a flush. */
interface LocalSink {
  handle(event: PackagerEvent): void;
  writePlaylists(multivariantName: string): void;
  flush(): Promise<void>;
}

/** An output writing straight to a local sink: the MPD through its ManifestWriter, the playlists as they stand. */
function localOutput(
  name: string,
  sink: LocalSink,
  manifests: ManifestWriter,
  formats: OutputFormats,
  failures: () => number,
): Output {
  return {
    name,
    handle: (event) => sink.handle(event),
    publishManifest: (build) => {
      if (formats.dash) manifests.publish(build);
      sink.writePlaylists(formats.multivariant);
    },
    flush: async () => {
      await manifests.flush();
      await sink.flush();
    },
    get failures() {
      return failures();
    },
  };
}

interface Context {
  profile: Profile;
  hls: HlsSession;
  utcTiming: string | undefined;
  logger: Logger;
  onChunkWritten: (event: ChunkEvent, writtenAt: number) => void;
  /** Every chunk a directory or the built-in store wrote (push outputs report theirs as push events). */
  onLocalChunk?: ((output: string, event: ChunkEvent) => void) | undefined;
  /** The built-in server's /status (for the preview page). */
  status?: (() => unknown) | undefined;
  push: PushSettings;
  onPushEvent?: ((event: PushEvent) => void) | undefined;
  onFatal: (output: Output, error: Error) => void;
}

/** What the outputs of one run share: the push outputs' media, under a budget that also counts the store's. */
interface Shared {
  media: SharedMedia;
  store: ObjectStore | undefined;
}

async function openOne(
  target: OutputTarget,
  index: number,
  context: Context,
  shared: Shared,
): Promise<{ output: Output; where: string; close?: () => Promise<void> }> {
  const { profile, logger } = context;
  // Only the first output reports chunk delays: one figure per track, not one per destination.
  const onChunkWritten = index === 0 ? context.onChunkWritten : undefined;
  const localChunks = (name: string) => (event: ChunkEvent, writtenAt: number) => {
    onChunkWritten?.(event, writtenAt);
    context.onLocalChunk?.(name, event);
  };
  const formats = outputFormats(target.manifest, profile.hls.dual);
  if (target.kind === 'push') {
    const destination = destinationOf(context.push, index, target);
    const { origin } = destination;
    const cmaf = destination.ingest === 'cmaf';
    const output: HttpPushOutput = new HttpPushOutput({
      url: destination.url,
      origin,
      cmaf: cmaf ? { chunksPerSegment: chunksPerSegment(profile) } : undefined,
      method: destination.method,
      segdur: profile.segdur,
      tsb: profile.tsb,
      asto: profile.asto,
      utcTimingUrl: pushUtcTiming(target, origin, context.utcTiming),
      media: shared.media,
      // The DASH-IF ingest version a CMAF ingest receiver is told (the spec's optional header).
      headers: {
        ...(origin.takesCredentials ? context.push.headers : {}),
        ...(cmaf ? { 'dash-if-ingest': '1.1' } : {}),
      },
      ca: context.push.ca,
      clientCertificate: context.push.clientCertificate,
      userAgent: context.push.userAgent,
      // A CMAF ingest receiver keeps its own window: no DELETEs, no playlists; an MPD only for one
      // that names the tracks from it.
      deleteExpired: context.push.deleteExpired && !cmaf,
      formats: cmaf
        ? { ...outputFormats(destination.manifest, false), dash: origin.cmafNaming === 'template', hls: false }
        : formats,
      hls: cmaf ? undefined : context.hls,
      logger,
      onEvent: context.onPushEvent,
      onChunkWritten,
      onFatal: (error) => context.onFatal(output, error),
    });
    logger.info(
      {
        url: output.name,
        originProfile: origin.profile,
        ingest: destination.ingest,
        method: destination.method,
        budgetBytes: context.push.media.pushBytes,
        memoryBytes: context.push.media.budgetBytes,
      },
      'pushing',
    );
    return { output, where: output.name };
  }
  if (target.kind === 'directory') {
    // Whatever serves the directory holds no request back: no blocking reloads, no preload hints.
    const hls = formats.hls
      ? new HlsPlaylists(context.hls, formats.names, { blocking: false, hints: false })
      : undefined;
    const directory = new DirectoryOutput({
      dir: target.dir,
      segdur: profile.segdur,
      timeShiftBufferDepth: profile.tsb,
      logger,
      onChunkWritten: localChunks(target.dir),
      hls,
    });
    const view = { utcTimingUrl: context.utcTiming ?? DEFAULT_UTC_TIMING, asto: profile.asto };
    let failures = 0;
    const manifests = new ManifestWriter(
      view,
      (text) => directory.writeManifest(formats.mpd, text),
      (err) => {
        failures++;
        logger.error({ err }, 'manifest write failed');
      },
    );
    const output = localOutput(target.dir, directory, manifests, formats, () => directory.failures + failures);
    return { output, where: target.dir };
  }
  const store = new ObjectStore({ timeShiftBufferDepth: profile.tsb, holdMs: profile.segdur * 1000 });
  shared.store = store;
  let base = '';
  const server = createOriginServer({
    store,
    maxBodyBytes: 0,
    logger,
    index: () => previewPage(previewInfo(base, formats, context.hls.renditions())),
    assets: PLAYER_SCRIPTS,
    status: context.status,
  });
  const address = await listenFor('--listen', server, target.host, target.port);
  base = `http://${hostForUrl(address.address)}:${address.port}`;
  const expiry = setInterval(() => store.expire(), 1000);
  expiry.unref();
  logger.info({ url: `${base}/${target.manifest}`, page: `${base}/` }, 'serving');
  const hls = formats.hls ? new HlsPlaylists(context.hls, formats.names, { blocking: true, hints: true }) : undefined;
  const storeOutput = new StoreOutput(store, localChunks(`${base}/${target.manifest}`), hls);
  const manifests = new ManifestWriter(
    { utcTimingUrl: context.utcTiming ?? `${base}/time`, asto: profile.asto },
    async (text) => storeOutput.writeManifest(formats.mpd, text),
    (err) => logger.error({ err }, 'manifest write failed'),
  );
  const output = localOutput(`${base}/${target.manifest}`, storeOutput, manifests, formats, () => 0);
  return {
    output,
    where: output.name,
    close: async () => {
      clearInterval(expiry);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}

/** Opens every target; a target that cannot be opened closes those already open. */
export async function openOutputs(targets: readonly OutputTarget[], context: Context): Promise<OpenedOutputs> {
  const opened: Awaited<ReturnType<typeof openOne>>[] = [];
  const close = async () => {
    await Promise.all(opened.map((o) => o.close?.()));
  };
  const shared: Shared = {
    media: new SharedMedia(context.push.media.budgetBytes, () => shared.store?.bytes ?? 0),
    store: undefined,
  };
  try {
    for (const [index, target] of targets.entries()) opened.push(await openOne(target, index, context, shared));
  } catch (error) {
    await Promise.all(opened.map((o) => o.output.flush()));
    await close();
    throw error;
  }
  return { outputs: opened.map((o) => o.output), where: opened.map((o) => o.where).join(', '), close };
}
