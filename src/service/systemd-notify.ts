import { execa } from 'execa';
import type { Logger } from '../log.ts';

// systemd's notify protocol (sd_notify(3)) for Type=notify. Node has no unix datagram sockets, so
// each message goes through `systemd-notify`, which (systemd ≥ 246) waits until the manager has
// read it: no race with the short-lived sender, given NotifyAccess=all in the unit.

/** How often STATUS= is refreshed when it changed. */
const STATUS_EVERY_MS = 5000;

export interface NotifyInputs {
  /** The first init segment reached an output. */
  ready: boolean;
  /** Chunks (source or slate) came out of the packager lately. */
  flowing: boolean;
  status: string;
}

/**
 * Pure: what to tell systemd now. READY=1 once (repeated with each STATUS= after, which systemd
 * ignores, so a lost first message costs nothing), STATUS= when it changed (at most every 5 s),
 * WATCHDOG=1 every half WatchdogSec only while chunks flow: a wedged pipeline is restarted by
 * systemd, a quiet origin or a missing camera (slate on air) is not.
 */
export class NotifyPlan {
  readonly #watchdogMs: number | undefined;
  #readySent = false;
  #statusAt = -Infinity;
  #lastStatus = '';
  #watchdogAt = -Infinity;

  constructor(watchdogUsec: number | undefined) {
    this.#watchdogMs = watchdogUsec ? watchdogUsec / 2000 : undefined;
  }

  /**
   * How often `next` should be asked: twice per ping interval at least, so a tick that comes a
   * little early (timers jitter on a loaded box) delays a ping by half an interval, never a whole one.
   */
  get tickMs(): number {
    return Math.min(1000, (this.#watchdogMs ?? 2000) / 2);
  }

  next(now: number, inputs: NotifyInputs): string[] {
    const out: string[] = [];
    const firstReady = inputs.ready && !this.#readySent;
    if (firstReady || (inputs.status !== this.#lastStatus && now - this.#statusAt >= STATUS_EVERY_MS)) {
      this.#readySent ||= firstReady;
      if (this.#readySent) out.push('READY=1');
      out.push(`STATUS=${inputs.status.replace(/\n/g, ' ')}`);
      this.#lastStatus = inputs.status;
      this.#statusAt = now;
    }
    // Not before READY: chunks may flow before the first init is written out (a slow disk on a
    // loaded box), and a service that pings the watchdog before it is up says it is up.
    if (
      this.#watchdogMs !== undefined &&
      this.#readySent &&
      inputs.flowing &&
      now - this.#watchdogAt >= this.#watchdogMs
    ) {
      out.push('WATCHDOG=1');
      this.#watchdogAt = now;
    }
    return out;
  }
}

/** Sends notify messages through systemd-notify, one at a time, when NOTIFY_SOCKET is set. */
export class SystemdNotifier {
  readonly #logger: Logger;
  readonly #command: string;
  #busy = false;
  #queued: string[] = [];
  #disabled: boolean;

  constructor(env: NodeJS.ProcessEnv, logger: Logger, command = 'systemd-notify') {
    this.#disabled = !env['NOTIFY_SOCKET'];
    this.#logger = logger.child({ component: 'systemd' });
    this.#command = command;
  }

  get enabled(): boolean {
    return !this.#disabled;
  }

  send(assignments: readonly string[]): void {
    if (this.#disabled || !assignments.length) return;
    // A newer STATUS= replaces one still waiting; READY and WATCHDOG are kept.
    const status = assignments.some((a) => a.startsWith('STATUS='));
    this.#queued = [
      ...this.#queued.filter((a) => !(status && a.startsWith('STATUS=')) && !assignments.includes(a)),
      ...assignments,
    ];
    void this.#drain();
  }

  async #drain(): Promise<void> {
    if (this.#busy) return;
    this.#busy = true;
    try {
      while (this.#queued.length && !this.#disabled) {
        const message = this.#queued;
        this.#queued = [];
        const result = await execa(this.#command, message, { reject: false, timeout: 5000, stdin: 'ignore' });
        if ((result as { code?: string }).code === 'ENOENT') {
          this.#disabled = true;
          this.#logger.error(
            'NOTIFY_SOCKET is set but systemd-notify is not installed: systemd never hears READY=1 (install systemd, or use Type=simple)',
          );
        } else if (result.exitCode !== 0)
          this.#logger.warn(
            { message: message.filter((m) => !m.startsWith('STATUS=')), stderr: String(result.stderr).slice(0, 300) },
            'systemd-notify failed',
          );
        else this.#logger.debug({ message }, 'notified systemd');
      }
    } finally {
      this.#busy = false;
    }
  }

  /** Resolves when nothing is waiting to be sent (for a clean exit after STOPPING=1). */
  async settled(timeoutMs = 3000): Promise<void> {
    const until = Date.now() + timeoutMs;
    while ((this.#busy || this.#queued.length) && Date.now() < until) await new Promise((r) => setTimeout(r, 20));
  }
}
