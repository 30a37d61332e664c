import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { loadProfile } from '../../src/config/profile.ts';
import { audioEncoderArgs, audioSyncFilter } from '../../src/encode/ffmpeg-args.ts';
import { audioFrameAtOrBefore } from '../../src/timeline/epoch-grid.ts';
import { readFmp4 } from '../helpers/fmp4-reader.ts';

// The real audio chain (rate conversion, the sync resampler with its first_pts, AAC and the fMP4
// muxer, with the encoder's own arguments), run by the real ffmpeg as fast as it can on stamps of
// any phase: every AAC frame must come out on k·1024 samples since 1970, continuous.

const { profile: base } = await loadProfile('ultra-ll');
const RUN_START_MS = 1_764_000_000_000 + 4321;

async function encodeAudio(options: {
  inputRate: number;
  profileRate?: 48_000 | 44_100;
  /** The stamps, in seconds after the run's start, as an ffmpeg expression of T (seconds of input). */
  stamp: string;
  seconds?: number;
  startMs?: number;
}) {
  const profile = { ...base, audio: { ...base.audio, samplerate: options.profileRate ?? 48_000 } };
  const startMs = options.startMs ?? RUN_START_MS;
  const first = audioFrameAtOrBefore(startMs - 100, profile.audio.samplerate);
  const source = [
    `sine=frequency=1000:sample_rate=${options.inputRate}:duration=${options.seconds ?? 4}`,
    'asettb=AVTB',
    `asetpts='(${(startMs / 1000).toFixed(3)}+${options.stamp})/TB'`,
  ].join(',');
  const run = await execa(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      source,
      '-copyts',
      '-af',
      audioSyncFilter(profile, first),
      ...audioEncoderArgs(profile),
      'pipe:1',
    ],
    { encoding: 'buffer', reject: false, timeout: 60_000 },
  );
  assert.equal(run.exitCode, 0, Buffer.from(run.stderr).toString());
  const { tracks, fragments } = readFmp4(new Uint8Array(run.stdout));
  const samples = fragments.flatMap((f) => f.tracks.flatMap((t) => t.samples));
  return { first, timescale: tracks[0]!.timescale, samples };
}

function assertOnTheGrid({ samples }: Awaited<ReturnType<typeof encodeAudio>>, what: string) {
  assert.ok(samples.length > 100, `${what}: ${samples.length} frames`);
  samples.forEach((s, i) => {
    assert.equal(s.decodeTime % 1024n, 0n, `${what}: frame ${i} at ${s.decodeTime}`);
    if (i > 0 && i < samples.length - 1)
      assert.equal(s.decodeTime, samples[i - 1]!.decodeTime + 1024n, `${what}: frame ${i} follows the one before`);
  });
}

describe('audio on the epoch frame grid, whatever the stamps do (real ffmpeg)', { timeout: 120_000 }, () => {
  for (const phase of [0.0123, 0.3711, 0.9999]) {
    it(`stamps ${phase} s after the run's start: every frame on k·1024, the priming frame one before first_pts`, async () => {
      const encoded = await encodeAudio({ inputRate: 48_000, stamp: `${phase}+T` });
      assertOnTheGrid(encoded, `phase ${phase}`);
      assert.equal(encoded.timescale, 48_000);
      assert.equal(encoded.samples[0]!.decodeTime, encoded.first - 1024n, "the encoder's priming frame");
    });
  }

  it('a 44.1 kHz input into a 48 kHz profile, and a 44.1 kHz profile: first_pts counts the converted samples', async () => {
    const into48 = await encodeAudio({ inputRate: 44_100, stamp: '0.2+T' });
    assertOnTheGrid(into48, '44.1 kHz into 48 kHz');
    assert.equal(into48.samples[0]!.decodeTime, into48.first - 1024n);
    const at441 = await encodeAudio({ inputRate: 44_100, profileRate: 44_100, stamp: '0.2+T' });
    assert.equal(at441.timescale, 44_100);
    assertOnTheGrid(at441, '44.1 kHz profile');
    assert.equal(at441.samples[0]!.decodeTime, at441.first - 1024n);
  });

  it('stamps that jump 0.3 s ahead, then 0.25 s back (a device losing and repeating samples): the grid holds', async () => {
    const encoded = await encodeAudio({
      inputRate: 48_000,
      stamp: '0.15+T+0.3*gte(T,1.5)-0.25*gte(T,3)',
      seconds: 5,
    });
    assertOnTheGrid(encoded, 'jumps');
    // The sample count follows the stamps through both jumps: silence in, samples out.
    const end = Number(encoded.samples.at(-1)!.decodeTime + 1024n) / 48_000;
    const stampsEnd = RUN_START_MS / 1000 + 0.15 + 5 + 0.3 - 0.25;
    assert.ok(
      Math.abs(end - stampsEnd) <= 2048 / 48_000,
      `media ends ${(end - stampsEnd).toFixed(4)} s from the stamps' end`,
    );
  });

  it('stamps that begin before first_pts (a feed mapped early): trimmed to it, still on the grid', async () => {
    const encoded = await encodeAudio({ inputRate: 48_000, stamp: '-0.4+T' });
    assertOnTheGrid(encoded, 'early stamps');
    assert.equal(encoded.samples[0]!.decodeTime, encoded.first - 1024n);
  });
});
