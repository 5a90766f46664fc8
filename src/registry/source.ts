import type { Gateway } from '../model/cluster.js';
import type { Endpoint, Service } from '../model/service.js';

/** One service of one cluster with its endpoints, as a source last saw it. Immutable. */
export interface ServiceView {
  readonly service: Service;
  readonly endpoints: readonly Endpoint[];
}

/** What a cluster source reports; the registry turns it into health and snapshots. */
export interface SourceEvents {
  /** a service and its endpoints changed; undefined: the service is gone */
  serviceChanged(key: string, view: ServiceView | undefined): void;
  /** the complete set of services (after a list or re-list): anything not in it is gone */
  resync(views: ReadonlyMap<string, ServiceView>): void;
  /** gateways the source discovered (explicit gateways in the registration win over these) */
  gatewaysDiscovered(gateways: readonly Gateway[]): void;
  /** the source is in sync with its cluster (initial list done, or recovered) */
  synced(): void;
  /** the source lost its cluster (connection refused, watch failed, API errors, timeouts) */
  failed(reason: string): void;
  /** a watch was restarted after a failure */
  watchRestarted(): void;
  /** raw events received (for rates) */
  eventsReceived(count: number): void;
}

/** Where a cluster's services and endpoints come from: a Kubernetes API, a static list, a simulation. */
export interface ClusterSource {
  start(events: SourceEvents): void;
  stop(): Promise<void>;
}
