import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import { CLUSTER_STATES, type ClusterState } from './snapshot.js';

/** The registry's Prometheus metrics. */
export class RegistryMetrics {
  readonly registry: PromRegistry;
  readonly #state: Gauge<'cluster' | 'state'>;
  readonly #transitions: Counter<'cluster' | 'from' | 'to'>;
  readonly #restarts: Counter<'cluster'>;
  readonly #events: Counter<'cluster'>;
  readonly #endpoints: Gauge<'cluster'>;
  readonly #version: Gauge;
  readonly #build: Histogram;
  readonly #syncAge: Gauge<'cluster'>;

  constructor(registry: PromRegistry | undefined, lastSyncAges: () => Map<string, number>) {
    this.registry = registry ?? new PromRegistry();
    const registers = [this.registry];
    this.#state = new Gauge({ name: 'meshfed_cluster_state', help: 'Cluster state: 1 for the state the cluster is in, 0 for the others', labelNames: ['cluster', 'state'], registers });
    this.#transitions = new Counter({ name: 'meshfed_cluster_state_transitions_total', help: 'Cluster state transitions', labelNames: ['cluster', 'from', 'to'], registers });
    this.#restarts = new Counter({ name: 'meshfed_cluster_watch_restarts_total', help: 'Watches restarted after a failure', labelNames: ['cluster'], registers });
    this.#events = new Counter({ name: 'meshfed_cluster_events_total', help: 'Watch events received from the cluster', labelNames: ['cluster'], registers });
    this.#endpoints = new Gauge({ name: 'meshfed_cluster_endpoints', help: 'Endpoints the cluster contributes to the latest snapshot', labelNames: ['cluster'], registers });
    this.#version = new Gauge({ name: 'meshfed_registry_snapshot_version', help: 'Version of the latest federated snapshot', registers });
    this.#build = new Histogram({ name: 'meshfed_registry_snapshot_build_seconds', help: 'Time to fold changes into a new snapshot', buckets: [0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1], registers });
    const syncAge = new Gauge({
      name: 'meshfed_cluster_last_sync_age_seconds',
      help: 'Seconds since the cluster was last fully in sync',
      labelNames: ['cluster'],
      registers,
      collect() {
        for (const [cluster, age] of lastSyncAges()) this.set({ cluster }, age);
      },
    });
    this.#syncAge = syncAge;
  }

  setState(cluster: string, state: ClusterState): void {
    for (const s of CLUSTER_STATES) this.#state.set({ cluster, state: s }, s === state ? 1 : 0);
  }

  transition(cluster: string, from: string, to: string): void {
    this.#transitions.inc({ cluster, from, to });
  }

  watchRestarted(cluster: string): void {
    this.#restarts.inc({ cluster });
  }

  events(cluster: string, count: number): void {
    this.#events.inc({ cluster }, count);
  }

  published(version: number, seconds: number, endpoints: Map<string, number>): void {
    this.#version.set(version);
    this.#build.observe(seconds);
    for (const [cluster, n] of endpoints) this.#endpoints.set({ cluster }, n);
  }

  /** Drops the per-cluster series of a removed cluster. */
  forget(cluster: string): void {
    for (const state of CLUSTER_STATES) this.#state.remove({ cluster, state });
    this.#endpoints.remove({ cluster });
    this.#syncAge.remove({ cluster });
  }
}
