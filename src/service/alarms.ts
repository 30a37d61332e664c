import type { Profile } from '../config/schema.ts';
import type { DetectorEvent, DetectorKind } from '../encode/detectors.ts';

export interface AlarmChange {
  name: DetectorKind;
  raised: boolean;
  detail: string;
}

const WHAT: Record<DetectorKind, string> = {
  silence: 'the sound is silent',
  black: 'the picture is black',
  freeze: 'the picture is frozen',
};

/**
 * Pure: the detectors' marks → alarms. Silence and freeze are marked by ffmpeg once they lasted
 * their duration; black is marked at its first frame, so it is raised here after its duration.
 * A new encoder run starts its detectors afresh: what was raised is cleared and comes back if it
 * is still so.
 */
export class AlarmTracker {
  readonly #alarms: Profile['alarms'];
  readonly #raised = new Set<DetectorKind>();
  #blackSince: number | undefined;

  constructor(alarms: Profile['alarms']) {
    this.#alarms = alarms;
  }

  get raised(): ReadonlySet<DetectorKind> {
    return this.#raised;
  }

  #change(name: DetectorKind, raised: boolean, detail: string): AlarmChange[] {
    if (this.#raised.has(name) === raised) return [];
    if (raised) this.#raised.add(name);
    else this.#raised.delete(name);
    return [{ name, raised, detail }];
  }

  onDetector(event: DetectorEvent, now: number): AlarmChange[] {
    const seconds = this.#alarms[event.kind].seconds;
    if (event.kind === 'black') {
      if (event.edge === 'start') {
        this.#blackSince ??= now;
        return this.tick(now);
      }
      this.#blackSince = undefined;
    }
    if (event.edge === 'start') return this.#change(event.kind, true, `${WHAT[event.kind]} (for ${seconds} s or more)`);
    return this.#change(event.kind, false, `${WHAT[event.kind].replace(' is ', ' is no longer ')}`);
  }

  tick(now: number): AlarmChange[] {
    const seconds = this.#alarms.black.seconds;
    if (this.#blackSince !== undefined && now - this.#blackSince >= seconds * 1000)
      return this.#change('black', true, `${WHAT.black} (for ${seconds} s or more)`);
    return [];
  }

  /** A new encoder run: its detectors know nothing yet. */
  reset(): AlarmChange[] {
    this.#blackSince = undefined;
    return [...this.#raised].flatMap((name) =>
      this.#change(name, false, 'the encoder restarted: detection starts again'),
    );
  }
}
