import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { parseConfigFile } from '../../src/cli/config-file.ts';
import { mergeOptionValues, parseStartArgs, START_OPTION_SPECS } from '../../src/cli/args.ts';
import { clockFinding, cpuFinding, uploadFinding } from '../../src/cli/check-system.ts';
import { combinedSpeed, decodeSpeed } from '../../src/cli/check-decode.ts';
import { hiddenBySandbox } from '../../src/cli/install-service.ts';
import { profileSchema } from '../../src/config/schema.ts';
import { audioDetectorFilters, detectorEvent, videoDetectorChain } from '../../src/encode/detectors.ts';
import { parseFfmpegLine, redactSecrets } from '../../src/encode/ffmpeg-log.ts';
import { humanLine } from '../../src/log.ts';
import { AlarmTracker } from '../../src/service/alarms.ts';
import { hostFigures, linuxCpuTemperatures, parseMeminfo, parseMillidegrees } from '../../src/service/host-sampler.ts';
import { NotifyPlan } from '../../src/service/systemd-notify.ts';
import { statusLine, Telemetry } from '../../src/service/telemetry.ts';
import { UplinkMonitor } from '../../src/service/uplink.ts';
import { ConfigError } from '../../src/errors.ts';
import { ShedState, withoutShed } from '../../src/packager/shed.ts';

const profile = profileSchema.parse({
  name: 'ultra-ll',
  segdur: 1,
  cdur: 0.1,
  asto: 0.9,
  idr: 1,
  video: {
    framerate: 30,
    preset: 'superfast',
    vbvBuffer: 0.5,
    renditions: [
      { id: '1080p', width: 1920, height: 1080, bitrate: '6M' },
      { id: '720p', width: 1280, height: 720, bitrate: '3M' },
    ],
  },
  audio: { codec: 'aac', bitrate: '128k', samplerate: 48000, channels: 2 },
  latency: { target: 0.8, min: 0.5, max: 1.5, playbackRate: { min: 0.96, max: 1.04 } },
  alarms: { black: { seconds: 2 } },
});

describe('the configuration file', () => {
  it('takes start options by flag name, paths from its own directory, one value or a list', () => {
    const values = parseConfigFile(
      'source: device\noutput: https://o.example/live/live.mpd\nsegdur: 1\nheader-file: headers\nprofile: ll\nretry-devices: false\n',
      '/etc/appliance/appliance.yaml',
      START_OPTION_SPECS,
    );
    assert.deepEqual(values, {
      source: 'device',
      output: ['https://o.example/live/live.mpd'],
      segdur: '1',
      'header-file': '/etc/appliance/headers',
      profile: 'll',
      'retry-devices': false,
    });
    const options = parseStartArgs(['--segdur', '2'], values);
    assert.equal(options.segdur, 2, 'the command line wins');
    assert.equal(options.source, 'device');
    assert.equal(options.retryDevices, false, 'false in the file is --no-retry-devices');
    assert.deepEqual(
      parseStartArgs(['--output', '/tmp/x/live.mpd'], values).outputs,
      ['/tmp/x/live.mpd'],
      "a list on the command line replaces the file's",
    );
    assert.equal(parseStartArgs(['--retry-devices'], values).retryDevices, true);
    assert.deepEqual(mergeOptionValues({ dual: false }, { dual: true }), { dual: true });
  });

  it('refuses unknown keys, wrong types and secrets, naming the file and key', () => {
    assert.throws(
      () => parseConfigFile('sorce: device\n', 'a.yaml', START_OPTION_SPECS),
      (e: Error) =>
        e instanceof ConfigError && /a\.yaml: unknown key "sorce"; accepted: profile, source/.test(e.message),
    );
    assert.throws(
      () => parseConfigFile('loop: 3\n', 'a.yaml', START_OPTION_SPECS),
      /a\.yaml: loop: expected true or false, found 3/,
    );
    assert.throws(
      () => parseConfigFile('token: abc\n', 'a.yaml', START_OPTION_SPECS),
      /"token": secrets do not go in the configuration file; put APPLIANCE_PUSH_TOKEN/,
    );
    assert.throws(() => parseConfigFile('- a\n', 'a.yaml', START_OPTION_SPECS), /expected a mapping/);
    assert.throws(
      () => parseConfigFile('source: [a\n', 'a.yaml', START_OPTION_SPECS),
      /a\.yaml: not valid YAML at line/,
    );
    assert.throws(() => parseConfigFile('dry-run: true\n', 'a.yaml', START_OPTION_SPECS), /unknown key "dry-run"/);
  });

  it('--metrics takes HOST:PORT or off', () => {
    assert.deepEqual(parseStartArgs(['--metrics', '0.0.0.0:9464']).metrics, { host: '0.0.0.0', port: 9464 });
    assert.deepEqual(parseStartArgs(['--metrics', '[::1]:0']).metrics, { host: '::1', port: 0 });
    assert.equal(parseStartArgs(['--metrics', 'off']).metrics, false);
    assert.equal(parseStartArgs([]).metrics, undefined);
    assert.throws(() => parseStartArgs(['--metrics', '9464']), /--metrics "9464": expected HOST:PORT/);
  });
});

describe("ffmpeg's stderr", () => {
  it('is read by its level tag; an untagged line continues the one before', () => {
    assert.deepEqual(parseFfmpegLine('[libx264 @ 0x55aa] [warning] too many B-frames'), {
      level: 'warning',
      text: '[libx264 @ 0x55aa] too many B-frames',
      message: 'too many B-frames',
    });
    assert.equal(parseFfmpegLine('[error] pipe:3: Broken pipe').level, 'error');
    assert.equal(parseFfmpegLine('[q] command received. Exiting.', 'info').level, 'info');
  });

  it('has the secrets of URLs, query strings and headers redacted', () => {
    const line = redactSecrets(
      '[tcp @ 0x1] http://user:hunter2@origin:8080/a.ts?x=1&token=s3cret&sig=abc: refused; srt://h:1?mode=caller&passphrase=horse-battery; Authorization: Bearer eyJhbGc.x.y',
    );
    for (const secret of ['hunter2', 's3cret', 'abc:', 'horse-battery', 'eyJhbGc'])
      assert.ok(!line.includes(secret), `${secret} in ${line}`);
    assert.match(line, /http:\/\/user:\[redacted\]@origin:8080\/a\.ts\?x=1&token=\[redacted\]&sig=\[redacted\]/);
  });

  it("carries the detectors' marks, in plain or exponent notation", () => {
    assert.deepEqual(detectorEvent('lavfi.black_start=1.79526e+09'), {
      kind: 'black',
      edge: 'start',
      mediaSeconds: 1.79526e9,
    });
    assert.deepEqual(detectorEvent('lavfi.silence_end=12.5'), { kind: 'silence', edge: 'end', mediaSeconds: 12.5 });
    assert.equal(detectorEvent('lavfi.freezedetect.freeze_duration=3'), undefined);
    assert.equal(detectorEvent('frame:60 pts:60 pts_time:2'), undefined);
  });

  it('detectors follow the profile and can be turned off', () => {
    assert.match(
      videoDetectorChain(profile.alarms)!,
      /^scale=160:90:flags=fast_bilinear,blackdetect=d=0:pix_th=0\.1,freezedetect=n=-60dB:d=5,.*,nullsink$/,
    );
    assert.equal(
      videoDetectorChain({
        ...profile.alarms,
        black: { ...profile.alarms.black, enabled: false },
        freeze: { ...profile.alarms.freeze, enabled: false },
      }),
      undefined,
    );
    assert.deepEqual(
      audioDetectorFilters({ ...profile.alarms, silence: { ...profile.alarms.silence, enabled: false } }),
      [],
    );
  });
});

describe('alarms', () => {
  it('black is raised after its duration; silence and freeze when ffmpeg marks them; a new run clears them', () => {
    const alarms = new AlarmTracker(profile.alarms);
    assert.deepEqual(alarms.onDetector({ kind: 'black', edge: 'start', mediaSeconds: 0 }, 0), []);
    assert.deepEqual(alarms.tick(1999), []);
    assert.deepEqual(
      alarms.tick(2000).map((c) => [c.name, c.raised]),
      [['black', true]],
    );
    assert.deepEqual(alarms.tick(3000), [], 'raised once');
    assert.deepEqual(
      alarms.onDetector({ kind: 'black', edge: 'end', mediaSeconds: 0 }, 3500).map((c) => [c.name, c.raised]),
      [['black', false]],
    );
    assert.deepEqual(alarms.onDetector({ kind: 'black', edge: 'start', mediaSeconds: 0 }, 4000), []);
    assert.deepEqual(
      alarms.onDetector({ kind: 'black', edge: 'end', mediaSeconds: 0 }, 4500),
      [],
      'a short black is no alarm',
    );
    assert.deepEqual(
      alarms.onDetector({ kind: 'silence', edge: 'start', mediaSeconds: 0 }, 5000).map((c) => c.name),
      ['silence'],
    );
    assert.deepEqual(
      alarms.reset().map((c) => [c.name, c.raised]),
      [['silence', false]],
    );
  });

  it('the uplink: alarm when the backlog outgrows a segment plus 2 s, shed after the grace, restore after a clear spell, wait longer when it did not hold', () => {
    const uplink = new UplinkMonitor({
      segdur: 1,
      ladderBitsPerSecond: 9_128_000,
      shedBitsPerSecond: 3_128_000,
      shed: true,
      graceSeconds: 10,
      restoreSeconds: 30,
    });
    const secondsOf = (rate: number, s: number) => (rate * s) / 8;
    assert.deepEqual(uplink.update(0, secondsOf(9_128_000, 1), 9e6), [], 'a segment in flight is normal');
    assert.deepEqual(
      uplink.update(1000, secondsOf(9_128_000, 3.5), 5e6).map((a) => a.type),
      ['alarm'],
    );
    assert.deepEqual(uplink.update(10_999, secondsOf(9_128_000, 6), 5e6), []);
    assert.deepEqual(
      uplink.update(11_000, secondsOf(9_128_000, 6), 5e6).map((a) => a.type),
      ['shed'],
    );
    assert.equal(uplink.shed, true);
    assert.deepEqual(uplink.update(20_000, secondsOf(3_128_000, 1.8), 5e6), [], 'draining: neither slow nor clear');
    assert.deepEqual(uplink.update(21_000, secondsOf(3_128_000, 1), 4e6), []);
    assert.deepEqual(uplink.update(50_999, secondsOf(3_128_000, 1), 4e6), []);
    assert.deepEqual(
      uplink.update(51_000, secondsOf(3_128_000, 1), 4e6).map((a) => a.type),
      ['alarm', 'restore'],
    );
    // Slow again right after the restore: shed again, and the next restore waits twice as long.
    uplink.update(52_000, secondsOf(9_128_000, 4), 5e6);
    assert.deepEqual(
      uplink.update(62_000, secondsOf(9_128_000, 4), 5e6).map((a) => a.type),
      ['shed'],
    );
    assert.equal(uplink.restoreSeconds, 60);
  });

  it('without shedding (one rendition, or alarms.uplink.shed false) only the alarm', () => {
    const uplink = new UplinkMonitor({
      segdur: 1,
      ladderBitsPerSecond: 1e6,
      shedBitsPerSecond: 1e6,
      shed: false,
      graceSeconds: 1,
      restoreSeconds: 1,
    });
    uplink.update(0, 1e6, undefined);
    assert.deepEqual(uplink.update(5000, 1e6, undefined), []);
    assert.deepEqual(
      uplink.update(6000, 0, undefined).map((a) => a.type),
      ['alarm'],
    );
  });
});

describe('systemd notify', () => {
  it('READY once media is out, STATUS when it changed (at most every 5 s), WATCHDOG every half WatchdogSec only while chunks flow', () => {
    const plan = new NotifyPlan(4_000_000);
    assert.equal(plan.tickMs, 1000);
    assert.deepEqual(plan.next(0, { ready: false, flowing: false, status: 'starting' }), ['STATUS=starting']);
    assert.deepEqual(
      plan.next(1000, { ready: false, flowing: false, status: 'starting' }),
      [],
      'no watchdog before chunks flow',
    );
    assert.deepEqual(
      plan.next(1500, { ready: false, flowing: true, status: 'starting' }),
      [],
      'chunks flowing before the first init is out: still no watchdog before READY',
    );
    assert.deepEqual(plan.next(2000, { ready: true, flowing: true, status: 'live' }), [
      'READY=1',
      'STATUS=live',
      'WATCHDOG=1',
    ]);
    assert.deepEqual(plan.next(3000, { ready: true, flowing: true, status: 'live 2' }), []);
    assert.deepEqual(plan.next(4000, { ready: true, flowing: true, status: 'live 2' }), ['WATCHDOG=1']);
    assert.deepEqual(
      plan.next(6000, { ready: true, flowing: false, status: 'live 2' }),
      [],
      'chunks stopped: no watchdog, systemd restarts a wedged run',
    );
    assert.deepEqual(plan.next(7000, { ready: true, flowing: false, status: 'live 3' }), ['READY=1', 'STATUS=live 3']);
    // WatchdogSec=2: pings every second, asked every half second, so a tick 1 ms early costs
    // half a second, and no two pings are 2 s apart (systemd's limit).
    const tight = new NotifyPlan(2_000_000);
    assert.equal(tight.tickMs, 500);
    const pings = [0, 499, 999, 1499, 1998, 2497, 2996].filter((at) =>
      tight.next(at, { ready: true, flowing: true, status: 'live' }).includes('WATCHDOG=1'),
    );
    assert.deepEqual(pings, [0, 1499, 2996]);
    assert.deepEqual(
      new NotifyPlan(undefined).next(0, { ready: true, flowing: true, status: 's' }),
      ['READY=1', 'STATUS=s'],
      'no WatchdogSec: no pings',
    );
  });
});

describe('telemetry', () => {
  it("health follows the source's media, not the slate; goodput needs half a window of evidence", () => {
    const t = new Telemetry({ profile: 'p', source: 'test', segdur: 1, now: 0 });
    assert.deepEqual(t.health(0), { healthy: false, state: 'starting', why: 'no media from the source yet' });
    t.chunkProduced(false, 1000);
    assert.equal(t.health(1500).healthy, true);
    t.slate(true, 2000);
    t.chunkProduced(true, 4000);
    const health = t.health(4100);
    assert.equal(health.healthy, false);
    assert.match(health.why, /no media from the source for 3\.1 s \(slate on air\)/);
    assert.equal(t.chunksFlowing(4100), true, 'slate chunks keep the pipeline alive');
    assert.equal(t.chunksFlowing(8000), false);
    t.output('https://o/live.mpd', 'push', 0);
    assert.equal(t.goodput('https://o/live.mpd', 4000), undefined);
    t.push(
      {
        type: 'acknowledged',
        output: 'https://o/live.mpd',
        track: '720p',
        object: 'segment',
        segment: 1n,
        bytes: 1_000_000,
        attempts: 0,
        ackMs: 80,
      },
      5000,
    );
    assert.equal(t.goodput('https://o/live.mpd', 6000), (1_000_000 * 8) / 6, 'over the 6 s seen so far');
    t.alarm('black', true, 'the picture is black', 6000);
    const line = statusLine(t.status(6000));
    assert.match(line, /^slate · .*origin ok 1\.3 Mb\/s · ALARM black$/);
  });
});

describe('the machine, as appliance check reports it', () => {
  it('clock, CPU and upload verdicts', () => {
    assert.equal(clockFinding({ offsetMs: 5, source: 'chronyc tracking' }, profile).verdict, 'ok');
    assert.equal(clockFinding({ offsetMs: 50, source: 'x' }, profile).verdict, 'warn');
    assert.equal(clockFinding({ offsetMs: -150, source: 'x' }, profile).verdict, 'fail', 'ultra-ll refuses to start');
    assert.equal(
      clockFinding({ offsetMs: -150, source: 'http://origin/time', remote: true }, profile).verdict,
      'warn',
      'only a remote clock disagrees: start runs on',
    );
    assert.equal(clockFinding(undefined, profile).verdict, 'warn');
    assert.equal(cpuFinding(0.8, profile).verdict, 'fail');
    assert.match(
      cpuFinding(0.8, profile).text,
      /with the clock, the detectors and audio\) encodes at 0\.80x real time: not real time, not even at its last real-time step/,
    );
    const step = { level: 1, change: 'x264 preset superfast → ultrafast', speed: 1.3 };
    const stepped = cpuFinding(0.8, profile, step);
    assert.equal(stepped.verdict, 'fail', 'steps are off unless asked for');
    assert.match(
      stepped.text,
      /with realtime\.adapt: true \(or start --adapt\) a start would step down to level 1 \(x264 preset superfast → ultrafast: 1\.30x\)/,
    );
    const adapting = { ...profile, realtime: { ...profile.realtime, adapt: true } };
    assert.equal(cpuFinding(0.8, adapting, step).verdict, 'warn', 'a start keeps real time one step down');
    assert.match(cpuFinding(0.8, adapting, step).text, /a start steps down to level 1/);
    const camera = { decode: { format: 'mjpeg', width: 1920, height: 1080, framerate: 30 }, speed: 5.5 };
    assert.match(
      cpuFinding(1.8, profile, undefined, camera).text,
      /with the clock, the detectors and audio, and the camera's mjpeg decode \(1920x1080 at 30 fps, 5\.50x alone\)\) encodes at 1\.80x/,
    );
    assert.equal(combinedSpeed(2, 2), 1, 'two halves of a CPU');
    assert.ok(Math.abs(combinedSpeed(2.39, 5.5) - 1.666) < 0.01);
    assert.equal(combinedSpeed(2, 0), 0);
    assert.equal(cpuFinding(1.2, profile).verdict, 'warn');
    assert.equal(cpuFinding(2, profile).verdict, 'ok');
    assert.equal(uploadFinding('https://o', 5e6, profile).verdict, 'warn');
    assert.match(
      uploadFinding('https://o', 5e6, profile).text,
      /upload 5\.0 Mb\/s for a 9\.13 Mb\/s ladder: too slow; the top rendition will be shed/,
    );
    assert.equal(uploadFinding('https://o', 20e6, profile).verdict, 'ok');
  });

  it("host figures: no sensor is no temperature; the install paths systemd's sandbox would hide", () => {
    assert.equal(
      hostFigures({ currentLoad: 50 }, { total: 8, active: 2 }, { main: null, max: null, cores: [] })
        .temperatureCelsius,
      undefined,
    );
    assert.equal(
      hostFigures({ currentLoad: 50 }, { total: 8, active: 2 }, { main: 51, max: 60, cores: [55] }).temperatureCelsius,
      60,
    );
    assert.equal(
      hostFigures({ currentLoad: 50 }, { total: 8, active: 2 }, { main: 51, max: 60, cores: [55] }).cpuLoad,
      0.5,
    );
    assert.deepEqual(
      hiddenBySandbox(['/opt/appliance/dist/appliance.js', '/home/me/appliance/dist/appliance.js', '/tmp/x/node']),
      ['/home/me/appliance/dist/appliance.js is under ProtectHome=yes', '/tmp/x/node is under PrivateTmp=yes'],
    );
  });

  it("/status: the memory each push output holds (now and at most) and the process's own memory", () => {
    const t = new Telemetry({ profile: 'p', source: 'test', segdur: 1, now: 0 });
    t.output('http://o/live.mpd', 'push', 0);
    t.push({ type: 'backlog', output: 'http://o/live.mpd', bytes: 10, heldBytes: 4_000_000, peakHeldBytes: 6_000_000 });
    t.push({ type: 'backlog', output: 'http://o/live.mpd', bytes: 0, heldBytes: 262_144, peakHeldBytes: 6_000_000 });
    const status = t.status(1000);
    assert.equal(status.outputs[0]!.heldBytes, 262_144, 'what it holds now');
    assert.equal(status.outputs[0]!.peakHeldBytes, 6_000_000, 'the most it ever held');
    assert.ok(status.memory.rssBytes > 0 && status.memory.heapUsedBytes > 0 && status.memory.arrayBuffersBytes >= 0);
    assert.ok(status.memory.heapUsedBytes <= status.memory.heapTotalBytes);
  });

  it('memory from /proc/meminfo, without a process; anything else is no reading', () => {
    assert.deepEqual(parseMeminfo('MemTotal:       16000 kB\nMemFree:  1000 kB\nMemAvailable:   12000 kB\n'), {
      total: 16000 * 1024,
      active: 4000 * 1024,
    });
    assert.equal(parseMeminfo('MemTotal: 16000 kB\n'), undefined);
    assert.equal(parseMeminfo('MemTotal: lots\nMemAvailable: 1 kB\n'), undefined);
  });

  it('CPU temperatures from sysfs, without a process: thermal zones and CPU hwmon chips; junk and other chips are no reading', async () => {
    for (const [text, celsius] of [
      ['48000\n', 48],
      ['0', undefined],
      ['-5000', undefined],
      ['200000', undefined],
      ['', undefined],
      ['n/a', undefined],
      ['1e5', undefined],
    ] as const)
      assert.equal(parseMillidegrees(text), celsius, JSON.stringify(text));
    const root = await mkdtemp(join(tmpdir(), 'appliance-sysfs-'));
    try {
      const put = async (path: string, text: string) => {
        await mkdir(join(root, path, '..'), { recursive: true });
        await writeFile(join(root, path), text);
      };
      await put('thermal/thermal_zone0/temp', '41000\n');
      await put('thermal/thermal_zone1/temp', 'garbage');
      await put('thermal/cooling_device0/temp', '99000');
      await put('hwmon/hwmon0/name', 'coretemp\n');
      await put('hwmon/hwmon0/temp1_input', '52000');
      await put('hwmon/hwmon0/temp2_input', '50000');
      await put('hwmon/hwmon0/temp1_max', '100000');
      await put('hwmon/hwmon1/name', 'nvme\n');
      await put('hwmon/hwmon1/temp1_input', '70000');
      assert.deepEqual((await linuxCpuTemperatures(root)).sort(), [41, 50, 52]);
      assert.deepEqual(await linuxCpuTemperatures(join(root, 'missing')), [], 'a VM without sensors');
    } finally {
      await rm(root, { recursive: true, force: true });
    }
  });

  it('logs for a terminal: time, level, message, fields', () => {
    assert.equal(
      humanLine(
        '{"level":40,"time":"2026-11-21T12:00:01.234Z","app":"appliance","msg":"alarm: the picture is black","alarm":"black","n":2}',
        false,
      ),
      '12:00:01.234 WARN  alarm: the picture is black alarm=black n=2',
    );
  });
});

describe('shedding in the manifest', () => {
  const rep = (id: string) => ({
    id,
    codecs: 'avc1.64001f',
    bandwidth: 1,
    width: 2,
    height: 2,
    frameRate: 30,
    sar: '1:1',
    timescale: 90000,
  });
  const audio = [
    { id: 'audio', codecs: 'mp4a.40.2', bandwidth: 1, samplingRate: 48000, channels: 2, timescale: 48000 },
  ];
  const model = {
    video: [rep('1080p'), rep('720p')],
    audio,
    periodStart: 100n,
    earlierPeriods: [],
  } as unknown as Parameters<typeof withoutShed>[0];

  it('a period begins where a rendition is shed and where it comes back; in between it is left out', () => {
    const state = new ShedState();
    state.shed('1080p', 110n);
    assert.equal(state.covers('1080p', 109n), false);
    assert.equal(state.covers('1080p', 110n), true);
    const open = withoutShed(model, state.spans);
    assert.deepEqual([...(open.earlierPeriods ?? []).map((p) => p.start), open.periodStart], [100n, 110n]);
    assert.deepEqual(
      open.earlierPeriods![0]!.video.map((r) => r.id),
      ['1080p', '720p'],
    );
    assert.deepEqual(
      open.video.map((r) => r.id),
      ['720p'],
    );
    state.restore('1080p', 120n);
    assert.equal(state.covers('1080p', 120n), false);
    const closed = withoutShed(model, state.spans);
    assert.deepEqual(
      [
        ...(closed.earlierPeriods ?? []).map((p) => [p.start, p.video.length]),
        [closed.periodStart, closed.video.length],
      ],
      [
        [100n, 2],
        [110n, 1],
        [120n, 2],
      ],
    );
    state.forgetBefore(121n);
    assert.deepEqual(state.spans, []);
    assert.equal(withoutShed(model, []), model);
  });
});

describe("appliance check: a camera's compressed video decoded before the encode", () => {
  it('makes a clip in the camera format and decodes it as fast as ffmpeg can; formats it cannot make are not measured', async () => {
    const speed = await decodeSpeed('ffmpeg', { format: 'mjpeg', width: 640, height: 360, framerate: 30 }, 1);
    assert.ok(speed !== undefined && speed > 0, `decode speed ${speed}`);
    assert.equal(
      await decodeSpeed('ffmpeg', { format: 'rawvideo-of-no-kind', width: 640, height: 360, framerate: 30 }, 1),
      undefined,
    );
  });
});
