import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { TsRestamper } from '../../src/capture/ts-restamp.ts';

// Synthetic MPEG-TS: one packet per PES start, video (PID 0x100, DTS and PTS) and audio (PID 0x101, PTS).
const VIDEO = 0x100;
const AUDIO = 0x101;

function put33(b: Uint8Array, i: number, prefix: number, value: number) {
  b[i] = (prefix << 4) | ((Math.floor(value / 2 ** 30) & 7) << 1) | 1;
  const low = value % 2 ** 30;
  b[i + 1] = (low >>> 22) & 0xff;
  b[i + 2] = (((low >>> 15) & 0x7f) << 1) | 1;
  b[i + 3] = (low >>> 7) & 0xff;
  b[i + 4] = ((low & 0x7f) << 1) | 1;
}
const get33 = (b: Uint8Array, i: number) =>
  ((b[i]! >> 1) & 7) * 2 ** 30 + ((b[i + 1]! << 22) | ((b[i + 2]! >> 1) << 15) | (b[i + 3]! << 7) | (b[i + 4]! >> 1));

function pesPacket(pid: number, pts: number, dts?: number, pcr?: number): Uint8Array {
  const b = new Uint8Array(188).fill(0xff);
  b[0] = 0x47;
  b[1] = 0x40 | (pid >> 8);
  b[2] = pid & 0xff;
  let p = 4;
  if (pcr !== undefined) {
    b[3] = 0x30;
    b[4] = 7;
    b[5] = 0x10;
    b[6] = Math.floor(pcr / 2 ** 25) & 0xff;
    const low = pcr % 2 ** 25;
    b.set([(low >>> 17) & 0xff, (low >>> 9) & 0xff, (low >>> 1) & 0xff, ((low & 1) << 7) | 0x7e, 0], 7);
    p = 12;
  } else b[3] = 0x10;
  b.set(
    [0, 0, 1, pid === VIDEO ? 0xe0 : 0xc0, 0, 0, 0x80, dts === undefined ? 0x80 : 0xc0, dts === undefined ? 5 : 10],
    p,
  );
  put33(b, p + 9, dts === undefined ? 2 : 3, pts);
  if (dts !== undefined) put33(b, p + 14, 1, dts);
  return b;
}

interface Stamp {
  pid: number;
  pts: number;
  dts: number | undefined;
  pcr: number | undefined;
}
function read(bytes: Uint8Array): Stamp[] {
  const out: Stamp[] = [];
  for (let i = 0; i < bytes.length; i += 188) {
    const b = bytes.subarray(i, i + 188);
    const pid = ((b[1]! & 0x1f) << 8) | b[2]!;
    const adaptation = (b[3]! & 0x20) !== 0;
    const p = adaptation ? 5 + b[4]! : 4;
    const pcr =
      adaptation && b[5]! & 0x10
        ? b[6]! * 2 ** 25 + ((b[7]! << 17) | (b[8]! << 9) | (b[9]! << 1) | (b[10]! >> 7))
        : undefined;
    out.push({ pid, pts: get33(b, p + 9), dts: b[p + 7]! >> 6 === 3 ? get33(b, p + 14) : undefined, pcr });
  }
  return out;
}

/** A 30 fps video with B-frame reordering (PTS 2 frames after DTS) and 48 kHz AAC, from sender time `start`. */
function feed(seconds: number, start = 1000): { bytes: Uint8Array; sender: number }[] {
  const out: { bytes: Uint8Array; sender: number }[] = [];
  const frame = 3000;
  const aac = 1920; // 1024 samples at 48 kHz in 90 kHz ticks
  let a = 0;
  for (let n = 0; n < seconds * 30; n++) {
    const dts = start * 90_000 + n * frame;
    out.push({ bytes: pesPacket(VIDEO, dts + 2 * frame, dts, dts - 9000), sender: dts / 90_000 });
    while (a * aac <= (n + 1) * frame) {
      const pts = start * 90_000 + a++ * aac;
      out.push({ bytes: pesPacket(AUDIO, pts), sender: pts / 90_000 });
    }
  }
  return out;
}

describe('an MPEG-TS feed put on the wall clock', () => {
  it('one offset for every stream: the A/V relation, reordering and PCR kept exactly; arbitrary splits change nothing', () => {
    const packets = feed(3);
    const input = new Uint8Array(packets.length * 188);
    packets.forEach((p, i) => {
      input.set(p.bytes, i * 188);
    });
    const base = 1_764_000_000;
    const arrival = base + 7200.25;
    // Split anywhere, the same bytes come out (one arrival time for all: the same evidence).
    const whole = new TsRestamper({ segdur: 1, base }).push(input.slice(), arrival);
    const split = new TsRestamper({ segdur: 1, base });
    const pieces: Uint8Array[] = [];
    for (let i = 0; i < input.length; i += 1316 + (i % 7))
      pieces.push(split.push(input.slice(i, Math.min(input.length, i + 1316 + (i % 7))), arrival));
    assert.deepEqual(Buffer.concat(pieces), Buffer.from(whole));
    // Packets arriving in real time: every timestamp moves by the same amount.
    const live = new TsRestamper({ segdur: 1, base });
    const after = read(Buffer.concat(packets.map((p) => live.push(p.bytes.slice(), arrival + p.sender - 1000))));
    const before = read(input);
    const shift = after[0]!.dts! - before[0]!.dts!;
    assert.equal(shift, Math.round((arrival - base - 1000) * 90_000), 'the first DTS lands on its arrival');
    after.forEach((s, i) => {
      assert.equal(s.pts - before[i]!.pts, shift, `packet ${i}: PTS`);
      if (s.dts !== undefined) assert.equal(s.dts - before[i]!.dts!, shift, `packet ${i}: DTS`);
      if (s.pcr !== undefined) assert.equal(s.pcr - before[i]!.pcr!, shift, `packet ${i}: PCR`);
    });
    assert.equal(whole.length, input.length);
  });

  it('follows a sender 100 ppm slow over an hour, by at most 2 ms a segment, only at boundaries; jitter does not move it', () => {
    const base = 1_764_000_000;
    const restamper = new TsRestamper({ segdur: 1, base });
    let worst = 0;
    let previousOffset: number | undefined;
    let previousSegment: number | undefined;
    let moves = 0;
    const start = 5000;
    // One packet pair per frame is enough for the estimator; an hour of frames.
    for (let n = 0; n < 3600 * 30; n++) {
      const dts = start * 90_000 + n * 3000;
      const sender = dts / 90_000;
      const jitter = ((n * 7919) % 13) / 1000; // 0–12 ms late, deterministic
      const arrival = base + 100 + (sender - start) * (1 + 100e-6) + jitter;
      const out = restamper.push(Buffer.concat([pesPacket(VIDEO, dts + 6000, dts), pesPacket(AUDIO, dts)]), arrival);
      const mapped = read(out)[0]!.dts! / 90_000 + base;
      worst = Math.max(worst, Math.abs(arrival - jitter - mapped));
      const offset = restamper.offsetSeconds!;
      const segment = Math.floor(sender + (previousOffset ?? offset));
      if (previousOffset !== undefined && offset !== previousOffset) {
        moves++;
        assert.ok(Math.abs(offset - previousOffset) <= 0.002 + 1e-9, `moved ${offset - previousOffset} s at once`);
        assert.notEqual(segment, previousSegment, 'only where a segment begins');
      }
      previousOffset = offset;
      previousSegment = segment;
    }
    // 100 ppm over an hour is 360 ms; followed to within the window's lag and one slew step.
    assert.ok(worst < 0.02, `worst distance from the wall clock ${(worst * 1000).toFixed(1)} ms`);
    assert.ok(moves > 100, `${moves} moves`);
  });

  it('a sender whose clock jumps (restarted) is re-anchored at once, or anew after a silence; garbage between packets is skipped', () => {
    const base = 1_764_000_000;
    const restamper = new TsRestamper({ segdur: 1, base });
    for (let t = 0; t <= 4; t += 0.5)
      restamper.push(pesPacket(VIDEO, 90_000 * (6 + t) + 6000, 90_000 * (6 + t)), base + 46 + t);
    restamper.push(
      Buffer.concat([Buffer.from('junk!'), pesPacket(VIDEO, 90_000 * 500 + 6000, 90_000 * 500)]),
      base + 50.04,
    );
    assert.equal(restamper.resyncs, 1);
    assert.deepEqual(
      restamper.events.map((e) => e.kind),
      ['anchored', 'jump'],
      JSON.stringify(restamper.events),
    );
    assert.ok(Math.abs(restamper.offsetSeconds! - (50.04 - 500 + base)) < 1e-6);
    // Backwards (the sender restarted at 0): only once it lasts, not for a burst after a stall.
    for (let t = 0; t <= 6; t += 0.5)
      restamper.push(pesPacket(VIDEO, 90_000 * (500 + t) + 6000, 90_000 * (500 + t)), base + 50.04 + t);
    for (let t = 0; t <= 3; t += 0.5)
      restamper.push(pesPacket(VIDEO, 90_000 * (1 + t) + 6000, 90_000 * (1 + t)), base + 57 + t);
    assert.deepEqual(
      restamper.events.map((e) => e.kind),
      ['anchored', 'jump', 'jump'],
    );
    assert.ok(Math.abs(restamper.offsetSeconds! - (base + 57 + 2.5 - 3.5)) < 1e-6);
    // Silent for 2 s, then back with another clock: anchored anew at once.
    restamper.push(pesPacket(VIDEO, 90_000 * 9000 + 6000, 90_000 * 9000), base + 62);
    assert.equal(restamper.events.at(-1)!.detail, 'the feed is back, on the wall clock');
    assert.ok(Math.abs(restamper.offsetSeconds! - (base + 62 - 9000)) < 1e-6);
  });

  describe('passthrough: keyframes on the segment grid', () => {
    /** A video PES start with an adaptation field; a keyframe says so by its random-access flag or only by its NAL units. */
    function videoPacket(dts: number, key: 'flag' | 'nal' | false): Uint8Array {
      const b = new Uint8Array(188).fill(0xff);
      b.set([0x47, 0x40 | (VIDEO >> 8), VIDEO & 0xff, 0x30, 1, key === 'flag' ? 0x40 : 0]);
      b.set([0, 0, 1, 0xe0, 0, 0, 0x80, 0xc0, 10], 6);
      put33(b, 15, 3, dts);
      put33(b, 20, 1, dts);
      b.set([0, 0, 0, 1, 0x09, 0xf0, 0, 0, 0, 1, key ? 0x65 : 0x41], 25);
      return b;
    }
    /** 30 fps with a keyframe every `gop` frames and AAC beside it, arriving `late` s after `at(sender)`. */
    function run(
      restamper: TsRestamper,
      options: { seconds: number; gop: number; key?: 'flag' | 'nal'; at: (sender: number) => number; from?: number },
    ) {
      const out: Stamp[][] = [];
      const start = options.from ?? 1000;
      for (let n = 0; n < options.seconds * 30; n++) {
        const dts = start * 90_000 + n * 3000;
        const bytes = Buffer.concat([
          videoPacket(dts, n % options.gop === 0 ? (options.key ?? 'flag') : false),
          pesPacket(AUDIO, dts + 1500),
        ]);
        out.push(read(restamper.push(bytes, options.at(dts / 90_000))));
      }
      return out.flat();
    }

    it('starts at a keyframe once the evidence has settled, on the first boundary not before its arrival; every stream moved alike', () => {
      const base = 1_764_000_000;
      const restamper = new TsRestamper({ segdur: 1, base, keyframeGrid: true });
      const arrivalOf = (sender: number) => base + 100.37 + (sender - 1000);
      const out = run(restamper, { seconds: 8, gop: 30, key: 'nal', at: arrivalOf });
      const video = out.filter((s) => s.pid === VIDEO);
      const first = video[0]!;
      assert.equal(first.dts! % 90_000, 0, 'the first frame out is on a whole second');
      const firstSender = first.dts! / 90_000 + base - restamper.offsetSeconds!;
      assert.ok(firstSender >= 1003, `nothing before the 3 s settle (${firstSender})`);
      assert.equal(restamper.events.length, 1);
      const shift = restamper.offsetSeconds! - (100.37 + base - 1000);
      assert.ok(
        shift >= -0.15 && shift < 0.85,
        `mapped no more than half the late tolerance before it arrives, less than a segment after (${shift})`,
      );
      // Keyframes every 30 frames: all on whole seconds; audio shifted by the same offset.
      for (const s of video) assert.equal((s.dts! - first.dts!) % 3000, 0);
      assert.equal(restamper.keyframeInterval, 1);
      const audio = out.filter((s) => s.pid === AUDIO);
      assert.ok(audio.length > 0 && audio[0]!.pts > first.dts!, 'audio starts after the anchoring keyframe');
      assert.equal((audio[0]!.pts - first.dts! - 1500) % 3000, 0, 'audio keeps its place against video');
    });

    it('follows a sender 150 ppm slow a whole segment at a time, only when it would run late; keyframes stay on the boundaries', () => {
      const base = 1_764_000_000;
      const restamper = new TsRestamper({ segdur: 1, base, keyframeGrid: true });
      let late = 0;
      let offGrid = 0;
      const start = 5000;
      for (let n = 0; n < 3600 * 30; n++) {
        const dts = start * 90_000 + n * 3000;
        const sender = dts / 90_000;
        const jitter = ((n * 7919) % 13) / 1000;
        const arrival = base + 100.95 + (sender - start) * (1 + 150e-6) + jitter;
        const out = read(
          restamper.push(
            Buffer.concat([videoPacket(dts, n % 30 === 0 ? 'flag' : false), pesPacket(AUDIO, dts)]),
            arrival,
          ),
        );
        const video = out.find((s) => s.pid === VIDEO);
        if (!video) continue;
        const mapped = video.dts! / 90_000 + base;
        late = Math.max(late, arrival - jitter - mapped);
        if (n % 30 === 0 && video.dts! % 90_000 !== 0) offGrid++;
      }
      // 150 ppm over an hour is 540 ms: from 50 ms ahead (anchored at .95 − 0.15 → the next second), one step of a segment at 300 ms late.
      assert.deepEqual(
        restamper.events.map((e) => e.kind),
        ['anchored', 'jump'],
        JSON.stringify(restamper.events),
      );
      assert.match(restamper.events[1]!.detail, /moved 1 segment\(s\) later/);
      assert.equal(offGrid, 0, 'every keyframe on a whole second');
      assert.ok(late < 0.3 + 0.013, `never later than the tolerance (${(late * 1000).toFixed(1)} ms)`);
    });

    it('says once that the feed has no keyframe at a segment start (a 2 s GOP for 1 s segments)', () => {
      const base = 1_764_000_000;
      const restamper = new TsRestamper({ segdur: 1, base, keyframeGrid: true });
      run(restamper, { seconds: 12, gop: 60, at: (sender) => base + 10.5 + (sender - 1000) });
      assert.equal(restamper.keyframeInterval, 2);
      const kinds = restamper.events.map((e) => e.kind);
      assert.deepEqual(kinds, ['anchored', 'offGrid'], JSON.stringify(restamper.events));
      assert.match(
        restamper.events[1]!.detail,
        /no keyframe where segment \d+ starts \(its keyframes come every 2\.000 s\)/,
      );
    });
  });
});
