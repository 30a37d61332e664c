import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { listDevices, type RunCommand } from '../../src/capture/devices/list-devices.ts';
import {
  alsaMicrophones,
  parseV4l2CtlDevices,
  parseV4l2CtlFormats,
  parseV4l2ListFormats,
  pulseMicrophones,
  v4l2Cameras,
} from '../../src/capture/devices/linux.ts';
import {
  parseAvfoundationDevices,
  parseAvfoundationModes,
  parseAvfoundationPixelFormats,
} from '../../src/capture/devices/macos.ts';
import {
  parseDshowAudioOptions,
  parseDshowDevices,
  parseDshowVideoOptions,
} from '../../src/capture/devices/windows.ts';
import { parseFfmpegSources } from '../../src/capture/devices/ffmpeg-sources.ts';
import { describeVideoModes, formatDeviceTable } from '../../src/cli/devices.ts';

const fixture = (name: string) => readFile(new URL(`../fixtures/device-listings/${name}`, import.meta.url), 'utf8');
const crlf = (text: string) => text.replace(/\r?\n/g, '\r\n');

describe('device listings: Linux', () => {
  it('ffmpeg -sources: entries, the default mark, and why it could not list', async () => {
    const pulse = parseFfmpegSources(await fixture('pulse-sources.txt'));
    assert.equal(pulse.sources.length, 3);
    assert.deepEqual(pulse.sources.find((s) => s.isDefault)?.id, 'alsa_input.pci-0000_00_1f.3.analog-stereo');
    assert.equal(
      parseFfmpegSources(await fixture('pulse-sources-no-server.captured-here.txt')).problem,
      'Generic error in an external library',
    );
    assert.deepEqual(parseFfmpegSources(await fixture('v4l2-sources-empty.captured-here.txt')).sources, []);
    const dshow = parseFfmpegSources(await fixture('dshow-sources.ffmpeg5plus.txt'));
    assert.deepEqual(
      dshow.sources.map((s) => [s.description, s.media]),
      [
        ['Integrated Camera', ['video']],
        ['Microphone Array (Realtek(R) Audio)', ['audio']],
      ],
    );
  });

  it('v4l2 formats from ffmpeg: sizes per format, stepwise sizes, unsupported formats skipped', async () => {
    const modes = parseV4l2ListFormats(await fixture('v4l2-list_formats-all.txt'));
    assert.deepEqual([...new Set(modes.map((m) => m.format))], ['yuyv422', 'h264', 'mjpeg', 'nv12']);
    assert.equal(modes.filter((m) => m.format === 'yuyv422').length, 19);
    assert.ok(modes.some((m) => m.format === 'mjpeg' && m.compressed && m.width === 1920 && m.height === 1080));
    assert.deepEqual(
      modes.find((m) => m.format === 'nv12'),
      { format: 'nv12', compressed: false, width: 1920, height: 1080, rates: [], stepwise: true },
    );
    assert.ok(
      modes.every((m) => m.rates.length === 0),
      'ffmpeg lists no rates',
    );
  });

  it('v4l2 formats from v4l2-ctl: fourccs mapped to ffmpeg names, with their rates', async () => {
    const modes = parseV4l2CtlFormats(await fixture('v4l2-ctl-list-formats-ext.txt'));
    assert.deepEqual(
      modes.map((m) => `${m.format} ${m.width}x${m.height} ${m.rates.map((r) => r.max).join('/')}`),
      ['yuyv422 640x480 30/15', 'yuyv422 1920x1080 5', 'mjpeg 1920x1080 30/24', 'mjpeg 1280x720 30'],
    );
    const hdmi = parseV4l2CtlFormats(await fixture('v4l2-ctl-list-formats-ext.hdmi-capture-50fps.added.txt'));
    assert.deepEqual(hdmi, [
      { format: 'nv12', compressed: false, width: 1920, height: 1080, rates: [{ min: 1, max: 50 }], stepwise: true },
    ]);
  });

  it('v4l2-ctl --list-devices groups nodes per camera', async () => {
    assert.deepEqual(parseV4l2CtlDevices(await fixture('v4l2-ctl-list-devices.txt')), [
      { name: 'HD Pro Webcam C920', bus: 'usb-0000:00:14.0-1', nodes: ['/dev/video0', '/dev/video1'] },
      { name: 'Integrated Camera: Integrated C', bus: 'usb-0000:00:14.0-8', nodes: ['/dev/video2', '/dev/video3'] },
    ]);
  });

  it('cameras: metadata-only nodes (no formats) are skipped', async () => {
    const withFormats = new Set(['/dev/video0', '/dev/video2']);
    const full = parseV4l2ListFormats(await fixture('v4l2-list_formats-all.txt'));
    const cameras = v4l2Cameras(await fixture('v4l2-sources.two-cameras.added.txt'), (node) =>
      withFormats.has(node) ? full : [],
    );
    assert.deepEqual(
      cameras.map((c) => [c.index, c.id, c.name]),
      [
        [0, '/dev/video0', 'HD Pro Webcam C920'],
        [1, '/dev/video2', 'Integrated Camera: Integrated C'],
      ],
    );
  });

  it('ALSA: hw: cards named from arecord -l; Pulse/PipeWire: formats, default, monitors not for default', async () => {
    const alsa = alsaMicrophones(await fixture('alsa-sources.txt'), await fixture('arecord-l.txt'));
    assert.deepEqual(
      alsa.map((m) => [m.id, m.name]),
      [
        ['hw:CARD=PCH,DEV=0', 'HDA Intel PCH (ALC3246 Analog)'],
        ['hw:CARD=C920,DEV=0', 'HD Pro Webcam C920 (USB Audio)'],
      ],
    );
    assert.deepEqual(
      alsaMicrophones(await fixture('alsa-sources.captured-here.txt')),
      [],
      'the null PCM is no microphone',
    );
    for (const file of ['pactl-list-short-sources.pulseaudio.txt', 'pactl-list-short-sources.pipewire.txt']) {
      const { microphones } = pulseMicrophones(await fixture('pulse-sources.txt'), await fixture(file));
      assert.equal(microphones.length, 3, file);
      assert.ok(microphones[0]!.notForDefault?.includes('monitor'));
      assert.equal(microphones.find((m) => m.isDefault)?.name, 'Built-in Audio Analog Stereo');
      assert.deepEqual(microphones[2]!.modes[0], {
        sampleFormat: file.includes('pipewire') ? 's16le' : 's16le',
        channels: 2,
        sampleRate: 32000,
      });
    }
    const pactlOnly = pulseMicrophones('', await fixture('pactl-list-short-sources.pipewire.txt'));
    assert.deepEqual(pactlOnly.microphones[1]!.modes, [{ sampleFormat: 's32le', channels: 2, sampleRate: 48000 }]);
    assert.match(
      pulseMicrophones(await fixture('pulse-sources-no-server.captured-here.txt')).problem!,
      /Generic error/,
    );
  });
});

describe('device listings: macOS avfoundation', () => {
  it('both log styles; several cameras and microphones; screens not for default', async () => {
    const now = parseAvfoundationDevices(await fixture('avfoundation-list_devices.ffmpeg5-7.txt'));
    assert.deepEqual(
      now.filter((d) => d.kind === 'video').map((d) => [d.id, d.name]),
      [
        ['0', 'FaceTime HD Camera'],
        ['1', 'HD Pro Webcam C920'],
        ['2', 'Capture screen 0'],
      ],
    );
    assert.deepEqual(
      now.filter((d) => d.kind === 'audio').map((d) => d.name),
      ['MacBook Pro Microphone', 'HD Pro Webcam C920', 'Microsoft Teams Audio'],
    );
    assert.match(now[2]!.notForDefault!, /screen/);
    const old = parseAvfoundationDevices(await fixture('avfoundation-list_devices.ffmpeg-pre4.4.txt'));
    assert.deepEqual(
      old.map((d) => `${d.kind} ${d.index} ${d.name}`),
      ['video 0 FaceTime HD Camera (Built-in)', 'video 1 Capture screen 0', 'audio 0 Built-in Microphone'],
    );
  });

  it('modes from "Supported modes", with "Last message repeated" folded lines; pixel formats', async () => {
    const modes = parseAvfoundationModes(await fixture('avfoundation-unsupported-mode.txt'));
    assert.deepEqual(
      modes.map((m) => [m.width, m.height, m.rates]),
      [
        [1920, 1080, [{ min: 5, max: 30 }]],
        [1280, 720, [{ min: 1, max: 30 }]],
        [640, 480, [{ min: 1, max: 30 }]],
      ],
    );
    assert.deepEqual(parseAvfoundationPixelFormats(await fixture('avfoundation-unsupported-pixfmt.txt')), [
      'uyvy422',
      'yuyv422',
      'nv12',
      '0rgb',
      'bgr0',
    ]);
  });
});

describe('device listings: Windows dshow', () => {
  it('ffmpeg ≥ 5.0 style: kinds per device, alternative names, a device both video and audio, (none) skipped', async () => {
    const devices = parseDshowDevices(crlf(await fixture('dshow-list_devices.ffmpeg5plus.txt')));
    assert.deepEqual(
      devices.filter((d) => d.kind === 'video').map((d) => [d.index, d.name]),
      [
        [0, 'Integrated Camera'],
        [1, 'HD Pro Webcam C920'],
        [2, 'Game Capture HD60 S'],
      ],
    );
    assert.deepEqual(
      devices.filter((d) => d.kind === 'audio').map((d) => [d.index, d.name]),
      [
        [0, 'Game Capture HD60 S'],
        [1, 'Microphone Array (Realtek(R) Audio)'],
        [2, 'Microphone (HD Pro Webcam C920)'],
      ],
    );
    assert.ok(devices.find((d) => d.kind === 'video' && d.name === 'Game Capture HD60 S' && d.alsoAudio));
    assert.match(devices[0]!.alternativeName!, /^@device_pnp_\\\\\?\\usb#vid_04f2/);
  });

  it('ffmpeg ≤ 4.4 style: section headers', async () => {
    const devices = parseDshowDevices(await fixture('dshow-list_devices.ffmpeg4.4-and-older.txt'));
    assert.deepEqual(
      devices.map((d) => `${d.kind} ${d.name}`),
      ['video Integrated Webcam', 'video screen-capture-recorder', 'audio Microphone (High Definition Audio Device)'],
    );
    assert.match(devices[2]!.alternativeName!, /^@device_cm_/);
  });

  it('-list_options: video modes (both styles, duplicates per colour space merged) and audio modes (both styles)', async () => {
    const now = parseDshowVideoOptions(await fixture('dshow-list_options-video.ffmpeg5plus.txt'));
    assert.deepEqual(
      now.map(
        (m) => `${m.format}${m.compressed ? '*' : ''} ${m.width}x${m.height} ${m.rates[0]!.min}-${m.rates[0]!.max}`,
      ),
      [
        'mjpeg* 1920x1080 5-30',
        'mjpeg* 1280x720 5-30',
        'yuyv422 640x480 5-30',
        'yuyv422 1920x1080 5-5',
        'nv12 1280x720 5-10',
        'h264* 1920x1080 5-30',
      ],
    );
    const old = parseDshowVideoOptions(crlf(await fixture('dshow-list_options-video.ffmpeg4.4-and-older.txt')));
    assert.equal(old.length, 4);
    assert.deepEqual(parseDshowAudioOptions(await fixture('dshow-list_options-audio.ffmpeg5plus.txt'))[0], {
      channels: 2,
      sampleFormat: '16 bit',
      sampleRate: 44100,
    });
    assert.deepEqual(parseDshowAudioOptions(await fixture('dshow-list_options-audio.ffmpeg4.4-and-older.added.txt')), [
      { channels: { min: 1, max: 2 }, sampleFormat: '8–16 bit', sampleRate: { min: 11025, max: 44100 } },
    ]);
  });
});

describe('one listing structure for every platform', () => {
  /** Answers as the recorded tools would; a command not recorded does not exist. */
  const recorded =
    (answers: Record<string, string>): RunCommand =>
    async (command, args) => {
      const key = `${command} ${args.filter((a) => a !== '-hide_banner').join(' ')}`;
      return Object.entries(answers).find(([k]) => key === k || key.startsWith(`${k} `))?.[1];
    };

  it('Linux, macOS and Windows listings give the same shape', async () => {
    const linux = await listDevices(
      'ffmpeg',
      'linux',
      recorded({
        'ffmpeg -sources v4l2': await fixture('v4l2-sources.two-cameras.added.txt'),
        'ffmpeg -f v4l2 -list_formats all -i /dev/video0': await fixture('v4l2-list_formats-all.txt'),
        'ffmpeg -f v4l2 -list_formats all -i /dev/video1': '',
        'ffmpeg -f v4l2 -list_formats all -i /dev/video3': '',
        'v4l2-ctl -d /dev/video2 --list-formats-ext': await fixture('v4l2-ctl-list-formats-ext.720p-laptop.added.txt'),
        'ffmpeg -sources pulse': await fixture('pulse-sources.txt'),
        'pactl list short sources': await fixture('pactl-list-short-sources.pipewire.txt'),
        'ffmpeg -sources alsa': await fixture('alsa-sources.txt'),
        'arecord -l': await fixture('arecord-l.txt'),
      }),
    );
    assert.deepEqual(
      linux.devices.filter((d) => d.kind === 'video').map((d) => d.id),
      ['/dev/video0', '/dev/video2'],
    );
    assert.equal(linux.devices.filter((d) => d.kind === 'audio').length, 5);
    assert.equal(
      linux.devices.find((d) => d.id === '/dev/video2')!.modes.length,
      3,
      'v4l2-ctl modes (with rates) preferred',
    );

    const mac = await listDevices(
      'ffmpeg',
      'darwin',
      recorded({
        'ffmpeg -f avfoundation -list_devices true -i': await fixture('avfoundation-list_devices.ffmpeg5-7.txt'),
        'ffmpeg -f avfoundation -video_size 16x16 -framerate 1 -i': await fixture('avfoundation-unsupported-mode.txt'),
      }),
    );
    assert.deepEqual(
      mac.devices.map((d) => `${d.kind}:${d.name}:${d.modes.length}`),
      [
        'video:FaceTime HD Camera:3',
        'video:HD Pro Webcam C920:3',
        'video:Capture screen 0:0',
        'audio:MacBook Pro Microphone:0',
        'audio:HD Pro Webcam C920:0',
        'audio:Microsoft Teams Audio:0',
      ],
    );

    const windows = await listDevices(
      'ffmpeg',
      'win32',
      recorded({
        'ffmpeg -list_devices true -f dshow -i dummy': crlf(await fixture('dshow-list_devices.ffmpeg5plus.txt')),
        'ffmpeg -list_options true -f dshow -i video=': await fixture('dshow-list_options-video.ffmpeg5plus.txt'),
        'ffmpeg -list_options true -f dshow -i audio=': await fixture('dshow-list_options-audio.ffmpeg5plus.txt'),
      }),
    );
    assert.equal(windows.devices.length, 6);
    for (const listing of [linux, mac, windows]) {
      for (const device of listing.devices) {
        assert.deepEqual(
          Object.keys(device)
            .filter((k) => ['kind', 'api', 'id', 'name', 'index', 'modes'].includes(k))
            .sort(),
          ['api', 'id', 'index', 'kind', 'modes', 'name'],
        );
      }
    }
    assert.match(
      formatDeviceTable(linux),
      /Cameras\n {2}#0 {2}HD Pro Webcam C920 {2}\(v4l2 \/dev\/video0\)\n {7}yuyv422 2304x1536, 2304x1296, 1920x1080, 1600x896, 1280x720, … 14 more \(rates not listed\)/,
    );
    assert.match(formatDeviceTable(windows), /#2 {2}Game Capture HD60 S .*also audio/);
  });

  it('none found: a clear message, and the problem that may explain it', async () => {
    const empty = await listDevices(
      'ffmpeg',
      'linux',
      recorded({
        'ffmpeg -sources v4l2': await fixture('v4l2-sources-empty.captured-here.txt'),
        'ffmpeg -sources pulse': await fixture('pulse-sources-no-server.captured-here.txt'),
        'ffmpeg -sources alsa': await fixture('alsa-sources.captured-here.txt'),
      }),
    );
    assert.deepEqual(empty.devices, []);
    assert.match(
      formatDeviceTable(empty),
      /^No cameras or microphones found\.\n.*\nnote: PulseAudio\/PipeWire: Generic error in an external library: no sound server reachable for this user/,
    );
    assert.deepEqual(describeVideoModes([]), []);
  });
});
