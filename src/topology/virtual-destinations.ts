/**
 * The endpoints of a virtual destination (issue 6) as one proxy should see them: the backends across clusters,
 * through the split horizon of split-horizon.ts (the same code: placeEndpoints), ordered into failover tiers,
 * split by cluster weights and spilled by capacity, in one LoadAssignment that the EDS encoder and
 * forProxylessClients take as they take a service's.
 *
 * **Backends.** Every service of a non-evicted cluster that a backend selects (namespace, when given; name, when
 * given; every label of `labels`; a cluster of `clusters`, when given) and that has the VD port's `targetPort`
 * (default: the VD port's number) as a service port; that service port maps to the endpoints' ports as for the
 * service itself. A service selected by several backends counts once. Clusters in name order, services in
 * `namespace/name` order, so a duplicate address is dropped the same way every time. Nothing selected: an empty
 * assignment.
 *
 * **Tiers.** Each endpoint gets a rank; equal ranks form a tier, and tiers become priorities in rank order.
 * - `locality`: split horizon's ladder (same region, zone and subzone; same zone: 'same-zone'; same region:
 *   'same-region'), then the regions that `regionMappings` maps the proxy's region to, one tier per region in the
 *   listed order ('region-mapping'), then every other region in one tier ('other-region'). A proxy that names no
 *   region has nothing to be near to: one tier, 'unordered'.
 * - `priority`: the first `order` entry an endpoint matches (its cluster; or its region, and zone when the entry
 *   names one) is its tier ('priority-order'); endpoints matching no entry form the last tier ('unordered'). The
 *   proxy's own locality plays no part.
 * A gateway stands in the best tier of the endpoints behind it (split horizon's rule, with these ranks), carrying
 * the weight of all of them.
 *
 * **Weights.** With `weights`, a tier's traffic is divided among its clusters in proportion to their weights, over
 * the clusters of the tier that have a HEALTHY endpoint (so an unhealthy cluster's part goes to its tier
 * neighbours, as Istio's `distribute` does), and within a cluster among its localities by their healthy endpoint
 * weights. Locality groups are per cluster then (two clusters in one locality give two groups), since proxyless
 * grpc honours locality weights only. A cluster of weight 0 (or not listed: unlisted clusters weigh 0) is a standby
 * within its tier: when the tier also has weighted clusters, the 0-weight ones form a tier of their own right after
 * it, which gets traffic only when the weighted clusters fail (grpc fails over to it by itself, before any push,
 * and with `minHealthyPercent` it takes the spill first); when the tier has only 0-weight clusters, they are all there
 * is and share it by their healthy endpoints. Their groups say `standby`.
 *
 * **Spill** (`minHealthyPercent` = 100·m). grpc has no overprovisioning factor, so meshfed computes Envoy's
 * priority load itself. A tier's health h = its HEALTHY endpoints / all its endpoints (an endpoint behind a gateway
 * counts as itself, in the tier its gateway stands in; draining ones are not healthy). A tier keeps k = min(1, h/m) of the traffic that reaches it and
 * passes 1 − k to the next tier; the last tier keeps all of it. A run of tiers that pass traffic on is merged into
 * one priority: a priority starts at a tier, takes the next tier while the share left is above 0, and so on; tier
 * i of the run carries L_i = k_i × Π_{j<i}(1 − k_j) of the priority's traffic, and its groups are 'spill' (the
 * first keeps its own reason). Within the run each group's share is L_i × its share of its tier. Tiers after the
 * run form the next priorities, with the same rule, so a tier that fails at once still fails over within grpc.
 *
 * **Group weights.** Without `weights` and `minHealthyPercent` a group weighs its healthy endpoint weights, exactly as
 * in split horizon. With either, each group of a priority weighs its share of that priority's traffic in parts per
 * million (largest remainder, so they sum to 1,000,000), at least 1; a group with no HEALTHY endpoint weighs 1,
 * as in split horizon. Priorities are numbered from 0 without gaps. Two groups of one priority in the same locality
 * (two clusters of one zone split by weight, or merged by spill) get the sub_zone suffix `~CLUSTER[+CLUSTER…]` so the
 * (locality, priority) pair stays unique.
 *
 * **Drains** (failover drills, maintenance). A drain names a cluster, a region and/or a zone (every field it names
 * must match the endpoint: its cluster; the region and zone of its locality). A HEALTHY backend endpoint that a drain
 * matches is sent DRAINING instead, before anything else is decided, so it counts as not healthy everywhere above
 * (tier health, spill, weights, the gateways standing for it). Marking rather than leaving out is the choice: the
 * address stays in the assignment, so clients stop picking it for new calls while calls in flight on their open
 * connections finish (grpc drops DRAINING endpoints from its pick list as it does UNHEALTHY ones, and closes the
 * connection gracefully; Envoy likewise excludes DRAINING hosts from balancing), and a drained tier fails over as
 * an unhealthy one does. A gateway standing only for drained endpoints has no HEALTHY endpoint behind it, so split
 * horizon's rule sends it UNHEALTHY with weight 1: not picked either. An endpoint already UNHEALTHY or DRAINING
 * stays as it is. A drain that names nothing matches nothing. Gateways' own views (gateway-targets.ts) are not
 * drained: a gateway keeps forwarding whatever still reaches it (a client yet to hear of the drain, a connection in
 * flight) to its workloads, which keep running, so a drain never refuses a call.
 */
import type { Locality } from '../model/locality.js';
import { vdTargetPort, type Failover, type FailoverOrderEntry, type VirtualDestination, type VirtualDestinationBackend } from '../model/virtual-destination.js';
import type { ServiceView } from '../registry/source.js';
import type { ClusterView, FederatedSnapshot } from '../registry/snapshot.js';
import { compareLocality, localityKey, localityPriority } from './priority.js';
import { candidatesOf, clampWeight, compareEndpoints, liveClusters, placeEndpoints, type Candidate, type LbEndpoint, type LoadAssignment, type LocalityGroup, type Placement, type ProxyView, type SlotOrder } from './split-horizon.js';

/** The rule that ranked a tier. */
export type TierReason = 'same-zone' | 'same-region' | 'region-mapping' | 'other-region' | 'priority-order' | 'unordered';
/** The rule that put a group in its priority: its tier's rule, or 'spill' when an earlier tier's spill brought it up. */
export type PlacementReason = TierReason | 'spill';

/** Why one locality group of a virtual destination's assignment is where it is. */
export interface GroupPlacement {
  reason: PlacementReason;
  /** the rule of its tier (for 'spill': the rule that ranked the tier the spill reached) */
  tierReason: TierReason;
  /** its tier, 0 = the first choice, before spill merged tiers into priorities */
  tier: number;
  /**
   * HEALTHY endpoints and all endpoints of its tier (what the spill is computed from); an endpoint behind n gateways
   * counts 1/n behind each, so a gateway placed in another tier than its peers can make these fractional
   */
  tierHealth: { healthy: number; total: number };
  /** the clusters whose endpoints it holds (a gateway counts for the cluster of the slot it stands in), sorted */
  clusters: string[];
  /** a 0-weight cluster's group, behind the weighted clusters of its tier */
  standby: boolean;
  /** the fraction of its priority's traffic meant for it, 0 when none of its endpoints is HEALTHY */
  share: number;
}

export interface VirtualDestinationAssignment {
  /** `service` is the VD's hostname, `port` the VD port */
  assignment: LoadAssignment;
  /** one per `assignment.groups` entry, in the same order */
  placements: GroupPlacement[];
}

/** Where a drain takes a virtual destination's endpoints out: every field given must match. */
export interface VirtualDestinationDrain {
  cluster?: string;
  region?: string;
  zone?: string;
}

/** Whether `drain` matches `candidate` (a drain that names nothing matches nothing). */
const matchesDrain = (drain: VirtualDestinationDrain, c: Candidate): boolean =>
  (drain.cluster !== undefined || drain.region !== undefined || drain.zone !== undefined) &&
  (drain.cluster === undefined || drain.cluster === c.cluster) &&
  (drain.region === undefined || drain.region === c.locality.region) &&
  (drain.zone === undefined || drain.zone === c.locality.zone);

/** The candidates with every HEALTHY one that a drain matches made DRAINING (new objects: candidates are shared). */
function drained(candidates: Candidate[], list: readonly VirtualDestinationDrain[]): Candidate[] {
  if (list.length === 0) return candidates;
  return candidates.map((c) => (c.health === 'HEALTHY' && list.some((d) => matchesDrain(d, c)) ? { ...c, health: 'DRAINING' } : c));
}

interface Rank {
  readonly rank: number;
  readonly reason: TierReason;
}

type Ranking = (candidate: Candidate) => Rank;

const UNORDERED: Rank = Object.freeze({ rank: 0, reason: 'unordered' });

function localityRanking(failover: Failover, proxy: Partial<Locality>): Ranking {
  const region = proxy.region ?? '';
  if (region === '') return () => UNORDERED;
  const mapped = failover.regionMappings?.find((mapping) => mapping.from === region)?.to ?? [];
  return (c) => {
    const priority = localityPriority(proxy, c.locality);
    if (priority < 2) return { rank: priority, reason: 'same-zone' };
    if (priority === 2) return { rank: 2, reason: 'same-region' };
    const k = mapped.indexOf(c.locality.region);
    return k === -1 ? { rank: 3 + mapped.length, reason: 'other-region' } : { rank: 3 + k, reason: 'region-mapping' };
  };
}

const matchesEntry = (entry: FailoverOrderEntry, c: Candidate): boolean =>
  entry.cluster !== undefined ? entry.cluster === c.cluster : entry.region === c.locality.region && (entry.zone === undefined || entry.zone === c.locality.zone);

function priorityRanking(order: readonly FailoverOrderEntry[]): Ranking {
  return (c) => {
    const i = order.findIndex((entry) => matchesEntry(entry, c));
    return i === -1 ? { rank: order.length, reason: 'unordered' } : { rank: i, reason: 'priority-order' };
  };
}

const selects = (backend: VirtualDestinationBackend, sv: ServiceView): boolean =>
  (backend.namespace === undefined || backend.namespace === sv.service.namespace) &&
  (backend.name === undefined || backend.name === sv.service.name) &&
  Object.entries(backend.labels ?? {}).every(([key, value]) => sv.service.labels[key] === value);

/** Every service of a live cluster that the backends select: clusters in name order, services in `namespace/name` order. */
function* selectedServices(snapshot: FederatedSnapshot, backends: readonly VirtualDestinationBackend[]): Generator<{ name: string; view: ClusterView; key: string; sv: ServiceView }> {
  for (const [name, view] of liveClusters(snapshot)) {
    const here = backends.filter((b) => b.clusters === undefined || b.clusters.includes(name));
    if (here.length === 0) continue;
    const selected = [...view.services].filter(([, sv]) => here.some((b) => selects(b, sv))).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    for (const [key, sv] of selected) yield { name, view, key, sv };
  }
}

/** The endpoints of every service the backends select, on service port `port`, clusters and services in order. */
function backendCandidates(snapshot: FederatedSnapshot, backends: readonly VirtualDestinationBackend[], port: number): Candidate[] {
  const out: Candidate[] = [];
  for (const { name, view, sv } of selectedServices(snapshot, backends)) {
    const servicePort = sv.service.ports.find((p) => p.port === port);
    if (servicePort) out.push(...candidatesOf(name, view.cluster, sv, servicePort));
  }
  return out;
}

interface TierGroup {
  locality: Locality;
  clusters: Set<string>;
  endpoints: LbEndpoint[];
  /** summed weight of its HEALTHY endpoints */
  healthyWeight: number;
  /** the cluster of its first endpoint; in a weighted tier, its only cluster */
  cluster: string;
}

interface Tier {
  reason: TierReason;
  standby: boolean;
  /** its clusters weigh more than 0 (only with `weights`): groups per cluster, shares by weight */
  weighted: boolean;
  groups: TierGroup[];
  /** scaled weight of its HEALTHY endpoints, and of all of them (see Placement) */
  healthy: number;
  total: number;
}

function buildTier(reason: TierReason, placements: readonly Placement[], flags: { weighted: boolean; standby: boolean }): Tier {
  const groups = new Map<string, TierGroup>();
  let healthy = 0;
  let total = 0;
  for (const p of placements) {
    healthy += p.healthy;
    total += p.total;
    const key = flags.weighted ? `${p.at.cluster}\u0000${localityKey(p.locality)}` : localityKey(p.locality);
    let g = groups.get(key);
    if (!g) {
      g = { locality: p.locality, clusters: new Set(), endpoints: [], healthyWeight: 0, cluster: p.at.cluster };
      groups.set(key, g);
    }
    g.clusters.add(p.at.cluster);
    g.endpoints.push(p.endpoint);
    if (p.endpoint.health === 'HEALTHY') g.healthyWeight += p.endpoint.weight;
  }
  return { reason, ...flags, groups: [...groups.values()], healthy, total };
}

/** The tiers in failover order; with `weights`, a tier's 0-weight clusters follow it as a standby tier. */
function tiersOf(placements: readonly Placement[], ranking: Ranking, weights: ReadonlyMap<string, number> | undefined): Tier[] {
  const byRank = new Map<number, { reason: TierReason; placements: Placement[] }>();
  for (const p of placements) {
    const { rank, reason } = ranking(p.at);
    let entry = byRank.get(rank);
    if (!entry) {
      entry = { reason, placements: [] };
      byRank.set(rank, entry);
    }
    entry.placements.push(p);
  }
  const tiers: Tier[] = [];
  for (const [, { reason, placements: here }] of [...byRank].sort(([a], [b]) => a - b)) {
    if (weights === undefined) {
      tiers.push(buildTier(reason, here, { weighted: false, standby: false }));
      continue;
    }
    const weighted = here.filter((p) => (weights.get(p.at.cluster) ?? 0) > 0);
    const zero = here.filter((p) => (weights.get(p.at.cluster) ?? 0) === 0);
    if (weighted.length > 0) tiers.push(buildTier(reason, weighted, { weighted: true, standby: false }));
    if (zero.length > 0) tiers.push(buildTier(reason, zero, { weighted: false, standby: weighted.length > 0 }));
  }
  return tiers;
}

/** Each group's share of its tier's traffic. */
function sharesWithinTier(tier: Tier, weights: ReadonlyMap<string, number> | undefined): number[] {
  if (!tier.weighted || weights === undefined) {
    const sum = tier.groups.reduce((s, g) => s + g.healthyWeight, 0);
    return tier.groups.map((g) => (sum > 0 ? g.healthyWeight / sum : 0));
  }
  const byCluster = new Map<string, number>();
  for (const g of tier.groups) byCluster.set(g.cluster, (byCluster.get(g.cluster) ?? 0) + g.healthyWeight);
  let weightSum = 0;
  for (const [cluster, healthy] of byCluster) if (healthy > 0) weightSum += weights.get(cluster) ?? 0;
  return tier.groups.map((g) => {
    const clusterHealthy = byCluster.get(g.cluster) ?? 0;
    if (weightSum === 0 || clusterHealthy === 0) return 0;
    return ((weights.get(g.cluster) ?? 0) / weightSum) * (g.healthyWeight / clusterHealthy);
  });
}

interface RunMember {
  tier: Tier;
  /** the tier's index */
  index: number;
  /** the part of the priority's traffic the tier carries */
  load: number;
}

/** Runs of tiers merged by spill: each run is one priority. */
function priorityRuns(tiers: readonly Tier[], minHealthyPercent: number): RunMember[][] {
  const runs: RunMember[][] = [];
  let i = 0;
  while (i < tiers.length) {
    const run: RunMember[] = [];
    let left = 1;
    for (let tier = tiers[i]; tier !== undefined && left > 0; tier = tiers[i]) {
      const last = i === tiers.length - 1;
      // k = min(1, h/m), in integers until the division: h = healthy/total, m = minHealthyPercent/100
      const keep = last || tier.healthy * 100 >= tier.total * minHealthyPercent ? 1 : (tier.healthy * 100) / (tier.total * minHealthyPercent);
      run.push({ tier, index: i, load: left * keep });
      left *= 1 - keep;
      i++;
    }
    runs.push(run);
  }
  return runs;
}

const PARTS = 1_000_000;

/** Shares of one priority as integer weights summing to PARTS (largest remainder), each at least 1. */
function partsPerMillion(shares: readonly number[]): number[] {
  const exact = shares.map((s) => s * PARTS);
  // the epsilon absorbs binary fractions such as 0.3 × 10^6 = 299999.99999999994
  const parts = exact.map((x) => Math.floor(x + 1e-6));
  let left = Math.round(exact.reduce((s, x) => s + x, 0)) - parts.reduce((s, x) => s + x, 0);
  const byRemainder = exact.map((_, i) => i).sort((a, b) => (exact[b] ?? 0) - (parts[b] ?? 0) - ((exact[a] ?? 0) - (parts[a] ?? 0)) || a - b);
  for (const i of byRemainder) {
    if (left <= 0) break;
    if ((shares[i] ?? 0) <= 0) continue;
    parts[i] = (parts[i] ?? 0) + 1;
    left--;
  }
  return parts.map((w) => clampWeight(w));
}

interface Output {
  group: LocalityGroup;
  placement: GroupPlacement;
}

/**
 * The assignment `proxy` should see for virtual destination `vd` on its port `port` (a VD port number; a port
 * the VD does not have gives an empty assignment), with the rule behind each group, and the endpoints `drains` match
 * DRAINING. See the module comment.
 */
export function virtualDestinationAssignment(
  snapshot: FederatedSnapshot,
  vd: VirtualDestination,
  port: number,
  proxy: ProxyView,
  drains: readonly VirtualDestinationDrain[] = [],
): VirtualDestinationAssignment {
  const vdPort = vd.ports.find((p) => p.number === port);
  const candidates = vdPort ? drained(backendCandidates(snapshot, vd.backends, vdTargetPort(vdPort)), drains) : [];
  const { failover } = vd;
  const ranking = failover.policy === 'priority' ? priorityRanking(failover.order ?? []) : localityRanking(failover, proxy.locality);
  const order: SlotOrder = { slot: (c) => `${c.cluster}\u0000${c.localityKey}`, rank: (c) => ranking(c).rank };
  const { placements, scaleFactor, dropped, skippedGateways } = placeEndpoints(snapshot, proxy, candidates, order);

  const weights = failover.weights ? new Map(failover.weights.map((w) => [w.cluster, w.weight])) : undefined;
  const minHealthyPercent = failover.minHealthyPercent ?? 0;
  const shaped = weights !== undefined || minHealthyPercent > 0;
  const tiers = tiersOf(placements, ranking, weights);

  const out: Output[] = [];
  priorityRuns(tiers, minHealthyPercent).forEach((run, priority) => {
    const members = run.flatMap(({ tier, index, load }, position) => {
      const shares = sharesWithinTier(tier, weights);
      return tier.groups.map((g, j) => ({ g, index, tier, share: load * (shares[j] ?? 0), spilled: position > 0 }));
    });
    const weightsOfGroups = shaped ? partsPerMillion(members.map((m) => m.share)) : members.map((m) => clampWeight(m.g.healthyWeight));
    const seen = new Map<string, number>();
    for (const m of members) seen.set(localityKey(m.g.locality), (seen.get(localityKey(m.g.locality)) ?? 0) + 1);
    members.forEach((m, j) => {
      const clusters = [...m.g.clusters].sort();
      const shared = (seen.get(localityKey(m.g.locality)) ?? 0) > 1;
      const locality = shared ? { ...m.g.locality, subzone: `${m.g.locality.subzone}~${clusters.join('+')}` } : m.g.locality;
      out.push({
        group: { locality, priority, weight: weightsOfGroups[j] ?? 1, endpoints: m.g.endpoints.sort(compareEndpoints) },
        placement: {
          reason: m.spilled ? 'spill' : m.tier.reason,
          tierReason: m.tier.reason,
          tier: m.index,
          tierHealth: { healthy: m.tier.healthy / scaleFactor, total: m.tier.total / scaleFactor },
          clusters,
          standby: m.tier.standby,
          share: m.share,
        },
      });
    });
  });
  out.sort((a, b) => a.group.priority - b.group.priority || compareLocality(a.group.locality, b.group.locality));
  return {
    assignment: { service: vd.hostname, port, groups: out.map((o) => o.group), scaleFactor, dropped, skippedGateways },
    placements: out.map((o) => o.placement),
  };
}

/** What the backends of a virtual destination select in one cluster. */
export interface BackendCluster {
  cluster: string;
  /** `namespace/name` of the services selected that have one of the VD's target ports, sorted */
  services: string[];
  /** their endpoint addresses that serve a VD port, and how many of them are HEALTHY */
  endpoints: number;
  healthy: number;
}

/** Where the backends of `vd` are, per cluster (in name order); empty when they select nothing. */
export function virtualDestinationBackends(snapshot: FederatedSnapshot, vd: VirtualDestination): BackendCluster[] {
  const targets = new Set(vd.ports.map(vdTargetPort));
  const byCluster = new Map<string, { services: Set<string>; endpoints: Map<string, boolean> }>();
  for (const { name, view, key, sv } of selectedServices(snapshot, vd.backends)) {
    for (const servicePort of sv.service.ports.filter((p) => targets.has(p.port))) {
      let entry = byCluster.get(name);
      if (!entry) {
        entry = { services: new Set(), endpoints: new Map() };
        byCluster.set(name, entry);
      }
      entry.services.add(key);
      for (const c of candidatesOf(name, view.cluster, sv, servicePort)) entry.endpoints.set(c.address, (entry.endpoints.get(c.address) ?? false) || c.health === 'HEALTHY');
    }
  }
  return [...byCluster].map(([cluster, { services, endpoints }]) => ({
    cluster,
    services: [...services].sort(),
    endpoints: endpoints.size,
    healthy: [...endpoints.values()].filter(Boolean).length,
  }));
}

/** The clusters where a backend of `vd` has endpoints on one of its ports (sorted): where its gateways can take it. */
export function virtualDestinationClusters(snapshot: FederatedSnapshot, vd: VirtualDestination): string[] {
  const clusters = new Set<string>();
  for (const port of vd.ports) for (const c of backendCandidates(snapshot, vd.backends, vdTargetPort(port))) clusters.add(c.cluster);
  return [...clusters].sort();
}
