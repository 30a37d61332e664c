import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readdir, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import type { ChunkEvent, PackagerEvent } from '../../src/packager/chunker.ts';
import { DirectoryOutput } from '../../src/push/directory-output.ts';
import { oldestKept } from '../../src/timeline/window.ts';
import { createLogger } from '../../src/log.ts';
import { hlsTiming } from '../../src/packager/hls-playlist.ts';
import { HlsPlaylists, outputFormats, type HlsSession } from '../../src/packager/hls-playlists.ts';

const dirs: string[] = [];
after(() => Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true }))));
async function scratch() {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-dir-'));
  dirs.push(dir);
  return dir;
}

const info = {
  trackId: 1,
  timescale: 1000,
  handler: 'vide',
  sampleEntry: 'avc1',
  defaults: { duration: 0, size: 0, flags: 0 },
};
const chunk = (segment: bigint, part: number, text: string): ChunkEvent => ({
  type: 'chunk',
  track: 'v',
  segment,
  part,
  parts: [new TextEncoder().encode(text)],
  byteLength: text.length,
  independent: part === 0,
  decodeTime: segment * 1000n + BigInt(part * 100),
  duration: 100,
  timescale: 1000,
  segmentComplete: part === 9,
  slate: false,
});

describe('directory output', () => {
  it('appends chunks to their segment file in order and writes init and manifest atomically', async () => {
    const dir = await scratch();
    const written: string[] = [];
    const out = new DirectoryOutput({
      dir,
      segdur: 1,
      timeShiftBufferDepth: 30,
      logger: createLogger('silent'),
      onChunkWritten: (c) => written.push(`${c.segment}.${c.part}`),
    });
    const now = BigInt(Math.floor(Date.now() / 1000));
    const events: PackagerEvent[] = [
      { type: 'init', track: 'v', info, bytes: Uint8Array.of(1, 2, 3), path: 'v/init.mp4' },
      chunk(now, 0, 'a'),
      chunk(now, 1, 'b'),
      chunk(now, 2, 'c'),
      { type: 'segmentEnd', track: 'v', segment: now, last: false },
    ];
    for (const e of events) out.handle(e);
    await out.writeManifest('live.mpd', '<MPD/>');
    await out.flush();
    assert.equal(await readFile(join(dir, 'v', `${now}.m4s`), 'utf8'), 'abc');
    assert.deepEqual([...(await readFile(join(dir, 'v', 'init.mp4')))], [1, 2, 3]);
    assert.equal(await readFile(join(dir, 'live.mpd'), 'utf8'), '<MPD/>');
    assert.deepEqual(written, [`${now}.0`, `${now}.1`, `${now}.2`]);
    assert.deepEqual((await readdir(dir)).sort(), ['live.mpd', 'v'], 'no temporary file left');
  });

  it('with LL-HLS part files (sf): writes each part file and the playlist naming it, and deletes part files with their segment', async () => {
    const dir = await scratch();
    const timing = hlsTiming({ segdur: 1, cdur: 0.1, partChunks: 1, audioSampleRate: undefined, tsb: 3, llhls: 'sf' });
    const session: HlsSession = { llhls: 'sf', partChunks: 1, timing, renditions: () => undefined, ended: () => false };
    const hls = new HlsPlaylists(session, outputFormats('live.mpd', true).names, { blocking: false, hints: false });
    const out = new DirectoryOutput({ dir, segdur: 1, timeShiftBufferDepth: 3, logger: createLogger('silent'), hls });
    const first = BigInt(Math.floor(Date.now() / 1000));
    out.handle({ type: 'init', track: 'v', info, bytes: Uint8Array.of(1), path: 'v/init.mp4' });
    for (let s = first; s < first + 7n; s++) {
      for (let part = 0; part < 10; part++) out.handle(chunk(s, part, `${s % 10n}${part}`));
      out.handle({ type: 'segmentEnd', track: 'v', segment: s, last: false });
    }
    await out.flush();
    const last = first + 6n;
    assert.equal(
      await readFile(join(dir, 'v', `${last}.m4s.3`), 'utf8'),
      `${last % 10n}2`,
      'part files are numbered from 1',
    );
    const playlist = await readFile(join(dir, 'live_v.m3u8'), 'utf8');
    assert.match(
      playlist,
      new RegExp(`#EXT-X-PART:DURATION=0.10000,URI="v/${last}.m4s.10"\n#EXTINF:1.00000,\nv/${last}.m4s\n`),
    );
    assert.doesNotMatch(playlist, /CAN-BLOCK-RELOAD|PRELOAD-HINT/, 'nothing serving a directory holds requests');
    const files = await readdir(join(dir, 'v'));
    const expired = oldestKept(last, 1, 3) - 1n;
    assert.ok(!files.some((f) => f.startsWith(`${expired}.m4s`)), 'an expired segment goes with its part files');
    assert.equal(
      files.filter((f) => f.startsWith(`${expired + 1n}.m4s`)).length,
      11,
      'a kept segment keeps its 10 part files',
    );
  });

  it('deletes segments as they leave the time-shift window, and leftovers of an earlier run', async () => {
    const dir = await scratch();
    const now = BigInt(Math.floor(Date.now() / 1000));
    await mkdir(join(dir, 'v'), { recursive: true });
    await writeFile(join(dir, 'v', `${now - 3600n}.m4s`), 'an hour old');
    await writeFile(join(dir, 'v', `${now - 2n}.m4s`), 'recent');
    const out = new DirectoryOutput({ dir, segdur: 1, timeShiftBufferDepth: 3, logger: createLogger('silent') });
    out.handle({ type: 'init', track: 'v', info, bytes: Uint8Array.of(0), path: 'v/init.mp4' });
    for (let n = now; n <= now + 10n; n++) {
      out.handle(chunk(n, 0, 'x'));
      out.handle({ type: 'segmentEnd', track: 'v', segment: n, last: false });
    }
    await out.flush();
    const kept = (await readdir(join(dir, 'v')))
      .filter((f) => f.endsWith('.m4s'))
      .map((f) => BigInt(f.slice(0, -4)))
      .sort((a, b) => Number(a - b));
    const oldest = oldestKept(now + 10n, 1, 3);
    assert.equal(oldest, now + 6n);
    assert.deepEqual(
      kept,
      [now + 6n, now + 7n, now + 8n, now + 9n, now + 10n],
      'the window (3 s) plus one segment, and the newest',
    );
  });
});
