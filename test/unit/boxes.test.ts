import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import {
  BoxFormatError,
  childBoxes,
  findBox,
  joined,
  readBoxHeader,
  sliceViews,
  TopLevelBoxSplitter,
} from '../../src/packager/boxes.ts';
import { codecString, parseMoof } from '../../src/packager/fmp4.ts';
import { Fmp4StreamReader, readFmp4, type Fmp4Event } from '../helpers/fmp4-reader.ts';

const fixture = new Uint8Array(await readFile(new URL('../fixtures/media/epoch-64x64-2s.mp4', import.meta.url)));
const EPOCH_SECOND = 1_795_219_794n;

function box(type: string, ...parts: Uint8Array[]): Uint8Array {
  const size = 8 + parts.reduce((n, p) => n + p.length, 0);
  const out = new Uint8Array(size);
  new DataView(out.buffer).setUint32(0, size);
  out.set(new TextEncoder().encode(type), 4);
  let at = 8;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

function box64(type: string, payload: Uint8Array): Uint8Array {
  const out = new Uint8Array(16 + payload.length);
  const d = new DataView(out.buffer);
  d.setUint32(0, 1);
  out.set(new TextEncoder().encode(type), 4);
  d.setBigUint64(8, BigInt(out.length));
  out.set(payload, 16);
  return out;
}

const u32 = (...values: number[]) => {
  const out = new Uint8Array(values.length * 4);
  values.forEach((v, i) => {
    new DataView(out.buffer).setUint32(i * 4, v);
  });
  return out;
};

describe('box headers', () => {
  it('reads 32-bit and 64-bit sizes', () => {
    const bytes = new Uint8Array([...box('free', new Uint8Array(3)), ...box64('mdat', new Uint8Array([1, 2, 3, 4]))]);
    const boxes = [...childBoxes(bytes)];
    assert.deepEqual(
      boxes.map((b) => [b.type, b.offset, b.size, b.headerSize, [...b.payload]]),
      [
        ['free', 0, 11, 8, [0, 0, 0]],
        ['mdat', 11, 20, 16, [1, 2, 3, 4]],
      ],
    );
    assert.equal(boxes[1]!.payload.buffer, bytes.buffer, 'payloads are views, not copies');
  });

  it('waits for a whole header, refuses sizes it cannot use', () => {
    assert.equal(readBoxHeader(new Uint8Array(7), 0), undefined);
    assert.equal(readBoxHeader(box64('mdat', new Uint8Array(0)).subarray(0, 12), 0), undefined);
    assert.throws(() => readBoxHeader(u32(0, 0x6d646174), 0), BoxFormatError);
    assert.throws(() => readBoxHeader(u32(4, 0x6d646174), 0), /smaller than its header/);
    assert.throws(() => [...childBoxes(box('free', new Uint8Array(4)).subarray(0, 10))], /truncated box/);
  });

  it('keeps a 64-bit tfdt above 2^53 exact', () => {
    const big = 2n ** 53n + 12_345n;
    const tfdt = new Uint8Array(12);
    tfdt[0] = 1; // version 1: 64-bit baseMediaDecodeTime
    new DataView(tfdt.buffer).setBigUint64(4, big);
    const traf = box(
      'traf',
      box('tfhd', u32(0x02_0008, 1, 1000)),
      box('tfdt', tfdt),
      box('trun', u32(0x000200, 2, 10, 20)),
    );
    const fragment = parseMoof(new Uint8Array([...box('mfhd', u32(0, 7)), ...traf]), new Map());
    assert.equal(fragment.sequenceNumber, 7);
    const [first, second] = fragment.tracks[0]!.samples;
    assert.equal(first!.decodeTime, big);
    assert.equal(second!.decodeTime, big + 1000n);
    assert.deepEqual([first!.size, second!.size], [10, 20]);
  });
});

describe('fragmented MP4 from ffmpeg', () => {
  it('reads the init segment and every sample with its absolute decode time', () => {
    const { tracks, fragments } = readFmp4(fixture);
    assert.equal(tracks.length, 1);
    const [track] = tracks;
    assert.deepEqual([track!.handler, track!.timescale, track!.width, track!.height], ['vide', 90000, 64, 64]);
    assert.equal(codecString(track!), 'avc1.42c00a');
    assert.equal(fragments.length, 20);
    const samples = fragments.flatMap((f) => f.tracks[0]!.samples);
    assert.equal(samples.length, 60);
    samples.forEach((s, i) => {
      assert.equal(s.decodeTime, EPOCH_SECOND * 90000n + BigInt(i) * 3000n);
    });
    assert.deepEqual(
      samples.filter((s) => s.sync).map((s) => s.decodeTime),
      [EPOCH_SECOND * 90000n, (EPOCH_SECOND + 1n) * 90000n],
    );
    assert.ok(fragments.every((f, i) => i === 0 || f.sequenceNumber === fragments[i - 1]!.sequenceNumber + 1));
  });

  it('gives the same events however the stream is cut', () => {
    const whole = new Fmp4StreamReader().push(fixture);
    for (const size of [1, 13, 188, 4096]) {
      const reader = new Fmp4StreamReader();
      const events: Fmp4Event[] = [];
      for (let at = 0; at < fixture.length; at += size) events.push(...reader.push(fixture.subarray(at, at + size)));
      assert.deepEqual(events, whole, `pieces of ${size} bytes`);
    }
  });

  it('the splitter returns every box as views of the pieces it arrived in, never a copy', () => {
    const splitter = new TopLevelBoxSplitter();
    const boxes = splitter.push(fixture);
    assert.deepEqual(
      boxes.slice(0, 3).map((b) => b.type),
      ['ftyp', 'moov', 'moof'],
    );
    assert.ok(boxes.every((b) => b.pieces.length === 1 && b.pieces[0]!.buffer === fixture.buffer));
    assert.equal(splitter.position, fixture.length);
    assert.equal(splitter.buffered, 0);
    // Cut into 1000-byte pieces: a box spanning several comes back as several views, in order.
    const cut = new TopLevelBoxSplitter();
    const pieces: Uint8Array[] = [];
    const out = [];
    for (let at = 0; at < fixture.length; at += 1000) {
      const piece = fixture.slice(at, at + 1000);
      pieces.push(piece);
      out.push(...cut.push(piece));
    }
    const spanning = out.find((b) => b.pieces.length > 1)!;
    assert.ok(spanning, 'some box spans pieces');
    assert.ok(
      spanning.pieces.every((v) => pieces.some((p) => p.buffer === v.buffer)),
      'views of the input pieces',
    );
    assert.deepEqual(joined(spanning), fixture.subarray(spanning.offset, spanning.offset + spanning.size));
    assert.deepEqual(
      out.map((b) => [b.type, b.offset, b.size]),
      boxes.map((b) => [b.type, b.offset, b.size]),
    );
    assert.ok(findBox(fixture, ['moov', 'trak', 'mdia', 'mdhd']));
  });

  it('a header split across pieces is still read', () => {
    const splitter = new TopLevelBoxSplitter();
    assert.deepEqual(splitter.push(fixture.subarray(0, 3)), []);
    assert.deepEqual(splitter.push(fixture.subarray(3, 9)), []);
    assert.deepEqual(
      splitter.push(fixture.subarray(9, 40)).map((b) => b.type),
      ['ftyp'],
    );
  });

  it('sliceViews takes a range across pieces without copying', () => {
    const a = Uint8Array.of(1, 2, 3);
    const b = Uint8Array.of(4, 5);
    const c = Uint8Array.of(6, 7, 8);
    const views = sliceViews([a, b, c], 2, 5);
    assert.deepEqual(
      views.map((v) => [...v]),
      [[3], [4, 5], [6, 7]],
    );
    assert.deepEqual(
      views.map((v) => v.buffer),
      [a.buffer, b.buffer, c.buffer],
    );
    assert.throws(() => sliceViews([a, b], 4, 5), /runs past its box/);
  });
});
