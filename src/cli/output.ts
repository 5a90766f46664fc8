import { stringify } from 'yaml';
import { UsageError } from './errors.js';

export const DATA_FORMATS = ['text', 'json', 'yaml'] as const;
export type DataFormat = (typeof DATA_FORMATS)[number];

export function dataFormat(value: string | undefined, allowed: readonly string[] = DATA_FORMATS): string {
  const format = value ?? 'text';
  if (!allowed.includes(format)) throw new UsageError(`unknown output format "${format}": use one of ${allowed.join(', ')}`);
  return format;
}

/** Prints `data` as JSON or YAML, or calls `text` to render it for people. */
export function print(format: string, data: unknown, text: () => string): void {
  if (format === 'json') process.stdout.write(JSON.stringify(data, null, 2) + '\n');
  else if (format === 'yaml') process.stdout.write(stringify(data));
  else process.stdout.write(text());
}

/** Aligns rows into columns under a header. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]): string => cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n') + '\n';
}
