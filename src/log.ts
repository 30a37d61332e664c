import { pino, type Logger } from 'pino';

export type { Logger };

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const;
export type LogLevel = (typeof LOG_LEVELS)[number];

/**
 * Logs are JSON lines on stderr so that stdout stays free for what the user asked for
 * (`--dry-run`, `devices --json`) and journald keeps one record per line.
 * Secrets are redacted by key wherever they might appear in a logged object.
 */
export function createLogger(level: LogLevel = 'info', terminal?: TerminalLog): Logger {
  return pino(
    {
      level,
      base: { app: 'appliance' },
      timestamp: pino.stdTimeFunctions.isoTime,
      redact: {
        paths: [
          'token',
          '*.token',
          'password',
          '*.password',
          'passphrase',
          '*.passphrase',
          'authorization',
          '*.authorization',
        ],
        censor: '[redacted]',
      },
    },
    terminal ?? pino.destination({ fd: 2, sync: true }),
  );
}

const LEVEL_NAMES: Record<number, [string, string]> = {
  10: ['TRACE', '90'],
  20: ['DEBUG', '36'],
  30: ['INFO ', '32'],
  40: ['WARN ', '33'],
  50: ['ERROR', '31'],
  60: ['FATAL', '35'],
};
const HIDDEN_FIELDS = new Set(['level', 'time', 'msg', 'app', 'pid', 'hostname']);

/** Pure: one pino JSON record → a line for people: time, level, message, then the fields as key=value. */
export function humanLine(json: string, colour: boolean): string {
  let record: Record<string, unknown>;
  try {
    record = JSON.parse(json) as Record<string, unknown>;
  } catch {
    return json.trimEnd();
  }
  const [name, code] = LEVEL_NAMES[Number(record['level'])] ?? ['?    ', '0'];
  const time = typeof record['time'] === 'string' ? record['time'].slice(11, 23) : '';
  const fields = Object.entries(record)
    .filter(([key]) => !HIDDEN_FIELDS.has(key))
    .map(
      ([key, value]) =>
        `${key}=${typeof value === 'string' ? (/\s/.test(value) ? JSON.stringify(value) : value) : JSON.stringify(value)}`,
    );
  const level = colour ? `\x1b[${code}m${name}\x1b[0m` : name;
  return [time, level, String(record['msg'] ?? ''), ...fields].join(' ');
}

/**
 * Logs for a terminal: readable lines, and one status line kept under them (redrawn after each
 * log line). Under systemd, or when stderr is not a terminal, logs stay JSON lines for journald.
 */
export class TerminalLog {
  readonly #out: NodeJS.WriteStream;
  #status = '';

  constructor(out: NodeJS.WriteStream) {
    this.#out = out;
  }

  /** stderr is a terminal and nobody collects it as a journal. */
  static wanted(env: NodeJS.ProcessEnv = process.env, out: NodeJS.WriteStream = process.stderr): boolean {
    return Boolean(out.isTTY) && !env['JOURNAL_STREAM'] && !env['INVOCATION_ID'];
  }

  write(json: string): boolean {
    this.#out.write(`\r\x1b[K${humanLine(json, true)}\n${this.#statusText()}`);
    return true;
  }

  status(text: string): void {
    this.#status = text;
    this.#out.write(`\r\x1b[K${this.#statusText()}`);
  }

  #statusText(): string {
    return this.#status ? `\x1b[1m${this.#status.slice(0, (this.#out.columns || 120) - 1)}\x1b[0m` : '';
  }

  /** Leaves the terminal with no status line under the prompt. */
  end(): void {
    this.#status = '';
    this.#out.write('\r\x1b[K');
  }
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
