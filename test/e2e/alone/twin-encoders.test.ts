import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { after, before, describe, it } from 'node:test';
import type { ResultPromise } from 'execa';
import { childBoxes } from '../../../src/packager/boxes.ts';
import { parseMoof } from '../../../src/packager/fmp4.ts';
import { laterOf } from '../../../src/timeline/bigint.ts';
import { LIGHT_SINGLE, tracksOf, writeLightProfile } from '../../helpers/light-profile.ts';
import { segmentNumbers } from '../../helpers/media.ts';
import { logLines, startAppliance, systemNode } from '../../helpers/run.ts';
import { scratchDirectories } from '../../helpers/scratch.ts';

// The DASH-IF live media ingest rule for redundant sources: two encoders on one profile cut the
// same segments, to the sample, with the same names and headers, so an origin can take either.
// Two appliances run at once on one light profile (360p + audio, so two fit on 2 cores); the
// first one's ffmpeg is killed mid-run, then the appliance itself is restarted.

const scratch = scratchDirectories('twins');
const TRACKS = tracksOf(LIGHT_SINGLE);
const VIDEO = LIGHT_SINGLE[0]!.id;

interface Chunk {
  mfhd: number;
  tfdt: bigint;
  samples: number;
  duration: number;
}

interface Twin {
  name: string;
  out: string;
  state: string;
  log: string;
  runs: ResultPromise[];
}

const children: ResultPromise[] = [];
after(async () => {
  for (const child of children) if (child.pid && child.exitCode === null) child.kill('SIGKILL');
  await Promise.allSettled(children);
});

let profile: string;
let node: string;
let events = '';
const a: Twin = { name: 'A', out: '', state: '', log: '', runs: [] };
const b: Twin = { name: 'B', out: '', state: '', log: '', runs: [] };

function start(twin: Twin): void {
  const child = startAppliance(node, [
    'start',
    // Twins cut identical chunks at the same settings: neither steps down on a loaded machine.
    '--no-adapt',
    '--profile',
    profile,
    '--output',
    join(twin.out, 'live.mpd'),
    '--state-dir',
    twin.state,
  ]);
  child.stderr?.on('data', (piece: Buffer) => (twin.log += piece.toString()));
  children.push(child);
  twin.runs.push(child);
}

async function stop(twin: Twin): Promise<void> {
  const child = twin.runs.at(-1)!;
  child.kill('SIGTERM');
  const result = await child;
  assert.equal(result.exitCode, 0, `${twin.name} stops cleanly: ${String(result.stderr).slice(-2000)}`);
}

const numbersOf = (twin: Twin, track: string) => segmentNumbers(twin.out, track).catch(() => [] as bigint[]);

/** Waits (bounded) until `twin` has written a segment numbered `segment` or later on every track. */
async function untilSegment(twin: Twin, segment: bigint, timeoutMs = 30_000): Promise<void> {
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(100)) {
    const newest = await Promise.all(TRACKS.map(async (t) => (await numbersOf(twin, t)).at(-2)));
    if (newest.every((n) => n !== undefined && n >= segment)) return;
    const exited = twin.runs.at(-1)!.exitCode;
    assert.equal(exited, null, `${twin.name} exited early: ${twin.log.slice(-2000)}`);
  }
  assert.fail(`${twin.name}: no segment ${segment} within ${timeoutMs} ms: ${twin.log.slice(-2000)}`);
}

/** The newest segment every track of `twin` has completed (the one after it may still be written). */
async function newestComplete(twin: Twin): Promise<bigint> {
  const newest = await Promise.all(TRACKS.map(async (t) => (await numbersOf(twin, t)).at(-2) ?? -1n));
  return newest.reduce((m, n) => (laterOf(m, n) === m ? n : m));
}

/** Every chunk of one segment file: the headers two encoders must agree on. */
async function chunksOf(twin: Twin, track: string, segment: bigint): Promise<{ chunks: Chunk[]; slate: boolean }> {
  const bytes = new Uint8Array(await readFile(join(twin.out, track, `${segment}.m4s`)));
  const top = [...childBoxes(bytes)];
  const chunks = top
    .filter((box) => box.type === 'moof')
    .map((box) => {
      const fragment = parseMoof(box.payload, new Map());
      const traf = fragment.tracks[0]!;
      return {
        mfhd: fragment.sequenceNumber,
        tfdt: traf.baseDecodeTime,
        samples: traf.samples.length,
        duration: traf.samples.reduce((sum, s) => sum + s.duration, 0),
      };
    });
  const styp = top.find((box) => box.type === 'styp');
  return { chunks, slate: Boolean(styp && Buffer.from(styp.payload).includes('slat')) };
}

const pidOfEncoder = (twin: Twin) =>
  logLines(twin.log)
    .filter((l) => l['msg'] === 'ffmpeg started' || l['msg'] === 'ffmpeg restarted')
    .at(-1)?.['pid'];

describe('two encoders on one profile: identical chunks, across a killed encoder and a restart', {
  timeout: 240_000,
}, () => {
  before(async () => {
    const dir = await scratch();
    profile = await writeLightProfile(dir, { renditions: LIGHT_SINGLE, tsb: 120 });
    node = await systemNode();
    for (const twin of [a, b]) {
      twin.out = join(dir, `out-${twin.name}`);
      twin.state = join(dir, `state-${twin.name}`);
    }
    start(a);
    await untilSegment(a, 0n, 60_000);
    const aFirst = await newestComplete(a);
    // B starts at least 3 s after A's first segment: another phase of everything a run starts with.
    await sleep(3000);
    start(b);
    // B has a few whole segments before A's encoder is killed: the kill falls among the compared ones.
    await untilSegment(b, aFirst + 7n, 60_000);
    const beforeKill = await newestComplete(a);
    const pid = pidOfEncoder(a);
    assert.equal(typeof pid, 'number', 'A logged its encoder');
    process.kill(pid as number, 'SIGKILL');
    await untilSegment(a, beforeKill + 5n);
    assert.ok(
      logLines(a.log).some((l) => l['msg'] === 'ffmpeg restarted'),
      'A restarted its encoder',
    );
    // The service restarted: a stop at a segment's end, then the same session again.
    await stop(a);
    const stoppedAfter = await newestComplete(a);
    events = `A's encoder killed after segment ${beforeKill}, A stopped after ${stoppedAfter}`;
    start(a);
    await untilSegment(a, stoppedAfter + 5n);
    await Promise.all([stop(a), stop(b)]);
  });

  it('the same init segments, and for every segment both made (but the first and last of each) the same chunks: tfdt, sample count, duration and mfhd, audio included', async () => {
    for (const track of TRACKS)
      assert.ok(
        Buffer.from(await readFile(join(a.out, track, 'init.mp4'))).equals(
          await readFile(join(b.out, track, 'init.mp4')),
        ),
        `${track}: the init segments are byte-identical`,
      );
    assert.deepEqual(
      (await readdir(join(a.out, VIDEO))).filter((n) => n.startsWith('init')),
      ['init.mp4'],
      'A stayed in one period through the kill and the restart',
    );
    const compared: Record<string, number> = {};
    for (const track of TRACKS) {
      const inA = await segmentNumbers(a.out, track);
      const inB = await segmentNumbers(b.out, track);
      const common = inA.slice(1, -1).filter((n) => inB.slice(1, -1).includes(n));
      assert.ok(common.length >= 8, `${track}: ${common.length} segments in common`);
      for (const n of common) {
        const [fromA, fromB] = await Promise.all([chunksOf(a, track, n), chunksOf(b, track, n)]);
        assert.deepEqual(fromA.chunks, fromB.chunks, `${track}/${n}.m4s: A's chunks are B's`);
      }
      compared[track] = common.length;
    }
    process.stderr.write(`# twins: segments compared chunk by chunk ${JSON.stringify(compared)}; ${events}\n`);
  });

  it('audio on the epoch grid in both, and continuous to the sample in A across the killed encoder and the restart', async () => {
    for (const twin of [a, b]) {
      for (const n of await segmentNumbers(twin.out, 'audio')) {
        for (const chunk of (await chunksOf(twin, 'audio', n)).chunks)
          assert.equal(chunk.tfdt % 1024n, 0n, `${twin.name} audio/${n}.m4s: a chunk at ${chunk.tfdt}`);
      }
    }
    let slateSegments = 0;
    for (const track of TRACKS) {
      const numbers = await segmentNumbers(a.out, track);
      let previous: Chunk | undefined;
      for (const [i, n] of numbers.entries()) {
        if (i > 0) assert.equal(n, numbers[i - 1]! + 1n, `A ${track}: no segment missing before ${n}`);
        const { chunks, slate } = await chunksOf(a, track, n);
        if (slate && track === 'audio') slateSegments++;
        for (const chunk of chunks) {
          if (previous)
            assert.equal(
              chunk.tfdt,
              previous.tfdt + BigInt(previous.duration),
              `A ${track}/${n}.m4s: a chunk starts where the one before it ends`,
            );
          previous = chunk;
        }
      }
    }
    assert.ok(slateSegments >= 1, `silence filled the gaps (${slateSegments} slate segments of audio)`);
    process.stderr.write(`# twins: A's audio continuous over ${slateSegments} slate segments\n`);
  });
});
