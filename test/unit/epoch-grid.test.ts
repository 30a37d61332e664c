import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { chunkSequenceNumber } from '../../src/packager/chunker.ts';
import {
  AAC_FRAME_SAMPLES,
  audioFrameAtOrBefore,
  audioSegmentStart,
  trackSegmentStart,
} from '../../src/timeline/epoch-grid.ts';

const EPOCH_SEGMENT = 1_795_219_794n;

describe('the epoch grid', () => {
  it('audio frames: the grid frame at or before an instant, counted from 1970 in samples', () => {
    assert.equal(audioFrameAtOrBefore(0, 48_000), 0n);
    assert.equal(audioFrameAtOrBefore(21, 48_000), 0n, '21 ms is 1008 samples: frame 0');
    assert.equal(audioFrameAtOrBefore(22, 48_000), 1024n, '22 ms is 1056 samples: frame 1');
    const ms = 1_764_000_000_123;
    for (const rate of [48_000, 44_100]) {
      const frame = audioFrameAtOrBefore(ms, rate);
      assert.equal(frame % 1024n, 0n);
      const samples = (BigInt(ms) * BigInt(rate)) / 1000n;
      assert.ok(samples - frame >= 0n && samples - frame < 1024n, `${rate}: ${samples - frame}`);
    }
  });

  it('audio segment n starts at the grid frame nearest n·segdur, the earlier of two as near', () => {
    // 48 kHz, 1 s: 46.875 frames a segment, so starts are 0.875·n frames off the boundary, mod 1.
    for (let n = EPOCH_SEGMENT; n < EPOCH_SEGMENT + 64n; n++) {
      const start = audioSegmentStart(n, 1, 48_000);
      const boundary = n * 48_000n;
      assert.equal(start % 1024n, 0n);
      assert.ok(start >= boundary - 512n && start < boundary + 512n, `${n}: ${start - boundary}`);
    }
    // A tie (the boundary half-way between two frames: n ≡ 4 mod 8 at 48 kHz) goes to the earlier frame.
    assert.equal(audioSegmentStart(4n, 1, 48_000), 4n * 48_000n - 512n);
    // Durations are 47 frames seven times in eight and 46 once: 375 frames every 8 s.
    const frames = Array.from({ length: 8 }, (_, i) => {
      const n = EPOCH_SEGMENT + BigInt(i);
      return Number(audioSegmentStart(n + 1n, 1, 48_000) - audioSegmentStart(n, 1, 48_000)) / AAC_FRAME_SAMPLES;
    });
    assert.equal(
      frames.reduce((a, b) => a + b, 0),
      375,
    );
    assert.ok(frames.every((f) => f === 46 || f === 47));
    // 44.1 kHz, 2 s: 86.13 frames a segment.
    const at441 = audioSegmentStart(EPOCH_SEGMENT, 2, 44_100);
    assert.ok(at441 % 1024n === 0n && Math.abs(Number(at441 - EPOCH_SEGMENT * 88_200n)) <= 512);
  });

  it('a track segment start: n·segdur for video, the grid frame for audio', () => {
    assert.equal(trackSegmentStart('video', 10n, 1, 90_000), 900_000n);
    assert.equal(trackSegmentStart('audio', 10n, 1, 48_000), audioSegmentStart(10n, 1, 48_000));
  });

  it('mfhd of chunk j of segment n is n·chunksPerSegment + j mod 2³², whatever ran before', () => {
    assert.equal(chunkSequenceNumber(EPOCH_SEGMENT, 3, 10), Number((EPOCH_SEGMENT * 10n + 3n) % 2n ** 32n));
    assert.equal(chunkSequenceNumber(2n ** 32n / 10n, 0, 10) + 1, chunkSequenceNumber(2n ** 32n / 10n, 1, 10));
    assert.equal(chunkSequenceNumber(2n ** 31n, 0, 2), 0, 'wraps at 2³²');
  });
});
