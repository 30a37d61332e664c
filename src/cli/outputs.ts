import type { Profile } from '../config/schema.ts';
import type { Logger } from '../log.ts';
import { createOriginServer, listen } from '../origin/http.ts';
import { ObjectStore } from '../origin/store.ts';
import { StoreOutput } from '../origin/store-output.ts';
import type { ChunkEvent, PackagerEvent } from '../packager/chunker.ts';
import { DirectoryOutput } from '../push/directory-output.ts';
import type { OutputTarget } from '../push/output-target.ts';
import { DEFAULT_UTC_TIMING } from './args.ts';
import { ConfigError } from '../errors.ts';

/** Where packager events and manifests go: a directory or the built-in origin's store. */
export interface Output {
  handle(event: PackagerEvent): void;
  writeManifest(name: string, text: string): Promise<void>;
  flush(): Promise<void>;
  readonly failures: number;
}

export interface OpenedOutput {
  output: Output;
  /** The clock URL the manifest names. */
  utcTiming: string;
  /** For messages: the directory, or the stream's URL. */
  where: string;
  close(): Promise<void>;
}

export const hostForUrl = (host: string) => (host.includes(':') ? `[${host}]` : host);

/** The page at `/` of the built-in server. */
export function indexPage(base: string, manifest: string): string {
  return `<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>appliance</title></head>
<body>
<h1>appliance</h1>
<p>Live stream (LL-DASH): <a href="/${manifest}">${base}/${manifest}</a></p>
<p>Clock for players (UTCTiming, http-iso): <a href="/time">${base}/time</a></p>
</body></html>
`;
}

export async function openOutput(
  target: OutputTarget,
  profile: Profile,
  utcTiming: string | undefined,
  logger: Logger,
  onChunkWritten: (event: ChunkEvent, writtenAt: number) => void,
): Promise<OpenedOutput> {
  if (target.kind === 'directory') {
    const output = new DirectoryOutput({ dir: target.dir, segdur: profile.segdur, timeShiftBufferDepth: profile.tsb, logger, onChunkWritten });
    return { output, utcTiming: utcTiming ?? DEFAULT_UTC_TIMING, where: target.dir, close: async () => {} };
  }
  const store = new ObjectStore({ timeShiftBufferDepth: profile.tsb, holdMs: profile.segdur * 1000 });
  let base = '';
  const server = createOriginServer({ store, maxBodyBytes: 0, logger, index: () => indexPage(base, target.manifest) });
  const address = await listen(server, target.host, target.port).catch((error: NodeJS.ErrnoException) => {
    throw new ConfigError(`--listen ${hostForUrl(target.host)}:${target.port}: cannot listen (${error.code ?? error.message})${error.code === 'EADDRINUSE' ? '; another program uses that port: pick another with --listen' : ''}`);
  });
  base = `http://${hostForUrl(address.address)}:${address.port}`;
  const expiry = setInterval(() => store.expire(), 1000);
  expiry.unref();
  logger.info({ url: `${base}/${target.manifest}`, page: `${base}/` }, 'serving');
  return {
    output: new StoreOutput(store, onChunkWritten),
    utcTiming: utcTiming ?? `${base}/time`,
    where: `${base}/${target.manifest}`,
    close: async () => {
      clearInterval(expiry);
      server.closeAllConnections();
      await new Promise((resolve) => server.close(resolve));
    },
  };
}
