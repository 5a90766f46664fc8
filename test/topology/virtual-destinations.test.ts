/**
 * Virtual destinations' failover rules (src/topology/virtual-destinations.ts), table-driven. Snapshots are built
 * from the model schemas: four clusters in three regions, each with its own east-west gateway.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { clusterSchema } from '../../src/model/cluster.js';
import { formatLocality } from '../../src/model/locality.js';
import { endpointSchema, serviceSchema, servicePortSchema } from '../../src/model/service.js';
import { virtualDestinationSchema, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';
import type { ClusterState, ClusterView, FederatedSnapshot } from '../../src/registry/snapshot.js';
import type { ServiceView } from '../../src/registry/source.js';
import { forProxylessClients, loadAssignment, virtualDestinationAssignment, type LoadAssignment, type ProxyView, type VirtualDestinationAssignment } from '../../src/topology/index.js';
import { expectValidForXds } from './xds-validity.js';

type EndpointInput = z.input<typeof endpointSchema>;
type ServicePortInput = z.input<typeof servicePortSchema>;

interface ServiceSpec {
  name: string;
  namespace?: string;
  labels?: Record<string, string>;
  ports?: ServicePortInput[];
  endpoints: (string | EndpointInput)[];
}

interface ClusterSpec {
  name: string;
  network: string;
  region: string;
  zone: string;
  gateways?: string[];
  state?: ClusterState;
  services: ServiceSpec[];
}

const PORTS: ServicePortInput[] = [{ name: 'grpc', port: 9080, targetPort: 8080 }];

function clusterView(spec: ClusterSpec): ClusterView {
  const { state = 'ready', services: specs, gateways = [], ...input } = spec;
  const cluster = clusterSchema.parse({ ...input, gateways: gateways.map((address) => ({ address })) });
  const services = new Map<string, ServiceView>();
  for (const s of specs) {
    const service = serviceSchema.parse({ cluster: cluster.name, namespace: s.namespace ?? 'shop', name: s.name, ports: s.ports ?? PORTS, labels: s.labels ?? {} });
    const endpoints = s.endpoints.map((e) => endpointSchema.parse(typeof e === 'string' ? { address: e } : e));
    services.set(`${service.namespace}/${service.name}`, Object.freeze({ service, endpoints }));
  }
  return Object.freeze({ cluster, gateways: cluster.gateways, state, services });
}

const snapshotOf = (specs: ClusterSpec[]): FederatedSnapshot => Object.freeze({ version: 1, createdAt: new Date(0), clusters: new Map(specs.map((s) => [s.name, clusterView(s)])) });

/** `n` endpoints `prefix.1` … `prefix.n`, the last `unready` of them unready. */
const endpoints = (prefix: string, n: number, unready = 0): EndpointInput[] =>
  Array.from({ length: n }, (_, i) => ({ address: `${prefix}.${i + 1}`, health: i >= n - unready ? 'unready' : 'ready' }));

const reviews = (eps: (string | EndpointInput)[], labels: Record<string, string> = { app: 'reviews', version: 'v1' }): ServiceSpec => ({ name: 'reviews', labels, endpoints: eps });

type ClusterName = 'east-1' | 'east-2' | 'west-1' | 'eu-1';

/**
 * east-1 (net-east, us-east/us-east-1a), east-2 (net-east, us-east/us-east-1b), west-1 (net-west, us-west/us-west-1a),
 * eu-1 (net-eu, eu-central/eu-central-1a), each with its own gateway 192.0.2.1-4, and `shop/reviews` in each (2, 2, 2
 * and 1 endpoints unless given). net-east has two gateways, so every weight is scaled by 2.
 */
function federation(eps: Partial<Record<ClusterName, EndpointInput[]>> = {}, extra: Partial<Record<ClusterName, ServiceSpec[]>> = {}, states: Partial<Record<ClusterName, ClusterState>> = {}): FederatedSnapshot {
  const cluster = (name: ClusterName, network: string, region: string, zone: string, gateway: string, own: EndpointInput[]): ClusterSpec => ({
    name,
    network,
    region,
    zone,
    gateways: [gateway],
    ...(states[name] ? { state: states[name] } : {}),
    services: [reviews(eps[name] ?? own), ...(extra[name] ?? [])],
  });
  return snapshotOf([
    cluster('east-1', 'net-east', 'us-east', 'us-east-1a', '192.0.2.1', endpoints('10.1.0', 2)),
    cluster('east-2', 'net-east', 'us-east', 'us-east-1b', '192.0.2.2', endpoints('10.2.0', 2)),
    cluster('west-1', 'net-west', 'us-west', 'us-west-1a', '192.0.2.3', endpoints('10.3.0', 2)),
    cluster('eu-1', 'net-eu', 'eu-central', 'eu-central-1a', '192.0.2.4', endpoints('10.4.0', 1)),
  ]);
}

const EAST: ProxyView = { cluster: 'east-1', network: 'net-east', locality: { region: 'us-east', zone: 'us-east-1a' } };
const WEST: ProxyView = { cluster: 'west-1', network: 'net-west', locality: { region: 'us-west', zone: 'us-west-1a' } };

type FailoverInput = VirtualDestinationInput['failover'];
type BackendInput = VirtualDestinationInput['backends'][number];

const vd = (failover: FailoverInput = {}, backends: BackendInput[] = [{ name: 'reviews' }]) =>
  virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends, failover });

const groupLine = (a: LoadAssignment, placements: VirtualDestinationAssignment['placements'], i: number): string => {
  const g = a.groups[i];
  const p = placements[i];
  if (!g || !p) throw new Error(`no group ${i}`);
  return `p${g.priority} ${formatLocality(g.locality) || '-'} w${g.weight} ${p.reason}${p.standby ? ' standby' : ''}`;
};

/** One line per group (`p<priority> <locality> w<weight> <reason>`) and one per endpoint, indented. */
function render({ assignment, placements }: VirtualDestinationAssignment): string[] {
  return assignment.groups.flatMap((g, i) => [
    groupLine(assignment, placements, i),
    ...g.endpoints.map((e) => `  ${e.address}:${e.port} w${e.weight} ${e.health}${e.via.kind === 'gateway' ? ` via ${e.via.clusters.join(',')}` : ''}`),
  ]);
}

/** The group lines only. */
const renderGroups = ({ assignment, placements }: VirtualDestinationAssignment): string[] => assignment.groups.map((_, i) => groupLine(assignment, placements, i));

interface Case {
  name: string;
  snapshot?: FederatedSnapshot;
  failover?: FailoverInput;
  backends?: BackendInput[];
  proxy: ProxyView;
  want: string[];
  /** compare the group lines only */
  groupsOnly?: boolean;
}

const UNHEALTHY_EAST_1 = federation({ 'east-1': endpoints('10.1.0', 2, 2) });

const orders: Case[] = [
  {
    name: 'locality: same zone, same region, then other regions through their gateways, which keep their locality',
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w4 same-zone',
      '  10.1.0.1:8080 w2 HEALTHY',
      '  10.1.0.2:8080 w2 HEALTHY',
      'p1 us-east/us-east-1b w4 same-region',
      '  10.2.0.1:8080 w2 HEALTHY',
      '  10.2.0.2:8080 w2 HEALTHY',
      'p2 eu-central/eu-central-1a w2 other-region',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3:15443 w4 HEALTHY via west-1',
    ],
  },
  {
    name: 'locality from another network: the same-network clusters are reached through their own gateways',
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w4 same-zone',
      '  10.3.0.1:8080 w2 HEALTHY',
      '  10.3.0.2:8080 w2 HEALTHY',
      'p1 eu-central/eu-central-1a w2 other-region',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p1 us-east/us-east-1a w4 other-region',
      '  192.0.2.1:15443 w4 HEALTHY via east-1',
      'p1 us-east/us-east-1b w4 other-region',
      '  192.0.2.2:15443 w4 HEALTHY via east-2',
    ],
  },
  {
    name: 'region mappings: the mapped regions follow the own region in the listed order',
    failover: { regionMappings: [{ from: 'us-east', to: ['us-west', 'eu-central'] }] },
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w4 same-zone',
      'p1 us-east/us-east-1b w4 same-region',
      'p2 us-west/us-west-1a w4 region-mapping',
      'p3 eu-central/eu-central-1a w2 region-mapping',
    ],
    groupsOnly: true,
  },
  {
    name: 'region mappings: an unmapped region comes after the mapped ones',
    failover: { regionMappings: [{ from: 'us-east', to: ['eu-central'] }] },
    proxy: EAST,
    want: ['p0 us-east/us-east-1a w4 same-zone', 'p1 us-east/us-east-1b w4 same-region', 'p2 eu-central/eu-central-1a w2 region-mapping', 'p3 us-west/us-west-1a w4 other-region'],
    groupsOnly: true,
  },
  {
    name: "region mappings apply to proxies of the `from` region only",
    failover: { regionMappings: [{ from: 'us-east', to: ['eu-central'] }] },
    proxy: WEST,
    want: ['p0 us-west/us-west-1a w4 same-zone', 'p1 eu-central/eu-central-1a w2 other-region', 'p1 us-east/us-east-1a w4 other-region', 'p1 us-east/us-east-1b w4 other-region'],
    groupsOnly: true,
  },
  {
    name: 'a proxy that names no region: one tier, unordered',
    proxy: { network: 'net-east', locality: {} },
    want: ['p0 eu-central/eu-central-1a w2 unordered', 'p0 us-east/us-east-1a w4 unordered', 'p0 us-east/us-east-1b w4 unordered', 'p0 us-west/us-west-1a w4 unordered'],
    groupsOnly: true,
  },
  {
    name: 'priority by cluster: the listed clusters in order, whatever the distance; the rest last',
    failover: { policy: 'priority', order: [{ cluster: 'west-1' }, { cluster: 'east-2' }] },
    proxy: EAST,
    want: [
      'p0 us-west/us-west-1a w4 priority-order',
      '  192.0.2.3:15443 w4 HEALTHY via west-1',
      'p1 us-east/us-east-1b w4 priority-order',
      '  10.2.0.1:8080 w2 HEALTHY',
      '  10.2.0.2:8080 w2 HEALTHY',
      'p2 eu-central/eu-central-1a w2 unordered',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p2 us-east/us-east-1a w4 unordered',
      '  10.1.0.1:8080 w2 HEALTHY',
      '  10.1.0.2:8080 w2 HEALTHY',
    ],
  },
  {
    name: 'priority by region and zone: a zone entry before its region entry',
    failover: { policy: 'priority', order: [{ region: 'us-east', zone: 'us-east-1b' }, { region: 'eu-central' }, { region: 'us-east' }] },
    proxy: WEST,
    want: [
      'p0 us-east/us-east-1b w4 priority-order',
      '  192.0.2.2:15443 w4 HEALTHY via east-2',
      'p1 eu-central/eu-central-1a w2 priority-order',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p2 us-east/us-east-1a w4 priority-order',
      '  192.0.2.1:15443 w4 HEALTHY via east-1',
      'p3 us-west/us-west-1a w4 unordered',
      '  10.3.0.1:8080 w2 HEALTHY',
      '  10.3.0.2:8080 w2 HEALTHY',
    ],
  },
  {
    name: 'a tier going fully unhealthy stays its own priority, UNHEALTHY with weight 1, so grpc fails over at once',
    snapshot: UNHEALTHY_EAST_1,
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w1 same-zone',
      '  10.1.0.1:8080 w2 UNHEALTHY',
      '  10.1.0.2:8080 w2 UNHEALTHY',
      'p1 us-east/us-east-1b w4 same-region',
      '  10.2.0.1:8080 w2 HEALTHY',
      '  10.2.0.2:8080 w2 HEALTHY',
      'p2 eu-central/eu-central-1a w2 other-region',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3:15443 w4 HEALTHY via west-1',
    ],
  },
  {
    name: 'a remote tier going fully unhealthy: its gateway turns UNHEALTHY with weight 1',
    snapshot: UNHEALTHY_EAST_1,
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w4 same-zone',
      '  10.3.0.1:8080 w2 HEALTHY',
      '  10.3.0.2:8080 w2 HEALTHY',
      'p1 eu-central/eu-central-1a w2 other-region',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p1 us-east/us-east-1a w1 other-region',
      '  192.0.2.1:15443 w1 UNHEALTHY via east-1',
      'p1 us-east/us-east-1b w4 other-region',
      '  192.0.2.2:15443 w4 HEALTHY via east-2',
    ],
  },
];

const weights: Case[] = [
  {
    name: 'weights with locality: a tier split across clusters by weight, in parts per million',
    failover: { weights: [{ cluster: 'east-1', weight: 60 }, { cluster: 'east-2', weight: 30 }, { cluster: 'eu-1', weight: 10 }, { cluster: 'west-1', weight: 100 }] },
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w1000000 same-zone',
      '  10.3.0.1:8080 w2 HEALTHY',
      '  10.3.0.2:8080 w2 HEALTHY',
      'p1 eu-central/eu-central-1a w100000 other-region',
      '  192.0.2.4:15443 w2 HEALTHY via eu-1',
      'p1 us-east/us-east-1a w600000 other-region',
      '  192.0.2.1:15443 w4 HEALTHY via east-1',
      'p1 us-east/us-east-1b w300000 other-region',
      '  192.0.2.2:15443 w4 HEALTHY via east-2',
    ],
  },
  {
    name: 'weight 0 (unlisted): standby right after its tier; alone in a tier, it is all there is',
    failover: { weights: [{ cluster: 'east-1', weight: 100 }] },
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w1000000 same-zone',
      'p1 us-east/us-east-1a w1000000 other-region',
      'p2 eu-central/eu-central-1a w333333 other-region standby',
      'p2 us-east/us-east-1b w666667 other-region standby',
    ],
    groupsOnly: true,
  },
  {
    name: 'weight 0: when the weighted clusters of the tier fail, the standby tier is next',
    snapshot: UNHEALTHY_EAST_1,
    failover: { weights: [{ cluster: 'east-1', weight: 100 }] },
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w1000000 same-zone',
      'p1 us-east/us-east-1a w1 other-region',
      'p2 eu-central/eu-central-1a w333333 other-region standby',
      'p2 us-east/us-east-1b w666667 other-region standby',
    ],
    groupsOnly: true,
  },
  {
    name: 'weights with a priority order',
    failover: { policy: 'priority', order: [{ region: 'us-east' }, { cluster: 'west-1' }], weights: [{ cluster: 'east-1', weight: 25 }, { cluster: 'east-2', weight: 75 }, { cluster: 'west-1', weight: 10 }] },
    proxy: WEST,
    want: [
      'p0 us-east/us-east-1a w250000 priority-order',
      'p0 us-east/us-east-1b w750000 priority-order',
      'p1 us-west/us-west-1a w1000000 priority-order',
      'p2 eu-central/eu-central-1a w1000000 unordered',
    ],
    groupsOnly: true,
  },
  {
    name: "weights: a weighted cluster with no healthy endpoint gives its part to the tier's other clusters",
    snapshot: UNHEALTHY_EAST_1,
    failover: { policy: 'priority', order: [{ region: 'us-east' }, { cluster: 'west-1' }], weights: [{ cluster: 'east-1', weight: 25 }, { cluster: 'east-2', weight: 75 }, { cluster: 'west-1', weight: 10 }] },
    proxy: WEST,
    want: ['p0 us-east/us-east-1a w1 priority-order', 'p0 us-east/us-east-1b w1000000 priority-order', 'p1 us-west/us-west-1a w1000000 priority-order', 'p2 eu-central/eu-central-1a w1000000 unordered'],
    groupsOnly: true,
  },
  {
    name: 'weights: two clusters in one locality get a group each, told apart by sub_zone',
    snapshot: snapshotOf([
      { name: 'c-a', network: 'net-a', region: 'r', zone: 'z', services: [reviews(['10.0.0.1'])] },
      { name: 'c-b', network: 'net-a', region: 'r', zone: 'z', services: [reviews(['10.0.1.1', '10.0.1.2'])] },
    ]),
    failover: { weights: [{ cluster: 'c-a', weight: 1 }, { cluster: 'c-b', weight: 3 }] },
    proxy: { network: 'net-a', locality: { region: 'r', zone: 'z' } },
    want: ['p0 r/z/~c-a w250000 same-zone', '  10.0.0.1:8080 w1 HEALTHY', 'p0 r/z/~c-b w750000 same-zone', '  10.0.1.1:8080 w1 HEALTHY', '  10.0.1.2:8080 w1 HEALTHY'],
  },
];

/** east-1 with 10 endpoints of which `healthy` are ready; priority east-1, east-2, west-1; eu-1 unordered. */
const spill = (healthy: number, want: [string, string], minHealthyPercent = 80): Case => ({
  name: `minHealthyPercent ${minHealthyPercent}, first tier ${healthy * 10}% healthy`,
  snapshot: federation({ 'east-1': endpoints('10.1.0', 10, 10 - healthy) }),
  failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'east-2' }, { cluster: 'west-1' }], minHealthyPercent },
  proxy: EAST,
  want: [...want, want[1].startsWith('p0') ? 'p1 us-west/us-west-1a w1000000 priority-order' : 'p2 us-west/us-west-1a w1000000 priority-order', want[1].startsWith('p0') ? 'p2 eu-central/eu-central-1a w1000000 unordered' : 'p3 eu-central/eu-central-1a w1000000 unordered'],
  groupsOnly: true,
});

const spills: Case[] = [
  spill(10, ['p0 us-east/us-east-1a w1000000 priority-order', 'p1 us-east/us-east-1b w1000000 priority-order']),
  spill(8, ['p0 us-east/us-east-1a w1000000 priority-order', 'p1 us-east/us-east-1b w1000000 priority-order']),
  spill(7, ['p0 us-east/us-east-1a w875000 priority-order', 'p0 us-east/us-east-1b w125000 spill']),
  spill(6, ['p0 us-east/us-east-1a w750000 priority-order', 'p0 us-east/us-east-1b w250000 spill']),
  spill(4, ['p0 us-east/us-east-1a w500000 priority-order', 'p0 us-east/us-east-1b w500000 spill']),
  spill(2, ['p0 us-east/us-east-1a w250000 priority-order', 'p0 us-east/us-east-1b w750000 spill']),
  spill(0, ['p0 us-east/us-east-1a w1 priority-order', 'p0 us-east/us-east-1b w1000000 spill']),
  spill(9, ['p0 us-east/us-east-1a w900000 priority-order', 'p0 us-east/us-east-1b w100000 spill'], 100),
  spill(5, ['p0 us-east/us-east-1a w1000000 priority-order', 'p1 us-east/us-east-1b w1000000 priority-order'], 50),
  {
    name: 'minHealthyPercent: the spill cascades through a tier that is itself below the threshold',
    snapshot: federation({ 'east-1': endpoints('10.1.0', 10, 6), 'east-2': endpoints('10.2.0', 2, 1) }),
    failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'east-2' }, { cluster: 'west-1' }], minHealthyPercent: 80 },
    proxy: EAST,
    // east-1 keeps 0.4/0.8 = 1/2; east-2 keeps 0.5/0.8 = 5/8 of the other half; west-1 takes the rest, 3/16
    want: ['p0 us-east/us-east-1a w500000 priority-order', 'p0 us-east/us-east-1b w312500 spill', 'p0 us-west/us-west-1a w187500 spill', 'p1 eu-central/eu-central-1a w1000000 unordered'],
    groupsOnly: true,
  },
  {
    name: 'minHealthyPercent with locality: the same zone spills into the same region',
    snapshot: federation({ 'east-1': endpoints('10.1.0', 2, 1) }),
    failover: { minHealthyPercent: 80 },
    proxy: EAST,
    want: ['p0 us-east/us-east-1a w625000 same-zone', 'p0 us-east/us-east-1b w375000 spill', 'p1 eu-central/eu-central-1a w333333 other-region', 'p1 us-west/us-west-1a w666667 other-region'],
    groupsOnly: true,
  },
  {
    name: 'minHealthyPercent: a tier fully unhealthy hands all its traffic to the next, in the same priority',
    snapshot: UNHEALTHY_EAST_1,
    failover: { minHealthyPercent: 50 },
    proxy: EAST,
    want: ['p0 us-east/us-east-1a w1 same-zone', 'p0 us-east/us-east-1b w1000000 spill', 'p1 eu-central/eu-central-1a w333333 other-region', 'p1 us-west/us-west-1a w666667 other-region'],
    groupsOnly: true,
  },
  {
    name: 'minHealthyPercent with weights: a weighted tier below the threshold spills into its standby tier',
    snapshot: federation({ 'east-1': endpoints('10.1.0', 4, 3) }),
    failover: { weights: [{ cluster: 'east-1', weight: 1 }, { cluster: 'west-1', weight: 1 }], minHealthyPercent: 50 },
    proxy: WEST,
    // the other-region tier: east-1 (1 of 4 healthy: keeps 0.25/0.5), then its standby east-2 and eu-1 (4:2)
    want: [
      'p0 us-west/us-west-1a w1000000 same-zone',
      'p1 eu-central/eu-central-1a w166667 spill standby',
      'p1 us-east/us-east-1a w500000 other-region',
      'p1 us-east/us-east-1b w333333 spill standby',
    ],
    groupsOnly: true,
  },
];

const backends: Case[] = [
  {
    name: 'backends by labels: every label must match',
    snapshot: federation({}, { 'west-1': [{ name: 'reviews-v2', labels: { app: 'reviews', version: 'v2' }, endpoints: ['10.3.1.1'] }], 'east-1': [{ name: 'ratings', labels: { app: 'ratings' }, endpoints: ['10.1.9.1'] }] }),
    backends: [{ labels: { app: 'reviews', version: 'v2' } }],
    proxy: EAST,
    want: ['p0 us-west/us-west-1a w2 other-region', '  192.0.2.3:15443 w2 HEALTHY via west-1'],
  },
  {
    name: 'backends by labels restricted to a cluster: two services there, one group',
    snapshot: federation({}, { 'west-1': [{ name: 'reviews-v2', labels: { app: 'reviews', version: 'v2' }, endpoints: ['10.3.1.1'] }], 'east-1': [{ name: 'ratings', labels: { app: 'ratings' }, endpoints: ['10.1.9.1'] }] }),
    backends: [{ labels: { app: 'reviews' }, clusters: ['west-1'] }],
    proxy: WEST,
    want: ['p0 us-west/us-west-1a w6 same-zone', '  10.3.0.1:8080 w2 HEALTHY', '  10.3.0.2:8080 w2 HEALTHY', '  10.3.1.1:8080 w2 HEALTHY'],
  },
  {
    name: 'backends by name restricted to clusters',
    backends: [{ name: 'reviews', clusters: ['east-2', 'west-1'] }],
    proxy: EAST,
    want: ['p0 us-east/us-east-1b w4 same-region', '  10.2.0.1:8080 w2 HEALTHY', '  10.2.0.2:8080 w2 HEALTHY', 'p1 us-west/us-west-1a w4 other-region', '  192.0.2.3:15443 w4 HEALTHY via west-1'],
  },
  {
    name: 'an evicted cluster contributes neither endpoints nor gateways (net-east has one gateway left: no scaling)',
    snapshot: federation({}, {}, { 'east-2': 'evicted' }),
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w2 same-zone',
      '  10.1.0.1:8080 w1 HEALTHY',
      '  10.1.0.2:8080 w1 HEALTHY',
      'p1 eu-central/eu-central-1a w1 other-region',
      '  192.0.2.4:15443 w1 HEALTHY via eu-1',
      'p1 us-west/us-west-1a w2 other-region',
      '  192.0.2.3:15443 w2 HEALTHY via west-1',
    ],
  },
  {
    name: 'a namespace that does not match selects nothing',
    backends: [{ namespace: 'other', name: 'reviews' }],
    proxy: EAST,
    want: [],
  },
  {
    name: 'a VD whose backends match nothing: an empty assignment, no error',
    backends: [{ name: 'nope' }, { labels: { app: 'nope' } }],
    proxy: EAST,
    want: [],
  },
];

function run(c: Case): VirtualDestinationAssignment {
  return virtualDestinationAssignment(c.snapshot ?? federation(), vd(c.failover, c.backends), 9080, c.proxy);
}

describe('virtualDestinationAssignment', () => {
  for (const [title, cases] of [
    ['failover order', orders],
    ['weights', weights],
    ['minHealthyPercent spill', spills],
    ['backends', backends],
  ] as const) {
    describe(title, () => {
      it.each(cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
        const result = run(c);
        expect(c.groupsOnly ? renderGroups(result) : render(result)).toEqual(c.want);
        expectValidForXds(result.assignment);
        expect(result.placements).toHaveLength(result.assignment.groups.length);
      });
    });
  }

  it('without weights or spill, a VD over one service is that service as split horizon sends it', () => {
    const snapshot = federation({ 'west-1': [...endpoints('10.3.0', 2), { address: '10.3.0.9', tlsMode: 'plaintext' }], 'east-2': endpoints('10.2.0', 3, 1) });
    for (const proxy of [EAST, WEST, { network: 'net-eu', locality: { region: 'eu-central', zone: 'eu-central-1a' } }]) {
      const { assignment } = virtualDestinationAssignment(snapshot, vd(), 9080, proxy);
      const service = loadAssignment(snapshot, proxy, 'shop/reviews', 9080);
      expect(assignment).toEqual({ ...service, service: 'reviews.global' });
    }
  });

  it('fails over to the next tier at once when the gateways of a tier are found down, and back when they recover', () => {
    // west-1's own reviews are down, so its clients cross to us-east through east-1's and east-2's gateways, then eu-central
    const ordered = vd({ regionMappings: [{ from: 'us-west', to: ['us-east', 'eu-central'] }] });
    const healthy = federation({ 'west-1': endpoints('10.3.0', 2, 2) });
    const withDown = (snapshot: FederatedSnapshot, down: Record<string, string>): FederatedSnapshot => ({
      ...snapshot,
      clusters: new Map(
        [...snapshot.clusters].map(([name, view]) => {
          const address = down[name];
          return [name, address === undefined ? view : { ...view, unreachableGateways: [{ address, port: 15443, reason: 'no answer to a ClientHello within 1 s', since: '2026-01-01T00:00:00.000Z' }] }];
        }),
      ),
    });
    const top = (snapshot: FederatedSnapshot): string[] => {
      // what the clients use: the healthy endpoints of the first priority that has any
      const { assignment } = virtualDestinationAssignment(snapshot, ordered, 9080, WEST);
      const healthyOf = (priority: number) => assignment.groups.filter((g) => g.priority === priority).flatMap((g) => g.endpoints.filter((e) => e.health === 'HEALTHY'));
      const first = assignment.groups.map((g) => g.priority).find((priority) => healthyOf(priority).length > 0);
      return (first === undefined ? [] : healthyOf(first)).map((e) => `${e.address} ${e.via.kind === 'gateway' ? e.via.clusters.join(',') : 'direct'}`);
    };
    expect(top(healthy)).toEqual(['192.0.2.1 east-1', '192.0.2.2 east-2']);
    expect(top(withDown(healthy, { 'east-2': '192.0.2.2' }))).toEqual(['192.0.2.1 east-1']);
    expect(top(withDown(healthy, { 'east-1': '192.0.2.1', 'east-2': '192.0.2.2' }))).toEqual(['192.0.2.4 eu-1']);
    // west-1's own clients, on the network of nothing that went down, are the only ones affected: east-1's are not
    const fromEast = (snapshot: FederatedSnapshot): LoadAssignment => virtualDestinationAssignment(snapshot, vd(), 9080, EAST).assignment;
    expect(render({ assignment: fromEast(withDown(healthy, { 'east-1': '192.0.2.1', 'east-2': '192.0.2.2' })), placements: virtualDestinationAssignment(healthy, vd(), 9080, EAST).placements })).toEqual(
      render(virtualDestinationAssignment(healthy, vd(), 9080, EAST)),
    );
  });

  it('never sends plaintext endpoints through a gateway', () => {
    const snapshot = federation({ 'west-1': [...endpoints('10.3.0', 2), { address: '10.3.0.9', tlsMode: 'plaintext' }] });
    const east = virtualDestinationAssignment(snapshot, vd(), 9080, EAST).assignment;
    expect(east.dropped).toEqual([{ cluster: 'west-1', network: 'net-west', address: '10.3.0.9', port: 8080, reason: 'plaintext-cross-network' }]);
    const west = virtualDestinationAssignment(snapshot, vd(), 9080, WEST).assignment;
    expect(west.dropped).toEqual([]);
    expect(west.groups[0]?.endpoints.map((e) => e.address)).toEqual(['10.3.0.1', '10.3.0.2', '10.3.0.9']);
  });

  it('maps the VD port to the backends\' targetPort; a port the VD lacks gives an empty assignment', () => {
    const spec = virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 80, protocol: 'HTTP', targetPort: 9080 }], backends: [{ name: 'reviews' }] });
    const { assignment } = virtualDestinationAssignment(federation(), spec, 80, WEST);
    expect(assignment).toMatchObject({ service: 'reviews.global', port: 80, scaleFactor: 2 });
    expect(assignment.groups[0]?.endpoints.map((e) => `${e.address}:${e.port}`)).toEqual(['10.3.0.1:8080', '10.3.0.2:8080']);
    expect(virtualDestinationAssignment(federation(), spec, 9080, WEST)).toEqual({
      assignment: { service: 'reviews.global', port: 9080, groups: [], scaleFactor: 2, dropped: [], skippedGateways: [] },
      placements: [],
    });
  });

  it('says why each group is where it is: tier, tier health, clusters, share', () => {
    const result = run(spill(6, ['', '']));
    expect(result.placements).toEqual([
      { reason: 'priority-order', tierReason: 'priority-order', tier: 0, tierHealth: { healthy: 6, total: 10 }, clusters: ['east-1'], standby: false, share: 0.75 },
      { reason: 'spill', tierReason: 'priority-order', tier: 1, tierHealth: { healthy: 2, total: 2 }, clusters: ['east-2'], standby: false, share: 0.25 },
      { reason: 'priority-order', tierReason: 'priority-order', tier: 2, tierHealth: { healthy: 2, total: 2 }, clusters: ['west-1'], standby: false, share: 1 },
      { reason: 'unordered', tierReason: 'unordered', tier: 3, tierHealth: { healthy: 1, total: 1 }, clusters: ['eu-1'], standby: false, share: 1 },
    ]);
    const plain = virtualDestinationAssignment(federation(), vd(), 9080, EAST).placements;
    expect(plain.map((p) => [p.tierReason, p.share])).toEqual([
      ['same-zone', 1],
      ['same-region', 1],
      ['other-region', 2 / 6],
      ['other-region', 4 / 6],
    ]);
  });

  it('counts an endpoint behind several gateways once in its tier\'s health', () => {
    const snapshot = snapshotOf([
      { name: 'c-a', network: 'net-a', region: 'r', zone: 'z', services: [reviews(endpoints('10.0.0', 2, 1))] },
      { name: 'c-b', network: 'net-b', region: 'r', zone: 'z', gateways: ['192.0.2.21', '192.0.2.22'], services: [reviews(endpoints('10.1.0', 2))] },
      { name: 'c-c', network: 'net-a', region: 'r', zone: 'z2', services: [reviews(['10.0.2.1'])] },
    ]);
    // the same-zone tier: 3 of 4 endpoints healthy, though its two gateways each stand for both of c-b's
    const result = virtualDestinationAssignment(snapshot, vd({ minHealthyPercent: 100 }), 9080, { network: 'net-a', locality: { region: 'r', zone: 'z' } });
    expect(render(result)).toEqual([
      'p0 r/z w750000 same-zone',
      '  10.0.0.1:8080 w2 HEALTHY',
      '  10.0.0.2:8080 w2 UNHEALTHY',
      '  192.0.2.21:15443 w2 HEALTHY via c-b',
      '  192.0.2.22:15443 w2 HEALTHY via c-b',
      'p0 r/z2 w250000 spill',
      '  10.0.2.1:8080 w2 HEALTHY',
    ]);
    expect(result.placements.map((p) => p.tierHealth)).toEqual([
      { healthy: 3, total: 4 },
      { healthy: 1, total: 1 },
    ]);
  });

  it('a shaped group that mixes direct endpoints and a gateway keeps its share when split for proxyless clients', () => {
    const snapshot = snapshotOf([
      { name: 'c-a', network: 'net-a', region: 'r', zone: 'z1', gateways: ['192.0.2.10'], services: [reviews(endpoints('10.0.0', 3, 1))] },
      { name: 'c-b', network: 'net-b', region: 'r', zone: 'z1', gateways: ['192.0.2.20'], services: [reviews(endpoints('10.1.0', 2))] },
      { name: 'c-c', network: 'net-a', region: 'r', zone: 'z2', services: [reviews(['10.0.2.1'])] },
    ]);
    // the same-zone tier: 4 of 5 endpoints healthy, below 100%: it keeps 80%, the same region gets 20%
    const result = virtualDestinationAssignment(snapshot, vd({ minHealthyPercent: 100 }), 9080, { network: 'net-a', locality: { region: 'r', zone: 'z1' } });
    expect(render(result)).toEqual([
      'p0 r/z1 w800000 same-zone',
      '  10.0.0.1:8080 w1 HEALTHY',
      '  10.0.0.2:8080 w1 HEALTHY',
      '  10.0.0.3:8080 w1 UNHEALTHY',
      '  192.0.2.20:15443 w2 HEALTHY via c-b',
      'p0 r/z2 w200000 spill',
      '  10.0.2.1:8080 w1 HEALTHY',
    ]);
    const grpc = forProxylessClients(result.assignment);
    expect(grpc.groups.map((g) => `p${g.priority} ${formatLocality(g.locality)} w${g.weight}`)).toEqual(['p0 r/z1 w400000', 'p0 r/z1/~via~192.0.2.20:15443 w400000', 'p0 r/z2 w200000']);
    expectValidForXds(grpc);
  });
});

