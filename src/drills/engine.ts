/**
 * The drill engine: runs a scenario against a DrillWorld. It starts every traffic stream, takes the steps at their
 * times, records every request's outcome (in the second it was sent), judges the expectations while the drill runs (a drain, or a fault on
 * a real cluster, is rolled back the moment one breaks) and at the end, measures each shift, and always restores what it applied. Everything it waits
 * for is bounded: the drill ends at its duration even if a step hangs, and cleanup has its own time limits.
 */
import { describeExpectation, judge, type DrillTimeline, type Verdict } from './expectations.js';
import { measureShift, OutcomeLog, SHIFT_WINDOW_MS, tierBetween, type Moment } from './measure.js';
import type { DrillEvent, DrillResult, DrillSecond, ExpectationResult, ShiftMeasurement } from './result.js';
import { formatDrillDuration, ScenarioError, type Scenario, type ScenarioStep } from './scenario.js';
import type { AppliedFault, DrillWorld, Fault, FaultKind, FaultOptions, FaultTarget, RequestOutcome, Traffic } from './world.js';

/** How long the engine waits for the world, in ms. */
export interface DrillTimeouts {
  /** every stream started and answered (before the drill's clock starts) */
  ready: number;
  /** one fault applied (also cut short by the drill's end) */
  apply: number;
  /** one fault restored */
  restore: number;
  /** one stream stopped, its requests in flight answered (never less than their deadline) */
  stop: number;
}

export const DEFAULT_DRILL_TIMEOUTS: Readonly<DrillTimeouts> = Object.freeze({ ready: 30_000, apply: 15_000, restore: 15_000, stop: 10_000 });

/** What a live display shows, once a second. */
export interface DrillProgress {
  /** seconds since the start */
  t: number;
  durationSeconds: number;
  /** the last step that began */
  step?: string;
  /** per stream, the last whole second */
  streams: { name: string; second: DrillSecond }[];
  /** everything that happened so far */
  events: readonly DrillEvent[];
}

export interface RunDrillOptions {
  onProgress?: (progress: DrillProgress) => void;
  /** ends the drill early (faults restored, traffic stopped); the drill then fails */
  signal?: AbortSignal;
  timeouts?: Partial<DrillTimeouts>;
  /** faults on real clusters may run (`drill run --allow-disruptive`) */
  allowDisruptive?: boolean;
}

/** The drill could not run at all (no fault was applied). */
export class DrillError extends Error {}

/** how often the engine samples cluster states, judges expectations and reports progress */
const TICK_MS = 100;
/** how late an outcome may be reported after its deadline (callbacks, timers) */
const REPORT_SLACK_MS = 250;

type FaultStep = Extract<ScenarioStep, { target: FaultTarget }>;
type RestoreStep = Extract<ScenarioStep, { fault: 'restore' }>;

interface ActiveFault {
  step: string;
  kind: FaultKind;
  label: string;
  applied: AppliedFault;
}

const message = (error: unknown): string => (error instanceof Error ? error.message : String(error));

function describeTarget(target: FaultTarget): string {
  const where = target.cluster ?? target.region ?? '';
  return [target.zone !== undefined ? `${where}/${target.zone}` : where, target.service ?? target.virtualDestination].filter((part) => part !== undefined && part !== '').join(' ');
}

/** Settles as `promise` does, or rejects after `ms` or when `signal` aborts; a value that comes later goes to `late`. */
function bounded<T>(promise: Promise<T>, ms: number, what: string, options: { signal?: AbortSignal; late?: (value: T) => void } = {}): Promise<T> {
  return new Promise<T>((resolve, reject) => {
    let done = false;
    const { signal, late } = options;
    const onAbort = (): void => {
      if (finish()) reject(new Error(`${what}: the drill ended first`));
    };
    const timer = setTimeout(() => {
      if (finish()) reject(new Error(`${what}: no answer within ${formatDrillDuration(ms)}`));
    }, ms);
    function finish(): boolean {
      if (done) return false;
      done = true;
      clearTimeout(timer);
      signal?.removeEventListener('abort', onAbort);
      return true;
    }
    signal?.addEventListener('abort', onAbort, { once: true });
    if (signal?.aborted) onAbort();
    promise.then(
      (value) => {
        if (finish()) resolve(value);
        else late?.(value);
      },
      (error: unknown) => {
        if (finish()) reject(error instanceof Error ? error : new Error(String(error)));
      },
    );
  });
}

/** Resolves after `ms`, or at once when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted || ms <= 0) {
      resolve();
      return;
    }
    const done = (): void => {
      clearTimeout(timer);
      signal.removeEventListener('abort', done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal.addEventListener('abort', done, { once: true });
  });
}

/** Checks every cluster, region, zone and virtual destination the scenario names against the world, and every fault against what the world refuses under `options`. */
export function checkScenarioAgainstWorld(scenario: Scenario, world: DrillWorld, options: FaultOptions = { allowDisruptive: false }): void {
  const clusters = world.clusters();
  const names = new Set(clusters.map((cluster) => cluster.name));
  const regions = new Set(clusters.map((cluster) => cluster.region));
  const problems: string[] = [];
  const them = `the target has ${[...names].sort().join(', ') || 'no cluster'}`;
  const cluster = (field: string, name: string | undefined): void => {
    if (name !== undefined && !names.has(name)) problems.push(`${field}: no cluster ${name} (${them})`);
  };
  scenario.traffic.forEach((stream, i) => {
    cluster(`spec.traffic[${i}].from`, stream.from);
    const host = stream.to.replace(/:\d+$/, '');
    if (!world.virtualDestination(host)) problems.push(`spec.traffic[${i}].to: no virtual destination ${host} in the target`);
  });
  for (const step of scenario.steps) {
    if (step.fault === 'restore') continue;
    const target = step.target;
    const field = `step ${step.name}: target`;
    cluster(`${field}.cluster`, target.cluster);
    if (target.region !== undefined && !regions.has(target.region)) problems.push(`${field}.region: no region ${target.region} (regions: ${[...regions].sort().join(', ')})`);
    if (target.zone !== undefined) {
      const within = clusters.filter((c) => (target.cluster === undefined || c.name === target.cluster) && (target.region === undefined || c.region === target.region));
      if (!within.some((c) => c.zone === target.zone)) problems.push(`${field}.zone: no zone ${target.zone} in ${target.cluster ?? target.region ?? 'the target'}`);
    }
    const refused = world.refusal?.({ kind: step.fault, target }, options);
    if (refused !== undefined) problems.push(`step ${step.name}: ${refused}`);
  }
  scenario.expectations.forEach((expectation, i) => {
    const field = `spec.expectations[${i}].${expectation.kind}`;
    const named = expectation.kind === 'shift' || expectation.kind === 'failBack' ? (expectation.to ?? []) : expectation.kind === 'servedBy' ? expectation.clusters : [];
    named.forEach((name, j) => {
      cluster(`${field}.${expectation.kind === 'servedBy' ? 'clusters' : 'to'}[${j}]`, name);
    });
    if (expectation.kind === 'clusterState') cluster(`${field}.cluster`, expectation.cluster);
  });
  if (problems.length > 0) throw new ScenarioError(`${scenario.source ?? scenario.name} (FailoverDrill ${scenario.name}): ${problems.join('; ')}`);
}

/** Starts every stream and waits until each has its first answer; on failure, stops what started. */
async function startTraffic(scenario: Scenario, world: DrillWorld, timeouts: DrillTimeouts, record: (stream: string) => (outcome: RequestOutcome) => void): Promise<Traffic[]> {
  const started: Traffic[] = [];
  const stopLate = (traffic: Traffic): void => {
    traffic.stop().catch(() => undefined);
  };
  try {
    for (const spec of scenario.traffic) {
      started.push(await bounded(world.startTraffic(spec, record(spec.name)), timeouts.ready, `traffic ${spec.name} did not start`, { late: stopLate }));
    }
    await bounded(
      Promise.all(
        started.map((traffic, i) =>
          traffic.ready().catch((error: unknown) => {
            throw new Error(`traffic ${scenario.traffic[i]?.name ?? i} never got an answer: ${message(error)}`);
          }),
        ),
      ),
      timeouts.ready,
      'traffic not ready',
    );
    return started;
  } catch (error) {
    await Promise.all(started.map((traffic) => bounded(traffic.stop(), timeouts.stop, 'stop').catch(() => undefined)));
    throw new DrillError(`${scenario.name}: ${message(error)}`);
  }
}

/** Runs the scenario against the world and returns what it measured. Throws ScenarioError or DrillError before anything is applied. */
export async function runDrill(scenario: Scenario, world: DrillWorld, options: RunDrillOptions = {}): Promise<DrillResult> {
  const faultOptions: FaultOptions = { allowDisruptive: options.allowDisruptive ?? false };
  checkScenarioAgainstWorld(scenario, world, faultOptions);
  const timeouts: DrillTimeouts = { ...DEFAULT_DRILL_TIMEOUTS, ...options.timeouts };
  // a request's outcome is known by its deadline (its attempts share it); the slack covers callbacks and timers
  const settleMs = Math.max(0, ...scenario.traffic.map((spec) => spec.timeoutMs)) + REPORT_SLACK_MS;
  if (options.signal?.aborted) throw new DrillError(`${scenario.name}: aborted before it began`);
  const logs = new Map(scenario.traffic.map((spec) => [spec.name, new OutcomeLog(Math.ceil(spec.rate * (scenario.durationMs / 1000) * 4) + 10_000)]));
  // requests sent before the clock starts land before 0 and are left out, as are those sent after the end
  let origin = Infinity;
  let endMs = scenario.durationMs;
  const record =
    (stream: string) =>
    (outcome: RequestOutcome): void => {
      const at = outcome.sentAt - origin;
      if (at < 0 || at >= endMs) return;
      logs.get(stream)?.add(at, outcome.latencyMs, outcome.error === undefined ? outcome.cluster : undefined, outcome.error);
    };
  const traffic = await startTraffic(scenario, world, timeouts, record);

  origin = performance.now();
  const startedAt = new Date().toISOString();
  const now = (): number => performance.now() - origin;
  const finished = new AbortController();
  const events: DrillEvent[] = [];
  const problems: ExpectationResult[] = [];
  const stepStarted = new Map<string, number>();
  const stepNotes = new Map<string, string>();
  const faultLabels = new Map<string, string>();
  /** restore step → the fault steps it undid */
  const undid = new Map<string, string[]>();
  const active = new Map<string, ActiveFault>();
  const background = new Set<Promise<void>>();
  const states = new Map<string, { at: number; state: string }[]>();
  const liveFailures = new Map<number, Verdict>();
  let rolledBack: string | undefined;
  /** the first expectation that broke while the drill ran, and when the engine saw it */
  let broken: { at: number; reason: string } | undefined;
  let currentStep: string | undefined;
  let abortReason: string | undefined;

  const event = (atMs: number, kind: DrillEvent['kind'], label: string): void => {
    events.push({ t: Math.round(atMs) / 1000, kind, label });
  };
  const problem = (name: string, detail: string, atMs: number): void => {
    problems.push({ name, passed: false, detail });
    event(atMs, 'expectation-failed', `${name}: ${detail}`);
  };
  const track = (promise: Promise<void>): void => {
    background.add(promise);
    void promise.finally(() => background.delete(promise));
  };
  const log = (stream: string): OutcomeLog => logs.get(stream) ?? new OutcomeLog(0);

  const restoreFault = async (fault: ActiveFault, retryAtEnd: boolean): Promise<void> => {
    try {
      await bounded(fault.applied.restore(), timeouts.restore, `restore ${fault.label}`);
    } catch (error) {
      // restore is idempotent: one more try when the drill ends
      if (retryAtEnd) active.set(fault.step, fault);
      problem(`${fault.label} is restored`, `${message(error)}${retryAtEnd ? ' (tried again at the end)' : ' (it may still be in effect)'}`, now());
    }
  };

  const rollback = (reason: string): void => {
    // a drain is gentle, and a fault on a real cluster must not outlast a broken expectation: both go back at once
    const undone = [...active.values()].filter((fault) => fault.kind === 'drain' || fault.applied.disruptive === true);
    if (undone.length === 0) return;
    rolledBack ??= reason;
    for (const fault of undone) {
      active.delete(fault.step);
      event(now(), 'rollback', `rollback ${fault.label}: ${reason}`);
      track(restoreFault(fault, true));
    }
  };

  const applyStep = async (step: FaultStep, at: number): Promise<void> => {
    const fault: Fault = { kind: step.fault, target: step.target };
    const late = (applied: AppliedFault): void => {
      event(now(), 'restore', `restore ${applied.label} (applied after the engine gave up on it)`);
      const restoring = bounded(applied.restore(), timeouts.restore, `restore ${applied.label}`).catch((error: unknown) => {
        problem(`${applied.label} is restored`, `${message(error)} (it may still be in effect)`, now());
      });
      track(restoring);
    };
    try {
      const applied = await bounded(world.apply(fault, faultOptions), timeouts.apply, `${fault.kind} ${describeTarget(fault.target)}`, { signal: finished.signal, late });
      active.set(step.name, { step: step.name, kind: fault.kind, label: applied.label, applied });
      faultLabels.set(step.name, applied.label);
      event(at, 'fault', applied.label);
      // an expectation broke while this drain was being applied: it goes back at once
      if ((fault.kind === 'drain' || applied.disruptive === true) && broken && broken.at >= at) rollback(broken.reason);
    } catch (error) {
      stepStarted.delete(step.name);
      stepNotes.set(step.name, `its fault was not applied: ${message(error)}`);
      problem(`step ${step.name} applies ${fault.kind} ${describeTarget(fault.target)}`, message(error), at);
    }
  };

  const restoreStep = async (step: RestoreStep, at: number): Promise<void> => {
    const restoredBefore = new Set([...undid.values()].flat());
    const names = step.of !== undefined ? [step.of] : scenario.steps.filter((s) => s.fault !== 'restore' && faultLabels.has(s.name) && !restoredBefore.has(s.name)).map((s) => s.name);
    undid.set(step.name, names);
    const faults = (step.of !== undefined ? names : [...active.keys()].reverse()).flatMap((name) => active.get(name) ?? []);
    for (const fault of faults) {
      active.delete(fault.step);
      event(at, 'restore', `restore ${fault.label}`);
    }
    for (const fault of faults) await restoreFault(fault, true);
  };

  const runSteps = async (): Promise<void> => {
    for (const step of scenario.steps) {
      await sleep(step.atMs - now(), finished.signal);
      if (finished.signal.aborted) return;
      const at = now();
      if (step.fault !== 'restore' && rolledBack !== undefined) {
        stepNotes.set(step.name, `skipped after the rollback: ${rolledBack}`);
        continue;
      }
      stepStarted.set(step.name, at);
      currentStep = step.name;
      if (step.fault === 'restore') await restoreStep(step, at);
      else await applyStep(step, at);
      sampleStates(now());
    }
  };

  const timeline: DrillTimeline = {
    get endMs() {
      return endMs;
    },
    settleMs,
    stepAt: (step) => stepStarted.get(step),
    stepNote: (step) => stepNotes.get(step),
    log,
    traffic: () => scenario.traffic.map((spec) => spec.name),
    states: (cluster) => states.get(cluster) ?? [],
    failBackTier: (stream, restore) => {
      const began = (undid.get(restore) ?? []).flatMap((name) => stepStarted.get(name) ?? []);
      if (began.length === 0) return [];
      const fault = Math.min(...began);
      return tierBetween(log(stream), Math.max(0, fault - SHIFT_WINDOW_MS), fault);
    },
  };

  const watched = [...new Set(scenario.expectations.flatMap((e) => (e.kind === 'clusterState' ? [e.cluster] : [])))];
  const sampleStates = (at: number): void => {
    for (const cluster of watched) {
      let state: string;
      try {
        state = world.clusterState(cluster) ?? 'unknown';
      } catch (error) {
        state = `unknown (${message(error)})`;
      }
      const samples = states.get(cluster) ?? [];
      if (samples.at(-1)?.state !== state) samples.push({ at, state });
      states.set(cluster, samples);
    }
  };

  const checkLive = (at: number): void => {
    scenario.expectations.forEach((expectation, i) => {
      if (liveFailures.has(i)) return;
      const verdict = judge(expectation, timeline, at, false);
      if (!verdict || verdict.passed) return;
      liveFailures.set(i, verdict);
      const name = describeExpectation(expectation);
      event(verdict.at, 'expectation-failed', `${name}: ${verdict.detail}`);
      broken ??= { at, reason: `${name} broke (${verdict.detail})` };
      rollback(`${name} broke (${verdict.detail})`);
    });
  };

  let lastProgress = -1;
  const reportProgress = (at: number): void => {
    const second = Math.floor(at / 1000) - 1;
    if (!options.onProgress || second <= lastProgress) return;
    lastProgress = second;
    const progress: DrillProgress = {
      t: second + 1,
      durationSeconds: scenario.durationMs / 1000,
      ...(currentStep !== undefined ? { step: currentStep } : {}),
      streams: scenario.traffic.map((spec) => ({ name: spec.name, second: log(spec.name).second(second) })),
      events: [...events],
    };
    try {
      options.onProgress(progress);
    } catch {
      // a broken display must not break the drill
    }
  };

  const finish = (): void => {
    finished.abort();
  };
  const onAbort = (): void => {
    endMs = Math.min(endMs, now());
    abortReason = message(options.signal?.reason ?? 'aborted');
    finish();
  };
  options.signal?.addEventListener('abort', onAbort, { once: true });
  const endTimer = setTimeout(finish, scenario.durationMs);
  sampleStates(0);
  const ticker = setInterval(() => {
    const at = now();
    try {
      sampleStates(at);
      checkLive(at);
      reportProgress(at);
    } catch (error) {
      // never an uncaught exception with faults in effect: end the drill, which restores them
      problem('the drill is watched', message(error), at);
      finish();
    }
  }, TICK_MS);
  const stepsDone = runSteps().catch((error: unknown) => {
    problem('the drill steps run', message(error), now());
    finish();
  });

  try {
    await new Promise<void>((resolve) => {
      if (finished.signal.aborted) resolve();
      else
        finished.signal.addEventListener(
          'abort',
          () => {
            resolve();
          },
          { once: true },
        );
    });
  } finally {
    // the states as the drill left them, before the cleanup restores anything
    sampleStates(Math.min(now(), endMs));
    clearInterval(ticker);
    clearTimeout(endTimer);
    options.signal?.removeEventListener('abort', onAbort);
    await stepsDone;
    // nothing is sent after the end, and the requests in flight come back (or run out their deadline) before any
    // fault is lifted: what was sent into a fault is measured as the fault treated it, and the report is final
    await Promise.all(
      traffic.map((stream, i) =>
        bounded(stream.stop(), Math.max(timeouts.stop, settleMs), `stop traffic ${scenario.traffic[i]?.name ?? i}`).catch((error: unknown) => {
          problem('traffic stops', message(error), now());
        }),
      ),
    );
    for (const fault of [...active.values()].reverse()) {
      active.delete(fault.step);
      event(now(), 'restore', `restore ${fault.label} (end of drill)`);
      await restoreFault(fault, false);
    }
    await Promise.all([...background]);
  }

  const expectations: ExpectationResult[] = scenario.expectations.map((expectation, i) => {
    const name = describeExpectation(expectation);
    const verdict = judge(expectation, timeline, endMs, true);
    const live = liveFailures.get(i);
    // what broke while the drill ran stays broken (it may have caused a rollback), told with all that was measured
    if (live && verdict.passed) return { name, passed: false, detail: live.detail };
    if (!live && !verdict.passed) event(verdict.at, 'expectation-failed', `${name}: ${verdict.detail}`);
    return { name, passed: verdict.passed, detail: verdict.detail };
  });
  if (abortReason !== undefined) problems.push({ name: 'the drill runs its whole duration', passed: false, detail: `aborted after ${Math.round(endMs) / 1000} s: ${abortReason}` });

  return {
    name: scenario.name,
    ...(scenario.source !== undefined ? { scenario: scenario.source } : {}),
    startedAt,
    durationSeconds: endMs / 1000,
    passed: [...expectations, ...problems].every((result) => result.passed),
    clusters: involvedClusters(scenario, world, stepStarted, logs),
    streams: scenario.traffic.map((spec) => ({
      name: spec.name,
      from: spec.from,
      to: spec.to,
      via: spec.via,
      seconds: Array.from({ length: Math.ceil(endMs / 1000) }, (_, t) => log(spec.name).second(t)),
    })),
    events: events.sort((a, b) => a.t - b.t),
    expectations: [...expectations, ...problems],
    shifts: measureShifts(scenario, timeline, stepStarted, faultLabels, undid),
  };
}

/** Every cluster that served traffic or was a fault's target. */
function involvedClusters(scenario: Scenario, world: DrillWorld, stepStarted: ReadonlyMap<string, number>, logs: ReadonlyMap<string, OutcomeLog>): string[] {
  const clusters = new Set([...logs.values()].flatMap((log) => log.clusters()));
  for (const step of scenario.steps) {
    if (step.fault === 'restore' || !stepStarted.has(step.name)) continue;
    const target = step.target;
    if (target.cluster !== undefined) clusters.add(target.cluster);
    else for (const cluster of world.clusters()) if (cluster.region === target.region && (target.zone === undefined || cluster.zone === target.zone)) clusters.add(cluster.name);
  }
  return [...clusters].sort();
}

/** What each moment (the steps that began at one scheduled time) did to each stream. */
function measureShifts(scenario: Scenario, timeline: DrillTimeline, stepStarted: ReadonlyMap<string, number>, faultLabels: ReadonlyMap<string, string>, undid: ReadonlyMap<string, string[]>): ShiftMeasurement[] {
  const groups = new Map<number, ScenarioStep[]>();
  for (const step of scenario.steps) {
    if (!stepStarted.has(step.name)) continue;
    groups.set(step.atMs, [...(groups.get(step.atMs) ?? []), step]);
  }
  const moments = [...groups.values()].map((steps) => ({
    steps,
    at: Math.min(...steps.map((step) => stepStarted.get(step.name) ?? Infinity)),
    label: steps
      .map((step) => (step.fault === 'restore' ? `restore ${(undid.get(step.name) ?? []).map((name) => faultLabels.get(name) ?? name).join(' + ') || '(nothing in effect)'}` : (faultLabels.get(step.name) ?? step.name)))
      .join(' + '),
  }));
  const shifts: ShiftMeasurement[] = [];
  moments.forEach((moment, i) => {
    const end = moments[i + 1]?.at ?? timeline.endMs;
    const previous = moments[i - 1]?.at ?? 0;
    const restores = moment.steps.every((step) => step.fault === 'restore') ? moment.steps.map((step) => step.name) : undefined;
    for (const stream of timeline.traffic()) {
      // several restores at one time: back to the tier the stream left for the faults the first of them undid
      const failBackTo = restores?.map((restore) => timeline.failBackTier(stream, restore)).find((tier) => tier.length > 0) ?? [];
      const measured: Moment = { label: moment.label, at: moment.at, end, ...(restores ? { failBackTo } : {}) };
      const shift = measureShift(timeline.log(stream), stream, measured, previous);
      if (shift) shifts.push(shift);
    }
  });
  return shifts;
}
