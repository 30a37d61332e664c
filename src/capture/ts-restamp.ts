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
}

export interface RestampEvent {
  kind: 'anchored' | 'jump';
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

const read33 = (b: Uint8Array, i: number) => (b[i]! >> 1 & 0x07) * 2 ** 30 + (b[i + 1]! << 22 | (b[i + 2]! >> 1) << 15 | b[i + 3]! << 7 | b[i + 4]! >> 1);

function write33(b: Uint8Array, i: number, value: number): void {
  const prefix = b[i]! & 0xf0;
  b[i] = prefix | (Math.floor(value / 2 ** 30) & 0x07) << 1 | 1;
  const low = value % 2 ** 30;
  b[i + 1] = (low >>> 22) & 0xff;
  b[i + 2] = ((low >>> 15) & 0x7f) << 1 | 1;
  b[i + 3] = (low >>> 7) & 0xff;
  b[i + 4] = (low & 0x7f) << 1 | 1;
}

const readPcrBase = (b: Uint8Array, i: number) => b[i]! * 2 ** 25 + (b[i + 1]! << 17 | b[i + 2]! << 9 | b[i + 3]! << 1 | b[i + 4]! >> 7);

function writePcrBase(b: Uint8Array, i: number, value: number): void {
  b[i] = Math.floor(value / 2 ** 25) & 0xff;
  const low = value % 2 ** 25;
  b[i + 1] = (low >>> 17) & 0xff;
  b[i + 2] = (low >>> 9) & 0xff;
  b[i + 3] = (low >>> 1) & 0xff;
  b[i + 4] = (b[i + 4]! & 0x7f) | (low & 1) << 7;
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
  events: RestampEvent[] = [];
  packets = 0;
  resyncs = 0;

  constructor(options: RestampOptions) {
    this.#options = { windowSeconds: 10, maxSlewPerSecond: 0.002, jumpSeconds: 1, gapSeconds: 1, settleSeconds: 3, ...options };
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

  /** A PES start seen at `arrival`: the offset's evidence, and (at a boundary) its update. */
  #observe(pid: number, senderSeconds: number, arrival: number, video: boolean): void {
    const silent = this.#lastArrival !== undefined && arrival - this.#lastArrival > this.#options.gapSeconds;
    this.#lastArrival = arrival;
    if (silent) {
      this.#earliest.clear();
      this.#offset = undefined;
      this.#segment = undefined;
      this.#behindSince = undefined;
    }
    let earliest = this.#earliest.get(pid);
    if (!earliest) this.#earliest.set(pid, (earliest = new WindowMinimum(this.#options.windowSeconds)));
    earliest.add(arrival, arrival - senderSeconds);
    // Every stream arrives no later than its mapped time: the latest of the streams' earliest.
    const target = Math.max(...[...this.#earliest.values()].map((w) => w.value ?? -Infinity));
    if (this.#offset === undefined) {
      this.#offset = target;
      this.#anchoredAt = arrival;
      this.events.push({ kind: 'anchored', offsetSeconds: target, detail: silent ? 'the feed is back, on the wall clock' : 'the feed is on the wall clock' });
      return;
    }
    if (arrival - this.#anchoredAt < this.#options.settleSeconds) {
      this.#offset = target;
      return;
    }
    // Not drift: the sender's clock jumped (it restarted). A packet far ahead of its mapped time
    // proves it at once; far behind, it could be a burst after a network stall, so only when that
    // lasts. The old evidence is void either way.
    const deviation = arrival - senderSeconds - this.#offset;
    if (deviation <= this.#options.jumpSeconds) this.#behindSince = undefined;
    else this.#behindSince ??= arrival;
    const behindFor = this.#behindSince === undefined ? 0 : arrival - this.#behindSince;
    if (deviation < -this.#options.jumpSeconds || behindFor > 2 * this.#options.jumpSeconds) {
      this.#earliest.clear();
      this.#earliest.set(pid, (earliest = new WindowMinimum(this.#options.windowSeconds)));
      earliest.add(arrival, arrival - senderSeconds);
      this.events.push({ kind: 'jump', offsetSeconds: arrival - senderSeconds, detail: `the sender's clock jumped by ${(-deviation).toFixed(3)} s` });
      this.#offset = arrival - senderSeconds;
      this.#anchoredAt = arrival;
      this.#behindSince = undefined;
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

  #packet(b: Uint8Array, arrival: number): void {
    const pusi = (b[1]! & 0x40) !== 0;
    const pid = ((b[1]! & 0x1f) << 8) | b[2]!;
    const control = (b[3]! >> 4) & 0x03;
    const adaptation = (control & 0x02) !== 0 ? b[4]! : undefined;
    const pcrAt = adaptation !== undefined && adaptation >= 7 && adaptation <= 183 && (b[5]! & 0x10) ? 6 : undefined;
    const payload = adaptation === undefined ? 4 : 5 + adaptation;
    // The PES first: a feed's first PCR is usually in the packet that starts its first PES.
    if (control & 0x01 && pusi && payload + 14 <= PACKET) this.#pes(b, payload, pid, arrival);
    if (pcrAt !== undefined && this.#offset !== undefined) writePcrBase(b, pcrAt, this.#written(this.#near(readPcrBase(b, pcrAt))));
  }

  #pes(b: Uint8Array, payload: number, pid: number, arrival: number): void {
    if (b[payload] !== 0 || b[payload + 1] !== 0 || b[payload + 2] !== 1 || !timedStream(b[payload + 3]!)) return;
    const flags = b[payload + 7]! >> 6;
    if (!(flags & 0x02)) return;
    const ptsAt = payload + 9;
    const dtsAt = flags === 0x03 && payload + 19 <= PACKET ? payload + 14 : undefined;
    const sender = this.#senderSeconds(read33(b, dtsAt ?? ptsAt));
    this.#observe(pid, sender, arrival, b[payload + 3]! >= 0xe0);
    write33(b, ptsAt, this.#written(this.#near(read33(b, ptsAt))));
    if (dtsAt !== undefined) write33(b, dtsAt, this.#written(sender));
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
        while (i + PACKET <= data.length && !(data[i] === SYNC && (i + PACKET === data.length || data[i + PACKET] === SYNC))) i++;
        continue;
      }
      const packet = out.subarray(written, written + PACKET);
      packet.set(data.subarray(i, i + PACKET));
      this.#packet(packet, arrival);
      this.packets++;
      written += PACKET;
      i += PACKET;
    }
    this.#pending = data.slice(i);
    return out.subarray(0, written);
  }
}
