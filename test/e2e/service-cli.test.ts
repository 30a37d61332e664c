import assert from 'node:assert/strict';
import { chmod, readFile, stat, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { execa } from 'execa';
import { pino } from 'pino';
import { startEncoder } from '../../src/encode/encoder.ts';
import { DEFAULT_UNIT, renderUnit } from '../../src/service/unit-file.ts';
import { writeLightProfile } from '../helpers/light-profile.ts';
import { ROOT, startAppliance } from '../helpers/run.ts';
import { scratchDirectories } from '../helpers/scratch.ts';

const scratch = scratchDirectories('service-cli');

describe('installing and checking the service', { timeout: 120_000 }, () => {
  it('systemd/appliance.service is the unit install-service writes for /opt/appliance, and systemd-analyze verifies it', async () => {
    assert.equal(await readFile(join(ROOT, 'systemd', 'appliance.service'), 'utf8'), renderUnit(DEFAULT_UNIT));
    const unit = renderUnit(DEFAULT_UNIT);
    for (const line of [
      'Type=notify',
      'NotifyAccess=all',
      'Restart=always',
      'RestartPreventExitStatus=2',
      'KillMode=mixed',
      'ProtectSystem=strict',
      'ProtectHome=yes',
      'PrivateTmp=yes',
      'ProtectProc=invisible',
      'NoNewPrivileges=yes',
      'SupplementaryGroups=video audio',
      'DevicePolicy=closed',
      'StateDirectory=appliance',
      'ConfigurationDirectory=appliance',
    ]) {
      assert.ok(unit.split('\n').includes(line), line);
    }
    assert.ok(!/^MemoryDenyWriteExecute/m.test(unit), 'V8 needs writable executable memory');
    assert.match(unit, /^WatchdogSec=\d+$/m);
    assert.match(unit, /^TimeoutStopSec=\d+$/m);
    assert.match(unit, /^EnvironmentFile=-\/etc\/appliance\/secrets\.env$/m);
  });

  it("install-service writes the unit with this install's absolute paths (verified), a starter configuration and secrets file, and keeps an existing configuration", async () => {
    const dir = await scratch();
    const config = join(dir, 'etc', 'appliance.yaml');
    await writeFile(join(dir, 'keep.yaml'), 'source: test\n');
    const run = await startAppliance(process.execPath, [
      'install-service',
      '--unit-dir',
      join(dir, 'units'),
      '--config',
      config,
      '--no-user',
    ]);
    assert.equal(run.exitCode, 0, String(run.stderr));
    const unitFile = join(dir, 'units', 'appliance.service');
    const unit = await readFile(unitFile, 'utf8');
    const exec = /^ExecStart=(\S+) --max-semi-space-size=2 (\S+) start --config (\S+)$/m.exec(unit);
    assert.ok(exec, unit);
    assert.equal(exec[1], process.execPath, 'the pinned Node');
    assert.match(exec[2]!, /\/(dist\/appliance\.js|src\/appliance\.ts)$/);
    assert.equal(exec[3], config);
    const verify = await execa('systemd-analyze', ['verify', unitFile], { reject: false });
    assert.equal(verify.exitCode, 0, String(verify.stderr));
    assert.equal(String(verify.stderr).trim(), '', 'no warnings');
    assert.match(await readFile(config, 'utf8'), /^metrics: 127\.0\.0\.1:9464/m);
    assert.equal((await stat(join(dir, 'etc', 'secrets.env'))).mode & 0o777, 0o600);
    // The starter configuration is one "appliance start" takes.
    const dry = await startAppliance(process.execPath, ['start', '--config', config, '--source', 'test', '--dry-run']);
    assert.equal(dry.exitCode, 0, String(dry.stderr));
    const again = await startAppliance(process.execPath, [
      'install-service',
      '--unit-dir',
      join(dir, 'units'),
      '--config',
      join(dir, 'keep.yaml'),
      '--no-user',
    ]);
    assert.equal(again.exitCode, 0);
    assert.equal(await readFile(join(dir, 'keep.yaml'), 'utf8'), 'source: test\n', 'an existing configuration is kept');
  });

  it('a bad configuration exits 2 (the unit does not restart it), naming the file and key', async () => {
    const dir = await scratch();
    const config = join(dir, 'appliance.yaml');
    await writeFile(config, 'source: test\nsegdru: 1\n');
    const run = await startAppliance(process.execPath, ['start', '--config', config]);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /appliance\.yaml: unknown key "segdru"; accepted: .*segdur/);
    const missing = await startAppliance(process.execPath, ['start', '--config', join(dir, 'nope.yaml')]);
    assert.equal(missing.exitCode, 2);
    assert.match(String(missing.stderr), /--config .*nope\.yaml: cannot read it \(no such file\)/);
    await writeFile(config, 'source: test\noutput: /nowhere\nmetrics: 127.0.0.1:9464\nsegdur: 2\ncdur: 0.5\n');
    const dry = await startAppliance(process.execPath, [
      'start',
      '--config',
      config,
      '--output',
      join(dir, 'out', 'live.mpd'),
      '--dry-run',
    ]);
    assert.equal(dry.exitCode, 0, String(dry.stderr));
    assert.match(String(dry.stdout), /segdur: 2/);
    assert.match(
      String(dry.stdout),
      new RegExp(join(dir, 'out').replace(/\//g, '\\/')),
      "the command line's output wins",
    );
  });

  it('check is red on an ffmpeg without libx264 and on an origin that cannot be reached, green on this machine', async () => {
    const dir = await scratch();
    const fake = join(dir, 'ffmpeg');
    // The real ffmpeg, except that its encoder list lacks libx264.
    await writeFile(
      fake,
      `#!/bin/sh\nif [ "$1" = "-hide_banner" ] && [ "$2" = "-encoders" ]; then ffmpeg "$@" | grep -v libx264; exit 0; fi\nexec ffmpeg "$@"\n`,
    );
    await chmod(fake, 0o755);
    const red = await startAppliance(process.execPath, [
      'check',
      '--ffmpeg',
      fake,
      '--output',
      'http://127.0.0.1:9/live/live.mpd',
      '--no-cpu',
    ]);
    assert.equal(red.exitCode, 1, String(red.stdout) + String(red.stderr));
    assert.match(String(red.stdout), /✗ ffmpeg encoders: missing libx264/);
    assert.match(String(red.stdout), /http:\/\/127\.0\.0\.1:9\/live\/live\.mpd\n {2}✗ not reachable/);
    assert.match(String(red.stdout), /✗ something above would stop a start/);
    // A ladder any machine keeps up with, busy or not: the subject is the verdicts, not this box's speed.
    const light = await writeLightProfile(dir);
    const green = await startAppliance(process.execPath, ['check', '--json', '--profile', light]);
    assert.equal(green.exitCode, 0, String(green.stdout));
    const report = JSON.parse(String(green.stdout)) as { ok: boolean; findings: { check: string; verdict: string }[] };
    assert.equal(report.ok, true);
    assert.deepEqual(
      report.findings.map((f) => f.check),
      ['ffmpeg', 'ffmpeg encoders', 'clock', 'cpu'],
    );
    assert.notEqual(report.findings.find((f) => f.check === 'cpu')!.verdict, 'fail');
  });

  it('a secret in a URL ffmpeg prints is redacted in the log and in the error report', async () => {
    let logged = '';
    const logger = pino(
      { level: 'debug' },
      {
        write: (line: string) => {
          logged += line;
        },
      },
    );
    const plan = {
      args: [
        '-hide_banner',
        '-loglevel',
        'level+info',
        '-i',
        'http://operator:hunter2-secret@127.0.0.1:9/feed.ts?token=tok3n-secret',
        '-f',
        'null',
        '-',
      ],
      tracks: [],
      progressFd: 1,
    };
    const encoder = startEncoder({ ffmpegPath: 'ffmpeg', plan: plan as never, logger });
    const exit = await encoder.exited;
    assert.notEqual(exit.code, 0);
    assert.match(logged, /operator:\[redacted\]@127\.0\.0\.1/);
    assert.match(logged, /"level":50/, "ffmpeg's error logged as an error");
    for (const text of [logged, exit.stderrTail.join('\n')]) {
      assert.ok(!text.includes('hunter2') && !text.includes('tok3n'), text);
    }
  });
});
