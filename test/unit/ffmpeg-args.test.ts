import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import { parseTestSource } from '../../src/capture/source.ts';
import { clockOverlay } from '../../src/capture/test-source.ts';
import { BUILTIN_PROFILES, loadProfile } from '../../src/config/profile.ts';
import { buildEncoderPlan, shellQuote } from '../../src/encode/ffmpeg-args.ts';
import { planLadder } from '../../src/ladder/ladder.ts';
import { matchesGolden } from '../helpers/golden.ts';

/** Golden files pin the exact argv; regenerate with UPDATE_GOLDEN=1 and review the diff. */
const matchesArgv = (t: TestContext, name: string, actual: unknown) =>
  matchesGolden(t, `${name}.json`, `${JSON.stringify(actual, null, 2)}\n`);

/** A run's start on the wall clock, for plans that put audio on the epoch grid. */
const RUN_START_MS = 1_764_000_000_123;

describe('ffmpeg argv per profile (golden)', () => {
  for (const name of BUILTIN_PROFILES) {
    for (const spec of ['test', 'test:mandelbrot']) {
      it(`${name} with --source ${spec}`, async (t) => {
        const { profile } = await loadProfile(name);
        const source = parseTestSource(spec);
        const plan = buildEncoderPlan(profile, source, planLadder(profile.video.renditions, source).renditions, {
          startMs: RUN_START_MS,
        });
        await matchesArgv(t, `argv-${name}${spec === 'test' ? '' : '-mandelbrot'}`, {
          args: plan.args,
          tracks: plan.tracks.map(({ id, kind, fd, bitrate }) => ({ id, kind, fd, bitrate })),
        });
      });
    }
  }
});

describe('what the argv must say, whatever the golden files hold', () => {
  it('ultra-ll: IDRs on the grid, capped VBR, no B-frames, one fMP4 pipe per track', async () => {
    const { profile } = await loadProfile('ultra-ll');
    const source = parseTestSource('test');
    const { args, tracks } = buildEncoderPlan(profile, source, profile.video.renditions);
    const joined = args.join(' ');
    assert.deepEqual(
      tracks.map((t) => [t.id, t.fd]),
      [
        ['1080p', 3],
        ['720p', 4],
        ['audio', 5],
      ],
    );
    for (const fd of [3, 4, 5]) assert.ok(args.includes(`pipe:${fd}`));
    assert.equal(args.filter((a) => a === '-copyts').length, 1);
    assert.equal(joined.match(/-tune zerolatency/g)?.length, 2);
    assert.equal(
      joined.match(/-c:v libx264 -r 30 /g)?.length,
      2,
      "the encoder rate is the profile's, never a guess from the stamps",
    );
    assert.equal(joined.match(/-bf 0/g)?.length, 2);
    assert.equal(joined.match(/-sc_threshold 0/g)?.length, 2);
    assert.equal(joined.match(/-force_key_frames expr:gte\(t,n_forced\*1\)/g)?.length, 2);
    assert.match(joined, /-b:v 6000000 -maxrate 6000000 -bufsize 3000000/);
    assert.match(joined, /-b:v 3000000 -maxrate 3000000 -bufsize 1500000/);
    assert.doesNotMatch(joined, /nal-hrd/);
    assert.equal(joined.match(/frag_discont/g)?.length, 3);
    assert.match(joined, /-c:a aac -b:a 128000 -ar 48000 -ac 2/);
    assert.match(joined, /setpts=RTCTIME/);
    assert.match(joined, /asetpts=RTCTIME/);
    assert.match(joined, /select='if\(selected_n,gt\(pts,prev_selected_pts\),eq\(mod\(round\(t\*30\),30\),0\)\)'/);
  });

  it('audio on the epoch grid: first_pts is the grid frame at least 0.1 s before the run, at the profile rate', async () => {
    const { profile: base } = await loadProfile('ultra-ll');
    for (const rate of [48_000, 44_100] as const) {
      const profile = { ...base, audio: { ...base.audio, samplerate: rate } };
      for (const startMs of [RUN_START_MS, RUN_START_MS + 7, 1_800_000_000_000]) {
        const { args } = buildEncoderPlan(profile, parseTestSource('test'), profile.video.renditions, { startMs });
        const chain = args[args.indexOf('-af') + 1]!;
        const match = /^aresample=(\d+),aresample=async=\d+:min_hard_comp=0\.1:flags=res:first_pts=(\d+),/.exec(chain);
        assert.ok(match, chain);
        assert.equal(
          Number(match[1]),
          rate,
          'the rate is converted before the grid is set: first_pts counts input samples',
        );
        const first = Number(match[2]);
        assert.equal(first % 1024, 0, `${first} is a frame start`);
        const leadSamples = ((startMs - 100) * rate) / 1000 - first;
        assert.ok(
          leadSamples >= 0 && leadSamples < 1024,
          `${leadSamples} samples between the grid frame and 0.1 s before the run`,
        );
      }
    }
    const slate = buildEncoderPlan(base, parseTestSource('test'), base.video.renditions, {
      slate: true,
      startMs: RUN_START_MS,
    });
    assert.doesNotMatch(slate.args.join(' '), /first_pts/, 'the slate is re-stamped by the packager');
  });

  it('ll: 2 s segments select on 60-frame boundaries and IDRs stay every second', async () => {
    const { profile } = await loadProfile('ll');
    const { args } = buildEncoderPlan(profile, parseTestSource('test'), profile.video.renditions);
    assert.match(args.join(' '), /eq\(mod\(round\(t\*30\),60\),0\)/);
    assert.match(args.join(' '), /-frag_duration 500000/);
    assert.match(args.join(' '), /n_forced\*1\)/);
  });

  it('the clock scales with the picture and escapes drawtext separators', () => {
    assert.match(clockOverlay(1080), /fontsize=96:.*x=32:y=32:/);
    assert.match(clockOverlay(720), /fontsize=64:.*x=21:y=21:/);
    assert.match(clockOverlay(1080), /text='%\{eif\\:mod\(floor\(round\(t\*1000\)\/3600000\),24\)\\:d\\:2\}\\:/);
  });

  it('prints a command line a shell runs as is', () => {
    assert.equal(
      shellQuote(['ffmpeg', '-i', 'a b', "it's", 'pipe:3', 'expr:gte(t,1)']),
      `ffmpeg -i 'a b' 'it'\\''s' pipe:3 'expr:gte(t,1)'`,
    );
  });
});

describe("appliance check's CPU probe", () => {
  it('runs the live command line on the test source, unpaced, stamped from a boundary, for a few seconds', async () => {
    const { profile } = await loadProfile('ultra-ll');
    const source = parseTestSource('test');
    const live = buildEncoderPlan(profile, source, planLadder(profile.video.renditions, source).renditions, {
      startMs: RUN_START_MS,
    });
    const probe = buildEncoderPlan(profile, source, planLadder(profile.video.renditions, source).renditions, {
      probeSeconds: 4,
      startMs: RUN_START_MS,
    });
    const inputs = probe.args.filter((_, i) => probe.args[i - 1] === '-i');
    assert.equal(inputs.length, 2);
    assert.ok(
      inputs.every((i) => !/realtime|RTCTIME/.test(i)),
      'not paced, not read off the clock',
    );
    assert.match(inputs[0]!, /trim=duration=4,settb=AVTB,setpts=PTS\+1764000001\/TB/);
    assert.match(inputs[1]!, /atrim=duration=4,asettb=AVTB,asetpts=PTS\+1764000001\/TB/);
    // Everything after the inputs is what a start runs: the graph with the clock and the detectors, every encoder.
    const after = (args: string[]) => args.slice(args.indexOf('-copyts'));
    // The live graph also drops frames reaching it late against the clock; the probe's stamps are its own.
    const liveTail = after(live.args)
      .join(' ')
      .replace(/first_pts=\d+/, 'first_pts=X')
      .replace(/;st\(5,RTCTIME.*?;if\(ld\(3\),-1\/\(30\*TB\),(round\(ld\(1\)\/\(30\*TB\)\))\)'/, ";$1'");
    assert.notEqual(
      liveTail,
      after(live.args)
        .join(' ')
        .replace(/first_pts=\d+/, 'first_pts=X'),
      'the drop is there',
    );
    const probeTail = after(probe.args).join(' ');
    assert.equal(probeTail.replace(/:first_pts=\d+/, ''), liveTail.replace(/:first_pts=X/, ''));
    assert.match(probeTail, /drawtext=font=monospace/);
    assert.match(probeTail, /silencedetect/);
    assert.deepEqual(
      probe.tracks.map((t) => t.id),
      ['1080p', '720p', 'audio'],
    );
  });
});
