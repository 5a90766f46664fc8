/**
 * Split-horizon endpoint assignment: what one proxy should see of one service port.
 *
 * The network rules follow Istio's EndpointBuilder.EndpointsByNetworkFilter
 * (istio/istio pilot/pkg/xds/endpoints/ep_filters.go, read at commit 01750ed3) and NetworkManager
 * (pilot/pkg/model/network.go, NetworkManager.reload / selectNetworkGateways):
 *
 * - every endpoint weight is multiplied by `scaleFactor`, the LCM of the gateway counts per network and per
 *   network+cluster (ep_filters.go: `scaleFactor := b.gateways().GetLBWeightScaleFactor()`,
 *   scaleEndpointLBWeight: an endpoint without weight weighs `scaleFactor`; clipped at 2^32-1);
 * - an endpoint is direct when the proxy is in its network, or its network has no gateway
 *   (`if b.proxy.InNetwork(epNetwork) || len(gateways) == 0`). A proxy without a network is "in" every network
 *   (pilot/pkg/model/context.go, Proxy.InNetwork → identifier.IsSameOrEmpty), so it sees everything direct;
 * - otherwise a non-mTLS endpoint is skipped (`if !isMtlsEnabled(lbEp) { continue }`) and an mTLS endpoint is
 *   replaced by the gateways of its own cluster, or of its network when its cluster has none
 *   (selectNetworkGateways), its scaled weight split evenly among them (splitWeightAmongGateways:
 *   `weight / len(gateways)`, exact because of the LCM) and summed per gateway.
 *
 * Where meshfed departs from Istio (DESIGN.md, issue 4), and why:
 *
 * - A gateway endpoint keeps a locality (Istio's gateway endpoints lose it, istio#49500), and each gateway address
 *   appears once per assignment (Istio repeats it per locality, istio#56355; grpc NACKs duplicate addresses).
 *   When the healthy endpoints behind one gateway span several localities, the gateway stands in the NEAREST of
 *   them to the proxy (lowest priority; ties: the locality with most of those endpoints, then lexical
 *   region/zone/subzone), carrying the weight of ALL the endpoints it stands for. The gateway forwards to any
 *   local endpoint of the service, so the nearest tier among them is what the proxy can actually reach through
 *   it; splitting its weight over several tiers would be fiction, since the proxy only uses the top healthy
 *   priority. When those endpoints fail the gateway turns UNHEALTHY and the priority fails over.
 * - Health (Istio leaves unhealthy endpoints out by default): ready → HEALTHY, serving-but-not-ready and
 *   terminating → DRAINING, unready → UNHEALTHY, all emitted so that clients skip them. Only HEALTHY endpoints
 *   add weight to a gateway, and a gateway whose endpoints in this assignment are all unhealthy is emitted
 *   UNHEALTHY with weight 1 (standing in the nearest locality of all its endpoints), so grpc fails over at once.
 * - A locality group's load_balancing_weight is the sum of its HEALTHY endpoints' weights (1 if none), so that
 *   draining or unhealthy endpoints do not inflate the share of their healthy neighbours.
 * - Gateway addresses must be IP literals; hostname gateways are skipped (Istio resolves them only with
 *   RESOLVE_HOSTNAME_GATEWAYS; resolution is later work for meshfed).
 * - A gateway meshfed's probes find down (ClusterView.unreachableGateways) is left out; an endpoint on another
 *   network that only down gateways stand for is not offered ('gateway-unreachable'), so clients fail over to the
 *   next tier at once, as from any unhealthy priority, and it comes back when a probe succeeds. It is never made
 *   direct nor handed to another cluster's gateway, and proxies on the gateway's own network see no change.
 * - Duplicate addresses (address+port) are never emitted: a second direct endpoint with the same address is
 *   dropped ('duplicate-address'), and a gateway whose address is also a direct endpoint's is skipped
 *   ('endpoint-address'): both are misconfigurations, and grpc NACKs the whole assignment otherwise.
 */
import type { Locality } from '../model/locality.js';
import type { Endpoint, EndpointHealth, ServicePort } from '../model/service.js';
import type { ServiceView } from '../registry/source.js';
import type { ClusterView, FederatedSnapshot } from '../registry/snapshot.js';
import { addressKey, gatewaysFor, indexGateways, networkHasGateways, type GatewayIndex, type NetworkGateway, type SkippedGateway } from './gateways.js';
import { compareLocality, localityKey, localityPriority } from './priority.js';

/** The asking proxy, from its xDS node (CLUSTER_ID, NETWORK, locality). */
export interface ProxyView {
  /** informational: gateway selection depends on the endpoint's cluster, never the proxy's (as in Istio) */
  cluster?: string;
  /** undefined or '': the proxy sees every endpoint direct */
  network?: string;
  locality: Partial<Locality>;
}

export type LbHealth = 'HEALTHY' | 'UNHEALTHY' | 'DRAINING';

export type LbVia =
  | { kind: 'direct' }
  /** a gateway standing for `endpoints` healthy endpoints of `clusters` on `network` */
  | { kind: 'gateway'; network: string; clusters: string[]; endpoints: number };

export interface LbEndpoint {
  /** an IPv4 or IPv6 literal */
  address: string;
  port: number;
  /** load_balancing_weight, 1..2^32-1 */
  weight: number;
  health: LbHealth;
  via: LbVia;
}

export interface LocalityGroup {
  locality: Locality;
  /** renumbered from 0 without gaps */
  priority: number;
  /** load_balancing_weight: sum of its HEALTHY endpoints' weights, 1 if none; never 0 */
  weight: number;
  endpoints: LbEndpoint[];
}

/**
 * plaintext-cross-network: a non-mTLS endpoint on another network (a gateway passes TLS through untouched);
 * duplicate-address: its address:port is another endpoint's;
 * gateway-unreachable: on another network, and every gateway that stands for it is down (meshfed's gateway probes),
 * so it is not offered at all and clients fail over to the next tier at once.
 */
export type DropReason = 'plaintext-cross-network' | 'duplicate-address' | 'gateway-unreachable';

/** An endpoint left out of the assignment, and why (for `why`-style explanations). */
export interface DroppedEndpoint {
  cluster: string;
  network: string;
  address: string;
  port: number;
  reason: DropReason;
}

export interface LoadAssignment {
  /** namespace/name */
  service: string;
  port: number;
  /** sorted by priority, then region/zone/subzone */
  groups: LocalityGroup[];
  /** the LCM every endpoint weight was multiplied by */
  scaleFactor: number;
  dropped: DroppedEndpoint[];
  /** gateways that could not be used (hostnames, address clashes) */
  skippedGateways: SkippedGateway[];
}

const MAX_WEIGHT = 0xffff_ffff;
/** A load_balancing_weight: at least 1, at most 2^32-1. */
export const clampWeight = (w: number): number => Math.min(Math.max(w, 1), MAX_WEIGHT);

/** Kubernetes endpoint conditions → xDS health status. */
export function lbHealth(health: EndpointHealth): LbHealth {
  switch (health) {
    case 'ready':
      return 'HEALTHY';
    case 'serving':
    case 'terminating':
      return 'DRAINING';
    case 'unready':
      return 'UNHEALTHY';
  }
}

/** The port on the endpoint: its port named like the service port, else targetPort, else the service port. */
export function endpointPort(servicePort: ServicePort, endpoint: Endpoint): number {
  return endpoint.ports.find((p) => p.name === servicePort.name)?.port ?? servicePort.targetPort ?? servicePort.port;
}

/**
 * The endpoint's locality: its own when it names a region, else its cluster's region and zone. A zone is only
 * inherited together with the cluster's region (a zone of another region would be meaningless).
 */
export function endpointLocality(cluster: ClusterView['cluster'], endpoint: Endpoint): Locality {
  const own = endpoint.locality;
  const region = own.region !== undefined && own.region !== '' ? own.region : cluster.region;
  const zone = own.zone !== undefined && own.zone !== '' ? own.zone : region === cluster.region ? cluster.zone : '';
  return { region, zone, subzone: own.subzone ?? '' };
}

/** One endpoint of a selected service port, before split horizon decides how the proxy reaches it. Never changed. */
export interface Candidate {
  readonly cluster: string;
  readonly network: string;
  readonly address: string;
  readonly port: number;
  readonly mtls: boolean;
  readonly health: LbHealth;
  readonly locality: Locality;
  /** addressKey(address, port) */
  readonly addressKey: string;
  /** localityKey(locality) */
  readonly localityKey: string;
}

/**
 * How the caller orders candidates, for the one choice split horizon makes on its behalf: where a gateway stands.
 * Candidates with the same `slot` are interchangeable for the caller; `rank` is the slot's failover rank (lower is
 * nearer), computed once per slot of a gateway.
 */
export interface SlotOrder {
  slot(candidate: Candidate): string;
  rank(candidate: Candidate): number;
}

/** An endpoint as split horizon emits it, and what stands behind it. */
export interface Placement {
  readonly endpoint: LbEndpoint;
  /** the endpoint's locality; for a gateway, the locality of `at` */
  readonly locality: Locality;
  /** the endpoint itself; for a gateway, one endpoint of the slot it stands in (the nearest, then the fullest) */
  readonly at: Candidate;
  /**
   * the scaled weight of the HEALTHY endpoints it stands for (a gateway: its share of each, so that an endpoint
   * behind several gateways counts once in all); a direct endpoint: its weight, or 0 when it is not HEALTHY
   */
  readonly healthy: number;
  /** likewise, for all the endpoints it stands for whatever their health */
  readonly total: number;
}

export interface Placed {
  readonly placements: Placement[];
  /** the LCM every endpoint weight was multiplied by */
  readonly scaleFactor: number;
  readonly dropped: DroppedEndpoint[];
  readonly skippedGateways: SkippedGateway[];
}

interface GatewayAccumulator {
  gateway: NetworkGateway;
  clusters: Set<string>;
  /** summed scaled weight of the HEALTHY endpoints it stands for */
  weight: number;
  healthy: number;
  /** summed scaled weight of all the endpoints it stands for */
  total: number;
  /** slot → [a candidate of the slot, healthy endpoints there, all endpoints there] */
  slots: Map<string, { candidate: Candidate; healthy: number; all: number }>;
}

/** Split horizon by locality: a gateway stands in the nearest locality to the proxy. */
const byLocality = (proxy: Partial<Locality>): SlotOrder => ({ slot: (c) => c.localityKey, rank: (c) => localityPriority(proxy, c.locality) });

/**
 * The cluster load assignment `proxy` should see for `service` (namespace/name) on service port `port`, from
 * every cluster of the snapshot that has that service and port (evicted clusters have none; stale ones keep their
 * last-known endpoints).
 */
export function loadAssignment(snapshot: FederatedSnapshot, proxy: ProxyView, service: string, port: number): LoadAssignment {
  const { placements, scaleFactor, dropped, skippedGateways } = placeEndpoints(snapshot, proxy, collect(snapshot, service, port), byLocality(proxy.locality));
  return { service, port, groups: group(proxy.locality, placements), scaleFactor, dropped, skippedGateways };
}

/**
 * Split horizon over `candidates`: each one direct, behind its cluster's (or network's) gateways, or dropped, with
 * Istio's LCM weighting; each gateway emitted once, standing in the slot of `order` nearest to the proxy.
 */
export function placeEndpoints(snapshot: FederatedSnapshot, proxy: ProxyView, candidates: readonly Candidate[], order: SlotOrder): Placed {
  const index = gatewayIndexOf(snapshot);
  const scale = index.scaleFactor;
  const proxyNetwork = proxy.network !== undefined && proxy.network !== '' ? proxy.network : undefined;

  const dropped: DroppedEndpoint[] = [];
  const skippedGateways: SkippedGateway[] = [...index.skipped];
  const placements: Placement[] = [];
  const directAddresses = new Set<string>();
  const gatewayAcc = new Map<string, GatewayAccumulator>();
  const weight = clampWeight(scale); // every model endpoint weighs 1: Istio's scaleEndpointLBWeight gives it scaleFactor

  for (const c of candidates) {
    if (proxyNetwork === undefined || c.network === proxyNetwork || !networkHasGateways(index, c.network)) {
      const key = c.addressKey;
      if (directAddresses.has(key)) {
        dropped.push(droppedEndpoint(c, 'duplicate-address'));
        continue;
      }
      directAddresses.add(key);
      placements.push({ locality: c.locality, at: c, healthy: c.health === 'HEALTHY' ? weight : 0, total: weight, endpoint: { address: c.address, port: c.port, weight, health: c.health, via: DIRECT } });
      continue;
    }
    if (!c.mtls) {
      dropped.push(droppedEndpoint(c, 'plaintext-cross-network'));
      continue;
    }
    const gateways = gatewaysFor(index, c.network, c.cluster);
    if (gateways.length === 0) {
      dropped.push(droppedEndpoint(c, 'gateway-unreachable'));
      continue;
    }
    const share = Math.floor(weight / gateways.length);
    for (const gateway of gateways) {
      const key = gatewayKey(gateway);
      let acc = gatewayAcc.get(key);
      if (!acc) {
        acc = { gateway, clusters: new Set(), weight: 0, healthy: 0, total: 0, slots: new Map() };
        gatewayAcc.set(key, acc);
      }
      acc.clusters.add(c.cluster);
      acc.total += share;
      const slot = order.slot(c);
      let at = acc.slots.get(slot);
      if (!at) {
        at = { candidate: c, healthy: 0, all: 0 };
        acc.slots.set(slot, at);
      }
      at.all += 1;
      if (c.health === 'HEALTHY') {
        acc.weight += share;
        acc.healthy += 1;
        at.healthy += 1;
      }
    }
  }

  for (const [key, acc] of gatewayAcc) {
    const { gateway } = acc;
    if (directAddresses.has(key)) {
      skippedGateways.push({ cluster: gateway.cluster, network: gateway.network, address: gateway.address, port: gateway.port, reason: 'endpoint-address' });
      continue;
    }
    const healthy = acc.healthy > 0;
    const at = nearestSlot(order, [...acc.slots].map(([slot, s]) => ({ slot, candidate: s.candidate, count: healthy ? s.healthy : s.all })).filter((s) => s.count > 0));
    placements.push({
      locality: at.locality,
      at,
      healthy: acc.weight,
      total: acc.total,
      endpoint: {
        address: gateway.address,
        port: gateway.port,
        weight: healthy ? clampWeight(acc.weight) : 1,
        health: healthy ? 'HEALTHY' : 'UNHEALTHY',
        via: { kind: 'gateway', network: gateway.network, clusters: [...acc.clusters].sort(), endpoints: acc.healthy },
      },
    });
  }

  return { placements, scaleFactor: scale, dropped, skippedGateways };
}

const DIRECT: LbVia = Object.freeze({ kind: 'direct' });

const gatewayKeys = new WeakMap<NetworkGateway, string>();

/** addressKey of a gateway of an index, computed once per gateway object. */
function gatewayKey(gateway: NetworkGateway): string {
  let key = gatewayKeys.get(gateway);
  if (key === undefined) {
    key = addressKey(gateway.address, gateway.port);
    gatewayKeys.set(gateway, key);
  }
  return key;
}

const droppedEndpoint = (c: Candidate, reason: DropReason): DroppedEndpoint => ({ cluster: c.cluster, network: c.network, address: c.address, port: c.port, reason });

/**
 * What loadAssignment needs of a snapshot whatever the proxy and service, computed once per snapshot (snapshots are
 * immutable): the gateway index, and the non-evicted clusters in name order.
 */
interface SnapshotIndex {
  gateways: GatewayIndex;
  clusters: [string, ClusterView][];
}

const snapshotIndexes = new WeakMap<FederatedSnapshot, SnapshotIndex>();

function snapshotIndex(snapshot: FederatedSnapshot): SnapshotIndex {
  let index = snapshotIndexes.get(snapshot);
  if (!index) {
    const clusters = [...snapshot.clusters].filter(([, view]) => view.state !== 'evicted').sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    index = { gateways: indexGateways(snapshot), clusters };
    snapshotIndexes.set(snapshot, index);
  }
  return index;
}

const gatewayIndexOf = (snapshot: FederatedSnapshot): GatewayIndex => snapshotIndex(snapshot).gateways;

/** The snapshot's non-evicted clusters, in name order (computed once per snapshot). */
export const liveClusters = (snapshot: FederatedSnapshot): readonly (readonly [string, ClusterView])[] => snapshotIndex(snapshot).clusters;

/**
 * The candidates of one (ServiceView, service port) of cluster `name`: the same objects for every proxy and every snapshot
 * that shares that ServiceView (a new snapshot shares every unchanged object with the one before), never changed.
 */
const candidateCache = new WeakMap<ServiceView, Map<number, { name: string; cluster: ClusterView['cluster']; candidates: readonly Candidate[] }>>();

export function candidatesOf(name: string, cluster: ClusterView['cluster'], sv: ServiceView, servicePort: ServicePort): readonly Candidate[] {
  let byPort = candidateCache.get(sv);
  if (!byPort) {
    byPort = new Map();
    candidateCache.set(sv, byPort);
  }
  const known = byPort.get(servicePort.port);
  // the candidates depend on the cluster's name and registration too (network, region, zone): reused only for the same
  if (known?.name === name && known.cluster === cluster) return known.candidates;
  const candidates: Candidate[] = [];
  for (const ep of sv.endpoints) {
    const port = endpointPort(servicePort, ep);
    const locality = endpointLocality(cluster, ep);
    candidates.push({
      cluster: name,
      network: ep.network ?? cluster.network,
      address: ep.address,
      port,
      mtls: ep.tlsMode === 'mtls',
      health: lbHealth(ep.health),
      locality,
      addressKey: addressKey(ep.address, port),
      localityKey: localityKey(locality),
    });
  }
  byPort.set(servicePort.port, { name, cluster, candidates });
  return candidates;
}

/** The service's endpoints on `port` from every non-evicted cluster, in cluster-name order. */
function collect(snapshot: FederatedSnapshot, service: string, port: number): Candidate[] {
  const out: Candidate[] = [];
  for (const [name, view] of snapshotIndex(snapshot).clusters) {
    const sv = view.services.get(service);
    if (!sv) continue;
    let servicePort: ServicePort | undefined;
    for (const p of sv.service.ports) {
      if (p.port === port) {
        servicePort = p;
        break;
      }
    }
    if (!servicePort) continue; // a cluster whose service lacks the port contributes nothing
    for (const c of candidatesOf(name, view.cluster, sv, servicePort)) out.push(c);
  }
  return out;
}

/** Lowest rank, then most endpoints, then lexical region/zone/subzone, then slot. */
function nearestSlot(order: SlotOrder, options: { slot: string; candidate: Candidate; count: number }[]): Candidate {
  const ranked = options.map((o) => ({ ...o, rank: order.rank(o.candidate) }));
  ranked.sort((a, b) => a.rank - b.rank || b.count - a.count || compareLocality(a.candidate.locality, b.candidate.locality) || (a.slot < b.slot ? -1 : a.slot > b.slot ? 1 : 0));
  const first = ranked[0];
  if (!first) throw new Error('a gateway with no endpoints behind it'); // unreachable: accumulators exist only for endpoints
  return first.candidate;
}

function group(proxy: Partial<Locality>, placed: readonly Placement[]): LocalityGroup[] {
  const groups = new Map<string, LocalityGroup>();
  for (const { locality, endpoint } of placed) {
    const key = localityKey(locality);
    let g = groups.get(key);
    if (!g) {
      g = { locality, priority: localityPriority(proxy, locality), weight: 0, endpoints: [] };
      groups.set(key, g);
    }
    g.endpoints.push(endpoint);
  }
  const out = [...groups.values()];
  // the raw priorities present (0..3), renumbered from 0 without gaps
  let present = 0;
  for (const g of out) present |= 1 << g.priority;
  for (const g of out) {
    g.priority = bitsBelow(present, g.priority);
    g.endpoints.sort(compareEndpoints);
    let healthy = 0;
    for (const e of g.endpoints) if (e.health === 'HEALTHY') healthy += e.weight;
    g.weight = clampWeight(healthy);
  }
  return out.sort(compareGroups);
}

/** How many of the bits of `mask` are below bit `bit`. */
function bitsBelow(mask: number, bit: number): number {
  let n = 0;
  for (let b = 0; b < bit; b++) if (mask & (1 << b)) n++;
  return n;
}

const compareGroups = (a: LocalityGroup, b: LocalityGroup): number => a.priority - b.priority || compareLocality(a.locality, b.locality);

const viaOrder = (e: LbEndpoint): number => (e.via.kind === 'direct' ? 0 : 1);

/** Direct endpoints first, then by address and port. */
export function compareEndpoints(a: LbEndpoint, b: LbEndpoint): number {
  return viaOrder(a) - viaOrder(b) || (a.address < b.address ? -1 : a.address > b.address ? 1 : 0) || a.port - b.port;
}
