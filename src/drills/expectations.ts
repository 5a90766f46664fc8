/**
 * Judging a scenario's expectations against what a drill measured. The engine asks while the drill runs (to roll a
 * drain back the moment an expectation breaks) and once more at the end; a verdict is given only when the data
 * can no longer change it.
 */
import { earliestShift, formatKinds, SHIFT_WINDOW_MS, type OutcomeLog } from './measure.js';
import { formatDrillDuration, type Expectation, type TimeRange, type TimeRef } from './scenario.js';

/** What the engine knows of the drill so far. Times are ms since the drill started; a request counts when it was sent. */
export interface DrillTimeline {
  /** when the drill ends (or ended) */
  endMs: number;
  /** how long after it was sent a request's outcome is surely known (its deadline, and some slack for callbacks) */
  settleMs: number;
  /** when the step began; undefined when it has not (yet) */
  stepAt(step: string): number | undefined;
  /** why a step never began, once that is known (failed, skipped after a rollback) */
  stepNote(step: string): string | undefined;
  /** the stream's outcomes */
  log(traffic: string): OutcomeLog;
  traffic(): readonly string[];
  /** the states the cluster was seen in, each from `at` until the next */
  states(cluster: string): readonly { at: number; state: string }[];
  /** for a restore step: where the stream was before the fault it undid */
  failBackTier(traffic: string, restoreStep: string): readonly string[];
}

export interface Verdict {
  passed: boolean;
  detail: string;
  /** when it broke (ms since the start); for a kept expectation, when it was decided */
  at: number;
}

const percent = (share: number): string => `${Math.round(share * 1000) / 10}%`;
const seconds = (ms: number): string => `${Math.round(ms / 10) / 100} s`;
const formatRef = (ref: TimeRef): string => ('edge' in ref ? ref.edge : ref.offsetMs > 0 ? `${ref.step}+${formatDrillDuration(ref.offsetMs)}` : ref.step);

function formatRange(range: TimeRange, verb: string): string {
  const from = formatRef(range.from);
  const to = formatRef(range.to);
  if (from === 'start' && to === 'end') return '';
  if (to === 'end') return ` ${verb === 'during' ? 'from' : 'after'} ${from}`;
  if (from === 'start') return ` before ${to}`;
  return ` from ${from} to ${to}`;
}

/** The expectation in words, as reports name it. */
export function describeExpectation(expectation: Expectation): string {
  switch (expectation.kind) {
    case 'shift':
      return `${expectation.traffic} shifts to ${expectation.to.join(', ')} within ${formatDrillDuration(expectation.withinMs)} of ${expectation.after}${expectation.share === 0.95 ? '' : ` (${percent(expectation.share)})`}`;
    case 'failBack':
      return `${expectation.traffic} fails back to ${expectation.to?.join(', ') ?? 'where it was before'} within ${formatDrillDuration(expectation.withinMs)} of ${expectation.after}${expectation.share === 0.95 ? '' : ` (${percent(expectation.share)})`}`;
    case 'maxFailedRequests':
      return `at most ${expectation.count} failed request${expectation.count === 1 ? '' : 's'}${expectation.traffic !== undefined ? ` of ${expectation.traffic}` : ''}${formatRange(expectation.during, 'during')}`;
    case 'clusterState':
      return `${expectation.cluster} is ${expectation.state}${expectation.withinMs !== undefined ? ` within ${formatDrillDuration(expectation.withinMs)}` : ''}${expectation.after !== undefined ? ` ${expectation.withinMs !== undefined ? 'of' : 'after'} ${expectation.after}` : ''}`;
    case 'servedBy':
      return `${expectation.traffic} is served by ${expectation.clusters.join(', ')}${expectation.share === 1 ? '' : ` (${percent(expectation.share)})`}${formatRange(expectation.between, 'between')}`;
  }
}

type Resolved = { at: number } | { missing: string } | 'pending';

function resolveStep(timeline: DrillTimeline, step: string, final: boolean): Resolved {
  const at = timeline.stepAt(step);
  if (at !== undefined) return { at };
  const note = timeline.stepNote(step);
  if (final || note !== undefined) return { missing: `step ${step} never began${note !== undefined ? ` (${note})` : ''}` };
  return 'pending';
}

function resolveRef(timeline: DrillTimeline, ref: TimeRef, final: boolean): Resolved {
  if ('edge' in ref) return { at: ref.edge === 'start' ? 0 : timeline.endMs };
  const step = resolveStep(timeline, ref.step, final);
  return typeof step === 'object' && 'at' in step ? { at: Math.min(step.at + ref.offsetMs, timeline.endMs) } : step;
}

/** whether every request sent before `at` has been heard of by `now` */
const settled = (timeline: DrillTimeline, now: number, at: number, final: boolean): boolean => final || now >= at + timeline.settleMs;

/**
 * The verdict on one expectation at `now` (ms since the start), or undefined while the data may still change it.
 * With `final`, the drill is over and there is always a verdict.
 */
export function judge(expectation: Expectation, timeline: DrillTimeline, now: number, final: true): Verdict;
export function judge(expectation: Expectation, timeline: DrillTimeline, now: number, final: boolean): Verdict | undefined;
export function judge(expectation: Expectation, timeline: DrillTimeline, now: number, final: boolean): Verdict | undefined {
  switch (expectation.kind) {
    case 'shift':
    case 'failBack': {
      const after = resolveStep(timeline, expectation.after, final);
      if (after === 'pending') return undefined;
      if ('missing' in after) return { passed: false, detail: after.missing, at: now };
      const tier = expectation.to ?? timeline.failBackTier(expectation.traffic, expectation.after);
      const deadline = after.at + expectation.withinMs;
      const to = Math.min(deadline + SHIFT_WINDOW_MS, timeline.endMs);
      if (!settled(timeline, now, to, final)) return undefined;
      if (tier.length === 0) return { passed: false, detail: `${expectation.traffic} had no answered request in the second before the fault, so there is nowhere to fail back to`, at: after.at };
      const found = earliestShift(timeline.log(expectation.traffic), tier, expectation.share, after.at, deadline, to);
      const verb = expectation.kind === 'shift' ? 'shifted' : 'failed back';
      if (found.at !== undefined) return { passed: true, detail: `${verb} to ${tier.join(', ')} in ${seconds(found.at - after.at)} (the first second with ≥ ${percent(expectation.share)} there)`, at: now };
      return {
        passed: false,
        detail: `no second within ${formatDrillDuration(expectation.withinMs)} of ${expectation.after} had ≥ ${percent(expectation.share)} of ${expectation.traffic} on ${tier.join(', ')} (best: ${percent(found.best)})`,
        at: Math.min(deadline, timeline.endMs),
      };
    }
    case 'maxFailedRequests': {
      const from = resolveRef(timeline, expectation.during.from, final);
      if (from === 'pending') return undefined;
      if ('missing' in from) return { passed: false, detail: from.missing, at: now };
      const to = resolveRef(timeline, expectation.during.to, final);
      if (typeof to === 'object' && 'missing' in to) return { passed: false, detail: to.missing, at: now };
      // until `to` is known, the range reaches as far as anything was measured
      const until = to === 'pending' ? Infinity : to.at;
      const streams = expectation.traffic !== undefined ? [expectation.traffic] : timeline.traffic();
      const failures = streams.flatMap((stream) => timeline.log(stream).failuresBetween(from.at, until)).sort((a, b) => a.at - b.at);
      const byKind: Record<string, number> = {};
      for (const { error = 'unknown' } of failures) byKind[error] = (byKind[error] ?? 0) + 1;
      if (failures.length > expectation.count) {
        const breaking = failures[expectation.count]?.at ?? now;
        return { passed: false, detail: `${failures.length} failed (${formatKinds(byKind)})${final ? '' : ` by ${seconds(now)}`}`, at: breaking };
      }
      if (to === 'pending' || !settled(timeline, now, to.at, final)) return undefined;
      let total = 0;
      for (const stream of streams) timeline.log(stream).forEach(from.at, to.at, () => total++);
      return { passed: true, detail: failures.length === 0 ? `none of ${total} failed` : `${failures.length} of ${total} failed (${formatKinds(byKind)})`, at: now };
    }
    case 'clusterState': {
      const after = expectation.after === undefined ? { at: 0 } : resolveStep(timeline, expectation.after, final);
      if (after === 'pending') return undefined;
      if ('missing' in after) return { passed: false, detail: after.missing, at: now };
      const deadline = Math.min(expectation.withinMs === undefined ? timeline.endMs : after.at + expectation.withinMs, timeline.endMs);
      const states = timeline.states(expectation.cluster);
      const seen = states.filter((sample, i) => sample.at <= deadline && (states[i + 1]?.at ?? Infinity) > after.at);
      const hit = seen.find((sample) => sample.state === expectation.state);
      const since = expectation.after === undefined ? '' : ` after ${expectation.after}`;
      if (hit) return { passed: true, detail: `${expectation.state} ${seconds(Math.max(0, hit.at - after.at))}${since || ' after the start'}`, at: now };
      if (!final && now <= deadline) return undefined;
      const path = seen.map((sample) => `${sample.state} (at ${seconds(sample.at)})`).join(', then ') || 'no state';
      return { passed: false, detail: `never ${expectation.state}${expectation.withinMs !== undefined ? ` within ${formatDrillDuration(expectation.withinMs)}` : ''}${since}: ${path}`, at: deadline };
    }
    case 'servedBy': {
      const from = resolveRef(timeline, expectation.between.from, final);
      const to = resolveRef(timeline, expectation.between.to, final);
      if (from === 'pending' || to === 'pending') return undefined;
      if ('missing' in from) return { passed: false, detail: from.missing, at: now };
      if ('missing' in to) return { passed: false, detail: to.missing, at: now };
      if (!settled(timeline, now, to.at, final)) return undefined;
      const members = new Set(expectation.clusters);
      const elsewhere: Record<string, number> = {};
      let total = 0;
      let served = 0;
      timeline.log(expectation.traffic).forEach(from.at, to.at, ({ cluster, error }) => {
        total++;
        if (cluster !== undefined && members.has(cluster)) served++;
        else {
          const key = cluster ?? `failed ${error ?? 'unknown'}`;
          elsewhere[key] = (elsewhere[key] ?? 0) + 1;
        }
      });
      const others = Object.keys(elsewhere).length > 0 ? ` (${formatKinds(elsewhere)})` : '';
      const detail = `${served} of ${total} requests answered by ${expectation.clusters.join(', ')}${others}`;
      if (total === 0) return { passed: false, detail: `no request of ${expectation.traffic} was sent in that time`, at: to.at };
      return { passed: served / total >= expectation.share, detail, at: to.at };
    }
  }
}
