import type { Cluster, Gateway } from '../model/cluster.js';
import { formatDuration } from '../model/duration.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { RegistryMetrics } from './metrics.js';
import type { ClusterView, ClusterState, FederatedSnapshot, SnapshotChange, UnreachableGateway } from './snapshot.js';
import { EMPTY_SNAPSHOT } from './snapshot.js';
import type { ClusterSource, ServiceView, SourceEvents } from './source.js';
import type { Registry as PromRegistry } from 'prom-client';

export interface RegistryOptions {
  /** how long a cluster that lost its API keeps serving its last-known endpoints before they are evicted */
  graceMs?: number;
  /** quiet time before a batch of changes becomes a snapshot */
  debounceMs?: number;
  /** longest a change waits for a snapshot however busy the sources are */
  maxDelayMs?: number;
  logger?: Logger;
  /** where metrics are registered (a prom-client Registry); a private one by default */
  metrics?: PromRegistry;
}

export const DEFAULT_GRACE_MS = 60_000;
export const DEFAULT_DEBOUNCE_MS = 100;
export const DEFAULT_MAX_DELAY_MS = 1_000;

/** A cluster's status for people and APIs. */
export interface ClusterStatus {
  name: string;
  network: string;
  region: string;
  zone: string;
  source: Cluster['source']['type'];
  gateways: Gateway[];
  gatewaysFrom: 'registration' | 'discovery' | 'none';
  /** those of `gateways` meshfed's probes find down; absent when none is */
  unreachableGateways?: UnreachableGateway[];
  state: ClusterState;
  reason?: string;
  /** when the cluster entered its state */
  since: string;
  /** when the cluster was last fully in sync */
  lastSync?: string;
  services: number;
  endpoints: number;
  watchRestarts: number;
  /** watch events received since registration, and their rate over the last ten seconds */
  events: number;
  eventsPerSecond: number;
}

export type SnapshotListener = (snapshot: FederatedSnapshot, change: SnapshotChange) => void;

function sameView(a: ServiceView, b: ServiceView): boolean {
  return a === b || (JSON.stringify(a.service) === JSON.stringify(b.service) && JSON.stringify(a.endpoints) === JSON.stringify(b.endpoints));
}

/** Counts events in one-second buckets over the last ten seconds. */
class RateMeter {
  #buckets = new Map<number, number>();

  add(count: number, now = Date.now()): void {
    const second = Math.floor(now / 1000);
    this.#buckets.set(second, (this.#buckets.get(second) ?? 0) + count);
    for (const key of this.#buckets.keys()) if (key < second - 10) this.#buckets.delete(key);
  }

  perSecond(now = Date.now()): number {
    const second = Math.floor(now / 1000);
    let total = 0;
    for (const [key, count] of this.#buckets) if (key >= second - 10 && key < second) total += count;
    return total / 10;
  }
}

class ClusterEntry {
  state: ClusterState = 'syncing';
  reason: string | undefined = 'waiting for the first sync';
  since = new Date();
  lastSync: Date | undefined;
  services = new Map<string, ServiceView>();
  discovered: readonly Gateway[] = [];
  /** what the gateway probes found down, by `address|port` (may name gateways the cluster no longer has) */
  readonly unreachable = new Map<string, UnreachableGateway>();
  graceTimer: NodeJS.Timeout | undefined;
  watchRestarts = 0;
  events = 0;
  readonly rate = new RateMeter();
  /** bumped on removal, so late callbacks from a stopped source are ignored */
  alive = true;

  constructor(
    public cluster: Cluster,
    readonly source: ClusterSource,
  ) {}

  get gateways(): { gateways: Gateway[]; from: ClusterStatus['gatewaysFrom'] } {
    if (this.cluster.gateways.length > 0) return { gateways: this.cluster.gateways, from: 'registration' };
    if (this.discovered.length > 0) return { gateways: [...this.discovered], from: 'discovery' };
    return { gateways: [], from: 'none' };
  }

  /** the cluster's gateways that the probes find down */
  get unreachableGateways(): UnreachableGateway[] {
    return this.gateways.gateways.flatMap((gw) => this.unreachable.get(gatewayKey(gw.address, gw.port)) ?? []);
  }
}

const gatewayKey = (address: string, port: number): string => `${address.toLowerCase()}|${String(port)}`;

/**
 * The federation's live knowledge: every registered cluster, its health, and its
 * services. Each cluster is its own fault domain: its source reports into its own
 * entry, and nothing one source does can block or corrupt another's.
 */
export class Registry {
  readonly #entries = new Map<string, ClusterEntry>();
  readonly #listeners = new Set<SnapshotListener>();
  readonly #graceMs: number;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #log: Logger;
  readonly metrics: RegistryMetrics;
  #snapshot: FederatedSnapshot = EMPTY_SNAPSHOT;
  #dirtyServices = new Set<string>();
  #dirtyClusters = new Set<string>();
  #debounce: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;
  #closed = false;

  constructor(options: RegistryOptions = {}) {
    this.#graceMs = options.graceMs ?? DEFAULT_GRACE_MS;
    this.#debounceMs = options.debounceMs ?? DEFAULT_DEBOUNCE_MS;
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULT_MAX_DELAY_MS;
    this.#log = options.logger ?? SILENT_LOGGER;
    this.metrics = new RegistryMetrics(options.metrics, () => this.#lastSyncAges());
  }

  /** The latest published snapshot. */
  snapshot(): FederatedSnapshot {
    return this.#snapshot;
  }

  /** Calls `listener` with every new snapshot and what changed; returns the unsubscribe function. */
  subscribe(listener: SnapshotListener): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  has(name: string): boolean {
    return this.#entries.has(name);
  }

  /** Adds a cluster and starts its source. */
  add(cluster: Cluster, source: ClusterSource): void {
    if (this.#closed) throw new Error('the registry is closed');
    if (this.#entries.has(cluster.name)) throw new Error(`cluster ${cluster.name} is already registered`);
    const entry = new ClusterEntry(cluster, source);
    this.#entries.set(cluster.name, entry);
    this.metrics.setState(cluster.name, entry.state);
    this.#log.info({ cluster: cluster.name, network: cluster.network, source: cluster.source.type }, 'cluster registered');
    this.#markCluster(cluster.name);
    try {
      source.start(this.#eventsFor(entry));
    } catch (error) {
      this.#fail(entry, `source failed to start: ${(error as Error).message}`);
    }
  }

  /** Stops a cluster's source and drops it from the federation. */
  async remove(name: string): Promise<boolean> {
    const entry = this.#entries.get(name);
    if (!entry) return false;
    entry.alive = false;
    clearTimeout(entry.graceTimer);
    this.#entries.delete(name);
    for (const key of entry.services.keys()) this.#dirtyServices.add(key);
    this.#markCluster(name);
    this.metrics.forget(name);
    this.#log.info({ cluster: name, from: entry.state, to: 'removed' }, 'cluster removed');
    this.metrics.transition(name, entry.state, 'removed');
    await entry.source.stop();
    return true;
  }

  status(name: string): ClusterStatus | undefined {
    const entry = this.#entries.get(name);
    return entry ? this.#status(entry) : undefined;
  }

  list(): ClusterStatus[] {
    return [...this.#entries.values()].map((entry) => this.#status(entry)).sort((a, b) => a.name.localeCompare(b.name));
  }

  /**
   * What meshfed's gateway probes found of a gateway of `cluster`: down (with what the last probe saw) or reachable
   * (undefined). The topology stops offering the endpoints only down gateways stand for to other networks. Ignored
   * for a cluster that is not registered.
   */
  setGatewayReachability(cluster: string, address: string, port: number, down: { reason: string } | undefined): void {
    const entry = this.#entries.get(cluster);
    if (!entry || this.#closed) return;
    const key = gatewayKey(address, port);
    if (down === undefined) {
      if (!entry.unreachable.delete(key)) return;
    } else {
      if (entry.unreachable.has(key)) return;
      entry.unreachable.set(key, Object.freeze({ address, port, reason: down.reason, since: new Date().toISOString() }));
    }
    this.#markCluster(cluster);
  }

  /** Publishes pending changes now instead of waiting for the debounce window. */
  flush(): FederatedSnapshot {
    this.#publish();
    return this.#snapshot;
  }

  async close(): Promise<void> {
    this.#closed = true;
    clearTimeout(this.#debounce);
    clearTimeout(this.#deadline);
    await Promise.all([...this.#entries.keys()].map((name) => this.remove(name)));
    this.#listeners.clear();
  }

  // ---- what sources report ----------------------------------------------------------------

  #eventsFor(entry: ClusterEntry): SourceEvents {
    const name = entry.cluster.name;
    // Every callback is guarded: a source handing over garbage hurts only its own cluster.
    const guard =
      <A extends unknown[]>(what: string, fn: (...args: A) => void) =>
      (...args: A): void => {
        if (!entry.alive || this.#closed) return;
        try {
          fn(...args);
        } catch (error) {
          this.#log.error({ cluster: name, err: { message: (error as Error).message } }, `registry could not apply ${what}`);
        }
      };
    return {
      serviceChanged: guard('a service change', (key: string, view: ServiceView | undefined) => {
        if (view) entry.services.set(key, view);
        else if (!entry.services.delete(key)) return;
        this.#markService(entry, key);
      }),
      resync: guard('a resync', (views: ReadonlyMap<string, ServiceView>) => {
        // A re-list usually brings what meshfed already has: keep those objects, and mark only real changes.
        const next = new Map<string, ServiceView>();
        for (const [key, view] of views) {
          const old = entry.services.get(key);
          if (old && sameView(old, view)) next.set(key, old);
          else {
            next.set(key, view);
            this.#markService(entry, key);
          }
        }
        for (const key of entry.services.keys()) if (!views.has(key)) this.#markService(entry, key);
        entry.services = next;
      }),
      gatewaysDiscovered: guard('discovered gateways', (gateways: readonly Gateway[]) => {
        if (JSON.stringify(gateways) === JSON.stringify(entry.discovered)) return;
        entry.discovered = gateways;
        this.#log.info({ cluster: name, gateways }, 'east-west gateways discovered');
        this.#markCluster(name);
      }),
      synced: guard('a sync', () => {
        entry.lastSync = new Date();
        this.#transition(entry, 'ready', undefined);
      }),
      failed: guard('a failure', (reason: string) => {
        this.#fail(entry, reason);
      }),
      watchRestarted: guard('a watch restart', () => {
        entry.watchRestarts++;
        this.metrics.watchRestarted(name);
      }),
      eventsReceived: guard('an event count', (count: number) => {
        entry.events += count;
        entry.rate.add(count);
        this.metrics.events(name, count);
      }),
    };
  }

  #fail(entry: ClusterEntry, reason: string): void {
    if (entry.state === 'ready') {
      this.#transition(entry, 'stale', reason);
      entry.graceTimer = setTimeout(() => {
        if (entry.alive && entry.state === 'stale') this.#transition(entry, 'evicted', `${reason}; evicted after a ${formatDuration(this.#graceMs)} grace period`);
      }, this.#graceMs);
      entry.graceTimer.unref();
    } else if (entry.state === 'syncing' && entry.reason !== reason) {
      // never in sync, so nothing to keep serving: it stays syncing, with the reason; stale and evicted keep their course
      entry.reason = reason;
      this.#log.warn({ cluster: entry.cluster.name, state: entry.state, reason }, 'cluster not reachable');
      this.#markCluster(entry.cluster.name);
    }
  }

  #transition(entry: ClusterEntry, to: ClusterState, reason: string | undefined): void {
    const from = entry.state;
    if (from === to) {
      entry.reason = reason;
      return;
    }
    if (to === 'ready') clearTimeout(entry.graceTimer);
    entry.state = to;
    entry.reason = reason;
    entry.since = new Date();
    const log = to === 'ready' ? this.#log.info.bind(this.#log) : this.#log.warn.bind(this.#log);
    log({ cluster: entry.cluster.name, from, to, ...(reason ? { reason } : {}) }, `cluster ${to}`);
    this.metrics.transition(entry.cluster.name, from, to);
    this.metrics.setState(entry.cluster.name, to);
    // entering or leaving eviction changes every endpoint the cluster contributes
    if (to === 'evicted' || from === 'evicted') for (const key of entry.services.keys()) this.#dirtyServices.add(key);
    this.#markCluster(entry.cluster.name);
  }

  // ---- snapshots --------------------------------------------------------------------------

  #markService(entry: ClusterEntry, key: string): void {
    this.#dirtyServices.add(key);
    this.#dirtyClusters.add(entry.cluster.name);
    this.#schedule();
  }

  #markCluster(name: string): void {
    this.#dirtyClusters.add(name);
    this.#schedule();
  }

  /** Coalesces churn: publish after `debounceMs` of quiet, and never later than `maxDelayMs` after the first change. */
  #schedule(): void {
    if (this.#closed) return;
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#publish();
    }, this.#debounceMs);
    this.#deadline ??= setTimeout(() => {
      this.#publish();
    }, this.#maxDelayMs);
  }

  #publish(): void {
    clearTimeout(this.#debounce);
    clearTimeout(this.#deadline);
    this.#debounce = undefined;
    this.#deadline = undefined;
    if (this.#dirtyClusters.size === 0 && this.#dirtyServices.size === 0) return;
    const started = performance.now();
    const clusters = new Map<string, ClusterView>();
    for (const [name, entry] of this.#entries) {
      const previous = this.#snapshot.clusters.get(name);
      clusters.set(name, previous && !this.#dirtyClusters.has(name) ? previous : this.#view(entry));
    }
    const change: SnapshotChange = {
      version: this.#snapshot.version + 1,
      previousVersion: this.#snapshot.version,
      services: [...this.#dirtyServices].sort(),
      clusters: [...this.#dirtyClusters].sort(),
    };
    this.#dirtyServices = new Set();
    this.#dirtyClusters = new Set();
    this.#snapshot = Object.freeze({ version: change.version, createdAt: new Date(), clusters });
    this.metrics.published(change.version, (performance.now() - started) / 1000, this.#endpointCounts());
    for (const listener of this.#listeners) {
      try {
        listener(this.#snapshot, change);
      } catch (error) {
        this.#log.error({ err: { message: (error as Error).message }, version: change.version }, 'snapshot subscriber failed');
      }
    }
  }

  #view(entry: ClusterEntry): ClusterView {
    const unreachable = entry.unreachableGateways;
    return Object.freeze({
      cluster: entry.cluster,
      gateways: Object.freeze(entry.gateways.gateways),
      ...(unreachable.length > 0 ? { unreachableGateways: Object.freeze(unreachable) } : {}),
      state: entry.state,
      ...(entry.reason ? { reason: entry.reason } : {}),
      services: entry.state === 'evicted' ? new Map<string, ServiceView>() : new Map(entry.services),
    });
  }

  #status(entry: ClusterEntry): ClusterStatus {
    const { gateways, from } = entry.gateways;
    let endpoints = 0;
    for (const view of entry.services.values()) endpoints += view.endpoints.length;
    return {
      name: entry.cluster.name,
      network: entry.cluster.network,
      region: entry.cluster.region,
      zone: entry.cluster.zone,
      source: entry.cluster.source.type,
      gateways,
      gatewaysFrom: from,
      ...(entry.unreachableGateways.length > 0 ? { unreachableGateways: entry.unreachableGateways } : {}),
      state: entry.state,
      ...(entry.reason ? { reason: entry.reason } : {}),
      since: entry.since.toISOString(),
      ...(entry.lastSync ? { lastSync: entry.lastSync.toISOString() } : {}),
      services: entry.services.size,
      endpoints,
      watchRestarts: entry.watchRestarts,
      events: entry.events,
      eventsPerSecond: entry.rate.perSecond(),
    };
  }

  #endpointCounts(): Map<string, number> {
    const counts = new Map<string, number>();
    for (const [name, view] of this.#snapshot.clusters) {
      let n = 0;
      for (const service of view.services.values()) n += service.endpoints.length;
      counts.set(name, n);
    }
    return counts;
  }

  #lastSyncAges(): Map<string, number> {
    const now = Date.now();
    const ages = new Map<string, number>();
    for (const [name, entry] of this.#entries) if (entry.lastSync) ages.set(name, (now - entry.lastSync.getTime()) / 1000);
    return ages;
  }
}
