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
   * endpoint-address: the address:port is also a direct endpoint of this assignment (reported by loadAssignment).
   */
  readonly reason: 'hostname' | 'address-in-use' | 'endpoint-address';
}

/**
 * The federation's gateways, indexed as Istio's NetworkManager indexes them
 * (istio/istio pilot/pkg/model/network.go, NetworkManager.reload): by network and by network+cluster, each list
 * sorted by address then port (SortGateways), and `scaleFactor` = the least common multiple of the sizes of all
 * those lists (`lcm`, GetLBWeightScaleFactor), 1 when there are none.
 */
export interface GatewayIndex {
  readonly byNetwork: ReadonlyMap<string, readonly NetworkGateway[]>;
  readonly byNetworkAndCluster: ReadonlyMap<string, readonly NetworkGateway[]>;
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
  const skipped: SkippedGateway[] = [];
  /** address:port → network that owns it */
  const owner = new Map<string, string>();

  const names = [...snapshot.clusters.keys()].sort();
  for (const name of names) {
    const view = snapshot.clusters.get(name);
    if (!view || view.state === 'evicted') continue;
    const network = view.cluster.network;
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
  return { byNetwork, byNetworkAndCluster, scaleFactor, skipped };
}

/**
 * The gateways that stand for an endpoint of `cluster` on `network`: that cluster's own gateways when it has any,
 * else every gateway of the network (Istio's selectNetworkGateways in pilot/pkg/xds/endpoints/ep_filters.go:
 * GatewaysForNetworkAndCluster, falling back to GatewaysForNetwork). Empty: the network has no gateway.
 */
export function gatewaysFor(index: GatewayIndex, network: string, cluster: string): readonly NetworkGateway[] {
  const own = index.byNetworkAndCluster.get(networkClusterKey(network, cluster));
  if (own && own.length > 0) return own;
  return index.byNetwork.get(network) ?? [];
}

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
