// Chunk delay through appliance origin, CMAF ingest against DASH ingest on the same run: one
// appliance (ultra-ll, test source) pushes the same chunks to one `appliance origin` both ways
// (`--ingest dash` stored as given; `--ingest cmaf` packaged by the origin), and a reader follows
// each stream's growing segments as a player does; a chunk's delay is when its last byte reached
// the reader − the end of its media on the (epoch) timeline.
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { quantile } from '../test/helpers/push-origin.ts';
import { startLikeService } from './live.ts';

const ROOT = new URL('../', import.meta.url);
const TOKEN = 'bench-token';
const TRACK = '720p';

export interface IngestOriginRun {
  chunkDelayMs: Record<'dash' | 'cmaf', { p50: number; p95: number; chunks: number }>;
}

/** Follows segments n, n+1, … of `url`/<n>.m4s as they grow, for `seconds`: per chunk, its delay. */
async function follow(base: string, first: bigint, seconds: number): Promise<number[]> {
  const delays: number[] = [];
  let timescale = 0;
  const init = new Uint8Array(await (await fetch(`${base}/init.mp4`)).arrayBuffer());
  const mdhd = Buffer.from(init).indexOf('mdhd');
  timescale = Buffer.from(init).readUInt32BE(mdhd + 4 + (init[mdhd + 4] ? 20 : 12));
  for (let n = first; n <= first + BigInt(seconds); n++) {
    const response = await fetch(`${base}/${n}.m4s`);
    if (!response.ok || !response.body) continue;
    let pending = Buffer.alloc(0);
    let mediaEnd = 0;
    for await (const piece of response.body) {
      pending = Buffer.concat([pending, piece as Uint8Array]);
      for (;;) {
        if (pending.length < 8) break;
        const size = pending.readUInt32BE(0);
        if (pending.length < size) break;
        const type = pending.toString('latin1', 4, 8);
        const box = pending.subarray(0, size);
        pending = pending.subarray(size);
        if (type === 'moof') {
          const t = box.indexOf('tfdt');
          const tfdt = box[t + 4] ? Number(box.readBigUInt64BE(t + 8)) : box.readUInt32BE(t + 8);
          const r = box.indexOf('trun');
          const flags = box.readUInt32BE(r + 4) & 0xffffff;
          const count = box.readUInt32BE(r + 8);
          let at = r + 12 + (flags & 1 ? 4 : 0) + (flags & 4 ? 4 : 0);
          const step = [0x100, 0x200, 0x400, 0x800].filter((f) => flags & f).length * 4;
          let ticks = 0;
          for (let i = 0; i < count && flags & 0x100; i++, at += step) ticks += box.readUInt32BE(at);
          mediaEnd = ((tfdt + ticks) / timescale) * 1000;
        } else if (type === 'mdat' && n > first) delays.push(performance.timeOrigin + performance.now() - mediaEnd);
      }
    }
  }
  return delays;
}

export async function ingestOriginRun(seconds: number): Promise<IngestOriginRun> {
  const origin = execa(process.execPath, ['bin/appliance.js', 'origin', '--listen', '127.0.0.1:0'], {
    cwd: ROOT,
    env: { ...process.env, APPLIANCE_INGEST_TOKEN: TOKEN },
    reject: false,
  });
  let base = '';
  origin.stderr?.on('data', (piece: Buffer) => {
    base ||= /"url":"(http:\/\/[^"]+)\/"/.exec(piece.toString())?.[1] ?? '';
  });
  for (let i = 0; i < 100 && !base; i++) await sleep(100);
  if (!base) throw new Error('appliance origin did not start');
  const appliance = startLikeService(
    seconds + 8,
    ['--output', `${base}/dash/live.mpd`, '--output', `${base}/cmaf`, '--ingest', 'dash', '--ingest', 'cmaf'],
    { APPLIANCE_PUSH_TOKEN: TOKEN },
  );
  try {
    // From a few seconds in, both streams followed at once.
    for (let i = 0; i < 200; i++) {
      if ((await fetch(`${base}/cmaf/live.mpd`)).ok && (await fetch(`${base}/dash/live.mpd`)).ok) break;
      await sleep(100);
    }
    // The segment in progress, then each next one, requested as the one before ends (it has begun
    // by then): as a player at the live edge. The first one's chunks made before it was asked for
    // come at once and are not counted.
    const first = BigInt(Math.floor(Date.now() / 1000));
    const [dash, cmaf] = await Promise.all([
      follow(`${base}/dash/${TRACK}`, first, seconds),
      follow(`${base}/cmaf/${TRACK}`, first, seconds),
    ]);
    const figures = (d: number[]) => ({
      p50: Math.round(quantile(d, 0.5) * 10) / 10,
      p95: Math.round(quantile(d, 0.95) * 10) / 10,
      chunks: d.length,
    });
    return { chunkDelayMs: { dash: figures(dash), cmaf: figures(cmaf) } };
  } finally {
    appliance.kill('SIGTERM');
    await appliance;
    origin.kill('SIGTERM');
    await origin;
  }
}
