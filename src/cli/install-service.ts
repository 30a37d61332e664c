import { existsSync } from 'node:fs';
import { chmod, mkdir, writeFile } from 'node:fs/promises';
import { dirname, join, resolve } from 'node:path';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { ConfigError } from '../errors.ts';
import { DEFAULT_UNIT, renderUnit, type UnitSettings } from '../service/unit-file.ts';

export const INSTALL_USAGE = `appliance install-service [options]   run the appliance under systemd
  Writes appliance.service with this install's absolute paths (the pinned Node 24 and the
  appliance), a starter /etc/appliance/appliance.yaml and secrets.env when missing, and (as root)
  creates the service user in the video and audio groups. Then:
    systemctl daemon-reload && systemctl enable --now appliance
  --config FILE     the configuration the service starts with (default: ${DEFAULT_UNIT.config})
  --user NAME       the service user (default: ${DEFAULT_UNIT.user})
  --unit-dir DIR    where the unit goes (default: /etc/systemd/system)
  --no-user         do not create the user
  --print           print the unit file and change nothing`;

const OPTIONS = {
  config: { type: 'string' },
  user: { type: 'string' },
  'unit-dir': { type: 'string' },
  'no-user': { type: 'boolean' },
  print: { type: 'boolean' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

const STARTER_CONFIG = `# appliance start options, keyed by flag name (see "appliance start --help"); the command line wins.
# Secrets do not go here: put APPLIANCE_PUSH_TOKEN (or APPLIANCE_PUSH_USER / APPLIANCE_PUSH_PASSWORD,
# APPLIANCE_SRT_PASSPHRASE) in secrets.env next to this file.
profile: ultra-ll
source: device                 # the default camera and microphone; "appliance devices" lists them
# output:                      # without an output the stream is served on "listen"
#   - https://origin.example/live/live.mpd
# origin-profile: appliance    # or generic (nginx/WebDAV, object stores); "appliance check" tells;
#                              # unified, mediapackage-v2 or generic-cmaf take CMAF ingest (ingest: cmaf)
# header-file: /etc/appliance/push-headers
listen: 127.0.0.1:8080
metrics: 127.0.0.1:9464        # /metrics (Prometheus), /healthz, /status
`;

const STARTER_SECRETS = `# Read by systemd (EnvironmentFile), never logged. One VARIABLE=value per line, e.g.
# APPLIANCE_PUSH_TOKEN=...
`;

/** Pure: where this install's pieces are, for the unit's absolute paths. */
export function installedPaths(execPath: string, moduleUrl: string): { node: string; entry: string; root: string } {
  // This file is src/cli/install-service.ts or dist/cli/install-service.js.
  const root = resolve(dirname(fileURLToPath(moduleUrl)), '..', '..');
  const built = join(root, 'dist', 'appliance.js');
  return { node: execPath, entry: existsSync(built) ? built : join(root, 'src', 'appliance.ts'), root };
}

/** Pure: what in the unit's paths systemd's sandbox would hide from the service. */
export function hiddenBySandbox(paths: readonly string[]): string[] {
  return paths.flatMap((p) =>
    /^\/(home|root|run\/user)\//.test(p)
      ? [`${p} is under ProtectHome=yes`]
      : /^\/tmp\//.test(p)
        ? [`${p} is under PrivateTmp=yes`]
        : [],
  );
}

async function writeIfMissing(file: string, text: string, mode: number): Promise<boolean> {
  if (existsSync(file)) return false;
  await mkdir(dirname(file), { recursive: true });
  await writeFile(file, text, { mode });
  await chmod(file, mode);
  return true;
}

export async function runInstallService(argv: readonly string[]): Promise<number> {
  let values: {
    config?: string;
    user?: string;
    'unit-dir'?: string;
    'no-user'?: boolean;
    print?: boolean;
    help?: boolean;
  };
  try {
    ({ values } = parseArgs({ args: [...argv], options: OPTIONS, strict: true, allowPositionals: false }));
  } catch (error) {
    throw new ConfigError(`${(error as Error).message}\n${INSTALL_USAGE}`);
  }
  if (values.help) {
    process.stdout.write(`${INSTALL_USAGE}\n`);
    return 0;
  }
  const user = values.user ?? DEFAULT_UNIT.user;
  if (!/^[a-z_][a-z0-9_-]{0,31}$/.test(user))
    throw new ConfigError(`--user "${user}": expected a system user name (lower-case letters, digits, "-", "_")`);
  const { node, entry } = installedPaths(process.execPath, import.meta.url);
  const config = resolve(values.config ?? DEFAULT_UNIT.config);
  const settings: UnitSettings = { node, entry, config, user, environmentFile: join(dirname(config), 'secrets.env') };
  const unit = renderUnit(settings);
  if (values.print) {
    process.stdout.write(unit);
    return 0;
  }
  const hidden = hiddenBySandbox([node, entry]);
  if (hidden.length)
    process.stderr.write(
      `appliance: warning: the service will not see its own files (${hidden.join('; ')}); install the appliance under /opt or /usr/local\n`,
    );
  const unitFile = join(values['unit-dir'] ?? '/etc/systemd/system', 'appliance.service');
  await mkdir(dirname(unitFile), { recursive: true });
  await writeFile(unitFile, unit, { mode: 0o644 });
  const wrote = [unitFile];
  if (await writeIfMissing(config, STARTER_CONFIG, 0o640)) wrote.push(config);
  if (await writeIfMissing(settings.environmentFile, STARTER_SECRETS, 0o600)) wrote.push(settings.environmentFile);
  if (!values['no-user'] && process.getuid?.() === 0) {
    const exists = (await execa('id', ['-u', user], { reject: false })).exitCode === 0;
    if (!exists) {
      const made = await execa(
        'useradd',
        [
          '--system',
          '--user-group',
          '--home-dir',
          '/var/lib/appliance',
          '--no-create-home',
          '--shell',
          '/usr/sbin/nologin',
          '--groups',
          'video,audio',
          user,
        ],
        { reject: false },
      );
      if (made.exitCode !== 0) throw new ConfigError(`cannot create the user "${user}": ${String(made.stderr).trim()}`);
      wrote.push(`user ${user} (groups video, audio)`);
    }
    await execa('chgrp', [user, config], { reject: false });
  }
  process.stdout.write(
    `${wrote.map((w) => `wrote ${w}`).join('\n')}\nnext:\n  edit ${config} (source, output), secrets in ${settings.environmentFile}\n  sudo -u ${user} ${node} ${entry} check --config ${config}\n  systemctl daemon-reload && systemctl enable --now appliance\n  journalctl -u appliance -f; curl -s http://127.0.0.1:9464/status\n`,
  );
  return 0;
}
