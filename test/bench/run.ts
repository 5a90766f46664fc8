/**
 * Runs every benchmark in this directory: each `*.bench.ts` file, in name order, must export
 * `run(): Promise<void>` (or a default function) that measures and prints its own results.
 * Benchmarks only report; they never fail on a number.
 *
 *   npm run bench            # every benchmark
 *   npm run bench -- ca      # only files whose name contains "ca"
 */
import { readdirSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';

type BenchRunner = () => Promise<void> | void;

const benchDir = dirname(fileURLToPath(import.meta.url));

function runnerOf(module: unknown): BenchRunner | undefined {
  if (typeof module !== 'object' || module === null) return undefined;
  const exports = module as Record<string, unknown>;
  const candidate = typeof exports.run === 'function' ? exports.run : exports.default;
  return typeof candidate === 'function' ? (candidate as BenchRunner) : undefined;
}

const filters = process.argv.slice(2);
const files = readdirSync(benchDir)
  .filter((name) => name.endsWith('.bench.ts'))
  .filter((name) => filters.length === 0 || filters.some((filter) => name.includes(filter)))
  .sort();

if (files.length === 0) {
  console.error(`no *.bench.ts files${filters.length ? ` matching ${filters.join(', ')}` : ''} in ${benchDir}`);
  process.exitCode = 1;
}

for (const file of files) {
  console.log(`\n=== ${file} ===`);
  const started = performance.now();
  try {
    const module: unknown = await import(pathToFileURL(join(benchDir, file)).href);
    const run = runnerOf(module);
    if (!run) throw new Error(`${file} exports neither run() nor a default function`);
    await run();
    console.log(`--- ${file} done in ${((performance.now() - started) / 1000).toFixed(1)} s`);
  } catch (error) {
    console.error(`--- ${file} failed:`, error);
    process.exitCode = 1;
  }
}
