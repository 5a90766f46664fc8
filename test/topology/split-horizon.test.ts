/**
 * Split-horizon rules (src/topology), table-driven. Snapshots are built from the model schemas, not the registry.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { clusterSchema, type ClusterInput } from '../../src/model/cluster.js';
import { formatLocality, type Locality } from '../../src/model/locality.js';
import { endpointSchema, serviceSchema, servicePortSchema } from '../../src/model/service.js';
import type { ClusterState, ClusterView, FederatedSnapshot } from '../../src/registry/snapshot.js';
import type { ServiceView } from '../../src/registry/source.js';
import { expectValidForXds } from './xds-validity.js';
import { indexGateways, lcm, loadAssignment, localityPriority, type LoadAssignment, type ProxyView } from '../../src/topology/index.js';

const SERVICE = 'ns/example';
const PORT = 80;

type EndpointInput = z.input<typeof endpointSchema>;
type ServicePortInput = z.input<typeof servicePortSchema>;

interface ClusterSpec extends Omit<ClusterInput, 'gateways'> {
  gateways?: (string | { address: string; port?: number })[];
  state?: ClusterState;
  /** addresses of its gateways that meshfed's probes find down */
  down?: string[];
  /** endpoints of ns/example; undefined: the cluster does not have the service */
  endpoints?: (string | EndpointInput)[];
  ports?: ServicePortInput[];
}

const DEFAULT_PORTS: ServicePortInput[] = [{ name: 'http', port: PORT, targetPort: 8080 }];

function clusterView(spec: ClusterSpec): ClusterView {
  const { state = 'ready', endpoints, ports = DEFAULT_PORTS, gateways = [], down = [], ...input } = spec;
  const cluster = clusterSchema.parse({ ...input, gateways: gateways.map((g) => (typeof g === 'string' ? { address: g } : g)) });
  const services = new Map<string, ServiceView>();
  if (endpoints && state !== 'evicted') {
    const service = serviceSchema.parse({ cluster: cluster.name, namespace: 'ns', name: 'example', ports });
    services.set(SERVICE, Object.freeze({ service, endpoints: endpoints.map((e) => endpointSchema.parse(typeof e === 'string' ? { address: e } : e)) }));
  }
  const unreachableGateways = cluster.gateways.filter((g) => down.includes(g.address)).map((g) => ({ address: g.address, port: g.port, reason: 'connect ECONNREFUSED', since: '2026-01-01T00:00:00.000Z' }));
  return Object.freeze({ cluster, gateways: cluster.gateways, state, services, ...(unreachableGateways.length > 0 ? { unreachableGateways } : {}) });
}

function snapshot(...specs: ClusterSpec[]): FederatedSnapshot {
  return Object.freeze({ version: 1, createdAt: new Date(0), clusters: new Map(specs.map((s) => [s.name, clusterView(s)])) });
}

const proxyOn = (network: string | undefined, locality: Partial<Locality> = {}): ProxyView => ({ network, locality });

/** One line per group (`p<priority> <locality> w<weight>`) and one per endpoint, indented. */
function render(a: LoadAssignment): string[] {
  return a.groups.flatMap((g) => [
    `p${g.priority} ${formatLocality(g.locality) || '-'} w${g.weight}`,
    ...g.endpoints.map((e) => {
      const via = e.via.kind === 'gateway' ? ` via ${e.via.network}[${e.via.clusters.join(',')}]x${e.via.endpoints}` : '';
      return `  ${e.address}:${e.port} w${e.weight} ${e.health}${via}`;
    }),
  ]);
}

const net = (name: string, network: string, extra: Partial<ClusterSpec> = {}): ClusterSpec => ({ name, network, ...extra });

interface Case {
  name: string;
  clusters: ClusterSpec[];
  proxy: ProxyView;
  want: string[];
  scaleFactor?: number;
  dropped?: string[];
  skippedGateways?: string[];
}

const cases: Case[] = [
  {
    name: 'mixed networks: local direct, remote through its gateway, gateway-less network direct',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1', '10.0.0.2'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.10'], endpoints: ['10.1.0.1', '10.1.0.2', '10.1.0.3'] }),
      net('c-c', 'net-c', { endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w6', '  10.0.0.1:8080 w1 HEALTHY', '  10.0.0.2:8080 w1 HEALTHY', '  10.2.0.1:8080 w1 HEALTHY', '  192.0.2.10:15443 w3 HEALTHY via net-b[c-b]x3'],
    scaleFactor: 1,
  },
  {
    name: 'mixed networks seen from the gateway network: the gateway-less remote network stays direct',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1', '10.0.0.2'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.10'], endpoints: ['10.1.0.1'] }),
    ],
    proxy: proxyOn('net-b'),
    want: ['p0 - w3', '  10.0.0.1:8080 w1 HEALTHY', '  10.0.0.2:8080 w1 HEALTHY', '  10.1.0.1:8080 w1 HEALTHY'],
  },
  {
    name: 'several gateways per network: weights divided, scaled by LCM(1, 3) = 3',
    clusters: [
      net('c-a', 'net-a', { gateways: ['192.0.2.1'], endpoints: ['10.0.0.1', '10.0.0.2'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21', '192.0.2.22', '192.0.2.23'], endpoints: ['10.1.0.1', '10.1.0.2'] }),
      net('c-c', 'net-c', { endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-c'),
    want: [
      'p0 - w15',
      '  10.2.0.1:8080 w3 HEALTHY',
      '  192.0.2.1:15443 w6 HEALTHY via net-a[c-a]x2',
      '  192.0.2.21:15443 w2 HEALTHY via net-b[c-b]x2',
      '  192.0.2.22:15443 w2 HEALTHY via net-b[c-b]x2',
      '  192.0.2.23:15443 w2 HEALTHY via net-b[c-b]x2',
    ],
    scaleFactor: 3,
  },
  {
    name: "a cluster without its own gateway falls back to its network's gateways",
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b1', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-b2', 'net-b', { endpoints: ['10.1.1.1', '10.1.1.2'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w4', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.21:15443 w3 HEALTHY via net-b[c-b1,c-b2]x3'],
  },
  {
    name: "a cluster with its own gateway uses only its own, not its network's others (LCM of 2 per network)",
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b1', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-b2', 'net-b', { gateways: ['192.0.2.22'], endpoints: ['10.1.1.1', '10.1.1.2'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w8', '  10.0.0.1:8080 w2 HEALTHY', '  192.0.2.21:15443 w2 HEALTHY via net-b[c-b1]x1', '  192.0.2.22:15443 w4 HEALTHY via net-b[c-b2]x2'],
    scaleFactor: 2,
  },
  {
    name: 'networks without gateways: everything direct, no scaling',
    clusters: [net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }), net('c-b', 'net-b', { endpoints: ['10.1.0.1'] }), net('c-c', 'net-c', { endpoints: ['10.2.0.1'] })],
    proxy: proxyOn('net-a'),
    want: ['p0 - w3', '  10.0.0.1:8080 w1 HEALTHY', '  10.1.0.1:8080 w1 HEALTHY', '  10.2.0.1:8080 w1 HEALTHY'],
    scaleFactor: 1,
  },
  {
    name: "a proxy with no network sees every endpoint direct (Istio's InNetwork: empty matches all), weights still scaled",
    clusters: [
      net('c-a', 'net-a', { gateways: ['192.0.2.1', '192.0.2.2'], endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1', { address: '10.1.0.2', tlsMode: 'plaintext' }] }),
    ],
    proxy: proxyOn(undefined),
    want: ['p0 - w6', '  10.0.0.1:8080 w2 HEALTHY', '  10.1.0.1:8080 w2 HEALTHY', '  10.1.0.2:8080 w2 HEALTHY'],
    scaleFactor: 2,
  },
  {
    name: 'a proxy with an empty network string is a proxy with no network',
    clusters: [net('c-b', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] })],
    proxy: proxyOn(''),
    want: ['p0 - w1', '  10.1.0.1:8080 w1 HEALTHY'],
  },
  {
    name: 'IPv4 and IPv6 gateways share a network; a hostname gateway is skipped and not counted',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['fd00::1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21', '2001:db8::21', { address: 'ew.example.com', port: 443 }], endpoints: ['10.1.0.1', 'fd00:1::2'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w6', '  fd00::1:8080 w2 HEALTHY', '  192.0.2.21:15443 w2 HEALTHY via net-b[c-b]x2', '  2001:db8::21:15443 w2 HEALTHY via net-b[c-b]x2'],
    scaleFactor: 2,
    skippedGateways: ['c-b ew.example.com:443 hostname'],
  },
  {
    name: 'a network whose only gateway is a hostname has no usable gateway: its endpoints stay direct',
    clusters: [net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }), net('c-b', 'net-b', { gateways: ['ew.example.com'], endpoints: ['10.1.0.1'] })],
    proxy: proxyOn('net-a'),
    want: ['p0 - w2', '  10.0.0.1:8080 w1 HEALTHY', '  10.1.0.1:8080 w1 HEALTHY'],
    skippedGateways: ['c-b ew.example.com:15443 hostname'],
  },
  {
    name: 'plaintext endpoints: never through a gateway; direct locally and on gateway-less networks',
    clusters: [
      net('c-a', 'net-a', { endpoints: [{ address: '10.0.0.1', tlsMode: 'plaintext' }] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1', { address: '10.1.0.2', tlsMode: 'plaintext' }] }),
      net('c-c', 'net-c', { endpoints: [{ address: '10.2.0.1', tlsMode: 'plaintext' }] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w3', '  10.0.0.1:8080 w1 HEALTHY', '  10.2.0.1:8080 w1 HEALTHY', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1'],
    dropped: ['c-b 10.1.0.2:8080 plaintext-cross-network'],
  },
  {
    name: 'a remote network made only of plaintext endpoints shows no gateway at all',
    clusters: [net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }), net('c-b', 'net-b', { gateways: ['192.0.2.21'], endpoints: [{ address: '10.1.0.2', tlsMode: 'plaintext' }] })],
    proxy: proxyOn('net-a'),
    want: ['p0 - w1', '  10.0.0.1:8080 w1 HEALTHY'],
    dropped: ['c-b 10.1.0.2:8080 plaintext-cross-network'],
  },
  {
    name: 'health: ready HEALTHY, serving/terminating DRAINING, unready UNHEALTHY; only HEALTHY weighs on gateways and groups',
    clusters: [
      net('c-a', 'net-a', {
        endpoints: [
          { address: '10.0.0.1', health: 'ready' },
          { address: '10.0.0.2', health: 'serving' },
          { address: '10.0.0.3', health: 'terminating' },
          { address: '10.0.0.4', health: 'unready' },
        ],
      }),
      net('c-b', 'net-b', {
        gateways: ['192.0.2.21'],
        endpoints: [
          { address: '10.1.0.1', health: 'ready' },
          { address: '10.1.0.2', health: 'serving' },
          { address: '10.1.0.3', health: 'terminating' },
          { address: '10.1.0.4', health: 'unready' },
        ],
      }),
    ],
    proxy: proxyOn('net-a'),
    want: [
      'p0 - w2',
      '  10.0.0.1:8080 w1 HEALTHY',
      '  10.0.0.2:8080 w1 DRAINING',
      '  10.0.0.3:8080 w1 DRAINING',
      '  10.0.0.4:8080 w1 UNHEALTHY',
      '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1',
    ],
  },
  {
    name: 'a gateway whose endpoints are all unhealthy is UNHEALTHY with weight 1; an all-unhealthy group weighs 1',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', zone: 'z1', endpoints: [{ address: '10.0.0.1', health: 'terminating' }] }),
      net('c-b', 'net-b', {
        region: 'r2',
        gateways: ['192.0.2.21', '192.0.2.22'],
        endpoints: [
          { address: '10.1.0.1', health: 'unready' },
          { address: '10.1.0.2', health: 'serving' },
        ],
      }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1' }),
    want: ['p0 r1/z1 w1', '  10.0.0.1:8080 w2 DRAINING', 'p1 r2 w1', '  192.0.2.21:15443 w1 UNHEALTHY via net-b[c-b]x0', '  192.0.2.22:15443 w1 UNHEALTHY via net-b[c-b]x0'],
    scaleFactor: 2,
  },
  {
    name: 'stale clusters keep their endpoints and gateways; evicted clusters contribute neither',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { state: 'stale', gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-c', 'net-c', { state: 'evicted', gateways: ['192.0.2.31', '192.0.2.32', '192.0.2.33'], endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w2', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1'],
    scaleFactor: 1,
  },
  {
    name: 'ports: named endpoint port wins, else targetPort, else the port; a cluster lacking the port contributes nothing',
    clusters: [
      net('c-a', 'net-a', { endpoints: [{ address: '10.0.0.1', ports: [{ name: 'http', port: 9090 }] }, '10.0.0.2'] }),
      net('c-b', 'net-a', { ports: [{ name: 'http', port: PORT }], endpoints: ['10.0.1.1'] }),
      net('c-c', 'net-a', { ports: [{ name: 'grpc', port: 81 }], endpoints: ['10.0.2.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w3', '  10.0.0.1:9090 w1 HEALTHY', '  10.0.0.2:8080 w1 HEALTHY', '  10.0.1.1:80 w1 HEALTHY'],
  },
  {
    name: "an endpoint's own network overrides its cluster's",
    clusters: [net('c-a', 'net-a', { endpoints: ['10.0.0.1', { address: '10.9.0.1', network: 'net-b' }] }), net('c-b', 'net-b', { gateways: ['192.0.2.21'] })],
    proxy: proxyOn('net-a'),
    want: ['p0 - w2', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-a]x1'],
  },
  {
    name: 'no duplicate addresses: a repeated endpoint is dropped, a gateway clashing with a direct endpoint is skipped',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1', '192.0.2.21'] }),
      net('c-a2', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: [{ address: '192.0.2.21', port: 8080 }], endpoints: ['10.1.0.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w2', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.21:8080 w1 HEALTHY'],
    dropped: ['c-a2 10.0.0.1:8080 duplicate-address'],
    skippedGateways: ['c-b 192.0.2.21:8080 endpoint-address'],
  },
  {
    name: 'the same gateway address claimed by two networks is kept for the first (by cluster name) only',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-c', 'net-c', { gateways: ['192.0.2.21'], endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w3', '  10.0.0.1:8080 w1 HEALTHY', '  10.2.0.1:8080 w1 HEALTHY', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1'],
    skippedGateways: ['c-c 192.0.2.21:15443 address-in-use'],
  },
  {
    name: 'no endpoints anywhere: an empty assignment',
    clusters: [net('c-a', 'net-a', { endpoints: [] }), net('c-b', 'net-b', { gateways: ['192.0.2.21'] })],
    proxy: proxyOn('net-a'),
    want: [],
  },
];

const reachabilityCases: Case[] = [
  {
    name: 'a gateway found down: the endpoints only it stands for are not offered to other networks; the others are',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.10'], down: ['192.0.2.10'], endpoints: ['10.1.0.1', '10.1.0.2'] }),
      net('c-c', 'net-c', { gateways: ['192.0.2.30'], endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w2', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.30:15443 w1 HEALTHY via net-c[c-c]x1'],
    dropped: ['c-b 10.1.0.1:8080 gateway-unreachable', 'c-b 10.1.0.2:8080 gateway-unreachable'],
    skippedGateways: ['c-b 192.0.2.10:15443 unreachable'],
  },
  {
    name: "a gateway found down changes nothing for proxies on its own network",
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.10'], down: ['192.0.2.10'], endpoints: ['10.1.0.1', '10.1.0.2'] }),
    ],
    proxy: proxyOn('net-b'),
    want: ['p0 - w3', '  10.0.0.1:8080 w1 HEALTHY', '  10.1.0.1:8080 w1 HEALTHY', '  10.1.0.2:8080 w1 HEALTHY'],
    skippedGateways: ['c-b 192.0.2.10:15443 unreachable'],
  },
  {
    name: "one of a cluster's two gateways down: the other stands for all its endpoints",
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.21', '192.0.2.22'], down: ['192.0.2.22'], endpoints: ['10.1.0.1', '10.1.0.2'] }),
    ],
    proxy: proxyOn('net-a'),
    // the scale factor still counts the gateway that is down (LCM 2), so proxies it does not concern keep their weights
    want: ['p0 - w6', '  10.0.0.1:8080 w2 HEALTHY', '  192.0.2.21:15443 w4 HEALTHY via net-b[c-b]x2'],
    scaleFactor: 2,
    skippedGateways: ['c-b 192.0.2.22:15443 unreachable'],
  },
  {
    name: "a cluster's own gateway down: its endpoints are not handed to another cluster's gateway (which forwards only to its own)",
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b1', 'net-b', { gateways: ['192.0.2.21'], down: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-b2', 'net-b', { gateways: ['192.0.2.22'], endpoints: ['10.1.1.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w4', '  10.0.0.1:8080 w2 HEALTHY', '  192.0.2.22:15443 w2 HEALTHY via net-b[c-b2]x1'],
    dropped: ['c-b1 10.1.0.1:8080 gateway-unreachable'],
    skippedGateways: ['c-b1 192.0.2.21:15443 unreachable'],
  },
  {
    name: 'every gateway of a network down: its endpoints are withheld, never made direct (even a gateway-less cluster\'s)',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b1', 'net-b', { gateways: ['192.0.2.21'], down: ['192.0.2.21'], endpoints: ['10.1.0.1'] }),
      net('c-b2', 'net-b', { endpoints: ['10.1.1.1'] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w1', '  10.0.0.1:8080 w1 HEALTHY'],
    dropped: ['c-b1 10.1.0.1:8080 gateway-unreachable', 'c-b2 10.1.1.1:8080 gateway-unreachable'],
    skippedGateways: ['c-b1 192.0.2.21:15443 unreachable'],
  },
  {
    name: 'a plaintext endpoint behind a gateway found down is still dropped as plaintext',
    clusters: [
      net('c-a', 'net-a', { endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { gateways: ['192.0.2.10'], down: ['192.0.2.10'], endpoints: [{ address: '10.1.0.1', tlsMode: 'plaintext' }] }),
    ],
    proxy: proxyOn('net-a'),
    want: ['p0 - w1', '  10.0.0.1:8080 w1 HEALTHY'],
    dropped: ['c-b 10.1.0.1:8080 plaintext-cross-network'],
    skippedGateways: ['c-b 192.0.2.10:15443 unreachable'],
  },
];

describe('loadAssignment: gateways found down by the probes', () => {
  it.each(reachabilityCases)('$name', (c) => {
    const a = loadAssignment(snapshot(...c.clusters), c.proxy, SERVICE, PORT);
    expect(render(a)).toEqual(c.want);
    expectValidForXds(a);
    if (c.scaleFactor !== undefined) expect(a.scaleFactor).toBe(c.scaleFactor);
    expect(a.dropped.map((d) => `${d.cluster} ${d.address}:${d.port} ${d.reason}`)).toEqual(c.dropped ?? []);
    expect(a.skippedGateways.map((g) => `${g.cluster} ${g.address}:${g.port} ${g.reason}`)).toEqual(c.skippedGateways ?? []);
  });

  it('comes back as it was once the gateway is reachable again', () => {
    const clusters = reachabilityCases[0]?.clusters ?? [];
    const recovered = clusters.map(({ down: _down, ...spec }) => spec);
    const a = loadAssignment(snapshot(...recovered), proxyOn('net-a'), SERVICE, PORT);
    expect(render(a)).toEqual(['p0 - w4', '  10.0.0.1:8080 w1 HEALTHY', '  192.0.2.10:15443 w2 HEALTHY via net-b[c-b]x2', '  192.0.2.30:15443 w1 HEALTHY via net-c[c-c]x1']);
    expect(a.dropped).toEqual([]);
  });
});

describe('loadAssignment: split horizon', () => {
  it.each(cases)('$name', (c) => {
    const a = loadAssignment(snapshot(...c.clusters), c.proxy, SERVICE, PORT);
    expect(render(a)).toEqual(c.want);
    expectValidForXds(a);
    if (c.scaleFactor !== undefined) expect(a.scaleFactor).toBe(c.scaleFactor);
    expect(a.dropped.map((d) => `${d.cluster} ${d.address}:${d.port} ${d.reason}`)).toEqual(c.dropped ?? []);
    expect(a.skippedGateways.map((g) => `${g.cluster} ${g.address}:${g.port} ${g.reason}`)).toEqual(c.skippedGateways ?? []);
    expect(a.service).toBe(SERVICE);
    expect(a.port).toBe(PORT);
  });

  it('is deterministic whatever the order of clusters in the snapshot', () => {
    const specs = cases[2]?.clusters ?? [];
    const forward = loadAssignment(snapshot(...specs), proxyOn('net-c'), SERVICE, PORT);
    const backward = loadAssignment(snapshot(...[...specs].reverse()), proxyOn('net-c'), SERVICE, PORT);
    expect(backward).toEqual(forward);
  });
});

describe('localityPriority', () => {
  const P = { region: 'r1', zone: 'z1', subzone: 's1' };
  it.each([
    { name: 'same region/zone/subzone', proxy: P, endpoint: P, want: 0 },
    { name: 'same region/zone, other subzone', proxy: P, endpoint: { region: 'r1', zone: 'z1', subzone: 's2' }, want: 1 },
    { name: 'same region/zone, no subzone', proxy: P, endpoint: { region: 'r1', zone: 'z1' }, want: 1 },
    { name: 'same region, other zone', proxy: P, endpoint: { region: 'r1', zone: 'z2', subzone: 's1' }, want: 2 },
    { name: 'other region, same zone name', proxy: P, endpoint: { region: 'r2', zone: 'z1', subzone: 's1' }, want: 3 },
    { name: 'endpoint without locality', proxy: P, endpoint: {}, want: 3 },
    { name: 'neither has a subzone', proxy: { region: 'r1', zone: 'z1' }, endpoint: { region: 'r1', zone: 'z1' }, want: 0 },
    { name: 'proxy without locality', proxy: {}, endpoint: P, want: 0 },
    { name: 'proxy with a zone but no region', proxy: { zone: 'z1' }, endpoint: { region: 'r9' }, want: 0 },
  ])('$name → $want', ({ proxy, endpoint, want }) => {
    expect(localityPriority(proxy, endpoint)).toBe(want);
  });
});

interface PriorityCase {
  name: string;
  clusters: ClusterSpec[];
  proxy: ProxyView;
  want: string[];
}

const priorityCases: PriorityCase[] = [
  {
    name: 'priorities renumbered without gaps (raw 2 and 3 become 0 and 1); groups sorted by priority then locality',
    clusters: [
      net('c-a', 'net-a', {
        region: 'r1',
        zone: 'z2',
        endpoints: ['10.0.0.1', { address: '10.0.0.2', locality: { region: 'r1', zone: 'z2', subzone: 'b' } }, { address: '10.0.0.3', locality: { region: 'r1', zone: 'z2', subzone: 'a' } }],
      }),
      net('c-b', 'net-a', { region: 'r3', endpoints: ['10.0.1.1'] }),
      net('c-c', 'net-a', { region: 'r2', zone: 'x', endpoints: ['10.0.2.1'] }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1', subzone: 's1' }),
    want: ['p0 r1/z2 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p0 r1/z2/a w1', '  10.0.0.3:8080 w1 HEALTHY', 'p0 r1/z2/b w1', '  10.0.0.2:8080 w1 HEALTHY', 'p1 r2/x w1', '  10.0.2.1:8080 w1 HEALTHY', 'p1 r3 w1', '  10.0.1.1:8080 w1 HEALTHY'],
  },
  {
    name: 'all four tiers',
    clusters: [
      net('c-a', 'net-a', {
        region: 'r1',
        zone: 'z1',
        endpoints: [
          { address: '10.0.0.1', locality: { region: 'r1', zone: 'z1', subzone: 's1' } },
          { address: '10.0.0.2', locality: { region: 'r1', zone: 'z1', subzone: 's2' } },
          { address: '10.0.0.3', locality: { region: 'r1', zone: 'z2' } },
          { address: '10.0.0.4', locality: { region: 'r2', zone: 'z1', subzone: 's1' } },
        ],
      }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1', subzone: 's1' }),
    want: ['p0 r1/z1/s1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r1/z1/s2 w1', '  10.0.0.2:8080 w1 HEALTHY', 'p2 r1/z2 w1', '  10.0.0.3:8080 w1 HEALTHY', 'p3 r2/z1/s1 w1', '  10.0.0.4:8080 w1 HEALTHY'],
  },
  {
    name: "an endpoint without a region takes its cluster's region and zone",
    clusters: [net('c-a', 'net-a', { region: 'r1', zone: 'z1', endpoints: ['10.0.0.1', { address: '10.0.0.2', locality: { subzone: 's9' } }] })],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1' }),
    want: ['p0 r1/z1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r1/z1/s9 w1', '  10.0.0.2:8080 w1 HEALTHY'],
  },
  {
    name: 'a proxy with no region puts every group at priority 0',
    clusters: [net('c-a', 'net-a', { region: 'r1', endpoints: ['10.0.0.1'] }), net('c-b', 'net-b', { region: 'r2', gateways: ['192.0.2.21'], endpoints: ['10.1.0.1'] })],
    proxy: proxyOn('net-a'),
    want: ['p0 r1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p0 r2 w1', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1'],
  },
  {
    name: 'cross-network failover: the gateway keeps its remote locality, so it is the next priority, not lost in priority 0',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', zone: 'z1', endpoints: [{ address: '10.0.0.1', health: 'unready' }] }),
      net('c-b', 'net-b', { region: 'r1', zone: 'z2', gateways: ['192.0.2.21'], endpoints: ['10.1.0.1', '10.1.0.2'] }),
      net('c-c', 'net-c', { region: 'r2', gateways: ['192.0.2.31'], endpoints: ['10.2.0.1'] }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1' }),
    want: ['p0 r1/z1 w1', '  10.0.0.1:8080 w1 UNHEALTHY', 'p1 r1/z2 w2', '  192.0.2.21:15443 w2 HEALTHY via net-b[c-b]x2', 'p2 r2 w1', '  192.0.2.31:15443 w1 HEALTHY via net-c[c-c]x1'],
  },
  {
    name: 'gateway locality: the nearest tier of the endpoints behind it, carrying all their weight',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', zone: 'z1', endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', {
        region: 'r2',
        zone: 'z1',
        gateways: ['192.0.2.21'],
        endpoints: ['10.1.0.1', '10.1.0.2', { address: '10.1.0.3', locality: { region: 'r1', zone: 'z9' } }],
      }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1' }),
    want: ['p0 r1/z1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r1/z9 w3', '  192.0.2.21:15443 w3 HEALTHY via net-b[c-b]x3'],
  },
  {
    name: 'gateway locality, same tier: the locality with most of its endpoints wins',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', {
        region: 'r3',
        zone: 'a',
        gateways: ['192.0.2.21'],
        endpoints: ['10.1.0.1', { address: '10.1.0.2', locality: { region: 'r2', zone: 'b' } }, { address: '10.1.0.3', locality: { region: 'r2', zone: 'b' } }],
      }),
    ],
    proxy: proxyOn('net-a', { region: 'r1' }),
    want: ['p0 r1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r2/b w3', '  192.0.2.21:15443 w3 HEALTHY via net-b[c-b]x3'],
  },
  {
    name: 'gateway locality, same tier and count: lexical region/zone/subzone',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', { region: 'r3', zone: 'a', gateways: ['192.0.2.21'], endpoints: ['10.1.0.1', { address: '10.1.0.2', locality: { region: 'r2', zone: 'b' } }] }),
    ],
    proxy: proxyOn('net-a', { region: 'r1' }),
    want: ['p0 r1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r2/b w2', '  192.0.2.21:15443 w2 HEALTHY via net-b[c-b]x2'],
  },
  {
    name: 'gateway locality counts only healthy endpoints: an unhealthy nearer endpoint does not pull the gateway',
    clusters: [
      net('c-a', 'net-a', { region: 'r1', zone: 'z1', endpoints: ['10.0.0.1'] }),
      net('c-b', 'net-b', {
        region: 'r2',
        gateways: ['192.0.2.21'],
        endpoints: ['10.1.0.1', { address: '10.1.0.2', health: 'unready', locality: { region: 'r1', zone: 'z1' } }],
      }),
    ],
    proxy: proxyOn('net-a', { region: 'r1', zone: 'z1' }),
    want: ['p0 r1/z1 w1', '  10.0.0.1:8080 w1 HEALTHY', 'p1 r2 w1', '  192.0.2.21:15443 w1 HEALTHY via net-b[c-b]x1'],
  },
];

describe('loadAssignment: priorities and gateway localities', () => {
  it.each(priorityCases)('$name', (c) => {
    const a = loadAssignment(snapshot(...c.clusters), c.proxy, SERVICE, PORT);
    expect(render(a)).toEqual(c.want);
    expectValidForXds(a);
  });
});

/**
 * Istio's reference topology (istio/istio pilot/pkg/xds/endpoints/ep_filters_test.go, `environment` and
 * `testShards`): network1 has one gateway (1.1.1.1, in cluster1a; cluster1b has none and falls back to it),
 * network2 three (2.2.2.2 in cluster2a, 2.2.2.20 and 2.2.2.21 in cluster2b), network3 one gateway and no
 * endpoints, network4 none. LCM(1, 3, 1; 1, 1, 2, 1) = 6. 10.0.0.3 stands for the endpoint that is not sent
 * through a gateway (here: plaintext).
 */
function istioReference(localities: boolean): ClusterSpec[] {
  const at = (region: string, zone: string): Partial<ClusterSpec> => (localities ? { region, zone } : {});
  return [
    net('cluster1a', 'network1', { ...at('r1', 'a'), gateways: ['1.1.1.1'], endpoints: ['10.0.0.1', { address: '10.0.0.3', tlsMode: 'plaintext' }] }),
    net('cluster1b', 'network1', { ...at('r1', 'b'), endpoints: ['10.0.0.2'] }),
    net('cluster2a', 'network2', { ...at('r2', 'a'), gateways: ['2.2.2.2'], endpoints: ['20.0.0.1'] }),
    net('cluster2b', 'network2', { ...at('r2', 'b'), gateways: ['2.2.2.20', '2.2.2.21'], endpoints: ['20.0.0.2', '20.0.0.3'] }),
    net('cluster3', 'network3', { ...at('r3', 'a'), gateways: ['3.3.3.3'] }),
    net('cluster4', 'network4', { ...at('r4', 'a'), endpoints: ['40.0.0.1'] }),
  ];
}

/** Istio's expected weights per proxy network (ep_filters_test.go, `networkFiltered`), ports aside. */
const istioExpected: { network: string; weights: Record<string, number>; total: number; reachable: string[] }[] = [
  {
    network: 'network1',
    weights: { '10.0.0.1': 6, '10.0.0.2': 6, '10.0.0.3': 6, '2.2.2.2': 6, '2.2.2.20': 6, '2.2.2.21': 6, '40.0.0.1': 6 },
    total: 42,
    reachable: ['10.0.0.1', '10.0.0.2', '10.0.0.3', '20.0.0.1', '20.0.0.2', '20.0.0.3', '40.0.0.1'],
  },
  {
    network: 'network2',
    weights: { '20.0.0.1': 6, '20.0.0.2': 6, '20.0.0.3': 6, '1.1.1.1': 12, '40.0.0.1': 6 },
    total: 36,
    reachable: ['10.0.0.1', '10.0.0.2', '20.0.0.1', '20.0.0.2', '20.0.0.3', '40.0.0.1'],
  },
  {
    network: 'network3',
    weights: { '1.1.1.1': 12, '2.2.2.2': 6, '2.2.2.20': 6, '2.2.2.21': 6, '40.0.0.1': 6 },
    total: 36,
    reachable: ['10.0.0.1', '10.0.0.2', '20.0.0.1', '20.0.0.2', '20.0.0.3', '40.0.0.1'],
  },
  {
    network: 'network4',
    weights: { '40.0.0.1': 6, '1.1.1.1': 12, '2.2.2.2': 6, '2.2.2.20': 6, '2.2.2.21': 6 },
    total: 36,
    reachable: ['10.0.0.1', '10.0.0.2', '20.0.0.1', '20.0.0.2', '20.0.0.3', '40.0.0.1'],
  },
];

/**
 * Each real endpoint's share of the proxy's traffic within priority 0, as a weighted_target over localities then
 * weighted endpoints would give it: group weight / all group weights × endpoint weight / healthy weights of the
 * group. A gateway's share is spread evenly over the healthy mTLS endpoints it stands for (the endpoints of
 * `via.clusters` on `via.network` in the snapshot), as the gateway forwards to any of them.
 */
function realShares(snap: FederatedSnapshot, a: LoadAssignment): Map<string, number> {
  const top = a.groups.filter((g) => g.priority === 0);
  const total = top.reduce((s, g) => s + g.weight, 0);
  const shares = new Map<string, number>();
  const add = (address: string, share: number): void => {
    shares.set(address, (shares.get(address) ?? 0) + share);
  };
  for (const g of top) {
    const healthy = g.endpoints.filter((e) => e.health === 'HEALTHY');
    const inGroup = healthy.reduce((s, e) => s + e.weight, 0);
    for (const e of healthy) {
      const share = (g.weight / total) * (e.weight / inGroup);
      if (e.via.kind === 'direct') {
        add(e.address, share);
        continue;
      }
      const { network, clusters } = e.via;
      const behind = clusters.flatMap((name) =>
        (snap.clusters.get(name)?.services.get(SERVICE)?.endpoints ?? [])
          .filter((ep) => (ep.network ?? snap.clusters.get(name)?.cluster.network) === network && ep.tlsMode === 'mtls' && ep.health === 'ready')
          .map((ep) => ep.address),
      );
      expect(behind).toHaveLength(e.via.endpoints);
      for (const address of behind) add(address, share / behind.length);
    }
  }
  return shares;
}

describe("Istio's reference topology: three networks with one, three and no gateways", () => {
  it('has the gateway counts the reference describes, and LCM 6', () => {
    const index = indexGateways(snapshot(...istioReference(false)));
    expect(Object.fromEntries([...index.byNetwork].map(([k, v]) => [k, v.length]))).toEqual({ network1: 1, network2: 3, network3: 1 });
    expect(index.scaleFactor).toBe(6);
    expect(lcm(4, 6)).toBe(12);
  });

  it.each(istioExpected)('from $network: the same weights Istio computes', ({ network, weights, total }) => {
    const a = loadAssignment(snapshot(...istioReference(false)), proxyOn(network), SERVICE, PORT);
    expectValidForXds(a);
    expect(a.groups).toHaveLength(1);
    expect(Object.fromEntries(a.groups.flatMap((g) => g.endpoints.map((e) => [e.address, e.weight])))).toEqual(weights);
    expect(a.groups[0]?.weight).toBe(total);
  });

  it.each(istioExpected.flatMap((c) => [false, true].map((localities) => ({ ...c, localities }))))(
    'from $network (localities: $localities): every reachable endpoint gets an equal share',
    ({ network, reachable, localities }) => {
      const snap = snapshot(...istioReference(localities));
      const a = loadAssignment(snap, proxyOn(network), SERVICE, PORT);
      expectValidForXds(a);
      if (localities) expect(a.groups.length).toBeGreaterThan(1);
      const shares = realShares(snap, a);
      expect([...shares.keys()].sort()).toEqual([...reachable].sort());
      for (const share of shares.values()) expect(share).toBeCloseTo(1 / reachable.length, 12);
    },
  );

  it('equal shares survive unhealthy endpoints behind a gateway', () => {
    const specs = istioReference(true).map((s) =>
      s.name === 'cluster2b' ? { ...s, endpoints: ['20.0.0.2', { address: '20.0.0.3', health: 'terminating' as const }] } : s,
    );
    const snap = snapshot(...specs);
    const a = loadAssignment(snap, proxyOn('network1'), SERVICE, PORT);
    const shares = realShares(snap, a);
    expect(shares.has('20.0.0.3')).toBe(false);
    expect(shares.size).toBe(6);
    for (const share of shares.values()) expect(share).toBeCloseTo(1 / 6, 12);
  });
});
