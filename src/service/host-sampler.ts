import { readdir, readFile } from 'node:fs/promises';
import { loadavg, platform } from 'node:os';
import { join } from 'node:path';
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

/** Pure: a sysfs temperature file (millidegrees Celsius) → degrees; anything else is no reading. */
export function parseMillidegrees(text: string): number | undefined {
  const trimmed = text.trim();
  if (!/^-?\d{1,7}$/.test(trimmed)) return undefined;
  const celsius = Number(trimmed) / 1000;
  return celsius > 0 && celsius < 150 ? celsius : undefined;
}

/** hwmon chips that measure the CPU (Intel, AMD, ARM boards' SoC). */
const CPU_HWMON = new Set(['coretemp', 'k10temp', 'zenpower', 'cpu_thermal', 'soc_thermal', 'cpu-thermal']);
const SYS_CLASS = '/sys/class';

const readText = (path: string) => readFile(path, 'utf8').catch(() => '');
const list = (path: string) => readdir(path).catch(() => [] as string[]);

/**
 * Linux: every thermal zone and every CPU hwmon sensor, read from sysfs without a process.
 * systeminformation runs a shell synchronously for this (execSync), which on a box short of CPU
 * held this process for as long as the shell took to start, every sample, chunks waiting behind it.
 */
export async function linuxCpuTemperatures(sysClass = SYS_CLASS): Promise<number[]> {
  const zones = (await list(join(sysClass, 'thermal'))).filter((n) => n.startsWith('thermal_zone'));
  const fromZones = zones.map((zone) => readText(join(sysClass, 'thermal', zone, 'temp')));
  const chips = (await list(join(sysClass, 'hwmon'))).map(async (chip) => {
    const dir = join(sysClass, 'hwmon', chip);
    if (!CPU_HWMON.has((await readText(join(dir, 'name'))).trim())) return [];
    const inputs = (await list(dir)).filter((n) => /^temp\d+_input$/.test(n));
    return Promise.all(inputs.map((n) => readText(join(dir, n))));
  });
  const texts = [...(await Promise.all(fromZones)), ...(await Promise.all(chips)).flat()];
  return texts.map(parseMillidegrees).filter((t): t is number => t !== undefined);
}

async function cpuTemperature(): Promise<{ main: number | null; max: number | null; cores: number[] }> {
  if (platform() === 'linux') return { main: null, max: null, cores: await linuxCpuTemperatures() };
  return si.cpuTemperature();
}

/** Samples the host off the media path, on a timer that never keeps the process alive. */
export function sampleHost(onSample: (figures: HostFigures) => void, everyMs = SAMPLE_EVERY_MS): () => void {
  let busy = false;
  const sample = async () => {
    if (busy) return;
    busy = true;
    try {
      const [load, memory, temperature] = await Promise.all([si.currentLoad(), si.mem(), cpuTemperature()]);
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
