import assert from 'node:assert/strict';
import { createSocket } from 'node:dgram';
import { execa, type ResultPromise } from 'execa';
import { analyseTrack, readTrack, type TrackReport } from './media.ts';
import { logLines } from './run.ts';

// A real sender (ffmpeg: test pattern and tone, H.264 + AAC in MPEG-TS) to a loopback port, and what
// the feed tests check of what the appliance made of it.
export async function freeUdpPort(): Promise<number> {
  const socket = createSocket('udp4');
  await new Promise<void>((resolve) => socket.bind(0, '127.0.0.1', resolve));
  const { port } = socket.address();
  socket.close();
  return port;
}

export function sender(url: string, size = '640x360', extra: string[] = []): ResultPromise {
  return execa(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      `testsrc2=size=${size}:rate=30`,
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-g',
      '30',
      '-b:v',
      '1M',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      ...extra,
      '-f',
      'mpegts',
      url,
    ],
    { reject: false, stdin: 'pipe' },
  );
}

export async function stopSender(child: ResultPromise) {
  child.kill('SIGKILL');
  await child.catch(() => undefined);
}

export const report = async (out: string, track: string) => analyseTrack(await readTrack(out, track), 1);

/**
 * Every frame on the frame grid, every IDR on a whole second since 1970. A feed that stalled
 * (`interruptions` times, as logged: its sender short of CPU on a busy machine) is followed by
 * slate from its last whole chunk, whose first frame is an IDR on that chunk's boundary.
 */
export function assertOnGrid(video: TrackReport, fps: number, interruptions = 0) {
  const ts = BigInt(video.track.timescale);
  assert.equal(video.frameRate, fps);
  const offSecond = video.syncTimes.filter((t) => t % ts !== 0n);
  assert.ok(
    offSecond.length <= interruptions,
    `IDRs at ${offSecond.join(', ')} off a whole second since 1970 (${interruptions} interruptions)`,
  );
  for (const t of offSecond) assert.equal(t % (ts / 10n), 0n, `slate's IDR at ${t} on a chunk boundary`);
  assert.ok(
    video.samples.every((s) => s.decodeTime % (ts / BigInt(fps)) === 0n),
    'every frame on the grid',
  );
}

/** An SRT run: it ended well, its passphrase is nowhere in what it said, and its frames are on the grid. */
export async function assertSrtIngested(
  track: string,
  run: { exitCode?: number | undefined; stderr: unknown; stdout: unknown },
  out: string,
  passphrase: string,
  minFrames: number,
) {
  assert.equal(run.exitCode, 0, String(run.stderr).slice(-3000));
  assert.doesNotMatch(String(run.stderr) + String(run.stdout), new RegExp(passphrase));
  const video = await report(out, track);
  const interruptions = logLines(String(run.stderr)).filter((l) => l['msg'] === 'source interrupted').length;
  assertOnGrid(video, 30, interruptions);
  assert.ok(video.samples.length >= minFrames, `${video.samples.length} frames`);
}
