import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { ChunkEvent, SegmentEndEvent } from '../../src/packager/chunker.ts';
import { SegmentArbiter } from '../../src/origin/segment-arbiter.ts';

const chunk = (segment: bigint, part: number, from: string): ChunkEvent => ({
  type: 'chunk',
  track: 'v',
  segment,
  part,
  parts: [new TextEncoder().encode(`${from}${part}`)],
  byteLength: 2,
  independent: part === 0,
  decodeTime: segment * 1000n + BigInt(part * 100),
  duration: 100,
  timescale: 1000,
  segmentComplete: part === 9,
  slate: false,
});
const end = (segment: bigint): SegmentEndEvent => ({ type: 'segmentEnd', track: 'v', segment, last: false });

function harness() {
  const got: string[] = [];
  const arbiter = new SegmentArbiter({
    chunk: (e) => got.push(`${e.segment}:${new TextDecoder().decode(e.parts[0]!)}`),
    end: (e) => got.push(`${e.segment}:end`),
    abort: () => got.push('abort'),
    orphaned: () => undefined,
  });
  /** Offers parts [from, to) of `segment` from `source` (named by `name`), with its end when `whole`. */
  const send = (source: object, name: string, segment: bigint, from: number, to: number, whole = to === 10) => {
    for (let p = from; p < to; p++) arbiter.offer(source, chunk(segment, p, name));
    if (whole) arbiter.offer(source, end(segment));
  };
  return { arbiter, got, send };
}

describe('segment arbiter: one copy of each segment from several sources', () => {
  it('the copy that began first owns the segment; the other, waiting beside it, is discarded and counted', () => {
    const { arbiter, got, send } = harness();
    const a = {};
    const b = {};
    send(a, 'A', 5n, 0, 3, false);
    send(b, 'B', 5n, 0, 4, false);
    send(a, 'A', 5n, 3, 10);
    send(b, 'B', 5n, 4, 10);
    assert.deepEqual(got, [...Array.from({ length: 10 }, (_, p) => `5:A${p}`), '5:end']);
    assert.deepEqual(arbiter.counts, { duplicates: 1, takeovers: 0, cut: 0 });
    // The next segment: whoever begins first, here B.
    send(b, 'B', 6n, 0, 10);
    send(a, 'A', 6n, 0, 10);
    assert.equal(
      got.filter((g) => g.startsWith('6:')).every((g) => g === '6:end' || g.startsWith('6:B')),
      true,
    );
    assert.equal(arbiter.counts.duplicates, 2);
  });

  it("an owner cut mid-segment: the waiting copy completes it from the owner's next chunk", () => {
    const { arbiter, got, send } = harness();
    const a = {};
    const b = {};
    send(a, 'A', 7n, 0, 4, false);
    send(b, 'B', 7n, 0, 6, false);
    arbiter.ended(a); // killed
    send(b, 'B', 7n, 6, 10);
    assert.deepEqual(got, ['7:A0', '7:A1', '7:A2', '7:A3', '7:B4', '7:B5', '7:B6', '7:B7', '7:B8', '7:B9', '7:end']);
    assert.deepEqual(arbiter.counts, { duplicates: 0, takeovers: 1, cut: 0 });
  });

  it('an owner cut with no copy waiting: a later request for the segment (a retry) completes it', () => {
    const { arbiter, got, send } = harness();
    const first = {};
    send(first, 'A', 8n, 0, 3, false);
    arbiter.ended(first);
    assert.equal(arbiter.orphaned, true);
    send({}, 'R', 8n, 0, 10);
    assert.deepEqual(got.slice(3), ['8:R3', '8:R4', '8:R5', '8:R6', '8:R7', '8:R8', '8:R9', '8:end']);
    assert.equal(arbiter.counts.takeovers, 1);
  });

  it('a copy of a segment already whole is acknowledged and discarded, counted once', () => {
    const { arbiter, got, send } = harness();
    send({}, 'A', 9n, 0, 10);
    const late = {};
    send(late, 'B', 9n, 0, 10);
    assert.equal(got.length, 11);
    assert.equal(arbiter.counts.duplicates, 1);
  });

  it('a segment no one completes is cut: when a newer one begins, or when given up', () => {
    const { arbiter, got, send } = harness();
    const a = {};
    send(a, 'A', 10n, 0, 5, false);
    arbiter.ended(a);
    const b = {};
    send(b, 'B', 11n, 0, 2, false);
    assert.deepEqual(got.slice(5), ['abort', '11:B0', '11:B1']);
    arbiter.ended(b);
    assert.equal(arbiter.orphaned, true);
    arbiter.giveUp(10n);
    assert.equal(got.at(-1), '11:B1', 'a deadline set for an earlier segment does not cut this one');
    arbiter.giveUp(11n);
    assert.equal(got.at(-1), 'abort');
    assert.equal(arbiter.counts.cut, 2);
  });

  it('a twin ahead of the owner waits for it (no mixing); an owner stuck too long is completed by a whole copy', () => {
    const { got, send } = harness();
    const b = {};
    const a = {};
    send(b, 'B', 20n, 0, 8, false); // the owner, a little behind
    send(a, 'A', 20n, 0, 10); // its twin's whole copy, waiting
    send({}, 'A', 21n, 0, 2, false); // the twin's next segment: waits for the owner
    assert.equal(got.length, 8);
    send(b, 'B', 20n, 8, 10);
    assert.deepEqual(got.slice(8), ['20:B8', '20:B9', '20:end', '21:A0', '21:A1']);
    // Owner B of 22 stops sending without its connection ending; twin A goes on.
    send(b, 'B', 22n, 0, 2, false);
    send(a, 'A', 22n, 0, 10);
    const next = {};
    send(next, 'A', 23n, 0, 10);
    send({}, 'A', 24n, 0, 10);
    send({}, 'A', 25n, 0, 8, false);
    assert.ok(got.includes('22:end') && got.includes('23:end'), 'the whole copy completed 22, and 23 went on');
    assert.equal(got.indexOf('22:A2'), got.indexOf('22:B1') + 1, 'from the chunk the owner stopped at');
  });

  it('an owner gone quiet with its connection open: a copy three chunks ahead takes over', () => {
    const { arbiter, got, send } = harness();
    const a = {};
    const b = {};
    send(a, 'A', 30n, 0, 2, false);
    send(b, 'B', 30n, 0, 4, false);
    assert.equal(got.length, 2, 'still the owner');
    send(b, 'B', 30n, 4, 10);
    assert.deepEqual(got, [
      '30:A0',
      '30:A1',
      '30:B2',
      '30:B3',
      '30:B4',
      '30:B5',
      '30:B6',
      '30:B7',
      '30:B8',
      '30:B9',
      '30:end',
    ]);
    assert.equal(arbiter.counts.takeovers, 1);
    // The old owner coming back late is a duplicate, not a second writer.
    send(a, 'A', 30n, 2, 10);
    assert.equal(got.length, 11);
  });

  it("an owner gone quiet near its segment's end: a whole copy that moved on three chunks takes over", () => {
    const { arbiter, got, send } = harness();
    const a = {};
    send(a, 'A', 40n, 0, 9, false); // the owner goes quiet one chunk short of the end
    send({}, 'B', 40n, 0, 10); // a whole copy: it cannot get three chunks ahead within 40
    const next = {};
    send(next, 'B', 41n, 0, 2, false);
    assert.equal(got.length, 9, 'two chunks ahead: the owner may still come');
    send(next, 'B', 41n, 2, 3, false);
    assert.deepEqual(got.slice(9), ['40:B9', '40:end', '41:B0', '41:B1', '41:B2']);
    assert.equal(arbiter.counts.takeovers, 1);
    send(a, 'A', 40n, 9, 10); // the quiet owner's last chunk, late: a duplicate
    assert.equal(got.length, 14);
  });

  it('the lead into the next segment is how far one source got, not chunks summed over sources', () => {
    const { got, send } = harness();
    send({}, 'A', 60n, 0, 9, false); // the owner, one chunk short
    send({}, 'B', 60n, 0, 10); // a whole copy
    send({}, 'B', 61n, 0, 2, false); // the twin two chunks into 61
    send({}, 'A', 61n, 0, 1, false); // the owner's own request for 61: its first chunk
    send({}, 'C', 61n, 0, 2, false); // a retry of 61's start
    assert.equal(got.length, 9, 'nobody is three chunks into 61: the owner may still finish 60');
    send({}, 'B', 61n, 2, 3, false);
    assert.equal(got[9], '60:B9', 'now the twin is');
  });

  it('a copy that ended short of the grid is no whole copy to hand a segment to', () => {
    const { arbiter, got, send } = harness();
    send({}, 'A', 70n, 0, 5, false); // the owner, slow
    const b = {};
    send(b, 'B', 70n, 0, 7, false);
    arbiter.offer(b, end(70n)); // its encoder skipped ahead: it ends at chunk 7
    send({}, 'B', 71n, 0, 3, false);
    assert.equal(got.length, 5, 'the owner keeps the segment');
    assert.equal(arbiter.counts.takeovers, 0);
  });

  it('a segment opened by a source already gone holds no newer one back', () => {
    const { arbiter, got, send } = harness();
    const b = {};
    send(b, 'B', 49n, 0, 5, false);
    const a = {};
    send(a, 'A', 50n, 0, 3, false); // ahead of the owner of 49: waits
    arbiter.ended(a); // and is gone
    send(b, 'B', 49n, 5, 10); // 49 whole: A's 50 goes on, owned by no live source
    assert.deepEqual(got.slice(-4), ['49:end', '50:A0', '50:A1', '50:A2']);
    send({}, 'C', 51n, 0, 1, false);
    assert.deepEqual(got.slice(-2), ['abort', '51:C0'], 'cut at once, not after waiting for a dead owner');
  });
});
