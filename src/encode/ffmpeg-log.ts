// ffmpeg's stderr under `-loglevel level+info`: every line tagged with its level, so that each is
// logged at the right level (errors as errors, the banner-like info as debug) and the tail kept
// for error reports holds only what ffmpeg itself thought worth a warning.

export type FfmpegLevel = 'panic' | 'fatal' | 'error' | 'warning' | 'info' | 'verbose' | 'debug' | 'trace';

export interface FfmpegLine {
  level: FfmpegLevel;
  /** The line as ffmpeg would print it without the level tag (`[component @ 0x…] text`). */
  text: string;
  /** After the component prefix: what was said. */
  message: string;
}

const TAGGED = /^((?:\[[^\]]+ @ 0x[0-9a-f]+\] )?)\[(panic|fatal|error|warning|info|verbose|debug|trace)\] ?(.*)$/;

/**
 * Pure: one stderr line → its level and text. An untagged line continues the line before (ffmpeg
 * tags only the first line of a message that starts with a newline); with none before, a warning.
 */
export function parseFfmpegLine(line: string, previous: FfmpegLevel = 'warning'): FfmpegLine {
  const match = TAGGED.exec(line);
  if (!match) return { level: previous, text: line, message: line };
  return { level: match[2] as FfmpegLevel, text: `${match[1]}${match[3]}`, message: match[3]! };
}

/** The pino level an ffmpeg level is logged at. */
export function loggedLevel(level: FfmpegLevel): 'error' | 'warn' | 'debug' | 'trace' {
  if (level === 'panic' || level === 'fatal' || level === 'error') return 'error';
  if (level === 'warning') return 'warn';
  return level === 'info' ? 'debug' : 'trace';
}

export const isWarningOrWorse = (level: FfmpegLevel) => loggedLevel(level) === 'error' || loggedLevel(level) === 'warn';

const SECRET_PARAMETERS =
  'access_token|token|password|passwd|pass|passphrase|secret|key|sig|signature|auth|authorization|streamid|pwd';

/**
 * Pure: a text with the secrets it may carry replaced: the password of a URL's user info, secret
 * query parameters (SRT passphrases, signed URLs' signatures, tokens) and Authorization headers.
 */
export function redactSecrets(text: string): string {
  return text
    .replace(/([a-z][\w+.-]*:\/\/[^/\s:@'"]*):[^@\s/'"]*@/gi, '$1:[redacted]@')
    .replace(new RegExp(`([?&;](?:${SECRET_PARAMETERS})=)[^&\\s'"]+`, 'gi'), '$1[redacted]')
    .replace(
      /(authorization:\s*)(?:(bearer|basic)\s+)?[^\s'"]+/gi,
      (_all, head: string, scheme: string | undefined) => `${head}${scheme ? `${scheme} ` : ''}[redacted]`,
    )
    .replace(/\b(bearer)\s+[\w.~+/-]+=*/gi, '$1 [redacted]');
}
