import { rename, writeFile } from 'node:fs/promises';

/** Writes `bytes` to `path` so that readers see the old file or the new one, never a part. */
export async function writeAtomically(path: string, bytes: string | Uint8Array): Promise<void> {
  const temporary = `${path}.tmp-${process.pid}`;
  await writeFile(temporary, bytes);
  await rename(temporary, path);
}
