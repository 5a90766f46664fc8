/**
 * The cluster registry under load: a 3-cluster federation of 1,000 services × 10 endpoints
 * each, watched through @kubernetes/client-node informers (ListWatch) over HTTPS from Kubernetes
 * API fixtures that run in a separate process (test/bench/kube-fixture-host.ts). meshfed's
 * informers talk through its own watch transport (src/registry/kube/watch-transport.ts).
 *
 *   churn       EndpointSlice changes are queued while the fixtures are paused, then released
 *               at once; the rate is events until the registry has folded every one of them
 *               into its state and published the snapshot that shows the last one.
 *   ceiling     JSON.parse of the very same watch lines: the least any consumer must do.
 *   client-node the same churn consumed by bare @kubernetes/client-node informers, with
 *               client-node's own Watch (node-fetch, readline) and no-op handlers (run after
 *               meshfed's registry stopped): what the library alone delivers, for reference.
 *   first list  a cluster's initial list (services, slices, pods, nodes) folded into a snapshot.
 *   re-list     every slice changed while the watches were cut and history compacted: 410 Gone,
 *               re-list of everything, resync, new snapshot.
 *   memory      heap held per 10,000 endpoints (informer caches, indexes, per-slice translations
 *               and snapshot views), measured with a forced GC when node runs with --expose-gc.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { DiscoveryV1Api, KubeConfig, makeInformer } from '@kubernetes/client-node';
import { clusterSchema } from '../../src/model/cluster.js';
import { KubeSource } from '../../src/registry/kube/kube-source.js';
import { Registry } from '../../src/registry/registry.js';
import { heapMb, median, until as untilWithin } from './measure.js';

const CLUSTERS = ['east-1', 'east-2', 'west-1'];
const SERVICES = 1000;
const ENDPOINTS = 10;
const CHURN_EVENTS = 10_000; // per cluster, per round
const ROUNDS = 3;
const TARGET_RATIO = 0.5;
const RELIST_TARGET_MS = 1000;
/** every wait below is bounded: a stuck run fails instead of hanging */
const WAIT_LIMIT_MS = 120_000;
/** every wait below is bounded by WAIT_LIMIT_MS */
const until = (condition: () => boolean, what: string | (() => string)): Promise<void> => untilWithin(condition, what, WAIT_LIMIT_MS);

type HostReply = { op: 'started'; kubeconfigs: Record<string, string> } | { op: 'churned'; sample: string[] } | { op: 'relisting' } | { op: 'released' };

function request(host: ChildProcess, message: object, reply: HostReply['op']): Promise<HostReply> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      reject(new Error(`fixture host did not answer ${reply} within ${WAIT_LIMIT_MS} ms`));
    }, WAIT_LIMIT_MS);
    const onMessage = (answer: HostReply): void => {
      if (answer.op !== reply) return;
      clearTimeout(timer);
      host.off('message', onMessage);
      resolve(answer);
    };
    host.on('message', onMessage);
    host.send(message);
  });
}

const eventsProcessed = (registry: Registry): number => registry.list().reduce((sum, status) => sum + status.events, 0);

function endpointCount(registry: Registry, cluster: string): number {
  let n = 0;
  for (const view of registry.snapshot().clusters.get(cluster)?.services.values() ?? []) n += view.endpoints.length;
  return n;
}

function readyEndpointCount(registry: Registry, cluster: string): number {
  let n = 0;
  for (const view of registry.snapshot().clusters.get(cluster)?.services.values() ?? []) n += view.endpoints.filter((e) => e.health === 'ready').length;
  return n;
}

const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

/** The same churn, consumed by client-node's own informers for EndpointSlices with handlers that do nothing. */
async function bareInformerRates(host: ChildProcess, kubeconfigs: Record<string, string>): Promise<number[]> {
  let seen = 0;
  const informers = CLUSTERS.map((name) => {
    const kc = new KubeConfig();
    kc.loadFromString(kubeconfigs[name] ?? '');
    const api = kc.makeApiClient(DiscoveryV1Api);
    const informer = makeInformer(kc, '/apis/discovery.k8s.io/v1/endpointslices', () => api.listEndpointSliceForAllNamespaces());
    informer.on('update', () => {
      seen++;
    });
    return informer;
  });
  const rates: number[] = [];
  try {
    await Promise.all(informers.map((informer) => informer.start()));
    for (let round = 0; round < ROUNDS; round++) {
      await request(host, { op: 'churn', events: CHURN_EVENTS }, 'churned');
      const target = seen + CHURN_EVENTS * CLUSTERS.length;
      const t0 = performance.now();
      await request(host, { op: 'release' }, 'released');
      await until(() => seen >= target, 'client-node informers to see the churn');
      rates.push((CHURN_EVENTS * CLUSTERS.length) / ((performance.now() - t0) / 1000));
    }
  } finally {
    await Promise.all(informers.map((informer) => informer.stop()));
  }
  return rates;
}

export async function run(): Promise<void> {
  const host = fork(new URL('./kube-fixture-host.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  const registry = new Registry({ debounceMs: 100, maxDelayMs: 1000 });
  try {
    const started = await request(host, { op: 'start', clusters: CLUSTERS, services: SERVICES, endpointsPerService: ENDPOINTS }, 'started');
    if (started.op !== 'started') throw new Error('unexpected answer');
    console.log(`3 clusters × ${fmt(SERVICES)} services × ${ENDPOINTS} endpoints (plus one pod per endpoint) in Kubernetes API fixtures, in a separate process`);
    console.log(`gc: ${'gc' in globalThis ? 'forced before each heap reading' : 'not exposed (run node with --expose-gc for steady memory figures)'}`);

    // ---- first list, one cluster at a time, with memory ----
    const listMs: number[] = [];
    const heapPer10k: number[] = [];
    for (const name of CLUSTERS) {
      const before = heapMb();
      const t0 = performance.now();
      const cluster = clusterSchema.parse({ name, network: name.startsWith('east') ? 'net-east' : 'net-west', source: { type: 'kubernetes', kubeconfig: started.kubeconfigs[name] ?? '' } });
      registry.add(cluster, new KubeSource(cluster, { probeIntervalMs: 60_000, probeTimeoutMs: 30_000 }));
      await until(() => registry.status(name)?.state === 'ready', `${name} to be ready`);
      registry.flush();
      listMs.push(performance.now() - t0);
      if (endpointCount(registry, name) !== SERVICES * ENDPOINTS) throw new Error(`${name}: expected ${SERVICES * ENDPOINTS} endpoints in the snapshot, found ${endpointCount(registry, name)}`);
      heapPer10k.push(((heapMb() - before) * 10_000) / (SERVICES * ENDPOINTS));
    }

    // ---- churn ----
    const rates: number[] = [];
    const ceilings: number[] = [];
    const utilisation: number[] = [];
    for (let round = 0; round < ROUNDS; round++) {
      const churned = await request(host, { op: 'churn', events: CHURN_EVENTS }, 'churned');
      if (churned.op !== 'churned') throw new Error('unexpected answer');
      const target = eventsProcessed(registry) + CHURN_EVENTS * CLUSTERS.length;
      const version = registry.snapshot().version;
      const t0 = performance.now();
      const elu0 = performance.eventLoopUtilization();
      await request(host, { op: 'release' }, 'released');
      await until(() => eventsProcessed(registry) >= target, 'churn events to be processed');
      utilisation.push(performance.eventLoopUtilization(elu0).utilization);
      registry.flush();
      const seconds = (performance.now() - t0) / 1000;
      if (registry.snapshot().version === version) throw new Error(`churn produced no new snapshot (events ${eventsProcessed(registry)} of ${target}, ready endpoints ${CLUSTERS.map((c) => readyEndpointCount(registry, c)).join('/')})`);
      rates.push((CHURN_EVENTS * CLUSTERS.length) / seconds);

      // the ceiling: parse the same lines, as many times as it takes to measure
      const sample = churned.sample;
      const p0 = performance.now();
      let parsed = 0;
      while (performance.now() - p0 < 1000 && parsed < 300_000) {
        for (const line of sample) JSON.parse(line);
        parsed += sample.length;
      }
      ceilings.push(parsed / ((performance.now() - p0) / 1000));
    }

    // ---- full re-list after 410 Gone ----
    const relistMs: number[] = [];
    for (const name of CLUSTERS) {
      const readyBefore = readyEndpointCount(registry, name);
      await request(host, { op: 'relist', cluster: name }, 'relisting');
      const t0 = performance.now();
      await request(host, { op: 'release' }, 'released');
      const expected = SERVICES * (ENDPOINTS - 2);
      await until(() => {
        registry.flush();
        return readyEndpointCount(registry, name) === expected;
      }, `${name} re-list to show every slice's change (had ${readyBefore} ready endpoints)`);
      relistMs.push(performance.now() - t0);
    }

    await registry.close();
    const bare = await bareInformerRates(host, started.kubeconfigs);

    const rate = median(rates);
    const ceiling = median(ceilings);
    console.log('');
    console.log(`churn: ${fmt(rate)} events/s processed (rounds ${rates.map(fmt).join(' / ')})`);
    console.log(`meshfed's event loop was busy ${utilisation.map((u) => `${(u * 100).toFixed(0)}%`).join(' / ')} of the churn window (the rest it waited for data)`);
    console.log(`ceiling: ${fmt(ceiling)} watch lines/s JSON.parse alone (rounds ${ceilings.map(fmt).join(' / ')})`);
    console.log(`client-node's own informers alone (its Watch, no-op handlers): ${fmt(median(bare))} events/s (rounds ${bare.map(fmt).join(' / ')}) = ${((100 * median(bare)) / ceiling).toFixed(1)}% of the ceiling`);
    console.log(`meshfed = ${((100 * rate) / median(bare)).toFixed(1)}% of what client-node alone delivers`);
    console.log(`events processed = ${((100 * rate) / ceiling).toFixed(1)}% of the JSON.parse ceiling (target >= ${TARGET_RATIO * 100}%: ${rate / ceiling >= TARGET_RATIO ? 'met' : 'NOT met'})`);
    console.log(`first list of ${fmt(SERVICES * ENDPOINTS)} endpoints to snapshot: ${listMs.map((ms) => `${fmt(ms)} ms`).join(' / ')}`);
    console.log(`full re-list (410) of ${fmt(SERVICES * ENDPOINTS)} endpoints folded into a new snapshot: ${relistMs.map((ms) => `${fmt(ms)} ms`).join(' / ')} (target < ${RELIST_TARGET_MS} ms: ${Math.max(...relistMs) < RELIST_TARGET_MS ? 'met' : 'NOT met'})`);
    console.log(`heap per 10,000 endpoints (with their pods, services and slices): ${heapPer10k.map((mb) => `${mb.toFixed(1)} MB`).join(' / ')}`);
  } finally {
    await registry.close();
    host.send({ op: 'stop' });
    await Promise.race([once(host, 'exit'), new Promise((done) => setTimeout(done, 5000))]);
    host.kill();
  }
}
