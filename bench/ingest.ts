// CMAF ingest against DASH ingest on the same run: one appliance (ultra-ll, test source) pushing
// the same chunks to two receivers on 127.0.0.1 at once, `--ingest dash` to the project's origin
// and `--ingest cmaf` (Unified's naming) to the independent checker, each chunk's delay measured
// where it lands: its last byte's arrival − the end of its media on the (epoch) timeline.
import { CmafIngestChecker } from '../test/helpers/cmaf-ingest-checker.ts';
import { quantile, startTestOrigin } from '../test/helpers/push-origin.ts';
import { startLikeService } from './live.ts';

const TOKEN = 'bench-token';
const TRACKS = ['1080p', '720p', 'audio'];

export interface IngestRun {
  /** Per track and ingest: chunk delay at the receiver, ms. */
  chunkDelayMs: Record<'dash' | 'cmaf', Record<string, { p50: number; p95: number }>>;
  /** CMAF ingest rules the checker saw broken (none expected). */
  violations: number;
  segments: { dash: number; cmaf: number };
}

const round = (x: number) => Math.round(x * 10) / 10;
const figures = (delays: number[]) => ({ p50: round(quantile(delays, 0.5)), p95: round(quantile(delays, 0.95)) });

export async function ingestDelayRun(seconds: number): Promise<IngestRun> {
  const origin = await startTestOrigin({ token: TOKEN });
  const checker = new CmafIngestChecker({ segdur: 1, streamOf: (path) => path.split('/').pop()! });
  const port = await checker.listen();
  try {
    const result = await startLikeService(
      seconds,
      [
        '--output',
        `${origin.base}/live/live.mpd`,
        '--output',
        `http://127.0.0.1:${port}/pub/channel.isml`,
        '--origin-profile',
        'appliance',
        '--origin-profile',
        'unified',
      ],
      { APPLIANCE_PUSH_TOKEN: TOKEN },
    );
    if (result.exitCode !== 0)
      throw new Error(`appliance exited ${result.exitCode}: ${String(result.stderr).slice(-2000)}`);
    const chunkDelayMs: IngestRun['chunkDelayMs'] = { dash: {}, cmaf: {} };
    let dashSegments = 0;
    let cmafSegments = 0;
    for (const track of TRACKS) {
      // The first two and the last segment may be partial (start, stop): the steady state is between.
      const dash = origin.uploads
        .filter((u) => u.path.startsWith(`live/${track}/`) && u.chunks.length > 1)
        .slice(2, -1);
      dashSegments += dash.length;
      chunkDelayMs.dash[track] = figures(dash.flatMap((u) => u.chunks.map((c) => c.at - c.mediaEndMs)));
      const cmaf = checker.segments.filter((s) => s.stream.startsWith(`Streams(${track}.`)).slice(2, -1);
      cmafSegments += cmaf.length;
      chunkDelayMs.cmaf[track] = figures(cmaf.flatMap((s) => s.chunkTimes.map((c) => c.arrivedAt - c.mediaEndMs)));
    }
    return {
      chunkDelayMs,
      violations: checker.violations.length,
      segments: { dash: dashSegments, cmaf: cmafSegments },
    };
  } finally {
    await Promise.all([origin.close(), checker.close()]);
  }
}
