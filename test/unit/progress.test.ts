import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { ProgressParser } from '../../src/encode/progress.ts';

const captured = await readFile(new URL('../fixtures/ffmpeg/progress-5.1.captured-here.txt', import.meta.url), 'utf8');

describe('-progress parsing', () => {
  it('reads every block of a real run', () => {
    const blocks = new ProgressParser().push(captured);
    assert.equal(blocks.length, captured.match(/^progress=/gm)!.length);
    assert.deepEqual(blocks[0], {
      frame: 1,
      fps: 0,
      bitrateKbps: undefined,
      totalSize: 36,
      outTimeUs: 0,
      dupFrames: 0,
      dropFrames: 0,
      speed: undefined,
      quantisers: { '0_0': 0 },
      ended: false,
    });
    assert.equal(blocks[1]!.frame, 53);
    assert.equal(blocks[1]!.fps, 51.29);
    assert.equal(blocks[1]!.speed, 0);
    assert.equal(blocks[2]!.bitrateKbps, 0.3);
    assert.equal(blocks.at(-1)!.ended, true);
    assert.ok(blocks.slice(0, -1).every((b) => !b.ended));
  });

  it('gives the same blocks whatever way the text is split', () => {
    const whole = new ProgressParser().push(captured);
    for (const size of [1, 7, 64]) {
      const parser = new ProgressParser();
      const blocks = [];
      for (let i = 0; i < captured.length; i += size) blocks.push(...parser.push(captured.slice(i, i + size)));
      assert.deepEqual(blocks, whole, `pieces of ${size}`);
    }
  });

  it('reads speed and duplicated/dropped frames', () => {
    const [block] = new ProgressParser().push(
      'frame=598\nfps=30.0\nbitrate=6062.4kbits/s\ndup_frames=10\ndrop_frames=6\nspeed=0.807x\nprogress=continue\n',
    );
    assert.equal(block!.speed, 0.807);
    assert.equal(block!.dupFrames, 10);
    assert.equal(block!.dropFrames, 6);
    assert.equal(block!.bitrateKbps, 6062.4);
  });
});
