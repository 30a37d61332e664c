// `npm run bench`: measures the encoder on the real ffmpeg and prints one JSON document.
// Options: --runs N (default 3), --seconds S per run (default 15), --profile, --source.
import { cpus, loadavg } from 'node:os';
import { parseArgs } from 'node:util';
import { runEncoderOnce, type EncoderRun } from './encoder.ts';

const { values } = parseArgs({
  options: {
    runs: { type: 'string', default: '3' },
    seconds: { type: 'string', default: '15' },
    profile: { type: 'string', default: 'ultra-ll' },
    source: { type: 'string', default: 'test' },
  },
});
const runs = Number(values.runs);
const seconds = Number(values.seconds);

const quantile = (xs: number[], q: number) => {
  const sorted = [...xs].sort((a, b) => a - b);
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : NaN;
};
const median = (xs: number[]) => quantile(xs, 0.5);
const round = (x: number, digits = 1) => Number(x.toFixed(digits));

const results: EncoderRun[] = [];
for (let i = 0; i < runs; i++) {
  results.push(await runEncoderOnce({ seconds, profile: values.profile, source: values.source }));
  process.stderr.write(`bench: run ${i + 1}/${runs} done\n`);
}

const trackIds = Object.keys(results[0]!.latencyMs);
const tracks = Object.fromEntries(
  trackIds.map((id) => {
    const perRun = results.map((r) => r.latencyMs[id]!);
    const deviations = results.flatMap((r) => r.bitrateDeviationPct[id] ?? []);
    return [
      id,
      {
        fragmentLatencyMs: {
          median: round(median(perRun.map((l) => median(l)))),
          p95: round(median(perRun.map((l) => quantile(l, 0.95)))),
          max: round(Math.max(...perRun.map((l) => Math.max(...l)))),
          fragments: perRun.reduce((n, l) => n + l.length, 0),
        },
        ...(deviations.length ? { segmentBitrateDeviationPct: { median: round(median(deviations)), maxAbs: round(Math.max(...deviations.map(Math.abs))), segments: deviations.length } } : {}),
      },
    ];
  }),
);

const videoLatency = Math.max(...trackIds.filter((id) => id !== 'audio').map((id) => tracks[id]!.fragmentLatencyMs.median));
const maxDeviation = Math.max(...Object.values(tracks).map((t) => ('segmentBitrateDeviationPct' in t ? t.segmentBitrateDeviationPct!.maxAbs : 0)));
const idrRatio = results.reduce((n, r) => n + r.idrsOnGrid, 0) / results.reduce((n, r) => n + r.idrs, 0);
const cores = median(results.map((r) => r.ffmpegCoresPerMediaSecond));

// Targets: fragments in Node well under GPAC's ~250 ms chunk completion on a live encode,
// every IDR on the epoch grid, ±10 % per segment, and CPU headroom on a 2-core box.
const targets = {
  videoFragmentLatencyMedianMs: { target: '< 60', measured: videoLatency, met: videoLatency < 60 },
  idrsOnEpochGrid: { target: 1, measured: round(idrRatio, 4), met: idrRatio === 1 },
  segmentBitrateDeviationMaxAbsPct: { target: '<= 10', measured: maxDeviation, met: maxDeviation <= 10 },
  ffmpegCoresPerMediaSecond: { target: '< 1.2', measured: round(cores, 2), met: cores < 1.2 },
};

process.stdout.write(
  `${JSON.stringify(
    {
      bench: 'encoder',
      profile: values.profile,
      source: values.source,
      runs,
      secondsPerRun: seconds,
      machine: { cpus: cpus().length, model: cpus()[0]?.model, load1AtEnd: round(loadavg()[0]!, 2) },
      tracks,
      ffmpeg: {
        coresPerMediaSecond: round(cores, 2),
        peakRssMiB: round(median(results.map((r) => r.ffmpegPeakRssMiB))),
        speed: median(results.map((r) => r.speed ?? NaN)),
      },
      nodeRssMiB: round(median(results.map((r) => r.nodeRssMiB))),
      targets,
    },
    null,
    2,
  )}\n`,
);
process.exitCode = Object.values(targets).every((t) => t.met) ? 0 : 1;
