import { loadavg } from 'node:os';
import si from 'systeminformation';

export interface HostFigures {
  /** All cores, 0 to 1, since the previous sample. */
  cpuLoad: number;
  load1: number;
  memoryUsedBytes: number;
  memoryTotalBytes: number;
  /** The hottest CPU sensor; undefined without one (VMs, most laptops under Linux without lm-sensors). */
  temperatureCelsius: number | undefined;
}

/** How often the host is sampled: reading sensors is slow (sysfs, sometimes a process) and not needed more often. */
const SAMPLE_EVERY_MS = 10_000;

/** Pure: systeminformation's answers → the figures we keep; a missing or zero sensor is no sensor. */
export function hostFigures(
  load: { currentLoad: number },
  memory: { total: number; active: number },
  temperature: { main: number | null; max: number | null; cores: number[] },
): HostFigures {
  const readings = [temperature.main, temperature.max, ...temperature.cores].filter(
    (t): t is number => typeof t === 'number' && Number.isFinite(t) && t > 0,
  );
  return {
    cpuLoad: Math.round(load.currentLoad * 10) / 1000,
    load1: loadavg()[0] ?? 0,
    memoryUsedBytes: memory.active,
    memoryTotalBytes: memory.total,
    temperatureCelsius: readings.length ? Math.max(...readings) : undefined,
  };
}

/** Samples the host off the media path, on a timer that never keeps the process alive. */
export function sampleHost(onSample: (figures: HostFigures) => void, everyMs = SAMPLE_EVERY_MS): () => void {
  let busy = false;
  const sample = async () => {
    if (busy) return;
    busy = true;
    try {
      const [load, memory, temperature] = await Promise.all([si.currentLoad(), si.mem(), si.cpuTemperature()]);
      onSample(hostFigures(load, memory, temperature));
    } catch {
      // A host figure we cannot read is left out; the stream does not care.
    } finally {
      busy = false;
    }
  };
  void sample();
  const timer = setInterval(() => void sample(), everyMs);
  timer.unref();
  return () => clearInterval(timer);
}
