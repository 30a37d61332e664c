import { createHash } from 'node:crypto';
import { setTimeout as sleep } from 'node:timers/promises';
import { pino } from 'pino';
import type { ChunkEvent, PackagerEvent } from '../../src/packager/chunker.ts';
import { HttpPushOutput, type HttpPushOptions } from '../../src/push/http-output.ts';
import type { HlsVideoRendition } from '../../src/packager/hls-playlist.ts';
import { outputFormats } from '../../src/packager/hls-playlists.ts';
import type { PushEvent } from '../../src/push/push-types.ts';
import { originCapabilities } from '../../src/push/origin-capabilities.ts';
import { startTestOrigin, type TestOrigin } from './push-origin.ts';

// HttpPushOutput against a test origin, fed synthetic chunks: shared by the push-output tests.

export const cleanups: (() => Promise<unknown>)[] = [];
export const runCleanups = () => Promise.all(cleanups.splice(0).map((c) => c()));

/** The video rendition `v` the push tests' HLS sessions offer. */
export const RENDITION_V: HlsVideoRendition = {
  id: 'v',
  codecs: 'avc1.640028',
  bitrate: 1e6,
  averageBandwidth: 1e6,
  peakBandwidth: 2e6,
  width: 640,
  height: 360,
  frameRate: 30,
};

export const info = {
  trackId: 1,
  timescale: 1000,
  handler: 'vide',
  sampleEntry: 'avc1',
  defaults: { duration: 0, size: 0, flags: 0 },
};
export const CHUNKS = 10;

/**
 * The byte a synthetic chunk is filled with: recognisable per segment and chunk, and never 0 (the
 * test origin reads bodies as boxes, and four zero bytes are a box size it refuses in a stream).
 */
export const fillOf = (segment: bigint, part: number) => 1 + ((Number(segment % 200n) + part) % 255);

/** A track's events for `segments` segments from now, with recognisable bytes (1 kB per chunk). */
export function segmentEvents(track: string, first: bigint, segments: number): PackagerEvent[] {
  const events: PackagerEvent[] = [];
  for (let s = first; s < first + BigInt(segments); s++) {
    for (let part = 0; part < CHUNKS; part++) {
      const bytes = new Uint8Array(1000).fill(fillOf(s, part));
      events.push({
        type: 'chunk',
        track,
        segment: s,
        part,
        parts: [bytes.subarray(0, 400), bytes.subarray(400)],
        byteLength: 1000,
        independent: part === 0,
        decodeTime: s * 1000n + BigInt(part * 100),
        duration: 100,
        timescale: 1000,
        segmentComplete: part === CHUNKS - 1,
        slate: false,
      } satisfies ChunkEvent);
    }
    events.push({ type: 'segmentEnd', track, segment: s, last: false });
  }
  return events;
}

export const expectedHash = (segment: bigint) => {
  const hash = createHash('sha256');
  for (let part = 0; part < CHUNKS; part++) hash.update(new Uint8Array(1000).fill(fillOf(segment, part)));
  return hash.digest('hex');
};

export function logCollector() {
  const lines: Record<string, unknown>[] = [];
  const logger = pino(
    { level: 'debug' },
    { write: (line: string) => void lines.push(JSON.parse(line) as Record<string, unknown>) },
  );
  return { logger, lines, messages: () => lines.map((l) => String(l['msg'])) };
}

export interface Setup {
  origin: TestOrigin;
  output: HttpPushOutput;
  events: PushEvent[];
  log: ReturnType<typeof logCollector>;
  fatal: Error[];
}

export async function setup(overrides: Partial<HttpPushOptions> = {}, origin?: TestOrigin): Promise<Setup> {
  origin ??= await startTestOrigin();
  cleanups.push(() => origin.close());
  const log = logCollector();
  const events: PushEvent[] = [];
  const fatal: Error[] = [];
  const output = new HttpPushOutput({
    url: new URL(`${origin.base}/live/live.mpd`),
    origin: originCapabilities('appliance'),
    method: 'PUT',
    segdur: 1,
    tsb: 30,
    asto: 0.9,
    utcTimingUrl: `${origin.base}/time`,
    budgetBytes: 1_000_000,
    formats: outputFormats('live.mpd', false),
    headers: { authorization: 'Bearer test-token' },
    ca: undefined,
    userAgent: 'appliance/test',
    deleteExpired: true,
    logger: log.logger,
    onEvent: (e) => events.push(e),
    onFatal: (e) => fatal.push(e),
    ...overrides,
  });
  return { origin, output, events, log, fatal };
}

/** Feeds events at 100 ms per chunk (as the packager would), or all at once. */
export async function feed(output: HttpPushOutput, events: PackagerEvent[], paced = false) {
  output.handle({ type: 'init', track: 'v', info, bytes: new TextEncoder().encode('init-v'), path: 'v/init.mp4' });
  output.publishManifest((view) => `<MPD asto="${view.asto}"/>`);
  for (const event of events) {
    output.handle(event);
    if (paced && event.type === 'chunk') await sleep(100);
  }
}
