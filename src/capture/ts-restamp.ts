// Pure: an MPEG-TS feed put on this machine's wall clock. The sender's clock (its PTS/DTS/PCR)
// is mapped by one offset shared by every stream, so the feed's own A/V relation is kept exactly;
// the offset follows the sender's drift against our clock, and moves only at segment boundaries.

const PACKET = 188;
const SYNC = 0x47;
const WRAP = 2 ** 33;
const CLOCK = 90_000;

export interface RestampOptions {
  segdur: number;
  /** The wall-clock seconds subtracted from what is written (kept within 33 bits; the encoder adds it back). */
  base: number;
  /** The arrival window whose earliest packet per stream defines the offset. */
  windowSeconds?: number;
  /** How far the offset may move at one boundary, per second of segment (the sender's drift is ~0.05 ‰). */
  maxSlewPerSecond?: number;
  /** Beyond this the sender's clock jumped (a restart): re-anchored at once. */
  jumpSeconds?: number;
  /** A feed silent this long and back is anchored anew (the sender restarted, or the path came back). */
  gapSeconds?: number;
  /** After an anchor, the offset follows the evidence freely this long (the first packets may come in a burst). */
  settleSeconds?: number;
  /**
   * Passthrough (the video is copied, not encoded): the feed starts at a video keyframe, mapped
   * onto a segment boundary, and the offset then stays put so every keyframe a whole number of
   * segments later lands on one too. The drift is taken up a whole segment at a time (a
   * re-anchor) when the feed would otherwise run later than its mapped time.
   */
  keyframeGrid?: boolean;
  /**
   * Keyframe grid: how late against its mapped time the feed may run before the offset moves a
   * segment (an encoded chunk goes out ~0.2 s after its media time anyway). The anchor allows half
   * of it, so the mapping adds less latency on average and drift has the other half before a step.
   */
  lateToleranceSeconds?: number;
}

export interface RestampEvent {
  kind: 'anchored' | 'jump' | 'offGrid';
  offsetSeconds: number;
  detail: string;
}

/** The earliest value of the last `windowSeconds` of (time, value) samples (a monotonic deque). */
class WindowMinimum {
  readonly #samples: { at: number; value: number }[] = [];
  readonly windowSeconds: number;
  constructor(windowSeconds: number) {
    this.windowSeconds = windowSeconds;
  }
  add(at: number, value: number): void {
    while (this.#samples.length && this.#samples.at(-1)!.value >= value) this.#samples.pop();
    this.#samples.push({ at, value });
    while (this.#samples[0]!.at < at - this.windowSeconds) this.#samples.shift();
  }
  get value(): number | undefined {
    return this.#samples[0]?.value;
  }
}

const read33 = (b: Uint8Array, i: number) =>
  ((b[i]! >> 1) & 0x07) * 2 ** 30 +
  ((b[i + 1]! << 22) | ((b[i + 2]! >> 1) << 15) | (b[i + 3]! << 7) | (b[i + 4]! >> 1));

function write33(b: Uint8Array, i: number, value: number): void {
  const prefix = b[i]! & 0xf0;
  b[i] = prefix | ((Math.floor(value / 2 ** 30) & 0x07) << 1) | 1;
  const low = value % 2 ** 30;
  b[i + 1] = (low >>> 22) & 0xff;
  b[i + 2] = (((low >>> 15) & 0x7f) << 1) | 1;
  b[i + 3] = (low >>> 7) & 0xff;
  b[i + 4] = ((low & 0x7f) << 1) | 1;
}

const readPcrBase = (b: Uint8Array, i: number) =>
  b[i]! * 2 ** 25 + ((b[i + 1]! << 17) | (b[i + 2]! << 9) | (b[i + 3]! << 1) | (b[i + 4]! >> 7));

function writePcrBase(b: Uint8Array, i: number, value: number): void {
  b[i] = Math.floor(value / 2 ** 25) & 0xff;
  const low = value % 2 ** 25;
  b[i + 1] = (low >>> 17) & 0xff;
  b[i + 2] = (low >>> 9) & 0xff;
  b[i + 3] = (low >>> 1) & 0xff;
  b[i + 4] = (b[i + 4]! & 0x7f) | ((low & 1) << 7);
}

/** Keyframe grid: how late the feed may run against its mapped time (see RestampOptions.lateToleranceSeconds). */
export const KEYFRAME_GRID_LATE_TOLERANCE_SECONDS = 0.3;

/** A feed missing keyframes at segment starts is reported again only after this many segments that had them. */
const KEYED_RUN = 10;

/** An H.264 IDR or SPS starts in the PES bytes from `from` (a keyframe when the sender set no random-access flag). */
function startsWithKeyframe(b: Uint8Array, from: number): boolean {
  for (let i = from; i + 3 < PACKET; i++) {
    if (b[i] === 0 && b[i + 1] === 0 && b[i + 2] === 1) {
      const type = b[i + 3]! & 0x1f;
      if (type === 5 || type === 7) return true;
      if (type === 1) return false;
    }
  }
  return false;
}

/** PES streams that carry media timestamps: MPEG audio/video, private stream 1 (AC-3, subtitles). */
const timedStream = (id: number) => (id >= 0xc0 && id <= 0xef) || id === 0xbd;

export class TsRestamper {
  readonly #options: Required<RestampOptions>;
  #pending: Uint8Array = new Uint8Array(0);
  #lastRaw: number | undefined;
  #unwrapped = 0;
  readonly #earliest = new Map<number, WindowMinimum>();
  #offset: number | undefined;
  #segment: number | undefined;
  #behindSince: number | undefined;
  #anchoredAt = 0;
  #lastArrival: number | undefined;
  /** Keyframe grid: when the evidence now gathered began, and what the next anchor is to say. */
  #evidenceSince: number | undefined;
  #nextAnchor: { kind: RestampEvent['kind']; detail: string } = {
    kind: 'anchored',
    detail: 'the feed is on the wall clock',
  };
  /** Keyframe grid: the streams whose bytes flow since the anchor (each from the start of a PES). */
  readonly #flowing = new Set<number>();
  readonly #timedPids = new Set<number>();
  #videoPid: number | undefined;
  #lastKeyframe: number | undefined;
  /** Keyframe grid: segments in a row that started with a keyframe (a missing one is said after a good run). */
  #keyedInARow = Infinity;
  events: RestampEvent[] = [];
  packets = 0;
  resyncs = 0;
  /** Sender seconds between the video's last two keyframes. */
  keyframeInterval: number | undefined;

  constructor(options: RestampOptions) {
    this.#options = {
      windowSeconds: 10,
      maxSlewPerSecond: 0.002,
      jumpSeconds: 1,
      gapSeconds: 1,
      settleSeconds: 3,
      keyframeGrid: false,
      lateToleranceSeconds: KEYFRAME_GRID_LATE_TOLERANCE_SECONDS,
      ...options,
    };
  }

  /** The wall-clock seconds written timestamps count from; the encoder run that reads them adds it back. */
  set base(seconds: number) {
    this.#options.base = seconds;
  }

  get offsetSeconds(): number | undefined {
    return this.#offset;
  }

  /** Ticks from the last timestamp seen to `raw`, the shorter way round the 33-bit wrap (26.5 h). */
  #ticksSinceLast(raw: number): number {
    const delta = raw - this.#lastRaw!;
    return delta > WRAP / 2 ? delta - WRAP : delta < -WRAP / 2 ? delta + WRAP : delta;
  }

  /** Sender seconds (unwrapped) of a 33-bit timestamp, continuous across its wrap. */
  #senderSeconds(raw: number): number {
    this.#unwrapped = this.#lastRaw === undefined ? raw : this.#unwrapped + this.#ticksSinceLast(raw);
    this.#lastRaw = raw;
    return this.#unwrapped / CLOCK;
  }

  /** Sender seconds of a raw timestamp near the last one seen, without moving the reference. */
  #near(raw: number): number {
    return this.#lastRaw === undefined ? raw / CLOCK : (this.#unwrapped + this.#ticksSinceLast(raw)) / CLOCK;
  }

  #written(senderSeconds: number): number {
    const ticks = Math.round((senderSeconds + this.#offset! - this.#options.base) * CLOCK);
    return ((ticks % WRAP) + WRAP) % WRAP;
  }

  /** The old evidence is void (a silence, a jump): the next anchor starts afresh from `arrival`. */
  #forget(arrival: number, next: { kind: RestampEvent['kind']; detail: string }): void {
    this.#earliest.clear();
    this.#offset = undefined;
    this.#segment = undefined;
    this.#behindSince = undefined;
    this.#flowing.clear();
    this.#evidenceSince = arrival;
    this.#nextAnchor = next;
  }

  #anchor(offset: number, arrival: number): void {
    this.#offset = offset;
    this.#anchoredAt = arrival;
    this.#behindSince = undefined;
    this.events.push({ ...this.#nextAnchor, offsetSeconds: offset });
  }

  /** A PES start seen at `arrival`: the offset's evidence, and (at a boundary) its update. */
  #observe(pid: number, senderSeconds: number, arrival: number, video: boolean, keyframe: boolean): void {
    const grid = this.#options.keyframeGrid;
    const silent = this.#lastArrival !== undefined && arrival - this.#lastArrival > this.#options.gapSeconds;
    this.#lastArrival = arrival;
    this.#evidenceSince ??= arrival;
    if (silent) this.#forget(arrival, { kind: 'anchored', detail: 'the feed is back, on the wall clock' });
    if (video && keyframe && pid === this.#videoPid) {
      if (this.#lastKeyframe !== undefined && senderSeconds > this.#lastKeyframe)
        this.keyframeInterval = senderSeconds - this.#lastKeyframe;
      this.#lastKeyframe = senderSeconds;
    }
    let earliest = this.#earliest.get(pid);
    if (!earliest) {
      earliest = new WindowMinimum(this.#options.windowSeconds);
      this.#earliest.set(pid, earliest);
    }
    earliest.add(arrival, arrival - senderSeconds);
    // Every stream arrives no later than its mapped time: the latest of the streams' earliest.
    const target = Math.max(...[...this.#earliest.values()].map((w) => w.value ?? -Infinity));
    if (this.#offset === undefined) {
      if (!grid) {
        this.#anchor(target, arrival);
        return;
      }
      // The first packets may come in a burst: the evidence settles before the grid is fixed.
      if (video && keyframe && pid === this.#videoPid && arrival - this.#evidenceSince >= this.#options.settleSeconds)
        this.#anchor(this.#gridOffset(senderSeconds, target), arrival);
      return;
    }
    if (!grid && arrival - this.#anchoredAt < this.#options.settleSeconds) {
      this.#offset = target;
      return;
    }
    // Not drift: the sender's clock jumped (it restarted). A packet far ahead of its mapped time
    // proves it at once; far behind, it could be a burst after a network stall, so only when that
    // lasts. The old evidence is void either way. (On the keyframe grid the offset runs up to a
    // segment ahead of the evidence by design.)
    const deviation = arrival - senderSeconds - this.#offset;
    const ahead = this.#options.jumpSeconds + (grid ? this.#options.segdur : 0);
    if (deviation <= this.#options.jumpSeconds) this.#behindSince = undefined;
    else this.#behindSince ??= arrival;
    const behindFor = this.#behindSince === undefined ? 0 : arrival - this.#behindSince;
    if (deviation < -ahead || behindFor > 2 * this.#options.jumpSeconds) {
      const next = { kind: 'jump' as const, detail: `the sender's clock jumped by ${(-deviation).toFixed(3)} s` };
      this.#forget(arrival, next);
      earliest = new WindowMinimum(this.#options.windowSeconds);
      this.#earliest.set(pid, earliest);
      earliest.add(arrival, arrival - senderSeconds);
      if (!grid) this.#anchor(arrival - senderSeconds, arrival);
      return;
    }
    if (grid) {
      this.#followOnGrid(senderSeconds, target, video, keyframe);
      return;
    }
    if (!video) return;
    const segment = Math.floor((senderSeconds + this.#offset) / this.#options.segdur);
    if (this.#segment !== undefined && segment !== this.#segment) {
      const slew = this.#options.maxSlewPerSecond * this.#options.segdur;
      this.#offset += Math.max(-slew, Math.min(slew, target - this.#offset));
    }
    this.#segment = segment;
  }

  /** The offset that puts a keyframe at `senderSeconds` on the first boundary not before the evidence, less half the late tolerance. */
  #gridOffset(senderSeconds: number, target: number): number {
    const S = this.#options.segdur;
    return Math.ceil((senderSeconds + target - this.#options.lateToleranceSeconds / 2) / S - 1e-9) * S - senderSeconds;
  }

  /**
   * Keyframe grid, anchored: every segment must start with a keyframe (said once when it stops
   * doing so); the offset moves by whole segments only, when the feed runs late against its
   * mapped time or more than a segment early.
   */
  #followOnGrid(senderSeconds: number, target: number, video: boolean, keyframe: boolean): void {
    const S = this.#options.segdur;
    const tolerance = this.#options.lateToleranceSeconds;
    const lead = this.#offset! - target;
    const steps = lead < -tolerance ? Math.ceil(-lead / S) : lead > S + tolerance ? -Math.floor(lead / S) : 0;
    if (steps !== 0) {
      this.#offset! += steps * S;
      this.#segment = undefined;
      this.events.push({
        kind: 'jump',
        offsetSeconds: this.#offset!,
        detail: `the feed ran ${steps > 0 ? `${(-lead * 1000).toFixed(0)} ms late against` : `${((lead - S) * 1000).toFixed(0)} ms further ahead of`} its place on the wall clock: moved ${Math.abs(steps)} segment(s) ${steps > 0 ? 'later' : 'earlier'}, keyframes still on the boundaries`,
      });
      return;
    }
    if (!video) return;
    const ticks = Math.round((senderSeconds + this.#offset!) * CLOCK);
    const segmentTicks = Math.round(S * CLOCK);
    const segment = Math.floor(ticks / segmentTicks);
    if (this.#segment !== undefined && segment !== this.#segment) {
      const keyed = keyframe && ticks % segmentTicks === 0;
      if (!keyed && this.#keyedInARow >= KEYED_RUN) {
        const every =
          this.keyframeInterval === undefined
            ? ''
            : ` (its keyframes come every ${this.keyframeInterval.toFixed(3)} s)`;
        this.events.push({
          kind: 'offGrid',
          offsetSeconds: this.#offset!,
          detail: `passthrough: the feed has no keyframe where segment ${segment} starts${every}; a segment without one is left out`,
        });
      }
      this.#keyedInARow = keyed ? this.#keyedInARow + 1 : 0;
    }
    this.#segment = segment;
  }

  /** One packet, restamped in place; false: left out (on the keyframe grid, bytes from before the anchor). */
  #packet(b: Uint8Array, arrival: number): boolean {
    const pusi = (b[1]! & 0x40) !== 0;
    const pid = ((b[1]! & 0x1f) << 8) | b[2]!;
    const control = (b[3]! >> 4) & 0x03;
    const adaptation = (control & 0x02) !== 0 ? b[4]! : undefined;
    const randomAccess = adaptation !== undefined && adaptation > 0 && (b[5]! & 0x40) !== 0;
    const pcrAt = adaptation !== undefined && adaptation >= 7 && adaptation <= 183 && b[5]! & 0x10 ? 6 : undefined;
    const payload = adaptation === undefined ? 4 : 5 + adaptation;
    const grid = this.#options.keyframeGrid;
    // The PES first: a feed's first PCR is usually in the packet that starts its first PES.
    if (control & 0x01 && pusi && payload + 14 <= PACKET) {
      if (!this.#pes(b, payload, pid, arrival, randomAccess)) return false;
    } else if (grid && this.#timedPids.has(pid) && !this.#flowing.has(pid)) return false;
    if (pcrAt !== undefined) {
      if (this.#offset === undefined) return !grid;
      writePcrBase(b, pcrAt, this.#written(this.#near(readPcrBase(b, pcrAt))));
    }
    return true;
  }

  #pes(b: Uint8Array, payload: number, pid: number, arrival: number, randomAccess: boolean): boolean {
    if (b[payload] !== 0 || b[payload + 1] !== 0 || b[payload + 2] !== 1 || !timedStream(b[payload + 3]!)) return true;
    const grid = this.#options.keyframeGrid;
    this.#timedPids.add(pid);
    const flags = b[payload + 7]! >> 6;
    if (!(flags & 0x02)) return !grid || this.#flowing.has(pid);
    const video = b[payload + 3]! >= 0xe0;
    if (video) this.#videoPid ??= pid;
    const keyframe = video && (randomAccess || startsWithKeyframe(b, payload + 9 + b[payload + 8]!));
    const ptsAt = payload + 9;
    const dtsAt = flags === 0x03 && payload + 19 <= PACKET ? payload + 14 : undefined;
    const sender = this.#senderSeconds(read33(b, dtsAt ?? ptsAt));
    this.#observe(pid, sender, arrival, video, keyframe);
    if (this.#offset === undefined) return false;
    if (grid) this.#flowing.add(pid);
    write33(b, ptsAt, this.#written(this.#near(read33(b, ptsAt))));
    if (dtsAt !== undefined) write33(b, dtsAt, this.#written(sender));
    return true;
  }

  /** Feed bytes as they arrived (`arrival`: wall-clock seconds); whole packets come back, restamped. */
  push(bytes: Uint8Array, arrival: number): Uint8Array {
    let data = bytes;
    if (this.#pending.length) {
      data = new Uint8Array(this.#pending.length + bytes.length);
      data.set(this.#pending);
      data.set(bytes, this.#pending.length);
    }
    const out = new Uint8Array(data.length - (data.length % PACKET));
    let written = 0;
    let i = 0;
    while (i + PACKET <= data.length) {
      if (data[i] !== SYNC) {
        this.resyncs++;
        i++;
        while (
          i + PACKET <= data.length &&
          !(data[i] === SYNC && (i + PACKET === data.length || data[i + PACKET] === SYNC))
        )
          i++;
        continue;
      }
      const packet = out.subarray(written, written + PACKET);
      packet.set(data.subarray(i, i + PACKET));
      if (this.#packet(packet, arrival)) written += PACKET;
      this.packets++;
      i += PACKET;
    }
    this.#pending = data.slice(i);
    return out.subarray(0, written);
  }
}
