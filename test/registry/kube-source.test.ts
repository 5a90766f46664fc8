/**
 * Three clusters (east-1 and east-2 on net-east, west-1 on net-west), each behind its own fixture API server,
 * watched by real client-node informers through real kubeconfigs into one Registry: what happens in a cluster's
 * API shows up in the federated snapshot with the right network, locality, identity and health.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/model/service.js';
import type { SnapshotChange } from '../../src/registry/snapshot.js';
import { addressesIn, endpointsIn, meshLabels, metricValue, node, pod, service, slice, startFederation, summary, waitFor, type Federation } from './kube-helpers.js';

const WAIT = 5_000;
let fed: Federation;

beforeAll(async () => {
  fed = await startFederation({ gateways: { 'east-2': [{ address: '198.51.100.2' }] } });
});

afterAll(async () => {
  await fed.close();
});

const view = (cluster: string, key: string): Endpoint[] => [...(endpointsIn(fed.registry, cluster, key) ?? [])];
const seen = (): unknown => summary(fed.registry);

describe('initial sync of three clusters', () => {
  it('shows every cluster ready with its network, and its services with locality, identity and health', () => {
    const snapshot = fed.registry.snapshot();
    expect([...snapshot.clusters.keys()].sort()).toEqual(['east-1', 'east-2', 'west-1']);
    expect(snapshot.clusters.get('east-1')?.cluster.network).toBe('net-east');
    expect(snapshot.clusters.get('east-2')?.cluster.network).toBe('net-east');
    expect(snapshot.clusters.get('west-1')?.cluster.network).toBe('net-west');
    for (const [name, net, region] of [
      ['east-1', 1, 'us-east'],
      ['east-2', 2, 'us-east'],
      ['west-1', 3, 'us-west'],
    ] as const) {
      const reviews = view(name, 'bookinfo/reviews');
      expect(reviews).toEqual([
        {
          address: `10.${net}.0.1`,
          ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
          locality: { region, zone: `${region}-1a`, subzone: '' },
          serviceAccount: 'bookinfo-reviews',
          labels: { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio' },
          tlsMode: 'mtls',
          health: 'ready',
        },
        {
          address: `10.${net}.0.2`,
          ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
          locality: { region, zone: `${region}-1b`, subzone: 'rack-2' },
          serviceAccount: 'bookinfo-reviews',
          labels: { app: 'reviews', version: 'v2', 'security.istio.io/tlsMode': 'istio' },
          tlsMode: 'mtls',
          health: 'ready',
        },
      ]);
      expect(view(name, 'bookinfo/ratings')).toMatchObject([{ address: `10.${net}.1.1`, serviceAccount: 'bookinfo-ratings', tlsMode: 'plaintext' }]);
      const service = fed.registry.snapshot().clusters.get(name)?.services.get('bookinfo/reviews')?.service;
      expect(service).toEqual({ cluster: name, namespace: 'bookinfo', name: 'reviews', ports: [{ name: 'http', port: 9080, protocol: 'TCP', targetPort: 9080 }], labels: { app: 'reviews' } });
      const status = fed.registry.status(name);
      expect(status).toMatchObject({ state: 'ready', services: 2, endpoints: 3 });
    }
  });

  it('publishes frozen views', () => {
    const reviews = fed.registry.snapshot().clusters.get('east-1')?.services.get('bookinfo/reviews');
    expect(Object.isFrozen(reviews)).toBe(true);
    expect(Object.isFrozen(reviews?.endpoints[0]?.locality)).toBe(true);
  });
});

describe('changes in a cluster reach the snapshot', () => {
  it('a new service with its pods and slice', async () => {
    const f = fed.fixtures['east-2'];
    const changes: SnapshotChange[] = [];
    const unsubscribe = fed.registry.subscribe((_s, change) => changes.push(change));
    f.apply(pod('shop', 'cart-1', { serviceAccount: 'cart', labels: meshLabels('cart'), node: 'east-2-node-b' }));
    f.apply(service('shop', 'cart', { ports: [{ name: 'grpc', port: 7070, targetPort: 'grpc', appProtocol: 'grpc' }] }));
    f.apply(slice('shop', 'cart-1abc', 'cart', [{ ip: '10.2.5.1', pod: 'cart-1' }], { ports: [{ name: 'grpc', port: 17070 }] }));
    await waitFor(() => view('east-2', 'shop/cart').length === 1, WAIT, 'shop/cart in east-2', seen);
    unsubscribe();
    expect(view('east-2', 'shop/cart')).toMatchObject([{ address: '10.2.5.1', serviceAccount: 'cart', tlsMode: 'mtls', locality: { region: 'us-east', zone: 'us-east-1b', subzone: 'rack-2' }, ports: [{ name: 'grpc', port: 17070 }] }]);
    expect(fed.registry.snapshot().clusters.get('east-2')?.services.get('shop/cart')?.service.ports).toEqual([{ name: 'grpc', port: 7070, protocol: 'TCP', targetPort: 17070, appProtocol: 'grpc' }]);
    expect(changes.some((c) => c.services.includes('shop/cart'))).toBe(true);
    // no other cluster has it
    expect(view('east-1', 'shop/cart')).toEqual([]);
  });

  it('scaling a slice up and down, and health changes', async () => {
    const f = fed.fixtures['east-1'];
    const endpoints = (n: number, extra: Record<string, unknown> = {}): { ip: string; pod: string }[] =>
      Array.from({ length: n }, (_, i) => ({ ip: `10.1.0.${i + 1}`, pod: `reviews-${i + 1}`, ...extra }));
    for (let i = 3; i <= 5; i++) f.apply(pod('bookinfo', `reviews-${i}`, { serviceAccount: 'bookinfo-reviews', labels: meshLabels('reviews'), node: 'east-1-node-a' }));
    f.apply(slice('bookinfo', 'reviews-abcde', 'reviews', endpoints(5)));
    await waitFor(() => addressesIn(fed.registry, 'east-1', 'bookinfo/reviews')?.length === 5, WAIT, 'reviews scaled to 5 in east-1', seen);
    expect(view('east-1', 'bookinfo/reviews').every((e) => e.tlsMode === 'mtls' && e.serviceAccount === 'bookinfo-reviews')).toBe(true);

    f.apply(slice('bookinfo', 'reviews-abcde', 'reviews', [{ ip: '10.1.0.1', pod: 'reviews-1' }, { ip: '10.1.0.2', pod: 'reviews-2', ready: false, serving: true, terminating: true }]));
    await waitFor(() => addressesIn(fed.registry, 'east-1', 'bookinfo/reviews')?.length === 2, WAIT, 'reviews scaled down to 2', seen);
    expect(view('east-1', 'bookinfo/reviews').map((e) => [e.address, e.health])).toEqual([
      ['10.1.0.1', 'ready'],
      ['10.1.0.2', 'terminating'],
    ]);

    // a second slice for the same service adds to it
    f.apply(slice('bookinfo', 'reviews-fghij', 'reviews', [{ ip: '10.1.0.9', ready: false }]));
    await waitFor(() => addressesIn(fed.registry, 'east-1', 'bookinfo/reviews')?.includes('10.1.0.9') === true, WAIT, 'second slice folded in', seen);
    expect(view('east-1', 'bookinfo/reviews').find((e) => e.address === '10.1.0.9')?.health).toBe('unready');

    // deleting slices empties the service; the other cluster's reviews are untouched
    f.remove('discovery.k8s.io/v1', 'EndpointSlice', 'reviews-fghij', 'bookinfo');
    f.remove('discovery.k8s.io/v1', 'EndpointSlice', 'reviews-abcde', 'bookinfo');
    await waitFor(() => addressesIn(fed.registry, 'east-1', 'bookinfo/reviews')?.length === 0, WAIT, 'reviews endpoints gone from east-1', seen);
    expect(addressesIn(fed.registry, 'east-2', 'bookinfo/reviews')).toEqual(['10.2.0.1', '10.2.0.2']);
  });

  it('deleting a service removes it', async () => {
    const f = fed.fixtures['west-1'];
    f.remove('v1', 'Service', 'ratings', 'bookinfo');
    await waitFor(() => fed.registry.snapshot().clusters.get('west-1')?.services.has('bookinfo/ratings') === false, WAIT, 'ratings gone from west-1', seen);
    expect(fed.registry.snapshot().clusters.get('east-1')?.services.has('bookinfo/ratings')).toBe(true);
    // it comes back with its slice, which never went away
    f.apply(service('bookinfo', 'ratings'));
    await waitFor(() => addressesIn(fed.registry, 'west-1', 'bookinfo/ratings')?.[0] === '10.3.1.1', WAIT, 'ratings back in west-1', seen);
  });

  it('pod changes: tlsMode, service account, network label; a pod that arrives after its endpoint', async () => {
    const f = fed.fixtures['west-1'];
    f.apply(service('pay', 'billing'));
    f.apply(slice('pay', 'billing-1', 'billing', [{ ip: '10.3.7.1', pod: 'billing-1' }]));
    await waitFor(() => view('west-1', 'pay/billing').length === 1, WAIT, 'billing in west-1', seen);
    // the pod is not known yet: no identity, no sidecar
    expect(view('west-1', 'pay/billing')[0]).toMatchObject({ serviceAccount: 'default', tlsMode: 'plaintext', labels: {} });
    f.apply(pod('pay', 'billing-1', { serviceAccount: 'billing', labels: meshLabels('billing', { 'topology.istio.io/network': 'net-west-edge' }), node: 'west-1-node-b' }));
    await waitFor(() => view('west-1', 'pay/billing')[0]?.tlsMode === 'mtls', WAIT, 'billing pod folded in', seen);
    expect(view('west-1', 'pay/billing')[0]).toMatchObject({ serviceAccount: 'billing', network: 'net-west-edge', locality: { region: 'us-west', zone: 'us-west-1b', subzone: 'rack-2' } });
    // the sidecar goes away
    f.apply(pod('pay', 'billing-1', { serviceAccount: 'billing', labels: { app: 'billing' }, node: 'west-1-node-b' }));
    await waitFor(() => view('west-1', 'pay/billing')[0]?.tlsMode === 'plaintext', WAIT, 'billing without sidecar', seen);
    expect(view('west-1', 'pay/billing')[0]?.network).toBeUndefined();
  });

  it('node changes move locality; a deleted node falls back to the cluster defaults', async () => {
    const f = fed.fixtures['east-2'];
    f.apply(node('east-2-node-a', { region: 'us-east', zone: 'us-east-1c', subzone: 'rack-9' }));
    await waitFor(() => view('east-2', 'bookinfo/reviews')[0]?.locality.zone === 'us-east-1c', WAIT, 'reviews-1 moved to us-east-1c', seen);
    expect(view('east-2', 'bookinfo/reviews')[0]?.locality).toEqual({ region: 'us-east', zone: 'us-east-1c', subzone: 'rack-9' });
    // ratings-1 is on the same node
    expect(view('east-2', 'bookinfo/ratings')[0]?.locality.zone).toBe('us-east-1c');
    f.remove('v1', 'Node', 'east-2-node-a');
    await waitFor(() => view('east-2', 'bookinfo/reviews')[0]?.locality.subzone === '', WAIT, 'reviews-1 on the cluster default locality', seen);
    expect(view('east-2', 'bookinfo/reviews')[0]?.locality).toEqual({ region: 'us-east', zone: 'us-east-1b', subzone: '' });
  });

  it('an event that changes nothing publishes nothing', async () => {
    const before = fed.registry.snapshot().clusters.get('east-1')?.services.get('bookinfo/ratings');
    const events = (await metricValue(fed.registry, 'meshfed_cluster_events_total', { cluster: 'east-1' })) ?? 0;
    const current = fed.fixtures['east-1'].get('v1', 'Pod', 'ratings-1', 'bookinfo');
    if (!current) throw new Error('pod missing');
    fed.fixtures['east-1'].apply(current);
    fed.fixtures['east-1'].apply(service('bookinfo', 'ratings'));
    await waitFor(async () => ((await metricValue(fed.registry, 'meshfed_cluster_events_total', { cluster: 'east-1' })) ?? 0) >= events + 2, WAIT, 'the two MODIFIED events counted');
    fed.registry.flush();
    expect(fed.registry.snapshot().clusters.get('east-1')?.services.get('bookinfo/ratings')).toBe(before);
  });
});

describe('gateways', () => {
  it('discovers the east-west gateway of a cluster from its LoadBalancer Service', async () => {
    const f = fed.fixtures['west-1'];
    const gw = (ingress: { ip: string }[] | { hostname: string }[]) =>
      service('istio-system', 'istio-eastwestgateway', {
        type: 'LoadBalancer',
        labels: { istio: 'eastwestgateway', 'topology.istio.io/network': 'net-west' },
        ports: [
          { name: 'status-port', port: 15021 },
          { name: 'tls', port: 15443 },
        ],
        ingress,
      });
    f.apply(gw([{ ip: '203.0.113.30' }]));
    await waitFor(() => fed.registry.snapshot().clusters.get('west-1')?.gateways.length === 1, WAIT, 'west-1 gateway discovered', seen);
    expect(fed.registry.snapshot().clusters.get('west-1')?.gateways).toEqual([{ address: '203.0.113.30', port: 15443 }]);
    expect(fed.registry.status('west-1')?.gatewaysFrom).toBe('discovery');

    f.apply(gw([{ hostname: 'west-gw.elb.example.com' }]));
    await waitFor(() => fed.registry.snapshot().clusters.get('west-1')?.gateways[0]?.address === 'west-gw.elb.example.com', WAIT, 'west-1 gateway moved to a hostname', seen);

    f.remove('v1', 'Service', 'istio-eastwestgateway', 'istio-system');
    await waitFor(() => fed.registry.snapshot().clusters.get('west-1')?.gateways.length === 0, WAIT, 'west-1 gateway gone', seen);
    expect(fed.registry.status('west-1')?.gatewaysFrom).toBe('none');
  });

  it('a gateway labelled for another network is not this cluster\'s', async () => {
    const f = fed.fixtures['east-1'];
    f.apply(service('istio-system', 'other-gateway', { type: 'LoadBalancer', labels: { 'topology.istio.io/network': 'net-west' }, ports: [{ name: 'tls', port: 15443 }], ingress: [{ ip: '203.0.113.99' }] }));
    f.apply(service('istio-system', 'eastwest', { type: 'LoadBalancer', labels: { 'topology.istio.io/network': 'net-east', 'networking.istio.io/gatewayPort': '16443' }, ports: [{ name: 'tls', port: 16443 }], ingress: [{ ip: '203.0.113.10' }] }));
    await waitFor(() => fed.registry.snapshot().clusters.get('east-1')?.gateways.length === 1, WAIT, 'east-1 gateway discovered', seen);
    expect(fed.registry.snapshot().clusters.get('east-1')?.gateways).toEqual([{ address: '203.0.113.10', port: 16443 }]);
  });

  it('an explicit gateway in the registration wins over a discovered one', async () => {
    const f = fed.fixtures['east-2'];
    f.apply(service('istio-system', 'istio-eastwestgateway', { type: 'LoadBalancer', labels: { 'topology.istio.io/network': 'net-east' }, ports: [{ name: 'tls', port: 15443 }], ingress: [{ ip: '203.0.113.20' }] }));
    // wait until the source has seen it: the service itself is in the snapshot
    await waitFor(() => fed.registry.snapshot().clusters.get('east-2')?.services.has('istio-system/istio-eastwestgateway') === true, WAIT, 'the gateway service in east-2', seen);
    fed.registry.flush();
    expect(fed.registry.snapshot().clusters.get('east-2')?.gateways).toEqual([{ address: '198.51.100.2', port: 15443 }]);
    expect(fed.registry.status('east-2')?.gatewaysFrom).toBe('registration');
  });
});

describe('metrics', () => {
  it('counts watch events per cluster and reports state', async () => {
    const events = await metricValue(fed.registry, 'meshfed_cluster_events_total', { cluster: 'west-1' });
    expect(events).toBeGreaterThan(0);
    expect(await metricValue(fed.registry, 'meshfed_cluster_state', { cluster: 'west-1', state: 'ready' })).toBe(1);
    expect(await fed.registry.metrics.registry.getSingleMetricAsString('meshfed_cluster_endpoints')).toMatch(/meshfed_cluster_endpoints\{cluster="east-2"\} \d+/);
  });
});
