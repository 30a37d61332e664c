import { RepeatLimiter } from '../log.ts';
import type { Readable, Writable } from 'node:stream';
import { execa } from 'execa';
import type { Logger } from '../log.ts';
import type { EncoderPlan } from './ffmpeg-args.ts';
import { ProgressParser, type EncoderProgress } from './progress.ts';
import { detectorEvent, type DetectorEvent } from './detectors.ts';
import { loggedLevel, parseFfmpegLine, redactSecrets, type FfmpegLevel } from './ffmpeg-log.ts';

export interface EncoderExit {
  code: number | undefined;
  signal: string | undefined;
  /** The last lines ffmpeg wrote to stderr, for error reports. */
  stderrTail: string[];
  /** True when we asked it to stop. */
  requested: boolean;
}

/** Lines ffmpeg 5.1 always prints for our muxer settings; they say nothing about this run. */
const EXPECTED_WARNINGS = [/No meaningful edit list will be written/, /starts with a nonzero dts/];
const STDERR_TAIL_LINES = 30;
const REPEAT_WINDOW_MS = 10_000;

export interface EncoderProcess {
  readonly pid: number | undefined;
  /** Each track's fragmented MP4 byte stream, keyed by track id. */
  readonly tracks: ReadonlyMap<string, Readable>;
  /** Where a feed's bytes go in (plans with an `inputFd`). */
  readonly input: Writable | undefined;
  readonly exited: Promise<EncoderExit>;
  /** Asks ffmpeg to finish (`q` on stdin) and kills it if it has not exited after `graceMs`. */
  stop(graceMs?: number): Promise<EncoderExit>;
  /** Kills it at once (SIGKILL): its exit is not a requested one. */
  kill(): void;
}

export function startEncoder(options: {
  ffmpegPath: string;
  plan: EncoderPlan;
  logger: Logger;
  onProgress?: (progress: EncoderProgress) => void;
  /** A silence, black or freeze detector marked a start or an end. */
  onDetector?: ((event: DetectorEvent) => void) | undefined;
}): EncoderProcess {
  const { ffmpegPath, plan, logger } = options;
  const extraFds = Math.max(...plan.tracks.map((t) => t.fd), plan.inputFd ?? 0) - 2;
  const child = execa(ffmpegPath, plan.args, {
    stdio: ['pipe', 'pipe', 'pipe', ...Array.from({ length: extraFds }, () => 'pipe' as const)],
    buffer: false,
    reject: false,
    encoding: 'buffer',
    forceKillAfterDelay: false,
    // Its own process group: a Ctrl-C or a signal to our group must reach the appliance, which
    // stops ffmpeg with `q` after the media in flight, not ffmpeg directly.
    detached: process.platform !== 'win32',
  });
  const log = logger.child({ component: 'ffmpeg', pid: child.pid });
  // A detached child is not killed with us; never leave an ffmpeg behind.
  const killOnExit = () => child.kill('SIGKILL');
  process.once('exit', killOnExit);

  const tail: string[] = [];
  const repeats = new RepeatLimiter(REPEAT_WINDOW_MS);
  let pendingStderr = '';
  let previousLevel: FfmpegLevel = 'warning';
  child.stderr?.setEncoding('utf8');
  child.stderr?.on('data', (text: string) => {
    const lines = (pendingStderr + text).split(/\r?\n/);
    pendingStderr = lines.pop() ?? '';
    for (const raw of lines) {
      if (!raw.trim()) continue;
      const line = parseFfmpegLine(redactSecrets(raw), previousLevel);
      previousLevel = line.level;
      const detected = detectorEvent(line.message);
      if (detected) {
        options.onDetector?.(detected);
        continue;
      }
      const level = loggedLevel(line.level);
      if (level === 'debug' || level === 'trace') {
        log[level]({ line: line.text }, 'ffmpeg');
        continue;
      }
      tail.push(line.text);
      if (tail.length > STDERR_TAIL_LINES) tail.shift();
      if (EXPECTED_WARNINGS.some((pattern) => pattern.test(line.text))) {
        log.debug({ line: line.text }, 'ffmpeg');
        continue;
      }
      const verdict = repeats.admit(line.text, Date.now());
      if (verdict.log)
        log[level](
          { line: line.text, ...(verdict.suppressed ? { repeatedSinceLast: verdict.suppressed } : {}) },
          'ffmpeg',
        );
    }
  });

  const progress = new ProgressParser();
  child.stdout?.setEncoding('utf8');
  child.stdout?.on('data', (text: string) => {
    for (const block of progress.push(text)) options.onProgress?.(block);
  });

  const tracks = new Map<string, Readable>();
  for (const track of plan.tracks) {
    const stream = child.stdio[track.fd] as Readable | undefined;
    if (!stream) throw new Error(`no pipe for track ${track.id} on fd ${track.fd}`);
    tracks.set(track.id, stream);
  }

  const input = plan.inputFd === undefined ? undefined : (child.stdio[plan.inputFd] as Writable | undefined);
  // A feed written into a run that ended: the bytes have nowhere to go, and that is no error.
  input?.on('error', () => undefined);

  let requested = false;
  const exited: Promise<EncoderExit> = child.then((result) => {
    process.off('exit', killOnExit);
    if (pendingStderr.trim()) tail.push(parseFfmpegLine(redactSecrets(pendingStderr)).text);
    return {
      code: result.exitCode,
      signal: result.signal,
      stderrTail: tail.slice(),
      requested,
    };
  });

  let stopping: Promise<EncoderExit> | undefined;
  return {
    pid: child.pid,
    tracks,
    input,
    exited,
    kill() {
      child.kill('SIGKILL');
    },
    stop(graceMs = 5000) {
      stopping ??= (async () => {
        requested = true;
        child.stdin?.end('q\n');
        // ffmpeg ignores its keyboard when an input is a pipe: a feed's run stops at the end of its input.
        input?.end();
        const timer = setTimeout(() => {
          log.warn({ graceMs }, 'ffmpeg did not stop on request; killing it');
          child.kill('SIGKILL');
        }, graceMs);
        try {
          return await exited;
        } finally {
          clearTimeout(timer);
        }
      })();
      return stopping;
    },
  };
}
