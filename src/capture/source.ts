import { ConfigError } from '../errors.ts';

export const TEST_PATTERNS = ['testsrc2', 'mandelbrot'] as const;
export type TestPattern = (typeof TEST_PATTERNS)[number];

export interface TestSource {
  kind: 'test';
  pattern: TestPattern;
  /** The test source is always 1080p: the ladder's top rendition. */
  width: 1920;
  height: 1080;
}

export type Source = TestSource;

export const SOURCE_SPECS = ['test', 'test:mandelbrot'] as const;
const LATER_KINDS = /^(device(:|$)|file:|udp:\/\/|srt:\/\/)/;

/** Pure: the `--source` value → a source description, or a ConfigError saying what is accepted. */
export function parseSource(spec: string): Source {
  const [kind, variant] = spec.split(/:(.*)/s, 2) as [string, string | undefined];
  if (kind === 'test') {
    const pattern = (variant === undefined || variant === '' ? 'testsrc2' : variant) as TestPattern;
    if (!TEST_PATTERNS.includes(pattern)) {
      throw new ConfigError(`--source "${spec}": unknown test pattern "${variant}"; accepted: ${SOURCE_SPECS.join(', ')}`);
    }
    return { kind: 'test', pattern, width: 1920, height: 1080 };
  }
  if (LATER_KINDS.test(spec)) {
    throw new ConfigError(
      `--source "${spec}": this version captures only its test source (${SOURCE_SPECS.join(', ')}); cameras, microphones, files and UDP/SRT feeds are not supported yet`,
    );
  }
  throw new ConfigError(`--source "${spec}" is not a source; accepted: ${SOURCE_SPECS.join(', ')}`);
}
