import { z } from 'zod';
import { BYTE_SIZE_EXAMPLES, parseByteSize } from './byte-size.ts';

/** x264 presets, fastest first; the appliance needs real time on 2 cores, so slow ones are refused. */
export const X264_PRESETS = ['ultrafast', 'superfast', 'veryfast', 'faster', 'fast'] as const;

/** What a box short of CPU may give up, one step at a time (see ladder/realtime-steps.ts). */
export const REALTIME_STEPS = ['preset', 'top-rendition', 'framerate'] as const;

const BITRATE_PATTERN = /^(\d+(?:\.\d+)?)\s*([kKmM]?)$/;

/** `6M`, `6000k`, `128k` or a plain number of bits per second. */
export function parseBitrate(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isInteger(value) && value > 0 ? value : undefined;
  const match = BITRATE_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const scale = { '': 1, k: 1e3, K: 1e3, m: 1e6, M: 1e6 }[match[2] ?? ''] ?? 1;
  const bits = Math.round(Number(match[1]) * scale);
  return bits > 0 ? bits : undefined;
}

const bitrate = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bits = parseBitrate(value);
  if (bits === undefined) {
    ctx.addIssue({ code: 'custom', message: 'expected a bitrate such as 6M, 3000k or 128000 (bits per second)' });
    return z.NEVER;
  }
  return bits;
});

const byteSize = z.union([z.number(), z.string()]).transform((value, ctx) => {
  const bytes = parseByteSize(value);
  if (bytes === undefined) {
    ctx.addIssue({ code: 'custom', message: `expected ${BYTE_SIZE_EXAMPLES}` });
    return z.NEVER;
  }
  return bytes;
});

const seconds = z.number({ error: 'expected a number of seconds' });
const positiveSeconds = seconds.positive({ error: 'expected a number of seconds greater than 0' });

const renditionSchema = z.strictObject({
  id: z
    .string()
    .regex(/^[A-Za-z0-9_-]{1,32}$/, { error: 'expected 1–32 letters, digits, "-" or "_" (it names files and URLs)' }),
  width: z.number().int().min(64).max(7680).multipleOf(2, { error: 'expected an even width (4:2:0 chroma)' }),
  height: z.number().int().min(64).max(4320).multipleOf(2, { error: 'expected an even height (4:2:0 chroma)' }),
  bitrate,
});

export const profileSchema = z.strictObject({
  name: z.string().min(1),
  description: z.string().optional(),
  /** The capture source, as --source takes it (which overrides it): test, device, device:video=…,audio=…. */
  source: z.string().min(1).optional(),
  segdur: positiveSeconds,
  cdur: positiveSeconds,
  asto: seconds.min(0, { error: 'expected 0 or more seconds' }),
  idr: positiveSeconds,
  tsb: positiveSeconds.default(30),
  /**
   * Memory for media (the built-in origin's time-shift window and what push outputs hold until
   * acknowledged), one budget for both; default: sized from the ladder, tsb and the push budget.
   */
  memory: byteSize.optional(),
  video: z.strictObject({
    framerate: z
      .number()
      .int({ error: 'expected a whole number of frames per second (24–60); IDRs must land on whole seconds' })
      .min(1)
      .max(120),
    preset: z.enum(X264_PRESETS),
    vbvBuffer: positiveSeconds.max(2, { error: 'expected at most 2 s: a larger VBV buffer adds latency' }),
    renditions: z.array(renditionSchema).min(1, { error: 'expected at least one rendition' }),
    /** Copy the source's H.264 instead of encoding it (a feed already at the one rendition's size and rate). */
    passthrough: z.boolean({ error: 'expected true or false' }).default(false),
  }),
  audio: z.strictObject({
    codec: z.literal('aac'),
    bitrate,
    samplerate: z.union([z.literal(48000), z.literal(44100)], { error: 'expected 48000 or 44100' }),
    channels: z.union([z.literal(1), z.literal(2)], { error: 'expected 1 or 2' }),
  }),
  hls: z
    .strictObject({
      llhls: z
        .enum(['br', 'sf', 'off'], {
          error: 'expected br (parts as byte ranges), sf (also part files) or off (classic HLS)',
        })
        .default('br'),
      partChunks: z
        .number()
        .int({ error: 'expected a whole number of chunks per LL-HLS part' })
        .min(1)
        .max(50)
        .default(1),
      dual: z
        .boolean({
          error: 'expected true (the MPD and the HLS playlists) or false (the format the output name asks for)',
        })
        .default(true),
    })
    .default({ llhls: 'br', partChunks: 1, dual: true }),
  alarms: z
    .strictObject({
      silence: z
        .strictObject({
          enabled: z.boolean().default(true),
          thresholdDb: z.number().max(0, { error: 'expected dBFS, 0 or less (e.g. -60)' }).default(-60),
          seconds: positiveSeconds.default(5),
        })
        .default({ enabled: true, thresholdDb: -60, seconds: 5 }),
      black: z
        .strictObject({
          enabled: z.boolean().default(true),
          pixelThreshold: z.number().min(0).max(1).default(0.1),
          seconds: positiveSeconds.default(3),
        })
        .default({ enabled: true, pixelThreshold: 0.1, seconds: 3 }),
      freeze: z
        .strictObject({
          enabled: z.boolean().default(true),
          noiseDb: z.number().max(0, { error: 'expected dB, 0 or less (e.g. -60)' }).default(-60),
          seconds: positiveSeconds.default(5),
        })
        .default({ enabled: true, noiseDb: -60, seconds: 5 }),
      uplink: z
        .strictObject({
          shed: z
            .boolean({ error: 'expected true (drop the top rendition for a slow origin) or false (only the alarm)' })
            .default(true),
          graceSeconds: positiveSeconds.default(10),
          restoreSeconds: positiveSeconds.default(30),
        })
        .default({ shed: true, graceSeconds: 10, restoreSeconds: 30 }),
    })
    .prefault({}),
  /** When the encoder falls behind real time (a box short of CPU): the steps down it may take, in order. */
  realtime: z
    .strictObject({
      // Off by default: a step restarts the encoder into a new period, and players were seen to
      // stall or ask for segments not there yet across one on a loaded box (the alarm and the
      // manifests' latency margin are on regardless).
      adapt: z
        .boolean({ error: 'expected true (step down when behind real time) or false (only the alarm)' })
        .default(false),
      steps: z
        .array(
          z.enum(REALTIME_STEPS, {
            error: `expected steps among ${REALTIME_STEPS.join(', ')} (faster x264 preset, stop encoding the top rendition, a lower frame rate)`,
          }),
        )
        .max(6)
        .default(['preset', 'top-rendition', 'framerate']),
      /** Chunks later than this (p95 in a second, handed over − end of their media) are behind; default 2 chunks. */
      lateMs: z.number().positive({ error: 'expected milliseconds greater than 0' }).optional(),
      graceSeconds: positiveSeconds.default(3),
      holdSegments: z.number().int().min(1, { error: 'expected at least 1 segment' }).default(4),
      restoreSeconds: positiveSeconds.default(6),
    })
    .prefault({}),
  latency: z.strictObject({
    target: positiveSeconds,
    min: positiveSeconds,
    max: positiveSeconds,
    playbackRate: z.strictObject({ min: z.number().min(0.5).max(1), max: z.number().min(1).max(2) }),
  }),
});

export type Profile = z.output<typeof profileSchema>;
export type Rendition = Profile['video']['renditions'][number];
