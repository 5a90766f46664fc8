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

/** A cluster with no API server: its services are what the federation file (or a simulation) says. */
export class StaticSource implements ClusterSource {
  #events: SourceEvents | undefined;
  #views: Map<string, ServiceView>;

  constructor(
    readonly cluster: string,
    services: readonly StaticService[],
  ) {
    this.#views = toViews(cluster, services);
  }

  start(events: SourceEvents): void {
    this.#events = events;
    events.resync(this.#views);
    events.synced();
  }

  /** Replaces the cluster's services, as a simulation or a reloaded file does. */
  update(services: readonly StaticService[]): void {
    this.#views = toViews(this.cluster, services);
    this.#events?.resync(this.#views);
  }

  stop(): Promise<void> {
    this.#events = undefined;
    return Promise.resolve();
  }
}
