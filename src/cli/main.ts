import { EXIT_OK, EXIT_RUNTIME, EXIT_USAGE, ConfigError, RuntimeFailure } from '../errors.ts';
import { createLogger, TerminalLog } from '../log.ts';
import { COMMANDS, START_OPTION_SPECS, USAGE, parseStartArgs } from './args.ts';
import { readConfigFile } from './config-file.ts';
import { describe, resolveStart, runStart } from './start.ts';
import { runOrigin } from './origin.ts';
import { runCheck } from './check.ts';
import { runInstallService } from './install-service.ts';
import { runDevices } from './devices.ts';
import { runStop } from './stop.ts';
import { packageVersion } from '../version.ts';

/** Runs one command; returns the exit status. Only this function prints user-facing errors. */
export async function main(argv: readonly string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  const [command, ...rest] = argv;
  try {
    if (command === undefined || command === 'help' || command === '--help' || command === '-h') {
      process.stdout.write(`${USAGE}\n`);
      return command === undefined ? EXIT_USAGE : EXIT_OK;
    }
    if (command === '--version' || command === 'version') {
      process.stdout.write(
        `appliance ${await packageVersion()} (node ${process.version}, ${process.platform}-${process.arch})\n`,
      );
      return EXIT_OK;
    }
    if (command === 'start') {
      const commandLine = parseStartArgs(rest);
      const options = commandLine.config
        ? parseStartArgs(rest, await readConfigFile(commandLine.config, START_OPTION_SPECS))
        : commandLine;
      if (options.help) {
        process.stdout.write(`${USAGE}\n`);
        return EXIT_OK;
      }
      const resolved = await resolveStart(options, process.cwd(), env);
      if (options.dryRun) {
        resolved.feedRelay?.stop();
        process.stdout.write(describe(resolved));
        return EXIT_OK;
      }
      const terminal = TerminalLog.wanted() ? new TerminalLog(process.stderr) : undefined;
      await runStart(resolved, options, createLogger(options.logLevel, terminal), terminal);
      return EXIT_OK;
    }
    if (command === 'check') return await runCheck(rest, env);
    if (command === 'install-service') return await runInstallService(rest);
    if (command === 'devices') return await runDevices(rest);
    if (command === 'stop') {
      await runStop(rest);
      return EXIT_OK;
    }
    if (command === 'origin') {
      await runOrigin(rest, env);
      return EXIT_OK;
    }
    throw new ConfigError(`unknown command "${command}"; available: ${COMMANDS.join(', ')}. Run "appliance --help".`);
  } catch (error) {
    if (error instanceof ConfigError) {
      process.stderr.write(`appliance: ${error.message}\n${error.hint ? `${error.hint}\n` : ''}`);
      return EXIT_USAGE;
    }
    if (error instanceof RuntimeFailure) {
      process.stderr.write(`appliance: ${error.message}\n${error.details.map((line) => `  ${line}\n`).join('')}`);
      return EXIT_RUNTIME;
    }
    process.stderr.write(`appliance: unexpected failure: ${(error as Error).stack ?? String(error)}\n`);
    return EXIT_RUNTIME;
  }
}
