import { homedir } from 'node:os';
import { join, resolve } from 'node:path';

/**
 * Pure: where state that outlives the process goes (the slate cache, the session's periods):
 * `--state-dir`, else systemd's StateDirectory ($STATE_DIRECTORY), else $XDG_STATE_HOME/appliance,
 * else ~/.local/state/appliance.
 */
export function stateDirectory(
  explicit: string | undefined,
  env: NodeJS.ProcessEnv = process.env,
  home = homedir(),
): string {
  if (explicit) return resolve(explicit);
  const systemd = env['STATE_DIRECTORY']?.split(':')[0];
  if (systemd) return systemd;
  const xdg = env['XDG_STATE_HOME'];
  return join(xdg || join(home, '.local', 'state'), 'appliance');
}
