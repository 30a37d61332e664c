import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { launchChromium, type PlayerKind } from '../test/helpers/player.ts';
import { killUnderPlayer } from '../test/helpers/slate-watch.ts';
import { quantile } from '../test/helpers/push-origin.ts';
import { logLines } from '../test/helpers/run.ts';

const ROOT = new URL('../', import.meta.url);

interface ChunkLine {
  track: string;
  segment: string;
  part: number;
  mediaEndMs: number;
  at: number;
  slate?: boolean;
}

type LogLine = Record<string, any>;

const parseLog = (text: string) => logLines(text) as LogLine[];

/** One appliance as a unit file starts it (pinned Node, two malloc arenas), on the test source, logging every chunk. */
function startAppliance(args: string[]): ResultPromise & { log: () => string } {
  const child = execa(
    process.execPath,
    ['--max-semi-space-size=2', 'bin/appliance.js', 'start', '--log-level', 'trace', ...args],
    {
      cwd: ROOT,
      env: { ...process.env, MALLOC_ARENA_MAX: '2' },
      reject: false,
      timeout: 120_000,
    },
  );
  let text = '';
  child.stderr!.on('data', (piece: Buffer) => (text += piece.toString()));
  return Object.assign(child, { log: () => text });
}

async function waitFor(child: { log: () => string }, msg: string, timeoutMs = 20_000): Promise<LogLine> {
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(50)) {
    const line = parseLog(child.log()).find((l) => l['msg'] === msg);
    if (line) return line;
  }
  throw new Error(`the appliance did not log "${msg}" within ${timeoutMs} ms`);
}

/**
 * Holes in each track's chunk sequence: a segment number skipped, a part skipped within a segment,
 * or a segment that does not begin at part 0. Pure.
 */
export function sequenceHoles(chunks: ChunkLine[]): number {
  let holes = 0;
  const last = new Map<string, ChunkLine>();
  for (const chunk of chunks) {
    const previous = last.get(chunk.track);
    last.set(chunk.track, chunk);
    if (!previous) continue;
    const step = BigInt(chunk.segment) - BigInt(previous.segment);
    if (step === 0n ? chunk.part !== previous.part + 1 : step !== 1n || chunk.part !== 0) holes++;
  }
  return holes;
}

/** The longest time between two consecutive chunks of one track written inside [from, to], ms. */
function longestSilenceMs(chunks: ChunkLine[], from: number, to: number): number {
  let longest = 0;
  const previous = new Map<string, number>();
  for (const chunk of chunks) {
    const before = previous.get(chunk.track);
    previous.set(chunk.track, chunk.at);
    if (before !== undefined && chunk.at >= from && before <= to) longest = Math.max(longest, chunk.at - before);
  }
  return longest;
}

const timeOf = (line: LogLine) => Date.parse(line['time']);

/** Media time the slate covered in one track (the first), from the chunk before it to its last chunk, ms. */
function slateSpanMs(chunks: ChunkLine[]): number {
  const track = chunks[0]?.track;
  const mine = chunks.filter((c) => c.track === track);
  const first = mine.findIndex((c) => c.slate);
  if (first < 0) return 0;
  const last = mine.findLastIndex((c) => c.slate);
  const start = first > 0 ? mine[first - 1]!.mediaEndMs : mine[first]!.mediaEndMs;
  return mine[last]!.mediaEndMs - start;
}

export interface KillRun {
  /** SIGKILL of ffmpeg → the appliance logged the interruption. */
  detectedAfterMs: number;
  /** Longest silence of any track's output from 2 s before the kill to 2 s after the source came back. */
  longestSilenceMs: number;
  /** The same, before the kill: what normal looks like. */
  longestSilenceBeforeMs: number;
  /** Slate chunks: written − wall-clock end of their media. */
  slateChunkDelayMs: { p50: number; p95: number; max: number; count: number };
  /** Media time the slate covered. */
  slateMs: number;
  sequenceHoles: number;
  restarted: boolean;
}

/** The appliance writing to a directory; ffmpeg SIGKILLed `killAfter` s after the first segment. */
export async function killRun(seconds = 24, killAfter = 8): Promise<KillRun> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-kill-'));
  const appliance = startAppliance([
    '--duration',
    String(seconds),
    '--output',
    join(dir, 'live.mpd'),
    '--state-dir',
    join(dir, 'state'),
  ]);
  try {
    const pid = (await waitFor(appliance, 'ffmpeg started'))['pid'] as number;
    await waitFor(appliance, 'first segment');
    await sleep(killAfter * 1000);
    const killedAt = Date.now();
    process.kill(pid, 'SIGKILL');
    const result = await appliance;
    if (result.exitCode !== 0) {
      const saved = join(tmpdir(), `appliance-bench-kill-${Date.now()}.log`);
      await writeFile(saved, appliance.log());
      throw new Error(
        `appliance exited ${result.exitCode ?? result.signal} (its log: ${saved}): ${appliance.log().slice(-2000)}`,
      );
    }
    const lines = parseLog(appliance.log());
    const interrupted = lines.find((l) => l['msg'] === 'source interrupted');
    const back = lines.find((l) => l['msg'] === 'source back: slate ended');
    if (!interrupted || !back)
      throw new Error('the kill was not seen as an interruption followed by the source coming back');
    const chunks = lines.filter((l) => l['msg'] === 'chunk') as unknown as ChunkLine[];
    const slate = chunks.filter((c) => c.slate).map((c) => c.at - c.mediaEndMs);
    return {
      detectedAfterMs: timeOf(interrupted) - killedAt,
      longestSilenceMs: longestSilenceMs(chunks, killedAt - 2000, timeOf(back) + 2000),
      longestSilenceBeforeMs: longestSilenceMs(chunks, killedAt - 6000, killedAt - 1000),
      slateChunkDelayMs: {
        p50: quantile(slate, 0.5),
        p95: quantile(slate, 0.95),
        max: Math.max(...slate),
        count: slate.length,
      },
      slateMs: slateSpanMs(chunks),
      sequenceHoles: sequenceHoles(chunks),
      restarted: lines.some((l) => l['msg'] === 'ffmpeg restarted'),
    };
  } finally {
    if (appliance.exitCode === null) appliance.kill('SIGTERM');
    await appliance;
    await rm(dir, { recursive: true, force: true });
  }
}

export interface RestartRun {
  /** SIGTERM → the first process exited (it finishes its segment first). */
  stopMs: number;
  /** Per track, the first process's last chunk → the second's first chunk, ms (worst track). */
  handoverSilenceMs: number;
  /** Segment numbers between the first process's last segment and the second's first. */
  segmentsSkipped: number;
  /** Slate (media time) the second process sent before its encoder delivered. */
  slateMs: number;
  sequenceHoles: number;
  periods: number;
}

/** `systemctl restart` as the appliance sees it: SIGTERM mid-run, then a new process on the same outputs and state. */
export async function restartRun(firstSeconds = 10, secondSeconds = 10): Promise<RestartRun> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-restart-'));
  const args = ['--output', join(dir, 'live.mpd'), '--state-dir', join(dir, 'state')];
  const first = startAppliance(args);
  let second: ReturnType<typeof startAppliance> | undefined;
  try {
    await waitFor(first, 'first segment');
    // Mid-segment, as a restart lands.
    await sleep(firstSeconds * 1000 + 450);
    const stoppedAt = Date.now();
    first.kill('SIGTERM');
    const firstResult = await first;
    const stopMs = Date.now() - stoppedAt;
    if (firstResult.exitCode !== 0)
      throw new Error(`the first appliance exited ${firstResult.exitCode}: ${first.log().slice(-2000)}`);
    second = startAppliance(args);
    await waitFor(second, 'first segment');
    await sleep(secondSeconds * 1000);
    second.kill('SIGTERM');
    if ((await second).exitCode !== 0)
      throw new Error(`the second appliance exited with an error: ${second.log().slice(-2000)}`);
    const before = parseLog(first.log()).filter((l) => l['msg'] === 'chunk') as unknown as ChunkLine[];
    const afterLines = parseLog(second.log());
    const after = afterLines.filter((l) => l['msg'] === 'chunk') as unknown as ChunkLine[];
    const tracks = [...new Set(before.map((c) => c.track))];
    const lastOf = (track: string) => before.filter((c) => c.track === track).at(-1)!;
    const firstOf = (track: string) => after.find((c) => c.track === track)!;
    const mpd = await readFile(join(dir, 'live.mpd'), 'utf8');
    return {
      stopMs,
      handoverSilenceMs: Math.max(...tracks.map((t) => firstOf(t).at - lastOf(t).at)),
      segmentsSkipped: Math.max(
        ...tracks.map((t) => Number(BigInt(firstOf(t).segment) - BigInt(lastOf(t).segment)) - 1),
      ),
      slateMs: slateSpanMs([...before, ...after]),
      sequenceHoles: sequenceHoles([...before, ...after]),
      periods: mpd.match(/<Period /g)?.length ?? 0,
    };
  } finally {
    for (const child of [first, second]) if (child && child.exitCode === null) child.kill('SIGTERM');
    await Promise.allSettled([first, second]);
    await rm(dir, { recursive: true, force: true });
  }
}

export interface PlayerKillRun {
  kind: PlayerKind;
  slateInMediaMs: number;
  slateOnScreenMs: number;
  slateShownMs: number;
  latencyMs: number;
  waits: number;
  waitingMs: number;
  errors: number;
  liveAtEnd: boolean;
}

/** The issue's own judges: each player on the built-in origin while ffmpeg is SIGKILLed 9 s in. */
export async function playerKillRuns(): Promise<PlayerKillRun[]> {
  const browser = await launchChromium();
  const runs: PlayerKillRun[] = [];
  try {
    for (const kind of ['dash.js', 'hls.js'] as const) {
      const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-kill-player-'));
      const appliance = startAppliance(['--listen', '127.0.0.1:0', '--duration', '60', '--state-dir', dir]);
      try {
        const base = new URL((await waitFor(appliance, 'serving'))['url']).origin;
        await sleep(2500);
        const { report, figures } = await killUnderPlayer(browser, {
          kind,
          url: `${base}/live.${kind === 'dash.js' ? 'mpd' : 'm3u8'}`,
          seconds: 24,
          killAtSecond: 9,
          kill: () => {
            const pid = parseLog(appliance.log())
              .filter((l) => l['msg'] === 'ffmpeg started' || l['msg'] === 'ffmpeg restarted')
              .at(-1)?.['pid'];
            process.kill(pid, 'SIGKILL');
          },
        });
        runs.push({
          kind,
          slateInMediaMs: figures.slateInMediaMs ?? NaN,
          slateOnScreenMs: figures.slateOnScreenMs ?? NaN,
          slateShownMs: figures.slateShownMs ?? NaN,
          latencyMs: Math.round(report.medianWallClockLatency * 1000),
          waits: report.waits,
          waitingMs: Math.round(report.waitingMs),
          errors: report.errors.length,
          liveAtEnd: figures.liveAtEnd,
        });
      } finally {
        appliance.kill('SIGTERM');
        await appliance;
        await rm(dir, { recursive: true, force: true });
      }
    }
    return runs;
  } finally {
    await browser.close();
  }
}
