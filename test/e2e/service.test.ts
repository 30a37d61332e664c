import assert from 'node:assert/strict';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import { execa } from 'execa';
import { logLines, ROOT, startAppliance } from '../helpers/run.ts';
import { scratchDirectories } from '../helpers/scratch.ts';
import { startTestOrigin } from '../helpers/push-origin.ts';
import { startTcpProxy } from '../helpers/tcp-proxy.ts';

const scratch = scratchDirectories('service');

/** A profile for long runs on 2 cores, with alarm and uplink settings short enough for a test. */
async function profileFile(dir: string, renditions: string, alarms: string): Promise<string> {
  const file = join(dir, 'service.yaml');
  await writeFile(
    file,
    `name: service-test
segdur: 1
cdur: 0.1
asto: 0.9
idr: 1
tsb: 60
video: { framerate: 30, preset: ultrafast, vbvBuffer: 0.5, renditions: [${renditions}] }
audio: { codec: aac, bitrate: 128k, samplerate: 48000, channels: 2 }
latency: { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } }
alarms: ${alarms}
`,
  );
  return file;
}

/** Collects a running appliance's log lines as they come. */
function collectLog(child: ReturnType<typeof startAppliance>) {
  let text = '';
  child.stderr?.on('data', (piece: Buffer) => (text += piece.toString()));
  return () => logLines(text);
}

async function waitFor<T>(
  what: string,
  probe: () => T | undefined | Promise<T | undefined>,
  timeoutMs: number,
): Promise<T> {
  for (const started = Date.now(); Date.now() - started < timeoutMs; await sleep(100)) {
    const value = await probe();
    if (value !== undefined) return value;
  }
  throw new Error(`timed out waiting for ${what}`);
}

const getJson = async (url: string) => {
  const response = await fetch(url);
  return { status: response.status, body: (await response.json()) as Record<string, unknown> };
};

/** Prometheus text → sample name with labels → value. */
function samples(text: string): Map<string, number> {
  return new Map(
    text
      .split('\n')
      .filter((l) => l && !l.startsWith('#'))
      .map((l) => {
        const at = l.lastIndexOf(' ');
        return [l.slice(0, at), Number(l.slice(at + 1))];
      }),
  );
}

describe('running as a service', { timeout: 240_000 }, () => {
  it('tells systemd READY, STATUS and WATCHDOG; serves plausible metrics; /healthz goes red while ffmpeg is stopped and green when it is back', async () => {
    const dir = await scratch();
    const socket = join(dir, 'notify.sock');
    const receiver = execa('python3', [join(ROOT, 'test', 'helpers', 'notify-receiver.py'), socket], {
      reject: false,
      buffer: false,
    });
    let received = '';
    receiver.stdout?.on('data', (piece: Buffer) => (received += piece.toString()));
    const messages = () =>
      received
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l) as { at?: number; message?: string })
        .filter((m) => m.message);
    const profile = await profileFile(
      dir,
      '{ id: 360p, width: 640, height: 360, bitrate: 800k }',
      '{ silence: { enabled: false } }',
    );
    let app: ReturnType<typeof startAppliance> | undefined;
    try {
      await waitFor('the notify socket', () => (received.includes('listening') ? true : undefined), 5000);
      const startedAt = Date.now();
      app = startAppliance(
        process.execPath,
        [
          'start',
          '--profile',
          profile,
          '--output',
          join(dir, 'out', 'live.mpd'),
          '--state-dir',
          join(dir, 'state'),
          '--metrics',
          '127.0.0.1:0',
          '--duration',
          '40',
        ],
        {
          env: { NOTIFY_SOCKET: socket, WATCHDOG_USEC: '2000000' },
        },
      );
      const log = collectLog(app);
      const metricsUrl = await waitFor(
        'the metrics address',
        () => log().find((l) => l['msg'] === 'serving metrics')?.['metrics'] as string | undefined,
        30_000,
      );
      const base = metricsUrl.replace(/\/metrics$/, '');
      const ready = await waitFor(
        'READY=1',
        () => messages().find((m) => m.message!.split('\n').includes('READY=1')),
        30_000,
      );
      const firstChunk = log().find((l) => l['msg'] === 'first segment');
      assert.ok(firstChunk, 'READY comes once media reached the output');
      assert.ok(
        !messages().some((m) => m.message!.includes('WATCHDOG=1') && m.at! < ready.at!),
        'no watchdog ping before READY',
      );
      assert.match(ready.message!, /STATUS=(live|starting)/);
      assert.equal((await getJson(`${base}/healthz`)).status, 200);
      const pings = await waitFor(
        'five watchdog pings',
        () => {
          const sent = messages().filter((m) => m.message!.includes('WATCHDOG=1'));
          return sent.length >= 5 ? sent : undefined;
        },
        20_000,
      );
      // systemd kills a unit whose pings are further apart than WatchdogSec (2 s here).
      const gaps = pings.slice(1).map((m, i) => m.at! - pings[i]!.at!);
      assert.ok(Math.max(...gaps) < 2000, `watchdog pings ${gaps.join(', ')} ms apart at WatchdogSec=2`);
      await waitFor(
        'a one-line status with the frame rate',
        () => messages().find((m) => /STATUS=live · \d+\.\d fps/.test(m.message!)),
        20_000,
      );

      const chunksKey = `appliance_chunks_total{track="360p",output="${join(dir, 'out')}"}`;
      const metrics = await waitFor(
        'three seconds of chunks, the encoder at its rate and the host sampled, in the metrics',
        async () => {
          const scraped = samples(await (await fetch(metricsUrl)).text());
          const settled =
            (scraped.get(chunksKey) ?? 0) > 30 &&
            (scraped.get('appliance_encoder_fps') ?? 0) > 20 &&
            scraped.has('appliance_host_memory_total_bytes');
          return settled ? scraped : undefined;
        },
        20_000,
      );
      const elapsed = (Date.now() - startedAt) / 1000;
      const chunks = metrics.get(chunksKey)!;
      assert.ok(chunks > 30 && chunks < elapsed * 10 + 10, `${chunks} chunks in ${elapsed} s`);
      const bytes = metrics.get(`appliance_chunk_bytes_total{track="360p",output="${join(dir, 'out')}"}`)!;
      assert.ok(
        bytes / (chunks * 0.1) > (0.3 * 800_000) / 8 && bytes / (chunks * 0.1) < (2 * 800_000) / 8,
        `${bytes} bytes: about 800 kb/s`,
      );
      const fps = metrics.get('appliance_encoder_fps')!;
      assert.ok(fps > 20 && fps < 40, `fps ${fps}`);
      const delay =
        metrics.get('appliance_chunk_delay_seconds_sum{track="360p"}')! /
        metrics.get('appliance_chunk_delay_seconds_count{track="360p"}')!;
      assert.ok(delay > 0 && delay < 1, `mean chunk delay ${delay} s`);
      assert.equal(metrics.get('appliance_slate_active'), 0);
      assert.equal(metrics.get('appliance_alarm{alarm="black"}'), 0);
      assert.ok(metrics.get('appliance_process_resident_memory_bytes')! > 10e6, 'process figures');
      assert.ok(metrics.get('appliance_host_memory_total_bytes')! > 100e6, 'host figures');
      const status = (await getJson(`${base}/status`)).body;
      assert.equal(status['state'], 'live');
      assert.equal(status['profile'], 'service-test');

      // ffmpeg stopped (SIGSTOP): media stops, the slate stands in, health turns red; the
      // supervisor kills the stalled ffmpeg and starts another: green again.
      const ffmpegPid = log().find((l) => l['msg'] === 'ffmpeg started')?.['pid'] as number;
      process.kill(ffmpegPid, 'SIGSTOP');
      const red = await waitFor(
        '/healthz 503',
        async () => {
          const health = await getJson(`${base}/healthz`);
          return health.status === 503 ? health.body : undefined;
        },
        10_000,
      );
      assert.match(String(red['why']), /no media from the source/);
      assert.ok(
        messages()
          .filter((m) => m.message!.includes('WATCHDOG=1'))
          .at(-1)!.at! >
          Date.now() - 2500,
        'slate still flows: the watchdog is still fed',
      );
      await waitFor(
        '/healthz 200 again',
        async () => ((await getJson(`${base}/healthz`)).status === 200 ? true : undefined),
        20_000,
      );
      const after = samples(await (await fetch(metricsUrl)).text());
      assert.ok(after.get('appliance_slate_seconds_total')! > 0.5, 'slate time counted');
      assert.ok(after.get('appliance_encoder_restarts_total')! >= 1, 'the restart counted');
      app.kill('SIGTERM');
      const run = await app;
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-2000));
      assert.ok(
        messages().some((m) => m.message!.includes('STOPPING=1')),
        'STOPPING=1 on the way out',
      );
    } finally {
      if (app?.exitCode === null) app.kill('SIGKILL');
      receiver.kill('SIGTERM');
      await receiver;
    }
  });

  it('raises and clears silence, black and frozen-picture alarms on a crafted file, and shows them on /status for the preview page', async () => {
    const dir = await scratch();
    const file = join(dir, 'crafted.mp4');
    // 0–2 s normal, 2–5 s black, 5–6 s normal, 6–10 s one frame repeated (frozen), then normal to 14 s;
    // the tone is silent from 3 s to 8 s.
    await execa('ffmpeg', [
      '-hide_banner',
      '-loglevel',
      'error',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=640x360:rate=30:duration=10',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000:duration=14',
      '-filter_complex',
      "[0:v]drawbox=enable='between(t,2,5)':color=black:t=fill,loop=loop=120:size=1:start=180[v];[1:a]volume=enable='between(t,3,8)':volume=0[a]",
      '-map',
      '[v]',
      '-map',
      '[a]',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-g',
      '30',
      '-c:a',
      'aac',
      '-y',
      file,
    ]);
    const profile = await profileFile(
      dir,
      '{ id: 360p, width: 640, height: 360, bitrate: 800k }',
      '{ silence: { seconds: 2 }, black: { seconds: 1 }, freeze: { seconds: 2 } }',
    );
    const app = startAppliance(
      process.execPath,
      [
        'start',
        '--profile',
        profile,
        '--source',
        `file:${file}`,
        '--listen',
        '127.0.0.1:0',
        '--state-dir',
        join(dir, 'state'),
      ],
      { timeout: 90_000 },
    );
    const log = collectLog(app);
    const seen = new Set<string>();
    try {
      const page = await waitFor(
        'the built-in server',
        () => log().find((l) => l['msg'] === 'serving')?.['page'] as string | undefined,
        30_000,
      );
      for (const started = Date.now(); app.exitCode === null && Date.now() - started < 40_000; await sleep(250)) {
        const status = await fetch(`${page}status`)
          .then((r) => r.json() as Promise<{ alarms: { name: string }[] }>)
          .catch(() => undefined);
        for (const alarm of status?.alarms ?? []) seen.add(alarm.name);
      }
      const run = await app;
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-2000));
    } finally {
      if (app.exitCode === null) app.kill('SIGKILL');
    }
    const alarms = log().filter((l) => l['alarm']);
    for (const name of ['silence', 'black', 'freeze']) {
      assert.ok(
        alarms.some((l) => l['alarm'] === name && l['level'] === 40 && String(l['msg']).startsWith('alarm:')),
        `${name} raised: ${JSON.stringify(alarms)}`,
      );
      assert.ok(
        alarms.some((l) => l['alarm'] === name && String(l['msg']).startsWith('alarm cleared')),
        `${name} cleared`,
      );
      assert.ok(seen.has(name), `${name} on /status (seen: ${[...seen]})`);
    }
    assert.ok(!alarms.some((l) => l['alarm'] === 'uplink'), 'no uplink alarm without an origin');
  });

  it('sheds the top rendition at a segment boundary while the origin is throttled, and restores it after', async () => {
    const dir = await scratch();
    const origin = await startTestOrigin();
    const proxy = await startTcpProxy(origin.port, { adjustable: true });
    const profile = await profileFile(
      dir,
      '{ id: 540p, width: 960, height: 540, bitrate: 2M }, { id: 180p, width: 320, height: 180, bitrate: 200k }',
      '{ uplink: { graceSeconds: 2, restoreSeconds: 4 } }',
    );
    const app = startAppliance(
      process.execPath,
      [
        'start',
        // The uplink's shedding is the subject: the CPU's (a loaded machine) would change the ladder too.
        '--no-adapt',
        '--profile',
        profile,
        '--output',
        `http://127.0.0.1:${proxy.port}/live/live.mpd`,
        '--state-dir',
        join(dir, 'state'),
        '--duration',
        '60',
      ],
      { env: { APPLIANCE_PUSH_TOKEN: 'test-token' }, timeout: 120_000 },
    );
    const log = collectLog(app);
    const completeSegments = (track: string) =>
      origin.store
        .paths()
        .filter(
          (p) => p.startsWith(`live/${track}/`) && p.endsWith('.m4s') && origin.store.get(p)?.state === 'complete',
        ).length;
    try {
      await waitFor('the first segment', () => log().find((l) => l['msg'] === 'first segment'), 30_000);
      // The uplink is judged on what went through it: a few segments at full rate first.
      await waitFor('three 540p segments at the origin', () => completeSegments('540p') >= 3 || undefined, 30_000);
      // ~0.8 Mb/s: far below the 2.3 Mb/s ladder, above what is left without 540p.
      proxy.setRate(100);
      const shed = await waitFor(
        'shedding',
        () => log().find((l) => String(l['msg']).includes('is not sent to this origin')),
        30_000,
      );
      assert.equal(shed['rendition'], '540p');
      const boundary = BigInt(shed['fromSegment'] as string);
      assert.ok(
        log().some((l) => l['alarm'] === 'uplink' && String(l['msg']).startsWith('alarm:')),
        'the uplink alarm came first',
      );
      await waitFor(
        'the multivariant playlist without 540p',
        () => {
          const playlist = origin.store.get('live/live.m3u8');
          const text = playlist?.state === 'complete' ? new TextDecoder().decode(Buffer.concat(playlist.chunks)) : '';
          return text.includes('180p') && !text.includes('540p') ? true : undefined;
        },
        10_000,
      );
      proxy.setRate(undefined);
      const restored = await waitFor(
        'restoring',
        () => log().find((l) => String(l['msg']).includes('is sent again')),
        40_000,
      );
      const back = BigInt(restored['fromSegment'] as string);
      await waitFor(
        '540p again from the restore boundary',
        () => origin.store.get(`live/540p/${back + 1n}.m4s`)?.state === 'complete' || undefined,
        30_000,
      );
      app.kill('SIGTERM');
      const run = await app;
      assert.equal(run.exitCode, 0, String(run.stderr).slice(-2000));
      const stored = (track: string) =>
        new Set(
          origin.store
            .paths()
            .filter((p) => p.startsWith(`live/${track}/`) && p.endsWith('.m4s'))
            .map((p) => BigInt(p.split('/').at(-1)!.replace('.m4s', ''))),
        );
      const top = stored('540p');
      const low = stored('180p');
      for (let n = boundary; n < back; n++) {
        assert.ok(!top.has(n), `540p segment ${n} was not sent while shed`);
        assert.ok(low.has(n), `180p segment ${n} was`);
      }
      assert.ok(top.has(back) && top.has(back + 1n), '540p sent again from the restore boundary');
      assert.ok(top.has(boundary - 1n), '540p sent up to the shed boundary');
      assert.match(
        new TextDecoder().decode(Buffer.concat(origin.store.get('live/live.m3u8')!.chunks)),
        /540p/,
        'the multivariant playlist offers 540p again',
      );
      const push = logLines(String(run.stderr)).find((l) => l['msg'] === 'push')!;
      assert.equal(
        (push['dropped'] as Record<string, number>)['shed'],
        Number(back - boundary),
        'each segment not sent is counted as shed',
      );
      const mpd = new TextDecoder().decode(Buffer.concat(origin.store.get('live/live.mpd')!.chunks));
      assert.ok(
        mpd.includes(`id="${boundary}"`) && mpd.includes(`id="${back}"`),
        'periods begin where 540p was shed and where it came back',
      );
      const shedPeriod = mpd.split('<Period').find((p) => p.includes(`id="${boundary}"`))!;
      assert.ok(
        !shedPeriod.includes('id="540p"') && shedPeriod.includes('id="180p"'),
        'the shed period offers only 180p',
      );
    } finally {
      if (app.exitCode === null) app.kill('SIGKILL');
      await proxy.close();
      await origin.close();
    }
  });
});
