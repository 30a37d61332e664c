import { readdir, readFile } from 'node:fs/promises';
import { loadavg, platform } from 'node:os';
import { type CpuTimes, idleCpus, parseProcStat } from '../encode/cpu-wait.ts';
import { join } from 'node:path';

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

/** Pure: /proc/meminfo → total and in use (total − available), in bytes. */
export function parseMeminfo(text: string): { total: number; active: number } | undefined {
  const kib = (name: string) => {
    const match = new RegExp(`^${name}:\\s+(\\d{1,15}) kB`, 'm').exec(text);
    return match ? Number(match[1]) * 1024 : undefined;
  };
  const total = kib('MemTotal');
  const available = kib('MemAvailable');
  if (total === undefined || available === undefined) return undefined;
  return { total, active: Math.max(0, total - available) };
}

type Reading = Parameters<typeof hostFigures>;

/**
 * Linux: everything from /proc and /sys, read as files. systeminformation, elsewhere, answers
 * the same questions by starting processes (lscpu, a shell for the sensors) on the first or every
 * sample, which on a box short of CPU held the media path for as long as they took.
 */
function linuxReader(): () => Promise<Reading> {
  let previous: CpuTimes | undefined;
  return async () => {
    const [stat, meminfo, temperatures] = await Promise.all([
      readText('/proc/stat'),
      readText('/proc/meminfo'),
      linuxCpuTemperatures(),
    ]);
    const times = parseProcStat(stat);
    const all = [...times.keys()];
    const idle = previous && all.length ? idleCpus(previous, times, all) : undefined;
    const load = idle === undefined ? undefined : (1 - idle / all.length) * 100;
    if (times.size) previous = times;
    const memory = parseMeminfo(meminfo);
    if (load === undefined || !memory) throw new Error('no reading yet');
    return [{ currentLoad: load }, memory, { main: null, max: null, cores: temperatures }];
  };
}

/** Other systems: systeminformation, loaded only when a sample is taken there. */
function systeminformationReader(): () => Promise<Reading> {
  return async () => {
    const { default: si } = await import('systeminformation');
    return Promise.all([si.currentLoad(), si.mem(), si.cpuTemperature()]);
  };
}

/** Samples the host off the media path, on a timer that never keeps the process alive. */
export function sampleHost(onSample: (figures: HostFigures) => void, everyMs = SAMPLE_EVERY_MS): () => void {
  const read = platform() === 'linux' ? linuxReader() : systeminformationReader();
  let busy = false;
  const sample = async () => {
    if (busy) return;
    busy = true;
    try {
      onSample(hostFigures(...(await read())));
    } catch {
      // A host figure we cannot read (yet) is left out; the stream does not care.
    } finally {
      busy = false;
    }
  };
  // The CPU load is a difference between two readings: the first figures come a second in.
  void sample();
  const first = setTimeout(() => void sample(), Math.min(1000, everyMs));
  first.unref();
  const timer = setInterval(() => void sample(), everyMs);
  timer.unref();
  return () => {
    clearTimeout(first);
    clearInterval(timer);
  };
}
