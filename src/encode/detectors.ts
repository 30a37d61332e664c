import type { Profile } from '../config/schema.ts';

// Silence, black and frozen picture, detected by ffmpeg on the source as it is encoded. The
// detectors mark the frame where a state begins or ends in its metadata, and `metadata=print`
// logs those marks at once (blackdetect itself logs only when the black ends; silencedetect and
// freezedetect log only at info level, which -loglevel level+info lets through, tagged).

export type DetectorKind = 'silence' | 'black' | 'freeze';

export interface DetectorEvent {
  kind: DetectorKind;
  edge: 'start' | 'end';
  /** The media time ffmpeg gives, in seconds (the stream's own timeline). */
  mediaSeconds: number;
}

/** The picture the video detectors look at: small, so that they cost next to nothing. */
const PROBE_SIZE = '160:90';

const KEYS: Record<string, Omit<DetectorEvent, 'mediaSeconds'>> = {
  'lavfi.silence_start': { kind: 'silence', edge: 'start' },
  'lavfi.silence_end': { kind: 'silence', edge: 'end' },
  'lavfi.black_start': { kind: 'black', edge: 'start' },
  'lavfi.black_end': { kind: 'black', edge: 'end' },
  'lavfi.freezedetect.freeze_start': { kind: 'freeze', edge: 'start' },
  'lavfi.freezedetect.freeze_end': { kind: 'freeze', edge: 'end' },
};

const printKeys = (filter: 'metadata' | 'ametadata', keys: readonly string[]) =>
  keys.map((key) => `${filter}=mode=print:key=${key}`);

/**
 * Pure: the video detectors as the end of a filter-graph branch (fed from a `split`), or undefined
 * when both are off. The black picture is reported at once and timed here (see AlarmTracker);
 * freezedetect waits its own duration.
 */
export function videoDetectorChain(alarms: Profile['alarms']): string | undefined {
  const { black, freeze } = alarms;
  if (!black.enabled && !freeze.enabled) return undefined;
  return [
    `scale=${PROBE_SIZE}:flags=fast_bilinear`,
    ...(black.enabled ? [`blackdetect=d=0:pix_th=${black.pixelThreshold}`] : []),
    ...(freeze.enabled ? [`freezedetect=n=${freeze.noiseDb}dB:d=${freeze.seconds}`] : []),
    ...printKeys('metadata', [
      ...(black.enabled ? ['lavfi.black_start', 'lavfi.black_end'] : []),
      ...(freeze.enabled ? ['lavfi.freezedetect.freeze_start', 'lavfi.freezedetect.freeze_end'] : []),
    ]),
    'nullsink',
  ].join(',');
}

/** Pure: the audio detector, for the audio's own filter chain, or undefined when off. */
export function audioDetectorFilters(alarms: Profile['alarms']): string[] {
  const { silence } = alarms;
  if (!silence.enabled) return [];
  return [
    `silencedetect=n=${silence.thresholdDb}dB:d=${silence.seconds}`,
    ...printKeys('ametadata', ['lavfi.silence_start', 'lavfi.silence_end']),
  ];
}

/** Pure: one line of ffmpeg's stderr (its level tag removed) → a detector's mark, if it is one. */
export function detectorEvent(text: string): DetectorEvent | undefined {
  const match = /^(lavfi\.[\w.]+)=([-+\d.eE]+)\s*$/.exec(text.trim());
  const known = match && KEYS[match[1]!];
  return known ? { ...known, mediaSeconds: Number(match[2]) } : undefined;
}
