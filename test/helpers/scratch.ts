import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after } from 'node:test';

/**
 * Scratch directories for one test file: `scratch()` makes a fresh one under the system's temp
 * directory named `appliance-<name>-…`; all of them are removed when the file's tests are done.
 */
export function scratchDirectories(name: string): () => Promise<string> {
  const dirs: string[] = [];
  after(async () => {
    await Promise.all(dirs.map((d) => rm(d, { recursive: true, force: true })));
  });
  return async () => {
    const dir = await mkdtemp(join(tmpdir(), `appliance-${name}-`));
    dirs.push(dir);
    return dir;
  };
}
