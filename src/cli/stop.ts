import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { setTimeout as sleep } from 'node:timers/promises';
import { stateDirectory } from '../config/state-dir.ts';
import { ConfigError, RuntimeFailure } from '../errors.ts';

export const STOP_USAGE = `appliance stop [--end] [--state-dir DIR] [--timeout S]
  Stops the appliance running with this state directory, as SIGTERM does: it finishes the current
  segment and delivers the manifests; viewers keep a live stream (a restart continues it).
  --end          end the stream for viewers instead: the last segment carries lmsg, playlists
                 get EXT-X-ENDLIST, the MPD becomes final
  --state-dir    the running appliance's (default: as for start)
  --timeout S    how long to wait for it to exit (default: 30)`;

/** Where a running appliance writes its pid. */
export const pidFileOf = (stateDir: string) => join(stateDir, 'appliance.pid');

/** The signal that ends the stream for viewers (SIGTERM only stops the appliance). */
export const END_SIGNAL = 'SIGUSR2';

export async function runStop(argv: readonly string[]): Promise<void> {
  const options = {
    end: { type: 'boolean' },
    'state-dir': { type: 'string' },
    timeout: { type: 'string' },
    help: { type: 'boolean', short: 'h' },
  } as const;
  let values: ReturnType<typeof parseArgs<{ args: string[]; options: typeof options; strict: true }>>['values'];
  try {
    ({ values } = parseArgs({ args: [...argv], options, strict: true }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${STOP_USAGE}`);
  }
  if (values.help) return void process.stdout.write(`${STOP_USAGE}\n`);
  const timeout = Number(values.timeout ?? 30);
  if (!(timeout > 0)) throw new ConfigError(`--timeout "${values.timeout}": a number of seconds above 0`);
  const file = pidFileOf(stateDirectory(values['state-dir']));
  const pid = Number((await readFile(file, 'utf8').catch(() => '')).trim());
  if (!Number.isInteger(pid) || pid <= 0)
    throw new ConfigError(`no running appliance: ${file} does not name one (give the --state-dir it runs with)`);
  try {
    process.kill(pid, values.end ? END_SIGNAL : 'SIGTERM');
  } catch {
    throw new ConfigError(`no running appliance: process ${pid} (from ${file}) is gone`);
  }
  for (const started = Date.now(); Date.now() - started < timeout * 1000; await sleep(100)) {
    try {
      process.kill(pid, 0);
    } catch {
      process.stdout.write(`appliance ${pid} ${values.end ? 'ended the stream' : 'stopped'}\n`);
      return;
    }
  }
  throw new RuntimeFailure(`appliance ${pid} did not exit within ${timeout} s`);
}
