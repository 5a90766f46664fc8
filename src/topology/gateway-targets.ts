/**
 * What an east-west gateway forwards to (Istio's AUTO_PASSTHROUGH): the healthy mTLS endpoints of a service port in
 * the gateway's OWN cluster, all direct. Never another cluster's endpoints (no second gateway hop), and never a
 * plaintext endpoint (the gateway passes TLS through untouched, so a workload that does not terminate mesh mTLS
 * could not answer it).
 */
import type { ClusterView, FederatedSnapshot } from '../registry/snapshot.js';
import type { VirtualDestination } from '../model/virtual-destination.js';
import { loadAssignment, type LoadAssignment } from './split-horizon.js';
import { virtualDestinationAssignment } from './virtual-destinations.js';

/** `cluster`'s snapshot alone, keeping only mTLS endpoints; undefined when the cluster is unknown. */
function ownMtlsEndpoints(snapshot: FederatedSnapshot, cluster: string): FederatedSnapshot | undefined {
  const view = snapshot.clusters.get(cluster);
  if (!view) return undefined;
  const services = new Map([...view.services].map(([key, sv]) => [key, { service: sv.service, endpoints: sv.endpoints.filter((e) => e.tlsMode === 'mtls') }]));
  const only: ClusterView = { ...view, services };
  return { version: snapshot.version, createdAt: snapshot.createdAt, clusters: new Map([[cluster, only]]) };
}

/**
 * The assignment the gateway of `cluster` uses for `service` (namespace/name) on `port`: that cluster's mTLS
 * endpoints, direct, prioritised relative to the cluster's own region and zone. Empty for an unknown or evicted
 * cluster.
 */
export function gatewayAssignment(snapshot: FederatedSnapshot, cluster: string, service: string, port: number): LoadAssignment {
  const own = ownMtlsEndpoints(snapshot, cluster);
  const view = own?.clusters.get(cluster);
  if (!own || !view) return { service, port, groups: [], scaleFactor: 1, dropped: [], skippedGateways: [] };
  const { network, region, zone } = view.cluster;
  return loadAssignment(own, { cluster, network, locality: { region, zone } }, service, port);
}

/**
 * The assignment the gateway of `cluster` uses for virtual destination `vd` on `port`: the VD's backends in that
 * cluster only (mTLS endpoints, direct), in the VD's failover tiers as seen from the cluster's own locality.
 */
export function gatewayVirtualDestinationAssignment(snapshot: FederatedSnapshot, cluster: string, vd: VirtualDestination, port: number): LoadAssignment {
  const own = ownMtlsEndpoints(snapshot, cluster);
  const view = own?.clusters.get(cluster);
  if (!own || !view) return { service: vd.hostname, port, groups: [], scaleFactor: 1, dropped: [], skippedGateways: [] };
  const { network, region, zone } = view.cluster;
  return virtualDestinationAssignment(own, vd, port, { cluster, network, locality: { region, zone } }).assignment;
}
