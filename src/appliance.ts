import { main } from './cli/main.ts';
import { EXIT_RUNTIME } from './errors.ts';
import { takeSecrets } from './secret-environment.ts';

// Started by the launcher (bin/appliance.js) with an IPC channel: if the launcher dies without
// passing a signal on (SIGKILL), stop as on SIGTERM; before a run has begun, just leave.
if (process.channel) {
  process.channel.unref();
  process.once('disconnect', () => {
    if (process.listenerCount('SIGTERM') > 0) process.emit('SIGTERM', 'SIGTERM');
    else process.exit(EXIT_RUNTIME);
  });
}

// The secrets leave this process's environment before anything can start a child.
process.exitCode = await main(process.argv.slice(2), takeSecrets());
