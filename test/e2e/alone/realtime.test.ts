import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa, type ResultPromise } from 'execa';
import { XMLParser } from 'fast-xml-parser';
import { descendants } from '../../helpers/proc.ts';
import { BIN, logLines, ROOT, systemNode, waitForLogField } from '../../helpers/run.ts';

// A box short of CPU: the appliance (so ffmpeg) and a busy loop share one core, about half a core
// for a ladder that needs more, on any machine. The encoder falls behind; the controller raises
// encoder-behind, tells players the truth, steps down, and steps back up once the loop is gone.

const CORE = '0';
const LIMIT_MS = 90_000;

async function waitForLog(log: () => string, matches: (line: Record<string, unknown>) => boolean, what: string) {
  for (const started = Date.now(); Date.now() - started < LIMIT_MS; await sleep(250)) {
    const line = logLines(log()).find(matches);
    if (line) return line;
  }
  throw new Error(`no ${what} within ${LIMIT_MS / 1000} s:\n${log().slice(-3000)}`);
}

const parser = new XMLParser({ ignoreAttributes: false, attributeNamePrefix: '' });

describe('real time under CPU pressure', { timeout: 300_000 }, () => {
  it('pinned to a core a busy loop shares: alarm, later latency promises, a step down, and back up once the loop ends', async () => {
    const stateDir = await mkdtemp(join(tmpdir(), 'appliance-realtime-'));
    const appliance: ResultPromise = execa(
      'taskset',
      // A state directory of its own: no session of an earlier run on this port is continued.
      [
        '-c',
        CORE,
        await systemNode(),
        BIN,
        'start',
        '--adapt',
        // Each second's verdict in the log the test leaves (test-output/realtime.log).
        '--log-level',
        'debug',
        '--listen',
        '127.0.0.1:0',
        '--duration',
        '200',
        '--state-dir',
        stateDir,
      ],
      { reject: false, timeout: 280_000 },
    );
    let log = '';
    appliance.stderr?.on('data', (piece: Buffer) => (log += piece.toString()));
    let busy: ResultPromise | undefined;
    try {
      const url = await waitForLogField(appliance, 'serving', 'url', 60_000);
      assert.ok(url, log.slice(-2000));
      const base = new URL(url).origin;
      busy = execa('taskset', ['-c', CORE, 'bash', '-c', 'while :; do :; done'], { reject: false });

      const down = await waitForLog(
        () => log,
        (l) => l['msg'] === 'the encoder is behind real time: stepping down',
        'step down',
      );
      // Straight to the first level the measured speed can hold: the faster preset, and maybe 20 fps.
      assert.ok(Number(down['level']) >= 1, `level ${down['level']}`);
      assert.match(String(down['givesUp']), /^x264 preset superfast → ultrafast/);
      const status = (await (await fetch(`${base}/status`)).json()) as {
        alarms: { name: string; detail: string }[];
        realtime: { level: number; latencyMarginMs: number };
      };
      assert.ok(
        status.alarms.some((a) => a.name === 'encoder-behind' && /behind real time/.test(a.detail)),
        JSON.stringify(status.alarms),
      );
      // While chunks come late, the manifests say so (from the next segment boundary).
      let target = 0.8;
      let asto = 0.9;
      for (let i = 0; i < 40 && target <= 0.8; i++, await sleep(250)) {
        const mpd = parser.parse(await (await fetch(`${base}/live.mpd`)).text()) as { MPD: Record<string, any> };
        target = Number(mpd.MPD['ServiceDescription']?.['Latency']?.['target']) / 1000;
        const periods = [mpd.MPD['Period']].flat();
        asto = Number([periods.at(-1)['AdaptationSet']].flat()[0]['SegmentTemplate']['availabilityTimeOffset']);
      }
      const decisions = () =>
        logLines(log)
          .filter((l) => l['component'] === 'realtime' || l['alarm'] === 'encoder-behind')
          .map((l) => `${l['time']} ${l['msg']} ${l['marginMs'] ?? l['level'] ?? ''}`)
          .join('\n');
      assert.ok(
        target > 0.8 && asto < 0.9,
        `the MPD promises a later latency (target ${target} s, asto ${asto} s):\n${decisions()}`,
      );
      const playlist = await (await fetch(`${base}/live_720p.m3u8`)).text();
      const holdBack = Number(/PART-HOLD-BACK=([\d.]+)/.exec(playlist)?.[1]);
      assert.ok(holdBack > 0.8, `PART-HOLD-BACK ${holdBack}`);

      // The restart at the new level: a new period announced ahead, the encoder restarted before it.
      await waitForLog(
        () => log,
        (l) => l['msg'] === 'ffmpeg restarted with other settings',
        'restart at the lower level',
      );
      // A top rendition no longer encoded: not offered to new players, its playlist goes on with gaps.
      const shedTop = /1080p no longer encoded/.test(String(down['givesUp']));
      if (shedTop) {
        let top = '';
        for (let i = 0; i < 40 && !top.includes('#EXT-X-GAP'); i++, await sleep(250))
          top = await (await fetch(`${base}/live_1080p.m3u8`)).text();
        assert.match(top, /#EXT-X-GAP\n#EXTINF:[\d.]+,\n1080p\/\d+\.m4s/, top);
        assert.doesNotMatch(await (await fetch(`${base}/live.m3u8`)).text(), /live_1080p/);
      }
      busy.kill('SIGKILL');
      await busy;
      busy = undefined;
      // The CPU comes back: the loop gone and every core the appliance's again (on a CI machine
      // whose other cores are busy too, one shared core would not hold level 0).
      const cores = `0-${availableParallelism() - 1}`;
      for (const pid of [appliance.pid!, ...(await descendants(appliance.pid!))])
        await execa('taskset', ['-a', '-p', '-c', cores, String(pid)], { reject: false });
      const freed = Date.now();
      const deepest = () =>
        Math.max(
          ...logLines(log)
            .filter((l) => l['msg'] === 'the encoder is behind real time: stepping down')
            .map((l) => Number(l['level'])),
        );
      const up = await waitForLog(
        () => log,
        (l) => l['msg'] === 'the encoder has had headroom: stepping back up' && Number(l['level']) < deepest(),
        'step back up',
      );
      process.stderr.write(
        `# realtime: down to level ${down['level']}, giving up ${down['givesUp']} (${down['why']}), deepest ${deepest()}; up to level ${up['level']} ${Math.round((Date.parse(String(up['time'])) - freed) / 1000)} s after the loop ended\n`,
      );
      await waitForLog(
        () => log,
        (l) => l['alarm'] === 'encoder-behind' && String(l['msg']).startsWith('alarm cleared'),
        'alarm cleared',
      );
      // Nothing missing in the rendition every level keeps: every segment of its playlist is there.
      const after = await (await fetch(`${base}/live_720p.m3u8`)).text();
      assert.match(after, /#EXT-X-DISCONTINUITY/, 'each level is a period: a discontinuity in HLS');
      const segments = [...after.matchAll(/^(?:720p\/)?(\d+)\.m4s$/gm)].map((m) => BigInt(m[1]!));
      assert.ok(segments.length >= 10, `${segments.length} segments listed`);
      for (let i = 1; i < segments.length; i++)
        assert.equal(segments[i], segments[i - 1]! + 1n, `segment ${segments[i]} follows ${segments[i - 1]}`);
      for (const n of segments.slice(-25)) {
        const response = await fetch(`${base}/720p/${n}.m4s`);
        assert.equal(response.status, 200, `720p/${n}.m4s`);
        await response.arrayBuffer();
      }
      if (shedTop) {
        // Every variant's media sequence numbers name the same media, gaps and all.
        const top = await (await fetch(`${base}/live_1080p.m3u8`)).text();
        const sequence = (text: string) => /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(text)?.[1];
        const latest = await (await fetch(`${base}/live_720p.m3u8`)).text();
        assert.equal(sequence(top), sequence(latest), 'the same first segment');
        const count = (text: string, tag: RegExp) => text.match(tag)?.length ?? 0;
        assert.equal(count(top, /#EXT-X-DISCONTINUITY\n/g), count(latest, /#EXT-X-DISCONTINUITY\n/g));
      }
    } finally {
      await mkdir(join(ROOT, 'test-output'), { recursive: true });
      await writeFile(join(ROOT, 'test-output', 'realtime.log'), log).catch(() => undefined);
      busy?.kill('SIGKILL');
      await busy;
      if (appliance.pid && appliance.exitCode === null) process.kill(appliance.pid, 'SIGTERM');
      await appliance;
      await rm(stateDir, { recursive: true, force: true });
    }
  });
});
