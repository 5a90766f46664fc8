/**
 * The embedded world (src/drills/embedded-world.ts) as a drill acts through it: meshfed's manager with its xDS
 * server, the built-in gateways and the embedded federation's workloads, in process on addresses of their own:
 *
 *   east-1  net-east  us-east/us-east-1a  127.0.81.x   gateway 127.0.84.1
 *   east-2  net-east  us-east/us-east-1b  127.0.82.x   gateway 127.0.84.2
 *   west-1  net-west  us-west/us-west-1a  127.0.83.x   gateway 127.0.84.3
 *
 * Two traffic streams of real @grpc/grpc-js-xds clients stand in east-1 and call xds:///reviews.global (locality
 * failover): one retries UNAVAILABLE (3 attempts), one does not. Each fault is applied and restored through the
 * world; where traffic lands is counted from the echo replies. Times are printed, never asserted.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { embeddedWorld } from '../../src/drills/embedded-world.js';
import type { AppliedFault, DrillWorld, Fault, RequestOutcome, Traffic, TrafficSpec } from '../../src/drills/world.js';
import type { EmbeddedFederation } from '../../src/sim/embedded-federation.js';
import type { EmbeddedGateway } from '../../src/gateway/embedded.js';
import type { NodeIdentity } from '../../src/xds/ads-server.js';
import { probeGateway } from '../../src/registry/gateway-probe.js';
import { eventually, startInProcessFederation } from '../sim/helpers.js';

const CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', subnet: 81, gateway: '127.0.84.1' },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', subnet: 82, gateway: '127.0.84.2' },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', subnet: 83, gateway: '127.0.84.3' },
];
const GRACE_MS = 3_000;
const TIMEOUT_MS = 1_000;
/** long enough for every request sent in a window to have its outcome */
const SETTLE_MS = TIMEOUT_MS + 500;

const work = mkdtempSync(join(tmpdir(), 'meshfed-drill-world-'));
let manager: Manager;
let gateways: EmbeddedGateway[] = [];
let federation: EmbeddedFederation;
let world: DrillWorld;
let close: () => Promise<void>;

/** Every outcome of one stream, in completion order. */
class Stream {
  readonly outcomes: RequestOutcome[] = [];
  traffic: Traffic | undefined;

  constructor(readonly spec: TrafficSpec) {}

  readonly record = (outcome: RequestOutcome): void => {
    this.outcomes.push(outcome);
  };

  /** outcomes of requests sent in [from, to) */
  sent(from: number, to = Infinity): RequestOutcome[] {
    return this.outcomes.filter((o) => o.sentAt >= from && o.sentAt < to);
  }
}

const retrying = new Stream({ name: 'retry', from: 'east-1', to: 'reviews.global', via: 'xds', rate: 100, clients: 4, attempts: 3, timeoutMs: TIMEOUT_MS });
const plain = new Stream({ name: 'plain', from: 'east-1', to: 'reviews.global:9080', via: 'xds', rate: 50, clients: 2, attempts: 1, timeoutMs: TIMEOUT_MS });
const STREAMS = [retrying, plain];
/** streams a test starts for itself */
const extra: Stream[] = [];

const sleep = (ms: number): Promise<void> => new Promise((done) => setTimeout(done, ms));

/** `cluster` → answers, `error` → failures */
function tally(outcomes: readonly RequestOutcome[]): Record<string, number> {
  const counts: Record<string, number> = {};
  for (const o of outcomes) {
    const key = o.cluster ?? o.error ?? '?';
    counts[key] = (counts[key] ?? 0) + 1;
  }
  return counts;
}

/** Waits (bounded) until the last 40 outcomes of every stream satisfy `accept`. */
async function settled(accept: (o: RequestOutcome) => boolean, what: string): Promise<void> {
  const since = performance.now();
  await eventually(() => STREAMS.every((s) => {
    const recent = s.outcomes.filter((o) => o.sentAt >= since).slice(-40);
    return recent.length === 40 && recent.every(accept);
  }), what);
}

/** The outcomes of every stream for the requests sent in the next `ms`, once they all have one. */
async function sample(ms = 1_000): Promise<Map<Stream, RequestOutcome[]>> {
  const from = performance.now();
  await sleep(ms + SETTLE_MS);
  return new Map(STREAMS.map((s) => [s, s.sent(from, from + ms)]));
}

/** Every stream answered only by `cluster`, many times. */
async function expectAllOn(cluster: string): Promise<void> {
  for (const [stream, outcomes] of await sample()) {
    expect(outcomes.length, stream.spec.name).toBeGreaterThan(stream.spec.rate / 4);
    expect(tally(outcomes), stream.spec.name).toEqual({ [cluster]: outcomes.length });
  }
}

const EAST_1_NODE: NodeIdentity = { id: 'explain', cluster: 'east-1', network: 'net-east', locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' }, generator: 'grpc' };

/** What meshfed sends a client in east-1 for reviews.global: address → health. */
function healthSeenFromEast1(): Map<string, string> {
  const explained = manager.xds?.provider.explain(EAST_1_NODE, 'reviews.global');
  return new Map((explained?.assignment.groups ?? []).flatMap((g) => g.endpoints.map((e) => [e.address, e.health] as const)));
}

/**
 * How a stream's traffic moved to `cluster` after `at` (ms from `at`, by completion time): its first answer from
 * there; the start of the first second with ≥ 95% of its requests answered from there (the drill engine's measure);
 * the last request that was not (failed, or answered elsewhere); how many failed; the slowest request.
 */
function shift(stream: Stream, cluster: string, at: number, until: number): string {
  const done = stream.outcomes.map((o) => ({ ...o, end: o.sentAt + o.latencyMs })).filter((o) => o.end >= at && o.end < until).sort((a, b) => a.end - b.end);
  const ms = (t: number | undefined): string => (t === undefined ? 'never' : `+${String(Math.round(t - at))} ms`);
  let shift95: number | undefined;
  for (let i = 0, j = 0; i < done.length && shift95 === undefined; i++) {
    const start = done[i]?.end ?? 0;
    while (j < done.length && (done[j]?.end ?? 0) < start + 1_000) j++;
    const window = done.slice(i, j);
    if (start + 1_000 <= until && window.filter((o) => o.cluster === cluster).length >= 0.95 * window.length) shift95 = start;
  }
  const others = done.filter((o) => o.cluster !== cluster);
  return [
    `first ${cluster} answer ${ms(done.find((o) => o.cluster === cluster)?.end)}`,
    `≥95% on ${cluster} from ${ms(shift95)}`,
    `last request not answered by ${cluster} ${ms(others.at(-1)?.end)}`,
    `${String(done.filter((o) => o.error !== undefined).length)} failed (${JSON.stringify(tally(done.filter((o) => o.error !== undefined)))})`,
    `slowest ${String(Math.round(Math.max(0, ...done.map((o) => o.latencyMs))))} ms`,
  ].join(', ');
}

beforeAll(async () => {
  ({ manager, gateways, federation, close } = await startInProcessFederation({ dir: work, name: 'drills', trustDomain: 'drills.test', clusters: CLUSTERS, graceMs: GRACE_MS }));
  const xds = manager.xds;
  if (!xds) throw new Error('the manager runs no xDS server');
  world = embeddedWorld({
    registry: manager.registry,
    provider: xds.provider,
    staticSources: manager.staticSources,
    virtualDestinations: manager.virtualDestinations,
    gateways,
    federation,
  });
}, 60_000);

afterAll(async () => {
  for (const s of [...STREAMS, ...extra]) await s.traffic?.stop();
  await close();
  rmSync(work, { recursive: true, force: true });
});

describe('the embedded world: faults and traffic', () => {
  it('knows the clusters and the virtual destination; traffic from east-1 is answered by east-1', async () => {
    expect(world.clusters()).toEqual(CLUSTERS.map(({ name, network, region, zone }) => ({ name, network, region, zone })));
    expect(world.virtualDestination('reviews.global')).toEqual({ name: 'reviews' });
    expect(world.virtualDestination('reviews.global:9080')).toEqual({ name: 'reviews' });
    expect(world.virtualDestination('ratings.global')).toBeUndefined();
    for (const s of STREAMS) s.traffic = await world.startTraffic(s.spec, s.record);
    for (const s of STREAMS) await s.traffic?.ready();
    await expectAllOn('east-1');
  });

  it("kill-workloads east-1: traffic moves to east-2 (the shift is printed); restored, it comes back", async () => {
    const at = performance.now();
    const fault = await world.apply({ kind: 'kill-workloads', target: { cluster: 'east-1' } });
    expect(fault.label).toBe('kill-workloads east-1');
    expect(federation.workloads().filter((w) => w.cluster === 'east-1').map((w) => w.running)).toEqual([false, false]);
    await settled((o) => o.cluster === 'east-2', 'traffic on east-2');
    await eventually(() => ['127.0.81.1', '127.0.81.2'].every((a) => healthSeenFromEast1().get(a) === 'UNHEALTHY'), "meshfed to see east-1's workloads unready");
    const told = performance.now() - at;
    await expectAllOn('east-2');
    const until = performance.now();
    for (const s of STREAMS) {
      console.log(`[drill] kill-workloads east-1, stream ${s.spec.name} (attempts ${String(s.spec.attempts)}): ${shift(s, 'east-2', at, until)}; meshfed saw east-1 unready by +${String(Math.round(told))} ms`);
    }
    await fault.restore();
    await fault.restore();
    expect(federation.workloads().every((w) => w.running)).toBe(true);
    await settled((o) => o.cluster === 'east-1', 'traffic back on east-1');
    await expectAllOn('east-1');
  }, 120_000);

  it('drain east-1 for reviews: traffic moves to east-2 with not one request failed; the workloads keep running; restored, it comes back', async () => {
    const at = performance.now();
    const fault = await world.apply({ kind: 'drain', target: { cluster: 'east-1', virtualDestination: 'reviews' } });
    expect(fault.label).toBe('drain east-1 reviews');
    expect(manager.xds?.provider.drains('reviews')).toEqual([{ cluster: 'east-1' }]);
    await settled((o) => o.cluster === 'east-2', 'traffic on east-2');
    expect(healthSeenFromEast1().get('127.0.81.1')).toBe('DRAINING');
    expect(federation.workloads().every((w) => w.running && w.ready)).toBe(true);
    expect(world.clusterState('east-1')).toBe('ready');
    await expectAllOn('east-2');
    const until = performance.now();
    for (const s of STREAMS) {
      console.log(`[drill] drain east-1, stream ${s.spec.name} (attempts ${String(s.spec.attempts)}): ${shift(s, 'east-2', at, until)}`);
    }
    await fault.restore();
    expect(manager.xds?.provider.drains('reviews')).toEqual([]);
    await settled((o) => o.cluster === 'east-1', 'traffic back on east-1');
    await expectAllOn('east-1');
    for (const s of STREAMS) expect(tally(s.sent(at).filter((o) => o.error !== undefined)), s.spec.name).toEqual({});
  }, 120_000);

  it('kill-gateway west-1, with traffic pushed there: calls fail, meshfed is not told; restored on its address, west-1 answers again', async () => {
    const kills: AppliedFault[] = [];
    for (const cluster of ['east-1', 'east-2']) {
      kills.push(await world.apply({ kind: 'kill-workloads', target: { cluster, service: 'default/reviews' } }));
    }
    await settled((o) => o.cluster === 'west-1', 'traffic on west-1, through its gateway');
    const gateway = gateways.find((g) => g.cluster === 'west-1')?.handle;
    const address = `${gateway?.host ?? ''}:${String(gateway?.port)}`;

    const killed = await world.apply({ kind: 'kill-gateway', target: { cluster: 'west-1' } });
    expect(killed.label).toBe('kill-gateway west-1');
    await settled((o) => o.error !== undefined, 'calls to fail');
    for (const [stream, outcomes] of await sample()) {
      expect(outcomes.length, stream.spec.name).toBeGreaterThan(stream.spec.rate / 4);
      // refused connections fail UNAVAILABLE; a retrying client on a loaded machine may run out its deadline first
      expect(outcomes.every((o) => o.error === 'UNAVAILABLE' || o.error === 'DEADLINE_EXCEEDED'), `${stream.spec.name}: ${JSON.stringify(tally(outcomes))}`).toBe(true);
      expect(tally(outcomes).UNAVAILABLE ?? 0, stream.spec.name).toBeGreaterThan(0);
    }
    expect(world.clusterState('west-1')).toBe('ready');
    expect(healthSeenFromEast1().get('127.0.84.3')).toBe('HEALTHY');
    await killed.restore();
    expect(`${gateway?.host ?? ''}:${String(gateway?.port)}`).toBe(address);
    await settled((o) => o.cluster === 'west-1', 'west-1 to answer again');

    const partitioned = await world.apply({ kind: 'partition', target: { region: 'us-west' } });
    expect(partitioned.label).toBe('partition us-west');
    expect(gateway?.partitioned()).toBe(true);
    // meshfed's gateway probe is cut off like any client: its ClientHello gets no answer
    expect(await probeGateway(gateway?.host ?? '', gateway?.port ?? 0, 500)).toEqual({ ok: false, reason: 'no answer to a ClientHello within 0.5 s' });
    await settled((o) => o.error !== undefined, 'calls to time out');
    for (const [stream, outcomes] of await sample()) {
      expect(outcomes.length, stream.spec.name).toBeGreaterThan(stream.spec.rate / 4);
      expect(tally(outcomes), stream.spec.name).toEqual({ DEADLINE_EXCEEDED: outcomes.length });
    }
    expect(world.clusterState('west-1')).toBe('ready');
    // a client that starts now connects to the gateway, and hears nothing back either
    const late = new Stream({ name: 'late', from: 'east-1', to: 'reviews.global', via: 'xds', rate: 20, clients: 1, attempts: 1, timeoutMs: TIMEOUT_MS });
    extra.push(late);
    late.traffic = await world.startTraffic(late.spec, late.record);
    const lateReady = late.traffic.ready();
    await eventually(() => late.outcomes.length >= 5, 'the late client to time out a few times');
    expect(tally(late.outcomes)).toEqual({ DEADLINE_EXCEEDED: late.outcomes.length });
    await partitioned.restore();
    await partitioned.restore();
    expect(gateway?.partitioned()).toBe(false);
    expect(await probeGateway(gateway?.host ?? '', gateway?.port ?? 0, 5_000)).toEqual({ ok: true });
    await settled((o) => o.cluster === 'west-1', 'west-1 to answer again after the partition');
    await expectAllOn('west-1');
    // the connection it opened during the partition is served once it heals
    await lateReady;
    expect(late.outcomes.filter((o) => o.cluster === 'west-1').length).toBeGreaterThan(0);
    await late.traffic.stop();

    for (const k of kills.reverse()) await k.restore();
    await settled((o) => o.cluster === 'east-1', 'traffic back on east-1');
  }, 180_000);

  it('api-outage east-1: served from the last-known endpoints during the grace period, then evicted and traffic moves; restored, it comes back', async () => {
    const fault = await world.apply({ kind: 'api-outage', target: { cluster: 'east-1' } });
    expect(fault.label).toBe('api-outage east-1');
    await eventually(() => world.clusterState('east-1') === 'stale', 'east-1 to turn stale');
    const staleFrom = performance.now();
    await sleep(GRACE_MS / 3);
    expect(world.clusterState('east-1')).toBe('stale');
    const stale = STREAMS.map((s) => s.sent(staleFrom, performance.now()));
    for (const outcomes of stale) {
      expect(outcomes.length).toBeGreaterThan(0);
      expect(tally(outcomes)).toEqual({ 'east-1': outcomes.length });
    }
    await eventually(() => world.clusterState('east-1') === 'evicted', 'east-1 to be evicted');
    await settled((o) => o.cluster === 'east-2', 'traffic on east-2');
    await expectAllOn('east-2');
    expect(federation.workloads().every((w) => w.running)).toBe(true);
    await fault.restore();
    await eventually(() => world.clusterState('east-1') === 'ready', 'east-1 to be ready again');
    await settled((o) => o.cluster === 'east-1', 'traffic back on east-1');
    await expectAllOn('east-1');
  }, 120_000);

  it('refuses faults and traffic naming what the world lacks, changing nothing', async () => {
    const bad: [Fault, RegExp][] = [
      [{ kind: 'kill-workloads', target: { cluster: 'north-9' } }, /no cluster "north-9" \(clusters: east-1, east-2, west-1\)/],
      [{ kind: 'kill-workloads', target: { cluster: 'east-1', service: 'ratings' } }, /no workload of service "ratings" in east-1 \(services: default\/reviews\)/],
      [{ kind: 'kill-workloads', target: { region: 'us-east', zone: 'us-east-1z' } }, /no workload of us-east is in zone "us-east-1z" \(zones: us-east-1a, us-east-1b\)/],
      [{ kind: 'kill-workloads', target: { cluster: 'east-1', region: 'us-west' } }, /cluster east-1 is not in region "us-west"/],
      [{ kind: 'drain', target: { cluster: 'east-1', virtualDestination: 'ratings' } }, /no virtual destination "ratings" \(virtual destinations: reviews\)/],
      [{ kind: 'drain', target: { cluster: 'east-1', zone: 'us-west-1a' } }, /nothing of east-1 is in zone "us-west-1a"/],
      [{ kind: 'kill-gateway', target: { region: 'eu-central' } }, /no cluster is in region "eu-central" \(regions: us-east, us-west\)/],
      [{ kind: 'partition', target: { cluster: 'west-1', service: 'reviews' } }, /partition: a target's service means nothing to partition/],
      [{ kind: 'api-outage', target: {} }, /api-outage: the target names no cluster and no region/],
    ];
    for (const [fault, message] of bad) await expect(world.apply(fault), JSON.stringify(fault)).rejects.toThrow(message);
    await expect(world.startTraffic({ ...plain.spec, via: 'dns' }, plain.record)).rejects.toThrow(/via dns needs meshfed's DNS and xDS servers, and this manager runs no DNS server/);
    await expect(world.startTraffic({ ...plain.spec, from: 'north-9' }, plain.record)).rejects.toThrow(/no cluster "north-9"/);
    await expect(world.startTraffic({ ...plain.spec, to: 'ratings.global' }, plain.record)).rejects.toThrow(/no virtual destination has hostname "ratings.global" \(hostnames: reviews.global\)/);
    await expect(world.startTraffic({ ...plain.spec, to: 'reviews.global:80' }, plain.record)).rejects.toThrow(/reviews.global has no port 80 \(ports: 9080\)/);
    await expect(world.startTraffic({ ...plain.spec, clients: 0 }, plain.record)).rejects.toThrow(/clients must be a whole number of at least 1/);

    expect(federation.workloads().every((w) => w.running)).toBe(true);
    expect(gateways.every((g) => !g.handle.partitioned())).toBe(true);
    expect(CLUSTERS.map((c) => world.clusterState(c.name))).toEqual(['ready', 'ready', 'ready']);
    expect(manager.xds?.provider.drains('reviews')).toEqual([]);

    // a drain that names no virtual destination drains every one with backends there
    const drained = await world.apply({ kind: 'drain', target: { region: 'us-west' } });
    expect(drained.label).toBe('drain us-west reviews');
    expect(manager.xds?.provider.drains('reviews')).toEqual([{ region: 'us-west' }]);
    await drained.restore();
    expect(CLUSTERS.map((c) => world.clusterState(c.name))).toEqual(['ready', 'ready', 'ready']);
    expect(manager.xds?.provider.drains('reviews')).toEqual([]);
    await expectAllOn('east-1');
  });
});
