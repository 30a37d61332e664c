// The origin with 500 idle connections and 50 uploads whose bodies trickle (a byte a second),
// all on 127.0.0.0/8 (spread over 127.0.0.2–11, 50 connections per address, under the per-client
// limit): how fast it still answers GET /time, and what it holds. Run alone it takes the
// appliance checkout to measure (`node bench/origin-clients.ts [ROOT]`) and prints JSON, so the
// same figures can be taken on an older commit.
import { readFile } from 'node:fs/promises';
import { Agent, request } from 'node:http';
import { connect, type Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';

const TOKEN = 'bench-clients-token';

export interface ClientsRun {
  timeMs: { p50: number; p99: number; max: number };
  requests: number;
  failed: number;
  originRssMiB: number;
  idleOpenAtEnd: number;
}

const rssMiB = async (pid: number) =>
  Number(/VmRSS:\s+(\d+)/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? 0) / 1024;

function open(port: number, localAddress: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host: '127.0.0.1', localAddress }, () => resolve(socket));
    socket.on('error', reject);
  });
}

export async function originUnderClients(
  root = fileURLToPath(new URL('../', import.meta.url)),
  idle = 500,
  slow = 50,
): Promise<ClientsRun> {
  const origin = execa(
    process.execPath,
    ['--max-semi-space-size=2', 'bin/appliance.js', 'origin', '--listen', '127.0.0.1:0'],
    { cwd: root, env: { APPLIANCE_INGEST_TOKEN: TOKEN }, reject: false },
  );
  const sockets: Socket[] = [];
  const timers: NodeJS.Timeout[] = [];
  try {
    let log = '';
    origin.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
    let base: string | undefined;
    for (let i = 0; i < 200 && !base; i++) {
      await sleep(50);
      base = /"url":"(http:[^"]+?)\/?"/.exec(log)?.[1];
    }
    if (!base) throw new Error(`the origin did not start: ${log}`);
    const port = Number(new URL(base).port);
    const address = (i: number) => `127.0.0.${2 + (i % 10)}`;
    for (let i = 0; i < idle; i++) sockets.push(await open(port, address(i)));
    for (let i = 0; i < slow; i++) {
      const socket = await open(port, address(i));
      socket.on('error', () => undefined);
      socket.write(
        `PUT /slow/${i}.m4s HTTP/1.1\r\nHost: origin\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n`,
      );
      timers.push(setInterval(() => socket.write('1\r\nx\r\n'), 1000));
      sockets.push(socket);
    }
    for (const socket of sockets) socket.on('error', () => undefined);
    await sleep(1000);
    const agent = new Agent({ keepAlive: true, maxSockets: 1 });
    const times: number[] = [];
    let failed = 0;
    for (let i = 0; i < 500; i++) {
      const started = performance.now();
      const ok = await new Promise<boolean>((resolve) => {
        const req = request(`${base}/time`, { agent, timeout: 5000 }, (res) => {
          res.resume();
          res.on('end', () => resolve(res.statusCode === 200));
        });
        req.on('timeout', () => req.destroy());
        req.on('error', () => resolve(false));
        req.end();
      });
      if (ok) times.push(performance.now() - started);
      else failed++;
      await sleep(5);
    }
    agent.destroy();
    times.sort((a, b) => a - b);
    const q = (p: number) =>
      Number((times[Math.min(times.length - 1, Math.max(0, Math.ceil(p * times.length) - 1))] ?? NaN).toFixed(2));
    return {
      timeMs: { p50: q(0.5), p99: q(0.99), max: q(1) },
      requests: times.length,
      failed,
      originRssMiB: Number((await rssMiB(origin.pid!)).toFixed(1)),
      idleOpenAtEnd: sockets.slice(0, idle).filter((s) => !s.destroyed && s.readyState === 'open').length,
    };
  } finally {
    for (const timer of timers) clearInterval(timer);
    for (const socket of sockets) socket.destroy();
    origin.kill('SIGTERM');
    await origin;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.stdout.write(`${JSON.stringify(await originUnderClients(process.argv[2]))}\n`);
}
