import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { fileInputs, fileSourcePolicy, parseFileSpec, type FileSource } from '../../src/capture/file-source.ts';
import { isInterlaced, parseInputInfo, type InputInfo } from '../../src/capture/media-info.ts';
import { sourceRate } from '../../src/capture/negotiate.ts';
import { parseSource } from '../../src/capture/source.ts';
import { loadProfile } from '../../src/config/profile.ts';
import { buildEncoderPlan } from '../../src/encode/ffmpeg-args.ts';

const { profile } = await loadProfile('ultra-ll');
const fixture = async (name: string) =>
  parseInputInfo(await readFile(new URL(`../fixtures/media-info/${name}.txt`, import.meta.url), 'utf8'));
const want = { width: 1920, height: 1080, framerate: 30, segdur: 1, idr: 1 };

describe('what ffmpeg says of an input', () => {
  it('reads duration, start, the first video and audio stream of several containers', async () => {
    assert.deepEqual(await fixture('p720'), {
      duration: 3,
      start: 0,
      error: undefined,
      video: { codec: 'h264', width: 1280, height: 720, framerate: 50, fieldOrder: 'progressive' },
      audio: { codec: 'aac', sampleRate: 44100, layout: 'mono' },
    });
    const ts = await fixture('i1080');
    assert.deepEqual(
      [ts.start, ts.video?.fieldOrder, ts.video?.framerate, isInterlaced(ts.video!)],
      [1.4, 'top first', 25, true],
    );
    assert.deepEqual((await fixture('v2997')).video?.framerate, 29.97);
    assert.equal((await fixture('v2997')).audio, undefined);
    assert.deepEqual((await fixture('sd')).audio, { codec: 'ac3', sampleRate: 48000, layout: '5.1(side)' });
    assert.equal((await fixture('a')).video, undefined);
  });
  it('skips cover art, reads k-rates, and says why an input did not open', () => {
    const art = parseInputInfo(
      "Input #0, mp3, from 'a.mp3':\n  Duration: 00:03:00.05, start: 0.025057, bitrate: 128 kb/s\n  Stream #0:0: Audio: mp3, 44100 Hz, stereo, fltp, 128 kb/s\n  Stream #0:1: Video: mjpeg (Baseline), yuvj420p(pc, bt470bg/unknown/unknown), 500x500 [SAR 1:1 DAR 1:1], 90k tbr, 90k tbn (attached pic)\n",
    );
    assert.equal(art.video, undefined);
    assert.equal(art.duration, 180.05);
    const live = parseInputInfo(
      "Input #0, mpegts, from 'udp://127.0.0.1:5000':\n  Duration: N/A, start: 1.400000, bitrate: N/A\n  Stream #0:0[0x100]: Video: h264 (High) ([27][0][0][0] / 0x001B), yuv420p(progressive), 1920x1080, 1k fps, 30 tbr, 90k tbn\n",
    );
    assert.deepEqual([live.duration, live.video?.framerate], [undefined, 1000]);
    assert.equal(parseInputInfo('/x/a.mp4: No such file or directory\n').error, 'No such file or directory');
    assert.equal(
      parseInputInfo(
        '[mov,mp4,m4a,3gp,3g2,mj2 @ 0x55] moov atom not found\n/x/g.mp4: Invalid data found when processing input\n',
      ).error,
      'Invalid data found when processing input',
    );
  });
});

describe('a file as a live source', () => {
  it('file:PATH resolves against the working directory', () => {
    assert.deepEqual(parseSource('file:clips/a.mp4', '/srv'), { kind: 'file', path: '/srv/clips/a.mp4' });
    assert.deepEqual(parseFileSpec('file:/media/a.ts', '/srv'), { kind: 'file', path: '/media/a.ts' });
    assert.throws(() => parseSource('file:', '/srv'), /a path is missing; accepted: file:PATH/);
  });
  it("rates follow the cameras' rules: the profile's, a multiple decimated, 25/50 kept, 29.97 as 30, else the profile's", () => {
    assert.deepEqual(
      [30, 60, 50, 25, 29.97, 24, 12.5, undefined].map((r) => {
        const c = sourceRate(r, want);
        return [c.framerate, c.captureRate];
      }),
      [
        [30, 30],
        [30, 60],
        [50, 50],
        [25, 25],
        [30, 29.97],
        [24, 24],
        [30, 30],
        [30, 30],
      ],
    );
  });
  it('policy: interlaced → deinterlaced, 50 fps kept, missing audio or video stood in for, every decision said', async () => {
    const request = { kind: 'file' as const, path: '/m/i.ts' };
    const interlaced = fileSourcePolicy(request, await fixture('i1080'), profile, true);
    assert.deepEqual(
      [interlaced.source.deinterlace, interlaced.source.framerate, interlaced.source.hasAudio],
      [true, 25, true],
    );
    assert.ok(interlaced.reasons.some((r) => /interlaced \(top first\): deinterlaced/.test(r)));
    const silent = fileSourcePolicy(request, await fixture('v2997'), profile, true);
    assert.deepEqual(
      [silent.source.hasAudio, silent.source.framerate, silent.source.captureRate],
      [false, 30, undefined],
    );
    assert.ok(silent.reasons.includes('no audio: silence, so the audio track exists'));
    const radio = fileSourcePolicy(request, await fixture('a'), profile, true);
    assert.deepEqual([radio.source.hasVideo, radio.source.width, radio.source.height], [false, 1920, 1080]);
  });
  it('refuses a file that cannot be opened, holds nothing, or is too short to play once', async () => {
    const request = { kind: 'file' as const, path: '/m/x.mp4' };
    const nothing: InputInfo = { duration: 3, start: 0, video: undefined, audio: undefined, error: undefined };
    assert.throws(
      () => fileSourcePolicy(request, { ...nothing, error: 'No such file or directory' }, profile, false),
      /file:\/m\/x\.mp4: ffmpeg cannot open it: No such file or directory/,
    );
    assert.throws(() => fileSourcePolicy(request, nothing, profile, true), /neither a video nor an audio stream/);
    const p720 = await fixture('p720');
    assert.equal(
      fileSourcePolicy(request, p720, profile, false).source.loop,
      false,
      '3 s: two whole segments and a second to close them',
    );
    assert.throws(
      () => fileSourcePolicy(request, { ...p720, duration: 2.5 }, profile, false),
      /2\.5 s is too short to play once \(at least 3 s: two whole segments\); add --loop/,
    );
    assert.throws(
      () => fileSourcePolicy(request, { ...p720, duration: undefined }, profile, true),
      /--loop: .* has no known duration/,
    );
  });
  it('inputs and plan: -re, the loop, stand-ins, one wall-clock anchor for both streams, no burnt-in clock', async () => {
    const source: FileSource = {
      kind: 'file',
      path: '/m/a.ts',
      loop: true,
      duration: 10,
      hasVideo: true,
      hasAudio: false,
      width: 1920,
      height: 1080,
      framerate: 25,
      captureRate: undefined,
      deinterlace: true,
    };
    const inputs = fileInputs(source, { samplerate: 48000, channels: 2 });
    assert.deepEqual(inputs.args.slice(0, 7), [
      '-re',
      '-stream_loop',
      '-1',
      '-thread_queue_size',
      '512',
      '-i',
      '/m/a.ts',
    ]);
    assert.deepEqual([inputs.video, inputs.audio], ['0:v:0', '1:a']);
    assert.match(inputs.args.at(-1)!, /^anullsrc=r=48000:cl=stereo,arealtime$/);
    const plan = buildEncoderPlan(
      { ...profile, video: { ...profile.video, framerate: 25 }, cdur: 0.08 },
      source,
      profile.video.renditions,
      { anchorSeconds: 1_764_000_000.5 },
    );
    const args = plan.args.join(' ');
    assert.equal(plan.anchorSeconds, 1_764_000_000.5);
    assert.match(
      args,
      /-copyts -start_at_zero -filter_complex \[0:v:0\]bwdif=mode=send_frame:deint=interlaced,setpts=PTS\+1764000000\.500000\/TB,setpts='st\(0/,
    );
    assert.match(args, /-map 1:a -af asetpts=PTS\+1764000000\.500000\/TB,aresample=async=96/);
    assert.doesNotMatch(args, /drawtext/);
    assert.throws(() => buildEncoderPlan(profile, source, profile.video.renditions), /needs the wall-clock instant/);
    const once = fileInputs(
      { ...source, loop: false, hasVideo: false, hasAudio: true },
      { samplerate: 48000, channels: 2 },
    );
    assert.deepEqual([once.args.includes('-stream_loop'), once.video, once.audio], [false, '1:v', '0:a:0']);
    assert.match(once.args.at(-1)!, /^color=.*AUDIO ONLY.*,realtime$/);
  });
});
