const UNIT_MS: Record<string, number> = {
  s: 1_000,
  m: 60_000,
  h: 3_600_000,
  d: 86_400_000,
  w: 7 * 86_400_000,
  y: 365 * 86_400_000,
};

/**
 * Parses a duration such as `90s`, `24h`, `30d`, `1y` or `1h30m` into milliseconds.
 * Years are 365 days, as certificate lifetimes are usually counted. With `milliseconds`, `ms` is a unit too
 * (`250ms`, `1s500ms`): for probe timings given on the command line; stored resources count in whole units.
 */
export function parseDuration(text: string, options: { milliseconds?: boolean } = {}): number {
  const trimmed = text.trim();
  const unit = options.milliseconds === true ? '(?:ms|[smhdwy])' : '[smhdwy]';
  if (!new RegExp(`^(\\d+${unit})+$`).test(trimmed)) {
    const units = options.milliseconds === true ? 'ms, s, m, h, d, w, y' : 's, m, h, d, w, y';
    throw new Error(`invalid duration "${text}": use a number and a unit (${units}), e.g. 24h, 30d, 1y or 1h30m`);
  }
  let total = 0;
  for (const [, amount, unitText] of trimmed.matchAll(/(\d+)(ms|[smhdwy])/g)) {
    total += unitText === 'ms' ? Number(amount) : Number(amount) * (UNIT_MS[unitText ?? ''] ?? 0);
  }
  if (total <= 0) throw new Error(`invalid duration "${text}": must be greater than zero`);
  return total;
}

export function formatDuration(ms: number): string {
  const units: [string, number][] = [
    ['y', UNIT_MS.y ?? 0],
    ['d', UNIT_MS.d ?? 0],
    ['h', UNIT_MS.h ?? 0],
    ['m', UNIT_MS.m ?? 0],
    ['s', UNIT_MS.s ?? 0],
  ];
  let rest = Math.round(ms / 1000) * 1000;
  let out = '';
  for (const [unit, size] of units) {
    const n = Math.floor(rest / size);
    if (n > 0) {
      out += `${n}${unit}`;
      rest -= n * size;
    }
  }
  return out || '0s';
}
