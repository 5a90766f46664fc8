/**
 * The drill engine's bookkeeping, against a fake DrillWorld on vitest's fake clock (setTimeout, setInterval,
 * performance.now and Date all fake): the fake's clients send a request every 10 ms, each to the first cluster in
 * locality order their (lagging) view still has; a fault changes what is actually up at once and what the clients
 * see 300 ms later, so every count and time below follows from the fake's rules. One test runs on the real clock.
 */
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { runDrill, DrillError, type DrillProgress } from '../../src/drills/engine.js';
import type { DrillResult, DrillStream } from '../../src/drills/result.js';
import { parseScenario, ScenarioError, type Scenario } from '../../src/drills/scenario.js';
import type { AppliedFault, DrillWorld, Fault, RequestOutcome, Traffic, TrafficSpec, WorldCluster } from '../../src/drills/world.js';

const CLUSTERS: WorldCluster[] = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a' },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b' },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a' },
];
/** how long the fake's clients take to see a change */
const VIEW_LAG_MS = 300;
const LATENCY_MS: Record<string, number> = { 'east-1': 2, 'east-2': 4, 'west-1': 30 };
const SLOWEST_MS = Math.max(...Object.values(LATENCY_MS));
const FAILED_LATENCY_MS = 1;
const GRACE_MS = 1_500;

interface FakeOptions {
  /** a drain whose clients' requests to the drained cluster fail (a drain gone wrong) */
  brokenDrain?: boolean;
  /** replaces apply for the given fault kinds */
  apply?: Partial<Record<Fault['kind'], () => Promise<AppliedFault>>>;
  /** the first restore of each fault throws */
  flakyRestore?: boolean;
  /** ready() rejects */
  neverReady?: boolean;
  /** a partition: requests to the cluster hang this long, then fail DEADLINE_EXCEEDED; the clients never learn of it */
  partitionHangMs?: number;
}

/** What the fake world did, in order, with the fake clock's time. */
interface Action {
  at: number;
  what: string;
}

class FakeWorld implements DrillWorld {
  readonly actions: Action[] = [];
  readonly stopped: string[] = [];
  /** when the last request's outcome was reported */
  lastAnswerAt = 0;
  /** what is actually unable to serve (killed); what meshfed stopped sending (drained, evicted) */
  readonly #down = new Set<string>();
  readonly #drained = new Set<string>();
  readonly #evicted = new Set<string>();
  readonly #partitioned = new Set<string>();
  /** requests sent and not yet answered, and who waits for them all to be */
  #inFlight = 0;
  #idle: (() => void)[] = [];
  readonly #born = performance.now();
  /** what the clients see: updated VIEW_LAG_MS after each change */
  #view = new Set<string>();
  readonly #states = new Map(CLUSTERS.map((cluster) => [cluster.name, 'ready']));
  readonly #timers = new Set<NodeJS.Timeout>();
  readonly #options: FakeOptions;

  constructor(options: FakeOptions = {}) {
    this.#options = options;
  }

  /** ms on the fake clock since the world was made (and the drill started) */
  elapsed(): number {
    return performance.now() - this.#born;
  }

  clusters(): WorldCluster[] {
    return CLUSTERS;
  }

  virtualDestination(hostname: string): { name: string } | undefined {
    return hostname === 'reviews.global' ? { name: 'reviews' } : undefined;
  }

  clusterState(cluster: string): string | undefined {
    return this.#states.get(cluster);
  }

  #later(ms: number, run: () => void): void {
    const timer = setTimeout(() => {
      this.#timers.delete(timer);
      run();
    }, ms);
    this.#timers.add(timer);
  }

  #changed(): void {
    const next = new Set([...this.#down, ...this.#drained, ...this.#evicted]);
    this.#later(VIEW_LAG_MS, () => {
      this.#view = next;
    });
  }

  #struck(target: Fault['target']): string[] {
    return CLUSTERS.filter((c) => (target.cluster === undefined || c.name === target.cluster) && (target.region === undefined || c.region === target.region)).map((c) => c.name);
  }

  apply(fault: Fault): Promise<AppliedFault> {
    this.actions.push({ at: this.elapsed(), what: `apply ${fault.kind}` });
    const replaced = this.#options.apply?.[fault.kind];
    if (replaced) return replaced();
    const clusters = this.#struck(fault.target);
    const label = `${fault.kind} ${clusters.join(',')}`;
    let undo: () => void;
    if (fault.kind === 'drain') {
      for (const cluster of clusters) this.#drained.add(cluster);
      undo = () => {
        for (const cluster of clusters) this.#drained.delete(cluster);
      };
    } else if (fault.kind === 'api-outage') {
      for (const cluster of clusters) this.#states.set(cluster, 'stale');
      this.#later(GRACE_MS, () => {
        for (const cluster of clusters) {
          if (this.#states.get(cluster) !== 'stale') continue;
          this.#states.set(cluster, 'evicted');
          this.#evicted.add(cluster);
          this.#changed();
        }
      });
      undo = () => {
        for (const cluster of clusters) {
          this.#states.set(cluster, 'ready');
          this.#evicted.delete(cluster);
        }
      };
    } else if (fault.kind === 'partition' && this.#options.partitionHangMs !== undefined) {
      for (const cluster of clusters) this.#partitioned.add(cluster);
      undo = () => {
        for (const cluster of clusters) this.#partitioned.delete(cluster);
      };
    } else {
      for (const cluster of clusters) this.#down.add(cluster);
      undo = () => {
        for (const cluster of clusters) this.#down.delete(cluster);
      };
    }
    this.#changed();
    let restores = 0;
    return Promise.resolve({
      label,
      restore: () => {
        restores++;
        this.actions.push({ at: this.elapsed(), what: `restore ${label}` });
        if (this.#options.flakyRestore && restores === 1) return Promise.reject(new Error('the API server said 503'));
        undo();
        this.#changed();
        return Promise.resolve();
      },
    });
  }

  /** The cluster a client in `from` calls: its own, then its region, then anywhere, skipping what it sees as gone. */
  #pick(from: string): string | undefined {
    const self = CLUSTERS.find((c) => c.name === from);
    const order = [...CLUSTERS].sort((a, b) => rank(a) - rank(b));
    function rank(c: WorldCluster): number {
      return c.name === from ? 0 : c.region === self?.region ? 1 : 2;
    }
    return order.find((c) => !this.#view.has(c.name))?.name;
  }

  startTraffic(spec: TrafficSpec, onRequest: (outcome: RequestOutcome) => void): Promise<Traffic> {
    const send = (): void => {
      const sentAt = performance.now();
      const cluster = this.#pick(spec.from);
      const fails = cluster === undefined || this.#down.has(cluster) || (this.#options.brokenDrain === true && this.#drained.has(cluster));
      const hangs = cluster !== undefined && this.#partitioned.has(cluster);
      const outcome: RequestOutcome = hangs
        ? { sentAt, latencyMs: this.#options.partitionHangMs ?? 0, error: 'DEADLINE_EXCEEDED' }
        : fails
          ? { sentAt, latencyMs: FAILED_LATENCY_MS, error: 'UNAVAILABLE' }
          : { sentAt, latencyMs: LATENCY_MS[cluster] ?? 1, cluster };
      this.#inFlight++;
      this.#later(outcome.latencyMs, () => {
        onRequest(outcome);
        this.lastAnswerAt = this.elapsed();
        if (--this.#inFlight === 0) for (const done of this.#idle.splice(0)) done();
      });
    };
    const period = 1000 / spec.rate;
    let interval: NodeJS.Timeout | undefined;
    // half a period out of phase, so no request is sent at the very millisecond a step is taken
    const phase = setTimeout(() => {
      send();
      interval = setInterval(send, period);
    }, period / 2);
    return Promise.resolve({
      ready: () => (this.#options.neverReady ? Promise.reject(new Error('no healthy upstream')) : Promise.resolve()),
      stop: () => {
        clearTimeout(phase);
        clearInterval(interval);
        this.stopped.push(spec.name);
        // as a real client: resolves once the requests in flight are answered
        return this.#inFlight === 0 ? Promise.resolve() : new Promise<void>((done) => this.#idle.push(done));
      },
    });
  }

  close(): void {
    for (const timer of this.#timers) clearTimeout(timer);
  }
}

const scenario = (spec: string, name = 'fake-drill'): Scenario =>
  parseScenario(
    `apiVersion: meshfed.io/v1alpha1
kind: FailoverDrill
metadata: { name: ${name} }
spec:
${spec
  .trim()
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
`,
    `${name}.yaml`,
  );

const TRAFFIC = `traffic:
  - { name: from-east-1, from: east-1, to: reviews.global:9080, rate: 100 }
  - { name: from-west-1, from: west-1, to: reviews.global, rate: 20 }`;

let worlds: FakeWorld[] = [];
beforeEach(() => {
  vi.useFakeTimers();
  worlds = [];
});
afterEach(() => {
  for (const world of worlds) world.close();
  vi.useRealTimers();
});

function fakeWorld(options: FakeOptions = {}): FakeWorld {
  const world = new FakeWorld(options);
  worlds.push(world);
  return world;
}

/** Runs the drill on the fake clock, far enough past its end for every bounded wait to have run out. */
async function drill(plan: Scenario, world: FakeWorld, options: Parameters<typeof runDrill>[2] = {}): Promise<{ result: DrillResult; endedAt: number }> {
  let endedAt = -1;
  const running = runDrill(plan, world, options).then((result) => {
    endedAt = world.elapsed();
    return result;
  });
  await vi.advanceTimersByTimeAsync(plan.durationMs + 60_000);
  return { result: await running, endedAt };
}

const stream = (result: DrillResult, name: string): DrillStream => {
  const found = result.streams.find((s) => s.name === name);
  if (!found) throw new Error(`no stream ${name}`);
  return found;
};
const failures = (s: DrillStream): number => s.seconds.reduce((sum, second) => sum + Object.values(second.errors).reduce((a, b) => a + b, 0), 0);

describe('runDrill against a fake world', () => {
  it('buckets every request by second and serving cluster, and measures the shift and the fail back of a kill', async () => {
    const world = fakeWorld();
    const plan = scenario(`
duration: 6s
${TRAFFIC}
steps:
  - { at: 2s, name: kill-east-1, fault: kill-workloads, target: { cluster: east-1, service: reviews } }
  - { at: 4s, name: revive, fault: restore, of: kill-east-1 }
expectations:
  - shift: { traffic: from-east-1, to: [east-2], after: kill-east-1, within: 1s }
  - failBack: { traffic: from-east-1, after: revive, within: 1s }
  - maxFailedRequests: { traffic: from-east-1, count: 30, during: { from: kill-east-1, to: revive } }
  - maxFailedRequests: { traffic: from-west-1, count: 0 }
  - servedBy: { traffic: from-west-1, clusters: [west-1] }
  - servedBy: { traffic: from-east-1, clusters: [east-2], between: { from: kill-east-1+1s, to: revive } }`);
    const { result } = await drill(plan, world);

    expect(result.expectations.filter((e) => !e.passed)).toEqual([]);
    expect(result.passed).toBe(true);
    expect(result).toMatchObject({ name: 'fake-drill', scenario: 'fake-drill.yaml', durationSeconds: 6, clusters: ['east-1', 'east-2', 'west-1'] });
    expect(result.events).toEqual([
      { t: 2, kind: 'fault', label: 'kill-workloads east-1' },
      { t: 4, kind: 'restore', label: 'restore kill-workloads east-1' },
    ]);

    const east = stream(result, 'from-east-1');
    expect(east).toMatchObject({ from: 'east-1', to: 'reviews.global:9080', via: 'xds' });
    expect(east.seconds.map((s) => s.t)).toEqual([0, 1, 2, 3, 4, 5]);
    // the clients still call east-1 for 300 ms after the kill: those 30 requests fail
    expect(east.seconds[1]).toEqual({ t: 1, byCluster: { 'east-1': 100 }, errors: {}, p50Ms: 2, p99Ms: 2 });
    expect(east.seconds[2]).toEqual({ t: 2, byCluster: { 'east-2': 70 }, errors: { UNAVAILABLE: 30 }, p50Ms: 4, p99Ms: 4 });
    expect(east.seconds[3]).toEqual({ t: 3, byCluster: { 'east-2': 100 }, errors: {}, p50Ms: 4, p99Ms: 4 });
    // the restore is gentle: east-2 keeps answering until the clients see east-1 again
    expect(east.seconds[4]).toMatchObject({ byCluster: { 'east-2': 30, 'east-1': 70 }, errors: {} });
    expect(failures(east)).toBe(30);
    const west = stream(result, 'from-west-1');
    expect(west.seconds.every((s) => Object.keys(s.byCluster).join() === 'west-1' && s.p50Ms === 30 && Object.keys(s.errors).length === 0)).toBe(true);

    const [shift, failBack, ...others] = result.shifts;
    expect(others).toEqual([]);
    expect(shift).toMatchObject({ stream: 'from-east-1', fault: 'kill-workloads east-1', failedDuringShift: 30 });
    // detected at the first failure; shifted once a whole second is ≥ 95% on east-2 (the fake moves at 300 ms)
    expect(shift?.timeToDetectMs).toBeLessThanOrEqual(10);
    expect(shift?.timeToShiftMs).toBeGreaterThanOrEqual(200);
    expect(shift?.timeToShiftMs).toBeLessThanOrEqual(VIEW_LAG_MS);
    expect(failBack).toMatchObject({ stream: 'from-east-1', fault: 'restore kill-workloads east-1', failedDuringShift: 0 });
    expect(failBack?.timeToDetectMs).toBeGreaterThanOrEqual(VIEW_LAG_MS);
    expect(failBack?.timeToDetectMs).toBeLessThanOrEqual(VIEW_LAG_MS + 10);
    expect(failBack?.timeToFailBackMs).toBeGreaterThanOrEqual(200);
    expect(failBack?.timeToFailBackMs).toBeLessThanOrEqual(VIEW_LAG_MS);
    expect(failBack?.timeToShiftMs).toBeUndefined();

    expect(world.actions.map((a) => a.what)).toEqual(['apply kill-workloads', 'restore kill-workloads east-1']);
    expect(world.stopped.sort()).toEqual(['from-east-1', 'from-west-1']);
  });

  it('fails expectations the traffic broke, and says what it measured', async () => {
    const world = fakeWorld();
    const plan = scenario(`
duration: 5s
${TRAFFIC}
steps:
  - { at: 2s, name: kill-east-1, fault: kill-workloads, target: { cluster: east-1 } }
expectations:
  - shift: { traffic: from-east-1, to: [west-1], after: kill-east-1, within: 2s }
  - maxFailedRequests: { traffic: from-east-1, count: 10 }
  - servedBy: { traffic: from-east-1, clusters: [east-1] }
  - shift: { traffic: from-east-1, to: [east-2], after: kill-east-1, within: 1s }`);
    const { result } = await drill(plan, world);

    expect(result.passed).toBe(false);
    const [toWest, failed, servedBy, toEast2] = result.expectations;
    expect(toWest).toMatchObject({ name: 'from-east-1 shifts to west-1 within 2s of kill-east-1', passed: false });
    expect(toWest?.detail).toContain('best: 0%');
    expect(failed).toEqual({ name: 'at most 10 failed requests of from-east-1', passed: false, detail: '30 failed (UNAVAILABLE 30)' });
    expect(servedBy).toMatchObject({ passed: false, detail: '200 of 500 requests answered by east-1 (east-2 270, failed UNAVAILABLE 30)' });
    expect(toEast2?.passed).toBe(true);
    // each broken expectation is on the timeline, where it broke
    const broken = result.events.filter((e) => e.kind === 'expectation-failed');
    expect(broken.map((e) => e.label.split(':')[0])).toEqual(expect.arrayContaining([toWest?.name, failed?.name, servedBy?.name]));
    expect(broken.find((e) => e.label.startsWith(failed?.name ?? '?'))?.t).toBeCloseTo(2.106, 2);
  });

  it('drains without a failed request when the drain is gentle', async () => {
    const world = fakeWorld();
    const plan = scenario(`
duration: 5s
${TRAFFIC}
steps:
  - { at: 1s, name: drain-east-1, fault: drain, target: { cluster: east-1, virtualDestination: reviews } }
  - { at: 3s, name: undrain, fault: restore }
expectations:
  - maxFailedRequests: { count: 0 }
  - shift: { traffic: from-east-1, to: [east-2], after: drain-east-1, within: 1s }
  - failBack: { traffic: from-east-1, to: [east-1], after: undrain, within: 1s }`);
    const { result } = await drill(plan, world);

    expect(result.expectations.filter((e) => !e.passed)).toEqual([]);
    expect(failures(stream(result, 'from-east-1'))).toBe(0);
    expect(result.events.map((e) => e.kind)).toEqual(['fault', 'restore']);
    expect(result.shifts).toHaveLength(2);
    expect(result.shifts[0]).toMatchObject({ fault: 'drain east-1', failedDuringShift: 0 });
    // nothing fails, so the shift is seen when east-2 first answers, 300 ms in
    expect(result.shifts[0]?.timeToDetectMs).toBeGreaterThanOrEqual(VIEW_LAG_MS);
    expect(result.shifts[0]?.timeToDetectMs).toBeLessThanOrEqual(VIEW_LAG_MS + 10);
  });

  it('rolls a drain back the moment an expectation breaks, skips the faults after it, and fails the drill', async () => {
    const world = fakeWorld({ brokenDrain: true });
    const plan = scenario(`
duration: 6s
${TRAFFIC}
steps:
  - { at: 2s, name: drain-east-1, fault: drain, target: { cluster: east-1, virtualDestination: reviews } }
  - { at: 3s, name: kill-west-1, fault: kill-workloads, target: { cluster: west-1 } }
  - { at: 4s, name: undrain, fault: restore, of: drain-east-1 }
expectations:
  - maxFailedRequests: { traffic: from-east-1, count: 0, during: { from: drain-east-1, to: undrain } }
  - servedBy: { traffic: from-west-1, clusters: [west-1] }`);
    const { result } = await drill(plan, world);

    expect(result.passed).toBe(false);
    const rollback = result.events.find((e) => e.kind === 'rollback');
    expect(rollback?.label).toMatch(/^rollback drain east-1: at most 0 failed requests of from-east-1 from drain-east-1 to undrain broke/);
    // judged every 100 ms: the first failure (2.006 s) is acted on at 2.1 s, long before the scheduled restore
    expect(rollback?.t).toBeGreaterThan(2);
    expect(rollback?.t).toBeLessThanOrEqual(2.2);
    expect(world.actions.map((a) => a.what)).toEqual(['apply drain', 'restore drain east-1']);
    expect(world.actions[1]?.at).toBeLessThanOrEqual(2_200);
    const [failedRequests, westServed, ...problems] = result.expectations;
    expect(failedRequests).toMatchObject({ passed: false });
    // the kill after the rollback never happened, so west-1's clients were never disturbed
    expect(westServed?.passed).toBe(true);
    expect(problems).toEqual([]);
    // after the rollback the clients see east-1 again within the fake's lag, and nothing fails any more
    const east = stream(result, 'from-east-1');
    expect(east.seconds.slice(3).every((s) => Object.keys(s.errors).length === 0 && s.byCluster['east-1'] === 100)).toBe(true);
    expect(result.events.filter((e) => e.kind === 'restore')).toEqual([]);
  });

  it('restores every fault in the end even when steps throw, hang or fail to restore, and still ends at its duration', async () => {
    let late: ((fault: AppliedFault) => void) | undefined;
    const lateRestores: number[] = [];
    const world = fakeWorld({
      flakyRestore: true,
      apply: {
        partition: () => Promise.reject(new Error('gateway west-1 is not in this world')),
        'kill-gateway': () => new Promise(() => undefined),
        'api-outage': () =>
          new Promise((resolve) => {
            late = resolve;
          }),
      },
    });
    const plan = scenario(`
duration: 4s
${TRAFFIC}
steps:
  - { at: 1s, name: kill-east-1, fault: kill-workloads, target: { cluster: east-1 } }
  - { at: 1500ms, name: cut-west-1, fault: partition, target: { cluster: west-1 } }
  - { at: 2s, name: stuck, fault: kill-gateway, target: { cluster: east-2 } }
  - { at: 3s, name: slow, fault: api-outage, target: { cluster: west-1 } }
  - { at: 3500ms, fault: restore, of: kill-east-1 }
expectations:
  - clusterState: { cluster: west-1, state: stale, after: slow }`);
    const running = runDrill(plan, world, { timeouts: { apply: 300 } });
    await vi.advanceTimersByTimeAsync(3_500);
    // the api-outage answers long after the engine gave up on it: the engine undoes it at once
    late?.({
      label: 'api-outage west-1 (late)',
      restore: () => {
        lateRestores.push(world.elapsed());
        return Promise.resolve();
      },
    });
    await vi.advanceTimersByTimeAsync(60_000);
    const result = await running;

    expect(result.passed).toBe(false);
    expect(result.durationSeconds).toBe(4);
    expect(result.streams.every((s) => s.seconds.length === 4)).toBe(true);
    expect(lateRestores).toEqual([3_500]);
    const problems = result.expectations.filter((e) => !e.passed).map((e) => `${e.name}: ${e.detail}`);
    expect(problems).toEqual([
      'west-1 is stale after slow: step slow never began (its fault was not applied: api-outage west-1: no answer within 300ms)',
      'step cut-west-1 applies partition west-1: gateway west-1 is not in this world',
      'step stuck applies kill-gateway east-2: kill-gateway east-2: no answer within 300ms',
      'step slow applies api-outage west-1: api-outage west-1: no answer within 300ms',
      'kill-workloads east-1 is restored: the API server said 503 (tried again at the end)',
    ]);
    // the restore at 3.5 s failed; the end of the drill tried again, and that worked
    const restores = world.actions.filter((a) => a.what.startsWith('restore'));
    // (at the end, once the requests in flight came back: the fake's slowest takes 30 ms)
    expect(restores[0]?.at).toBe(3_500);
    expect(restores[1]?.at).toBeGreaterThanOrEqual(4_000);
    expect(restores[1]?.at).toBeLessThanOrEqual(4_000 + SLOWEST_MS);
    expect(result.events.filter((e) => e.kind === 'restore').map((e) => e.label)).toEqual([
      'restore kill-workloads east-1',
      'restore api-outage west-1 (late) (applied after the engine gave up on it)',
      'restore kill-workloads east-1 (end of drill)',
    ]);
    expect(world.stopped.sort()).toEqual(['from-east-1', 'from-west-1']);
  });

  it('ends at its duration while a fault still hangs, and restores what is left when the drill ends', async () => {
    const world = fakeWorld({ apply: { drain: () => new Promise(() => undefined) } });
    const plan = scenario(`
duration: 3s
${TRAFFIC}
steps:
  - { at: 1s, name: kill-east-1, fault: kill-workloads, target: { region: us-east } }
  - { at: 2s, name: hang, fault: drain, target: { cluster: west-1, virtualDestination: reviews } }`);
    const { result, endedAt } = await drill(plan, world);

    // the default apply timeout (15 s) is far beyond the drill's end: the end cuts the wait short
    expect(endedAt).toBeGreaterThanOrEqual(3_000);
    // then only the requests in flight are waited for (the fake's slowest takes 30 ms)
    expect(endedAt).toBeLessThanOrEqual(3_000 + SLOWEST_MS);
    expect(result.expectations).toEqual([{ name: 'step hang applies drain west-1 reviews', passed: false, detail: 'drain west-1 reviews: the drill ended first' }]);
    expect(world.actions.map((a) => a.what)).toEqual(['apply kill-workloads', 'apply drain', 'restore kill-workloads east-1,east-2']);
    expect(result.clusters).toEqual(['east-1', 'east-2', 'west-1']);
    // the whole region went: east-1's clients fail over to west-1 across the regions
    expect(stream(result, 'from-east-1').seconds[2]?.byCluster).toEqual({ 'west-1': 100 });
  });

  it('counts a request in the second it was sent: calls hanging in a partition fail where the partition struck, even after the end', async () => {
    const world = fakeWorld({ partitionHangMs: 1_500 });
    const plan = scenario(`
duration: 4s
${TRAFFIC}
steps:
  - { at: 2s, name: cut-east-1, fault: partition, target: { cluster: east-1 } }
expectations:
  - maxFailedRequests: { traffic: from-east-1, count: 0, during: { from: start, to: cut-east-1+1s } }
  - shift: { traffic: from-east-1, to: [east-2], after: cut-east-1, within: 1s }`);
    const { result } = await drill(plan, world);

    // by completion time the first 1.5 s after the cut would look clean (nothing came back) and the failures would
    // land in seconds 3 to 5, two of them after the drill's end
    const east = stream(result, 'from-east-1');
    expect(east.seconds.map((s) => s.t)).toEqual([0, 1, 2, 3]);
    expect(east.seconds[1]).toMatchObject({ byCluster: { 'east-1': 100 }, errors: {} });
    expect(east.seconds[2]).toMatchObject({ byCluster: {}, errors: { DEADLINE_EXCEEDED: 100 } });
    // sent in the last second, answered (by their deadline) after the end: counted all the same
    expect(east.seconds[3]).toMatchObject({ byCluster: {}, errors: { DEADLINE_EXCEEDED: 100 } });
    const [failed, shift] = result.expectations;
    expect(failed).toMatchObject({ passed: false, detail: '100 failed (DEADLINE_EXCEEDED 100)' });
    expect(shift).toMatchObject({ passed: false });
    expect(shift?.detail).toContain('best: 0%');
    expect(result.shifts).toEqual([{ stream: 'from-east-1', fault: 'partition east-1', failedDuringShift: 200, timeToDetectMs: 5 }]);
    // the partition was lifted only once the last of them had come back
    const restore = world.actions.find((a) => a.what === 'restore partition east-1');
    expect(restore?.at).toBeGreaterThanOrEqual(world.lastAnswerAt);
    expect(world.lastAnswerAt).toBeGreaterThan(5_000);
  });

  it('judges cluster states: an API outage keeps endpoints during the grace period, then evicts them', async () => {
    const world = fakeWorld();
    const plan = scenario(`
duration: 6s
${TRAFFIC}
steps:
  - { at: 1s, name: api-down, fault: api-outage, target: { cluster: east-1 } }
  - { at: 4s, name: api-back, fault: restore, of: api-down }
expectations:
  - clusterState: { cluster: east-1, state: stale, after: api-down, within: 500ms }
  - servedBy: { traffic: from-east-1, clusters: [east-1], between: { from: api-down, to: api-down+1s } }
  - clusterState: { cluster: east-1, state: evicted, after: api-down, within: 2s }
  - shift: { traffic: from-east-1, to: [east-2], after: api-down, within: 2500ms }
  - clusterState: { cluster: east-1, state: ready, after: api-back, within: 1s }
  - clusterState: { cluster: east-1, state: evicted, after: api-down, within: 1s }`);
    const { result } = await drill(plan, world);

    const [stale, served, evicted, shift, ready, tooSoon] = result.expectations;
    expect(stale).toMatchObject({ name: 'east-1 is stale within 500ms of api-down', passed: true, detail: 'stale 0 s after api-down' });
    expect(served).toMatchObject({ name: 'from-east-1 is served by east-1 from api-down to api-down+1s', passed: true, detail: '100 of 100 requests answered by east-1' });
    expect(evicted?.passed).toBe(true);
    // the engine samples states every 100 ms
    expect(evicted?.detail).toMatch(/^evicted 1\.[56] s after api-down$/);
    expect(shift?.passed).toBe(true);
    expect(ready?.passed).toBe(true);
    expect(tooSoon).toEqual({ name: 'east-1 is evicted within 1s of api-down', passed: false, detail: 'never evicted within 1s after api-down: stale (at 1 s)' });
    // the shift happened at eviction, not at the outage
    const measured = result.shifts.find((s) => s.stream === 'from-east-1' && s.fault === 'api-outage east-1');
    expect(measured?.timeToShiftMs).toBeGreaterThan(GRACE_MS);
    expect(measured?.failedDuringShift).toBe(0);
  });

  it('reports progress once a second: the step in effect and the last second of each stream', async () => {
    const world = fakeWorld();
    const seen: DrillProgress[] = [];
    const plan = scenario(`
duration: 4s
${TRAFFIC}
steps:
  - { at: 2s, name: kill-east-1, fault: kill-workloads, target: { cluster: east-1 } }`);
    await drill(plan, world, { onProgress: (progress) => seen.push(progress) });
    expect(seen.map((p) => p.t)).toEqual([1, 2, 3]);
    expect(seen[0]?.step).toBeUndefined();
    expect(seen[2]?.step).toBe('kill-east-1');
    expect(seen[2]?.streams.find((s) => s.name === 'from-east-1')?.second).toMatchObject({ t: 2, byCluster: { 'east-2': 70 }, errors: { UNAVAILABLE: 30 } });
    expect(seen[2]?.events).toEqual([{ t: 2, kind: 'fault', label: 'kill-workloads east-1' }]);
  });

  it('ends early when aborted: faults restored, traffic stopped, the drill failed', async () => {
    const world = fakeWorld();
    const abort = new AbortController();
    const plan = scenario(`
duration: 30s
${TRAFFIC}
steps:
  - { at: 1s, name: kill-east-1, fault: kill-workloads, target: { cluster: east-1 } }
  - { at: 10s, name: kill-east-2, fault: kill-workloads, target: { cluster: east-2 } }`);
    const running = runDrill(plan, world, { signal: abort.signal });
    await vi.advanceTimersByTimeAsync(2_500);
    abort.abort(new Error('interrupted (SIGINT)'));
    await vi.advanceTimersByTimeAsync(1_000);
    const result = await running;
    expect(result.passed).toBe(false);
    expect(result.durationSeconds).toBe(2.5);
    expect(result.expectations).toEqual([{ name: 'the drill runs its whole duration', passed: false, detail: 'aborted after 2.5 s: interrupted (SIGINT)' }]);
    expect(world.actions.map((a) => a.what)).toEqual(['apply kill-workloads', 'restore kill-workloads east-1']);
    expect(world.stopped).toHaveLength(2);
  });

  it('refuses a scenario that names what the world does not have, before anything starts', async () => {
    const world = fakeWorld();
    const plan = scenario(`
duration: 3s
traffic:
  - { name: a, from: east-9, to: ratings.global, rate: 10 }
steps:
  - { at: 1s, fault: kill-workloads, target: { region: eu-central, zone: eu-central-1a } }
  - { at: 2s, fault: drain, target: { cluster: east-1, zone: us-east-1b, virtualDestination: reviews } }
expectations:
  - shift: { traffic: a, to: [west-2], after: step-1, within: 1s }`);
    await expect(runDrill(plan, world)).rejects.toThrow(ScenarioError);
    await expect(runDrill(plan, world)).rejects.toThrow(
      'fake-drill.yaml (FailoverDrill fake-drill): spec.traffic[0].from: no cluster east-9 (the target has east-1, east-2, west-1); ' +
        'spec.traffic[0].to: no virtual destination ratings.global in the target; ' +
        'step step-1: target.region: no region eu-central (regions: us-east, us-west); step step-1: target.zone: no zone eu-central-1a in eu-central; ' +
        'step step-2: target.zone: no zone us-east-1b in east-1; ' +
        'spec.expectations[0].shift.to[0]: no cluster west-2 (the target has east-1, east-2, west-1)',
    );
    expect(world.actions).toEqual([]);
  });

  it('fails to start, naming the stream, when traffic never gets an answer; nothing is applied and the clients are stopped', async () => {
    const world = fakeWorld({ neverReady: true });
    const plan = scenario(`
duration: 3s
${TRAFFIC}
steps:
  - { at: 1s, fault: kill-workloads, target: { cluster: east-1 } }`);
    const running = runDrill(plan, world);
    const settled = running.catch((error: unknown) => error);
    await vi.advanceTimersByTimeAsync(1_000);
    const error = await settled;
    expect(error).toBeInstanceOf(DrillError);
    expect((error as Error).message).toBe('fake-drill: traffic from-east-1 never got an answer: no healthy upstream');
    expect(world.actions).toEqual([]);
    expect(world.stopped.sort()).toEqual(['from-east-1', 'from-west-1']);
  });
});

describe('runDrill on the real clock', () => {
  it('runs a short drill through its steps and ends', async () => {
    vi.useRealTimers();
    const world = fakeWorld();
    const plan = scenario(`
duration: 3s
traffic:
  - { name: from-east-1, from: east-1, to: reviews.global, rate: 50 }
steps:
  - { at: 500ms, name: drain-east-1, fault: drain, target: { cluster: east-1, virtualDestination: reviews } }
expectations:
  - maxFailedRequests: { count: 0 }
  - shift: { traffic: from-east-1, to: [east-2], after: drain-east-1, within: 1500ms }`);
    const result = await runDrill(plan, world);
    expect(result.expectations).toEqual([
      { name: 'at most 0 failed requests', passed: true, detail: expect.stringMatching(/^none of \d+ failed$/) as unknown },
      { name: 'from-east-1 shifts to east-2 within 1.5s of drain-east-1', passed: true, detail: expect.stringMatching(/^shifted to east-2 in /) as unknown },
    ]);
    expect(result.passed).toBe(true);
    expect(result.streams[0]?.seconds).toHaveLength(3);
    expect(world.actions.map((a) => a.what)).toEqual(['apply drain', 'restore drain east-1']);
  });
});
