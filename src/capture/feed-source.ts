import type { Profile } from '../config/schema.ts';
import { ConfigError } from '../errors.ts';
import { SRT_PASSPHRASE_ENV } from '../secret-environment.ts';
import { noCameraInput, noMicrophoneInput, type AudioFormat, type SourceInputs } from './device-args.ts';
import { playedStreamMaps, streamPolicy, type PlayedStreams } from './file-source.ts';
import type { InputInfo } from './media-info.ts';

// Pure: a live MPEG-TS contribution feed (UDP, SRT) as a source. The feed reaches ffmpeg through
// the appliance (a relay ffmpeg receives it, the restamper puts it on the wall clock), so the
// encoder reads plain MPEG-TS from a pipe.

export interface FeedRequest {
  kind: 'feed';
  protocol: 'udp' | 'srt';
  url: string;
}

export interface FeedSource extends PlayedStreams {
  kind: 'feed';
  protocol: 'udp' | 'srt';
  url: string;
}

export function parseFeedSpec(spec: string): FeedRequest {
  // URL parsing silently drops tabs and newlines; the relay's script is made of lines.
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are what is refused
  if (/[\0-\x1f\x7f]/.test(spec))
    throw new ConfigError('--source: the URL contains a control character (a tab or a newline?)');
  let url: URL;
  try {
    url = new URL(spec);
  } catch {
    throw new ConfigError(
      `--source "${spec}" is not a URL; accepted: udp://IP:PORT (e.g. udp://0.0.0.0:5000, udp://239.1.1.1:5000), srt://HOST:PORT?mode=caller|listener`,
    );
  }
  const protocol = url.protocol.slice(0, -1) as 'udp' | 'srt';
  if (!url.port)
    throw new ConfigError(
      `--source "${spec}": the port is missing, e.g. ${protocol}://${url.hostname || '0.0.0.0'}:5000`,
    );
  if (protocol === 'srt') {
    if (url.searchParams.has('passphrase'))
      throw new ConfigError(
        `--source: an SRT passphrase in the URL would reach logs and process listings; set ${SRT_PASSPHRASE_ENV} instead`,
      );
    const mode = url.searchParams.get('mode') ?? 'caller';
    if (!['caller', 'listener', 'rendezvous'].includes(mode))
      throw new ConfigError(`--source "${spec}": mode=${mode}; accepted: caller, listener, rendezvous`);
  }
  return { kind: 'feed', protocol, url: spec };
}

/** The URL as logs show it: no user info; an SRT stream id kept, anything secret-looking hidden. */
export function feedForLogs(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//').replace(/([?&](?:passphrase|pbkeylen|streamid)=)[^&]*/gi, '$1…');
}

/** Text from the relay with the passphrase (and the URL's secrets) taken out, whatever ffmpeg printed. */
export function redact(text: string, passphrase: string | undefined): string {
  const masked = passphrase ? text.split(passphrase).join('…') : text;
  return masked.replace(/(?:srt|udp):\/\/[^\s'"]+/g, (url) => feedForLogs(url));
}

/** The relay's file descriptor for its input description, when that carries the SRT passphrase. */
export const RELAY_SCRIPT_FD = 3;

export interface RelayPlan {
  args: string[];
  /** Written to RELAY_SCRIPT_FD, then closed: an ffconcat script naming the feed with its secret options. */
  script: string | undefined;
}

const PROBE_OPTIONS = { probesize: '2000000', analyzeduration: '2000000' };

/**
 * Pure: how the relay runs. It receives the feed and copies it to its stdout as MPEG-TS with no
 * muxing delay; ffmpeg's own discontinuity handling keeps the timestamps going on when a sender
 * restarts (with `-copyts` a backwards jump reached its muxer and mangled seconds of them). It
 * prints ffmpeg's dump of the feed, which says what the feed holds.
 *
 * An SRT passphrase never goes on the command line, which every local user can read in
 * /proc/PID/cmdline: ffmpeg 5.1 has no option file, so the feed is named in an ffconcat script
 * (`option passphrase …`) that ffmpeg reads from a pipe, leaving nothing on disk either. The concat
 * demuxer passes a sender's timestamp jump through instead of smoothing it: a sender restarting
 * ends the SRT connection, and with it this relay, which is started again and re-anchored.
 */
export function relayPlan(request: FeedRequest, passphrase: string | undefined): RelayPlan {
  const secret = request.protocol === 'srt' && passphrase !== undefined;
  const url =
    request.protocol === 'udp' ? withQuery(request.url, { fifo_size: '1000000', overrun_nonfatal: '1' }) : request.url;
  const input = secret
    ? ['-f', 'concat', '-safe', '0', '-protocol_whitelist', 'pipe,srt', '-i', `pipe:${RELAY_SCRIPT_FD}`]
    : ['-i', url];
  return {
    args: [
      '-hide_banner',
      '-nostdin',
      '-loglevel',
      'info',
      '-nostats',
      ...Object.entries(PROBE_OPTIONS).flatMap(([name, value]) => [`-${name}`, value]),
      ...input,
      '-map',
      '0:v:0?',
      '-map',
      '0:a:0?',
      '-c',
      'copy',
      '-f',
      'mpegts',
      '-muxdelay',
      '0',
      '-muxpreload',
      '0',
      '-flush_packets',
      '1',
      'pipe:1',
    ],
    script: secret ? ffconcatScript(url, { ...PROBE_OPTIONS, passphrase }) : undefined,
  };
}

/** ffmpeg's quoting (av_get_token): anything between single quotes is literal; a quote is closed, escaped, reopened. */
const quoted = (text: string) => `'${text.replaceAll("'", "'\\''")}'`;

/** Pure: an ffconcat script of one live input with options for its protocol and demuxer. */
export function ffconcatScript(url: string, options: Record<string, string>): string {
  return [
    'ffconcat version 1.0',
    `file ${quoted(url)}`,
    ...Object.entries(options).map(([name, value]) => `option ${name} ${quoted(value)}`),
    '',
  ].join('\n');
}

/**
 * Pure: the passphrase from the environment, checked against SRT's rule (10 to 79 characters) and
 * free of control characters; never echoed.
 */
export function srtPassphrase(value: string | undefined): string | undefined {
  if (value === undefined || value === '') return undefined;
  // biome-ignore lint/suspicious/noControlCharactersInRegex: control characters are exactly what is refused
  if (value.length < 10 || value.length > 79 || /[\0-\x1f\x7f]/.test(value)) {
    throw new ConfigError(
      `${SRT_PASSPHRASE_ENV}: an SRT passphrase is 10 to 79 characters, none of them a control character (its length here: ${value.length})`,
    );
  }
  return value;
}

function withQuery(spec: string, extra: Record<string, string>): string {
  const url = new URL(spec);
  for (const [k, v] of Object.entries(extra)) if (!url.searchParams.has(k)) url.searchParams.set(k, v);
  return url.href;
}

/** Pure: what the feed holds → how it is played (the rules of every source), one line per decision. */
export function feedSourcePolicy(
  request: FeedRequest,
  info: InputInfo,
  profile: Profile,
): { source: FeedSource; reasons: string[] } {
  if (!info.video && !info.audio)
    throw new ConfigError(
      `--source ${feedForLogs(request.url)}: neither a video nor an audio stream in the feed${info.error ? ` (${info.error})` : ''}; an MPEG-TS feed with H.264/HEVC/MPEG-2 video and/or AAC/MP2/AC-3 audio is accepted`,
    );
  const { streams, reasons } = streamPolicy(info, profile);
  return { source: { kind: 'feed', protocol: request.protocol, url: request.url, ...streams }, reasons };
}

/**
 * Pure: the encoder's inputs for a feed: the restamped MPEG-TS on `fd`, its stamps less the run's
 * base (the graph adds it back); a missing stream stood in for by a card or silence stamped with
 * the wall clock as it is released.
 */
export function feedInputs(
  source: FeedSource,
  fd: number,
  audio: AudioFormat,
): SourceInputs & { anchored: { video: boolean; audio: boolean } } {
  const args = [
    '-f',
    'mpegts',
    '-thread_queue_size',
    '512',
    '-probesize',
    '1000000',
    '-analyzeduration',
    '1000000',
    '-i',
    `pipe:${fd}`,
    ...(source.hasVideo ? [] : noCameraInput(source.width, source.height, source.framerate)),
    ...(source.hasAudio ? [] : noMicrophoneInput(audio)),
  ];
  return { args, ...playedStreamMaps(source), anchored: { video: source.hasVideo, audio: source.hasAudio } };
}
