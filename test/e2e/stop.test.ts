import assert from 'node:assert/strict';
import { readdir, readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { LIGHT_PAIR, writeLightProfile } from '../helpers/light-profile.ts';
import { waitForSegments } from '../helpers/player.ts';
import { startAppliance, systemNode } from '../helpers/run.ts';
import { scratchDirectories } from '../helpers/scratch.ts';

const scratch = scratchDirectories('stop');
const TOP = LIGHT_PAIR[0]!.id;
const children: { pid?: number | undefined; exitCode: number | null; then: PromiseLike<unknown>['then'] }[] = [];
after(async () => {
  for (const child of children) if (child.pid && child.exitCode === null) process.kill(child.pid, 'SIGTERM');
  await Promise.allSettled(children);
});

describe('appliance stop', { timeout: 120_000 }, () => {
  it('--end ends the stream for viewers (lmsg, ENDLIST, a final MPD) and forgets the session; without a running appliance, exit 2', async () => {
    const dir = await scratch();
    const profile = await writeLightProfile(dir, { renditions: LIGHT_PAIR, tsb: 30 });
    const stateDir = join(dir, 'state');
    const out = join(dir, 'out');
    const node = await systemNode();
    const appliance = startAppliance(node, [
      'start',
      '--profile',
      profile,
      '--output',
      join(out, 'live.mpd'),
      '--state-dir',
      stateDir,
    ]);
    children.push(appliance);
    // A stream with some media to end.
    await waitForSegments(join(out, `live_${TOP}.m3u8`), 2);
    const stop = await startAppliance(node, ['stop', '--end', '--state-dir', stateDir]);
    assert.equal(stop.exitCode, 0, String(stop.stderr));
    const result = await appliance;
    assert.equal(result.exitCode, 0);
    const playlist = await readFile(join(out, `live_${TOP}.m3u8`), 'utf8');
    assert.match(playlist, /#EXT-X-ENDLIST\n$/);
    const mpd = await readFile(join(out, 'live.mpd'), 'utf8');
    assert.match(mpd, /mediaPresentationDuration=/);
    const last = /(\d+)\.m4s\n#EXT-X-ENDLIST/.exec(playlist)![1]!;
    assert.ok((await readFile(join(out, TOP, `${last}.m4s`))).includes('lmsg'), 'the last segment carries lmsg');
    assert.deepEqual(
      await readdir(join(stateDir, 'sessions')).catch(() => []),
      [],
      'an ended stream is not continued by the next start',
    );
    const again = await startAppliance(node, ['stop', '--state-dir', stateDir]);
    assert.equal(again.exitCode, 2);
    assert.match(String(again.stderr), /no running appliance/);
  });
});
