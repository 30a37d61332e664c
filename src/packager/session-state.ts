import { TrackChunker, type InitEvent } from './chunker.ts';
import type { Period } from './packager.ts';

/**
 * What a stopped appliance leaves for the next start on the same outputs, so that a service
 * restart is invisible to viewers: the periods (with their init segments) and the last segment
 * delivered. JSON, init segments in base64.
 */
export interface SessionState {
  version: 1;
  lastSegment: string;
  periods: { start: string; inits: Record<string, { path: string; bytes: string }>; frameRate?: number }[];
}

/** Pure: the packager's periods and last segment → the state to save. */
export function sessionState(periods: readonly Period[], lastSegment: bigint): SessionState {
  return {
    version: 1,
    lastSegment: lastSegment.toString(),
    periods: periods.map((p) => ({
      start: p.start.toString(),
      ...(p.frameRate !== undefined && { frameRate: p.frameRate }),
      inits: Object.fromEntries(
        [...p.inits].map(([track, init]) => [
          track,
          { path: init.path, bytes: Buffer.from(init.bytes).toString('base64') },
        ]),
      ),
    })),
  };
}

/** Pure: saved state → periods (init segments parsed again) and the last segment; undefined if unusable. */
export function restoreState(
  state: unknown,
  timing: { segdur: number; cdur: number },
): { periods: Period[]; lastSegment: bigint } | undefined {
  const s = state as Partial<SessionState> | undefined;
  if (s?.version !== 1 || typeof s.lastSegment !== 'string' || !Array.isArray(s.periods) || !s.periods.length)
    return undefined;
  try {
    const periods = s.periods.map((p) => {
      const inits = new Map<string, InitEvent>();
      for (const [track, saved] of Object.entries(p.inits)) {
        const bytes = new Uint8Array(Buffer.from(saved.bytes, 'base64'));
        const init = new TrackChunker(track, timing).read(bytes).find((item) => item.init)?.init;
        if (!init) return undefined;
        inits.set(track, { ...init, path: saved.path, periodStart: BigInt(p.start) });
      }
      const frameRate =
        typeof p.frameRate === 'number' && p.frameRate > 0 && p.frameRate <= 120 ? p.frameRate : undefined;
      return { start: BigInt(p.start), inits, frameRate };
    });
    if (periods.some((p) => !p)) return undefined;
    return { periods: periods as Period[], lastSegment: BigInt(s.lastSegment) };
  } catch {
    return undefined;
  }
}
