// The end-to-end suite in two passes, so that it is quick on 2 cores and holds when one is busy:
// - test/e2e/*.test.ts share the machine, three files at a time: most of their time is media
//   arriving in real time, and what they assert does not depend on having a core to themselves;
// - test/e2e/alone/*.test.ts run one file at a time, after: real players in Chromium, A/V sync
//   within a frame, the default ladder's bitrates — bounds that CPU taken by a neighbour would move.
// Arguments are passed to both runs (e.g. --test-name-pattern). Exits non-zero if either failed.
import { spawnSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = fileURLToPath(new URL('..', import.meta.url));

/**
 * The shared pass's longest files (40 s and more each on an idle machine), started first: the
 * runner takes files in the order given, and one of them started last would run on alone at the
 * end of the pass while the other slots stand idle.
 */
const LONGEST_FIRST = ['push', 'feed-source', 'feed-srt', 'service', 'file-source', 'push-limits'];

function testFiles(folder: string): string[] {
  const names = readdirSync(join(root, folder))
    .filter((n) => n.endsWith('.test.ts'))
    .sort();
  const rank = (name: string) => {
    const at = LONGEST_FIRST.indexOf(name.replace(/\.test\.ts$/, ''));
    return at === -1 ? LONGEST_FIRST.length : at;
  };
  return names.sort((a, b) => rank(a) - rank(b)).map((n) => `${folder}${n}`);
}

const passes = [
  { files: testFiles('test/e2e/'), concurrency: 3 },
  { files: testFiles('test/e2e/alone/'), concurrency: 1 },
];

let failed = false;
for (const { files, concurrency } of passes) {
  const run = spawnSync(
    process.execPath,
    ['--test', `--test-concurrency=${concurrency}`, ...process.argv.slice(2), ...files],
    { cwd: root, stdio: 'inherit' },
  );
  if (run.status !== 0) failed = true;
}
process.exitCode = failed ? 1 : 0;
