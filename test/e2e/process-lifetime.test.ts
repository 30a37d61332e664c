import assert from 'node:assert/strict';
import { readdir, stat } from 'node:fs/promises';
import { join } from 'node:path';
import { before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { analyseTrack, readTrack } from '../helpers/media.ts';
import { writeLightProfile } from '../helpers/light-profile.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { logLines, startAppliance, systemNode } from '../helpers/run.ts';

// What is left when the appliance is stopped from outside: signals are the subject, so one light
// rendition (360p) leaves the CPU to the tests beside this one.

const scratch = scratchDirectories('lifetime');
let profile: string;
before(async () => {
  profile = await writeLightProfile(await scratch());
});

const childrenOf = async (pid: number) => {
  const { stdout } = await execa('pgrep', ['-P', String(pid)], { reject: false });
  return stdout.split('\n').filter(Boolean).map(Number);
};
const alive = (pid: number) =>
  stat(`/proc/${pid}`).then(
    () => true,
    () => false,
  );

/** Waits (at most 30 s) until the directory output holds `count` whole segments of the 360p track. */
async function waitForSegments(dir: string, count: number) {
  for (let i = 0; i < 150; i++) {
    const names = await readdir(join(dir, '360p')).catch(() => [] as string[]);
    if (names.filter((n) => /^\d+\.m4s$/.test(n)).length >= count) return;
    await sleep(200);
  }
  assert.fail(`${count} segments of 360p in ${dir} within 30 s`);
}

describe('process lifetime', { timeout: 90_000 }, () => {
  it('a launcher killed by SIGKILL leaves no appliance and no ffmpeg behind, and the files readable', async () => {
    const dir = await scratch();
    // No pipes to the launcher: an orphaned appliance holding them would hang the test runner.
    const launcher = startAppliance(
      await systemNode(),
      ['start', '--profile', profile, '--output', join(dir, 'live.mpd')],
      { stdout: 'ignore', stderr: 'ignore' },
    );
    const pids: number[] = [];
    try {
      for (let i = 0; i < 50 && pids.length < 2; i++) {
        await sleep(200);
        const [appliance] = await childrenOf(launcher.pid!);
        const [ffmpeg] = appliance ? await childrenOf(appliance) : [];
        if (appliance && ffmpeg) pids.push(appliance, ffmpeg);
      }
      assert.equal(pids.length, 2, 'found the appliance and its ffmpeg');
      await waitForSegments(dir, 2);
    } finally {
      process.kill(launcher.pid!, 'SIGKILL');
    }
    await launcher;
    for (let i = 0; i < 50 && (await Promise.all(pids.map(alive))).some(Boolean); i++) await sleep(200);
    const survivors = (await Promise.all(pids.map(async (pid) => ((await alive(pid)) ? [pid] : [])))).flat();
    for (const pid of survivors) process.kill(pid, 'SIGKILL');
    assert.deepEqual(survivors, [], 'the appliance and its ffmpeg stopped');
    const report = await analyseTrack(await readTrack(dir, '360p'), 1);
    assert.ok(report.samples.length >= 30, `${report.samples.length} frames on disk`);
  });

  it('Ctrl-C (SIGINT to the whole process group) stops cleanly: ffmpeg ends on our request, not on the signal', async () => {
    const dir = await scratch();
    const run = startAppliance(await systemNode(), ['start', '--profile', profile, '--output', join(dir, 'live.mpd')], {
      detached: true,
    });
    try {
      await waitForSegments(dir, 1);
    } finally {
      process.kill(-run.pid!, 'SIGINT');
    }
    const result = await run;
    assert.equal(result.exitCode, 0, String(result.stderr));
    const messages = logLines(String(result.stderr)).map((l) => l['msg']);
    assert.ok(messages.includes('stopped'));
    assert.ok(!messages.includes('ffmpeg did not exit cleanly after stop'), 'ffmpeg exited 0 after q');
  });
});
