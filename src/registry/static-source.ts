import type { StaticService } from '../model/federation-file.js';
import { serviceKey } from '../model/service.js';
import type { ClusterSource, ServiceView, SourceEvents } from './source.js';

function toViews(cluster: string, services: readonly StaticService[]): Map<string, ServiceView> {
  const views = new Map<string, ServiceView>();
  for (const { endpoints, ...service } of services) {
    views.set(serviceKey(service.namespace, service.name), Object.freeze({ service: Object.freeze({ cluster, ...service }), endpoints: Object.freeze([...endpoints]) }));
  }
  return views;
}

/**
 * A cluster with no API server: its services are what the federation file (or a simulation) says. For failover
 * drills it can also play an API server that goes away (`fail`) and comes back (`recover`).
 */
export class StaticSource implements ClusterSource {
  #events: SourceEvents | undefined;
  #views: Map<string, ServiceView>;
  /** why the simulated API is gone; undefined while it answers */
  #outage: string | undefined;

  constructor(
    readonly cluster: string,
    services: readonly StaticService[],
  ) {
    this.#views = toViews(cluster, services);
  }

  start(events: SourceEvents): void {
    this.#events = events;
    if (this.#outage !== undefined) {
      events.failed(this.#outage);
      return;
    }
    events.resync(this.#views);
    events.synced();
  }

  /** Replaces the cluster's services, as a simulation or a reloaded file does (during an outage: once it is over). */
  update(services: readonly StaticService[]): void {
    this.#views = toViews(this.cluster, services);
    if (this.#outage === undefined) this.#events?.resync(this.#views);
  }

  /** Why the simulated API is gone (see `fail`); undefined while it answers. */
  get outage(): string | undefined {
    return this.#outage;
  }

  /**
   * The cluster's API goes away, as when its API server is down: the registry hears that the source failed (and
   * keeps the last-known endpoints for its grace period, then evicts them), and updates are held until `recover`.
   */
  fail(reason: string): void {
    this.#outage = reason;
    this.#events?.failed(reason);
  }

  /** The API is back: the services as they are now (with what changed during the outage) are resynced. */
  recover(): void {
    if (this.#outage === undefined) return;
    this.#outage = undefined;
    this.#events?.resync(this.#views);
    this.#events?.synced();
  }

  stop(): Promise<void> {
    this.#events = undefined;
    return Promise.resolve();
  }
}
