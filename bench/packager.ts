import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { loadProfile } from '../src/config/profile.ts';
import { buildMpd } from '../src/packager/mpd.ts';
import { Packager } from '../src/packager/packager.ts';

const EPOCH_SECOND = 1_795_219_794;
const PIPE_READ = 64 * 1024;

export interface RecordedLadder {
  tracks: { id: string; kind: 'video' | 'audio'; bitrate: number; bytes: Uint8Array }[];
  mediaSeconds: number;
}

/** Encodes `seconds` of the ultra-ll ladder offline, muxed as the appliance's ffmpeg muxes it. */
export async function recordLadder(seconds: number): Promise<RecordedLadder> {
  const dir = await mkdtemp(join(tmpdir(), 'appliance-bench-'));
  const mux = [
    '-f',
    'mp4',
    '-movflags',
    '+empty_moov+default_base_moof+frag_keyframe+frag_discont+skip_trailer+cmaf',
    '-avoid_negative_ts',
    'make_non_negative',
  ];
  const x264 = (rate: string, buffer: string) => [
    '-c:v',
    'libx264',
    '-preset',
    'superfast',
    '-tune',
    'zerolatency',
    '-profile:v',
    'high',
    '-bf',
    '0',
    '-g',
    '30',
    '-keyint_min',
    '30',
    '-sc_threshold',
    '0',
    '-force_key_frames',
    'expr:gte(t,n_forced*1)',
    '-b:v',
    rate,
    '-maxrate',
    rate,
    '-bufsize',
    buffer,
    '-x264-params',
    'vbv-init=0.5',
    '-video_track_timescale',
    '90000',
  ];
  try {
    await execa('ffmpeg', [
      '-v',
      'error',
      '-y',
      '-f',
      'lavfi',
      '-i',
      'testsrc2=size=1920x1080:rate=30',
      '-f',
      'lavfi',
      '-i',
      'sine=frequency=1000:sample_rate=48000',
      '-copyts',
      '-filter_complex',
      `[0:v]setpts=PTS+${EPOCH_SECOND}/TB,format=yuv420p,split=2[a][b];[b]scale=1280:720[c];[1:a]asetpts=PTS+${EPOCH_SECOND}*48000[d]`,
      '-map',
      '[a]',
      ...x264('6M', '3M'),
      ...mux,
      '-frag_duration',
      '100000',
      '-frames:v',
      String(seconds * 30),
      join(dir, '1080p.mp4'),
      '-map',
      '[c]',
      ...x264('3M', '1500k'),
      ...mux,
      '-frag_duration',
      '100000',
      '-frames:v',
      String(seconds * 30),
      join(dir, '720p.mp4'),
      '-map',
      '[d]',
      '-c:a',
      'aac',
      '-b:a',
      '128k',
      '-ac',
      '2',
      ...mux,
      '-frag_duration',
      '21333',
      '-frames:a',
      String(Math.ceil((seconds * 48000) / 1024)),
      join(dir, 'audio.mp4'),
    ]);
    const read = async (id: string) => new Uint8Array(await readFile(join(dir, `${id}.mp4`)));
    return {
      tracks: [
        { id: '1080p', kind: 'video', bitrate: 6_000_000, bytes: await read('1080p') },
        { id: '720p', kind: 'video', bitrate: 3_000_000, bytes: await read('720p') },
        { id: 'audio', kind: 'audio', bitrate: 128_000, bytes: await read('audio') },
      ],
      mediaSeconds: seconds,
    };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/**
 * The whole packaging path on a ladder held in memory: box walk, regrouping into chunks, and a
 * manifest rebuilt at every segment end. Input arrives as a pipe delivers it (64 KiB reads,
 * tracks interleaved). Returns bytes per second and media seconds per second.
 */
export async function packagerThroughput(
  ladder: RecordedLadder,
): Promise<{ megabytesPerSecond: number; timesRealTime: number; chunks: number }> {
  const { profile } = await loadProfile('ultra-ll');
  const options = { timeShiftBufferDepth: 30, utcTimingUrl: 'https://time.akamai.com/?iso&ms' };
  const total = ladder.tracks.reduce((n, t) => n + t.bytes.length, 0);
  const started = performance.now();
  const packager = new Packager(ladder.tracks, profile);
  let chunks = 0;
  let manifestBytes = 0;
  const longest = Math.max(...ladder.tracks.map((t) => t.bytes.length));
  for (let at = 0; at < longest; at += PIPE_READ) {
    for (const track of ladder.tracks) {
      if (at >= track.bytes.length) continue;
      for (const event of packager.push(track.id, track.bytes.subarray(at, at + PIPE_READ))) {
        if (event.type === 'chunk') chunks++;
        else if (event.type === 'segmentEnd' && event.track === ladder.tracks[0]!.id && packager.ready) {
          manifestBytes += buildMpd(packager.mpdModel(profile, options, new Date())).length;
        }
      }
    }
  }
  const seconds = (performance.now() - started) / 1000;
  if (!manifestBytes) throw new Error('no manifest was built');
  return { megabytesPerSecond: total / 1e6 / seconds, timesRealTime: ladder.mediaSeconds / seconds, chunks };
}
