import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { dirname, join, normalize, relative } from 'node:path';
import { it } from 'node:test';
import { fileURLToPath } from 'node:url';

// The folders of src/ import each other without a cycle (the entry point, src/appliance.ts, aside;
// the shared modules at the top of src/ import no folder), so each layer can be read, and tested,
// before the ones that use it.

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

async function sourceFiles(dir: string): Promise<string[]> {
  const entries = await readdir(dir, { withFileTypes: true });
  const nested = await Promise.all(
    entries.map((e) =>
      e.isDirectory() ? sourceFiles(join(dir, e.name)) : e.name.endsWith('.ts') ? [join(dir, e.name)] : [],
    ),
  );
  return nested.flat();
}

const folderOf = (file: string) => {
  const path = relative(SRC, file);
  return path.includes('/') ? path.slice(0, path.indexOf('/')) : '.';
};

it('src/ folders import each other without a cycle', async () => {
  const edges = new Map<string, Set<string>>();
  for (const file of await sourceFiles(SRC)) {
    if (relative(SRC, file) === 'appliance.ts') continue;
    const text = await readFile(file, 'utf8');
    for (const [, specifier] of text.matchAll(/from '(\.{1,2}\/[^']+)'/g)) {
      const from = folderOf(file);
      const to = folderOf(normalize(join(dirname(file), specifier!)));
      if (from !== to) edges.set(from, (edges.get(from) ?? new Set()).add(to));
    }
  }
  const cycles: string[] = [];
  const visit = (start: string, node: string, path: string[]) => {
    for (const next of edges.get(node) ?? []) {
      if (next === start) cycles.push([...path, start].join(' → '));
      else if (!path.includes(next)) visit(start, next, [...path, next]);
    }
  };
  for (const start of edges.keys()) visit(start, start, [start]);
  assert.deepEqual(cycles, [], `folder cycles: ${cycles.join('; ')}`);
  assert.ok((edges.get('cli')?.size ?? 0) > 3, 'the graph was read');
});
