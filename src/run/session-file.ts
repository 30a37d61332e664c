import { createHash } from 'node:crypto';
import { mkdir, readFile, rm } from 'node:fs/promises';
import { writeAtomically } from '../files.ts';
import { dirname, join } from 'node:path';
import type { Logger } from '../log.ts';
import type { Period } from '../packager/packager.ts';
import { restoreState, sessionState } from '../packager/session-state.ts';
import type { OutputTarget } from '../push/output-target.ts';

/** Pure: the state file of a set of outputs (the same destinations and manifest names: the same session). */
export function sessionFileOf(stateDir: string, outputs: readonly OutputTarget[]): string {
  const identity = outputs.map((o) =>
    o.kind === 'push'
      ? `push ${o.url.origin}${o.url.pathname}`
      : o.kind === 'directory'
        ? `dir ${o.dir} ${o.manifest}`
        : `serve ${o.host}:${o.port} ${o.manifest}`,
  );
  return join(
    stateDir,
    'sessions',
    `${createHash('sha256').update(identity.join('\n')).digest('hex').slice(0, 16)}.json`,
  );
}

/**
 * The session a previous process left on these outputs, if recent enough for viewers to still be
 * watching it (its last segment within the time-shift window).
 */
export async function loadSession(
  file: string,
  timing: { segdur: number; cdur: number; tsb: number },
  nowMs: number,
  logger: Logger,
) {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch {
    return undefined;
  }
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch {
    parsed = undefined; // a truncated or foreign file: unreadable, like any other junk
  }
  const restored = restoreState(parsed, timing);
  if (!restored) {
    logger.warn({ file }, 'the saved session is unreadable: starting a new one');
    return undefined;
  }
  const endedMs = Number(restored.lastSegment + 1n) * timing.segdur * 1000;
  if (nowMs - endedMs > timing.tsb * 1000) return undefined;
  return restored;
}

/** Saves the session as it goes (coalesced: one write at a time, the newest wins). */
export class SessionSaver {
  readonly #file: string;
  readonly #logger: Logger;
  #pending: string | undefined;
  #writing: Promise<void> | undefined;
  #failed = false;

  constructor(file: string, logger: Logger) {
    this.#file = file;
    this.#logger = logger;
  }

  save(periods: readonly Period[], lastSegment: bigint): void {
    this.#pending = JSON.stringify(sessionState(periods, lastSegment));
    this.#writing ??= this.#drain();
  }

  async #drain(): Promise<void> {
    while (this.#pending !== undefined) {
      const text = this.#pending;
      this.#pending = undefined;
      try {
        await mkdir(dirname(this.#file), { recursive: true });
        await writeAtomically(this.#file, text);
      } catch (error) {
        if (!this.#failed)
          this.#logger.warn(
            { err: (error as Error).message, file: this.#file },
            'cannot save the session: a restart will start a new one',
          );
        this.#failed = true;
      }
    }
    this.#writing = undefined;
  }

  async flush(): Promise<void> {
    await this.#writing;
  }

  /** The stream ended: the next start is a new stream. */
  async forget(): Promise<void> {
    await this.flush();
    await rm(this.#file, { force: true });
  }
}
