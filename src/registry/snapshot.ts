import type { Cluster, Gateway } from '../model/cluster.js';
import type { ServiceView } from './source.js';

export const CLUSTER_STATES = ['syncing', 'ready', 'stale', 'evicted'] as const;
/** syncing → ready → stale → evicted; a removed cluster leaves the snapshot. */
export type ClusterState = (typeof CLUSTER_STATES)[number];

/** A gateway of a cluster that meshfed's own health probes find unreachable (src/registry/gateway-probe.ts). */
export interface UnreachableGateway {
  readonly address: string;
  readonly port: number;
  /** what the last failed probe saw: "connect ECONNREFUSED", "no answer to a ClientHello within 1 s" */
  readonly reason: string;
  /** when it was found down (ISO 8601) */
  readonly since: string;
}

/** One cluster as consumers see it. */
export interface ClusterView {
  readonly cluster: Cluster;
  /** explicit gateways if the registration names any, else discovered ones */
  readonly gateways: readonly Gateway[];
  /** those of `gateways` the probes find down; absent when none is (or nothing probes) */
  readonly unreachableGateways?: readonly UnreachableGateway[];
  readonly state: ClusterState;
  /** why the cluster is not ready, when it is not */
  readonly reason?: string;
  /** services by `namespace/name`; empty once evicted */
  readonly services: ReadonlyMap<string, ServiceView>;
}

/**
 * The federation at one moment: every cluster and its services and endpoints.
 * Immutable; a new version shares every unchanged object with the one before.
 */
export interface FederatedSnapshot {
  readonly version: number;
  readonly createdAt: Date;
  readonly clusters: ReadonlyMap<string, ClusterView>;
}

/** What changed between two snapshots, so consumers recompute only that. */
export interface SnapshotChange {
  readonly version: number;
  readonly previousVersion: number;
  /** `namespace/name` of services whose endpoints or definition changed in any cluster */
  readonly services: readonly string[];
  /** clusters added, removed, or whose state, gateways or registration changed */
  readonly clusters: readonly string[];
}

export const EMPTY_SNAPSHOT: FederatedSnapshot = Object.freeze({ version: 0, createdAt: new Date(0), clusters: new Map<string, ClusterView>() });

/** Every cluster's view of one service, for consumers that federate a service across clusters. */
export function serviceAcrossClusters(snapshot: FederatedSnapshot, key: string): { cluster: ClusterView; view: ServiceView }[] {
  const out: { cluster: ClusterView; view: ServiceView }[] = [];
  for (const cluster of snapshot.clusters.values()) {
    const view = cluster.services.get(key);
    if (view) out.push({ cluster, view });
  }
  return out;
}
