import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';
import { execa } from 'execa';
import { ConfigError } from '../errors.ts';
import { meetsMinimum, parseCapabilityList, parseFfmpegVersion, type FfmpegVersion } from './ffmpeg-probe.ts';

export type FfmpegOrigin = '--ffmpeg' | 'APPLIANCE_FFMPEG' | 'system' | 'ffmpeg-static';

export interface FfmpegCandidate {
  path: string;
  origin: FfmpegOrigin;
}

export interface FfmpegProbe {
  version: FfmpegVersion;
  encoders: Set<string>;
  filters: Set<string>;
}

export interface Ffmpeg extends FfmpegProbe {
  path: string;
  origin: FfmpegOrigin;
}

export interface Requirements {
  encoders: readonly string[];
  filters: readonly string[];
}

export const INSTALL_HINT = [
  'Install ffmpeg 5.1 or newer with libx264 and aac:',
  '  Debian/Ubuntu: sudo apt-get install ffmpeg',
  '  macOS:         brew install ffmpeg',
  '  Windows:       winget install Gyan.FFmpeg',
  'or point --ffmpeg (or APPLIANCE_FFMPEG) at such a build.',
].join('\n');

export interface ResolveInputs {
  flag?: string | undefined;
  env?: string | undefined;
  /** `ffmpeg` found on PATH, if any. */
  systemPath?: string | undefined;
  /** The binary of the optional ffmpeg-static package, if it installed. */
  staticPath?: string | undefined;
}

/**
 * Resolution order: --ffmpeg, APPLIANCE_FFMPEG, the system ffmpeg ≥ 5.1, ffmpeg-static.
 * A path the user named is used or refused, never silently replaced; the automatic ones
 * fall through to the next. `probe` returns undefined when the path does not run as ffmpeg.
 */
export async function resolveFfmpeg(
  inputs: ResolveInputs,
  requirements: Requirements,
  probe: (path: string) => Promise<FfmpegProbe | undefined>,
): Promise<Ffmpeg> {
  const explicit: FfmpegCandidate | undefined = inputs.flag
    ? { path: inputs.flag, origin: '--ffmpeg' }
    : inputs.env
      ? { path: inputs.env, origin: 'APPLIANCE_FFMPEG' }
      : undefined;
  const candidates: FfmpegCandidate[] = explicit
    ? [explicit]
    : [
        ...(inputs.systemPath ? [{ path: inputs.systemPath, origin: 'system' as const }] : []),
        ...(inputs.staticPath ? [{ path: inputs.staticPath, origin: 'ffmpeg-static' as const }] : []),
      ];
  const refusals: string[] = [];
  for (const candidate of candidates) {
    const probed = await probe(candidate.path);
    const problem = probed
      ? shortcomings(probed, requirements)
      : 'it does not run as ffmpeg (missing, not executable, or not ffmpeg)';
    if (!problem && probed) return { ...candidate, ...probed };
    const refusal = `${candidate.origin} ${candidate.path}: ${problem}`;
    if (explicit) throw new ConfigError(`ffmpeg from ${refusal}`, INSTALL_HINT);
    refusals.push(refusal);
  }
  const tried = refusals.length
    ? `tried ${refusals.join('; ')}`
    : 'no ffmpeg on PATH and the optional ffmpeg-static package is not installed';
  throw new ConfigError(`no usable ffmpeg: ${tried}`, INSTALL_HINT);
}

function shortcomings(probe: FfmpegProbe, requirements: Requirements): string | undefined {
  if (!meetsMinimum(probe.version)) return `version ${probe.version.text} is older than 5.1`;
  const encoders = requirements.encoders.filter((name) => !probe.encoders.has(name));
  const filters = requirements.filters.filter((name) => !probe.filters.has(name));
  const missing = [...encoders.map((n) => `encoder ${n}`), ...filters.map((n) => `filter ${n}`)];
  return missing.length ? `version ${probe.version.text} lacks ${missing.join(', ')}` : undefined;
}

/** Runs the binary to read its version, encoders and filters. */
export async function probeFfmpeg(path: string): Promise<FfmpegProbe | undefined> {
  const run = (args: string[]) =>
    execa(path, ['-hide_banner', ...args], { reject: false, timeout: 15_000, stdin: 'ignore' });
  try {
    const [version, encoders, filters] = await Promise.all([run(['-version']), run(['-encoders']), run(['-filters'])]);
    const parsed = parseFfmpegVersion(version.stdout);
    if (version.exitCode !== 0 || !parsed) return undefined;
    return {
      version: parsed,
      encoders: parseCapabilityList(encoders.stdout),
      filters: parseCapabilityList(filters.stdout),
    };
  } catch {
    return undefined;
  }
}

export async function findOnPath(name: string, pathVariable = process.env['PATH'] ?? ''): Promise<string | undefined> {
  const names = process.platform === 'win32' ? [`${name}.exe`, name] : [name];
  for (const dir of pathVariable.split(delimiter).filter(Boolean)) {
    for (const candidate of names.map((n) => join(dir, n))) {
      try {
        await access(candidate, constants.X_OK);
        return candidate;
      } catch {
        // not in this directory
      }
    }
  }
  return undefined;
}

/** ffmpeg-static is optional: its install downloads a binary and fails without internet. */
export async function findFfmpegStatic(): Promise<string | undefined> {
  try {
    const module = (await import('ffmpeg-static' as string)) as { default?: string | null };
    if (!module.default) return undefined;
    await access(module.default, constants.X_OK);
    return module.default;
  } catch {
    return undefined;
  }
}

export async function locateFfmpeg(flag: string | undefined, requirements: Requirements): Promise<Ffmpeg> {
  const env = process.env['APPLIANCE_FFMPEG'] || undefined;
  const explicit = Boolean(flag || env);
  return resolveFfmpeg(
    {
      flag,
      env,
      systemPath: explicit ? undefined : await findOnPath('ffmpeg'),
      staticPath: explicit ? undefined : await findFfmpegStatic(),
    },
    requirements,
    probeFfmpeg,
  );
}
