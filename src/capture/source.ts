import { ConfigError } from '../errors.ts';
import type { DeviceSource } from './device-args.ts';
import { parseFileSpec, type FileRequest, type FileSource } from './file-source.ts';
import { feedForLogs, parseFeedSpec, type FeedRequest, type FeedSource } from './feed-source.ts';
import { parseDeviceSpec, type DeviceRequest } from './device-spec.ts';

export const TEST_PATTERNS = ['testsrc2', 'mandelbrot', 'sync'] as const;
export type TestPattern = (typeof TEST_PATTERNS)[number];

export interface TestSource {
  kind: 'test';
  pattern: TestPattern;
  /** The test source is always 1080p: the ladder's top rendition. */
  width: 1920;
  height: 1080;
  /** `test:sync:drift`: the tone's clock runs 1500 ppm fast, from 10 s 800 ppm (a drifting sound card). */
  audioDrift?: boolean;
}

export type Source = TestSource | DeviceSource | FileSource | FeedSource;

export const SOURCE_SPECS = [
  'test',
  'test:mandelbrot',
  'test:sync',
  'test:sync:drift',
  'device',
  'device:video=NAME|INDEX|none,audio=NAME|INDEX|none',
  'file:PATH',
  'udp://IP:PORT',
  'srt://HOST:PORT?mode=caller|listener',
] as const;

/** Pure: the `--source` value → a test source, or a request for capture devices (resolved against the listing) or a file (probed). */
export function parseSource(spec: string, cwd = process.cwd()): TestSource | DeviceRequest | FileRequest | FeedRequest {
  if (spec === 'device' || spec.startsWith('device:')) return parseDeviceSpec(spec);
  if (spec.startsWith('file:')) return parseFileSpec(spec, cwd);
  if (/^(udp|srt):\/\//.test(spec)) return parseFeedSpec(spec);
  const [kind, variant, option] = spec.split(':') as [string, string | undefined, string | undefined];
  if (kind === 'test') {
    const pattern = (variant === undefined || variant === '' ? 'testsrc2' : variant) as TestPattern;
    const drift = pattern === 'sync' && option === 'drift';
    if (!TEST_PATTERNS.includes(pattern) || (option !== undefined && !drift)) {
      throw new ConfigError(
        `--source "${spec}": unknown test source; accepted: ${SOURCE_SPECS.filter((s) => s.startsWith('test')).join(', ')}`,
      );
    }
    return { kind: 'test', pattern, width: 1920, height: 1080, ...(drift ? { audioDrift: true } : {}) };
  }
  throw new ConfigError(`--source "${spec}" is not a source; accepted: ${SOURCE_SPECS.join(', ')}`);
}

/** How a source is named in settings and logs: `test`, `test:sync`, `device:video=…,audio=…`. */
export function sourceSpecOf(source: Source): string {
  if (source.kind === 'file') return `file:${source.path}`;
  if (source.kind === 'feed') return feedForLogs(source.url);
  if (source.kind === 'test')
    return [
      'test',
      ...(source.pattern === 'testsrc2' ? [] : [source.pattern]),
      ...(source.audioDrift ? ['drift'] : []),
    ].join(':');
  return `device:video=${source.video?.id ?? 'none'},audio=${source.audio?.id ?? 'none'}`;
}

/** Pure: a `test…` source spec → the test source (benchmarks and tests build plans from it). */
export function parseTestSource(spec: string): TestSource {
  const source = parseSource(spec);
  if (source.kind !== 'test') throw new ConfigError(`--source "${spec}" is not a test source`);
  return source;
}
