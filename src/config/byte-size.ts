// Sizes of memory as the configuration takes them (no dependency: the command line parses them too).

const BYTE_SIZE_PATTERN = /^(\d+(?:\.\d+)?)\s*([KMG]?)(?:i?B)?$/i;

/**
 * `160M`, `1.5G`, `64MiB`, `512K` or a plain number of bytes; K, M and G are powers of 1024, as in
 * systemd's MemoryMax= (so a budget and the unit's limits read alike).
 */
export function parseByteSize(value: string | number): number | undefined {
  if (typeof value === 'number') return Number.isSafeInteger(value) && value > 0 ? value : undefined;
  const match = BYTE_SIZE_PATTERN.exec(value.trim());
  if (!match) return undefined;
  const unit = (match[2] ?? '').toUpperCase();
  // A fraction of a byte is no size: fractions only with a unit (1.5G).
  if (!unit && match[1]!.includes('.')) return undefined;
  const scale = { '': 1, K: 2 ** 10, M: 2 ** 20, G: 2 ** 30 }[unit] ?? 1;
  const bytes = Math.round(Number(match[1]) * scale);
  return bytes > 0 && Number.isSafeInteger(bytes) ? bytes : undefined;
}

export const BYTE_SIZE_EXAMPLES = 'a size such as 160M, 1.5G, 512K or a number of bytes';
