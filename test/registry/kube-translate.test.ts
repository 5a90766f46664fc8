import { describe, expect, it } from 'vitest';
import type { Endpoint } from '../../src/model/service.js';
import { endpointSchema, serviceSchema } from '../../src/model/service.js';
import {
  deepEqual,
  deepFreeze,
  discoverGateways,
  healthOf,
  sliceServiceKey,
  translateEndpoints,
  translateService,
  translateServiceView,
  type ClusterContext,
  type ObjectLookup,
} from '../../src/registry/kube/translate.js';
import { meshLabels, node, pod, service, slice } from './kube-helpers.js';
import type { KubeObject } from '../fixtures/kube-api.js';

const CLUSTER: ClusterContext = { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a' };

function lookup(objects: KubeObject[]): ObjectLookup {
  const pods = new Map(objects.filter((o) => o.kind === 'Pod').map((o) => [`${o.metadata.namespace ?? ''}/${o.metadata.name}`, o]));
  const nodes = new Map(objects.filter((o) => o.kind === 'Node').map((o) => [o.metadata.name, o]));
  return { pod: (ns, name) => pods.get(`${ns}/${name}`), node: (name) => nodes.get(name) };
}

function only(endpoints: Endpoint[]): Endpoint {
  expect(endpoints).toHaveLength(1);
  const [endpoint] = endpoints;
  if (!endpoint) throw new Error('no endpoint');
  return endpoint;
}

describe('health from EndpointSlice conditions', () => {
  it.each([
    [{}, 'ready'],
    [{ ready: true }, 'ready'],
    [{ ready: true, serving: true }, 'ready'],
    [{ ready: false, serving: true }, 'serving'],
    [{ ready: false, serving: true, terminating: true }, 'terminating'],
    [{ ready: false, serving: false, terminating: true }, 'terminating'],
    [{ ready: false }, 'unready'],
    [{ ready: false, serving: false }, 'unready'],
    [undefined, 'ready'],
    ['garbage', 'ready'],
  ])('%j → %s', (conditions, health) => {
    expect(healthOf(conditions)).toBe(health);
  });
});

describe('endpoints', () => {
  const objects = [
    node('node-a', { region: 'us-east', zone: 'us-east-1b', subzone: 'rack-7' }),
    node('node-bare'),
    pod('shop', 'cart-1', { serviceAccount: 'cart', labels: meshLabels('cart', { version: 'v2' }), node: 'node-a' }),
    pod('shop', 'cart-2', { labels: { app: 'cart' } }),
    pod('shop', 'cart-3', { labels: meshLabels('cart', { 'topology.istio.io/network': 'net-edge' }), node: 'node-a' }),
    pod('shop', 'cart-4', { labels: { app: 'cart', 'security.istio.io/tlsMode': 'disabled' }, node: 'node-bare' }),
  ];

  it.each([
    ['an Istio pod: service account, mtls, labels, node locality', { ip: '10.1.0.1', pod: 'cart-1' }, { address: '10.1.0.1', serviceAccount: 'cart', tlsMode: 'mtls', labels: { app: 'cart', version: 'v2', 'security.istio.io/tlsMode': 'istio' }, locality: { region: 'us-east', zone: 'us-east-1b', subzone: 'rack-7' } }],
    ['a pod without sidecar or service account: plaintext, default', { ip: '10.1.0.2', pod: 'cart-2' }, { serviceAccount: 'default', tlsMode: 'plaintext', labels: { app: 'cart' }, locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' } }],
    ['the network label of a pod', { ip: '10.1.0.3', pod: 'cart-3' }, { network: 'net-edge', tlsMode: 'mtls' }],
    ['tlsMode other than istio is plaintext', { ip: '10.1.0.4', pod: 'cart-4' }, { tlsMode: 'plaintext' }],
    ['a pod not seen yet', { ip: '10.1.0.5', pod: 'cart-9' }, { serviceAccount: 'default', tlsMode: 'plaintext', labels: {} }],
    ['no targetRef at all', { ip: '10.1.0.6' }, { serviceAccount: 'default', tlsMode: 'plaintext', labels: {}, locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' } }],
    ['nodeName on the endpoint wins over the pod', { ip: '10.1.0.7', pod: 'cart-4', node: 'node-a' }, { locality: { region: 'us-east', zone: 'us-east-1b', subzone: 'rack-7' } }],
    ['the slice zone when the node has no topology labels', { ip: '10.1.0.8', pod: 'cart-4', zone: 'us-east-1c' }, { locality: { region: 'us-east', zone: 'us-east-1c', subzone: '' } }],
    ['node labels win over the slice zone', { ip: '10.1.0.9', node: 'node-a', zone: 'us-east-1c' }, { locality: { region: 'us-east', zone: 'us-east-1b', subzone: 'rack-7' } }],
    ['the cluster default when nothing else says', { ip: '10.1.0.10', node: 'node-unknown' }, { locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' } }],
    ['a terminating endpoint', { ip: '10.1.0.11', ready: false, serving: true, terminating: true }, { health: 'terminating' }],
    ['an unready endpoint', { ip: '10.1.0.12', ready: false }, { health: 'unready' }],
  ])('%s', (_what, endpoint, expected) => {
    const result = translateEndpoints([slice('shop', 'cart-x', 'cart', [endpoint])], CLUSTER, lookup(objects));
    const translated = only(result.endpoints);
    expect(translated).toMatchObject(expected);
    expect(translated.ports).toEqual([{ name: 'http', port: 9080, protocol: 'TCP' }]);
    if (!('network' in expected)) expect(translated.network).toBeUndefined();
    // what comes out is a valid model endpoint
    expect(endpointSchema.safeParse(translated).success).toBe(true);
  });

  it('reports the pods and nodes the endpoints refer to, found or not', () => {
    const result = translateEndpoints([slice('shop', 's', 'cart', [{ ip: '10.1.0.1', pod: 'cart-1' }, { ip: '10.1.0.2', pod: 'ghost', node: 'node-x' }])], CLUSTER, lookup(objects));
    expect([...result.pods].sort()).toEqual(['shop/cart-1', 'shop/ghost']);
    expect([...result.nodes].sort()).toEqual(['node-a', 'node-x']);
  });

  it('takes the union of slices, deduplicates addresses keeping the healthier, and sorts', () => {
    const result = translateEndpoints(
      [
        slice('shop', 'cart-a', 'cart', [{ ip: '10.1.0.3', ready: false }, { ip: '10.1.0.1' }]),
        slice('shop', 'cart-b', 'cart', [{ ip: '10.1.0.3', ready: true }, { ip: '10.1.0.2', ready: false, serving: true }, { ip: '10.1.0.1', ready: false }]),
      ],
      CLUSTER,
      lookup([]),
    );
    expect(result.endpoints.map((e) => [e.address, e.health])).toEqual([
      ['10.1.0.1', 'ready'],
      ['10.1.0.2', 'serving'],
      ['10.1.0.3', 'ready'],
    ]);
  });

  it('skips FQDN slices, addresses that are not IPs of the slice family, and bad ports, with reasons', () => {
    const result = translateEndpoints(
      [
        slice('shop', 'fqdn', 'cart', [{ ip: 'cart.example.com' }], { addressType: 'FQDN' }),
        slice('shop', 'v4', 'cart', [{ ip: 'fd00::1' }, { ip: 'not-an-ip' }, { ip: '10.1.0.1' }], { ports: [{ name: 'http', port: 9080 }, { name: 'bad', port: 70000 }] }),
        slice('shop', 'v6', 'cart', [{ ip: 'fd00::2' }], { addressType: 'IPv6' }),
      ],
      CLUSTER,
      lookup([]),
    );
    expect(result.endpoints.map((e) => e.address)).toEqual(['10.1.0.1', 'fd00::2']);
    expect(result.endpoints[0]?.ports).toEqual([{ name: 'http', port: 9080, protocol: 'TCP' }]);
    expect(result.skipped.map((s) => `${s.object}: ${s.reason}`)).toEqual([
      'EndpointSlice shop/fqdn: FQDN slices are not supported (endpoints must be IP addresses)',
      'EndpointSlice shop/v4 ports[1]: port is not a number 1-65535',
      'EndpointSlice shop/v4 endpoints[0]: address "fd00::1" is not an IPv4 address',
      'EndpointSlice shop/v4 endpoints[1]: address "not-an-ip" is not an IPv4 address',
    ]);
  });

  it('survives garbage without throwing', () => {
    const garbage: unknown[] = [null, 42, 'x', [], { addressType: 'IPv4', endpoints: 'nope', ports: {} }, { addressType: 'IPv4', endpoints: [null, { addresses: [7] }, { addresses: ['10.0.0.1'], conditions: 'x', targetRef: 5 }] }];
    const result = translateEndpoints(garbage, CLUSTER, lookup([]));
    expect(result.endpoints.map((e) => e.address)).toEqual(['10.0.0.1']);
    expect(result.skipped.length).toBeGreaterThan(3);
  });
});

describe('services', () => {
  it('translates ports, protocols, appProtocol and labels; resolves a named targetPort from the slices', () => {
    const svc = service('shop', 'cart', {
      labels: { app: 'cart', tier: 'backend' },
      ports: [
        { name: 'http', port: 80, targetPort: 'http-web' },
        { name: 'grpc', port: 9090, targetPort: 19090, appProtocol: 'grpc' },
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'numeric-string', port: 81, targetPort: '8081' },
        { name: 'unresolved', port: 82, targetPort: 'nowhere' },
      ],
    });
    const slices = [slice('shop', 'cart-a', 'cart', [], { ports: [{ name: 'http', port: 8080 }] })];
    const result = translateService(svc, 'east-1', slices);
    if (!('service' in result)) throw new Error(JSON.stringify(result.skipped));
    expect(result.service).toEqual({
      cluster: 'east-1',
      namespace: 'shop',
      name: 'cart',
      labels: { app: 'cart', tier: 'backend' },
      ports: [
        { name: 'http', port: 80, protocol: 'TCP', targetPort: 8080 },
        { name: 'grpc', port: 9090, protocol: 'TCP', targetPort: 19090, appProtocol: 'grpc' },
        { name: 'dns', port: 53, protocol: 'UDP' },
        { name: 'numeric-string', port: 81, protocol: 'TCP', targetPort: 8081 },
        { name: 'unresolved', port: 82, protocol: 'TCP' },
      ],
    });
    expect(serviceSchema.safeParse(result.service).success).toBe(true);
  });

  it.each([
    ['a missing name', { apiVersion: 'v1', kind: 'Service', metadata: { namespace: 'shop' } }, /name "" is not a DNS-1123 label/],
    ['a bad namespace', { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'Shop!' } }, /namespace "Shop!" is not a DNS-1123 label/],
    ['not an object', 'garbage', /not an object/],
  ])('skips a service with %s', (_what, object, reason) => {
    const result = translateService(object, 'east-1');
    expect('service' in result).toBe(false);
    expect(result.skipped[0]?.reason).toMatch(reason);
  });

  it('drops ports and labels Kubernetes would not allow, keeping the rest', () => {
    const svc = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'x', namespace: 'shop', labels: { good: 'yes', 'bad key!': 'v', other: 7 } }, spec: { ports: [{ port: 'eighty' }, { port: 80, protocol: 'QUIC' }, { port: 81 }] } };
    const result = translateService(svc, 'east-1');
    if (!('service' in result)) throw new Error('skipped');
    expect(result.service.labels).toEqual({ good: 'yes' });
    expect(result.service.ports).toEqual([{ name: '', port: 81, protocol: 'TCP' }]);
    expect(result.skipped).toHaveLength(2);
  });

  it('finds the service of a slice by its kubernetes.io/service-name label', () => {
    expect(sliceServiceKey(slice('shop', 'cart-abc', 'cart', []))).toBe('shop/cart');
    expect(sliceServiceKey({ metadata: { name: 'orphan', namespace: 'shop' } })).toBeUndefined();
  });

  it('builds a view of a service and its endpoints', () => {
    const result = translateServiceView(service('shop', 'cart'), [slice('shop', 'cart-a', 'cart', [{ ip: '10.1.0.1', pod: 'p' }])], CLUSTER, lookup([pod('shop', 'p', { serviceAccount: 'cart', labels: meshLabels('cart') })]));
    expect(result.view?.service.name).toBe('cart');
    expect(result.view?.endpoints.map((e) => [e.address, e.serviceAccount, e.tlsMode])).toEqual([['10.1.0.1', 'cart', 'mtls']]);
    expect([...result.pods]).toEqual(['shop/p']);
  });
});

describe('gateway discovery', () => {
  const gatewayService = (labels: Record<string, string>, ingress: ({ ip: string } | { hostname: string })[], ports = [15021, 15443, 15012]): KubeObject =>
    service('istio-system', 'istio-eastwestgateway', { type: 'LoadBalancer', labels: { istio: 'eastwestgateway', ...labels }, ports: ports.map((port) => ({ name: `p${port}`, port })), ingress });

  it.each([
    ['a load-balancer IP on 15443', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [{ ip: '203.0.113.10' }])], [{ address: '203.0.113.10', port: 15443 }]],
    ['a load-balancer hostname', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [{ hostname: 'eastwest.elb.example.com' }])], [{ address: 'eastwest.elb.example.com', port: 15443 }]],
    ['one gateway per ingress', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [{ ip: '203.0.113.11' }, { ip: '203.0.113.10' }])], [{ address: '203.0.113.10', port: 15443 }, { address: '203.0.113.11', port: 15443 }]],
    ['the gatewayPort label', [gatewayService({ 'topology.istio.io/network': 'net-east', 'networking.istio.io/gatewayPort': '16443' }, [{ ip: '203.0.113.10' }], [16443])], [{ address: '203.0.113.10', port: 16443 }]],
    ['a non-numeric gatewayPort label falls back to 15443', [gatewayService({ 'topology.istio.io/network': 'net-east', 'networking.istio.io/gatewayPort': 'tls' }, [{ ip: '203.0.113.10' }])], [{ address: '203.0.113.10', port: 15443 }]],
    ['no gateway when the service lacks the gateway port', [gatewayService({ 'topology.istio.io/network': 'net-east', 'networking.istio.io/gatewayPort': '16443' }, [{ ip: '203.0.113.10' }])], []],
    ['a service without ports is accepted', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [{ ip: '203.0.113.10' }], [])], [{ address: '203.0.113.10', port: 15443 }]],
    ['another network is not ours', [gatewayService({ 'topology.istio.io/network': 'net-west' }, [{ ip: '203.0.113.10' }])], []],
    ['no label, no gateway', [gatewayService({}, [{ ip: '203.0.113.10' }])], []],
    ['no ingress yet', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [])], []],
    ['an ingress that is neither IP nor name', [gatewayService({ 'topology.istio.io/network': 'net-east' }, [{ hostname: 'not a host!' }, { ip: '203.0.113.10' }])], [{ address: '203.0.113.10', port: 15443 }]],
  ])('%s', (_what, services, expected) => {
    expect(discoverGateways(services, 'net-east').gateways).toEqual(expected);
  });
});

describe('comparing and freezing', () => {
  it('deepEqual compares structure, deepFreeze freezes everything', () => {
    expect(deepEqual({ a: [1, { b: 'x' }] }, { a: [1, { b: 'x' }] })).toBe(true);
    expect(deepEqual({ a: [1, { b: 'x' }] }, { a: [1, { b: 'y' }] })).toBe(false);
    expect(deepEqual({ a: 1 }, { a: 1, b: undefined })).toBe(false);
    expect(deepEqual([1], { 0: 1 })).toBe(false);
    const value = deepFreeze({ a: [{ b: 1 }] });
    expect(Object.isFrozen(value.a[0])).toBe(true);
  });
});
