/** What the benchmarks measure with: medians, heap readings, bounded polling. */

export const median = (values: number[]): number => [...values].sort((a, b) => a - b)[Math.floor(values.length / 2)] ?? 0;

/** Heap in use, in MB, after two forced collections when node runs with --expose-gc. */
export function heapMb(): number {
  const gc = (globalThis as { gc?: () => void }).gc;
  gc?.();
  gc?.();
  return process.memoryUsage().heapUsed / 1024 / 1024;
}

/**
 * Polls every 5 ms (often enough to add little to what is measured, rarely enough to take no CPU from it) until
 * `condition` holds; after `limitMs` throws, naming `what`.
 */
export async function until(condition: () => boolean, what: string | (() => string), limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${typeof what === 'string' ? what : what()}`);
    await new Promise((done) => setTimeout(done, 5));
  }
}
