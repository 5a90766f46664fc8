/**
 * Each cluster is its own fault domain: when one cluster's API server crashes, hangs, compacts its history or
 * answers garbage, that cluster goes stale (last-known endpoints still served), then evicted after the grace
 * period, and recovers by itself, while the other clusters' updates keep flowing.
 */
import { createServer } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import type { ClusterState } from '../../src/registry/snapshot.js';
import { KubeSource } from '../../src/registry/kube/kube-source.js';
import { Registry } from '../../src/registry/registry.js';
import { startKubeApiFixture, type KubeObject } from '../fixtures/kube-api.js';
import {
  addressesIn,
  CLUSTER_NAMES,
  FAST_REGISTRY,
  FAST_SOURCE,
  kubeCluster,
  meshLabels,
  metricValue,
  pod,
  recordingLogger,
  service,
  slice,
  startFederation,
  summary,
  waitFor,
  type ClusterName,
  type Federation,
} from './kube-helpers.js';

const WAIT = 10_000;
let fed: Federation | undefined;

afterEach(async () => {
  await fed?.close();
  fed = undefined;
});

async function federation(): Promise<Federation> {
  fed = await startFederation();
  return fed;
}

const snapshotState = (f: Federation, name: string): ClusterState | undefined => f.registry.snapshot().clusters.get(name)?.state;

/** Records every state each cluster shows in published snapshots, to prove the healthy ones never wavered. */
function watchStates(f: Federation): Map<string, Set<ClusterState>> {
  const states = new Map<string, Set<ClusterState>>(CLUSTER_NAMES.map((n) => [n, new Set<ClusterState>()]));
  f.registry.subscribe((snapshot) => {
    for (const [name, view] of snapshot.clusters) states.get(name)?.add(view.state);
  });
  return states;
}

/** Adds an endpoint to a cluster's reviews and waits for it in the snapshot: that cluster's updates flow. */
async function changeFlowsIn(f: Federation, cluster: ClusterName, ip: string): Promise<void> {
  const net = { 'east-1': 1, 'east-2': 2, 'west-1': 3 }[cluster];
  f.fixtures[cluster].apply(
    slice('bookinfo', 'reviews-abcde', 'reviews', [
      { ip: `10.${net}.0.1`, pod: 'reviews-1' },
      { ip: `10.${net}.0.2`, pod: 'reviews-2' },
      { ip, pod: 'reviews-1' },
    ]),
  );
  await waitFor(() => addressesIn(f.registry, cluster, 'bookinfo/reviews')?.includes(ip) === true, WAIT, `${ip} in ${cluster}'s reviews`, () => summary(f.registry));
}

async function transitions(f: Federation, cluster: string, from: string, to: string): Promise<number> {
  return (await metricValue(f.registry, 'meshfed_cluster_state_transitions_total', { cluster, from, to })) ?? 0;
}

describe('a crashed API server', () => {
  it('goes stale, keeps its endpoints through the grace period, is evicted, and recovers by itself with what changed meanwhile', async () => {
    const f = await federation();
    const states = watchStates(f);
    const west = f.fixtures['west-1'];
    const sourceBefore = f.sources['west-1'];

    await west.stop();
    await waitFor(() => snapshotState(f, 'west-1') === 'stale', WAIT, 'west-1 stale', () => summary(f.registry));
    // last-known endpoints are still served, with a reason a person understands
    expect(addressesIn(f.registry, 'west-1', 'bookinfo/reviews')).toEqual(['10.3.0.1', '10.3.0.2']);
    expect(f.registry.snapshot().clusters.get('west-1')?.reason).toMatch(/API server https:\/\/127\.0\.0\.1:\d+ (dropped the connection|unreachable: connect ECONNREFUSED)/);

    // the other clusters are not held up
    await changeFlowsIn(f, 'east-2', '10.2.0.50');

    // changes while west-1 is down: a service deleted, a slice scaled, a service added
    west.remove('v1', 'Service', 'ratings', 'bookinfo');
    west.apply(slice('bookinfo', 'reviews-abcde', 'reviews', [{ ip: '10.3.0.2', pod: 'reviews-2' }, { ip: '10.3.0.3' }]));
    west.apply(service('bookinfo', 'details'));
    west.apply(pod('bookinfo', 'details-1', { serviceAccount: 'bookinfo-details', labels: meshLabels('details'), node: 'west-1-node-a' }));
    west.apply(slice('bookinfo', 'details-1', 'details', [{ ip: '10.3.2.1', pod: 'details-1' }]));

    await waitFor(() => snapshotState(f, 'west-1') === 'evicted', WAIT, 'west-1 evicted after the grace period', () => summary(f.registry));
    expect(f.registry.snapshot().clusters.get('west-1')?.services.size).toBe(0);
    expect(f.registry.status('west-1')?.reason).toMatch(/evicted after a \d+s grace period/);

    // still flowing elsewhere
    await changeFlowsIn(f, 'east-1', '10.1.0.50');

    await west.start();
    await waitFor(() => snapshotState(f, 'west-1') === 'ready', WAIT, 'west-1 ready again', () => summary(f.registry));
    const services = f.registry.snapshot().clusters.get('west-1')?.services;
    expect([...(services?.keys() ?? [])].sort()).toEqual(['bookinfo/details', 'bookinfo/reviews']);
    expect(addressesIn(f.registry, 'west-1', 'bookinfo/reviews')).toEqual(['10.3.0.2', '10.3.0.3']);
    expect(f.registry.snapshot().clusters.get('west-1')?.services.get('bookinfo/details')?.endpoints).toMatchObject([{ address: '10.3.2.1', serviceAccount: 'bookinfo-details', tlsMode: 'mtls', locality: { region: 'us-west', zone: 'us-west-1a' } }]);

    await waitFor(() => west.watchCount() === 4, WAIT, 'four open watches on west-1', () => west.watchCount());
    // nothing was recreated: the same source, registered once
    expect(f.sources['west-1']).toBe(sourceBefore);
    expect(f.log.filter((l) => l.msg === 'cluster registered' && (l.obj as { cluster?: string }).cluster === 'west-1')).toHaveLength(1);

    // the healthy clusters never left ready
    expect([...(states.get('east-1') ?? [])]).toEqual(['ready']);
    expect([...(states.get('east-2') ?? [])]).toEqual(['ready']);

    // every transition counted and logged; restarts counted
    expect(await transitions(f, 'west-1', 'ready', 'stale')).toBe(1);
    expect(await transitions(f, 'west-1', 'stale', 'evicted')).toBe(1);
    expect(await transitions(f, 'west-1', 'evicted', 'ready')).toBe(1);
    expect(await f.registry.metrics.registry.getSingleMetricAsString('meshfed_cluster_watch_restarts_total')).toMatch(/meshfed_cluster_watch_restarts_total\{cluster="west-1"\} [1-9]/);
    expect(f.registry.status('west-1')?.watchRestarts).toBeGreaterThan(0);
    expect(f.registry.status('east-1')?.watchRestarts).toBe(0);
    const logged = f.log.filter((l) => (l.obj as { cluster?: string; to?: string }).cluster === 'west-1' && (l.obj as { to?: string }).to !== undefined).map((l) => (l.obj as { to: string }).to);
    expect(logged).toEqual(['ready', 'stale', 'evicted', 'ready']);
  });

  it('recovers to ready from stale when it comes back within the grace period', async () => {
    fed = await startFederation({ registry: { graceMs: 30_000 } });
    const f = fed;
    await f.fixtures['east-1'].stop();
    await waitFor(() => snapshotState(f, 'east-1') === 'stale', WAIT, 'east-1 stale', () => summary(f.registry));
    f.fixtures['east-1'].remove('discovery.k8s.io/v1', 'EndpointSlice', 'ratings-xyz', 'bookinfo');
    await f.fixtures['east-1'].start();
    await waitFor(() => snapshotState(f, 'east-1') === 'ready', WAIT, 'east-1 ready again', () => summary(f.registry));
    expect(addressesIn(f.registry, 'east-1', 'bookinfo/ratings')).toEqual([]);
    expect(await transitions(f, 'east-1', 'stale', 'ready')).toBe(1);
  });
});

describe('a hung API server', () => {
  it('is caught by the liveness probe, goes stale, and recovers on resume with what it missed', async () => {
    const f = await federation();
    const states = watchStates(f);
    const east1 = f.fixtures['east-1'];
    east1.pause();
    await waitFor(() => snapshotState(f, 'east-1') === 'stale', WAIT, 'east-1 stale through the liveness probe', () => summary(f.registry));
    expect(f.registry.snapshot().clusters.get('east-1')?.reason).toMatch(/^API server https:\/\/127\.0\.0\.1:\d+ not responding: GET \/version got no answer within 500 ms$/);
    expect(addressesIn(f.registry, 'east-1', 'bookinfo/reviews')).toEqual(['10.1.0.1', '10.1.0.2']);

    await changeFlowsIn(f, 'west-1', '10.3.0.60');
    east1.remove('v1', 'Service', 'ratings', 'bookinfo');
    // the streams end when the server comes back, so re-watches race with the restart the recovery brings
    east1.closeWatches();

    east1.resume();
    await waitFor(() => snapshotState(f, 'east-1') === 'ready', WAIT, 'east-1 ready after resume', () => summary(f.registry));
    await waitFor(() => f.registry.snapshot().clusters.get('east-1')?.services.has('bookinfo/ratings') === false, WAIT, 'the deletion made during the hang', () => summary(f.registry));
    // no watch of the replaced informers is left behind
    await waitFor(() => east1.watchCount() === 4, WAIT, 'four open watches on east-1', () => east1.watchCount());
    expect([...(states.get('east-2') ?? [])]).toEqual(['ready']);
    expect([...(states.get('west-1') ?? [])]).toEqual(['ready']);
  });
});

describe('a compacted history', () => {
  it('answers 410 Gone to a re-watch: the informers re-list, nothing crashes, and the state is right', async () => {
    const f = await federation();
    const states = watchStates(f);
    const east2 = f.fixtures['east-2'];
    const lists = (): number => east2.requests.filter((r) => r.path === '/api/v1/pods' && !/(^|&)watch=/.test(r.query)).length;
    const listsBefore = lists();
    // the watches end cleanly; while the client comes back from its last resourceVersion, things change and
    // the history is compacted, so only a re-list can tell it what happened
    east2.closeWatches();
    east2.remove('v1', 'Pod', 'reviews-2', 'bookinfo');
    east2.remove('v1', 'Service', 'ratings', 'bookinfo');
    east2.apply(pod('bookinfo', 'reviews-1', { serviceAccount: 'reviews-new', labels: meshLabels('reviews'), node: 'east-2-node-a' }));
    east2.compact();
    await waitFor(() => lists() > listsBefore, WAIT, 'a re-list of pods after 410 Gone', () => east2.requests.slice(-10));
    await waitFor(() => f.registry.snapshot().clusters.get('east-2')?.services.has('bookinfo/ratings') === false, WAIT, 'ratings deleted in east-2', () => summary(f.registry));
    await waitFor(() => f.registry.snapshot().clusters.get('east-2')?.services.get('bookinfo/reviews')?.endpoints[0]?.serviceAccount === 'reviews-new', WAIT, 'reviews-1 with its new service account', () => summary(f.registry));
    // reviews-2's pod is gone: its endpoint stays (the slice still lists it) but without pod details
    expect(f.registry.snapshot().clusters.get('east-2')?.services.get('bookinfo/reviews')?.endpoints[1]).toMatchObject({ address: '10.2.0.2', serviceAccount: 'default', tlsMode: 'plaintext' });
    // a 410 is routine: not a failure, not a restart
    expect([...(states.get('east-2') ?? [])]).toEqual(['ready']);
    expect(f.registry.status('east-2')?.watchRestarts).toBe(0);
    expect(east2.requests.some((r) => /(^|&)watch=true/.test(r.query) && /resourceVersion=\d+/.test(r.query))).toBe(true);
    // and it keeps watching afterwards
    await changeFlowsIn(f, 'east-2', '10.2.0.70');
  });
});

describe('an API server that answers errors or garbage', () => {
  it.each([
    ['garbage', /^API server https:\/\/127\.0\.0\.1:\d+ answered GET \/version with something that is not JSON/],
    [500, /^API server https:\/\/127\.0\.0\.1:\d+ answered 500 Internal Server Error to GET \/version: kube-api fixture: injected failure 500$/],
    [401, /^401 Unauthorized: the kubeconfig's credentials were rejected$/],
  ] as const)('failWith(%s) makes that cluster stale and no other', async (failure, reason) => {
    const f = await federation();
    const states = watchStates(f);
    f.fixtures['west-1'].failWith(failure);
    await waitFor(() => snapshotState(f, 'west-1') === 'stale', WAIT, 'west-1 stale', () => summary(f.registry));
    expect(f.registry.snapshot().clusters.get('west-1')?.reason).toMatch(reason);
    await changeFlowsIn(f, 'east-1', '10.1.0.80');
    await changeFlowsIn(f, 'east-2', '10.2.0.80');
    // the fixture fails new requests only: the watches that were open stay open, so west-1's own changes still arrive while it is stale
    await changeFlowsIn(f, 'west-1', '10.3.0.80');
    expect(snapshotState(f, 'west-1')).toBe('stale');
    // watches that end now cannot come back while the server fails; what changes meanwhile is caught up on recovery
    f.fixtures['west-1'].closeWatches();
    f.fixtures['west-1'].remove('v1', 'Service', 'ratings', 'bookinfo');
    f.fixtures['west-1'].failWith(null);
    await waitFor(() => snapshotState(f, 'west-1') === 'ready', WAIT, 'west-1 ready again', () => summary(f.registry));
    await waitFor(() => f.registry.snapshot().clusters.get('west-1')?.services.has('bookinfo/ratings') === false, WAIT, 'west-1 caught up', () => summary(f.registry));
    expect([...(states.get('east-1') ?? [])]).toEqual(['ready']);
    expect([...(states.get('east-2') ?? [])]).toEqual(['ready']);
  });
});

describe('garbage objects', () => {
  it('are skipped with a reason, in their own cluster only, and do not break a re-list', async () => {
    const f = await federation();
    const states = watchStates(f);
    const west = f.fixtures['west-1'];
    const garbage: KubeObject[] = [
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'Not_A_Label', namespace: 'bookinfo' }, spec: { ports: 5 } },
      { apiVersion: 'v1', kind: 'Service', metadata: { name: 'odd', namespace: 'bookinfo', labels: 'x' as unknown as Record<string, string> }, spec: { ports: [null, 'x', { port: 'abc' }, { port: 8080 }] }, status: 7 },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'odd-1', namespace: 'bookinfo', labels: { 'kubernetes.io/service-name': 'odd' } }, addressType: 'IPv4', endpoints: 3, ports: 'x' },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'odd-2', namespace: 'bookinfo', labels: { 'kubernetes.io/service-name': 'odd' } }, addressType: 'Carrier-Pigeon', endpoints: [{ addresses: ['10.3.9.9'] }] },
      { apiVersion: 'discovery.k8s.io/v1', kind: 'EndpointSlice', metadata: { name: 'odd-3', namespace: 'bookinfo', labels: { 'kubernetes.io/service-name': 'odd' } }, addressType: 'IPv4', endpoints: [{ addresses: ['10.3.9.10'], conditions: 'yes', targetRef: { kind: 'Pod', name: 7 } }, { addresses: ['999.1.1.1'] }] },
      { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'reviews-1', namespace: 'bookinfo', labels: { app: 'reviews', 'security.istio.io/tlsMode': 'istio' } }, spec: { serviceAccountName: 42, nodeName: ['x'] } },
    ];
    for (const object of garbage) west.apply(object);
    await waitFor(() => addressesIn(f.registry, 'west-1', 'bookinfo/odd')?.length === 1, WAIT, 'the usable part of the odd service', () => summary(f.registry));
    const odd = f.registry.snapshot().clusters.get('west-1')?.services.get('bookinfo/odd');
    expect(odd?.service.ports).toEqual([{ name: '', port: 8080, protocol: 'TCP' }]);
    expect(odd?.endpoints).toMatchObject([{ address: '10.3.9.10', health: 'ready', serviceAccount: 'default', tlsMode: 'plaintext' }]);
    await waitFor(() => f.registry.snapshot().clusters.get('west-1')?.services.get('bookinfo/reviews')?.endpoints[0]?.serviceAccount === 'default', WAIT, 'reviews-1 with a garbage service account', () => summary(f.registry));
    expect(f.registry.snapshot().clusters.get('west-1')?.services.get('bookinfo/reviews')?.endpoints[0]).toMatchObject({ address: '10.3.0.1', tlsMode: 'mtls', locality: { region: 'us-west', zone: 'us-west-1a' } });
    const skipped = f.log.filter((l) => l.msg === 'Kubernetes object skipped').map((l) => (l.obj as { object: string; reason: string }));
    expect(skipped).toEqual(
      expect.arrayContaining([
        { cluster: 'west-1', object: 'Service bookinfo/Not_A_Label', reason: 'namespace or name is not a DNS-1123 label' },
        expect.objectContaining({ object: 'EndpointSlice bookinfo/odd-2', reason: 'addressType "Carrier-Pigeon" is not IPv4 or IPv6' }),
        expect.objectContaining({ object: 'EndpointSlice bookinfo/odd-3 endpoints[1]', reason: 'address "999.1.1.1" is not an IPv4 address' }),
      ]),
    );
    // a fresh list after a crash reads the same garbage and still syncs
    await west.stop();
    await waitFor(() => snapshotState(f, 'west-1') === 'stale', WAIT, 'west-1 stale', () => summary(f.registry));
    await west.start();
    await waitFor(() => snapshotState(f, 'west-1') === 'ready', WAIT, 'west-1 ready after a re-list with garbage in it', () => summary(f.registry));
    expect(addressesIn(f.registry, 'west-1', 'bookinfo/odd')).toEqual(['10.3.9.10']);
    expect([...(states.get('east-1') ?? [])]).toEqual(['ready']);
    expect([...(states.get('east-2') ?? [])]).toEqual(['ready']);
  });
});

describe('removing a cluster', () => {
  it('closes its watches and stops its probes; the others go on', async () => {
    const f = await federation();
    const west = f.fixtures['west-1'];
    expect(await f.registry.remove('west-1')).toBe(true);
    await waitFor(() => west.watchCount() === 0, WAIT, 'no open watches on west-1', () => west.watchCount());
    const requests = west.requests.length;
    await new Promise((resolve) => setTimeout(resolve, 3 * (FAST_SOURCE.probeIntervalMs ?? 200)));
    expect(west.requests.slice(requests)).toEqual([]);
    expect(f.registry.snapshot().clusters.has('west-1')).toBe(false);
    await changeFlowsIn(f, 'east-1', '10.1.0.90');
  });
});

describe('registrations that cannot sync', () => {
  async function freePort(): Promise<number> {
    const server = createServer();
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    await new Promise<void>((resolve) => {
      server.close(() => {
        resolve();
      });
    });
    if (address === null || typeof address === 'string') throw new Error('no port');
    return address.port;
  }

  it('an unreachable API server, bad credentials and an exec kubeconfig stay syncing with the reason, beside a healthy cluster', async () => {
    const { logger } = recordingLogger();
    const registry = new Registry({ ...FAST_REGISTRY, logger });
    const fixture = await startKubeApiFixture();
    try {
      const port = await freePort();
      const good = kubeCluster(fixture, { name: 'good', network: 'net-a' });
      const unreachable = clusterSchema.parse({
        name: 'unreachable',
        network: 'net-b',
        source: { type: 'kubernetes', kubeconfig: fixture.kubeconfig({ cluster: 'unreachable' }).replace(`127.0.0.1:${fixture.port}`, `127.0.0.1:${port}`) },
      });
      const badToken = clusterSchema.parse({ name: 'bad-token', network: 'net-c', source: { type: 'kubernetes', kubeconfig: fixture.kubeconfig({ cluster: 'bad-token', token: 'wrong' }) } });
      const execConfig = fixture.kubeconfig({ cluster: 'exec' }).replace(/token: \S+/, 'exec:\n        command: /bin/sh\n        args: ["-c", "cat /etc/passwd"]');
      const exec = clusterSchema.parse({ name: 'exec', network: 'net-d', source: { type: 'kubernetes', kubeconfig: execConfig } });
      for (const cluster of [unreachable, badToken, exec, good]) registry.add(cluster, new KubeSource(cluster, FAST_SOURCE));
      fixture.apply(service('default', 'web'));

      const reason = (name: string): string => registry.status(name)?.reason ?? '';
      await waitFor(() => registry.snapshot().clusters.get('good')?.state === 'ready', WAIT, 'good ready', () => summary(registry));
      await waitFor(() => /unreachable: connect ECONNREFUSED 127\.0\.0\.1:\d+$/.test(reason('unreachable')), WAIT, 'the unreachable reason', () => registry.list());
      expect(reason('unreachable')).toBe(`API server https://127.0.0.1:${port} unreachable: connect ECONNREFUSED 127.0.0.1:${port}`);
      await waitFor(() => reason('bad-token') === "401 Unauthorized: the kubeconfig's credentials were rejected", WAIT, 'the 401 reason', () => registry.list());
      expect(reason('exec')).toMatch(/^invalid kubeconfig: users\[0\]\.user\.exec: exec credential plugins are not allowed in a registered kubeconfig \(they run commands on the manager\)/);
      for (const name of ['unreachable', 'bad-token', 'exec']) expect(registry.status(name)?.state).toBe('syncing');
      expect(registry.snapshot().clusters.get('good')?.services.has('default/web')).toBe(true);
      // the unreachable one keeps trying, with backoff
      await waitFor(() => (registry.status('unreachable')?.watchRestarts ?? 0) >= 2, WAIT, 'restarts of the unreachable cluster', () => registry.list());
    } finally {
      await registry.close();
      await fixture.close();
    }
  });
});
