import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  clearLatenessMs,
  judgeSecond,
  RealtimeController,
  stepDownTo,
  stepUpTo,
  type RealtimeAction,
  type RealtimeSample,
  type RealtimeSettings,
} from '../../src/run/realtime-controller.ts';

const SETTINGS: RealtimeSettings = {
  segdur: 1,
  steps: 3,
  lateMs: 200,
  graceSeconds: 3,
  holdSegments: 5,
  restoreSeconds: 10,
};

const fine = (now: number): RealtimeSample => ({ now, latenessMs: 55, speed: 1, droppedFrames: 0, cpuWait: 0.02 });
/** As measured on a 2-core box with the encoder pinned to a core a busy loop shares. */
const starved = (now: number, i = 0): RealtimeSample => ({
  now,
  latenessMs: 320 + ((i * 137) % 500),
  speed: 0.7 + ((i * 7) % 20) / 100,
  droppedFrames: i % 3 === 0 ? 2 : 0,
  cpuWait: 0.6,
});

/** Recorded: the first 7 s of a run on a busy box: speed 0.6 → 0.97, duplicated frames. */
const SLOW_START = [
  { latenessMs: 480, speed: 0.61, droppedFrames: 4 },
  { latenessMs: 260, speed: 0.83, droppedFrames: 2 },
  { latenessMs: 240, speed: 0.85, droppedFrames: 2 },
  { latenessMs: 220, speed: 0.88, droppedFrames: 1 },
  { latenessMs: 210, speed: 0.9, droppedFrames: 1 },
  { latenessMs: 205, speed: 0.92, droppedFrames: 1 },
  { latenessMs: 150, speed: 0.96, droppedFrames: 0 },
];

/** Feeds one sample a second from `from` (s) for `seconds`, collecting the actions with their second. */
function run(
  controller: RealtimeController,
  from: number,
  seconds: number,
  make: (now: number, i: number) => RealtimeSample,
): { at: number; action: RealtimeAction }[] {
  const out: { at: number; action: RealtimeAction }[] = [];
  for (let i = 0; i < seconds; i++) {
    const now = (from + i) * 1000;
    for (const action of controller.update(make(now, i))) out.push({ at: from + i, action });
  }
  return out;
}

/** What changes the run or says something: a step, an alarm, a margin (not what is only prepared). */
const decisions = (actions: { at: number; action: RealtimeAction }[]) =>
  actions.filter((a) => a.action.type !== 'prepare');

const steps = (actions: { at: number; action: RealtimeAction }[]) =>
  actions.filter((a) => a.action.type === 'step').map((a) => ({ at: a.at, ...(a.action as { level: number }) }));

describe('the real-time controller', () => {
  it('judges a second: late, slow or dropping is behind; headroom on every measure is clear', () => {
    assert.equal(judgeSecond(fine(0), 200).verdict, 'clear');
    assert.deepEqual(judgeSecond({ ...fine(0), latenessMs: 305 }, 200), {
      verdict: 'behind',
      why: 'chunks 305 ms late (p95)',
      encoderBound: false,
    });
    assert.deepEqual(judgeSecond({ ...fine(0), latenessMs: 305, cpuWait: 0.6 }, 200), {
      verdict: 'behind',
      why: 'chunks 305 ms late (p95), ffmpeg waiting for a CPU 60 % of the time',
      encoderBound: true,
    });
    assert.match(judgeSecond({ ...fine(0), speed: 0.9 }, 200).why, /speed 0\.90x/);
    assert.match(judgeSecond({ ...fine(0), droppedFrames: 3 }, 200).why, /3 frames duplicated or dropped/);
    // Between clear and behind: neither a step down nor a second towards a step up.
    assert.equal(judgeSecond({ ...fine(0), latenessMs: 150 }, 200).verdict, 'neutral');
    // A chunk closes when the next frame comes: at 10 fps a clear second is up to a frame and a quarter of lateMs.
    assert.equal(clearLatenessMs(200, 1000 / 30), 100, '30 fps: half of lateMs');
    assert.equal(clearLatenessMs(200, 50), 100, '20 fps: half of lateMs');
    assert.equal(clearLatenessMs(200, 100), 150, '10 fps');
    assert.equal(judgeSecond({ ...fine(0), latenessMs: 130 }, 200, 100).verdict, 'clear', '10 fps, recorded p95');
    assert.equal(judgeSecond({ ...fine(0), latenessMs: 130 }, 200, 1000 / 30).verdict, 'neutral', '30 fps');
    assert.equal(judgeSecond({ ...fine(0), cpuWait: 0.5 }, 200).verdict, 'neutral');
    assert.equal(judgeSecond({ ...fine(0), cpuWait: 0.5, capacity: 1.1 }, 200).verdict, 'neutral', 'no CPU idle');
    // Waiting on a core shared with a busy process while other CPUs stand idle (recorded in CI).
    assert.equal(judgeSecond({ ...fine(0), latenessMs: 65, cpuWait: 0.63, capacity: 2.2 }, 200).verdict, 'clear');
    // Nothing measured (slate, no progress yet) is clear: nothing says otherwise.
    assert.equal(
      judgeSecond({ now: 0, latenessMs: undefined, speed: undefined, droppedFrames: 0 }, 200).verdict,
      'clear',
    );
  });

  it('a slow start (x264 and the source settling) is held, not judged; what outlasts the hold counts', () => {
    const held = new RealtimeController(SETTINGS);
    held.hold(0);
    // Seconds 5 and 6 are judged (behind, then neutral): short of the 3-second grace.
    assert.deepEqual(decisions(run(held, 0, 30, (now, i) => ({ now, ...(SLOW_START[i] ?? fine(now)) }))), []);
    // The same start without the hold would have stepped down.
    const unheld = new RealtimeController(SETTINGS);
    assert.ok(
      steps(run(unheld, 0, 30, (now, i) => ({ now, ...(SLOW_START[i] ?? fine(now)) }))).length > 0,
      'the hold is what keeps it',
    );
  });

  it("the process's first run: a slow start is held; an encoder a segment and more behind is judged at once", () => {
    const first = new RealtimeController(SETTINGS);
    first.hold(0, { endsPastMs: 1000 });
    assert.deepEqual(decisions(run(first, 0, 30, (now, i) => ({ now, ...(SLOW_START[i] ?? fine(now)) }))), []);
    // Recorded: ultra-ll on half a core, from its first chunk (no speed measured yet in the first second).
    const starvedStart = [
      { latenessMs: 1102, speed: undefined, droppedFrames: 0, cpuWait: 0.9 },
      { latenessMs: 1551, speed: 0.61, droppedFrames: 18, cpuWait: 0.8 },
      { latenessMs: 2137, speed: 0.47, droppedFrames: 6, cpuWait: 0.88 },
      { latenessMs: 2736, speed: 0.42, droppedFrames: 14, cpuWait: 0.79 },
      { latenessMs: 3190, speed: 0.42, droppedFrames: 6, cpuWait: 0.79 },
    ];
    const late = (controller: RealtimeController) =>
      steps(run(controller, 0, 5, (now, i) => ({ now, ...starvedStart[i]! })));
    // Behind since its start, its grace is spent: it steps at once (each second more is backlog
    // the step loses to slate), as soon as the speed says how far where the levels' costs are known.
    const judgedAtOnce = new RealtimeController(SETTINGS);
    judgedAtOnce.hold(0, { endsPastMs: 1000 });
    assert.deepEqual(
      late(judgedAtOnce).map((s) => s.at),
      [0],
      'stepped down at its first chunk, one level (no costs known)',
    );
    const withCosts = new RealtimeController({ ...SETTINGS, costs: [48, 30, 20, 10] });
    withCosts.hold(0, { endsPastMs: 1000 });
    assert.deepEqual(
      late(withCosts).map((s) => ({ at: s.at, level: s.level })),
      [{ at: 1, level: 2 }],
      'the first second with a speed (0.61: 48 × 0.61 × 0.8 = 23.4, 20 fps fits)',
    );
    const heldOut = new RealtimeController(SETTINGS);
    heldOut.hold(0);
    assert.deepEqual(late(heldOut), [], 'a restart is held all the same');
  });

  it('a brief spike (2 s late among clear seconds) takes no step and raises nothing', () => {
    const controller = new RealtimeController(SETTINGS);
    const spikes = new Set([5, 6, 14, 20, 21]);
    const actions = run(controller, 0, 40, (now, i) => (spikes.has(i) ? starved(now, i) : fine(now)));
    assert.deepEqual(decisions(actions), []);
  });

  it('a sustained overload steps down one level per hold and grace, alarms once, and tells the manifests', () => {
    const controller = new RealtimeController(SETTINGS);
    const actions = run(controller, 0, 40, starved);
    assert.deepEqual(
      steps(actions).map(({ at, level }) => ({ at, level })),
      [
        { at: 2, level: 1 },
        { at: 9, level: 2 },
        { at: 16, level: 3 },
      ],
      'a step after 3 behind seconds, then 5 s held and 3 more behind',
    );
    const alarms = actions.filter((a) => a.action.type === 'alarm');
    assert.equal(alarms.length, 1);
    assert.match((alarms[0]!.action as { detail: string }).detail, /behind real time: chunks \d+ ms late.*level 1/);
    const margins = actions.filter((a) => a.action.type === 'margin').map((a) => (a.action as { ms: number }).ms);
    assert.ok(margins.length >= 1 && margins.every((ms) => ms % 100 === 0 && ms >= 400 && ms <= 900), `${margins}`);
    assert.equal(controller.level, 3, 'the last step is kept');
  });

  it('a step down goes straight to the first level the measured speed can hold, with a fifth to spare', () => {
    // ultra-ll's levels: superfast 30 fps, ultrafast (÷1.6), 20 fps, 10 fps.
    const costs = [48, 30, 20, 10];
    assert.equal(stepDownTo(0, 3, 0.9, costs), 1, '48 × 0.9 × 0.8 = 34.6: ultrafast fits');
    assert.equal(stepDownTo(0, 3, 0.6, costs), 2, '23.0: ultrafast does not, 20 fps does');
    assert.equal(stepDownTo(0, 3, 0.3, costs), 3, '11.5: nothing but the last');
    assert.equal(stepDownTo(0, 3, 0.1, costs), 3, 'nothing fits: the last level');
    assert.equal(stepDownTo(1, 3, 0.6, costs), 3, 'from level 1: 30 × 0.6 × 0.8 = 14.4');
    assert.equal(stepDownTo(0, 3, undefined, costs), 1, 'no speed measured: one level');
    assert.equal(stepDownTo(0, 3, 0.6), 1, 'no costs known: one level');
    assert.equal(stepDownTo(0, 3, 1.02, costs), 1, 'at full speed (late for another reason): one level');
    assert.equal(stepDownTo(3, 3, 0.5, costs), 3, 'at the last level it stays');

    const controller = new RealtimeController({ ...SETTINGS, costs });
    // Half a core for a ladder that needs more, until the level that holds is running.
    const deep = (now: number, i: number): RealtimeSample =>
      controller.level === 0 ? { ...starved(now, i), speed: 0.55 } : fine(now);
    const actions = run(controller, 0, 12, deep);
    assert.deepEqual(
      steps(actions).map(({ at, level }) => ({ at, level })),
      [{ at: 2, level: 2 }],
      'one restart, not two',
    );
    assert.deepEqual(
      actions.filter((a) => a.action.type === 'prepare'),
      [{ at: 0, action: { type: 'prepare', level: 2 } }],
      'its slate made from the first second behind, not when the step is taken',
    );

    // A starved ffmpeg reports its progress late: the step waits for a speed (up to another grace), then goes to where it fits.
    const late = new RealtimeController({ ...SETTINGS, costs });
    const slowReports = run(late, 0, 8, (now, i) => ({ ...starved(now, i), speed: i < 4 ? undefined : 0.55 }));
    assert.deepEqual(
      steps(slowReports).map(({ at, level }) => ({ at, level })),
      [{ at: 4, level: 2 }],
      'one step, once measured',
    );
    const never = new RealtimeController({ ...SETTINGS, costs });
    assert.deepEqual(
      steps(run(never, 0, 8, (now, i) => ({ ...starved(now, i), speed: undefined }))).map(({ at, level }) => ({
        at,
        level,
      })),
      [{ at: 5, level: 1 }],
      'no speed at all: one level, a grace later',
    );

    // A run's first second has no speed yet: nothing is guessed (a guess's slate delays the one needed).
    const unmeasured = new RealtimeController({ ...SETTINGS, costs });
    const early = run(unmeasured, 0, 3, (now, i) => ({ ...starved(now, i), speed: i === 0 ? undefined : 0.55 }));
    assert.deepEqual(
      early.filter((a) => a.action.type === 'prepare'),
      [{ at: 1, action: { type: 'prepare', level: 2 } }],
      'prepared once the speed is measured',
    );
  });

  it('recovers: the alarm clears, the margin goes back to 0, and each step is undone after the restore wait', () => {
    const controller = new RealtimeController(SETTINGS);
    run(controller, 0, 30, starved);
    assert.equal(controller.level, 3);
    const actions = run(controller, 30, 60, fine);
    // Clear since 30: up at 40, then each level is held 5 s and judged clear for 10 s more.
    // Three clear seconds drain the three behind ones.
    assert.deepEqual(actions[0], {
      at: 32,
      action: { type: 'alarm', raised: false, detail: 'the encoder keeps real time again at level 3' },
    });
    assert.deepEqual(actions[1], { at: 32, action: { type: 'margin', ms: 0 } });
    assert.deepEqual(
      steps(actions).map(({ at, level }) => ({ at, level })),
      [
        { at: 40, level: 2 },
        { at: 55, level: 1 },
        { at: 70, level: 0 },
      ],
    );
  });

  it('at a 10 fps level, chunks a frame late are clear: it steps back up (not without the frame duration)', () => {
    const costs = [48, 30, 20, 10];
    const stepsUp = (frameMs?: number[]) => {
      const controller = new RealtimeController({ ...SETTINGS, costs, ...(frameMs ? { frameMs } : {}) });
      const actions = run(controller, 0, 60, (now, i) =>
        // Starved until the last level, then a 10 fps run whose chunks close a frame late.
        controller.level < 3 && i < 10 ? { ...starved(now, i), speed: 0.3 } : { ...fine(now), latenessMs: 130 },
      );
      return actions.filter((a) => a.action.type === 'step' && a.action.direction === 'up').length;
    };
    assert.ok(stepsUp([1000 / 30, 1000 / 30, 1000 / 30, 100]) >= 1, 'steps up');
    assert.equal(stepsUp(), 0, 'half of lateMs alone is never clear at 10 fps');
  });

  it('a step up goes as far as the CPU left idle allows, with a fifth to spare; one level when not measured', () => {
    // ultra-ll's default levels as timed on one core: 0.737, 0.513, 0.303, 0.223 of it.
    const costs = [0.737, 0.513, 0.303, 0.223];
    assert.equal(stepUpTo(3, 4, costs), 1, '0.223 × 4 × 0.8 = 0.71: 0.513 fits, 0.737 not');
    assert.equal(stepUpTo(3, 5, costs), 0, '0.89: the profile as written');
    assert.equal(stepUpTo(3, 1.2, costs), 2, 'little idle: one level, as ever');
    assert.equal(stepUpTo(3, undefined, costs), 2, 'not measured: one level');
    assert.equal(stepUpTo(1, 9, costs), 0);
    assert.equal(stepUpTo(2, 4), 1, 'no costs: one level');

    // The loop gone from a core the encoder had shared at level 3: about 0.7 of it idle.
    const controller = new RealtimeController({ ...SETTINGS, costs });
    run(controller, 0, 30, (now, i) => ({ ...starved(now, i), speed: 0.3 }));
    assert.equal(controller.level, 3);
    const actions = run(controller, 30, 30, (now) => ({ ...fine(now), capacity: 4.1 }));
    assert.deepEqual(
      steps(actions).map(({ at, level }) => ({ at, level })),
      [
        { at: 40, level: 1 },
        { at: 55, level: 0 },
      ],
      'two restarts back, not three',
    );
  });

  it('a step up that does not hold doubles the next wait, up to 10 minutes', () => {
    const controller = new RealtimeController({ ...SETTINGS, steps: 1 });
    run(controller, 0, 5, starved);
    assert.equal(controller.level, 1);
    // Headroom at level 1, none at level 0: the box cannot hold the profile as it is.
    let t = 5;
    const waits: number[] = [];
    for (let round = 0; round < 8; round++) {
      const up = run(controller, t, 700, fine).find((a) => a.action.type === 'step');
      assert.ok(up, `round ${round}: a step up`);
      waits.push(controller.restoreSeconds);
      t = up.at + 1;
      const down = run(controller, t, 20, starved).find((a) => a.action.type === 'step');
      assert.ok(down && (down.action as { level: number }).level === 1);
      t = down.at + 1;
    }
    assert.deepEqual(waits, [10, 20, 40, 80, 160, 320, 600, 600]);
  });

  it('late chunks from an encoder at full speed (delayed elsewhere): the alarm and the truth, no step', () => {
    const controller = new RealtimeController(SETTINGS);
    const actions = run(controller, 0, 20, (now) => ({ ...fine(now), latenessMs: 420 }));
    assert.deepEqual(steps(actions), []);
    assert.match(
      (actions.find((a) => a.action.type === 'alarm')!.action as { detail: string }).detail,
      /^the encoder is behind real time: chunks 420 ms late \(p95\)$/,
    );
    assert.ok(actions.some((a) => a.action.type === 'margin' && a.action.ms === 500));
    // The encoder falls behind too: now a step.
    const later = run(controller, 20, 5, (now) => ({ ...fine(now), latenessMs: 420, speed: 0.8 }));
    assert.deepEqual(
      steps(later).map(({ at, level }) => ({ at, level })),
      [{ at: 22, level: 1 }],
    );
  });

  it('with no step left (a profile that declares none) it still alarms and tells the truth', () => {
    const controller = new RealtimeController({ ...SETTINGS, steps: 0 });
    const actions = run(controller, 0, 10, starved);
    assert.deepEqual(steps(actions), []);
    assert.match(
      (actions.find((a) => a.action.type === 'alarm')!.action as { detail: string }).detail,
      /at the last step \(0\)/,
    );
    assert.ok(actions.some((a) => a.action.type === 'margin' && a.action.ms > 0));
  });
});
