const UNIT_MS: Readonly<Record<string, number>> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
};

/**
 * Reads a duration such as `90s`, `30m`, `1h`, `2d` or `1h30m` (units s, m, h, d; whole
 * numbers; largest unit first) and returns milliseconds. Returns `undefined` for anything
 * else, including zero, so the caller can say what it expected.
 */
export function parseDuration(text: string): number | undefined {
  const trimmed = text.trim().toLowerCase();
  if (!/^(\d+[smhd])+$/.test(trimmed)) return undefined;
  let total = 0;
  let lastUnit = Number.POSITIVE_INFINITY;
  for (const [, digits, unit] of trimmed.matchAll(/(\d+)([smhd])/g)) {
    const unitMs = UNIT_MS[unit!]!;
    // Each unit at most once, largest first: `30m1h` or `1h1h` are more likely typos.
    if (unitMs >= lastUnit) return undefined;
    lastUnit = unitMs;
    total += Number(digits) * unitMs;
  }
  return total > 0 && Number.isSafeInteger(total) ? total : undefined;
}

/** A duration as people write it: `1h30m`, `45s`, `2d`; whole seconds, `0s` for less. */
export function formatDuration(ms: number): string {
  let rest = Math.max(0, Math.floor(ms / 1000));
  if (rest === 0) return '0s';
  const parts: string[] = [];
  for (const [unit, size] of [
    ['d', 86_400],
    ['h', 3_600],
    ['m', 60],
    ['s', 1],
  ] as const) {
    if (rest >= size) {
      parts.push(`${Math.floor(rest / size)}${unit}`);
      rest %= size;
    }
  }
  return parts.join('');
}
