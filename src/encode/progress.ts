/** Pure parser for ffmpeg's `-progress` output: blocks of key=value lines ending with `progress=…`. */

export interface EncoderProgress {
  frame: number;
  fps: number;
  /** Total output bitrate in kbit/s, or undefined while ffmpeg says N/A. */
  bitrateKbps: number | undefined;
  totalSize: number | undefined;
  outTimeUs: number | undefined;
  dupFrames: number;
  dropFrames: number;
  /** Encoding speed relative to real time (1 = real time), undefined while N/A. */
  speed: number | undefined;
  /** Per output stream quantiser, keyed `file_stream` as ffmpeg names it (`0_0`). */
  quantisers: Record<string, number>;
  ended: boolean;
}

const numberOrUndefined = (value: string | undefined): number | undefined => {
  if (value === undefined) return undefined;
  const parsed = Number.parseFloat(value);
  return Number.isFinite(parsed) ? parsed : undefined;
};

export function progressFromFields(fields: ReadonlyMap<string, string>): EncoderProgress {
  const quantisers: Record<string, number> = {};
  for (const [key, value] of fields) {
    const match = /^stream_(\d+_\d+)_q$/.exec(key);
    const q = numberOrUndefined(value);
    if (match?.[1] && q !== undefined) quantisers[match[1]] = q;
  }
  return {
    frame: numberOrUndefined(fields.get('frame')) ?? 0,
    fps: numberOrUndefined(fields.get('fps')) ?? 0,
    bitrateKbps: numberOrUndefined(fields.get('bitrate')),
    totalSize: numberOrUndefined(fields.get('total_size')),
    outTimeUs: numberOrUndefined(fields.get('out_time_us')),
    dupFrames: numberOrUndefined(fields.get('dup_frames')) ?? 0,
    dropFrames: numberOrUndefined(fields.get('drop_frames')) ?? 0,
    speed: numberOrUndefined(fields.get('speed')?.replace(/x$/, '')),
    quantisers,
    ended: fields.get('progress') === 'end',
  };
}

/** Incremental: feed text as it arrives (split anywhere), get each completed block. */
export class ProgressParser {
  #pending = '';
  #fields = new Map<string, string>();

  push(text: string): EncoderProgress[] {
    const lines = (this.#pending + text).split(/\r?\n/);
    this.#pending = lines.pop() ?? '';
    const completed: EncoderProgress[] = [];
    for (const line of lines) {
      const equals = line.indexOf('=');
      if (equals <= 0) continue;
      const key = line.slice(0, equals).trim();
      this.#fields.set(key, line.slice(equals + 1).trim());
      if (key === 'progress') {
        completed.push(progressFromFields(this.#fields));
        this.#fields = new Map();
      }
    }
    return completed;
  }
}
