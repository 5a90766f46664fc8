/**
 * The federation provider (src/xds/federation-provider.ts) over a live registry of static clusters: which resources
 * each kind of proxy gets, that one view's bytes are built once and shared, that versions move only when bytes do,
 * and which types a change announces. Plus `xdsDump`, which reads through the same provider.
 */
import { afterEach, describe, expect, it } from 'vitest';
import { clusterSchema, type ClusterInput } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import type { NodeIdentity } from '../../src/xds/ads-server.js';
import { xdsDump } from '../../src/xds/dump.js';
import { MESSAGE_NAME, TYPE_URL, decodeToObject, envoyType } from '../../src/xds/envoy-protos.js';
import { virtualDestinationSchema } from '../../src/model/virtual-destination.js';
import { FederationXds, proxyKind } from '../../src/xds/federation-provider.js';
import { decodeClusterLoadAssignment } from '../../src/xds/resources/endpoints.js';
import { decodeGatewayListener, gatewayListenerChains } from '../../src/xds/resources/gateway-listener.js';
import { clusterUpstreamTlsContext, decodeSidecarCluster } from '../../src/xds/resources/sidecar-cluster.js';

const REVIEWS = 'reviews.ns.svc.cluster.local';
const RATINGS = 'ratings.ns.svc.cluster.local';

interface Fed {
  registry: Registry;
  provider: FederationXds;
  sources: Map<string, StaticSource>;
  announced: string[];
  /** the names each announcement came with (undefined: any resource may have changed) */
  named: (string[] | undefined)[];
}

const open: Fed[] = [];
afterEach(async () => {
  for (const f of open.splice(0)) {
    f.provider.close();
    await f.registry.close();
  }
});

const reviews = (addresses: string[], health: 'ready' | 'unready' = 'ready') =>
  staticServiceSchema.parse({ namespace: 'ns', name: 'reviews', ports: [{ name: 'http', port: 9080 }], endpoints: addresses.map((address) => ({ address, serviceAccount: 'reviews', health })) });
const ratings = (addresses: string[]) =>
  staticServiceSchema.parse({
    namespace: 'ns',
    name: 'ratings',
    ports: [
      { name: 'http', port: 8080 },
      { name: 'grpc', port: 9090 },
    ],
    endpoints: addresses.map((address) => ({ address })),
  });

const CLUSTERS: (ClusterInput & { services: ReturnType<typeof reviews>[] })[] = [
  { name: 'c1', network: 'n1', region: 'r1', zone: 'z1', gateways: [{ address: '192.0.2.1' }], services: [reviews(['10.1.0.1', '10.1.0.2']), ratings(['10.1.0.9'])] },
  { name: 'c2', network: 'n2', region: 'r2', zone: 'z1', gateways: [{ address: '192.0.2.2' }], services: [reviews(['10.2.0.1'])] },
];

function federation(options: ConstructorParameters<typeof FederationXds>[1] = {}): Fed {
  const registry = new Registry({ debounceMs: 5, maxDelayMs: 50 });
  const sources = new Map<string, StaticSource>();
  for (const { services, ...input } of CLUSTERS) {
    const source = new StaticSource(input.name, services);
    sources.set(input.name, source);
    registry.add(clusterSchema.parse(input), source);
  }
  registry.flush();
  const provider = new FederationXds(registry, { debounceMs: 5, maxDelayMs: 50, trustDomain: 'example.org', ...options });
  const announced: string[] = [];
  const named: (string[] | undefined)[] = [];
  provider.subscribe((typeUrl, names) => {
    announced.push(typeUrl);
    named.push(names && [...names].sort());
  });
  const fed = { registry, provider, sources, announced, named };
  open.push(fed);
  return fed;
}

const node = (id: string, extra: Partial<NodeIdentity> = {}): NodeIdentity => ({ id, locality: { region: 'r1', zone: 'z1', subzone: '' }, cluster: 'c1', network: 'n1', generator: 'grpc', ...extra });

/** Changes c1's services and waits for the provider to announce it. */
async function change(fed: Fed, cluster: string, services: ReturnType<typeof reviews>[]): Promise<void> {
  const before = fed.announced.length;
  fed.sources.get(cluster)?.update(services);
  fed.registry.flush();
  const deadline = Date.now() + 5000;
  while (fed.announced.length === before) {
    if (Date.now() > deadline) throw new Error('no announcement');
    await new Promise((done) => setTimeout(done, 5));
  }
}

const endpointsOf = (bytes: Uint8Array): string[] =>
  (decodeClusterLoadAssignment(bytes).endpoints ?? []).flatMap((g) => g.lb_endpoints.map((e) => `${g.priority ?? 0}:${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value ?? 0}`));

describe('proxy kinds', () => {
  it("follows Istio's conventions: router~ is a gateway, GENERATOR=grpc or a gRPC user agent is proxyless, envoy is a sidecar", () => {
    expect(proxyKind(node('router~10.0.0.1~gw.istio-system~cluster.local', { generator: undefined }))).toBe('gateway');
    expect(proxyKind(node('sidecar~10.0.0.1~app.ns~ns.svc.cluster.local'))).toBe('proxyless');
    expect(proxyKind({ id: 'x', locality: { region: '', zone: '', subzone: '' }, userAgent: 'gRPC Node' })).toBe('proxyless');
    expect(proxyKind({ id: 'sidecar~10.0.0.1~app.ns~ns.svc.cluster.local', locality: { region: '', zone: '', subzone: '' }, userAgent: 'envoy' })).toBe('sidecar');
  });
});

describe('proxyless resources', () => {
  it('serves listeners, routes, clusters and split-horizon endpoints for the names grpc asks for', () => {
    const { provider } = federation();
    const n = node('a');
    const lds = provider.resources(n, TYPE_URL.listener, [`${REVIEWS}:9080`, REVIEWS, RATINGS, 'nope.ns.svc.cluster.local:1']);
    // REVIEWS alone works (one port); RATINGS alone does not (two ports), nor an unknown service
    expect(lds?.resources.map((r) => r.name)).toEqual([`${REVIEWS}:9080`, REVIEWS]);
    expect(lds?.resources.every((r) => r.typeUrl === TYPE_URL.listener)).toBe(true);
    const rds = provider.resources(n, TYPE_URL.routeConfiguration, [`${RATINGS}:9090`]);
    const rc = decodeToObject(envoyType(MESSAGE_NAME.routeConfiguration), rds?.resources[0]?.value ?? new Uint8Array()) as { virtual_hosts: { domains: string[]; routes: { route: { cluster: string } }[] }[] };
    expect(rc.virtual_hosts[0]?.domains).toEqual([RATINGS, `${RATINGS}:9090`]);
    expect(rc.virtual_hosts[0]?.routes[0]?.route.cluster).toBe(`outbound|9090||${RATINGS}`);
    const cds = provider.resources(n, TYPE_URL.cluster, []);
    expect(cds?.resources.map((r) => r.name)).toEqual([`outbound|8080||${RATINGS}`, `outbound|9090||${RATINGS}`, `outbound|9080||${REVIEWS}`]);
    const eds = provider.resources(n, TYPE_URL.clusterLoadAssignment, [`outbound|9080||${REVIEWS}`]);
    // c1's two endpoints direct at priority 0; c2 (other network, other region) through its gateway at priority 1
    expect(endpointsOf(eds?.resources[0]?.value ?? new Uint8Array())).toEqual(['0:10.1.0.1:9080', '0:10.1.0.2:9080', '1:192.0.2.2:15443']);
  });

  it('builds each view once: proxies that share network and locality get the very same bytes', () => {
    const { provider } = federation();
    const name = `outbound|9080||${REVIEWS}`;
    const a = provider.resources(node('a'), TYPE_URL.clusterLoadAssignment, [name])?.resources[0];
    const b = provider.resources(node('b', { cluster: 'c1-other' }), TYPE_URL.clusterLoadAssignment, [name])?.resources[0];
    const c = provider.resources(node('c', { network: 'n2', locality: { region: 'r2', zone: 'z1', subzone: '' } }), TYPE_URL.clusterLoadAssignment, [name])?.resources[0];
    expect(a?.value).toBe(b?.value);
    expect(c?.value).not.toBe(a?.value);
    expect(endpointsOf(c?.value ?? new Uint8Array())).toEqual(['0:10.2.0.1:9080', '1:192.0.2.1:15443']);
  });
});

describe('changes', () => {
  it("an endpoint change announces EDS only and moves only that service's version", async () => {
    const fed = federation();
    const n = node('a');
    const reviewsName = `outbound|9080||${REVIEWS}`;
    const ratingsName = `outbound|8080||${RATINGS}`;
    const before = { reviews: fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [reviewsName]), ratings: fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [ratingsName]) };
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.3']), ratings(['10.1.0.9'])]);
    expect(fed.announced).toEqual([TYPE_URL.clusterLoadAssignment]);
    const after = { reviews: fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [reviewsName]), ratings: fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [ratingsName]) };
    expect(after.reviews?.version).not.toBe(before.reviews?.version);
    expect(endpointsOf(after.reviews?.resources[0]?.value ?? new Uint8Array())).toContain('0:10.1.0.3:9080');
    expect(after.ratings?.version).toBe(before.ratings?.version);
  });

  it("an endpoint change names the changed services' resources; a catalog change names none", async () => {
    const fed = federation();
    const reviewsName = `outbound|9080||${REVIEWS}`;
    const ratingsName = `outbound|8080||${RATINGS}`;
    const gw = node('router~10.1.0.100~gw.istio-system~cluster.local', { generator: undefined });
    fed.provider.resources(node('a'), TYPE_URL.clusterLoadAssignment, [reviewsName, ratingsName]);
    fed.provider.resources(gw, TYPE_URL.clusterLoadAssignment, [`outbound_.9080_._.${REVIEWS}`]);
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.3']), ratings(['10.1.0.9'])]);
    expect(fed.named).toEqual([[`outbound_.9080_._.${REVIEWS}`, reviewsName]]);
    const extra = staticServiceSchema.parse({ namespace: 'ns', name: 'details', ports: [{ port: 9080 }], endpoints: [{ address: '10.1.0.20' }] });
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.3']), ratings(['10.1.0.9']), extra]);
    expect(fed.named.slice(1)).toEqual([undefined, undefined, undefined, undefined]);
  });

  it('hands out the same set object while its resources stay the same; a set of several has a short version that moves with them', async () => {
    const fed = federation();
    const n = node('a');
    const reviewsName = `outbound|9080||${REVIEWS}`;
    const ratingsName = `outbound|8080||${RATINGS}`;
    const names = [reviewsName, ratingsName];
    const one = fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [ratingsName]);
    const both = fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, names);
    expect(fed.provider.resources(node('b'), TYPE_URL.clusterLoadAssignment, [ratingsName])).toBe(one);
    expect(fed.provider.resources(node('b'), TYPE_URL.clusterLoadAssignment, [...names])).toBe(both);
    expect(both?.resources.map((r) => r.name)).toEqual(names);
    expect(both?.version.length).toBeLessThanOrEqual(22);
    // reviews changes: ratings' set stays the very same object, the pair gets a new version
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.3']), ratings(['10.1.0.9'])]);
    expect(fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, [ratingsName])).toBe(one);
    const after = fed.provider.resources(n, TYPE_URL.clusterLoadAssignment, names);
    expect(after?.version).not.toBe(both?.version);
    expect(after?.resources[1]).toBe(both?.resources[1]);
    // a change that leaves both the same keeps the pair's set (and its version)
    const far = node('far', { network: 'n2', cluster: 'c2', locality: { region: 'r2', zone: 'z1', subzone: '' } });
    const farBoth = fed.provider.resources(far, TYPE_URL.clusterLoadAssignment, names);
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.7']), ratings(['10.1.0.9'])]);
    expect(fed.provider.resources(far, TYPE_URL.clusterLoadAssignment, names)).toBe(farBoth);
  });

  it('a change that leaves a view the same keeps its version (no push)', async () => {
    const fed = federation();
    const far = node('far', { network: 'n2', cluster: 'c2', locality: { region: 'r2', zone: 'z1', subzone: '' } });
    const name = `outbound|9080||${REVIEWS}`;
    const before = fed.provider.resources(far, TYPE_URL.clusterLoadAssignment, [name]);
    // c1 swaps one endpoint for another: a proxy on n2 sees only c1's gateway, weighing two endpoints either way
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.7']), ratings(['10.1.0.9'])]);
    expect(fed.provider.resources(far, TYPE_URL.clusterLoadAssignment, [name])?.version).toBe(before?.version);
  });

  it('a new service announces every type, and wildcard listeners and clusters include it', async () => {
    const fed = federation();
    const n = node('a');
    const cdsBefore = fed.provider.resources(n, TYPE_URL.cluster, []);
    const extra = staticServiceSchema.parse({ namespace: 'ns', name: 'details', ports: [{ port: 9080 }], endpoints: [{ address: '10.1.0.20' }] });
    await change(fed, 'c1', [reviews(['10.1.0.1', '10.1.0.2']), ratings(['10.1.0.9']), extra]);
    expect(fed.announced).toEqual([TYPE_URL.cluster, TYPE_URL.clusterLoadAssignment, TYPE_URL.listener, TYPE_URL.routeConfiguration]);
    const cdsAfter = fed.provider.resources(n, TYPE_URL.cluster, []);
    expect(cdsAfter?.version).not.toBe(cdsBefore?.version);
    expect(cdsAfter?.resources.map((r) => r.name)).toContain('outbound|9080||details.ns.svc.cluster.local');
    expect(fed.provider.resources(n, TYPE_URL.listener, [])?.resources.map((r) => r.name)).toContain('details.ns.svc.cluster.local:9080');
  });

  it('coalesces a burst of changes into one announcement', async () => {
    const fed = federation({ debounceMs: 50, maxDelayMs: 1000 });
    for (let i = 0; i < 5; i++) {
      fed.sources.get('c1')?.update([reviews(['10.1.0.1', `10.1.0.${String(30 + i)}`]), ratings(['10.1.0.9'])]);
      fed.registry.flush();
    }
    await new Promise((done) => setTimeout(done, 300));
    expect(fed.announced).toEqual([TYPE_URL.clusterLoadAssignment]);
  });
});

describe('gateways and sidecars', () => {
  it("a gateway gets one 15443 listener with a chain per local service port and only its own cluster's endpoints", () => {
    const { provider } = federation();
    const gw = node('router~192.0.2.2~gw.istio-system~cluster.local', { cluster: 'c2', network: 'n2', generator: undefined });
    const lds = provider.resources(gw, TYPE_URL.listener, []);
    expect(lds?.resources.map((r) => r.name)).toEqual(['0.0.0.0_15443']);
    const chains = gatewayListenerChains(decodeGatewayListener(lds?.resources[0]?.value ?? new Uint8Array()));
    expect(chains).toEqual([{ serverNames: [`outbound_.9080_._.${REVIEWS}`, REVIEWS], cluster: `outbound_.9080_._.${REVIEWS}` }]);
    const cds = provider.resources(gw, TYPE_URL.cluster, []);
    expect(cds?.resources.map((r) => r.name)).toEqual([`outbound_.9080_._.${REVIEWS}`]);
    const eds = provider.resources(gw, TYPE_URL.clusterLoadAssignment, [`outbound_.9080_._.${REVIEWS}`, `outbound_.8080_._.${RATINGS}`]);
    // ratings does not run in c2: the gateway has no cluster for it
    expect(eds?.resources.map((r) => r.name)).toEqual([`outbound_.9080_._.${REVIEWS}`]);
    expect(endpointsOf(eds?.resources[0]?.value ?? new Uint8Array())).toEqual(['0:10.2.0.1:9080']);
  });

  it("a virtual destination's hostname is served like a service's, and its gateway chains lead to the local backends only", () => {
    const vd = virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ namespace: 'ns', name: 'reviews' }] });
    const { provider } = federation({ virtualDestinations: [{ name: 'reviews', spec: vd }] });
    const client = node('a');
    expect(provider.resources(client, TYPE_URL.listener, ['reviews.global'])?.resources.map((r) => r.name)).toEqual(['reviews.global']);
    const eds = provider.resources(client, TYPE_URL.clusterLoadAssignment, ['outbound|9080||reviews.global']);
    // the backends of both clusters, c2's through its gateway, in the VD's locality tiers
    expect(endpointsOf(eds?.resources[0]?.value ?? new Uint8Array())).toEqual(['0:10.1.0.1:9080', '0:10.1.0.2:9080', '1:192.0.2.2:15443']);
    const gw = node('router~192.0.2.2~gw.istio-system~cluster.local', { cluster: 'c2', network: 'n2', generator: undefined });
    const chains = gatewayListenerChains(decodeGatewayListener(provider.resources(gw, TYPE_URL.listener, [])?.resources[0]?.value ?? new Uint8Array()));
    expect(chains).toContainEqual({ serverNames: ['outbound_.9080_._.reviews.global', 'reviews.global'], cluster: 'outbound_.9080_._.reviews.global' });
    const local = provider.resources(gw, TYPE_URL.clusterLoadAssignment, ['outbound_.9080_._.reviews.global']);
    expect(endpointsOf(local?.resources[0]?.value ?? new Uint8Array())).toEqual(['0:10.2.0.1:9080']);
  });

  it('a gateway of a cluster without services gets no listener (Envoy refuses one without filter chains)', () => {
    const { provider } = federation();
    const gw = node('router~192.0.2.9~gw.istio-system~cluster.local', { cluster: 'elsewhere', network: 'n9', generator: undefined });
    expect(provider.resources(gw, TYPE_URL.listener, [])?.resources).toEqual([]);
    expect(provider.resources(gw, TYPE_URL.listener, ['0.0.0.0_15443'])?.resources).toEqual([]);
  });

  it("an Envoy sidecar's clusters carry Istio mTLS: SNI outbound_.PORT_._.HOST and the service's SPIFFE IDs", () => {
    const { provider } = federation();
    const sidecar = node('sidecar~10.1.0.50~app.ns~ns.svc.cluster.local', { generator: undefined, userAgent: 'envoy' });
    const cds = provider.resources(sidecar, TYPE_URL.cluster, [`outbound|9080||${REVIEWS}`]);
    const tls = clusterUpstreamTlsContext(decodeSidecarCluster(cds?.resources[0]?.value ?? new Uint8Array()));
    expect(tls?.sni).toBe(`outbound_.9080_._.${REVIEWS}`);
    expect(JSON.stringify(tls)).toContain('spiffe://example.org/ns/ns/sa/reviews');
    expect(provider.resources(sidecar, TYPE_URL.listener, [])).toBeUndefined();
  });
});

describe('xdsDump', () => {
  it('decodes what the provider serves, nested Anys included', () => {
    const { provider } = federation();
    const dump = xdsDump(provider, { kind: 'proxyless', cluster: 'c2', network: 'n2', region: 'r2', zone: 'z1', subzone: '' });
    expect(dump.listeners.resources).toHaveLength(3);
    expect(JSON.stringify(dump.listeners.resources[0])).toContain('"@type":"type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager"');
    expect(dump.routes.resources).toHaveLength(3);
    expect(dump.clusters.resources).toHaveLength(3);
    const reviewsEndpoints = dump.endpoints.resources.find((r) => (r as { cluster_name: string }).cluster_name === `outbound|9080||${REVIEWS}`);
    expect(JSON.stringify(reviewsEndpoints)).toContain('192.0.2.1');
    expect(JSON.stringify(reviewsEndpoints)).toContain('10.2.0.1');
    expect(JSON.stringify(reviewsEndpoints)).not.toContain('10.1.0.1');
  });
});
