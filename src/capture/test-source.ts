import { lavfiInput } from './device-args.ts';
import type { TestSource } from './source.ts';

/**
 * ffmpeg inputs for the test source: a moving pattern and a 1 kHz tone at −18 dBFS (EBU line-up
 * level, sine's default amplitude), both released in real time and stamped with the wall clock at
 * release (`RTCTIME`), so media time is UTC since 1970 and the timeline can be checked by eye.
 */
export function testSourceInputs(
  source: TestSource,
  framerate: number,
  samplerate: number,
  probe?: TestSourceProbe,
): string[] {
  const size = `${source.width}x${source.height}`;
  // Mandelbrot is rendered at quarter size and scaled up: full-size rendering alone costs ~0.7 core.
  const pattern =
    source.pattern === 'mandelbrot'
      ? `mandelbrot=size=${source.width / 2}x${source.height / 2}:rate=${framerate},scale=${size}`
      : `testsrc2=size=${size}:rate=${framerate}`;
  const sync = source.pattern === 'sync';
  // test:sync: a white frame and a 50 ms beep at every whole second of the wall clock, each placed
  // by its own stamp (the frame nearest the second; the beep to the sample), so any A/V offset in
  // the output is the pipeline's.
  const flash = sync
    ? [`drawbox=x=0:y=0:w=iw:h=ih:color=white:t=fill:enable='lt(abs(t-round(t)),${0.5 / framerate})'`]
    : [];
  const beep = sync ? [`aeval=exprs='if(lt(mod(t,1),0.05),val(0),0)'`] : [];
  // A sound card whose clock is off and drifting: its samples come 1500 ppm fast, from 10 s 800 ppm.
  const pacing = probe
    ? []
    : source.audioDrift
      ? [`asendcmd=c='10 arealtime speed 1.0008'`, 'arealtime=speed=1.0015']
      : ['arealtime'];
  // A probe runs as fast as the machine can, its stamps counted from a boundary instead of read off the clock.
  const videoTime = probe
    ? [`trim=duration=${probe.seconds}`, 'settb=AVTB', `setpts=PTS+${probe.startSeconds}/TB`]
    : ['realtime', 'settb=AVTB', 'setpts=RTCTIME'];
  const audioTime = probe
    ? [`atrim=duration=${probe.seconds}`, 'asettb=AVTB', `asetpts=PTS+${probe.startSeconds}/TB`]
    : ['asettb=AVTB', 'asetpts=RTCTIME'];
  return [
    ...lavfiInput([pattern, ...videoTime, ...flash].join(',')),
    ...lavfiInput([`sine=frequency=1000:sample_rate=${samplerate}`, ...pacing, ...audioTime, ...beep].join(',')),
  ];
}

/** The test source for `appliance check`'s CPU probe: `seconds` of it, not paced, from `startSeconds` (a segment boundary). */
export interface TestSourceProbe {
  seconds: number;
  startSeconds: number;
}

/** Escapes a drawtext expansion argument: `:` separates arguments inside `%{…}`. */
const field = (expression: string, digits: number) => `%{eif\\:${expression}\\:d\\:${digits}}`;

/**
 * The UTC wall clock burnt in as HH:MM:SS.mmm, white on black, top left. It is computed from the
 * frame's own timestamp (exact integer milliseconds, then integer division), so the picture shows
 * precisely the media time the frame carries; `gmtime` would floor a float and show x.999 errors.
 */
export function clockOverlay(height: number): string {
  const ms = 'round(t*1000)';
  const scale = height / 1080;
  const text = [
    field(`mod(floor(${ms}/3600000),24)`, 2),
    '\\:',
    field(`mod(floor(${ms}/60000),60)`, 2),
    '\\:',
    field(`mod(floor(${ms}/1000),60)`, 2),
    '.',
    field(`mod(${ms},1000)`, 3),
  ].join('');
  return [
    'drawtext=font=monospace',
    `fontsize=${Math.round(96 * scale)}`,
    'fontcolor=white',
    'box=1',
    'boxcolor=black',
    `boxborderw=${Math.round(16 * scale)}`,
    `x=${Math.round(32 * scale)}`,
    `y=${Math.round(32 * scale)}`,
    `text='${text}'`,
  ].join(':');
}

export const TEST_SOURCE_FILTERS = [
  'testsrc2',
  'mandelbrot',
  'sine',
  'realtime',
  'arealtime',
  'settb',
  'setpts',
  'asettb',
  'asetpts',
  'drawtext',
  'drawbox',
  'aeval',
  'asendcmd',
  'trim',
  'atrim',
] as const;
