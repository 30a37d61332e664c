#!/usr/bin/env node
// The `appliance` command. It runs on whatever Node starts it (Debian 12 ships 18) and hands over
// to the Node 24 pinned by the `node` package, so the command, `npx appliance`, npm scripts and a
// systemd ExecStart all run the same runtime. Keep this file plain JavaScript for Node ≥ 18.
import { spawn } from 'node:child_process';
import { existsSync, readdirSync, realpathSync, statSync } from 'node:fs';
import { constants } from 'node:os';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

const REQUIRED_MAJOR = 24;
// Smaller young-generation semi-spaces: the media path churns through short-lived buffers and the
// default 16 MB semi-spaces cost ~11 MB of peak RSS for nothing. Anyone starting the pinned Node
// directly (npm start, a unit file) passes the same flags; see the README.
const NODE_FLAGS = ['--max-semi-space-size=2'];
// glibc gives each thread that allocates its own malloc arena; Node's worker threads leave ~16 MB
// of RSS in them that two arenas do not (measured pushing to an origin: 143 → 127 MB). Read at
// process start, so it is set for the child; a unit file starting the pinned Node sets it itself.
const PINNED_NODE_ENV = { MALLOC_ARENA_MAX: '2' };
const root = join(dirname(fileURLToPath(import.meta.url)), '..');
const entry = builtEntry() ?? join(root, 'src', 'appliance.ts');

// dist/ is src/ compiled (npm ci runs the build): the same code without Node's TypeScript
// stripping, which keeps ~17 MB of RSS for the life of the process. It is used only when the
// build is newer than every source file, so an edit without a rebuild runs from src/ and never
// stale code. The build is incremental (it rewrites only what changed), so its time is that of
// the stamp it leaves when it ends (dist/.built).
function builtEntry() {
  const built = join(root, 'dist', 'appliance.js');
  let builtAt;
  try {
    statSync(built);
    builtAt = statSync(join(root, 'dist', '.built')).mtimeMs;
  } catch {
    return undefined;
  }
  const newestSource = (dir) => {
    let newest = 0;
    for (const item of readdirSync(dir, { withFileTypes: true })) {
      const path = join(dir, item.name);
      newest = Math.max(newest, item.isDirectory() ? newestSource(path) : statSync(path).mtimeMs);
    }
    return newest;
  };
  try {
    return newestSource(join(root, 'src')) <= builtAt ? built : undefined;
  } catch {
    return built; // no src/ (an installed package): the build is all there is
  }
}

function pinnedNode() {
  try {
    const packageDir = dirname(createRequire(import.meta.url).resolve('node/package.json'));
    const names = process.platform === 'win32' ? ['bin/node.exe'] : ['bin/node'];
    return names.map((name) => join(packageDir, name)).find((path) => existsSync(path));
  } catch {
    return undefined;
  }
}

function samePath(a, b) {
  try {
    return realpathSync(a) === realpathSync(b);
  } catch {
    return false;
  }
}

const pinned = pinnedNode();
const currentMajor = Number(process.versions.node.split('.')[0]);

if (pinned && !samePath(pinned, process.execPath)) {
  // The IPC channel closes when this launcher dies, even by SIGKILL: the appliance then stops
  // cleanly on its own instead of running on as an orphan.
  const child = spawn(pinned, [...NODE_FLAGS, entry, ...process.argv.slice(2)], {
    stdio: ['inherit', 'inherit', 'inherit', 'ipc'],
    env: { ...PINNED_NODE_ENV, ...process.env },
  });
  // A service manager or script may signal only this process; pass it on. The child handles a
  // repeated signal (e.g. Ctrl-C reaching both processes) as one stop request.
  for (const signal of ['SIGTERM', 'SIGINT', 'SIGHUP']) {
    process.on(signal, () => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
    });
  }
  child.on('error', (error) => {
    process.stderr.write(`appliance: cannot start the pinned Node at ${pinned}: ${error.message}\n`);
    process.exit(2);
  });
  child.on('exit', (code, signal) => {
    process.exit(code ?? 128 + (constants.signals[signal] ?? 15));
  });
} else if (pinned || currentMajor >= REQUIRED_MAJOR) {
  await import(pathToFileURL(entry).href);
} else {
  process.stderr.write(
    `appliance: needs Node ${REQUIRED_MAJOR}, which the "node" package installs; this is Node ${process.versions.node} and the package is missing.\n` +
      'Run "npm ci" in the appliance directory (its install script must be allowed), then try again.\n',
  );
  process.exit(2);
}
