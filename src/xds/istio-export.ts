/**
 * Virtual destinations for clusters whose data plane is Istio's Envoy sidecars (issue 6, `meshfed vd export`): per
 * virtual destination, the ServiceEntry and DestinationRule that make a stock Istio mesh in cluster C send its traffic
 * as meshfed's EDS would. This module only encodes. What C sees (which endpoints directly, which remote networks
 * through which gateway, in which tier, with which weight) is virtualDestinationAssignment's answer for a proxy at C's
 * network and registered region and zone, one VD port at a time.
 *
 * Istio 1.22 or later (networking.istio.io/v1 came with 1.22: istio.io blog "Introducing Istio v1 APIs", 2024).
 * Istio's code read for what follows (istio/istio): pilot/pkg/networking/core/loadbalancer/loadbalancer.go,
 * pilot/pkg/networking/core/cluster_traffic_policy.go, pilot/pkg/xds/endpoints/endpoint_builder.go,
 * pilot/pkg/serviceregistry/serviceentry/network.go, pkg/config/validation.
 *
 * **ServiceEntry.** `hosts` the hostname, `addresses` its VIPs, MESH_INTERNAL, STATIC. A port keeps its name, or gets
 * `<protocol>-<number>` (`grpc-9080`, Istio's protocol-prefix convention; a DNS-1123 label as Istio's port-name
 * validation wants); `targetPort` is the endpoints' port when they all use one. One endpoint per address: C's own
 * network's backends by pod IP and port, each other network's gateway once (its port, 15443 by default, for every VD
 * port) with the locality topology gave it and the weight it carries, and `meshfed.io/network` naming the network it
 * leads to. Every endpoint's `network` is C's: Istio swaps an endpoint for its network's gateways when that network is
 * not the proxy's and Istio knows a gateway for it, and such gateway endpoints lose their locality (istio#49500). A
 * gateway address is reachable from C as it is; the `topology.istio.io/network` label would set the network as the
 * field does (workloadEntryNetwork falls back to the address and labels), hence meshfed's own label. No
 * `serviceAccount`: Istio would then verify `spiffe://…/ns/<this namespace>/sa/…`, the wrong namespace.
 *
 * **Weights.** An endpoint weighs its group's weight times its part of the group's HEALTHY weight. Istio weighs a
 * locality (of one priority) as the sum of its endpoints' weights, and Envoy shares a priority by those whether or not
 * it weighs localities (Istio turns locality weighting on with failover or failoverPriority and outlier detection), so
 * every endpoint gets the share meshfed gives it. `simple: ROUND_ROBIN`, as meshfed's sidecar clusters (Istio's
 * default is LEAST_REQUEST).
 *
 * **Tiers.** Three encodings, the first that reproduces meshfed's tiers for C:
 * - policy `locality`, C names a region, every regionMapping names one region (Istio's failover takes the first entry
 *   for the proxy's region and one `to`), and no weight-0 standby tier: Istio's own locality failover, whose ladder
 *   (same subzone, zone, region; the `failover` region; the rest) is meshfed's. It even follows each proxy's zone.
 * - one tier: `enabled: false`, so that Istio adds no locality ladder of its own.
 * - otherwise `failoverPriority` with the `label=value` form (Istio 1.18, istio#39111): with N labels, an endpoint
 *   matching the first k gets priority N−k. An endpoint of tier t (of 0..N) carries `failover.meshfed.io/ahead-of-u:
 *   "true"` for every u in t+1..N, and the list is ahead-of-N … ahead-of-1. The proxy's own label values play no part
 *   (though Istio skips failoverPriority for a proxy that has no label at all).
 * Tiers, not EDS priorities: minHealthyPercent merges tiers by the health of one moment, and Envoy spills by itself.
 *
 * **DestinationRule.** ISTIO_MUTUAL: Istio's sidecar then sends SNI `outbound_.PORT_._.HOST`, as outboundSni builds it,
 * which meshfed's gateway routes (an Istio east-west gateway routes it too, given an AUTO_PASSTHROUGH server for this
 * hostname and this export in its own cluster). Outlier detection from the VD; Istio applies failover only with
 * outlier detection, so without one DEFAULT_OUTLIER_DETECTION. Durations in seconds (`90s`), a form every duration
 * parser of Istio's pipeline takes.
 *
 * Whatever Istio cannot do as meshfed does becomes a warning: endpoints frozen at export, endpoints not ready then,
 * a missing VIP, minHealthyPercent, failure-percentage ejection, tiers fixed to C's locality, ports whose endpoints
 * differ.
 */
import { isIP } from 'node:net';
import { stringify } from 'yaml';
import { parseDuration } from '../model/duration.js';
import { formatLocality, type Locality } from '../model/locality.js';
import { dnsLabelSchema } from '../model/names.js';
import type { NamedVirtualDestination, OutlierDetection, VirtualDestination, VirtualDestinationPort, VirtualDestinationProtocol } from '../model/virtual-destination.js';
import type { FederatedSnapshot } from '../registry/snapshot.js';
import { compareLocality, virtualDestinationAssignment, type GroupPlacement, type ProxyView } from '../topology/index.js';

export const ISTIO_NETWORKING_API_VERSION = 'networking.istio.io/v1';
/** Istio's root namespace: a DestinationRule there applies to every namespace. */
export const DEFAULT_ISTIO_NAMESPACE = 'istio-system';
/** `<prefix><u>: "true"` on an endpoint: its tier comes before tier u. */
export const TIER_LABEL_PREFIX = 'failover.meshfed.io/ahead-of-';
/** On a gateway endpoint: the network it leads to. */
export const GATEWAY_NETWORK_LABEL = 'meshfed.io/network';

/**
 * The outlier detection of a virtual destination that has none: Envoy's defaults written out (5 consecutive 5xx,
 * connection failures included, swept every 10 s, ejected for 30 s), but maxEjectionPercent 100 instead of Envoy's
 * 10, so that a whole tier can be ejected and its traffic fail over.
 */
export const DEFAULT_OUTLIER_DETECTION = Object.freeze({ consecutive5xxErrors: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 100 } satisfies IstioOutlierDetection);

export interface IstioObjectMeta {
  name: string;
  namespace: string;
  labels: Record<string, string>;
  annotations: Record<string, string>;
}

export interface IstioServicePort {
  number: number;
  name: string;
  protocol: VirtualDestinationProtocol;
  targetPort?: number;
}

export interface IstioWorkloadEntry {
  address: string;
  /** port name → the port on this address */
  ports: Record<string, number>;
  labels?: Record<string, string>;
  network: string;
  /** region/zone/subzone */
  locality?: string;
  weight: number;
}

export interface IstioServiceEntry {
  apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  kind: 'ServiceEntry';
  metadata: IstioObjectMeta;
  spec: {
    hosts: string[];
    addresses?: string[];
    ports: IstioServicePort[];
    location: 'MESH_INTERNAL';
    resolution: 'STATIC';
    endpoints: IstioWorkloadEntry[];
  };
}

export interface IstioOutlierDetection {
  consecutive5xxErrors?: number;
  consecutiveGatewayErrors?: number;
  interval?: string;
  baseEjectionTime?: string;
  maxEjectionPercent?: number;
}

export interface IstioLocalityLbSetting {
  enabled: boolean;
  failover?: { from: string; to: string }[];
  failoverPriority?: string[];
}

export interface IstioDestinationRule {
  apiVersion: typeof ISTIO_NETWORKING_API_VERSION;
  kind: 'DestinationRule';
  metadata: IstioObjectMeta;
  spec: {
    host: string;
    trafficPolicy: {
      tls: { mode: 'ISTIO_MUTUAL' };
      loadBalancer: { simple: 'ROUND_ROBIN'; localityLbSetting: IstioLocalityLbSetting };
      outlierDetection: IstioOutlierDetection;
    };
  };
}

export type IstioResource = IstioServiceEntry | IstioDestinationRule;

export interface IstioExportOptions {
  snapshot: FederatedSnapshot;
  virtualDestinations: readonly NamedVirtualDestination[];
  /** the cluster whose Istio the resources are for */
  cluster: string;
  /** the VIPs meshfed's DNS answers for a hostname (VipAllocator.vipsOf) */
  vips: (hostname: string) => { ipv4?: string; ipv6?: string } | undefined;
  /** where the resources go; default DEFAULT_ISTIO_NAMESPACE */
  namespace?: string;
}

export interface IstioExport {
  /** a ServiceEntry then a DestinationRule per virtual destination, in the order given */
  resources: IstioResource[];
  /** what stock Istio will do differently from meshfed, one sentence each */
  warnings: string[];
}

/** Bad input: `field` names the option at fault. */
export class IstioExportError extends Error {
  constructor(
    readonly field: 'cluster' | 'namespace' | 'vips',
    message: string,
  ) {
    super(message);
  }
}

/** An address of the ServiceEntry, gathered over the VD's ports. */
interface Entry {
  address: string;
  /** the network behind a gateway; undefined for a backend reached directly */
  behind: string | undefined;
  ports: Record<string, number>;
  locality: Locality;
  tier: number;
  standby: boolean;
  weight: number;
}

interface Context {
  snapshot: FederatedSnapshot;
  cluster: string;
  network: string;
  proxy: ProxyView;
  namespace: string;
  vips: IstioExportOptions['vips'];
  warnings: string[];
}

const MAX_WEIGHT = 0xffff_ffff;

/** The Istio resources that give cluster `options.cluster` meshfed's behaviour for each virtual destination. */
export function istioExport(options: IstioExportOptions): IstioExport {
  const { snapshot, cluster } = options;
  const namespace = options.namespace ?? DEFAULT_ISTIO_NAMESPACE;
  if (!dnsLabelSchema.safeParse(namespace).success) {
    throw new IstioExportError('namespace', `namespace ${JSON.stringify(namespace)} is not a Kubernetes namespace name: lowercase letters, digits and "-", at most 63`);
  }
  const view = snapshot.clusters.get(cluster);
  if (!view) {
    const known = [...snapshot.clusters.keys()].sort();
    throw new IstioExportError('cluster', `cluster ${JSON.stringify(cluster)} is not registered (${known.length > 0 ? `registered: ${known.join(', ')}` : 'no cluster is'})`);
  }
  const { network, region, zone } = view.cluster;
  const ctx: Context = { snapshot, cluster, network, proxy: { cluster, network, locality: { region, zone } }, namespace, vips: options.vips, warnings: [] };
  if (view.state === 'evicted') ctx.warnings.push(`cluster ${cluster} is evicted: meshfed no longer sees its endpoints, so none of its own backends are exported`);
  const resources = options.virtualDestinations.flatMap((vd) => exportVirtualDestination(ctx, vd));
  if (resources.length > 0) {
    ctx.warnings.push(`the endpoints and gateways are those of snapshot version ${snapshot.version}: Istio will not follow later changes to them (meshfed's EDS does), so export again when they change`);
  }
  return { resources, warnings: ctx.warnings };
}

/** The resources as one multi-document YAML stream, for `kubectl apply -f -`. */
export function istioExportYaml(resources: readonly object[]): string {
  return resources.map((resource) => stringify(resource, { lineWidth: 0 })).join('---\n');
}

/** Port names: the VD's, or `<protocol>-<number>` (then `-2`, `-3`… should a named port have taken it). */
function portNames(ports: readonly VirtualDestinationPort[]): Map<number, string> {
  const taken = new Set(ports.flatMap((p) => (p.name === undefined ? [] : [p.name])));
  const names = new Map<number, string>();
  for (const port of ports) {
    let name = port.name;
    if (name === undefined) {
      const base = `${port.protocol.toLowerCase()}-${port.number}`;
      name = base;
      for (let n = 2; taken.has(name); n++) name = `${base}-${n}`;
      taken.add(name);
    }
    names.set(port.number, name);
  }
  return names;
}

/** The group's locality without the `~CLUSTER[+CLUSTER…]` sub_zone suffix topology adds to tell groups of one locality apart. */
function plainLocality(locality: Locality, placement: GroupPlacement): Locality {
  const suffix = `~${placement.clusters.join('+')}`;
  return locality.subzone.endsWith(suffix) ? { ...locality, subzone: locality.subzone.slice(0, -suffix.length) } : locality;
}

/** `a`, `b` and 3 more */
function listed(items: Iterable<string>, max = 5): string {
  const all = [...items];
  const shown = all.slice(0, max).join(', ');
  return all.length > max ? `${shown} and ${all.length - max} more` : shown;
}

const seconds = (duration: string): string => `${Math.round(parseDuration(duration) / 1000)}s`;

function outlierDetection(od: OutlierDetection): IstioOutlierDetection {
  const out: IstioOutlierDetection = {};
  if (od.consecutive5xx !== undefined) out.consecutive5xxErrors = od.consecutive5xx;
  if (od.consecutiveGatewayErrors !== undefined) out.consecutiveGatewayErrors = od.consecutiveGatewayErrors;
  if (od.interval !== undefined) out.interval = seconds(od.interval);
  if (od.baseEjectionTime !== undefined) out.baseEjectionTime = seconds(od.baseEjectionTime);
  if (od.maxEjectionPercent !== undefined) out.maxEjectionPercent = od.maxEjectionPercent;
  return out;
}

/** Why Istio's own locality failover cannot reproduce the VD's tiers for C; undefined when it can. */
function notNative(vd: VirtualDestination, ctx: Context, entries: readonly Entry[]): string | undefined {
  const region = ctx.proxy.locality.region ?? '';
  if (region === '') return `cluster ${ctx.cluster} names no region`;
  for (const mapping of vd.failover.regionMappings ?? []) {
    if (mapping.to.length > 1) return `regionMappings maps ${mapping.from} to ${mapping.to.length} regions, and Istio's failover takes one`;
    const bad = [mapping.from, ...mapping.to].find((r) => r.includes('/') || r.includes('*'));
    if (bad !== undefined) return `Istio's failover cannot name region ${JSON.stringify(bad)}`;
  }
  if (entries.some((e) => e.standby)) return 'weight-0 clusters wait in a standby tier of their own';
  return undefined;
}

/** The ServiceEntry's addresses over every port of the VD, in tier, locality, direct-first, address order. */
interface Gathered {
  entries: Entry[];
  /** `address:port` of backends left out */
  notReady: Set<string>;
  /** `address:port` of gateways with no HEALTHY backend behind them */
  unhealthyGateways: Set<string>;
  /** addresses that stand differently for different ports */
  differing: Set<string>;
}

function gather(ctx: Context, vd: VirtualDestination, names: ReadonlyMap<number, string>): Gathered {
  const entries = new Map<string, Entry>();
  const gathered: Gathered = { entries: [], notReady: new Set(), unhealthyGateways: new Set(), differing: new Set() };
  for (const port of vd.ports) {
    const portName = names.get(port.number) ?? '';
    const { assignment, placements } = virtualDestinationAssignment(ctx.snapshot, vd, port.number, ctx.proxy);
    assignment.groups.forEach((group, i) => {
      const placement = placements[i];
      if (placement === undefined) throw new Error(`virtualDestinationAssignment gave no placement for group ${i} of ${vd.hostname}:${port.number}`);
      const locality = plainLocality(group.locality, placement);
      const healthyWeight = group.endpoints.reduce((sum, e) => sum + (e.health === 'HEALTHY' ? e.weight : 0), 0);
      for (const e of group.endpoints) {
        const behind = e.via.kind === 'gateway' ? e.via.network : undefined;
        if (e.health !== 'HEALTHY') {
          // a pod that is not ready gets nothing from Istio either; a gateway stays, and outlier detection ejects it while it fails
          if (behind === undefined) {
            gathered.notReady.add(`${e.address}:${e.port}`);
            continue;
          }
          gathered.unhealthyGateways.add(`${e.address}:${e.port}`);
        }
        const weight = e.health === 'HEALTHY' && healthyWeight > 0 ? Math.min(Math.max(Math.round((group.weight * e.weight) / healthyWeight), 1), MAX_WEIGHT) : 1;
        const known = entries.get(e.address);
        if (!known) {
          entries.set(e.address, { address: e.address, behind, ports: { [portName]: e.port }, locality, tier: placement.tier, standby: placement.standby, weight });
          continue;
        }
        known.ports[portName] = e.port;
        if (known.behind !== behind || known.tier !== placement.tier || known.weight !== weight || compareLocality(known.locality, locality) !== 0) gathered.differing.add(e.address);
      }
    });
  }
  gathered.entries = [...entries.values()].sort(
    (a, b) => a.tier - b.tier || compareLocality(a.locality, b.locality) || Number(a.behind !== undefined) - Number(b.behind !== undefined) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0),
  );
  return gathered;
}

interface TierEncoding {
  localityLbSetting: IstioLocalityLbSetting;
  /** the failoverPriority labels of an entry */
  labels(entry: Entry): Record<string, string>;
  /** why every proxy of C gets the tiers of C's registered locality, when it does and that matters */
  fixed?: string;
}

/** How the DestinationRule and the endpoint labels carry the tiers (see the module comment). */
function tierEncoding(ctx: Context, vd: VirtualDestination, entries: readonly Entry[]): TierEncoding {
  const whyNotNative = vd.failover.policy === 'locality' ? notNative(vd, ctx, entries) : undefined;
  if (vd.failover.policy === 'locality' && whyNotNative === undefined) {
    const failover = (vd.failover.regionMappings ?? []).flatMap((m) => m.to.map((to) => ({ from: m.from, to })));
    return { localityLbSetting: failover.length > 0 ? { enabled: true, failover } : { enabled: true }, labels: () => ({}) };
  }
  const tiers = [...new Set(entries.map((e) => e.tier))];
  const last = tiers.length - 1;
  return {
    localityLbSetting: last > 0 ? { enabled: true, failoverPriority: Array.from({ length: last }, (_, k) => `${TIER_LABEL_PREFIX}${last - k}=true`) } : { enabled: false },
    labels: (entry) => {
      const labels: Record<string, string> = {};
      for (let u = tiers.indexOf(entry.tier) + 1; u <= last; u++) labels[`${TIER_LABEL_PREFIX}${u}`] = 'true';
      return labels;
    },
    ...(whyNotNative !== undefined ? { fixed: whyNotNative } : {}),
  };
}

function exportVirtualDestination(ctx: Context, { name, spec: vd }: NamedVirtualDestination): IstioResource[] {
  const host = vd.hostname;
  const warn = (message: string): void => {
    ctx.warnings.push(`${host}: ${message}`);
  };
  const names = portNames(vd.ports);
  const { entries, notReady, unhealthyGateways, differing } = gather(ctx, vd, names);
  const tiers = tierEncoding(ctx, vd, entries);

  const endpoints = entries.map((entry): IstioWorkloadEntry => {
    const labels = { ...(entry.behind !== undefined ? { [GATEWAY_NETWORK_LABEL]: entry.behind } : {}), ...tiers.labels(entry) };
    const locality = formatLocality(entry.locality);
    return {
      address: entry.address,
      ports: entry.ports,
      ...(Object.keys(labels).length > 0 ? { labels } : {}),
      network: ctx.network,
      ...(locality !== '' ? { locality } : {}),
      weight: entry.weight,
    };
  });

  const ports = vd.ports.map((port): IstioServicePort => {
    const portName = names.get(port.number) ?? '';
    const direct = new Set(entries.flatMap((e) => (e.behind === undefined && e.ports[portName] !== undefined ? [e.ports[portName]] : [])));
    const [targetPort] = direct;
    return { number: port.number, name: portName, protocol: port.protocol, ...(direct.size === 1 && targetPort !== undefined ? { targetPort } : {}) };
  });

  const vips = ctx.vips(host);
  const addresses = [vips?.ipv4, vips?.ipv6].filter((a): a is string => a !== undefined && a !== '');
  const badVip = addresses.find((a) => isIP(a) === 0);
  if (badVip !== undefined) throw new IstioExportError('vips', `the VIP ${JSON.stringify(badVip)} of ${host} is not an IP address`);

  if (addresses.length === 0) warn('has no VIP, so the ServiceEntry has no addresses: Istio then takes all traffic to a TCP port of it for this service, whatever the destination address (istioctl analyze IST0134)');
  if (entries.length === 0) warn(`no backend is reachable from cluster ${ctx.cluster}: the ServiceEntry has no endpoints and every request fails`);
  if (notReady.size > 0) warn(`left out ${notReady.size} endpoint(s) not ready at export (${listed(notReady)}); export again once they are`);
  if (unhealthyGateways.size > 0) {
    warn(`gateway(s) ${listed(unhealthyGateways)} had no healthy backend behind them at export: kept with weight 1, Istio sends them traffic until outlier detection ejects them; export again once they recover`);
  }
  if (differing.size > 0) warn(`${listed(differing)} stand(s) in another tier, locality or weight for some ports: Istio has one endpoint list for all ports, exported as for the first port`);
  const missing = entries.flatMap((e) => vd.ports.filter((p) => e.ports[names.get(p.number) ?? ''] === undefined).map((p) => `${e.address} (port ${p.number})`));
  if (missing.length > 0) warn(`Istio sends every port to every endpoint of a ServiceEntry, but ${listed(missing)} do(es) not serve that port`);
  if (tiers.fixed !== undefined) {
    const { region = '', zone = '' } = ctx.proxy.locality;
    warn(`${tiers.fixed}, so every proxy of cluster ${ctx.cluster} gets the tiers of a proxy at ${formatLocality({ region, zone, subzone: '' }) || 'no locality'}, whatever its own zone`);
  }
  if (vd.failover.minHealthyPercent !== undefined) {
    warn(
      `minHealthyPercent ${vd.failover.minHealthyPercent} has no Istio setting: Envoy moves a priority's traffic to the next in proportion once fewer than 71.4 % of its endpoints are healthy (overprovisioning factor 1.4); Istio's outlierDetection.minHealthPercent is Envoy's panic threshold, another thing`,
    );
  }
  if (vd.outlierDetection?.failurePercentage !== undefined) {
    warn("outlierDetection.failurePercentage has no DestinationRule field (Envoy's failure_percentage_* ejection is out of Istio's API): left out, Istio ejects by consecutive errors only");
  }
  if (vd.outlierDetection === undefined) {
    const d = DEFAULT_OUTLIER_DETECTION;
    warn(
      `has no outlierDetection, and Istio applies locality failover only with one: the DestinationRule carries consecutive5xxErrors ${d.consecutive5xxErrors}, interval ${d.interval}, baseEjectionTime ${d.baseEjectionTime}, maxEjectionPercent ${d.maxEjectionPercent}`,
    );
  }
  if (entries.some((e) => [e.locality.region, e.locality.zone, e.locality.subzone].some((part) => part.includes('/')))) {
    warn('a region, zone or subzone contains "/", which Istio reads as a locality separator');
  }

  const metadata = (): IstioObjectMeta => ({
    name,
    namespace: ctx.namespace,
    labels: { 'app.kubernetes.io/managed-by': 'meshfed', 'meshfed.io/virtual-destination': name },
    annotations: { 'meshfed.io/exported-for-cluster': ctx.cluster, 'meshfed.io/snapshot-version': String(ctx.snapshot.version) },
  });
  const serviceEntry: IstioServiceEntry = {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'ServiceEntry',
    metadata: metadata(),
    spec: { hosts: [host], ...(addresses.length > 0 ? { addresses } : {}), ports, location: 'MESH_INTERNAL', resolution: 'STATIC', endpoints },
  };
  const destinationRule: IstioDestinationRule = {
    apiVersion: ISTIO_NETWORKING_API_VERSION,
    kind: 'DestinationRule',
    metadata: metadata(),
    spec: {
      host,
      trafficPolicy: {
        tls: { mode: 'ISTIO_MUTUAL' },
        loadBalancer: { simple: 'ROUND_ROBIN', localityLbSetting: tiers.localityLbSetting },
        outlierDetection: vd.outlierDetection ? outlierDetection(vd.outlierDetection) : { ...DEFAULT_OUTLIER_DETECTION },
      },
    },
  };
  return [serviceEntry, destinationRule];
}
