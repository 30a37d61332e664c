import { access, constants } from 'node:fs/promises';
import { delimiter, join } from 'node:path';

// Run before the end-to-end tests (`npm run test:e2e`): the system programs they use, and which
// Debian packages bring the missing ones, said at once rather than as a failure deep in a test.

const TOOLS: { program: string; paths?: string[]; debian: string; usedFor: string }[] = [
  { program: 'ffmpeg', debian: 'ffmpeg', usedFor: 'every encode, and the feed senders' },
  { program: 'ffprobe', debian: 'ffmpeg', usedFor: 'segment checks' },
  {
    program: 'chromium',
    paths: [process.env['CHROMIUM'] ?? '/usr/bin/chromium'],
    debian: 'chromium',
    usedFor: 'the dash.js and hls.js player tests',
  },
  { program: 'tesseract', debian: 'tesseract-ocr', usedFor: 'reading the burnt-in clock (A/V and latency tests)' },
  { program: 'nginx', paths: ['/usr/sbin/nginx'], debian: 'nginx', usedFor: 'the generic (WebDAV) origin' },
  { program: 'openssl', debian: 'openssl', usedFor: 'certificates for the TLS tests' },
  { program: 'systemd-analyze', debian: 'systemd', usedFor: 'verifying the unit file' },
  { program: 'systemd-notify', debian: 'systemd', usedFor: 'the notify protocol' },
  { program: 'python3', debian: 'python3', usedFor: "standing in for systemd's NOTIFY_SOCKET" },
];

async function executable(path: string): Promise<boolean> {
  return access(path, constants.X_OK).then(
    () => true,
    () => false,
  );
}

async function found(program: string, paths: string[] | undefined): Promise<boolean> {
  const candidates =
    paths ??
    (process.env['PATH'] ?? '')
      .split(delimiter)
      .filter(Boolean)
      .map((dir) => join(dir, program));
  for (const path of candidates) if (await executable(path)) return true;
  return false;
}

const missing = [];
for (const tool of TOOLS) if (!(await found(tool.program, tool.paths))) missing.push(tool);
if (missing.length) {
  const packages = [...new Set(missing.map((t) => t.debian))];
  process.stderr.write(
    `The end-to-end tests need programs this machine lacks:\n${missing.map((t) => `  ${t.program} (${t.usedFor})`).join('\n')}\n` +
      `On Debian or Ubuntu: sudo apt-get update && sudo apt-get install -y ${packages.join(' ')}\n` +
      `(.ci/run installs them itself.) The unit tests need none of them: npm run test:unit\n`,
  );
  process.exitCode = 1;
}
