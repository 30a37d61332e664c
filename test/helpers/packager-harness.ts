import type { PackagerEvent } from '../../src/packager/chunker.ts';
import { Packager } from '../../src/packager/packager.ts';
import {
  clipOf,
  pieces,
  recorded,
  RECORDED_TRACKS,
  type RecordedTrack,
  shiftedDecodeTimes,
  T0,
  timing,
  TRACKS,
} from './recorded-media.ts';

const TIMESCALES: Record<RecordedTrack, bigint> = { '180p': 90_000n, audio: 48_000n };

/**
 * Runs a packager on a clock the test moves, fed the recorded tracks as an encoder would; `run`
 * is the tracks the current encoder run makes (all, unless a test leaves one out).
 */
export function harness(options: { periodLeadMs?: number } = {}) {
  let nowMs = T0 * 1000;
  const packager = new Packager(TRACKS, timing, {
    now: () => nowMs,
    ...(options.periodLeadMs !== undefined && { periodLeadMs: options.periodLeadMs }),
  });
  packager.setSlate(clipOf('180p'));
  packager.setSlate(clipOf('audio'));
  const events: PackagerEvent[] = [];
  let feeds = { '180p': pieces(recorded['180p']), audio: pieces(recorded.audio) };
  let run: readonly RecordedTrack[] = RECORDED_TRACKS;
  return {
    packager,
    events,
    set now(ms: number) {
      nowMs = ms;
    },
    get now() {
      return nowMs;
    },
    /**
     * A new encoder run making `tracks`: the packager is told, as the live session tells it. Its
     * media is the recording moved `shiftSeconds` later (a multiple of 8 s keeps audio on the grid).
     */
    newRun(
      tracks: readonly RecordedTrack[] = RECORDED_TRACKS,
      options: { frameRate?: number; shiftSeconds?: number } = {},
    ) {
      run = tracks;
      const shift = BigInt(options.shiftSeconds ?? 0);
      const shifted = (track: RecordedTrack) => pieces(shiftedDecodeTimes(recorded[track], shift * TIMESCALES[track]));
      feeds = { '180p': shifted('180p'), audio: shifted('audio') };
      const frameRate = options.frameRate;
      events.push(...packager.newRun());
      packager.useRun({ tracks, frameRate });
    },
    /** The run's init segments. */
    init() {
      for (const track of run) events.push(...packager.push(track, feeds[track].init));
    },
    /**
     * Source fragments starting in [from, to) seconds after T0 (of `tracks`, else every track of
     * the run), as the clock passes their end (and `lateSeconds` more: an encoder behind real
     * time), with slate ticks between.
     */
    play(
      from: number,
      to: number,
      options: { source?: boolean; lateSeconds?: number; tracks?: readonly RecordedTrack[] } = {},
    ) {
      const late = options.lateSeconds ?? 0;
      for (let t = from; t < to - 1e-9; t += 0.05) {
        nowMs = Math.round((T0 + t + late + 0.05) * 1000);
        if (options.source !== false) {
          for (const track of options.tracks ?? run) {
            for (const f of feeds[track].fragments)
              if (f.start >= T0 + t && f.start < T0 + t + 0.05) events.push(...packager.push(track, f.bytes));
          }
        }
        events.push(...packager.tick());
      }
    },
  };
}
