/**
 * Drains of a virtual destination (src/topology/virtual-destinations.ts, "Drains"), table-driven: what clients are
 * sent when a cluster, a region or a zone is drained. Three clusters on two networks, each with its own gateway.
 */
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { clusterSchema } from '../../src/model/cluster.js';
import { formatLocality } from '../../src/model/locality.js';
import { endpointSchema, serviceSchema } from '../../src/model/service.js';
import { virtualDestinationSchema, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';
import type { ClusterView, FederatedSnapshot } from '../../src/registry/snapshot.js';
import type { ServiceView } from '../../src/registry/source.js';
import { virtualDestinationAssignment, type ProxyView, type VirtualDestinationAssignment, type VirtualDestinationDrain } from '../../src/topology/index.js';
import { expectValidForXds } from './xds-validity.js';

type EndpointInput = z.input<typeof endpointSchema>;
type ClusterName = 'east-1' | 'east-2' | 'west-1';

const PLACES: Record<ClusterName, { network: string; region: string; zone: string; gateway: string; prefix: string }> = {
  'east-1': { network: 'net-east', region: 'us-east', zone: 'us-east-1a', gateway: '192.0.2.1', prefix: '10.1.0' },
  'east-2': { network: 'net-east', region: 'us-east', zone: 'us-east-1b', gateway: '192.0.2.2', prefix: '10.2.0' },
  'west-1': { network: 'net-west', region: 'us-west', zone: 'us-west-1a', gateway: '192.0.2.3', prefix: '10.3.0' },
};

/** `shop/reviews` with two ready endpoints in each cluster unless given. */
function federation(eps: Partial<Record<ClusterName, EndpointInput[]>> = {}): FederatedSnapshot {
  const views = (Object.keys(PLACES) as ClusterName[]).map((name): [string, ClusterView] => {
    const { gateway, prefix, ...place } = PLACES[name];
    const cluster = clusterSchema.parse({ name, ...place, gateways: [{ address: gateway }] });
    const service = serviceSchema.parse({ cluster: name, namespace: 'shop', name: 'reviews', ports: [{ name: 'grpc', port: 9080 }], labels: {} });
    const endpoints = (eps[name] ?? [{ address: `${prefix}.1` }, { address: `${prefix}.2` }]).map((e) => endpointSchema.parse(e));
    const services = new Map<string, ServiceView>([['shop/reviews', Object.freeze({ service, endpoints })]]);
    return [name, Object.freeze({ cluster, gateways: cluster.gateways, state: 'ready', services })];
  });
  return Object.freeze({ version: 1, createdAt: new Date(0), clusters: new Map(views) });
}

const EAST: ProxyView = { cluster: 'east-1', network: 'net-east', locality: { region: 'us-east', zone: 'us-east-1a' } };
const WEST: ProxyView = { cluster: 'west-1', network: 'net-west', locality: { region: 'us-west', zone: 'us-west-1a' } };

const vd = (failover: VirtualDestinationInput['failover'] = {}) =>
  virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ name: 'reviews' }], failover });

/** One line per group (`p<priority> <locality> w<weight> <reason>`), and one per endpoint, indented. */
function render({ assignment, placements }: VirtualDestinationAssignment): string[] {
  return assignment.groups.flatMap((g, i) => [
    `p${String(g.priority)} ${formatLocality(g.locality)} w${String(g.weight)} ${placements[i]?.reason ?? '?'}`,
    ...g.endpoints.map((e) => `  ${e.address} ${e.health}${e.via.kind === 'gateway' ? ` via ${e.via.clusters.join(',')}` : ''}`),
  ]);
}

interface Case {
  name: string;
  drains: VirtualDestinationDrain[];
  proxy: ProxyView;
  snapshot?: FederatedSnapshot;
  failover?: VirtualDestinationInput['failover'];
  want: string[];
}

const EAST_UNDRAINED = [
  'p0 us-east/us-east-1a w4 same-zone',
  '  10.1.0.1 HEALTHY',
  '  10.1.0.2 HEALTHY',
  'p1 us-east/us-east-1b w4 same-region',
  '  10.2.0.1 HEALTHY',
  '  10.2.0.2 HEALTHY',
  'p2 us-west/us-west-1a w4 other-region',
  '  192.0.2.3 HEALTHY via west-1',
];

const cases: Case[] = [
  { name: 'no drain: locality failover as usual', drains: [], proxy: EAST, want: EAST_UNDRAINED },
  {
    name: "a cluster: its endpoints DRAINING, their group weighs 1, so the client's first priority has nothing to pick",
    drains: [{ cluster: 'east-1' }],
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w1 same-zone',
      '  10.1.0.1 DRAINING',
      '  10.1.0.2 DRAINING',
      'p1 us-east/us-east-1b w4 same-region',
      '  10.2.0.1 HEALTHY',
      '  10.2.0.2 HEALTHY',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
  {
    name: 'a zone alone: the endpoints whose locality is in it, whatever their cluster',
    drains: [{ zone: 'us-east-1b' }],
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w4 same-zone',
      '  10.1.0.1 HEALTHY',
      '  10.1.0.2 HEALTHY',
      'p1 us-east/us-east-1b w1 same-region',
      '  10.2.0.1 DRAINING',
      '  10.2.0.2 DRAINING',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
  {
    name: 'a region, seen from another network: the gateways standing only for drained endpoints are UNHEALTHY, weight 1',
    drains: [{ region: 'us-east' }],
    proxy: WEST,
    want: [
      'p0 us-west/us-west-1a w4 same-zone',
      '  10.3.0.1 HEALTHY',
      '  10.3.0.2 HEALTHY',
      'p1 us-east/us-east-1a w1 other-region',
      '  192.0.2.1 UNHEALTHY via east-1',
      'p1 us-east/us-east-1b w1 other-region',
      '  192.0.2.2 UNHEALTHY via east-2',
    ],
  },
  {
    name: 'a zone of one cluster, where only some endpoints are: only those',
    drains: [{ cluster: 'east-1', zone: 'us-east-1c' }],
    snapshot: federation({ 'east-1': [{ address: '10.1.0.1' }, { address: '10.1.0.2', locality: { region: 'us-east', zone: 'us-east-1c' } }] }),
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w2 same-zone',
      '  10.1.0.1 HEALTHY',
      'p1 us-east/us-east-1b w4 same-region',
      '  10.2.0.1 HEALTHY',
      '  10.2.0.2 HEALTHY',
      'p1 us-east/us-east-1c w1 same-region',
      '  10.1.0.2 DRAINING',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
  { name: 'every field must match: east-1 has nothing in us-east-1b', drains: [{ cluster: 'east-1', zone: 'us-east-1b' }], proxy: EAST, want: EAST_UNDRAINED },
  { name: 'a drain that names nothing drains nothing', drains: [{}], proxy: EAST, want: EAST_UNDRAINED },
  {
    name: 'an unready endpoint stays UNHEALTHY; a ready one of the same cluster turns DRAINING',
    drains: [{ cluster: 'east-1' }],
    snapshot: federation({ 'east-1': [{ address: '10.1.0.1' }, { address: '10.1.0.2', health: 'unready' }] }),
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w1 same-zone',
      '  10.1.0.1 DRAINING',
      '  10.1.0.2 UNHEALTHY',
      'p1 us-east/us-east-1b w4 same-region',
      '  10.2.0.1 HEALTHY',
      '  10.2.0.2 HEALTHY',
      'p2 us-west/us-west-1a w4 other-region',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
  {
    name: "weights: a drained cluster's part goes to its tier neighbours",
    drains: [{ cluster: 'east-1' }],
    failover: { policy: 'priority', order: [{ region: 'us-east' }], weights: [{ cluster: 'east-1', weight: 50 }, { cluster: 'east-2', weight: 50 }, { cluster: 'west-1', weight: 1 }] },
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w1 priority-order',
      '  10.1.0.1 DRAINING',
      '  10.1.0.2 DRAINING',
      'p0 us-east/us-east-1b w1000000 priority-order',
      '  10.2.0.1 HEALTHY',
      '  10.2.0.2 HEALTHY',
      'p1 us-west/us-west-1a w1000000 unordered',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
  {
    name: 'minHealthyPercent: a tier half drained keeps half its traffic and spills the rest',
    drains: [{ zone: 'us-east-1c' }],
    snapshot: federation({ 'east-1': [{ address: '10.1.0.1' }, { address: '10.1.0.2', locality: { region: 'us-east', zone: 'us-east-1c' } }] }),
    failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'east-2' }], minHealthyPercent: 100 },
    proxy: EAST,
    want: [
      'p0 us-east/us-east-1a w500000 priority-order',
      '  10.1.0.1 HEALTHY',
      'p0 us-east/us-east-1b w500000 spill',
      '  10.2.0.1 HEALTHY',
      '  10.2.0.2 HEALTHY',
      'p0 us-east/us-east-1c w1 priority-order',
      '  10.1.0.2 DRAINING',
      'p1 us-west/us-west-1a w1000000 unordered',
      '  192.0.2.3 HEALTHY via west-1',
    ],
  },
];

describe('virtual destination drains', () => {
  it.each(cases.map((c) => [c.name, c] as const))('%s', (_, c) => {
    const result = virtualDestinationAssignment(c.snapshot ?? federation(), vd(c.failover), 9080, c.proxy, c.drains);
    expect(render(result)).toEqual(c.want);
    expectValidForXds(result.assignment);
  });

  it('leaves the snapshot untouched: the same call without drains gives the undrained assignment again', () => {
    const snapshot = federation();
    virtualDestinationAssignment(snapshot, vd(), 9080, EAST, [{ cluster: 'east-1' }]);
    expect(render(virtualDestinationAssignment(snapshot, vd(), 9080, EAST))).toEqual(EAST_UNDRAINED);
  });
});
