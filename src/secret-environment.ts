// The appliance takes its secrets from the environment (never argv). It reads them once at start
// and takes them out of its own environment, so that no child process inherits them: ffmpeg, the
// feed relay, systemd-notify, the helpers systeminformation spawns. Each child's environment is
// readable at /proc/PID/environ by its user, and ffmpeg has no use for any of them.

export const PUSH_TOKEN_ENV = 'APPLIANCE_PUSH_TOKEN';
export const PUSH_USER_ENV = 'APPLIANCE_PUSH_USER';
export const PUSH_PASSWORD_ENV = 'APPLIANCE_PUSH_PASSWORD';
export const INGEST_TOKEN_ENV = 'APPLIANCE_INGEST_TOKEN';
/** Where an SRT passphrase is read from; never from the URL (it would reach logs and process lists). */
export const SRT_PASSPHRASE_ENV = 'APPLIANCE_SRT_PASSPHRASE';

const SECRET_VARIABLES = new Set([
  PUSH_TOKEN_ENV,
  PUSH_USER_ENV,
  PUSH_PASSWORD_ENV,
  INGEST_TOKEN_ENV,
  SRT_PASSPHRASE_ENV,
]);
/** A variable of ours named like a secret, whether or not this version reads it. */
const SECRET_LIKE = /^APPLIANCE_.*(TOKEN|PASSWORD|PASSPHRASE|SECRET|KEY|CREDENTIAL)/i;

export const isSecretVariable = (name: string): boolean => SECRET_VARIABLES.has(name) || SECRET_LIKE.test(name);

/** Pure: the environment a child process gets: everything but the secrets (PulseAudio, fontconfig, locale need the rest). */
export function withoutSecrets(env: NodeJS.ProcessEnv): NodeJS.ProcessEnv {
  return Object.fromEntries(Object.entries(env).filter(([name]) => !isSecretVariable(name)));
}

/**
 * Shell: a copy of the whole environment, secrets included, for the commands to read; the secrets
 * are removed from `env` (this process's own, by default) so that children never see them.
 */
export function takeSecrets(env: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const all = { ...env };
  for (const name of Object.keys(env)) if (isSecretVariable(name)) delete env[name];
  return all;
}
