/**
 * Exit codes are part of the CLI contract: scripts and systemd unit files rely on them.
 * 2 = the user can fix it by changing arguments or configuration; 1 = it failed while running.
 */
export const EXIT_OK = 0;
export const EXIT_RUNTIME = 1;
export const EXIT_USAGE = 2;

/** Bad arguments, profile, configuration or environment (missing ffmpeg): exit 2. */
export class ConfigError extends Error {
  readonly exitCode = EXIT_USAGE;
  readonly hint: string | undefined;
  constructor(message: string, hint?: string) {
    super(message);
    this.name = 'ConfigError';
    this.hint = hint;
  }
}

/** A failure at run time (ffmpeg died, output broke): exit 1. */
export class RuntimeFailure extends Error {
  readonly exitCode = EXIT_RUNTIME;
  readonly details: readonly string[];
  constructor(message: string, details: readonly string[] = []) {
    super(message);
    this.name = 'RuntimeFailure';
    this.details = details;
  }
}
