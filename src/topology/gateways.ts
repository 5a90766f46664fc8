import { isIP } from 'node:net';
import type { FederatedSnapshot } from '../registry/snapshot.js';

/** One east-west gateway as split horizon uses it: an IP literal and port on a network, owned by a cluster. */
export interface NetworkGateway {
  readonly network: string;
  readonly cluster: string;
  readonly address: string;
  readonly port: number;
}

export interface SkippedGateway {
  readonly cluster: string;
  readonly network: string;
  readonly address: string;
  readonly port: number;
  /**
   * hostname: not an IP literal (xDS endpoints must be IP literals; resolving load-balancer names is later work);
   * address-in-use: the same address:port is already a gateway of another network;
   * endpoint-address: the address:port is also a direct endpoint of this assignment (reported by loadAssignment);
   * unreachable: meshfed's health probes find it down (ClusterView.unreachableGateways).
   */
  readonly reason: 'hostname' | 'address-in-use' | 'endpoint-address' | 'unreachable';
}

/**
 * The federation's gateways, indexed as Istio's NetworkManager indexes them
 * (istio/istio pilot/pkg/model/network.go, NetworkManager.reload): by network and by network+cluster, each list
 * sorted by address then port (SortGateways), and `scaleFactor` = the least common multiple of the sizes of all
 * those lists (`lcm`, GetLBWeightScaleFactor), 1 when there are none. The lists hold the reachable gateways; the
 * scale factor is also a multiple of each list's size counting unreachable ones, so that it divides either way.
 */
export interface GatewayIndex {
  /** the reachable gateways */
  readonly byNetwork: ReadonlyMap<string, readonly NetworkGateway[]>;
  readonly byNetworkAndCluster: ReadonlyMap<string, readonly NetworkGateway[]>;
  /**
   * the networks and network+cluster keys that have gateways, reachable or not: which gateways stand for an endpoint
   * (its cluster's, else its network's) and whether its network is reached through one at all is decided on these,
   * so a gateway that is down never makes its endpoints direct, nor hands them to another cluster's gateway (which
   * forwards only to its own cluster's endpoints)
   */
  readonly withGateways: ReadonlySet<string>;
  readonly scaleFactor: number;
  readonly skipped: readonly SkippedGateway[];
}

export const addressKey = (address: string, port: number): string => `${address.toLowerCase()}|${port}`;
const networkClusterKey = (network: string, cluster: string): string => `${network}\u0000${cluster}`;

/**
 * Build the gateway index of a snapshot. A gateway belongs to its cluster's network. Evicted clusters contribute
 * no gateways (meshfed's decision: nothing about an evicted cluster is trusted any more). Clusters are visited in
 * name order so the result does not depend on map order.
 *
 * Hostname gateways are dropped, as Istio drops them when RESOLVE_HOSTNAME_GATEWAYS is off
 * (network.go, resolveHostnameGateways: "Failed parsing gateway address"), before the LCM is computed.
 */
export function indexGateways(snapshot: FederatedSnapshot): GatewayIndex {
  const byNetwork = new Map<string, NetworkGateway[]>();
  const byNetworkAndCluster = new Map<string, NetworkGateway[]>();
  const withGateways = new Set<string>();
  /** how many gateways, reachable or not, each network and network+cluster has (for the scale factor) */
  const counted = new Map<string, Set<string>>();
  const skipped: SkippedGateway[] = [];
  /** address:port → network that owns it */
  const owner = new Map<string, string>();

  const names = [...snapshot.clusters.keys()].sort();
  for (const name of names) {
    const view = snapshot.clusters.get(name);
    if (!view || view.state === 'evicted') continue;
    const network = view.cluster.network;
    const unreachable = new Set((view.unreachableGateways ?? []).map((gw) => addressKey(gw.address, gw.port)));
    for (const gw of view.gateways) {
      const base = { cluster: name, network, address: gw.address, port: gw.port };
      if (isIP(gw.address) === 0) {
        skipped.push({ ...base, reason: 'hostname' });
        continue;
      }
      const key = addressKey(gw.address, gw.port);
      const ownedBy = owner.get(key);
      if (ownedBy !== undefined && ownedBy !== network) {
        skipped.push({ ...base, reason: 'address-in-use' });
        continue;
      }
      owner.set(key, network);
      for (const where of [network, networkClusterKey(network, name)]) {
        withGateways.add(where);
        counted.set(where, (counted.get(where) ?? new Set()).add(key));
      }
      if (unreachable.has(key)) {
        skipped.push({ ...base, reason: 'unreachable' });
        continue;
      }
      const gateway: NetworkGateway = base;
      // Istio keys its sets by (network, cluster, address, port); meshfed emits each address once, so a gateway
      // listed by two clusters of one network counts once for the network and once for each cluster.
      addUnique(byNetwork, network, gateway);
      addUnique(byNetworkAndCluster, networkClusterKey(network, name), gateway);
    }
  }

  let scaleFactor = 1;
  for (const lists of [byNetwork, byNetworkAndCluster]) {
    for (const [key, list] of lists) {
      list.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : a.port - b.port));
      lists.set(key, list);
      scaleFactor = lcm(scaleFactor, list.length);
    }
  }
  // the counts with the unreachable gateways too: a gateway going down then rarely changes the factor, so proxies
  // it does not concern see the same weights
  for (const keys of counted.values()) scaleFactor = lcm(scaleFactor, keys.size);
  return { byNetwork, byNetworkAndCluster, withGateways, scaleFactor, skipped };
}

/**
 * The reachable gateways that stand for an endpoint of `cluster` on `network`: that cluster's own gateways when it
 * has any, else every gateway of the network (Istio's selectNetworkGateways in pilot/pkg/xds/endpoints/ep_filters.go:
 * GatewaysForNetworkAndCluster, falling back to GatewaysForNetwork). The choice is made on every gateway, reachable
 * or not, and the unreachable ones are then left out: empty when the network has no gateway
 * (networkHasGateways tells) or when every gateway that would stand for the endpoint is down.
 */
export function gatewaysFor(index: GatewayIndex, network: string, cluster: string): readonly NetworkGateway[] {
  const key = networkClusterKey(network, cluster);
  if (index.withGateways.has(key)) return index.byNetworkAndCluster.get(key) ?? [];
  return index.byNetwork.get(network) ?? [];
}

/** Whether endpoints on `network` are reached from other networks through gateways (reachable or not). */
export const networkHasGateways = (index: GatewayIndex, network: string): boolean => index.withGateways.has(network);

function addUnique(map: Map<string, NetworkGateway[]>, key: string, gateway: NetworkGateway): void {
  const list = map.get(key) ?? [];
  const k = addressKey(gateway.address, gateway.port);
  if (!list.some((g) => addressKey(g.address, g.port) === k)) list.push(gateway);
  map.set(key, list);
}

function gcd(a: number, b: number): number {
  while (b !== 0) [a, b] = [b, a % b];
  return a;
}

/** Least common multiple (Istio's lcm in network.go). */
export function lcm(a: number, b: number): number {
  return (a / gcd(a, b)) * b;
}
