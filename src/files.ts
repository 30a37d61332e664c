import { randomBytes } from 'node:crypto';
import { rename, unlink, writeFile } from 'node:fs/promises';
import { dirname, join } from 'node:path';

/** Temporary files of writeAtomically start with this; whatever a crash left of them is garbage. */
export const TEMPORARY_PREFIX = '.tmp-';

/**
 * Writes `bytes` to `path` so that readers see the old file or the new one, never a part. The
 * temporary name is unique per write (concurrent writes of one path never share it) and short
 * (a long final name must not fail on its temporary's length).
 */
export async function writeAtomically(path: string, bytes: string | Uint8Array): Promise<void> {
  const temporary = join(dirname(path), `${TEMPORARY_PREFIX}${randomBytes(8).toString('hex')}`);
  try {
    await writeFile(temporary, bytes);
    await rename(temporary, path);
  } catch (error) {
    await unlink(temporary).catch(() => undefined);
    throw error;
  }
}
