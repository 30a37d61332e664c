import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Logs are JSON lines on stderr so that stdout stays free for what the user asked for
 * (`--dry-run`, `devices --json`) and journald keeps one record per line.
 * Secrets are redacted by key wherever they might appear in a logged object.
 */
export function createLogger(level: LogLevel = 'info'): Logger {
  return pino(
    {
      level,
      base: { app: 'appliance' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: { paths: ['token', '*.token', 'password', '*.password', 'authorization', '*.authorization'], censor: '[redacted]' },
    },
    pino.destination({ fd: 2, sync: true }),
  );
}

/**
 * Pure: lets a message through at most once per window per shape (digits and addresses
 * ignored), counting what it held back, so a warning ffmpeg prints every frame cannot flood the
 * journal while the first occurrence and the count still show.
 */
export class RepeatLimiter {
  readonly #windowMs: number;
  readonly #seen = new Map<string, { loggedAt: number; suppressed: number }>();
  constructor(windowMs: number) {
    this.#windowMs = windowMs;
  }

  admit(line: string, now: number): { log: boolean; suppressed: number } {
    const shape = line.replace(/0x[0-9a-f]+|\d+(\.\d+)?/gi, '#');
    const entry = this.#seen.get(shape);
    if (entry && now - entry.loggedAt < this.#windowMs) {
      entry.suppressed++;
      return { log: false, suppressed: 0 };
    }
    this.#seen.set(shape, { loggedAt: now, suppressed: 0 });
    return { log: true, suppressed: entry?.suppressed ?? 0 };
  }
}
