import { readFile } from 'node:fs/promises';
import { Agent, request, type ClientRequest } from 'node:http';
import { loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { MAGIC } from './origin-marker.ts';

const ROOT = new URL('../', import.meta.url);
const TOKEN = 'bench-token';
const CHUNK_BYTES = 37_500; // 100 ms of 720p at 3 Mb/s

async function procStat(pid: number) {
  const stat = (await readFile(`/proc/${pid}/stat`, 'utf8')).split(') ')[1]!.split(' ');
  const status = await readFile(`/proc/${pid}/status`, 'utf8');
  return {
    cpuSeconds: (Number(stat[11]) + Number(stat[12])) / 100,
    peakRssMiB: Number(/VmHWM:\s+(\d+)/.exec(status)?.[1] ?? 0) / 1024,
  };
}

/** Pushes one rendition like the appliance does: a chunked PUT per segment, a chunk every 100 ms. */
function startUploader(base: string): () => void {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  let current: ClientRequest | undefined;
  let segment = -1;
  const timer = setInterval(() => {
    const now = Date.now();
    const n = Math.floor(now / 1000);
    if (n !== segment) {
      current?.end();
      segment = n;
      current = request(`${base}/720p/${n}.m4s`, {
        method: 'PUT',
        agent,
        headers: { Authorization: `Bearer ${TOKEN}`, 'Transfer-Encoding': 'chunked' },
      });
      current.on('response', (res) => res.resume());
      current.on('error', () => undefined);
      current.setNoDelay(true);
    }
    const chunk = Buffer.alloc(CHUNK_BYTES, 7);
    MAGIC.copy(chunk, 0);
    chunk.writeDoubleBE(performance.timeOrigin + performance.now(), 8);
    current!.write(chunk);
  }, 100);
  return () => {
    clearInterval(timer);
    current?.end();
    agent.destroy();
  };
}

export interface FanOutRun {
  readers: number;
  delaysMs: { p50: number; p99: number; max: number };
  chunks: number;
  errors: number;
  originCpuPercentOfCore: number;
  originPeakRssMiB: number;
  load1: number;
}

export async function originFanOut(readers: number, seconds: number): Promise<FanOutRun> {
  const origin = execa(
    process.execPath,
    ['--max-semi-space-size=2', 'bin/appliance.js', 'origin', '--listen', '127.0.0.1:0', '--tsb', '10'],
    {
      cwd: ROOT,
      env: { APPLIANCE_INGEST_TOKEN: TOKEN },
      reject: false,
    },
  );
  try {
    let base: string | undefined;
    let log = '';
    origin.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
    for (let i = 0; i < 100 && !base; i++) {
      await sleep(50);
      base = /"url":"(http:[^"]+?)\/?"/.exec(log)?.[1];
    }
    if (!base) throw new Error(`the origin did not start: ${log}`);
    const stopUploading = startUploader(base);
    await sleep(1500);
    // Readers in two processes: one event loop serving 500 sockets would measure itself, not the origin.
    const readerProcesses = [0].map(() =>
      execa(process.execPath, ['bench/origin-readers.ts', base!, String(readers), String(seconds)], {
        cwd: ROOT,
        reject: false,
      }),
    );
    await sleep(2000); // connections established, steady state
    const before = await procStat(origin.pid!);
    await sleep((seconds - 3) * 1000);
    const after = await procStat(origin.pid!);
    const results = await Promise.all(readerProcesses);
    stopUploading();
    const parts = results.map((r) => JSON.parse(String(r.stdout)) as { delays: number[]; errors: number });
    const delays = parts.flatMap((p) => p.delays).sort((a, b) => a - b);
    const q = (p: number) => Number(delays[Math.min(delays.length - 1, Math.ceil(p * delays.length) - 1)]!.toFixed(2));
    const measured = {
      delaysMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
      chunks: delays.length,
      errors: parts.reduce((n, p) => n + p.errors, 0),
    };
    return {
      readers,
      ...measured,
      originCpuPercentOfCore: Number((((after.cpuSeconds - before.cpuSeconds) / (seconds - 3)) * 100).toFixed(1)),
      originPeakRssMiB: Number(after.peakRssMiB.toFixed(1)),
      load1: Number(loadavg()[0]!.toFixed(2)),
    };
  } finally {
    origin.kill('SIGTERM');
    await origin;
  }
}
