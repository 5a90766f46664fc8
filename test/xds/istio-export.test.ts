/**
 * The Istio export of virtual destinations (src/xds/istio-export.ts) over a registry of three static clusters on two
 * networks: east-1 (us-east/us-east-1a) and east-2 (us-east/us-east-1b) on net-east, west-1 (us-west/us-west-1a) on
 * net-west, one east-west gateway each (192.0.2.1-3), and `shop/reviews` (grpc 9080 → 8080) with two endpoints in each.
 * net-east has two gateways, so every endpoint weighs 2 (Istio's LCM scaling, as split horizon applies it).
 *
 * The central check reads the exported resources the way istiod does (loadbalancer.go: failoverPriority, locality
 * failover, priorities renumbered without gaps; Envoy shares a priority by endpoint weight) and compares the result
 * with what meshfed's EDS gives a proxy of the same cluster: the same priority and the same share for every address.
 */
import { DestinationRule, type IDestinationRule } from '@kubernetes-models/istio/networking.istio.io/v1/DestinationRule';
import { ServiceEntry, type IServiceEntry } from '@kubernetes-models/istio/networking.istio.io/v1/ServiceEntry';
import { afterAll, describe, expect, expectTypeOf, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import type { EndpointHealth } from '../../src/model/service.js';
import { virtualDestinationSchema, type NamedVirtualDestination, type VirtualDestination, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';
import { Registry } from '../../src/registry/registry.js';
import type { FederatedSnapshot } from '../../src/registry/snapshot.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { virtualDestinationAssignment } from '../../src/topology/index.js';
import {
  DEFAULT_OUTLIER_DETECTION,
  IstioExportError,
  istioExport,
  istioExportYaml,
  type IstioDestinationRule,
  type IstioExportOptions,
  type IstioLocalityLbSetting,
  type IstioObjectMeta,
  type IstioOutlierDetection,
  type IstioResource,
  type IstioServiceEntry,
  type IstioServicePort,
  type IstioWorkloadEntry,
} from '../../src/xds/istio-export.js';

type ClusterName = 'east-1' | 'east-2' | 'west-1';

interface ClusterSpec {
  name: string;
  network: string;
  region: string;
  zone: string;
  gateways: { address: string }[];
  /** its `shop/reviews` endpoints: PODS.1 and PODS.2 */
  pods: string;
}

const CLUSTERS: ClusterSpec[] = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', gateways: [{ address: '192.0.2.1' }], pods: '10.1.0' },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', gateways: [{ address: '192.0.2.2' }], pods: '10.2.0' },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', gateways: [{ address: '192.0.2.3' }], pods: '10.3.0' },
];
const NAMES: ClusterName[] = ['east-1', 'east-2', 'west-1'];

const registries: Registry[] = [];
afterAll(async () => {
  for (const registry of registries.splice(0)) await registry.close();
});

interface FederationOptions {
  /** health of single endpoints by address (default ready) */
  health?: Record<string, EndpointHealth>;
  /** `shop/ratings` (grpc 9090 → 7070) with one endpoint, 10.3.1.1, in west-1 */
  ratings?: boolean;
  /** other clusters than the three */
  clusters?: ClusterSpec[];
}

/** The federation as the registry publishes it. */
function federation({ health = {}, ratings = false, clusters = CLUSTERS }: FederationOptions = {}): FederatedSnapshot {
  const registry = new Registry();
  registries.push(registry);
  for (const { pods, ...input } of clusters) {
    const endpoints = [1, 2].map((n) => ({ address: `${pods}.${n}`, health: health[`${pods}.${n}`] ?? 'ready' }));
    const services = [staticServiceSchema.parse({ namespace: 'shop', name: 'reviews', ports: [{ name: 'grpc', port: 9080, targetPort: 8080 }], endpoints })];
    if (ratings && input.name === 'west-1') {
      services.push(staticServiceSchema.parse({ namespace: 'shop', name: 'ratings', ports: [{ name: 'grpc', port: 9090, targetPort: 7070 }], endpoints: [{ address: '10.3.1.1' }] }));
    }
    registry.add(clusterSchema.parse(input), new StaticSource(input.name, services));
  }
  return registry.flush();
}

const SNAPSHOT = federation();

type FailoverInput = VirtualDestinationInput['failover'];

const reviewsVd = (failover: FailoverInput = {}, more: Partial<VirtualDestinationInput> = {}): NamedVirtualDestination => ({
  name: 'reviews',
  spec: virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ name: 'reviews' }], failover, ...more }),
});

const VIPS = new Map([['reviews.global', { ipv4: '240.240.0.1', ipv6: 'fd6d:6573:6866::1' }]]);

function exportFor(cluster: string, vds: NamedVirtualDestination[], more: Partial<IstioExportOptions> = {}) {
  return istioExport({ snapshot: SNAPSHOT, virtualDestinations: vds, cluster, vips: (host) => VIPS.get(host), ...more });
}

/** The ServiceEntry and DestinationRule of a one-VD export. */
function pair(resources: IstioResource[]): { se: IstioServiceEntry; dr: IstioDestinationRule } {
  const [se, dr] = resources;
  if (se?.kind !== 'ServiceEntry' || dr?.kind !== 'DestinationRule' || resources.length !== 2) throw new Error(`expected a ServiceEntry and a DestinationRule, got ${resources.map((r) => r.kind).join(', ')}`);
  return { se, dr };
}

/** Each resource against Istio 1.29's v1 CRD schemas (@kubernetes-models/istio). */
function expectValidForIstio(resources: readonly IstioResource[]): void {
  for (const resource of resources) {
    const model = resource.kind === 'ServiceEntry' ? new ServiceEntry(resource) : new DestinationRule(resource);
    expect(() => {
      model.validate();
    }, `${resource.kind} ${resource.metadata.name}`).not.toThrow();
  }
}

function clusterOf(snapshot: FederatedSnapshot, name: string) {
  const view = snapshot.clusters.get(name);
  if (!view) throw new Error(`no cluster ${name}`);
  return view.cluster;
}

/** Istio's util.LbPriority for a proxy that names no subzone: 0 same region/zone/subzone, 1 same region/zone, 2 same region, 3 elsewhere. */
function lbPriority(proxy: { region: string; zone: string }, [region = '', zone = '', subzone = '']: string[]): number {
  if (region !== proxy.region) return 3;
  if (zone !== proxy.zone) return 2;
  return subzone === '' ? 0 : 1;
}

/**
 * What istiod makes of the export for a sidecar of cluster `name`, one line per endpoint: `ADDRESS pPRIORITY SHARE`.
 * Priorities as pilot/pkg/networking/core/loadbalancer/loadbalancer.go sets them: none when locality LB is off;
 * applyFailoverPriorityPerLocality (N − the index of the first label, with its `=value` override, the endpoint does not
 * match); else applyLocalityFailover (LbPriority, then 4 for another region than the `to` of the first failover entry
 * from the proxy's region). Then renumbered without gaps. A priority's traffic is shared by endpoint weight: Istio
 * weighs a locality as the sum of its endpoints' weights, so Envoy's locality weighting gives the same shares.
 */
function istioSends({ se, dr }: { se: IstioServiceEntry; dr: IstioDestinationRule }, snapshot: FederatedSnapshot, name: string): string[] {
  const proxy = clusterOf(snapshot, name);
  const lb = dr.spec.trafficPolicy.loadBalancer.localityLbSetting;
  const priorityOf = (e: IstioWorkloadEntry): number => {
    if (!lb.enabled) return 0;
    if (lb.failoverPriority) {
      const miss = lb.failoverPriority.findIndex((entry) => {
        const [key = '', value] = entry.split('=');
        return e.labels?.[key] !== value;
      });
      return miss === -1 ? 0 : lb.failoverPriority.length - miss;
    }
    const locality = (e.locality ?? '').split('/');
    const priority = lbPriority(proxy, locality);
    const failover = lb.failover?.find((f) => f.from === proxy.region);
    return priority === 3 && failover !== undefined && failover.to !== locality[0] ? 4 : priority;
  };
  const ranked = se.spec.endpoints.map((e) => ({ e, raw: priorityOf(e) }));
  const levels = [...new Set(ranked.map((r) => r.raw))].sort((a, b) => a - b);
  const totals = new Map<number, number>();
  for (const { e, raw } of ranked) totals.set(raw, (totals.get(raw) ?? 0) + e.weight);
  return ranked.map(({ e, raw }) => `${e.address} p${levels.indexOf(raw)} ${(e.weight / (totals.get(raw) ?? 1)).toFixed(4)}`).sort();
}

/** What meshfed's EDS gives a proxy of cluster `name` on port 9080, in the same form. */
function meshfedSends(snapshot: FederatedSnapshot, vd: VirtualDestination, name: string): string[] {
  const { network, region, zone } = clusterOf(snapshot, name);
  const { assignment } = virtualDestinationAssignment(snapshot, vd, 9080, { cluster: name, network, locality: { region, zone } });
  const totals = new Map<number, number>();
  for (const g of assignment.groups) totals.set(g.priority, (totals.get(g.priority) ?? 0) + g.weight);
  return assignment.groups
    .flatMap((g) => {
      const healthy = g.endpoints.reduce((sum, e) => sum + (e.health === 'HEALTHY' ? e.weight : 0), 0);
      return g.endpoints.map((e) => `${e.address} p${g.priority} ${(((g.weight / (totals.get(g.priority) ?? 1)) * e.weight) / healthy).toFixed(4)}`);
    })
    .sort();
}

/** How the DestinationRule encodes the tiers. */
function encoding(lb: IstioLocalityLbSetting): 'locality failover' | 'failoverPriority' | 'locality LB off' {
  if (!lb.enabled) return 'locality LB off';
  return lb.failoverPriority ? 'failoverPriority' : 'locality failover';
}

const MAPPINGS = [
  { from: 'us-east', to: ['us-west'] },
  { from: 'us-west', to: ['us-east'] },
];

const WEIGHTED_LOCALITY: FailoverInput = { regionMappings: MAPPINGS, weights: [{ cluster: 'east-1', weight: 3 }, { cluster: 'west-1', weight: 1 }] };
const WEIGHTED_PRIORITY: FailoverInput = { policy: 'priority', order: [{ region: 'us-east' }], weights: [{ cluster: 'east-1', weight: 3 }, { cluster: 'east-2', weight: 1 }, { cluster: 'west-1', weight: 1 }] };

interface Case {
  name: string;
  failover: FailoverInput;
  /** the encoding expected for each cluster */
  encodings: Record<ClusterName, ReturnType<typeof encoding>>;
  /** the warning expected about tiers fixed to the cluster's locality, by cluster */
  fixedTiers?: Partial<Record<ClusterName, RegExp>>;
}

const CASES: Case[] = [
  {
    name: 'locality failover with regionMappings',
    failover: { regionMappings: MAPPINGS },
    encodings: { 'east-1': 'locality failover', 'east-2': 'locality failover', 'west-1': 'locality failover' },
  },
  {
    name: 'a regionMapping to two regions',
    failover: { regionMappings: [{ from: 'us-east', to: ['us-west', 'eu-central'] }] },
    encodings: { 'east-1': 'failoverPriority', 'east-2': 'failoverPriority', 'west-1': 'failoverPriority' },
    fixedTiers: {
      'east-1': /regionMappings maps us-east to 2 regions, and Istio's failover takes one, so every proxy of cluster east-1 gets the tiers of a proxy at us-east\/us-east-1a/,
      'east-2': /at us-east\/us-east-1b/,
      'west-1': /at us-west\/us-west-1a/,
    },
  },
  {
    name: 'an explicit priority order',
    failover: { policy: 'priority', order: [{ cluster: 'east-2' }, { cluster: 'west-1' }] },
    encodings: { 'east-1': 'failoverPriority', 'east-2': 'failoverPriority', 'west-1': 'failoverPriority' },
  },
  {
    name: 'weights with locality failover: a weight-0 cluster waits as standby only where it shares a tier',
    failover: WEIGHTED_LOCALITY,
    encodings: { 'east-1': 'locality failover', 'east-2': 'locality failover', 'west-1': 'failoverPriority' },
    fixedTiers: { 'west-1': /weight-0 clusters wait in a standby tier of their own, so every proxy of cluster west-1 gets the tiers of a proxy at us-west\/us-west-1a/ },
  },
  {
    name: 'weights with a priority order: one tier split 3:1 across networks',
    failover: WEIGHTED_PRIORITY,
    encodings: { 'east-1': 'failoverPriority', 'east-2': 'failoverPriority', 'west-1': 'failoverPriority' },
  },
];

describe('istioExport', () => {
  describe.each(CASES)('$name', (c) => {
    it.each(NAMES)('exported for %s: Istio gives every endpoint the priority and the share meshfed gives it', (name) => {
      const vd = reviewsVd(c.failover);
      const { resources, warnings } = exportFor(name, [vd]);
      const exported = pair(resources);
      expect(encoding(exported.dr.spec.trafficPolicy.loadBalancer.localityLbSetting)).toBe(c.encodings[name]);
      expect(istioSends(exported, SNAPSHOT, name)).toEqual(meshfedSends(SNAPSHOT, vd.spec, name));
      expectValidForIstio(resources);
      const fixed = c.fixedTiers?.[name];
      const fixedWarnings = warnings.filter((w) => w.includes('gets the tiers of a proxy at'));
      if (fixed) expect(fixedWarnings).toEqual([expect.stringMatching(fixed)]);
      else expect(fixedWarnings).toEqual([]);
    });
  });

  it('from east-1: its own network directly by pod IP and port, west-1 once through its gateway, with its locality and weight', () => {
    const { se, dr } = pair(exportFor('east-1', [reviewsVd({ regionMappings: MAPPINGS })]).resources);
    const direct = (address: string, zone: string): IstioWorkloadEntry => ({ address, ports: { 'grpc-9080': 8080 }, network: 'net-east', locality: `us-east/${zone}`, weight: 2 });
    expect(se.spec).toEqual({
      hosts: ['reviews.global'],
      addresses: ['240.240.0.1', 'fd6d:6573:6866::1'],
      ports: [{ number: 9080, name: 'grpc-9080', protocol: 'GRPC', targetPort: 8080 }],
      location: 'MESH_INTERNAL',
      resolution: 'STATIC',
      endpoints: [
        direct('10.1.0.1', 'us-east-1a'),
        direct('10.1.0.2', 'us-east-1a'),
        direct('10.2.0.1', 'us-east-1b'),
        direct('10.2.0.2', 'us-east-1b'),
        // both west-1 endpoints behind one gateway: weight 2 + 2, the locality of the endpoints it stands for
        { address: '192.0.2.3', ports: { 'grpc-9080': 15443 }, labels: { 'meshfed.io/network': 'net-west' }, network: 'net-east', locality: 'us-west/us-west-1a', weight: 4 },
      ],
    });
    expect(dr.spec).toEqual({
      host: 'reviews.global',
      trafficPolicy: {
        tls: { mode: 'ISTIO_MUTUAL' },
        loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: { enabled: true, failover: [{ from: 'us-east', to: 'us-west' }, { from: 'us-west', to: 'us-east' }] } },
        outlierDetection: DEFAULT_OUTLIER_DETECTION,
      },
    });
    expect(se.metadata).toEqual({
      name: 'reviews',
      namespace: 'istio-system',
      labels: { 'app.kubernetes.io/managed-by': 'meshfed', 'meshfed.io/virtual-destination': 'reviews' },
      annotations: { 'meshfed.io/exported-for-cluster': 'east-1', 'meshfed.io/snapshot-version': String(SNAPSHOT.version) },
    });
  });

  it('from west-1: both east clusters through their own gateways, one endpoint each, each in its own zone', () => {
    const { se } = pair(exportFor('west-1', [reviewsVd()]).resources);
    expect(se.spec.endpoints.map((e) => `${e.address}:${e.ports['grpc-9080'] ?? 0} ${e.locality ?? ''} w${e.weight} ${e.labels?.['meshfed.io/network'] ?? 'direct'} via ${e.network}`)).toEqual([
      '10.3.0.1:8080 us-west/us-west-1a w2 direct via net-west',
      '10.3.0.2:8080 us-west/us-west-1a w2 direct via net-west',
      '192.0.2.1:15443 us-east/us-east-1a w4 net-east via net-west',
      '192.0.2.2:15443 us-east/us-east-1b w4 net-east via net-west',
    ]);
  });

  it('encodes an explicit order as failoverPriority labels that stock Istio matches against their given values', () => {
    const { se, dr } = pair(exportFor('east-1', [reviewsVd({ policy: 'priority', order: [{ cluster: 'east-2' }, { cluster: 'west-1' }] })]).resources);
    expect(dr.spec.trafficPolicy.loadBalancer.localityLbSetting).toEqual({ enabled: true, failoverPriority: ['failover.meshfed.io/ahead-of-2=true', 'failover.meshfed.io/ahead-of-1=true'] });
    const ahead = { 'failover.meshfed.io/ahead-of-1': 'true', 'failover.meshfed.io/ahead-of-2': 'true' };
    expect(se.spec.endpoints.map((e) => [e.address, e.labels ?? {}])).toEqual([
      ['10.2.0.1', ahead],
      ['10.2.0.2', ahead],
      ['192.0.2.3', { 'meshfed.io/network': 'net-west', 'failover.meshfed.io/ahead-of-2': 'true' }],
      ['10.1.0.1', {}],
      ['10.1.0.2', {}],
    ]);
  });

  it('carries weights in the endpoint weights, so a tier splits 3:1 across two gateways', () => {
    const { se } = pair(exportFor('west-1', [reviewsVd(WEIGHTED_PRIORITY)]).resources);
    expect(se.spec.endpoints.map((e) => `${e.address} w${e.weight}`)).toEqual(['192.0.2.1 w750000', '192.0.2.2 w250000', '10.3.0.1 w500000', '10.3.0.2 w500000']);
  });

  it('two weighted clusters in one zone: one Istio locality, split 1:3 by endpoint weights, with the real subzone', () => {
    const snapshot = federation({
      clusters: [
        { name: 'zone-a', network: 'net-a', region: 'r', zone: 'z', gateways: [], pods: '10.8.0' },
        { name: 'zone-b', network: 'net-a', region: 'r', zone: 'z', gateways: [], pods: '10.9.0' },
      ],
    });
    const vd = reviewsVd({ weights: [{ cluster: 'zone-a', weight: 1 }, { cluster: 'zone-b', weight: 3 }] });
    const { resources } = exportFor('zone-a', [vd], { snapshot });
    const exported = pair(resources);
    // meshfed tells the two groups apart by sub_zone r/z/~zone-a and r/z/~zone-b; Istio needs no such thing
    expect(exported.se.spec.endpoints.map((e) => `${e.address} ${e.locality ?? '-'} w${e.weight}`)).toEqual(['10.8.0.1 r/z w125000', '10.8.0.2 r/z w125000', '10.9.0.1 r/z w375000', '10.9.0.2 r/z w375000']);
    expect(istioSends(exported, snapshot, 'zone-a')).toEqual(meshfedSends(snapshot, vd.spec, 'zone-a'));
  });

  it('turns locality load balancing off when everything is one tier, so that Istio adds no ladder of its own', () => {
    const { dr } = pair(exportFor('east-1', [reviewsVd({ policy: 'priority', order: [{ region: 'eu-central' }] })]).resources);
    expect(dr.spec.trafficPolicy.loadBalancer.localityLbSetting).toEqual({ enabled: false });
  });

  describe('warnings', () => {
    it('a plain export warns of the default outlier detection and of endpoints frozen at export, and of nothing else', () => {
      expect(exportFor('east-1', [reviewsVd({ regionMappings: MAPPINGS })]).warnings).toEqual([
        'reviews.global: has no outlierDetection, and Istio applies locality failover only with one: the DestinationRule carries consecutive5xxErrors 5, interval 10s, baseEjectionTime 30s, maxEjectionPercent 100',
        `the endpoints and gateways are those of snapshot version ${SNAPSHOT.version}: Istio will not follow later changes to them (meshfed's EDS does), so export again when they change`,
      ]);
    });

    it("translates the VD's outlier detection to Istio's fields, durations in seconds, and then has nothing to say about it", () => {
      const vd = reviewsVd({}, { outlierDetection: { consecutive5xx: 3, consecutiveGatewayErrors: 2, interval: '1m', baseEjectionTime: '1h30m', maxEjectionPercent: 50 } });
      const { resources, warnings } = exportFor('east-1', [vd]);
      const expected: IstioOutlierDetection = { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: '60s', baseEjectionTime: '5400s', maxEjectionPercent: 50 };
      expect(pair(resources).dr.spec.trafficPolicy.outlierDetection).toEqual(expected);
      expect(warnings.filter((w) => w.includes('outlierDetection'))).toEqual([]);
      expectValidForIstio(resources);
    });

    it('failure-percentage ejection has no DestinationRule field: left out, and said so', () => {
      const { resources, warnings } = exportFor('east-1', [reviewsVd({}, { outlierDetection: { consecutive5xx: 2, failurePercentage: { threshold: 50 } } })]);
      expect(pair(resources).dr.spec.trafficPolicy.outlierDetection).toEqual({ consecutive5xxErrors: 2 });
      expect(warnings).toContainEqual(expect.stringMatching(/^reviews\.global: outlierDetection\.failurePercentage has no DestinationRule field .*left out/));
    });

    it('minHealthyPercent has no Istio setting: Envoy spills by its overprovisioning factor', () => {
      const { warnings } = exportFor('east-1', [reviewsVd({ minHealthyPercent: 80 })]);
      expect(warnings).toContainEqual(expect.stringMatching(/^reviews\.global: minHealthyPercent 80 has no Istio setting: Envoy moves .* fewer than 71\.4 % .*overprovisioning factor 1\.4/));
    });

    it('no VIP: no addresses, and a warning', () => {
      const { resources, warnings } = exportFor('east-1', [reviewsVd()], { vips: () => undefined });
      expect(pair(resources).se.spec.addresses).toBeUndefined();
      expect(warnings).toContainEqual(expect.stringMatching(/^reviews\.global: has no VIP, so the ServiceEntry has no addresses/));
      expectValidForIstio(resources);
    });

    it('leaves out pods not ready at export and keeps a gateway with nothing healthy behind it at weight 1, saying so', () => {
      const snapshot = federation({ health: { '10.1.0.2': 'unready', '10.3.0.1': 'unready', '10.3.0.2': 'terminating' } });
      const { resources, warnings } = exportFor('east-1', [reviewsVd()], { snapshot });
      expect(pair(resources).se.spec.endpoints.map((e) => `${e.address} w${e.weight}`)).toEqual(['10.1.0.1 w2', '10.2.0.1 w2', '10.2.0.2 w2', '192.0.2.3 w1']);
      expect(warnings).toContainEqual('reviews.global: left out 1 endpoint(s) not ready at export (10.1.0.2:8080); export again once they are');
      expect(warnings).toContainEqual(expect.stringMatching(/^reviews\.global: gateway\(s\) 192\.0\.2\.3:15443 had no healthy backend behind them at export: kept with weight 1/));
    });

    it('a VD whose backends are nowhere: an empty ServiceEntry, and a warning that every request fails', () => {
      const { resources, warnings } = exportFor('east-1', [reviewsVd({}, { backends: [{ name: 'nope' }] })]);
      expect(pair(resources).se.spec.endpoints).toEqual([]);
      expect(warnings).toContainEqual('reviews.global: no backend is reachable from cluster east-1: the ServiceEntry has no endpoints and every request fails');
    });
  });

  describe('ports', () => {
    it('names an unnamed port <protocol>-<number> and maps each port to the endpoints’ own port', () => {
      const vd = reviewsVd({}, { ports: [{ number: 9080, protocol: 'GRPC' }, { number: 80, protocol: 'HTTP', targetPort: 9080, name: 'web' }] });
      const { resources } = exportFor('west-1', [vd]);
      const { se } = pair(resources);
      const expected: IstioServicePort[] = [
        { number: 9080, name: 'grpc-9080', protocol: 'GRPC', targetPort: 8080 },
        { number: 80, name: 'web', protocol: 'HTTP', targetPort: 8080 },
      ];
      expect(se.spec.ports).toEqual(expected);
      expect(se.spec.endpoints.map((e) => [e.address, e.ports])).toEqual([
        ['10.3.0.1', { 'grpc-9080': 8080, web: 8080 }],
        ['10.3.0.2', { 'grpc-9080': 8080, web: 8080 }],
        ['192.0.2.1', { 'grpc-9080': 15443, web: 15443 }],
        ['192.0.2.2', { 'grpc-9080': 15443, web: 15443 }],
      ]);
      expectValidForIstio(resources);
    });

    it('a derived name yields to a name the VD gave; ports served by different backends are warned about', () => {
      const snapshot = federation({ ratings: true });
      const vd = reviewsVd({}, { backends: [{ name: 'reviews' }, { name: 'ratings' }], ports: [{ number: 9080, protocol: 'GRPC' }, { number: 9090, protocol: 'GRPC', name: 'grpc-9080' }] });
      const { resources, warnings } = exportFor('east-1', [vd], { snapshot });
      const { se } = pair(resources);
      expect(se.spec.ports.map((p) => `${p.number} ${p.name} ${p.targetPort ?? '-'}`)).toEqual(['9080 grpc-9080-2 8080', '9090 grpc-9080 -']);
      expect(se.spec.endpoints.find((e) => e.address === '192.0.2.3')?.ports).toEqual({ 'grpc-9080-2': 15443, 'grpc-9080': 15443 });
      expect(warnings).toContainEqual(
        'reviews.global: 192.0.2.3 stand(s) in another tier, locality or weight for some ports: Istio has one endpoint list for all ports, exported as for the first port',
      );
      expect(warnings).toContainEqual(
        'reviews.global: Istio sends every port to every endpoint of a ServiceEntry, but 10.1.0.1 (port 9090), 10.1.0.2 (port 9090), 10.2.0.1 (port 9090), 10.2.0.2 (port 9090) do(es) not serve that port',
      );
      expectValidForIstio(resources);
    });
  });

  describe('output', () => {
    it("validates against Istio's v1 CRD schemas and writes only fields they define", () => {
      const { resources } = exportFor('west-1', [reviewsVd(WEIGHTED_LOCALITY, { outlierDetection: { consecutive5xx: 1 } })]);
      expectValidForIstio(resources);
      // the schemas let unknown fields through (Kubernetes would prune them silently): the compiler checks the names
      type SeSpec = IServiceEntry['spec'];
      type DrSpec = NonNullable<IDestinationRule['spec']>;
      type Policy = NonNullable<DrSpec['trafficPolicy']>;
      expectTypeOf<keyof IstioServiceEntry['spec']>().toExtend<keyof SeSpec>();
      expectTypeOf<keyof IstioServicePort>().toExtend<keyof NonNullable<SeSpec['ports']>[number]>();
      expectTypeOf<keyof IstioWorkloadEntry>().toExtend<keyof NonNullable<SeSpec['endpoints']>[number]>();
      expectTypeOf<keyof IstioObjectMeta>().toExtend<keyof NonNullable<IServiceEntry['metadata']>>();
      expectTypeOf<keyof IstioDestinationRule['spec']>().toExtend<keyof DrSpec>();
      expectTypeOf<keyof IstioDestinationRule['spec']['trafficPolicy']>().toExtend<keyof Policy>();
      expectTypeOf<keyof IstioLocalityLbSetting>().toExtend<keyof NonNullable<NonNullable<Policy['loadBalancer']>['localityLbSetting']>>();
      expectTypeOf<keyof IstioOutlierDetection>().toExtend<keyof NonNullable<Policy['outlierDetection']>>();
    });

    it('the schema check catches a misspelled enum value (it is not vacuous)', () => {
      const { se } = pair(exportFor('east-1', [reviewsVd()]).resources);
      expect(() => {
        new ServiceEntry({ ...se, spec: { ...se.spec, location: 'MESH_INTERNL' } } as never).validate();
      }).toThrow(/location/);
    });

    it('round-trips through YAML as one document per resource, ServiceEntry then DestinationRule per VD', () => {
      const other: NamedVirtualDestination = { name: 'ratings', spec: virtualDestinationSchema.parse({ hostname: 'ratings.global', ports: [{ number: 9080, protocol: 'TCP' }], backends: [{ name: 'reviews' }] }) };
      const { resources } = exportFor('east-2', [reviewsVd({ policy: 'priority', order: [{ cluster: 'west-1' }] }), other]);
      const text = istioExportYaml(resources);
      const docs = parseAllDocuments(text);
      expect(docs.map((d) => d.errors)).toEqual([[], [], [], []]);
      expect(docs.map((d) => d.toJS() as unknown)).toEqual(resources);
      expect(resources.map((r) => `${r.kind} ${r.metadata.name}`)).toEqual(['ServiceEntry reviews', 'DestinationRule reviews', 'ServiceEntry ratings', 'DestinationRule ratings']);
      // label values "true" stay strings, as Kubernetes requires
      expect(text).toContain('failover.meshfed.io/ahead-of-1: "true"');
      expect(istioExportYaml([])).toBe('');
    });

    it('puts the resources in the namespace asked for', () => {
      const { resources } = exportFor('east-1', [reviewsVd()], { namespace: 'mesh-config' });
      expect(resources.map((r) => r.metadata.namespace)).toEqual(['mesh-config', 'mesh-config']);
    });
  });

  describe('bad input', () => {
    it.each([
      ['an unknown cluster', { cluster: 'nope' }, 'cluster', 'cluster "nope" is not registered (registered: east-1, east-2, west-1)'],
      ['a namespace that is no namespace name', { namespace: 'Istio_System' }, 'namespace', 'namespace "Istio_System" is not a Kubernetes namespace name: lowercase letters, digits and "-", at most 63'],
      ['a VIP that is no IP address', { vips: () => ({ ipv4: 'reviews' }) }, 'vips', 'the VIP "reviews" of reviews.global is not an IP address'],
    ] as const)('%s: a clear error naming the option', (_, more, field, message) => {
      const call = () => istioExport({ snapshot: SNAPSHOT, virtualDestinations: [reviewsVd()], cluster: 'east-1', vips: (host) => VIPS.get(host), ...more });
      expect(call).toThrow(IstioExportError);
      expect(call).toThrow(message);
      try {
        call();
      } catch (error) {
        expect((error as IstioExportError).field).toBe(field);
      }
    });

    it('an empty federation says that no cluster is registered', () => {
      const empty: FederatedSnapshot = { version: 0, createdAt: new Date(0), clusters: new Map() };
      expect(() => istioExport({ snapshot: empty, virtualDestinations: [], cluster: 'east-1', vips: () => undefined })).toThrow('cluster "east-1" is not registered (no cluster is)');
    });
  });
});
