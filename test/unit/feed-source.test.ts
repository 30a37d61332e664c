import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  feedForLogs,
  feedInputs,
  feedSourcePolicy,
  ffconcatScript,
  parseFeedSpec,
  redact,
  relayPlan,
  srtPassphrase,
} from '../../src/capture/feed-source.ts';
import { parseInputInfo } from '../../src/capture/media-info.ts';
import { loadProfile } from '../../src/config/profile.ts';
import { buildEncoderPlan } from '../../src/encode/ffmpeg-args.ts';

const { profile } = await loadProfile('ultra-ll');

describe('a live MPEG-TS feed as a source', () => {
  it('URLs: a port is needed, SRT modes checked, a passphrase only from the environment and never shown', () => {
    assert.throws(() => parseFeedSpec('udp://0.0.0.0'), /the port is missing, e\.g\. udp:\/\/0\.0\.0\.0:5000/);
    assert.throws(() => parseFeedSpec('srt://h:9000?passphrase=secretsecret'), /set APPLIANCE_SRT_PASSPHRASE instead/);
    assert.equal(feedForLogs('srt://user:pw@h:9000?mode=caller&streamid=abc'), 'srt://h:9000?mode=caller&streamid=…');
    assert.equal(
      redact(
        "Input #0, mpegts, from 'srt://h:9000?mode=caller&passphrase=hunter22hunter': x hunter22hunter",
        'hunter22hunter',
      ),
      "Input #0, mpegts, from 'srt://h:9000?mode=caller&passphrase=…': x …",
    );
    const udp = relayPlan(parseFeedSpec('udp://239.1.1.1:5000'), undefined);
    assert.ok(udp.args.includes('udp://239.1.1.1:5000?fifo_size=1000000&overrun_nonfatal=1'));
    assert.ok(!udp.args.includes('-copyts'), 'ffmpeg keeps timestamps going when a sender restarts');
    assert.equal(udp.script, undefined);
    const open = relayPlan(parseFeedSpec('srt://h:9000?mode=listener'), undefined);
    assert.ok(
      open.args.includes('srt://h:9000?mode=listener') && open.script === undefined,
      'no passphrase: the URL as given',
    );
  });

  it('an SRT passphrase reaches the relay through a pipe, never its command line', () => {
    const srt = relayPlan(parseFeedSpec('srt://h:9000?mode=listener'), 'hunter22hunter');
    assert.ok(!srt.args.join(' ').includes('hunter22hunter'), 'not in argv');
    assert.ok(!srt.args.some((a) => a.startsWith('srt:')), 'the feed is named in the script');
    assert.deepEqual(srt.args.slice(srt.args.indexOf('-f'), srt.args.indexOf('-i') + 2), [
      '-f',
      'concat',
      '-safe',
      '0',
      '-protocol_whitelist',
      'pipe,srt',
      '-i',
      'pipe:3',
    ]);
    assert.equal(
      srt.script,
      "ffconcat version 1.0\nfile 'srt://h:9000?mode=listener'\noption probesize '2000000'\noption analyzeduration '2000000'\noption passphrase 'hunter22hunter'\n",
    );
    // ffmpeg's quoting: a quote inside is closed, escaped and reopened; nothing else is special.
    assert.equal(
      ffconcatScript('srt://h:1', { passphrase: "it's a $ecret \\ 'x'" }).split('\n')[2],
      "option passphrase 'it'\\''s a $ecret \\ '\\''x'\\'''",
    );
    assert.equal(srtPassphrase(undefined), undefined);
    assert.equal(srtPassphrase('0123456789'), '0123456789');
    assert.throws(
      () => srtPassphrase('short'),
      /APPLIANCE_SRT_PASSPHRASE: an SRT passphrase is 10 to 79 characters.*its length here: 5/,
    );
    assert.throws(() => srtPassphrase('x'.repeat(80)), /10 to 79/);
    assert.throws(
      () => srtPassphrase('0123456789\noption protocol_whitelist file'),
      (e: Error) => /control character/.test(e.message) && !e.message.includes('0123456789'),
    );
  });
  it("the plan reads the restamped feed from its own fd and adds the run's base back to both streams", () => {
    const info = parseInputInfo(
      "Input #0, mpegts, from 'udp://x:1':\n  Duration: N/A, start: 1.4, bitrate: N/A\n  Stream #0:0[0x100]: Video: h264 (High), yuv420p(progressive), 1280x720, 50 fps, 50 tbr, 90k tbn\n",
    );
    const { source, reasons } = feedSourcePolicy(parseFeedSpec('udp://x:1'), info, profile);
    assert.deepEqual([source.width, source.framerate, source.hasAudio], [1280, 50, false]);
    assert.ok(reasons.includes('no audio: silence, so the audio track exists'));
    const inputs = feedInputs(source, 5, { samplerate: 48000, channels: 2 });
    assert.deepEqual(inputs.args.slice(0, 2), ['-f', 'mpegts']);
    assert.ok(inputs.args.includes('pipe:5'));
    assert.deepEqual(inputs.anchored, { video: true, audio: false });
    const plan = buildEncoderPlan(
      { ...profile, video: { ...profile.video, framerate: 50 } },
      source,
      [profile.video.renditions[1]!],
      { anchorSeconds: 1_764_000_000 },
    );
    assert.equal(plan.inputFd, 5);
    assert.match(plan.args.join(' '), /-i pipe:5 .*setpts=PTS\+1764000000\.000000\/TB,setpts='st/);
    assert.match(plan.args.join(' '), /-af aresample=async/, 'the stand-in silence is on the wall clock already');
  });
});
