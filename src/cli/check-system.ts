import { randomBytes } from 'node:crypto';
import { Client } from 'undici';
import { execa } from 'execa';
import type { Profile } from '../config/schema.ts';
import { CLOCK_REFUSE_MS, CLOCK_WARN_MS, measureClockOffset } from '../encode/clock.ts';
import { videoEncoderArgs } from '../encode/ffmpeg-args.ts';
import { locateFfmpeg, type Ffmpeg } from '../encode/ffmpeg-resolve.ts';
import { scaleTo } from '../ladder/ladder.ts';
import type { PushTarget } from '../push/output-target.ts';
import { FFMPEG_NEEDS } from './start-settings.ts';

// `appliance check`'s look at this machine: ffmpeg, the clock, the CPU for the profile's ladder,
// and each origin's upload speed against the ladder's rate. Each finding is a line: ok, warn (the
// stream runs, worse), or fail (a start would stop, or the stream could not keep real time).

export type Verdict = 'ok' | 'warn' | 'fail';
export interface Finding {
  check: string;
  verdict: Verdict;
  text: string;
}

/** The ladder's rate: every rendition and the audio, bits per second. */
export const ladderRate = (profile: Profile) =>
  profile.video.renditions.reduce((n, r) => n + r.bitrate, 0) + profile.audio.bitrate;

/** Pure: what an ffmpeg has against what a start needs. */
export function ffmpegFindings(ffmpeg: Ffmpeg): Finding[] {
  const missingEncoders = FFMPEG_NEEDS.encoders.filter((e) => !ffmpeg.encoders.has(e));
  const missingFilters = FFMPEG_NEEDS.filters.filter((f) => !ffmpeg.filters.has(f));
  return [
    { check: 'ffmpeg', verdict: 'ok', text: `${ffmpeg.path} (${ffmpeg.origin}), version ${ffmpeg.version.text}` },
    missingEncoders.length
      ? {
          check: 'ffmpeg encoders',
          verdict: 'fail',
          text: `missing ${missingEncoders.join(', ')}: this ffmpeg cannot encode the ladder (install a build with libx264, e.g. Debian's ffmpeg)`,
        }
      : { check: 'ffmpeg encoders', verdict: 'ok', text: FFMPEG_NEEDS.encoders.join(', ') },
    ...(missingFilters.length
      ? [{ check: 'ffmpeg filters', verdict: 'fail' as const, text: `missing ${missingFilters.join(', ')}` }]
      : []),
  ];
}

export async function checkFfmpeg(
  flag: string | undefined,
): Promise<{ ffmpeg: Ffmpeg | undefined; findings: Finding[] }> {
  try {
    // Nothing required here: what is missing is reported as a finding, not thrown.
    const ffmpeg = await locateFfmpeg(flag, { encoders: [], filters: [] });
    return { ffmpeg, findings: ffmpegFindings(ffmpeg) };
  } catch (error) {
    return {
      ffmpeg: undefined,
      findings: [{ check: 'ffmpeg', verdict: 'fail', text: (error as Error).message.split('\n')[0]! }],
    };
  }
}

/** Pure: a clock offset → a finding (ultra-ll refuses to start beyond CLOCK_REFUSE_MS). */
export function clockFinding(
  measured: { offsetMs: number; source: string; remote?: boolean | undefined } | undefined,
  profile: Profile,
): Finding {
  if (!measured)
    return {
      check: 'clock',
      verdict: 'warn',
      text: 'nothing to measure the clock against (no chrony, no systemd-timesyncd, no appliance origin): players may see the wrong latency',
    };
  const ms = Math.round(measured.offsetMs * 10) / 10;
  const text = `${ms} ms off (${measured.source})`;
  if (Math.abs(ms) > CLOCK_REFUSE_MS && measured.remote)
    return {
      check: 'clock',
      verdict: 'warn',
      text: `${text}: the origin's clock and this one disagree and no local time daemon says which is right; start runs on (with a warning), players synchronised to the origin see the wrong latency; synchronise this machine (chrony, systemd-timesyncd) and check the origin's`,
    };
  if (Math.abs(ms) > CLOCK_REFUSE_MS)
    return {
      check: 'clock',
      verdict: profile.name === 'ultra-ll' ? 'fail' : 'warn',
      text: `${text}: ${profile.name === 'ultra-ll' ? 'ultra-ll refuses to start' : 'players see the wrong latency'}; synchronise it (chrony, systemd-timesyncd)`,
    };
  if (Math.abs(ms) > CLOCK_WARN_MS)
    return {
      check: 'clock',
      verdict: 'warn',
      text: `${text}: players synchronised to another clock see the wrong latency`,
    };
  return { check: 'clock', verdict: 'ok', text };
}

export async function checkClockOffset(profile: Profile, timeUrls: readonly string[]): Promise<Finding> {
  return clockFinding(await measureClockOffset({ timeUrls }), profile);
}

/** Pure: an encode's speed (1 = real time) → a finding. */
export function cpuFinding(speed: number, profile: Profile): Finding {
  const text = `the ${profile.name} ladder (${profile.video.renditions.map((r) => r.id).join(' + ')}, ${profile.video.preset}) encodes at ${speed.toFixed(2)}x real time`;
  if (speed < 1)
    return {
      check: 'cpu',
      verdict: 'fail',
      text: `${text}: not real time; use a faster preset or fewer renditions (a profile file)`,
    };
  if (speed < 1.5)
    return {
      check: 'cpu',
      verdict: 'warn',
      text: `${text}: little headroom (a camera's MJPEG decode or other load may tip it)`,
    };
  return { check: 'cpu', verdict: 'ok', text };
}

/** Encodes `seconds` of a synthetic picture with the profile's ladder as fast as the machine can. */
export async function checkCpu(ffmpegPath: string, profile: Profile, seconds = 4): Promise<Finding> {
  const top = profile.video.renditions[0]!;
  const fps = profile.video.framerate;
  const renditions = profile.video.renditions;
  const graph = `[0:v]split=${renditions.length}${renditions.map((_, i) => `[s${i}]`).join('')};${renditions.map((r, i) => `[s${i}]${scaleTo(r, top) ?? 'null'}[r${i}]`).join(';')}`;
  const args = [
    '-hide_banner',
    '-nostats',
    '-loglevel',
    'error',
    '-f',
    'lavfi',
    '-i',
    `testsrc2=size=${top.width}x${top.height}:rate=${fps}:duration=${seconds}`,
    '-filter_complex',
    graph,
    ...renditions.flatMap((r, i) => ['-map', `[r${i}]`, ...videoEncoderArgs(profile, r), '-f', 'null', '-']),
  ];
  const started = performance.now();
  const run = await execa(ffmpegPath, args, { reject: false, timeout: 120_000 });
  if (run.exitCode !== 0)
    return {
      check: 'cpu',
      verdict: 'fail',
      text: `the test encode failed: ${String(run.stderr).split('\n').slice(-2).join(' ')}`,
    };
  return cpuFinding(seconds / ((performance.now() - started) / 1000), profile);
}

/** Pure: a measured upload speed against the ladder's rate. */
export function uploadFinding(url: string, bitsPerSecond: number, profile: Profile): Finding {
  const rate = ladderRate(profile);
  const text = `${url}: upload ${(bitsPerSecond / 1e6).toFixed(1)} Mb/s for a ${(rate / 1e6).toFixed(2)} Mb/s ladder`;
  if (bitsPerSecond < rate)
    return {
      check: 'upload',
      verdict: 'warn',
      text: `${text}: too slow; the top rendition will be shed for this origin (alarms.uplink)`,
    };
  if (bitsPerSecond < rate * 1.25) return { check: 'upload', verdict: 'warn', text: `${text}: little headroom` };
  return { check: 'upload', verdict: 'ok', text };
}

/** PUTs `seconds` of the ladder's rate (at most 8 MB) next to the manifest, times it, and deletes it. */
export async function measureUpload(
  target: PushTarget,
  headers: Record<string, string>,
  ca: string[] | undefined,
  profile: Profile,
  seconds = 2,
): Promise<number | undefined> {
  const bytes = Math.min(8 << 20, Math.ceil((ladderRate(profile) * seconds) / 8));
  const probe = new URL(`.appliance-speed-${randomBytes(6).toString('hex')}.bin${target.url.search}`, target.url);
  const client = new Client(probe.origin, {
    connect: { timeout: 5000, ...(ca && probe.protocol === 'https:' ? { ca } : {}) },
    headersTimeout: 30_000,
    bodyTimeout: 30_000,
  });
  const path = probe.pathname + probe.search;
  try {
    const body = randomBytes(bytes);
    const started = performance.now();
    const answer = await client.request({
      path,
      method: 'PUT',
      headers: { ...headers, 'content-type': 'application/octet-stream' },
      body,
    });
    await answer.body.dump();
    const elapsed = (performance.now() - started) / 1000;
    if (answer.statusCode >= 300) return undefined;
    const removed = await client.request({ path, method: 'DELETE', headers });
    await removed.body.dump();
    return (bytes * 8) / Math.max(elapsed, 0.001);
  } catch {
    return undefined;
  } finally {
    await client.destroy();
  }
}
