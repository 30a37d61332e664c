import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { childBoxes, findBox, view } from '../../src/packager/boxes.ts';
import { box, mdatHeader, moof } from '../../src/packager/box-writer.ts';
import { TrackChunker, type ChunkEvent, type PackagerEvent } from '../../src/packager/chunker.ts';
import { parseMoof } from '../../src/packager/fmp4.ts';
import { readFmp4 } from '../helpers/fmp4-reader.ts';

const fixture = async (name: string) =>
  new Uint8Array(await readFile(new URL(`../fixtures/media/${name}`, import.meta.url)));
const recordedVideo = await fixture('recorded-video-320x180-4s.mp4');
const recordedAudio = await fixture('recorded-audio-4s.mp4');
const EPOCH = 1_795_219_794n;
const timing = { segdur: 1, cdur: 0.1 };

const chunks = (events: PackagerEvent[]) => events.filter((e): e is ChunkEvent => e.type === 'chunk');
const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};

/** Re-reads an emitted chunk as a player would: its boxes, its moof, and its samples' bytes. */
function reread(chunk: ChunkEvent) {
  const bytes = concat(chunk.parts);
  assert.equal(bytes.length, chunk.byteLength);
  const top = [...childBoxes(bytes)];
  const moofBox = top.find((b) => b.type === 'moof')!;
  const mdat = top.find((b) => b.type === 'mdat')!;
  const fragment = parseMoof(moofBox.payload, new Map());
  const samples = fragment.tracks[0]!.samples.map((s) => ({
    ...s,
    data: bytes.subarray(moofBox.offset + s.dataOffset, moofBox.offset + s.dataOffset + s.size),
  }));
  assert.ok(
    samples.every((s) => s.data.byteOffset + s.size <= mdat.bytes.byteOffset + mdat.size),
    'trun data offset points into the mdat',
  );
  return { types: top.map((b) => b.type), fragment, samples, bytes, top };
}

/** Every sample of the source, by decode time, with its bytes. */
function sourceSamples(bytes: Uint8Array) {
  const out = new Map<bigint, Uint8Array>();
  for (const b of childBoxes(bytes)) {
    if (b.type !== 'moof') continue;
    const fragment = parseMoof(b.payload, new Map());
    for (const s of fragment.tracks[0]!.samples)
      out.set(s.decodeTime, bytes.subarray(b.offset + s.dataOffset, b.offset + s.dataOffset + s.size));
  }
  return out;
}

describe('video: chunks of whole frames on the epoch grid', () => {
  const chunker = new TrackChunker('720p', timing);
  const events = chunker.push(recordedVideo);

  it('emits the init segment first, as ffmpeg wrote it', () => {
    assert.equal(events[0]!.type, 'init');
    const init = events[0]!.type === 'init' ? events[0] : undefined;
    assert.deepEqual(
      [...childBoxes(init!.bytes)].map((b) => b.type),
      ['ftyp', 'moov'],
    );
    assert.equal(init!.info.timescale, 90000);
  });

  it('4 whole segments of 10 chunks of 3 frames, each segment from a sync sample at n·segdur', () => {
    const list = chunks(events);
    assert.equal(list.length, 40);
    for (const [i, c] of list.entries()) {
      const segment = EPOCH + BigInt(Math.floor(i / 10));
      assert.equal(c.segment, segment);
      assert.equal(c.part, i % 10);
      assert.equal(c.decodeTime, segment * 90000n + BigInt(c.part) * 9000n, 'chunk starts at n·segdur + part·cdur');
      assert.equal(c.duration, 9000);
      assert.equal(c.independent, c.part === 0);
      assert.equal(c.segmentComplete, c.part === 9);
    }
    assert.deepEqual(
      events.filter((e) => e.type === 'segmentEnd').map((e) => e.segment),
      [EPOCH, EPOCH + 1n, EPOCH + 2n, EPOCH + 3n],
    );
  });

  it('each chunk is valid CMAF: styp on the first, prft and its own tfdt on every one, mfhd from the timeline', () => {
    const source = sourceSamples(recordedVideo);
    chunks(events).forEach((c, i) => {
      const { types, fragment, samples, top } = reread(c);
      assert.deepEqual(types, c.part === 0 ? ['styp', 'prft', 'moof', 'mdat'] : ['prft', 'moof', 'mdat']);
      // Chunk j of segment n is n·10 + j mod 2³², in every run of every encoder; one up from the chunk before.
      assert.equal(fragment.sequenceNumber, Number((c.segment * 10n + BigInt(c.part)) % 2n ** 32n));
      if (i > 0) assert.equal(fragment.sequenceNumber, reread(chunks(events)[i - 1]!).fragment.sequenceNumber + 1);
      assert.equal(fragment.tracks[0]!.baseDecodeTime, c.decodeTime);
      for (const s of samples)
        assert.deepEqual(s.data, source.get(s.decodeTime), 'sample bytes carried over unchanged');
      assert.equal(samples[0]!.sync, c.part === 0);
      const prft = top.find((b) => b.type === 'prft')!;
      const d = view(prft.payload);
      assert.equal(prft.payload[0], 1, 'prft version 1');
      assert.equal(d.getUint32(4), 1, 'prft reference track');
      assert.equal(d.getBigUint64(16), c.decodeTime, 'prft media time');
      const ntpSeconds = d.getBigUint64(8) >> 32n;
      assert.equal(ntpSeconds - 2_208_988_800n, c.decodeTime / 90000n, 'prft wall clock is the media time (NTP)');
    });
  });

  it("sample data is never copied, even when ffmpeg's output arrives cut anywhere", () => {
    const c = chunks(events)[5]!;
    assert.equal(c.parts.at(-1)!.buffer, recordedVideo.buffer);
    const cut = new TrackChunker('720p', timing);
    const pieces: Uint8Array[] = [];
    const out: PackagerEvent[] = [];
    for (let at = 0; at < recordedVideo.length; at += 4096) {
      pieces.push(recordedVideo.slice(at, at + 4096));
      out.push(...cut.push(pieces.at(-1)!));
    }
    const buffers = new Set(pieces.map((p) => p.buffer));
    for (const chunk of chunks(out)) {
      const media = chunk.parts.slice(chunk.part === 0 ? 4 : 3);
      assert.ok(
        media.every((m) => buffers.has(m.buffer)),
        'every sample byte is a view of an input piece',
      );
    }
  });

  it('the same events whatever way the stream is cut', () => {
    const summary = (list: PackagerEvent[]) => chunks(list).map((c) => [c.segment, c.part, c.decodeTime, c.byteLength]);
    for (const size of [1, 7, 1000, 65536]) {
      const c = new TrackChunker('720p', timing);
      const all: PackagerEvent[] = [];
      for (let at = 0; at < recordedVideo.length; at += size)
        all.push(...c.push(recordedVideo.subarray(at, at + size)));
      assert.deepEqual(summary(all), summary(events), `pieces of ${size}`);
    }
  });

  it('a chunk is emitted with the bytes of its last frame, not later', () => {
    const c = new TrackChunker('720p', timing);
    const top = [...childBoxes(recordedVideo)];
    let emitted = 0;
    for (const b of top) {
      const out = chunks(c.push(b.bytes));
      if (b.type === 'mdat') {
        // ffmpeg's fragments are 3 frames here: each mdat completes exactly one chunk.
        assert.equal(out.length, 1);
        emitted++;
      } else assert.equal(out.length, 0);
    }
    assert.equal(emitted, 40);
  });

  it('regroups fragments that do not fall on chunk boundaries (one frame per fragment)', () => {
    const { tracks, fragments } = readFmp4(recordedVideo);
    const source = sourceSamples(recordedVideo);
    const init = [...childBoxes(recordedVideo)]
      .filter((b) => b.type === 'ftyp' || b.type === 'moov')
      .map((b) => b.bytes);
    const perFrame = fragments
      .flatMap((f) => f.tracks[0]!.samples)
      .map((s, i) => {
        const data = source.get(s.decodeTime)!;
        return concat([moof(i + 1, tracks[0]!.trackId, s.decodeTime, [s]), mdatHeader(data.length), data]);
      });
    const c = new TrackChunker('720p', timing);
    const all = [...c.push(concat(init)), ...perFrame.flatMap((f) => c.push(f))];
    assert.deepEqual(
      chunks(all).map((x) => [x.segment, x.part, x.decodeTime, x.duration]),
      chunks(events).map((x) => [x.segment, x.part, x.decodeTime, x.duration]),
    );
    for (const x of chunks(all)) assert.equal(reread(x).samples.length, 3);
  });

  it('drops frames until a sync sample on a segment boundary', () => {
    // Start the stream 5 fragments (half a second) in: the first whole segment is the next one.
    const top = [...childBoxes(recordedVideo)];
    const head = top.filter((b) => b.type === 'ftyp' || b.type === 'moov').map((b) => b.bytes);
    const rest = top
      .filter((b) => b.type === 'moof' || b.type === 'mdat')
      .slice(10)
      .map((b) => b.bytes);
    const c = new TrackChunker('720p', timing);
    const out = chunks(c.push(concat([...head, ...rest])));
    assert.equal(out[0]!.segment, EPOCH + 1n);
    assert.equal(c.droppedSamples, 15);
  });

  it('ends cleanly even when the last segment misses its final frame', () => {
    const { tracks, fragments } = readFmp4(recordedVideo);
    const source = sourceSamples(recordedVideo);
    const init = [...childBoxes(recordedVideo)]
      .filter((b) => b.type === 'ftyp' || b.type === 'moov')
      .map((b) => b.bytes);
    const frames = fragments.flatMap((f) => f.tracks[0]!.samples).filter((_, i) => i !== 59);
    const c = new TrackChunker('720p', timing);
    c.endBefore(EPOCH + 2n, { last: true });
    const out = [...c.push(concat(init))];
    frames.forEach((s, i) => {
      out.push(
        ...c.push(
          concat([moof(i + 1, tracks[0]!.trackId, s.decodeTime, [s]), mdatHeader(s.size), source.get(s.decodeTime)!]),
        ),
      );
    });
    assert.deepEqual(
      [...new Set(chunks(out).map((x) => x.segment))],
      [EPOCH, EPOCH + 1n],
      'no segment opened past the end',
    );
    assert.deepEqual(
      out.filter((e) => e.type === 'segmentEnd').map((e) => [e.segment, e.last]),
      [
        [EPOCH, false],
        [EPOCH + 1n, true],
      ],
    );
    assert.equal(c.finished, true);
    assert.equal(c.openSegment, undefined, 'nothing left open past the end');
    assert.equal(c.droppedSamples, 60, 'every frame of the two segments after the end is dropped');
  });

  it('ends before a segment: the last one carries lmsg, later frames are dropped', () => {
    const c = new TrackChunker('720p', timing);
    c.endBefore(EPOCH + 2n, { last: true });
    const out = c.push(recordedVideo);
    const list = chunks(out);
    assert.deepEqual([...new Set(list.map((x) => x.segment))], [EPOCH, EPOCH + 1n]);
    const last = list.find((x) => x.segment === EPOCH + 1n && x.part === 0)!;
    const styp = findBox(concat(last.parts), ['styp'])!;
    assert.match(new TextDecoder().decode(styp.payload), /lmsg/);
    assert.doesNotMatch(new TextDecoder().decode(findBox(concat(list[0]!.parts), ['styp'])!.payload), /lmsg/);
    assert.deepEqual(
      out.filter((e) => e.type === 'segmentEnd').map((e) => [e.segment, e.last]),
      [
        [EPOCH, false],
        [EPOCH + 1n, true],
      ],
    );
    assert.equal(c.finished, true);
  });
});

describe('audio: segments from the frame nearest n·segdur, chunks spread evenly', () => {
  const chunker = new TrackChunker('audio', timing);
  const events = chunker.push(recordedAudio);
  const list = chunks(events);
  const segments = [...new Set(list.map((c) => c.segment))];

  it('drops the partial segment at the start and begins at the frame nearest the boundary', () => {
    assert.equal(chunker.droppedSamples, 1);
    const first = list[0]!;
    assert.equal(first.segment, EPOCH);
    assert.ok(Math.abs(Number(first.decodeTime - EPOCH * 48000n)) <= 512, 'within half a frame of n·segdur');
  });

  it('a frame exactly half a frame before a boundary opens the segment; one sample earlier it closes the previous', () => {
    const boundary = (EPOCH + 3n) * 48000n;
    assert.deepEqual(chunker.placeSample({ decodeTime: boundary - 512n, duration: 1024, sync: true }), {
      segment: EPOCH + 3n,
      startsSegment: true,
    });
    assert.deepEqual(chunker.placeSample({ decodeTime: boundary - 513n, duration: 1024, sync: true }), {
      segment: EPOCH + 2n,
      startsSegment: false,
    });
    assert.deepEqual(chunker.placeSample({ decodeTime: boundary + 511n, duration: 1024, sync: true }), {
      segment: EPOCH + 3n,
      startsSegment: true,
    });
  });

  it('each whole segment is 46 or 47 frames in 10 chunks of 4 or 5, and the next starts nearest the next boundary', () => {
    const whole = segments.filter((s) => events.some((e) => e.type === 'segmentEnd' && e.segment === s));
    assert.ok(whole.length >= 3);
    for (const s of whole) {
      const parts = list.filter((c) => c.segment === s);
      const frames = parts.map((c) => c.duration / 1024);
      assert.equal(parts.length, 10);
      assert.ok(
        frames.every((f) => f === 4 || f === 5),
        `chunk sizes ${frames}`,
      );
      const total = frames.reduce((a, b) => a + b, 0);
      assert.ok(total === 46 || total === 47, `${total} frames`);
      const expected = Array.from(
        { length: 10 },
        (_, j) => Math.round(((j + 1) * total) / 10) - Math.round((j * total) / 10),
      );
      assert.deepEqual(frames, expected, 'boundaries at round(j·F/10): no sliver at the end');
      const next = list.find((c) => c.segment === s + 1n && c.part === 0);
      if (next) assert.ok(Math.abs(Number(next.decodeTime - (s + 1n) * 48000n)) <= 512);
    }
  });

  it("regroups ffmpeg's 5-frame fragments into 4/5-frame chunks, each valid and emitted with its last frame", () => {
    const source = sourceSamples(recordedAudio);
    for (const c of list) for (const s of reread(c).samples) assert.deepEqual(s.data, source.get(s.decodeTime));
    // Feeding ffmpeg's fragments one by one: a chunk appears in the push that delivers its last frame.
    const c = new TrackChunker('audio', timing);
    for (const b of childBoxes(recordedAudio)) {
      for (const chunk of chunks(c.push(b.bytes))) {
        assert.equal(b.type, 'mdat');
        const fragment = parseMoof(
          [...childBoxes(recordedAudio)].find((x) => x.type === 'moof' && x.offset + x.size === b.offset)!.payload,
          new Map(),
        );
        const chunkEnd = chunk.decodeTime + BigInt(chunk.duration);
        const samples = fragment.tracks[0]!.samples;
        assert.ok(
          samples.some((s) => s.decodeTime + BigInt(s.duration) === chunkEnd),
          'the fragment that completes the chunk delivered it',
        );
      }
    }
  });

  it("46-frame segments appear where the frame grid falls that way (timeline at today's epoch)", () => {
    // Synthetic audio starting 400 ticks after a boundary: 48000/1024 = 46.875 frames a second,
    // so the segment lengths cycle through 47s and 46s while staying within half a frame of n·segdur.
    const start = EPOCH * 48000n + 400n;
    const sampleCount = 48 * 8;
    const sizes = Array.from({ length: sampleCount }, () => 10);
    const samples = sizes.map((size, i) => ({
      duration: 1024,
      size,
      flags: 0x0200_0000,
      compositionOffset: 0,
      decodeTime: start + BigInt(i * 1024),
    }));
    const moov = recordedMoov();
    const c = new TrackChunker('audio', timing);
    const out: PackagerEvent[] = [...c.push(moov)];
    samples.forEach((s, i) => {
      out.push(...c.push(concat([moof(i + 1, 1, s.decodeTime, [s]), mdatHeader(10), new Uint8Array(10)])));
    });
    const bySegment = new Map<bigint, number>();
    for (const x of chunks(out)) bySegment.set(x.segment, (bySegment.get(x.segment) ?? 0) + x.duration / 1024);
    const ended = out.filter((e) => e.type === 'segmentEnd').map((e) => e.segment);
    const lengths = ended.map((s) => bySegment.get(s));
    assert.ok(lengths.includes(46) && lengths.includes(47), `lengths ${lengths}`);
    for (const s of ended) {
      const first = chunks(out).find((x) => x.segment === s && x.part === 0)!;
      assert.ok(Math.abs(Number(first.decodeTime - s * 48000n)) <= 512);
    }
  });
});

/** The audio fixture's ftyp + moov (track 1, 48 kHz). */
function recordedMoov(): Uint8Array {
  return concat(
    [...childBoxes(recordedAudio)].filter((b) => b.type === 'ftyp' || b.type === 'moov').map((b) => b.bytes),
  );
}

it('box-writer output round-trips through the reader', () => {
  const samples = [
    { duration: 3000, size: 3, flags: 0x0200_0000, compositionOffset: 0 },
    { duration: 3000, size: 2, flags: 0x0101_0000, compositionOffset: 3000 },
  ];
  const header = moof(7, 2, 2n ** 53n + 1n, samples);
  const fragment = parseMoof(findBox(header, ['moof'])!.payload, new Map());
  assert.equal(fragment.sequenceNumber, 7);
  const traf = fragment.tracks[0]!;
  assert.equal(traf.trackId, 2);
  assert.equal(traf.baseDecodeTime, 2n ** 53n + 1n);
  assert.deepEqual(
    traf.samples.map((s) => [s.duration, s.size, s.sync, s.compositionOffset, s.dataOffset]),
    [
      [3000, 3, true, 0, header.length + 8],
      [3000, 2, false, 3000, header.length + 8 + 3],
    ],
  );
  assert.equal(box('free').length, 8);
});
