import assert from 'node:assert/strict';
import { mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { createServer } from 'node:net';
import type { AddressInfo } from 'node:net';
import { parse as parseYaml } from 'yaml';
import { setTimeout as sleep } from 'node:timers/promises';
import { runAppliance, startAppliance, systemNode, waitForLogField } from '../helpers/run.ts';

let dir: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-cli-'));
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

const exists = (path: string) =>
  stat(path).then(
    () => true,
    () => false,
  );

describe('clear errors and the documented exit codes', { timeout: 120_000 }, () => {
  it('APPLIANCE_FFMPEG pointing at nothing: exit 2, says how to install ffmpeg', async () => {
    const run = await runAppliance(['start', '--duration', '2', '--output', join(dir, 'a', 'live.mpd')], {
      env: { APPLIANCE_FFMPEG: join(dir, 'no-such-ffmpeg') },
    });
    assert.equal(run.exitCode, 2);
    assert.match(
      String(run.stderr),
      /^appliance: ffmpeg from APPLIANCE_FFMPEG .*no-such-ffmpeg: it does not run as ffmpeg/,
    );
    assert.match(String(run.stderr), /Debian\/Ubuntu: sudo apt-get install ffmpeg/);
  });

  it('--ffmpeg naming something that is not ffmpeg: exit 2', async () => {
    const run = await runAppliance(['start', '--dry-run', '--ffmpeg', '/bin/true']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /ffmpeg from --ffmpeg \/bin\/true: it does not run as ffmpeg/);
  });

  it('a bad flag: exit 2', async () => {
    const run = await runAppliance(['start', '--segdru', '1']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /Unknown option '--segdru'/);
  });

  it('an unknown command: exit 2', async () => {
    const run = await runAppliance(['stream']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /unknown command "stream"; available: start/);
  });

  it('an unknown profile: exit 2', async () => {
    const run = await runAppliance(['start', '--profile', 'turbo', '--dry-run']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /unknown profile "turbo": expected one of ultra-ll, ll, standard/);
  });

  it('an invalid profile file: exit 2, naming file, field and value', async () => {
    const file = join(dir, 'bad.yaml');
    await writeFile(
      file,
      'name: bad\nsegdur: 1\ncdur: 0.1\nasto: 0.9\nidr: 1\nvideo: { framerate: 30, preset: placebo, vbvBuffer: 0.5, renditions: [] }\n',
    );
    const run = await runAppliance(['start', '--profile', file, '--dry-run']);
    assert.equal(run.exitCode, 2);
    assert.match(
      String(run.stderr),
      new RegExp(`${file.replace(/[.]/g, '\\.')}: video\\.preset: "placebo" is not allowed; expected one of`),
    );
    assert.match(String(run.stderr), /video\.renditions: \[\] is not allowed; expected at least one rendition/);
    assert.match(String(run.stderr), /audio: missing/);
  });

  it('impossible overrides: exit 2 with the reason', async () => {
    const run = await runAppliance(['start', '--segdur', '1', '--asto', '1', '--dry-run']);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /asto 1 s must be less than segdur 1 s/);
  });

  it('a media budget too small for the served window: exit 2, saying how much would do', async () => {
    const run = await runAppliance(['start', '--memory', '20M', '--dry-run']);
    assert.equal(run.exitCode, 2);
    assert.match(
      String(run.stderr),
      /--memory 20M: this ladder .* needs at least \d+M .* give at least \d+M, or a shorter --tsb/,
    );
    const ok = await runAppliance(['start', '--memory', '200M', '--dry-run']);
    assert.equal(ok.exitCode, 0, String(ok.stderr));
    const settings = parseYaml(String(ok.stdout).split('# ffmpeg command line')[0]!) as Record<string, any>;
    assert.equal(settings['memory'].budgetBytes, 200 * 2 ** 20);
    assert.equal(settings['memory'].pushBytes, 200 * 2 ** 20 - settings['memory'].storeWindowBytes);
  });

  it('an unwritable output directory: exit 2, nothing started', async () => {
    const file = join(dir, 'a-file');
    await writeFile(file, 'x');
    const run = await runAppliance(['start', '--duration', '2', '--output', join(file, 'sub', 'live.mpd')]);
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /output directory .*a-file\/sub is not writable: .*a-file is not a directory/);
  });

  it('ffmpeg dying at start: exit 1 with its last stderr lines and a hint', async () => {
    // A fontconfig setup without fonts, as on a minimal box: drawtext, and so ffmpeg, fails at start.
    const fontsConf = join(dir, 'fonts.conf');
    await writeFile(
      fontsConf,
      `<?xml version="1.0"?>\n<fontconfig><dir>${dir}/no-fonts</dir><cachedir>${dir}/font-cache</cachedir></fontconfig>\n`,
    );
    const run = await runAppliance(['start', '--duration', '5', '--output', join(dir, 'b', 'live.mpd')], {
      env: { FONTCONFIG_FILE: fontsConf },
    });
    assert.equal(run.exitCode, 1, String(run.stderr));
    assert.match(
      String(run.stderr),
      /appliance: ffmpeg exited with code 1 at start, before any media; its last messages:/,
    );
    assert.match(String(run.stderr), /Cannot find a valid font for the family monospace/);
    assert.match(String(run.stderr), /hint: .*install one \(Debian\/Ubuntu: apt-get install fonts-dejavu-core\)/);
  });

  it('--dry-run prints the resolved settings and the exact command line, touching nothing', async () => {
    const out = join(dir, 'dry', 'live.mpd');
    const run = await runAppliance([
      'start',
      '--dry-run',
      '--profile',
      'll',
      '--cdur',
      '0.2',
      '--asto',
      '1.9',
      '--output',
      out,
    ]);
    assert.equal(run.exitCode, 0, String(run.stderr));
    const [settingsText, commandText] = String(run.stdout).split('# ffmpeg command line');
    const settings = parseYaml(settingsText!) as Record<string, any>;
    assert.deepEqual(settings['timing'], { segdur: 2, cdur: 0.2, asto: 1.9, idr: 1, tsb: 30 });
    assert.equal(settings['profile'].name, 'll');
    assert.deepEqual(
      settings['tracks'].map((t: { id: string }) => t.id),
      ['1080p', '720p', 'audio'],
    );
    assert.equal(settings['warnings'].length, 1);
    assert.match(
      settings['warnings'][0],
      /^asto 1\.9 s is more than segdur − cdur = 1\.8 s: players would ask for a segment before its first chunk exists$/,
    );
    const command = commandText!.split('\n')[1]!;
    assert.match(command, new RegExp(`^${settings['ffmpeg'].path} -hide_banner `));
    assert.match(command, /-frag_duration 200000 pipe:3/);
    assert.equal(await exists(join(dir, 'dry')), false, 'dry run creates no directory');
  });

  it('appliance origin refuses a bad --max-body', async () => {
    const run = await runAppliance(['origin', '--max-body', 'lots'], { env: { APPLIANCE_INGEST_TOKEN: 't' } });
    assert.equal(run.exitCode, 2);
    assert.match(String(run.stderr), /--max-body "lots": expected a size such as 64M/);
  });

  it('appliance origin refuses to start without an ingest token, never taking one on the command line', async () => {
    const run = await runAppliance(['origin', '--listen', '127.0.0.1:0'], { env: { APPLIANCE_INGEST_TOKEN: '' } });
    assert.equal(run.exitCode, 2);
    assert.match(
      String(run.stderr),
      /the origin needs an ingest token: set APPLIANCE_INGEST_TOKEN, or give --token-file FILE or --tokens FILE \(never on the command line\)/,
    );
    const flag = await runAppliance(['origin', '--token', 'secret']);
    assert.equal(flag.exitCode, 2);
    assert.match(String(flag.stderr), /Unknown option '--token'/);
  });

  it('appliance origin takes a push, serves it, keeps it in --dir, and stops on SIGTERM', async () => {
    const tokenFile = join(dir, 'token');
    await writeFile(tokenFile, 'file-token\n');
    const origin = startAppliance(await systemNode(), [
      'origin',
      '--listen',
      '127.0.0.1:0',
      '--token-file',
      tokenFile,
      '--dir',
      join(dir, 'kept'),
      '--max-body',
      '1k',
    ]);
    try {
      let log = '';
      origin.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
      const url = await waitForLogField(origin, 'origin listening', 'url');
      assert.ok(url, 'the origin announced where it listens');
      const put = await fetch(new URL('live/live.mpd', url), {
        method: 'PUT',
        body: '<MPD/>',
        headers: { Authorization: 'Bearer file-token' },
      });
      assert.equal(put.status, 201);
      const get = await fetch(new URL('live/live.mpd', url));
      assert.equal(get.headers.get('content-type'), 'application/dash+xml');
      assert.equal(await get.text(), '<MPD/>');
      await sleep(100);
      assert.equal(await readFile(join(dir, 'kept', 'live', 'live.mpd'), 'utf8'), '<MPD/>');
      const big = await fetch(new URL('live/1.m4s', url), {
        method: 'PUT',
        body: 'x'.repeat(1001),
        headers: { Authorization: 'Bearer file-token' },
      });
      assert.equal(big.status, 413, '--max-body 1k');
      const del = await fetch(new URL('live/live.mpd', url), {
        method: 'DELETE',
        headers: { Authorization: 'Bearer file-token' },
      });
      assert.equal(del.status, 204);
      await sleep(100);
      assert.equal(await exists(join(dir, 'kept', 'live', 'live.mpd')), false, 'deleted from --dir too');
      assert.doesNotMatch(log, /file-token/, 'the token never reaches the log');
    } finally {
      process.kill(origin.pid!, 'SIGTERM');
    }
    assert.equal((await origin).exitCode, 0);
  });

  it('a --listen address in use: exit 2 at once, naming the flag', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const { port } = blocker.address() as AddressInfo;
    try {
      const started = Date.now();
      const run = await runAppliance(['start', '--listen', `127.0.0.1:${port}`, '--duration', '5']);
      assert.equal(run.exitCode, 2, String(run.stderr));
      assert.match(
        String(run.stderr),
        new RegExp(`--listen 127\\.0\\.0\\.1:${port}: cannot listen \\(EADDRINUSE\\); another program uses that port`),
      );
      assert.ok(Date.now() - started < 5000, 'exits at once, leaving nothing running');
    } finally {
      blocker.close();
    }
  });
});
