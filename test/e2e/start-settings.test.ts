import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { sourceSpecOf } from '../../src/capture/source.ts';
import { parseStartArgs } from '../../src/cli/args.ts';
import { resolveStart } from '../../src/cli/start-settings.ts';
import { profileFile } from '../../src/config/profile.ts';

// resolveStart with the machine's ffmpeg (it checks the binary's version, encoders and filters).
describe('appliance start settings, resolved', () => {
  it("defaults: ultra-ll, the profile's source (resolved later: else test), served on 127.0.0.1:8080", async () => {
    const o = parseStartArgs([]);
    const resolved = await resolveStart({ ...o, dryRun: true }, process.cwd(), {});
    assert.equal(sourceSpecOf(resolved.source), 'test');
    assert.equal(resolved.retryDevices, false, 'no retry outside systemd');
    assert.equal(
      (await resolveStart({ ...o, dryRun: true }, process.cwd(), { INVOCATION_ID: 'x' })).retryDevices,
      true,
      'retry under systemd',
    );
  });
  it("a profile's source is used without --source, and --source overrides it", async () => {
    const dir = await mkdtemp(join(tmpdir(), 'appliance-args-'));
    try {
      const file = join(dir, 'p.yaml');
      await writeFile(
        file,
        (await readFile(profileFile('ultra-ll'), 'utf8')).replace(
          'name: ultra-ll',
          'name: ultra-ll\nsource: test:mandelbrot',
        ),
      );
      assert.equal(
        sourceSpecOf((await resolveStart({ ...parseStartArgs(['--profile', file]), dryRun: true }, dir, {})).source),
        'test:mandelbrot',
      );
      assert.equal(
        sourceSpecOf(
          (
            await resolveStart(
              { ...parseStartArgs(['--profile', file, '--source', 'test:sync']), dryRun: true },
              dir,
              {},
            )
          ).source,
        ),
        'test:sync',
      );
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });
});
