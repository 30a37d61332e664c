import { randomBytes } from 'node:crypto';
import { Client } from '../push/http-client.ts';
import type { Profile } from '../config/schema.ts';
import { CLOCK_REFUSE_MS, CLOCK_WARN_MS, measureClockOffset } from '../encode/clock.ts';
import { parseTestSource } from '../capture/source.ts';
import { startEncoder } from '../encode/encoder.ts';
import { buildEncoderPlan } from '../encode/ffmpeg-args.ts';
import { locateFfmpeg, type Ffmpeg } from '../encode/ffmpeg-resolve.ts';
import { planLadder } from '../ladder/ladder.ts';
import { realtimeLevels } from '../ladder/realtime-steps.ts';
import { createLogger } from '../log.ts';
import type { PushTarget } from '../push/output-target.ts';
import { FFMPEG_NEEDS } from './start-settings.ts';
import { type CameraDecode, combinedSpeed, decodeSpeed } from './check-decode.ts';
import { type ClientCertificate, tlsConnectOptions } from '../push/client-certificate.ts';

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

/**
 * Pure: an encode's speed (1 = real time) → a finding; `stepped`: the first real-time level that
 * keeps real time where the profile's own settings do not (a start steps down to it).
 */
export function cpuFinding(
  speed: number,
  profile: Profile,
  stepped?: { level: number; change: string; speed: number } | undefined,
  camera?: { decode: CameraDecode; speed: number | undefined } | undefined,
): Finding {
  const decoding = camera
    ? `, and the camera's ${camera.decode.format} decode (${camera.decode.width}x${camera.decode.height} at ${camera.decode.framerate} fps${camera.speed === undefined ? ': not measured' : `, ${camera.speed.toFixed(2)}x alone`})`
    : '';
  const text = `the ${profile.name} ladder (${profile.video.renditions.map((r) => r.id).join(' + ')}, ${profile.video.preset}, with the clock, the detectors and audio${decoding}) encodes at ${speed.toFixed(2)}x real time`;
  const adapts = profile.realtime.adapt;
  if (speed < 1 && stepped)
    return {
      check: 'cpu',
      verdict: adapts ? 'warn' : 'fail',
      text: `${text}: not real time; ${adapts ? 'a start steps down' : 'with realtime.adapt: true (or start --adapt) a start would step down'} to level ${stepped.level} (${stepped.change}: ${stepped.speed.toFixed(2)}x) when it falls behind; a lighter profile keeps the ladder whole`,
    };
  if (speed < 1)
    return {
      check: 'cpu',
      verdict: 'fail',
      text: `${text}: not real time${profile.realtime.steps.length ? ', not even at its last real-time step' : ''}; use a faster preset or fewer renditions (a profile file)`,
    };
  if (speed < 1.5)
    return {
      check: 'cpu',
      verdict: 'warn',
      text: `${text}: little headroom (${camera ? 'other load' : "a camera's MJPEG decode or other load"} may tip it)`,
    };
  return { check: 'cpu', verdict: 'ok', text };
}

/**
 * `decode`: the camera's compressed video, decoded before anything is encoded: its speed alone is
 * measured and the two speeds combined as if one waited for the other (conservative: on several
 * cores they overlap).
 */
export async function checkCpu(
  ffmpegPath: string,
  profile: Profile,
  seconds = 4,
  decode?: CameraDecode | undefined,
): Promise<Finding> {
  const decoding = decode ? await decodeSpeed(ffmpegPath, decode, seconds) : undefined;
  const camera = decode && { decode, speed: decoding };
  const withDecode = (speed: number) => (decoding === undefined ? speed : combinedSpeed(speed, decoding));
  const encoded = await encodeSpeed(ffmpegPath, profile, seconds);
  if (typeof encoded === 'string') return { check: 'cpu', verdict: 'fail', text: `the test encode failed: ${encoded}` };
  const measured = withDecode(encoded);
  if (measured >= 1) return cpuFinding(measured, profile, undefined, camera);
  // Not real time as written: which of the profile's steps would a start end up at?
  const levels = realtimeLevels({ ...profile, realtime: { ...profile.realtime, adapt: true } });
  for (let level = 1; level < levels.length; level++) {
    const speed = await encodeSpeed(ffmpegPath, levels[level]!.profile, seconds);
    if (typeof speed === 'number' && withDecode(speed) >= 1)
      return cpuFinding(measured, profile, { level, change: levels[level]!.change, speed: withDecode(speed) }, camera);
  }
  return cpuFinding(measured, profile, undefined, camera);
}

/**
 * Encodes `seconds` of the test source through the live encoder's whole command line (the
 * burnt-in clock, the detectors, every rendition, the audio chain and AAC, the fMP4 muxers) as fast
 * as the machine can: what a start on this box would ask of its CPU, less a camera's decoding.
 * The speed, or what ffmpeg said when it failed.
 */
async function encodeSpeed(ffmpegPath: string, profile: Profile, seconds: number): Promise<number | string> {
  const source = parseTestSource('test');
  const plan = buildEncoderPlan(profile, source, planLadder(profile.video.renditions, source).renditions, {
    probeSeconds: seconds,
    startMs: Date.now(),
  });
  const started = performance.now();
  const encoder = startEncoder({ ffmpegPath, plan, logger: createLogger('silent') });
  // The tracks are read as a start reads them, and dropped.
  for (const stream of encoder.tracks.values()) stream.resume();
  // A machine 30 times too slow has its answer: not real time.
  const timeout = setTimeout(() => encoder.kill(), Math.max(60, 30 * seconds) * 1000);
  const exit = await encoder.exited.finally(() => clearTimeout(timeout));
  if (exit.signal === 'SIGKILL') return 0;
  if (exit.code !== 0) return exit.stderrTail.slice(-2).join(' ');
  return seconds / ((performance.now() - started) / 1000);
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
  certificate?: ClientCertificate | undefined,
): Promise<number | undefined> {
  const bytes = Math.min(8 << 20, Math.ceil((ladderRate(profile) * seconds) / 8));
  const probe = new URL(`.appliance-speed-${randomBytes(6).toString('hex')}.bin${target.url.search}`, target.url);
  const client = new Client(probe.origin, {
    connect: {
      timeout: 5000,
      ...tlsConnectOptions(probe.origin, ca, certificate),
    },
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
