import assert from 'node:assert/strict';
import { join } from 'node:path';
import { it } from 'node:test';
import { execa } from 'execa';
import { ROOT } from '../helpers/run.ts';

it('the whole project type-checks (tsc --noEmit, strict)', { timeout: 120_000 }, async () => {
  const result = await execa(
    join(ROOT, 'node_modules', '.bin', 'tsc'),
    ['--noEmit', '-p', join(ROOT, 'tsconfig.json')],
    { reject: false },
  );
  assert.equal(result.exitCode, 0, `${result.stdout}${result.stderr}`);
});
