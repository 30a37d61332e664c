import assert from 'node:assert/strict';
import { it } from 'node:test';
import { RepeatLimiter } from '../../src/log.ts';

it('ffmpeg warnings of one shape are logged once per window, with the count held back', () => {
  const limiter = new RepeatLimiter(10_000);
  const line = (n: number) =>
    `[mp4 @ 0x55d${n}] Non-monotonous DTS in output stream 2:0; previous: ${n}, current: ${n - 2}`;
  assert.deepEqual(limiter.admit(line(100), 0), { log: true, suppressed: 0 });
  assert.deepEqual(limiter.admit(line(101), 1000), { log: false, suppressed: 0 });
  assert.deepEqual(limiter.admit(line(102), 9999), { log: false, suppressed: 0 });
  assert.deepEqual(
    limiter.admit('Thread message queue blocking', 5000),
    { log: true, suppressed: 0 },
    'another shape is not held back',
  );
  assert.deepEqual(limiter.admit(line(103), 10_000), { log: true, suppressed: 2 });
  assert.deepEqual(limiter.admit(line(104), 25_000), { log: true, suppressed: 0 });
});
