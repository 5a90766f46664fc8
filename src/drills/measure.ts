/**
 * A drill's bookkeeping: every request outcome of one traffic stream, in per-second buckets (what the reports chart)
 * and in a compact log for the windowed questions expectations and shift measurements ask. Times are ms since the
 * drill started; a request counts at the moment it was SENT, whenever its answer (or its deadline) came: a call sent
 * into a partition that times out seconds later belongs to the second the partition hurt, not to a later one. So a
 * window is only complete once every request sent in it has come back (the engine waits for them, bounded).
 */
import type { DrillSecond, ShiftMeasurement } from './result.js';

/** the window a shift is judged in */
export const SHIFT_WINDOW_MS = 1_000;
/** the share of a stream's traffic on the new tier that makes a shift */
export const SHIFT_SHARE = 0.95;
/** a cluster with less of the answered requests than this is a straggler, not part of a tier */
const TIER_MIN_SHARE = 0.05;

interface Bucket {
  byCluster: Record<string, number>;
  errors: Record<string, number>;
  latencies: number[];
}

/** What one request came to: served by `cluster`, or failed with `error`. */
export interface Outcome {
  /** when it was sent */
  at: number;
  cluster?: string;
  error?: string;
}

export class OutcomeLog {
  #at = new Float64Array(1024);
  /** ≥ 0: index into #clusters (answered); < 0: -1 - index into #errors (failed) */
  #code = new Int32Array(1024);
  #length = 0;
  /** the indexes of the failed outcomes: failures are few, and the live checks scan only them */
  readonly #failures: number[] = [];
  readonly #limit: number;
  readonly #names: { clusters: string[]; errors: string[] } = { clusters: [], errors: [] };
  readonly #index = { clusters: new Map<string, number>(), errors: new Map<string, number>() };
  readonly #buckets = new Map<number, Bucket>();

  /** `limit` bounds the outcomes kept: a world that sends far more than it was asked cannot exhaust memory */
  constructor(limit: number) {
    this.#limit = limit;
  }

  get length(): number {
    return this.#length;
  }

  #intern(kind: 'clusters' | 'errors', name: string): number {
    let index = this.#index[kind].get(name);
    if (index === undefined) {
      index = this.#names[kind].length;
      this.#names[kind].push(name);
      this.#index[kind].set(name, index);
    }
    return index;
  }

  /** Records one outcome of a request sent at `at`; false when the log is full. */
  add(at: number, latencyMs: number, cluster: string | undefined, error: string | undefined): boolean {
    if (this.#length >= this.#limit) return false;
    if (this.#length === this.#at.length) {
      const size = Math.min(this.#limit, this.#at.length * 2);
      const at = new Float64Array(size);
      at.set(this.#at);
      const code = new Int32Array(size);
      code.set(this.#code);
      this.#at = at;
      this.#code = code;
    }
    const failed = cluster === undefined;
    this.#at[this.#length] = at;
    this.#code[this.#length] = failed ? -1 - this.#intern('errors', error ?? 'unknown') : this.#intern('clusters', cluster);
    if (failed) this.#failures.push(this.#length);
    this.#length++;
    const second = Math.floor(at / 1000);
    let bucket = this.#buckets.get(second);
    if (!bucket) {
      bucket = { byCluster: {}, errors: {}, latencies: [] };
      this.#buckets.set(second, bucket);
    }
    if (failed) {
      const kind = error ?? 'unknown';
      bucket.errors[kind] = (bucket.errors[kind] ?? 0) + 1;
    } else {
      bucket.byCluster[cluster] = (bucket.byCluster[cluster] ?? 0) + 1;
      bucket.latencies.push(latencyMs);
    }
    return true;
  }

  /** Second `t` (from t s to t+1 s). */
  second(t: number): DrillSecond {
    const bucket = this.#buckets.get(t);
    if (!bucket) return { t, byCluster: {}, errors: {} };
    const sorted = [...bucket.latencies].sort((a, b) => a - b);
    const latency = sorted.length > 0 ? { p50Ms: percentile(sorted, 0.5), p99Ms: percentile(sorted, 0.99) } : {};
    return { t, byCluster: { ...bucket.byCluster }, errors: { ...bucket.errors }, ...latency };
  }

  /** Every cluster that answered a request. */
  clusters(): string[] {
    return [...this.#names.clusters];
  }

  /** Calls `visit` for every outcome with from ≤ at < to, in the order they were recorded. */
  forEach(from: number, to: number, visit: (outcome: Outcome) => void): void {
    for (let i = 0; i < this.#length; i++) {
      const at = this.#at[i] ?? 0;
      if (at < from || at >= to) continue;
      const code = this.#code[i] ?? 0;
      visit(code >= 0 ? { at, cluster: this.#names.clusters[code] ?? '' } : { at, error: this.#names.errors[-1 - code] ?? 'unknown' });
    }
  }

  /** The outcomes with from ≤ at < to, by time. */
  between(from: number, to: number): Outcome[] {
    const out: Outcome[] = [];
    this.forEach(from, to, (outcome) => out.push(outcome));
    return out.sort((a, b) => a.at - b.at);
  }

  /** The failed outcomes with from ≤ at < to, by time. */
  failuresBetween(from: number, to: number): Outcome[] {
    const out: Outcome[] = [];
    for (const i of this.#failures) {
      const at = this.#at[i] ?? 0;
      if (at >= from && at < to) out.push({ at, error: this.#names.errors[-1 - (this.#code[i] ?? -1)] ?? 'unknown' });
    }
    return out.sort((a, b) => a.at - b.at);
  }
}

/** Nearest-rank percentile of sorted values, rounded to 0.01 ms. */
function percentile(sorted: readonly number[], p: number): number {
  const value = sorted[Math.max(0, Math.ceil(p * sorted.length) - 1)] ?? 0;
  return Math.round(value * 100) / 100;
}

/** The clusters that carried the stream's answered requests in [from, to), stragglers left out; sorted. */
export function tierBetween(log: OutcomeLog, from: number, to: number): string[] {
  const counts = new Map<string, number>();
  let answered = 0;
  log.forEach(from, to, ({ cluster }) => {
    if (cluster === undefined) return;
    answered++;
    counts.set(cluster, (counts.get(cluster) ?? 0) + 1);
  });
  return [...counts].filter(([, count]) => count >= answered * TIER_MIN_SHARE).map(([cluster]) => cluster).sort();
}

export interface FailureCount {
  total: number;
  byKind: Record<string, number>;
}

export function failuresBetween(log: OutcomeLog, from: number, to: number): FailureCount {
  const counted: FailureCount = { total: 0, byKind: {} };
  for (const { error = 'unknown' } of log.failuresBetween(from, to)) {
    counted.total++;
    counted.byKind[error] = (counted.byKind[error] ?? 0) + 1;
  }
  return counted;
}

/** `UNAVAILABLE 3, timeout 1` */
export const formatKinds = (byKind: Record<string, number>): string =>
  Object.entries(byKind)
    .sort(([a], [b]) => a.localeCompare(b))
    .map(([kind, count]) => `${kind} ${count}`)
    .join(', ');

export interface ShiftSearch {
  /** the start of the first window with enough on the tier; absent when none had */
  at?: number;
  /** the largest share any window had (for the report of a shift that did not happen) */
  best: number;
}

/**
 * The earliest moment s in [from, lastStart] such that of the requests sent in [s, s + 1 s) at least `share`
 * were answered by `tier` (failures count against it). Windows are cut at `to`; they must be whole unless
 * [from, to) itself is shorter than one. An empty window never counts.
 */
export function earliestShift(log: OutcomeLog, tier: readonly string[], share: number, from: number, lastStart: number, to: number): ShiftSearch {
  const outcomes = log.between(from, to);
  const members = new Set(tier);
  // prefix[i]: outcomes among the first i that were answered by the tier
  const prefix = [0];
  for (const outcome of outcomes) prefix.push((prefix.at(-1) ?? 0) + (outcome.cluster !== undefined && members.has(outcome.cluster) ? 1 : 0));
  const latest = Math.min(lastStart, to - SHIFT_WINDOW_MS);
  const starts = [from, ...outcomes.map((outcome) => outcome.at).filter((at) => at > from && at <= latest)];
  let best = 0;
  let first = 0;
  let end = 0;
  for (const start of starts) {
    while (first < outcomes.length && (outcomes[first]?.at ?? 0) < start) first++;
    const stop = Math.min(start + SHIFT_WINDOW_MS, to);
    if (end < first) end = first;
    while (end < outcomes.length && (outcomes[end]?.at ?? 0) < stop) end++;
    const total = end - first;
    if (total === 0) continue;
    const ratio = ((prefix[end] ?? 0) - (prefix[first] ?? 0)) / total;
    best = Math.max(best, ratio);
    if (ratio >= share) return { at: start, best };
  }
  return { best };
}

/** One moment of the drill that may move traffic: a fault (or faults begun together), or a restore. */
export interface Moment {
  /** what the reports call it: the fault's label, "restore ..." */
  label: string;
  /** when it began */
  at: number;
  /** when the next moment began, or the drill ended */
  end: number;
  /** for a restore: the tier the stream was on before the fault it undoes (fail back there) */
  failBackTo?: readonly string[];
}

const sameTier = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((cluster, i) => cluster === b[i]);

/**
 * What a moment did to one stream. The old tier is where the stream was in the second before; the new tier is where
 * it settled (the last second before the next moment), or for a restore, where it was before the fault. Undefined
 * when the stream neither moved nor failed.
 */
export function measureShift(log: OutcomeLog, stream: string, moment: Moment, previous: number): ShiftMeasurement | undefined {
  const before = tierBetween(log, Math.max(previous, moment.at - SHIFT_WINDOW_MS), moment.at);
  const settled = tierBetween(log, Math.max(moment.at, moment.end - SHIFT_WINDOW_MS), moment.end);
  const target = moment.failBackTo ?? settled;
  const failed = failuresBetween(log, moment.at, moment.end).total;
  if (sameTier(before, settled) && failed === 0) return undefined;
  const fresh = new Set(target.filter((cluster) => !before.includes(cluster)));
  const detected = log.between(moment.at, moment.end).find((outcome) => outcome.error !== undefined || (outcome.cluster !== undefined && fresh.has(outcome.cluster)));
  const shift = target.length > 0 ? earliestShift(log, target, SHIFT_SHARE, moment.at, moment.end, moment.end).at : undefined;
  const shiftEnd = shift === undefined ? moment.end : Math.min(shift + SHIFT_WINDOW_MS, moment.end);
  const measurement: ShiftMeasurement = { stream, fault: moment.label, failedDuringShift: failuresBetween(log, moment.at, shiftEnd).total };
  if (detected) measurement.timeToDetectMs = Math.round(detected.at - moment.at);
  if (shift !== undefined && moment.failBackTo) measurement.timeToFailBackMs = Math.round(shift - moment.at);
  else if (shift !== undefined) measurement.timeToShiftMs = Math.round(shift - moment.at);
  return measurement;
}
