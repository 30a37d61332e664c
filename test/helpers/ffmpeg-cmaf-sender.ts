import { execa } from 'execa';

/**
 * A CMAF ingest sender we did not write: ffmpeg 5.1's mp4 muxer POSTing each track as one
 * long-running request (DASH-IF ingest v1.0 style) to `<stream>/Streams(video.cmfv|audio.cmfa)`,
 * the test pattern and a tone in real time, with media time on the epoch grid:
 * `-output_ts_offset T` puts the first frame at T seconds since 1970 and `+frag_discont` keeps the
 * mp4 muxer from moving tfdt back to 0; an IDR every second from T (-g 30 at 30 fps, no scene
 * cuts); fragments of 100 ms (video: 3 frames; audio: whole AAC frames, across the grid).
 */
export function ffmpegCmafSender(stream: string, token: string, epochSeconds: number, seconds: number) {
  // Output options go before each output's URL: both need the length and the offset.
  const output = (track: string) => [
    '-t',
    String(seconds),
    '-output_ts_offset',
    String(epochSeconds),
    '-f',
    'mp4',
    '-movflags',
    '+cmaf+frag_keyframe+empty_moov+default_base_moof+frag_discont',
    '-frag_duration',
    '100000',
    '-write_prft',
    'wallclock',
    '-headers',
    `Authorization: Bearer ${token}\r\n`,
    '-method',
    'POST',
    `${stream}/Streams(${track})`,
  ];
  return execa(
    'ffmpeg',
    [
      '-hide_banner',
      '-loglevel',
      'error',
      '-re',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=640x360:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000',
      '-map',
      '0:v',
      '-c:v',
      'libx264',
      '-preset',
      'ultrafast',
      '-tune',
      'zerolatency',
      '-pix_fmt',
      'yuv420p',
      '-g',
      '30',
      '-keyint_min',
      '30',
      '-sc_threshold',
      '0',
      ...output('video.cmfv'),
      '-map',
      '1:a',
      '-c:a',
      'aac',
      '-b:a',
      '64k',
      ...output('audio.cmfa'),
    ],
    { reject: false, timeout: (seconds + 30) * 1000 },
  );
}
