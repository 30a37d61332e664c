import assert from 'node:assert/strict';
import { readFile, writeFile } from 'node:fs/promises';
import type { TestContext } from 'node:test';

/**
 * Compares a whole document with `test/fixtures/golden/NAME`. With UPDATE_GOLDEN=1 it writes the
 * file instead and the test reports itself skipped ("written"): a run that writes never also
 * passes as a check. Review the diff of what it wrote.
 */
export async function matchesGolden(t: TestContext, name: string, text: string): Promise<void> {
  const url = new URL(`../fixtures/golden/${name}`, import.meta.url);
  if (process.env['UPDATE_GOLDEN']) {
    await writeFile(url, text);
    t.skip(`${name} written: review its diff`);
    return;
  }
  const golden = await readFile(url, 'utf8').catch(() => undefined);
  assert.ok(golden !== undefined, `${name}: no golden file yet (UPDATE_GOLDEN=1 writes it)`);
  assert.equal(text, golden, `${name} differs from its golden file`);
}
