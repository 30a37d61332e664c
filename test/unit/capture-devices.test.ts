import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { describe, it } from 'node:test';
import { deviceInputs, dshowRtbufsize, type DeviceSource } from '../../src/capture/device-args.ts';
import { deviceProblem } from '../../src/capture/device-errors.ts';
import { parseDeviceSpec } from '../../src/capture/device-spec.ts';
import { parseAvfoundationDevices, parseAvfoundationModes } from '../../src/capture/devices/macos.ts';
import { parseV4l2CtlFormats, parseV4l2ListFormats } from '../../src/capture/devices/linux.ts';
import { parseDshowDevices, parseDshowVideoOptions } from '../../src/capture/devices/windows.ts';
import type { Camera, DeviceListing, VideoMode } from '../../src/capture/devices/types.ts';
import { negotiateVideo, type VideoWant } from '../../src/capture/negotiate.ts';
import { atRate, resolveDevices } from '../../src/capture/resolve-devices.ts';
import { checkTiming, loadProfile } from '../../src/config/profile.ts';
import { AvOffsetMeter } from '../../src/encode/av-offset.ts';
import { audioSyncFilter, buildEncoderPlan } from '../../src/encode/ffmpeg-args.ts';
import { planLadder } from '../../src/ladder/ladder.ts';

const fixture = (name: string) => readFile(new URL(`../fixtures/device-listings/${name}`, import.meta.url), 'utf8');
const { profile } = await loadProfile('ultra-ll');
const want: VideoWant = { width: 1920, height: 1080, framerate: 30, segdur: 1, idr: 1 };
const camera = (api: Camera['api'], modes: VideoMode[]): Camera => ({
  kind: 'video',
  api,
  id: 'cam',
  name: 'Cam',
  index: 0,
  modes,
});

describe('--source device specs', () => {
  it('defaults, names, indexes and none; names may hold commas and colons', () => {
    assert.deepEqual(parseDeviceSpec('device'), { kind: 'device', video: { by: 'default' }, audio: { by: 'default' } });
    assert.deepEqual(parseDeviceSpec('device:video=1,audio=none'), {
      kind: 'device',
      video: { by: 'index', index: 1 },
      audio: { by: 'none' },
    });
    assert.deepEqual(parseDeviceSpec('device:audio=Microphone (Realtek(R) Audio), front'), {
      kind: 'device',
      video: { by: 'default' },
      audio: { by: 'name', name: 'Microphone (Realtek(R) Audio), front' },
    });
    assert.deepEqual(parseDeviceSpec('device:video=/dev/video2,audio=hw:CARD=C920,DEV=0').audio, {
      by: 'name',
      name: 'hw:CARD=C920,DEV=0',
    });
    assert.throws(() => parseDeviceSpec('device:video=none,audio=none'), /leave nothing to capture/);
    assert.throws(() => parseDeviceSpec('device:camera=1'), /"camera=1" is not video=NAME\|INDEX/);
  });
});

describe('format negotiation', () => {
  it('v4l2 with rates (v4l2-ctl): MJPEG at 1080p30 because raw YUYV reaches only 5 fps there', async () => {
    const choice = negotiateVideo(
      camera('v4l2', parseV4l2CtlFormats(await fixture('v4l2-ctl-list-formats-ext.txt'))),
      want,
    );
    assert.deepEqual(
      [choice.format, choice.width, choice.height, choice.framerate, choice.captureRate],
      ['mjpeg', 1920, 1080, 30, 30],
    );
    assert.match(
      choice.reasons.join('\n'),
      /mjpeg rather than raw yuyv422, which reaches only 5 fps at 1920x1080 \(USB 2 bandwidth\)/,
    );
  });

  it('v4l2 without rates (ffmpeg listing): raw beyond USB 2 bandwidth gives way to MJPEG, and the log says why', async () => {
    const choice = negotiateVideo(
      camera('v4l2', parseV4l2ListFormats(await fixture('v4l2-list_formats-all.txt'))),
      want,
    );
    assert.equal(choice.format, 'mjpeg');
    assert.deepEqual([choice.width, choice.height], [1920, 1080]);
  });

  it('a 720p camera: 720p MJPEG 30 fps over raw 10 fps; larger renditions dropped, never upscaled', async () => {
    const choice = negotiateVideo(
      camera('v4l2', parseV4l2CtlFormats(await fixture('v4l2-ctl-list-formats-ext.720p-laptop.added.txt'))),
      want,
    );
    assert.deepEqual([choice.format, choice.width, choice.height, choice.framerate], ['mjpeg', 1280, 720, 30]);
    assert.match(
      choice.reasons.join('\n'),
      /largest mode is below 1920x1080: larger renditions are dropped, never upscaled/,
    );
    assert.deepEqual(
      planLadder(profile.video.renditions, choice).renditions.map((r) => r.id),
      ['720p'],
    );
  });

  it('raw where it reaches the rate (no decoding); stepwise sizes give exactly the top rendition', async () => {
    const usb3 = negotiateVideo(
      camera('v4l2', [
        { format: 'mjpeg', compressed: true, width: 1920, height: 1080, rates: [{ min: 30, max: 30 }] },
        { format: 'yuyv422', compressed: false, width: 1920, height: 1080, rates: [{ min: 30, max: 30 }] },
      ]),
      want,
    );
    assert.equal(usb3.format, 'yuyv422');
    assert.match(usb3.reasons.join('\n'), /raw yuyv422: no decoding needed/);
    const grabber = negotiateVideo(
      camera('v4l2', parseV4l2CtlFormats(await fixture('v4l2-ctl-list-formats-ext.hdmi-capture-50fps.added.txt'))),
      want,
    );
    assert.deepEqual(
      [grabber.format, grabber.width, grabber.height, grabber.framerate],
      ['nv12', 1920, 1080, 30],
      'a range holding 30 gives 30',
    );
  });

  it('25/50 fps cameras keep their rate; a 60-only mode is decimated to 30; NTSC 29.97 runs the timeline at 30', () => {
    const pal = negotiateVideo(
      camera('v4l2', [{ format: 'mjpeg', compressed: true, width: 1920, height: 1080, rates: [{ min: 25, max: 25 }] }]),
      want,
    );
    assert.deepEqual([pal.framerate, pal.captureRate], [25, 25]);
    assert.match(pal.reasons[0]!, /25\/50 fps camera: segments stay whole frames/);
    const fifty = negotiateVideo(
      camera('dshow', [
        { format: 'nv12', compressed: false, width: 1920, height: 1080, rates: [{ min: 50, max: 50 }] },
      ]),
      want,
    );
    assert.equal(fifty.framerate, 50);
    const sixty = negotiateVideo(
      camera('avfoundation', [
        { format: 'uyvy422', compressed: false, width: 1920, height: 1080, rates: [{ min: 1, max: 60 }] },
      ]),
      want,
    );
    assert.deepEqual([sixty.framerate, sixty.captureRate], [30, 60], 'avfoundation takes only a range maximum');
    const ntsc = negotiateVideo(
      camera('avfoundation', [
        { format: 'uyvy422', compressed: false, width: 1920, height: 1080, rates: [{ min: 1, max: 29.97003 }] },
      ]),
      want,
    );
    assert.deepEqual([ntsc.framerate, ntsc.captureRate], [30, 29.97003]);
  });

  it('avfoundation modes (from its error) and dshow options negotiate like the rest', async () => {
    const mac = negotiateVideo(
      camera('avfoundation', parseAvfoundationModes(await fixture('avfoundation-unsupported-mode.txt'))),
      want,
    );
    assert.deepEqual([mac.format, mac.width, mac.height, mac.captureRate], ['uyvy422', 1920, 1080, 30]);
    const win = negotiateVideo(
      camera('dshow', parseDshowVideoOptions(await fixture('dshow-list_options-video.ffmpeg5plus.txt'))),
      want,
    );
    assert.deepEqual(
      [win.format, win.compressed, win.width, win.height, win.captureRate],
      ['mjpeg', true, 1920, 1080, 30],
      'yuyv422 1080p reaches 5 fps only',
    );
  });

  it('no modes listed: the top rendition at the profile rate, said so', () => {
    const blind = negotiateVideo(camera('v4l2', []), want);
    assert.deepEqual([blind.format, blind.width, blind.framerate], [undefined, 1920, 30]);
    assert.match(blind.reasons[0]!, /no modes/);
  });

  it('a camera rate changes the timeline: cdur becomes whole frames, and the timing rules hold', () => {
    const reasons: string[] = [];
    const at25 = atRate(profile, 25, reasons);
    assert.deepEqual([at25.video.framerate, at25.cdur], [25, 0.08]);
    assert.match(reasons[0]!, /cdur 0.1 s is 2.5 frames there, so chunks are 0.08 s \(2 frames\)/);
    assert.deepEqual(checkTiming(at25).errors, []);
    assert.equal(atRate(profile, 50).cdur, 0.1);
  });
});

describe('device resolution', () => {
  const linux = (devices: DeviceListing['devices']): DeviceListing => ({ platform: 'linux', devices, problems: [] });
  const c920: Camera = {
    kind: 'video',
    api: 'v4l2',
    id: '/dev/video0',
    name: 'HD Pro Webcam C920',
    index: 0,
    modes: [{ format: 'mjpeg', compressed: true, width: 1920, height: 1080, rates: [{ min: 25, max: 25 }] }],
  };
  const hw = {
    kind: 'audio' as const,
    api: 'alsa' as const,
    id: 'hw:CARD=C920,DEV=0',
    name: 'HD Pro Webcam C920 (USB Audio)',
    index: 0,
    modes: [],
  };
  const pulseDefault = {
    kind: 'audio' as const,
    api: 'pulse' as const,
    id: 'alsa_input.usb',
    name: 'Webcam Analog Stereo',
    index: 1,
    modes: [],
    isDefault: true,
  };

  it('defaults: the camera, the Pulse default (ALSA plughw: under systemd); the profile follows the camera rate', () => {
    const desktop = resolveDevices(parseDeviceSpec('device'), linux([c920, hw, pulseDefault]), profile, {
      allowMissing: false,
      underService: false,
    });
    assert.deepEqual(
      [desktop.source.video?.id, desktop.source.audio?.id, desktop.profile.video.framerate, desktop.profile.cdur],
      ['/dev/video0', 'alsa_input.usb', 25, 0.08],
    );
    const service = resolveDevices(parseDeviceSpec('device'), linux([c920, hw, pulseDefault]), profile, {
      allowMissing: false,
      underService: true,
    });
    assert.equal(service.source.audio?.id, 'plughw:CARD=C920,DEV=0');
    assert.match(service.reasons.join('\n'), /plughw:, which converts its own rate and channels/);
  });

  it('a device not found is an error naming it and listing what there is; under retry it is waited for', () => {
    assert.throws(
      () =>
        resolveDevices(parseDeviceSpec('device:video=Logitech Brio'), linux([c920, hw]), profile, {
          allowMissing: false,
          underService: false,
        }),
      (error: Error) =>
        /camera "Logitech Brio" not found; available cameras: #0 "HD Pro Webcam C920" \(\/dev\/video0\)/.test(
          error.message,
        ),
    );
    const waiting = resolveDevices(parseDeviceSpec('device:video=Logitech Brio,audio=none'), linux([c920]), profile, {
      allowMissing: true,
      underService: true,
    });
    assert.equal(waiting.source.video?.id, 'Logitech Brio');
    assert.match(waiting.warnings[0]!, /waiting for it \(slate meanwhile\)/);
    const direct = resolveDevices(
      parseDeviceSpec('device:video=none,audio=dsnoop:CARD=C920,DEV=0'),
      linux([]),
      profile,
      { allowMissing: false, underService: false },
    );
    assert.equal(direct.source.audio?.id, 'dsnoop:CARD=C920,DEV=0', 'ALSA PCM names are taken as given');
  });

  it('names match exactly, by part, or by index; dshow names with ":" go by their alternative name', async () => {
    const win = parseDshowDevices(await fixture('dshow-list_devices.ffmpeg5plus.txt'));
    const listing: DeviceListing = { platform: 'win32', devices: win, problems: [] };
    const picked = resolveDevices(parseDeviceSpec('device:video=c920,audio=1'), listing, profile, {
      allowMissing: false,
      underService: false,
    });
    assert.deepEqual(
      [picked.source.video?.id, picked.source.audio?.id],
      ['HD Pro Webcam C920', 'Microphone Array (Realtek(R) Audio)'],
    );
    const mac: DeviceListing = {
      platform: 'darwin',
      devices: parseAvfoundationDevices(await fixture('avfoundation-list_devices.ffmpeg5-7.txt')),
      problems: [],
    };
    const macPicked = resolveDevices(parseDeviceSpec('device'), mac, profile, {
      allowMissing: false,
      underService: false,
    });
    assert.deepEqual([macPicked.source.video?.id, macPicked.source.audio?.id], ['0', '0']);
  });
});

describe('device input arguments, per platform', () => {
  const choice = {
    format: 'mjpeg',
    compressed: true,
    width: 1920,
    height: 1080,
    framerate: 30,
    captureRate: 30,
    reasons: [],
  };
  const audio = { samplerate: 48000, channels: 2 };
  const source = (
    platform: DeviceSource['platform'],
    video: boolean,
    mic: boolean,
    api: { video: DeviceSource['video'] extends infer V ? V : never } | undefined = undefined,
  ): DeviceSource => ({
    kind: 'device',
    platform,
    video: video
      ? (api?.video ?? {
          api: platform === 'linux' ? 'v4l2' : platform === 'darwin' ? 'avfoundation' : 'dshow',
          id: platform === 'darwin' ? '1' : platform === 'linux' ? '/dev/video0' : 'HD Pro Webcam C920',
          name: 'C920',
          choice,
        })
      : undefined,
    audio: mic
      ? {
          api: platform === 'linux' ? 'alsa' : platform === 'darwin' ? 'avfoundation' : 'dshow',
          id:
            platform === 'darwin'
              ? '0'
              : platform === 'linux'
                ? 'plughw:CARD=C920,DEV=0'
                : 'Microphone (HD Pro Webcam C920)',
          name: 'mic',
        }
      : undefined,
    width: 1920,
    height: 1080,
    framerate: 30,
  });

  it('Linux: v4l2 with -ts abs (kernel stamps to the wall clock), ALSA or Pulse stamping themselves', () => {
    const { args, video, audio: a } = deviceInputs(source('linux', true, true), audio);
    assert.deepEqual(args, [
      '-f',
      'v4l2',
      '-thread_queue_size',
      '60',
      '-input_format',
      'mjpeg',
      '-framerate',
      '30',
      '-video_size',
      '1920x1080',
      '-ts',
      'abs',
      '-i',
      '/dev/video0',
      '-f',
      'alsa',
      '-thread_queue_size',
      '1024',
      '-sample_rate',
      '48000',
      '-channels',
      '2',
      '-i',
      'plughw:CARD=C920,DEV=0',
    ]);
    assert.deepEqual([video, a], ['0:v', '1:a']);
    const pulse = deviceInputs(
      { ...source('linux', true, true), audio: { api: 'pulse', id: 'alsa_input.usb', name: 'usb' } },
      audio,
    );
    assert.deepEqual(pulse.args.slice(14), [
      '-f',
      'pulse',
      '-thread_queue_size',
      '1024',
      '-sample_rate',
      '48000',
      '-channels',
      '2',
      '-fragment_size',
      '3840',
      '-i',
      'alsa_input.usb',
    ]);
  });

  it('macOS: one avfoundation input "V:A", exact rate, a pixel format cameras have, wall-clock stamps', () => {
    const { args, video, audio: a } = deviceInputs(source('darwin', true, true), audio);
    assert.deepEqual(args, [
      '-f',
      'avfoundation',
      '-thread_queue_size',
      '60',
      '-framerate',
      '30',
      '-video_size',
      '1920x1080',
      '-pixel_format',
      'mjpeg',
      '-use_wallclock_as_timestamps',
      '1',
      '-i',
      '1:0',
    ]);
    assert.deepEqual([video, a], ['0:v', '0:a']);
    const audioOnly = deviceInputs(source('darwin', false, true), audio);
    assert.equal(audioOnly.args[audioOnly.args.indexOf('-i') + 1], 'none:0');
    assert.deepEqual([audioOnly.video, audioOnly.audio], ['1:v', '0:a']);
    assert.match(audioOnly.args.at(-1)!, /^color=.*AUDIO ONLY.*realtime,settb=AVTB,setpts=RTCTIME$/);
  });

  it('Windows: one dshow input "video=…:audio=…", real-time buffer of a second, 20 ms audio buffer, wall-clock stamps', () => {
    const { args, video, audio: a } = deviceInputs(source('win32', true, true), audio);
    assert.deepEqual(args, [
      '-f',
      'dshow',
      '-rtbufsize',
      String(dshowRtbufsize(choice)),
      '-thread_queue_size',
      '60',
      '-vcodec',
      'mjpeg',
      '-video_size',
      '1920x1080',
      '-framerate',
      '30',
      '-audio_buffer_size',
      '20',
      '-sample_rate',
      '48000',
      '-channels',
      '2',
      '-use_wallclock_as_timestamps',
      '1',
      '-i',
      'video=HD Pro Webcam C920:audio=Microphone (HD Pro Webcam C920)',
    ]);
    assert.equal(dshowRtbufsize(choice), 119 * 2 ** 20);
    assert.deepEqual([video, a], ['0:v', '0:a']);
    const noMic = deviceInputs(source('win32', true, false), audio);
    assert.deepEqual([noMic.video, noMic.audio], ['0:v', '1:a']);
    assert.match(noMic.args.at(-1)!, /^anullsrc=r=48000:cl=stereo,arealtime,asettb=AVTB,asetpts=RTCTIME$/);
  });

  it('the encoder plan takes video and audio from the device inputs, -copyts keeps their stamps, audio is synced softly', () => {
    const plan = buildEncoderPlan(profile, source('darwin', true, true), profile.video.renditions);
    const args = plan.args.join(' ');
    assert.match(args, /-i 1:0 -copyts -filter_complex \[0:v\]setpts='st\(0/);
    assert.match(
      args,
      /-map 0:a -af aresample=async=96:min_hard_comp=0\.1:flags=res,silencedetect=n=-60dB:d=5,ametadata=mode=print:key=lavfi\.silence_start,ametadata=mode=print:key=lavfi\.silence_end -c:a aac/,
    );
    assert.equal(
      audioSyncFilter({ ...profile, video: { ...profile.video, framerate: 25 } }),
      'aresample=async=96:min_hard_comp=0.1:flags=res',
    );
    const decimated = buildEncoderPlan(
      profile,
      {
        ...source('darwin', true, true),
        video: { api: 'avfoundation', id: '0', name: 'cam', choice: { ...choice, captureRate: 60 } },
      },
      profile.video.renditions,
    );
    assert.match(decimated.args.join(' '), /\[0:v\]fps=30,setpts='st\(0/);
  });
});

describe('device problems from ffmpeg', () => {
  it('missing, busy, refused and gone devices are named', async () => {
    const lines = async (name: string) => (await fixture(name)).split('\n');
    assert.deepEqual(deviceProblem(await lines('v4l2-no-device.captured-here.txt')), {
      trouble: 'missing',
      device: '/dev/video0',
      message: 'camera /dev/video0 is not there (unplugged?)',
    });
    assert.equal(
      deviceProblem(await lines('alsa-pulse-no-device.captured-here.txt'))?.message,
      'microphone default is not there (no such ALSA device)',
    );
    assert.equal(deviceProblem(['ALSA lib pcm.c:2666:(snd_pcm_open_noupdate) Unknown PCM testmic'])?.device, 'testmic');
    assert.equal(
      deviceProblem(['[video4linux2,v4l2 @ 0x1] Cannot open video device /dev/video0: Device or resource busy'])
        ?.trouble,
      'busy',
    );
    assert.match(
      deviceProblem(await lines('avfoundation-permission-denied.txt'))!.message,
      /macOS refuses "FaceTime HD Camera \(Built-in\)": allow Camera and Microphone/,
    );
    assert.equal(
      deviceProblem([
        '[dshow @ 000001] Could not find video device with name [HD Pro Webcam C920] among source devices of type video.',
      ])?.device,
      'HD Pro Webcam C920',
    );
    assert.equal(deviceProblem(['[video4linux2,v4l2 @ 0x1] ioctl(VIDIOC_DQBUF): No such device'])?.trouble, 'gone');
    assert.equal(deviceProblem(await lines('v4l2-runtime-warnings.txt')), undefined, 'warnings are not failures');
  });
});

describe('A/V offset meter', () => {
  it("follows the difference of the tracks' median lags, from the second window on", () => {
    const meter = new AvOffsetMeter(1000);
    // Video lag 30 ms ± jitter; audio lag 50 ms, then its timeline slips 1 ms per 100 ms from 3 s.
    for (let at = 0; at < 6000; at += 50) {
      const jitter = (at % 300) / 10;
      meter.add('video', at - 30 - jitter, at);
      meter.add('audio', at - 50 - jitter + (at > 3000 ? -(at - 3000) / 100 : 0), at);
    }
    const figures = meter.figures!;
    assert.ok(
      figures.offsetMs > 12 && figures.offsetMs < 18,
      `audio slipped 15 ms by the middle of the last window (4.5 s): ${JSON.stringify(figures)}`,
    );
    meter.restart();
    assert.equal(meter.figures, undefined);
  });
});

describe('appliance check --source', () => {
  it('under systemd a Pulse/PipeWire microphone is a problem, with the ALSA devices to use instead', async () => {
    const { captureReport } = await import('../../src/cli/check-capture.ts');
    const { alsaMicrophones, pulseMicrophones } = await import('../../src/capture/devices/linux.ts');
    const listing: DeviceListing = {
      platform: 'linux',
      devices: [
        ...pulseMicrophones(await fixture('pulse-sources.txt')).microphones,
        ...alsaMicrophones(await fixture('alsa-sources.txt'), await fixture('arecord-l.txt')),
      ],
      problems: [],
    };
    const desktop = captureReport(
      'device:video=none,audio=alsa_input.pci-0000_00_1f.3.analog-stereo',
      listing,
      profile,
      false,
    );
    assert.equal(desktop.ok, true);
    assert.match(
      desktop.advice.join('\n'),
      /for the service, use an ALSA device instead: audio=plughw:CARD=PCH,DEV=0 or dsnoop:CARD=PCH,DEV=0/,
    );
    const service = captureReport(
      'device:video=none,audio=alsa_input.pci-0000_00_1f.3.analog-stereo',
      listing,
      profile,
      true,
    );
    assert.equal(service.ok, false);
    assert.match(
      service.problems.join('\n'),
      /a systemd service cannot reach a desktop user's sound server; use an ALSA device instead: .*dsnoop:CARD=C920,DEV=0 \(HD Pro Webcam C920 \(USB Audio\)\)/,
    );
    assert.equal(desktop.decode, undefined, 'no camera: nothing to decode');
    const mjpeg = captureReport(
      'device:video=/dev/video0,audio=none',
      {
        platform: 'linux',
        devices: [
          {
            kind: 'video',
            api: 'v4l2',
            id: '/dev/video0',
            name: 'HD Pro Webcam C920',
            index: 0,
            modes: [{ format: 'mjpeg', compressed: true, width: 1920, height: 1080, rates: [{ min: 30, max: 30 }] }],
          },
        ],
        problems: [],
      },
      profile,
      false,
    );
    assert.deepEqual(
      mjpeg.decode,
      { format: 'mjpeg', width: 1920, height: 1080, framerate: 30 },
      mjpeg.problems.join(),
    );
    const defaultUnderService = captureReport('device:video=none', listing, profile, true);
    assert.match(
      defaultUnderService.chosen.join('\n'),
      /plughw:CARD=PCH,DEV=0/,
      'the default skips Pulse under systemd',
    );
  });
});
