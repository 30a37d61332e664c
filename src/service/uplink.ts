// Whether an origin's uplink keeps up with the ladder, and when to shed the top rendition for it.
// Pure: fed once a second with what the output holds unacknowledged and what it got through.

export interface UplinkSettings {
  segdur: number;
  /** The ladder's rate, all tracks, bits per second. */
  ladderBitsPerSecond: number;
  /** The rate left once the top rendition is shed. */
  shedBitsPerSecond: number;
  shed: boolean;
  graceSeconds: number;
  restoreSeconds: number;
}

export type UplinkAction = { type: 'alarm'; raised: boolean; detail: string } | { type: 'shed' } | { type: 'restore' };

/** The longest the restore wait grows to after restores that did not hold. */
const MAX_RESTORE_SECONDS = 600;

/**
 * Slow: more unacknowledged than a segment in flight plus 2 s of what is sent (the origin does not
 * take media as fast as it is made; goodput then is below the rate). Clear: under a segment plus
 * 0.5 s. Slow for `graceSeconds` sheds the top rendition (at the next segment boundary, by the
 * output); clear for `restoreSeconds` brings it back, and a restore that turns slow again within
 * the grace doubles the next wait (at most 10 minutes): an uplink that cannot carry the ladder is
 * probed less and less often.
 */
export class UplinkMonitor {
  readonly #settings: UplinkSettings;
  #slowSince: number | undefined;
  #clearSince: number | undefined;
  #alarmed = false;
  #shed = false;
  #restoredAt: number | undefined;
  #restoreSeconds: number;

  constructor(settings: UplinkSettings) {
    this.#settings = settings;
    this.#restoreSeconds = settings.restoreSeconds;
  }

  get shed(): boolean {
    return this.#shed;
  }

  update(now: number, backlogBytes: number, goodputBitsPerSecond: number | undefined): UplinkAction[] {
    const { segdur, graceSeconds } = this.#settings;
    const rate = this.#shed ? this.#settings.shedBitsPerSecond : this.#settings.ladderBitsPerSecond;
    const backlogSeconds = (backlogBytes * 8) / rate;
    const actions: UplinkAction[] = [];
    const goodput =
      goodputBitsPerSecond === undefined ? 'not measured yet' : `${(goodputBitsPerSecond / 1e6).toFixed(2)} Mb/s`;
    if (backlogSeconds > segdur + 2) {
      this.#clearSince = undefined;
      this.#slowSince ??= now;
      if (!this.#alarmed) {
        this.#alarmed = true;
        actions.push({
          type: 'alarm',
          raised: true,
          detail: `the origin takes media slower than it is made: ${backlogSeconds.toFixed(1)} s unacknowledged, goodput ${goodput} for ${(rate / 1e6).toFixed(2)} Mb/s`,
        });
      }
      if (this.#settings.shed && !this.#shed && now - this.#slowSince >= graceSeconds * 1000) {
        this.#shed = true;
        if (this.#restoredAt !== undefined && now - this.#restoredAt < (graceSeconds + 2 * segdur + 2) * 1000) {
          this.#restoreSeconds = Math.min(MAX_RESTORE_SECONDS, this.#restoreSeconds * 2);
        }
        actions.push({ type: 'shed' });
      }
    } else if (backlogSeconds < segdur + 0.5) {
      this.#slowSince = undefined;
      this.#clearSince ??= now;
      if (this.#alarmed && !this.#shed) {
        this.#alarmed = false;
        actions.push({ type: 'alarm', raised: false, detail: `the origin keeps up again (goodput ${goodput})` });
      }
      if (this.#shed && now - this.#clearSince >= this.#restoreSeconds * 1000) {
        this.#shed = false;
        this.#restoredAt = now;
        this.#clearSince = now;
        if (this.#alarmed) {
          this.#alarmed = false;
          actions.push({
            type: 'alarm',
            raised: false,
            detail: `the origin kept up for ${this.#restoreSeconds} s without the top rendition: restoring it`,
          });
        }
        actions.push({ type: 'restore' });
      }
    }
    return actions;
  }

  /** Seconds the next restore waits for (doubled after restores that did not hold). */
  get restoreSeconds(): number {
    return this.#restoreSeconds;
  }
}
