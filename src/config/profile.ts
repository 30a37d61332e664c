import { readFile } from 'node:fs/promises';
import { fileURLToPath } from 'node:url';
import { parseYamlFile } from './yaml-file.ts';
import { z } from 'zod';
import { ConfigError } from '../errors.ts';
import { profileSchema, type Profile } from './schema.ts';

export const BUILTIN_PROFILES = ['ultra-ll', 'll', 'standard'] as const;
export const DEFAULT_PROFILE = 'ultra-ll';
export const PROFILES_DIR = fileURLToPath(new URL('../../profiles/', import.meta.url));

/** A built-in name maps to `profiles/<name>.yaml`; anything else is a path to the user's own file. */
export function profileFile(spec: string): string {
  return (BUILTIN_PROFILES as readonly string[]).includes(spec) ? `${PROFILES_DIR}${spec}.yaml` : spec;
}

export async function loadProfile(spec: string): Promise<{ profile: Profile; file: string }> {
  const file = profileFile(spec);
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    const looksLikeName = !/[/\\.]/.test(spec);
    throw new ConfigError(
      looksLikeName
        ? `unknown profile "${spec}": expected one of ${BUILTIN_PROFILES.join(', ')} or the path of a profile file`
        : `cannot read profile file ${file}: ${code === 'ENOENT' ? 'no such file' : String(code ?? error)}`,
    );
  }
  return { profile: parseProfile(text, file), file };
}

/** Pure: YAML text → validated profile, or a ConfigError naming the file, field, value and what is allowed. */
export function parseProfile(text: string, file: string): Profile {
  const document = parseYamlFile(text, file);
  const result = profileSchema.safeParse(document);
  if (!result.success) {
    const lines = result.error.issues.map((issue) => `${file}: ${describeIssue(issue, document)}`);
    throw new ConfigError(lines.join('\n'));
  }
  return result.data;
}

export function fieldPath(path: readonly PropertyKey[]): string {
  return path.reduce<string>(
    (out, key) => (typeof key === 'number' ? `${out}[${key}]` : out ? `${out}.${String(key)}` : String(key)),
    '',
  );
}

function valueAt(document: unknown, path: readonly PropertyKey[]): unknown {
  let node = document;
  for (const key of path) {
    if (node === null || typeof node !== 'object') return undefined;
    node = (node as Record<PropertyKey, unknown>)[key];
  }
  return node;
}

function schemaAt(path: readonly PropertyKey[]): z.ZodType | undefined {
  let node: z.ZodType = profileSchema;
  for (const key of path) {
    if (node instanceof z.ZodObject) node = (node.shape as Record<string, z.ZodType>)[String(key)]!;
    else if (node instanceof z.ZodArray) node = node.element as z.ZodType;
    else return undefined;
    if (!node) return undefined;
  }
  return node;
}

function describeIssue(issue: z.core.$ZodIssue, document: unknown): string {
  const field = fieldPath(issue.path) || '(top level)';
  if (issue.code === 'unrecognized_keys') {
    const parent = schemaAt(issue.path);
    const allowed = parent instanceof z.ZodObject ? Object.keys(parent.shape).join(', ') : '';
    return `${field}: unknown field${issue.keys.length > 1 ? 's' : ''} ${issue.keys.map((k) => `"${k}"`).join(', ')}; allowed: ${allowed}`;
  }
  const value = valueAt(document, issue.path);
  const found = value === undefined ? 'missing' : `${JSON.stringify(value)} is not allowed`;
  if (issue.code === 'invalid_value') {
    return `${field}: ${found}; expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`;
  }
  return `${field}: ${found}; ${issue.message}`;
}

export interface TimingOverrides {
  segdur?: number | undefined;
  cdur?: number | undefined;
  asto?: number | undefined;
  tsb?: number | undefined;
  llhls?: 'br' | 'sf' | 'off' | undefined;
  partChunks?: number | undefined;
  dual?: boolean | undefined;
  /** Whether real-time steps are taken (--adapt, --no-adapt); undefined: the profile's. */
  adapt?: boolean | undefined;
}

export function applyOverrides(profile: Profile, overrides: TimingOverrides): Profile {
  return {
    ...profile,
    realtime: overrides.adapt === undefined ? profile.realtime : { ...profile.realtime, adapt: overrides.adapt },
    segdur: overrides.segdur ?? profile.segdur,
    cdur: overrides.cdur ?? profile.cdur,
    asto: overrides.asto ?? profile.asto,
    tsb: overrides.tsb ?? profile.tsb,
    hls: {
      llhls: overrides.llhls ?? profile.hls.llhls,
      partChunks: overrides.partChunks ?? profile.hls.partChunks,
      dual: overrides.dual ?? profile.hls.dual,
    },
  };
}

const EPSILON = 1e-9;
const isWhole = (x: number): boolean => Math.abs(x - Math.round(x)) < 1e-6;

/**
 * The timing rules a profile plus overrides must satisfy. Pure; the caller decides
 * how to report. Errors make the run impossible; warnings make it worse than intended.
 */
export function checkTiming(profile: Profile): { errors: string[]; warnings: string[] } {
  const { segdur, cdur, asto, idr } = profile;
  const fps = profile.video.framerate;
  const errors: string[] = [];
  const warnings: string[] = [];
  if (asto >= segdur - EPSILON) {
    errors.push(
      `asto ${asto} s must be less than segdur ${segdur} s (DASH-IF low-latency rule: 0 < availabilityTimeOffset < segment duration)`,
    );
  }
  if (cdur > segdur + EPSILON) {
    errors.push(`cdur ${cdur} s must not exceed segdur ${segdur} s (a chunk is a part of a segment)`);
  }
  if (!isWhole(idr * fps)) {
    errors.push(`idr ${idr} s is not a whole number of frames at ${fps} fps, so IDRs cannot fall on the epoch grid`);
  }
  if (!isWhole(segdur / idr)) {
    errors.push(
      `segdur ${segdur} s is not a multiple of the IDR interval ${idr} s, so segments would not start with an IDR`,
    );
  }
  if (!isWhole(cdur * fps)) {
    const frames = cdur * fps;
    const near = [Math.floor(frames), Math.ceil(frames)].filter((f) => f > 0).map((f) => Number((f / fps).toFixed(6)));
    errors.push(
      `cdur ${cdur} s is ${Number(frames.toFixed(3))} frames at ${fps} fps; it must be a whole number of frames (e.g. ${near.join(' or ')})`,
    );
  }
  if (errors.length === 0 && asto > segdur - cdur + EPSILON) {
    warnings.push(
      `asto ${asto} s is more than segdur − cdur = ${Number((segdur - cdur).toFixed(6))} s: players would ask for a segment before its first chunk exists`,
    );
  }
  if (errors.length === 0 && profile.hls.llhls !== 'off' && profile.hls.partChunks * cdur >= segdur - EPSILON) {
    warnings.push(
      `LL-HLS parts of ${profile.hls.partChunks} × cdur ${cdur} s are whole segments: players gain nothing from them (use a shorter cdur or hls.llhls: off)`,
    );
  }
  const { target, min, max } = profile.latency;
  if (profile.tsb < 3 * segdur) {
    errors.push(
      `tsb ${profile.tsb} s must hold at least 3 segments (${3 * segdur} s): players need room behind the live edge`,
    );
  }
  if (!(min <= target && target <= max)) {
    errors.push(`latency.min ${min} ≤ latency.target ${target} ≤ latency.max ${max} does not hold`);
  }
  return { errors, warnings };
}
