/**
 * The federated views beside split horizon (src/topology): the service catalog, what an east-west gateway forwards
 * to, and the shape proxyless gRPC clients need for weights to hold.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { clusterSchema, type ClusterInput } from '../../src/model/cluster.js';
import { formatLocality } from '../../src/model/locality.js';
import { endpointSchema, serviceSchema, servicePortSchema } from '../../src/model/service.js';
import type { ClusterState, ClusterView, FederatedSnapshot } from '../../src/registry/snapshot.js';
import type { ServiceView } from '../../src/registry/source.js';
import { federatedCatalog, forProxylessClients, gatewayAssignment, loadAssignment, type LoadAssignment } from '../../src/topology/index.js';

interface ServiceSpec {
  namespace?: string;
  name: string;
  ports: z.input<typeof servicePortSchema>[];
  endpoints: (string | z.input<typeof endpointSchema>)[];
}

interface ClusterSpec extends ClusterInput {
  state?: ClusterState;
  services?: ServiceSpec[];
}

function snapshot(...specs: ClusterSpec[]): FederatedSnapshot {
  const clusters = new Map<string, ClusterView>();
  for (const { state = 'ready', services = [], ...input } of specs) {
    const cluster = clusterSchema.parse(input);
    const views = new Map<string, ServiceView>();
    if (state !== 'evicted') {
      for (const s of services) {
        const service = serviceSchema.parse({ cluster: cluster.name, namespace: s.namespace ?? 'ns', name: s.name, ports: s.ports });
        views.set(`${service.namespace}/${service.name}`, { service, endpoints: s.endpoints.map((e) => endpointSchema.parse(typeof e === 'string' ? { address: e } : e)) });
      }
    }
    clusters.set(cluster.name, { cluster, gateways: cluster.gateways, state, services: views });
  }
  return { version: 1, createdAt: new Date(0), clusters };
}

const render = (a: LoadAssignment): string[] =>
  a.groups.flatMap((g) => [`p${g.priority} ${formatLocality(g.locality) || '-'} w${g.weight}`, ...g.endpoints.map((e) => `  ${e.address}:${e.port} w${e.weight} ${e.health} ${e.via.kind}`)]);

describe('federatedCatalog', () => {
  const snap = snapshot(
    {
      name: 'c1',
      network: 'n1',
      services: [
        { name: 'reviews', ports: [{ name: 'http', port: 9080 }], endpoints: [{ address: '10.1.0.1', serviceAccount: 'reviews' }] },
        { name: 'dns', ports: [{ name: 'dns', port: 53, protocol: 'UDP' }], endpoints: ['10.1.0.9'] },
      ],
    },
    {
      name: 'c2',
      network: 'n2',
      services: [
        {
          name: 'reviews',
          ports: [
            { name: '', port: 9080 },
            { name: 'grpc', port: 9090 },
          ],
          endpoints: [
            { address: '10.2.0.1', serviceAccount: 'reviews-v2' },
            { address: '10.2.0.2', serviceAccount: 'legacy', tlsMode: 'plaintext' },
          ],
        },
      ],
    },
    { name: 'c3', network: 'n3', state: 'evicted', services: [{ name: 'ratings', ports: [{ port: 80 }], endpoints: ['10.3.0.1'] }] },
  );

  it('joins a service across clusters by namespace and name: union of TCP ports, clusters, mTLS identities', () => {
    const catalog = federatedCatalog(snap);
    expect(catalog.services).toEqual([
      {
        key: 'ns/reviews',
        namespace: 'ns',
        name: 'reviews',
        host: 'reviews.ns.svc.cluster.local',
        ports: [
          { port: 9080, name: 'http' },
          { port: 9090, name: 'grpc' },
        ],
        clusters: ['c1', 'c2'],
        identities: ['ns/reviews', 'ns/reviews-v2'],
      },
    ]);
    expect(catalog.byHost.get('reviews.ns.svc.cluster.local')?.key).toBe('ns/reviews');
    expect(catalog.byKey.has('ns/dns')).toBe(false); // UDP only: nothing xDS can route
    expect(catalog.byKey.has('ns/ratings')).toBe(false); // only in an evicted cluster
  });

  it('uses the domain suffix it is given', () => {
    expect(federatedCatalog(snap, 'mesh.example').services.map((s) => s.host)).toEqual(['reviews.ns.svc.mesh.example']);
  });
});

describe('gatewayAssignment', () => {
  const snap = snapshot(
    {
      name: 'c1',
      network: 'n1',
      region: 'r1',
      zone: 'z1',
      gateways: [{ address: '192.0.2.1' }],
      services: [
        {
          name: 'reviews',
          ports: [{ name: 'http', port: 9080, targetPort: 8080 }],
          endpoints: [
            { address: '10.1.0.1' },
            { address: '10.1.0.2', locality: { region: 'r1', zone: 'z2' } },
            { address: '10.1.0.3', tlsMode: 'plaintext' },
            { address: '10.1.0.4', health: 'unready' },
          ],
        },
      ],
    },
    { name: 'c2', network: 'n1', region: 'r1', zone: 'z1', services: [{ name: 'reviews', ports: [{ name: 'http', port: 9080 }], endpoints: ['10.2.0.1'] }] },
  );

  it("holds only the gateway cluster's own mTLS endpoints, direct, prioritised from the cluster's locality", () => {
    expect(render(gatewayAssignment(snap, 'c1', 'ns/reviews', 9080))).toEqual([
      'p0 r1/z1 w1',
      '  10.1.0.1:8080 w1 HEALTHY direct',
      '  10.1.0.4:8080 w1 UNHEALTHY direct',
      'p1 r1/z2 w1',
      '  10.1.0.2:8080 w1 HEALTHY direct',
    ]);
  });

  it('is empty for a cluster that is unknown or lacks the service', () => {
    expect(gatewayAssignment(snap, 'nowhere', 'ns/reviews', 9080).groups).toEqual([]);
    expect(gatewayAssignment(snap, 'c2', 'ns/ratings', 9080).groups).toEqual([]);
  });
});

describe('forProxylessClients', () => {
  // the proxy on n1 in r1/z1; c2 (n2, same locality) stands behind one gateway for three endpoints
  const snap = snapshot(
    { name: 'c1', network: 'n1', region: 'r1', zone: 'z1', services: [{ name: 'reviews', ports: [{ port: 80 }], endpoints: ['10.1.0.1', '10.1.0.2'] }] },
    {
      name: 'c2',
      network: 'n2',
      region: 'r1',
      zone: 'z1',
      gateways: [{ address: '192.0.2.2' }],
      services: [{ name: 'reviews', ports: [{ port: 80 }], endpoints: ['10.2.0.1', '10.2.0.2', '10.2.0.3'] }],
    },
  );
  const proxy = { network: 'n1', locality: { region: 'r1', zone: 'z1' } };

  it('gives a gateway that shares a locality with other endpoints a group of its own, weighing what it stands for', () => {
    const envoy = loadAssignment(snap, proxy, 'ns/reviews', 80);
    expect(render(envoy)).toEqual(['p0 r1/z1 w5', '  10.1.0.1:80 w1 HEALTHY direct', '  10.1.0.2:80 w1 HEALTHY direct', '  192.0.2.2:15443 w3 HEALTHY gateway']);
    const grpc = forProxylessClients(envoy);
    expect(render(grpc)).toEqual([
      'p0 r1/z1 w2',
      '  10.1.0.1:80 w1 HEALTHY direct',
      '  10.1.0.2:80 w1 HEALTHY direct',
      'p0 r1/z1/~via~192.0.2.2:15443 w3',
      '  192.0.2.2:15443 w3 HEALTHY gateway',
    ]);
    // the (locality, priority) pairs stay unique, as grpc requires
    const pairs = grpc.groups.map((g) => `${formatLocality(g.locality)}|${String(g.priority)}`);
    expect(new Set(pairs).size).toBe(pairs.length);
  });

  it('leaves uniformly weighted assignments untouched', () => {
    const onlyDirect = loadAssignment(snap, { network: undefined, locality: { region: 'r1', zone: 'z1' } }, 'ns/reviews', 80);
    expect(forProxylessClients(onlyDirect)).toBe(onlyDirect);
  });
});
