import assert from 'node:assert/strict';
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Browser } from 'playwright-core';
import { startAppliance, waitForLogField } from '../../helpers/run.ts';
import {
  describeReport,
  explainStuck,
  launchChromium,
  ownBufferHole,
  waitForSegments,
  watchPlayer,
  type PlayerKind,
} from '../../helpers/player.ts';
import { LIGHT_PAIR, tracksOf, writeLightProfile } from '../../helpers/light-profile.ts';
import { startTcpProxy, type TcpProxy } from '../../helpers/tcp-proxy.ts';
import { readFmp4 } from '../../helpers/fmp4-reader.ts';
import { childBoxes } from '../../../src/packager/boxes.ts';

// Two appliances ingesting one stream into appliance origin by CMAF ingest, as a redundant pair:
// the first cut off for 10 s, then killed -9, restarted, then the second killed, while dash.js
// and hls.js play.

type Child = ReturnType<typeof startAppliance>;
const children: Child[] = [];
let browser: Browser | undefined;
const proxies: TcpProxy[] = [];
let dir: string;
let profile: string;
before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'appliance-pair-'));
  profile = await writeLightProfile(dir, { renditions: LIGHT_PAIR, tsb: 60 });
});
after(async () => {
  await browser?.close();
  for (const child of children)
    if (child.pid && child.exitCode === null && child.signalCode === null) process.kill(child.pid, 'SIGKILL');
  for (const proxy of proxies) await proxy.close();
  await Promise.allSettled(children);
  await rm(dir, { recursive: true, force: true });
});

const TOP = LIGHT_PAIR[0]!.id;
const env = { APPLIANCE_INGEST_TOKEN: 'pair-test', APPLIANCE_PUSH_TOKEN: 'pair-test' };

/** The part index of a position at a segment's end (past its last part). */
const WHOLE = 1_000;

/** Where an LL-HLS media playlist stands: the newest part it names (segment number and part index, WHOLE once the segment is). */
function newestPart(playlist: string): { msn: bigint; part: number } | undefined {
  const sequence = /#EXT-X-MEDIA-SEQUENCE:(\d+)/.exec(playlist)?.[1];
  if (!sequence) return undefined;
  const complete = (playlist.match(/^#EXTINF:/gm) ?? []).length;
  const tail = playlist.slice(playlist.lastIndexOf('#EXTINF:'));
  const trailing = complete
    ? (tail.slice(tail.indexOf('\n', tail.indexOf('\n') + 1)).match(/^#EXT-X-PART:/gm) ?? []).length
    : 0;
  if (!complete && !trailing) return undefined;
  return trailing
    ? { msn: BigInt(sequence) + BigInt(complete), part: trailing - 1 }
    : { msn: BigInt(sequence) + BigInt(complete) - 1n, part: WHOLE };
}

/**
 * Follows a media playlist part by part with blocking reloads, as an LL-HLS player at the live edge
 * does, until `signal` aborts: each wait for the next part (when it ended, ms since 1970, and how
 * long it was), and whether the playlist ever went backwards. What a player can be given, whatever
 * the player.
 */
async function followParts(
  url: string,
  signal: AbortSignal,
): Promise<{ waits: { at: number; ms: number }[]; backwards: string[] }> {
  let at = newestPart(await (await fetch(url)).text());
  let since = performance.now();
  const result = { waits: [] as { at: number; ms: number }[], backwards: [] as string[] };
  while (!signal.aborted) {
    const next = at && at.part < WHOLE ? { msn: at.msn, part: at.part + 1 } : { msn: (at?.msn ?? 0n) + 1n, part: 0 };
    // Held until that part exists (a part past a whole segment's last is the next segment's first);
    // a failed request is asked again, and only the end of the watch ends the loop.
    const text = await fetch(`${url}?_HLS_msn=${next.msn}&_HLS_part=${next.part}`, { signal })
      .then((response) => (response.ok ? response.text() : response.body?.cancel().then(() => '')))
      .catch(() => '');
    const now = text ? newestPart(text) : undefined;
    if (!now || !at) {
      at ??= now;
      if (!now && !signal.aborted) await sleep(50);
      continue;
    }
    if (now.msn < at.msn || (now.msn === at.msn && now.part < at.part))
      result.backwards.push(`${at.msn}.${at.part} → ${now.msn}.${now.part}`);
    else if (now.msn !== at.msn || now.part !== at.part) {
      const t = performance.now();
      result.waits.push({ at: Date.now(), ms: t - since });
      since = t;
      at = now;
    }
  }
  // A wait still going on when the watch ends counts too.
  result.waits.push({ at: Date.now(), ms: performance.now() - since });
  return result;
}

/** The top-level box types of a part's bytes, e.g. `prft moof mdat`, or why they are not whole boxes. */
function boxTypesOf(part: Uint8Array): string {
  try {
    return [...childBoxes(part)].map((box) => box.type).join(' ');
  } catch (error) {
    return `not whole boxes: ${(error as Error).message}`;
  }
}

/** Every segment `track` lists is served, and its media is one unbroken timeline (no gap, no overlap). */
async function assertServedUnbroken(base: string, track: string, minimum: number): Promise<number> {
  const playlist = await (await fetch(`${base}/live_${track}.m3u8`)).text();
  assert.doesNotMatch(playlist, /EXT-X-GAP/);
  const numbers = [...playlist.matchAll(/#EXTINF:[\d.]+,\n\S+\/(\d+)\.m4s/g)].map((m) => Number(m[1]));
  assert.ok(numbers.length >= minimum, `${track}: ${numbers.length} segments listed`);
  const init = new Uint8Array(await (await fetch(`${base}/${track}/init.mp4`)).arrayBuffer());
  let end: bigint | undefined;
  let partsChecked = 0;
  for (const [k, n] of numbers.entries()) {
    if (k) assert.equal(n, numbers[k - 1]! + 1, `${track}: no segment missing`);
    const segment = await fetch(`${base}/${track}/${n}.m4s`);
    assert.equal(segment.status, 200, `${track}/${n}.m4s`);
    const bytes = new Uint8Array(await segment.arrayBuffer());
    // Each part the playlist still names is whole chunks of it: [styp] then prft, moof, mdat each.
    for (const [, size, offset] of playlist.matchAll(
      new RegExp(`#EXT-X-PART:[^\\n]*URI="[^"]*/${n}\\.m4s",BYTERANGE="(\\d+)@(\\d+)"`, 'g'),
    )) {
      const [from, to] = [Number(offset), Number(offset) + Number(size)];
      assert.ok(to <= bytes.length, `${track}/${n}.m4s: the part at ${offset} ends within its ${bytes.length} bytes`);
      assert.match(
        boxTypesOf(bytes.subarray(from, to)),
        /^(styp )?((prft )?moof mdat ?)+$/,
        `${track}/${n}.m4s: the part at ${offset} (${size} bytes) is whole chunks`,
      );
      partsChecked++;
    }
    const merged = new Uint8Array(init.length + bytes.length);
    merged.set(init);
    merged.set(bytes, init.length);
    for (const fragment of readFmp4(merged).fragments)
      for (const traf of fragment.tracks) {
        if (end !== undefined)
          assert.equal(traf.baseDecodeTime, end, `${track}/${n}.m4s: media continues where the last chunk ended`);
        end = traf.baseDecodeTime + BigInt(traf.samples.reduce((sum, s) => sum + s.duration, 0));
      }
  }
  assert.ok(partsChecked > 0, `${track}: the playlist names parts of complete segments`);
  return numbers.length;
}

/**
 * `appliance origin`, and a way to start encoders pushing one stream (`pair`) to it by CMAF ingest:
 * `a` over its own network (a proxy the test can cut off), `b` 75 ms further away (150 ms more round trip),
 * so `a` owns each segment while it runs and `b`'s copies wait beside it.
 */
async function startPair() {
  // The pinned Node runs the appliance in this very process (no launcher child): -9 kills the encoder itself.
  const node = process.execPath;
  const origin = startAppliance(node, ['origin', '--listen', '127.0.0.1:0', '--tsb', '60'], { env });
  children.push(origin);
  const originUrl = await waitForLogField(origin, 'origin listening', 'url');
  assert.ok(originUrl);
  const base = originUrl.replace(/\/$/, '');
  const far = await startTcpProxy(Number(new URL(base).port), { delayMs: 75 });
  const network = await startTcpProxy(Number(new URL(base).port), { adjustable: true });
  proxies.push(far, network);
  const encoder = (name: 'a' | 'b') => {
    const port = name === 'a' ? network.port : far.port;
    const child = startAppliance(
      node,
      [
        'start',
        '--profile',
        profile,
        '--no-adapt',
        '--ingest',
        'cmaf',
        '--output',
        `http://127.0.0.1:${port}/pair`,
        '--state-dir',
        join(dir, name),
        '--duration',
        '150',
      ],
      { env },
    );
    children.push(child);
    return child;
  };
  return { origin, base, network, encoder };
}

type Pair = Awaited<ReturnType<typeof startPair>>;

/**
 * What both tests put the pair through, in order, each marked when it happens (ms since 1970, the
 * clock players' stalls are on): the first encoder's network cut off for 10 s (its uploads quiet,
 * connections open) and back (all it held back arriving at once), the first killed -9, restarted,
 * then the second killed -9. `aim` runs before each blow (to land it mid-segment). Returns the
 * restarted first encoder and the marks.
 */
async function putThroughFailures(
  pair: Pair,
  first: Child,
  second: Child,
  aim: () => Promise<void> = async () => undefined,
): Promise<{ restarted: Child; events: { what: string; at: number }[] }> {
  const events: { what: string; at: number }[] = [];
  const mark = (what: string) => events.push({ what, at: Date.now() });
  const killAimed = async (child: Child, what: string) => {
    await aim();
    process.kill(child.pid!, 'SIGKILL');
    mark(what);
    await child;
  };
  await aim();
  pair.network.setRate(0);
  mark("the first encoder's network cut off");
  await sleep(10_000);
  pair.network.setRate(undefined);
  mark("the first encoder's network back");
  await sleep(5_000);
  await killAimed(first, 'the first encoder killed -9');
  await sleep(6_000);
  const restarted = pair.encoder('a');
  await waitForLogField(restarted, 'pushing', 'url', 30_000);
  mark('the first encoder restarted');
  await sleep(7_000);
  await killAimed(second, 'the second encoder killed -9');
  return { restarted, events };
}

describe('a redundant pair of encoders on one stream (CMAF ingest into appliance origin)', { timeout: 300_000 }, () => {
  it('players play through the first cut off for 10 s, then killed -9, restarted, and the second killed; every segment is served', async () => {
    const pair = await startPair();
    const { origin, base } = pair;
    const [a, b] = [pair.encoder('a'), pair.encoder('b')];
    await waitForSegments(`${base}/pair/live_${TOP}.m3u8`, 3);

    browser ??= await launchChromium();
    const started = browser;
    const kinds: PlayerKind[] = ['dash.js', 'hls.js'];
    const watching = Promise.all(
      kinds.map((kind) =>
        watchPlayer(started, {
          kind,
          url: `${base}/pair/live.${kind === 'dash.js' ? 'mpd' : 'm3u8'}`,
          seconds: 52,
        }),
      ),
    );
    await sleep(5_000);
    const { restarted, events } = await putThroughFailures(pair, a, b);
    const reports = await watching;
    for (const [i, kind] of kinds.entries()) {
      const report = reports[i]!;
      process.stderr.write(describeReport(kind, report));
      // Each stall, put down to what happened before it (the players' own stalls show up too).
      const stalls = events.map(({ what, at }, k) => {
        const until = events[k + 1]?.at ?? Number.POSITIVE_INFINITY;
        const mine = report.stalls.filter((s) => s.at >= at && s.at < until).map((s) => Math.round(s.ms));
        return `${what}: ${mine.length ? `${mine.join(' + ')} ms` : 'none'}`;
      });
      const before = report.stalls.filter((s) => s.at < events[0]!.at).map((s) => Math.round(s.ms));
      process.stderr.write(
        `# ${kind} stalls: before any failure: ${before.join(' + ') || 'none'}; ${stalls.join('; ')}\n`,
      );
    }
    const status = (await (await fetch(`${base}/status`)).json()) as {
      cmafIngest: Record<string, Record<string, { duplicates: number; takeovers: number; cut: number }>>;
    };
    process.stderr.write(`# origin: ${JSON.stringify(status.cmafIngest['pair'])}\n`);

    for (const [i, kind] of kinds.entries()) {
      const report = reports[i]!;
      assert.deepEqual(report.errors, [], `no ${kind} error`);
      assert.deepEqual(report.failedRequests, [], `${kind}: no failed request (no 404)`);
      assert.ok(report.samples.filter((s) => s.currentTime > 0).length >= 42, `${kind}: played`);
      // hls.js can stop at a hole of its own making (see ownBufferHole): what it was served is
      // checked below, segment by segment, and must be whole and unbroken all the same.
      const hole = kind === 'hls.js' ? ownBufferHole(report) : undefined;
      if (hole && report.advance <= 0.5)
        process.stderr.write(`# hls.js stopped at a hole it left in its own buffer (${hole}): its known bug\n`);
      assert.ok(
        report.advance > 0.5 || hole,
        `${kind}: media advanced at ${report.advance.toFixed(2)}× real time; ${explainStuck(report)}`,
      );
    }
    // The pair: copies discarded while both ran; the segments the first left cut, completed by the second.
    const counts = Object.values(status.cmafIngest['pair']!);
    assert.ok(
      counts.every((c) => c.duplicates > 0),
      'the second copy of each segment is discarded and counted',
    );
    assert.ok(
      counts.some((c) => c.takeovers > 0),
      'a segment cut by the kill was completed by the other copy',
    );
    assert.ok(
      counts.every((c) => c.cut === 0),
      'no segment left incomplete',
    );
    // Every segment of every track in the window is served, none missing, on one unbroken timeline.
    for (const track of tracksOf(LIGHT_PAIR)) await assertServedUnbroken(`${base}/pair`, track, 40);
    for (const child of [restarted, origin]) process.kill(child.pid!, 'SIGTERM');
    await Promise.allSettled([restarted, origin]);
  });
  it('the origin through every failure: its stream pauses less than a segment, never goes back, loses nothing', async () => {
    const pair = await startPair();
    const { origin, base } = pair;
    const [a, b] = [pair.encoder('a'), pair.encoder('b')];
    let firstLog = '';
    a.stderr?.on('data', (piece: Buffer) => (firstLog += piece.toString()));
    await waitForSegments(`${base}/pair/live_${TOP}.m3u8`, 3);
    // Followed as players at the live edge follow it: the next part asked for before it exists.
    const stop = new AbortController();
    const following = Promise.all(
      tracksOf(LIGHT_PAIR).map((track) => followParts(`${base}/pair/live_${track}.m3u8`, stop.signal)),
    );
    const top = `${base}/pair/live_${TOP}.m3u8`;
    /** Until the segment after the current one is 4 parts in: a failure then lands mid-segment, its upload under way. */
    const midSegment = async () => {
      const { msn } = newestPart(await (await fetch(top)).text())!;
      await (await fetch(`${top}?_HLS_msn=${msn + 1n}&_HLS_part=4`)).text();
    };
    await sleep(2_000);
    const { restarted, events } = await putThroughFailures(pair, a, b, midSegment);
    await sleep(4_000);
    stop.abort();
    const followed = await following;
    const status = (await (await fetch(`${base}/status`)).json()) as {
      cmafIngest: Record<string, Record<string, { duplicates: number; takeovers: number; cut: number }>>;
    };
    const counts = status.cmafIngest['pair']!;
    /** Per failure, the parts that came before the next one, and the longest wait for one of them. */
    const longest = (waits: { at: number; ms: number }[]) =>
      events.map(({ what, at }, k) => {
        const until = events[k + 1]?.at ?? Number.POSITIVE_INFINITY;
        const mine = waits.filter((w) => w.at > at && w.at <= until).map((w) => w.ms);
        return { what, ms: Math.round(Math.max(0, ...mine)), parts: mine.length };
      });
    for (const [i, track] of tracksOf(LIGHT_PAIR).entries())
      process.stderr.write(
        `# ${track}: ${followed[i]!.waits.length} parts followed; longest wait for the next part after ${longest(
          followed[i]!.waits,
        )
          .map((l) => `${l.what}: ${l.ms} ms`)
          .join(', ')}; ${JSON.stringify(counts[track])}\n`,
      );
    for (const [i, track] of tracksOf(LIGHT_PAIR).entries()) {
      const { waits, backwards } = followed[i]!;
      assert.deepEqual(backwards, [], `${track}: the playlist never goes back`);
      assert.ok(waits.length >= 300, `${track}: ${waits.length} parts followed`);
      // One segment: the issue's bound on a stall; a hand-over itself takes ~3 chunks.
      for (const { what, ms, parts } of longest(waits)) {
        assert.ok(parts >= 20, `${track}: ${parts} parts followed after ${what}`);
        assert.ok(ms < 1000, `${track}: waited ${ms} ms for a part after ${what}`);
      }
      assert.equal(counts[track]!.cut, 0, `${track}: no segment left incomplete`);
      await assertServedUnbroken(`${base}/pair`, track, 30);
    }
    // The first encoder owned the segments under way (a track's audio may have gone either way).
    assert.ok(
      Object.values(counts).some((c) => c.takeovers > 0),
      'the other copy took over the segments the first left',
    );
    // What it held back while cut off came late and whole: acknowledged as copies, never refused.
    assert.match(firstLog, /origin reachable again/, 'the first encoder saw its network come back');
    assert.doesNotMatch(firstLog, /refused the upload/, 'its late backlog is acknowledged');
    for (const child of [restarted, origin]) process.kill(child.pid!, 'SIGTERM');
    await Promise.allSettled([restarted, origin]);
  });
});
