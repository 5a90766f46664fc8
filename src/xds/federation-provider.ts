/**
 * The federation as xDS resources: the ResourceProvider the ADS server serves, fed by the registry's snapshots.
 * Topology decides (src/topology); this module only picks the view, builds, encodes, caches and announces.
 *
 * Views and caching. What a proxy gets depends on its kind (proxyless gRPC, Envoy sidecar, east-west gateway) and,
 * for endpoints, on where it stands: EDS for clients is computed once per (kind, network, locality), gateway
 * resources once per gateway cluster, and listeners, routes and client clusters once for everybody. Each resource
 * is encoded once per view and the same bytes go to every proxy sharing that view.
 *
 * Versions. Every cached resource has a version (a counter); a change marks the resources of the changed services
 * stale, and a stale resource is rebuilt on its next request: same bytes, same version (so no push), else a new
 * version. A set's version is its one resource's version, or the versions of its resources joined; a wildcard set
 * is remembered per view until something in that view changes.
 *
 * Pushes. Snapshot changes are coalesced (default 100 ms quiet, 1 s at most) and then announced per type: EDS when
 * only endpoints changed (only the changed services' resources are rebuilt, and the announcement names them, so
 * streams subscribed to none of them are not re-evaluated); every type, with every resource re-checked, when the
 * catalog (services, ports, identities, where they run) or a cluster (network, locality, state, gateways) changed.
 *
 * Sets. A set of one resource, and a set of several names once asked for, are the same object until one of its
 * resources changes (the ADS server encodes each set's response once for every stream it goes to).
 */
import { hash } from 'node:crypto';
import type { NamedVirtualDestination, VirtualDestination } from '../model/virtual-destination.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { FederatedSnapshot, SnapshotChange } from '../registry/snapshot.js';
import { EMPTY_SNAPSHOT } from '../registry/snapshot.js';
import {
  DEFAULT_DOMAIN_SUFFIX,
  federatedCatalog,
  forProxylessClients,
  gatewayAssignment,
  gatewayVirtualDestinationAssignment,
  loadAssignment,
  localityReason,
  virtualDestinationAssignment,
  virtualDestinationClusters,
  type Catalog,
  type CatalogService,
  type LoadAssignment,
  type PlacementReason,
  type ProxyView,
  type VirtualDestinationDrain,
} from '../topology/index.js';
import type { EncodedResource, NodeIdentity, ResourceProvider, ResourceSet } from './ads-server.js';
import { TYPE_URL } from './envoy-protos.js';
import { clusterToAny, edsCluster, outboundClusterName, virtualDestinationOutlierDetection, type EdsClusterOptions, type OutlierDetectionOptions } from './resources/cluster.js';
import { encodeLoadAssignment } from './resources/endpoints.js';
import { gatewayCluster, gatewayClusterName, gatewayClusterToAny, gatewayListener, gatewayListenerName, gatewayListenerToAny } from './resources/gateway-listener.js';
import { listenerToAny, proxylessListener } from './resources/listener.js';
import { proxylessTransportSocket } from './resources/proxyless-tls.js';
import { proxylessDomains, proxylessRouteConfiguration, routeConfigurationToAny } from './resources/route.js';
import { sidecarCluster, sidecarClusterToAny } from './resources/sidecar-cluster.js';

export type ProxyKind = 'proxyless' | 'sidecar' | 'gateway';

/**
 * What kind of proxy a node is. Istio's conventions: a node id starting `router~` is a gateway; Istio's proxyless
 * bootstrap sets metadata GENERATOR=grpc, and grpc clients name themselves `gRPC ...` in user_agent_name; Envoy says
 * `envoy`. Anything else is taken for a proxyless client (the one kind meshfed serves completely without Istio).
 */
export function proxyKind(node: NodeIdentity): ProxyKind {
  if (node.id.startsWith('router~')) return 'gateway';
  if (node.generator === 'grpc' || node.userAgent?.startsWith('gRPC') === true) return 'proxyless';
  if (node.userAgent === 'envoy' || node.id.startsWith('sidecar~')) return 'sidecar';
  return 'proxyless';
}

/** Where meshfed gets snapshots: the registry. */
export interface SnapshotFeed {
  snapshot(): FederatedSnapshot;
  subscribe(listener: (snapshot: FederatedSnapshot, change: SnapshotChange) => void): () => void;
}

export interface FederationXdsOptions {
  /** quiet time before coalesced changes are pushed (default 100 ms) */
  debounceMs?: number;
  /** longest a change waits to be pushed however busy the registry is (default 1 s) */
  maxDelayMs?: number;
  /** service hostnames are NAME.NAMESPACE.svc.SUFFIX (default cluster.local) */
  domainSuffix?: string;
  /** the trust domain whose SPIFFE IDs Envoy sidecars expect of a service's endpoints; no SAN check when absent */
  trustDomain?: string;
  /**
   * Proxyless clients reach services over mTLS: their clusters name this certificate provider instance of their
   * bootstrap (see resources/proxyless-tls.ts). Off when absent: plaintext gRPC.
   */
  proxylessMtls?: { certificateProvider: string };
  /**
   * Virtual destinations: their hostnames are served like services' (listeners, routes, clusters
   * `outbound|PORT||HOSTNAME`, gateway chains), their endpoints from their backends in their failover tiers.
   */
  virtualDestinations?: readonly NamedVirtualDestination[];
  logger?: Logger;
}

/** Why a proxy gets what it gets for one host and port (FederationXds.explain). */
export interface Explanation {
  kind: 'service' | 'virtual-destination';
  /** namespace/name of a service, the name of a virtual destination */
  name: string;
  host: string;
  port: number;
  /** the EDS cluster name, `outbound|PORT||HOST` */
  cluster: string;
  assignment: LoadAssignment;
  /** per group of `assignment`: the rule that put it in its priority */
  reasons: PlacementReason[];
}

/** What a push announced: its types, and when the oldest change it carries was seen. */
export interface AppliedChange {
  types: string[];
  seenAt: number;
  snapshotVersion: number;
}

export const DEFAULT_PUSH_DEBOUNCE_MS = 100;
export const DEFAULT_PUSH_MAX_DELAY_MS = 1_000;

/** ADS order: clusters before their endpoints, listeners before their routes. */
const ALL_TYPES = [TYPE_URL.cluster, TYPE_URL.clusterLoadAssignment, TYPE_URL.listener, TYPE_URL.routeConfiguration];

interface Entry {
  bytes: Uint8Array;
  version: string;
  stale: boolean;
  /** the service it was built from, for invalidation */
  service: string;
  cache: ViewCache;
  /** what is handed out for it, the same object until its bytes change */
  resource: EncodedResource;
  /** the set of this one resource, likewise */
  set: ResourceSet;
}

/** The resources of one type for one view. */
interface ViewCache {
  typeUrl: string;
  entries: Map<string, Entry>;
  wildcard?: ResourceSet;
  /** the last wildcard set, handed out again when a rebuild finds the same resources */
  lastWildcard?: ResourceSet;
  /** moves whenever an entry of this view goes stale: a remembered set of an older generation is checked again */
  generation: number;
  /** sets of several names, by names key */
  sets: Map<string, { generation: number; set: ResourceSet }>;
}

/** How many sets of several names a view remembers before it starts over. */
const MAX_NAMED_SETS = 10_000;

/** A key for a list of several names, remembered per array (a stream asks with the same array every time). */
const namesKeys = new WeakMap<readonly string[], string>();

function namesKey(names: readonly string[]): string {
  let key = namesKeys.get(names);
  if (key === undefined) {
    key = JSON.stringify(names);
    namesKeys.set(names, key);
  }
  return key;
}

/** Whether two lists hold the same resource objects, in the same order. */
function sameResources(a: readonly EncodedResource[], b: readonly EncodedResource[]): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/** A resource name resolved to the service port it stands for. */
interface Target {
  service: CatalogService;
  port: number;
}

const sameBytes = (a: Uint8Array, b: Uint8Array): boolean => a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(b);

export class FederationXds implements ResourceProvider {
  readonly #feed: SnapshotFeed;
  readonly #log: Logger;
  readonly #debounceMs: number;
  readonly #maxDelayMs: number;
  readonly #domainSuffix: string;
  readonly #trustDomain: string | undefined;
  readonly #proxylessMtls: { certificateProvider: string } | undefined;
  /** catalog key (`vd:NAME`) → virtual destination */
  #vds: ReadonlyMap<string, VirtualDestination>;
  /** the virtual destinations changed since the last push: every resource may change */
  #vdsChanged = false;
  /** virtual destination name → its drains (never an empty list) */
  readonly #drains = new Map<string, readonly VirtualDestinationDrain[]>();
  readonly #listeners = new Set<(typeUrl: string, names?: ReadonlySet<string>) => void>();
  readonly #appliedListeners = new Set<(change: AppliedChange) => void>();
  readonly #caches = new Map<string, ViewCache>();
  /** what to build for a (kind, type, where the proxy stands), until the next change; null: not served */
  readonly #plans = new Map<string, Plan | null>();
  /** service key → entries built from it */
  readonly #byService = new Map<string, Set<Entry>>();
  readonly #unsubscribe: () => void;
  #snapshot: FederatedSnapshot = EMPTY_SNAPSHOT;
  #catalog: Catalog;
  #catalogJson = new Map<string, string>();
  #clusterSignatures = new Map<string, string>();
  #seq = 0;
  #pending: { services: Set<string>; seenAt: number } | undefined;
  #debounce: NodeJS.Timeout | undefined;
  #deadline: NodeJS.Timeout | undefined;

  constructor(feed: SnapshotFeed, options: FederationXdsOptions = {}) {
    this.#feed = feed;
    this.#log = options.logger ?? SILENT_LOGGER;
    this.#debounceMs = options.debounceMs ?? DEFAULT_PUSH_DEBOUNCE_MS;
    this.#maxDelayMs = options.maxDelayMs ?? DEFAULT_PUSH_MAX_DELAY_MS;
    this.#domainSuffix = options.domainSuffix ?? DEFAULT_DOMAIN_SUFFIX;
    this.#trustDomain = options.trustDomain;
    this.#proxylessMtls = options.proxylessMtls;
    this.#vds = vdMap(options.virtualDestinations ?? []);
    this.#snapshot = feed.snapshot();
    this.#catalog = this.#catalogOf(this.#snapshot);
    this.#catalogJson = catalogJson(this.#catalog);
    this.#clusterSignatures = clusterSignatures(this.#snapshot);
    this.#unsubscribe = feed.subscribe((_snapshot, change) => {
      this.#onChange(change);
    });
  }

  /** The snapshot resources are currently built from. */
  snapshot(): FederatedSnapshot {
    return this.#snapshot;
  }

  catalog(): Catalog {
    return this.#catalog;
  }

  subscribe(listener: (typeUrl: string, names?: ReadonlySet<string>) => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  /** Called after each push is announced (for convergence metrics). */
  onApplied(listener: (change: AppliedChange) => void): () => void {
    this.#appliedListeners.add(listener);
    return () => this.#appliedListeners.delete(listener);
  }

  /** Replaces the virtual destinations; like a registry change, the result is pushed after the debounce window. */
  setVirtualDestinations(vds: readonly NamedVirtualDestination[]): void {
    this.#vds = vdMap(vds);
    this.#vdsChanged = true;
    this.#onChange({ services: [] });
  }

  /**
   * Replaces the drains of virtual destination `name` (metadata.name; [] lifts them): clients are sent the
   * endpoints they match DRAINING (see src/topology/virtual-destinations.ts), pushed like any change after the
   * debounce window. A drain must name a cluster, a region or a zone; a name no virtual destination has yet is kept
   * for when one has it.
   */
  setDrains(name: string, drains: readonly VirtualDestinationDrain[]): void {
    const bad = drains.find((d) => d.cluster === undefined && d.region === undefined && d.zone === undefined);
    if (bad) throw new Error(`a drain of virtual destination ${name} must name a cluster, a region or a zone`);
    if (drains.length === 0) this.#drains.delete(name);
    else this.#drains.set(name, Object.freeze(drains.map((d) => Object.freeze({ ...d }))));
    // a VD's EDS resources are re-checked on every change (see #apply)
    this.#onChange({ services: [`${VD_KEY_PREFIX}${name}`] });
  }

  /** The drains of virtual destination `name` now. */
  drains(name: string): readonly VirtualDestinationDrain[] {
    return this.#drains.get(name) ?? [];
  }

  /** Applies pending changes and announces them now instead of waiting for the debounce window. */
  flush(): void {
    this.#apply();
  }

  close(): void {
    clearTimeout(this.#debounce);
    clearTimeout(this.#deadline);
    this.#unsubscribe();
    this.#listeners.clear();
    this.#appliedListeners.clear();
  }

  resources(node: NodeIdentity, typeUrl: string, names: readonly string[]): ResourceSet | undefined {
    const kind = proxyKind(node);
    const { locality } = node;
    const planKey = `${kind}|${typeUrl}|${node.network ?? ''}|${node.cluster ?? ''}|${locality.region}|${locality.zone}|${locality.subzone}`;
    let plan = this.#plans.get(planKey);
    if (plan === undefined) {
      plan = this.#plan(kind, node, typeUrl) ?? null;
      this.#plans.set(planKey, plan);
    }
    if (!plan) return undefined;
    const cache = plan.cache ?? this.#cache(`${kind}|${typeUrl}|${plan.view}`, typeUrl);
    plan.cache = cache;
    if (names.length === 0 && plan.all) {
      if (cache.wildcard) return cache.wildcard;
      const all = this.#entries(cache, plan.all(), plan);
      const last = cache.lastWildcard;
      cache.wildcard = last && sameResources(last.resources, all) ? last : { version: setVersion(all), resources: all };
      cache.lastWildcard = cache.wildcard;
      return cache.wildcard;
    }
    if (names.length === 1) {
      const name = names[0] ?? '';
      const entry = cache.entries.get(name);
      if (entry && !entry.stale) return entry.set;
      const resource = this.#entry(cache, name, plan);
      return resource ? (cache.entries.get(name)?.set ?? { version: resource.version ?? '', resources: [resource] }) : { version: 'empty', resources: [] };
    }
    // several names: the set is remembered, and handed out again while its resources are the same objects
    const key = namesKey(names);
    const known = cache.sets.get(key);
    if (known?.generation === cache.generation) return known.set;
    const resources = this.#entries(cache, names, plan);
    let set: ResourceSet;
    if (known && sameResources(known.set.resources, resources)) {
      set = known.set;
    } else {
      set = { version: resources.length === 0 ? 'empty' : resources.length === 1 ? (resources[0]?.version ?? '') : setVersion(resources), resources };
    }
    if (!known && cache.sets.size >= MAX_NAMED_SETS) cache.sets.clear();
    cache.sets.set(key, { generation: cache.generation, set });
    return set;
  }

  /** The resources of `names` that exist (rebuilt when stale), in that order. */
  #entries(cache: ViewCache, names: readonly string[], plan: Plan): EncodedResource[] {
    const out: EncodedResource[] = [];
    for (const name of names) {
      const resource = this.#entry(cache, name, plan);
      if (resource) out.push(resource);
    }
    return out;
  }

  /**
   * What `node` is sent for `host` (a service's or a virtual destination's; `port` may be left out when it has one)
   * and why: the same topology functions its EDS is built from, before the proxyless locality split. Undefined when
   * the host names nothing here.
   */
  explain(node: NodeIdentity, host: string, port?: number): Explanation | undefined {
    const entry = this.#catalog.byHost.get(host);
    const chosen = port ?? (entry?.ports.length === 1 ? entry.ports[0]?.port : undefined);
    if (!entry || chosen === undefined || !entry.ports.some((p) => p.port === chosen)) return undefined;
    const proxy: ProxyView = { locality: node.locality };
    if (node.network !== undefined) proxy.network = node.network;
    if (node.cluster !== undefined) proxy.cluster = node.cluster;
    const vd = this.#vds.get(entry.key);
    const cluster = outboundClusterName(entry.host, chosen);
    if (vd) {
      const { assignment, placements } = virtualDestinationAssignment(this.#snapshot, vd, chosen, proxy, this.#drainsOf(entry.key));
      return { kind: 'virtual-destination', name: entry.name, host, port: chosen, cluster, assignment, reasons: placements.map((p) => p.reason) };
    }
    const assignment = loadAssignment(this.#snapshot, proxy, entry.key, chosen);
    const reasons = assignment.groups.map((g) => localityReason(node.locality, g.locality));
    return { kind: 'service', name: entry.key, host, port: chosen, cluster, assignment, reasons };
  }

  // ---- what to build for whom -----------------------------------------------------------------

  #plan(kind: ProxyKind, node: NodeIdentity, typeUrl: string): Plan | undefined {
    const catalog = this.#catalog;
    const snapshot = this.#snapshot;
    const outbound = (name: string, build: (t: Target) => Uint8Array): Resolved | undefined => {
      const t = this.#outboundTarget(name);
      return t && { service: t.service.key, build: () => build(t) };
    };
    // a virtual destination's outlier detection for its clusters; services get none
    const outlierDetection = (t: Target): OutlierDetectionOptions | undefined => {
      const od = this.#vds.get(t.service.key)?.outlierDetection;
      return od && virtualDestinationOutlierDetection(od);
    };
    const eds = (shape: (a: LoadAssignment) => LoadAssignment): Plan => {
      const proxy: ProxyView = { locality: node.locality };
      if (node.network !== undefined) proxy.network = node.network;
      if (node.cluster !== undefined) proxy.cluster = node.cluster;
      return {
        view: `${proxy.network ?? ''}|${node.locality.region}|${node.locality.zone}|${node.locality.subzone}`,
        all: undefined,
        resolve: (name) =>
          outbound(name, (t) => {
            const vd = this.#vds.get(t.service.key);
            return encodeLoadAssignment(
              name,
              shape(vd ? virtualDestinationAssignment(snapshot, vd, t.port, proxy, this.#drainsOf(t.service.key)).assignment : loadAssignment(snapshot, proxy, t.service.key, t.port)),
            );
          }),
      };
    };
    switch (kind) {
      case 'proxyless':
        if (typeUrl === TYPE_URL.listener || typeUrl === TYPE_URL.routeConfiguration) {
          const listener = typeUrl === TYPE_URL.listener;
          return {
            view: '',
            all: () => catalog.services.flatMap((s) => s.ports.map((p) => `${s.host}:${String(p.port)}`)),
            resolve: (name) => {
              const t = this.#listenerTarget(name);
              if (!t) return undefined;
              const cluster = outboundClusterName(t.service.host, t.port);
              return {
                service: t.service.key,
                build: () =>
                  listener
                    ? listenerToAny(proxylessListener(name, name)).value
                    : routeConfigurationToAny(proxylessRouteConfiguration(name, proxylessDomains(t.service.host, t.port), cluster)).value,
              };
            },
          };
        }
        if (typeUrl === TYPE_URL.cluster) {
          const mtls = this.#proxylessMtls;
          return {
            view: '',
            all: () => this.#outboundNames(),
            resolve: (name) =>
              outbound(name, (t) => {
                const options: EdsClusterOptions = { outlierDetection: outlierDetection(t) };
                if (mtls) options.transportSocket = proxylessTransportSocket(mtls.certificateProvider, this.#spiffeIds(t.service));
                return clusterToAny(edsCluster(name, options)).value;
              }),
          };
        }
        if (typeUrl === TYPE_URL.clusterLoadAssignment) return eds(forProxylessClients);
        return undefined;
      case 'sidecar':
        if (typeUrl === TYPE_URL.cluster) {
          return {
            view: '',
            all: () => this.#outboundNames(),
            resolve: (name) =>
              outbound(name, (t) => sidecarClusterToAny(sidecarCluster(t.service.host, t.port, { subjectAltNames: this.#spiffeIds(t.service), outlierDetection: outlierDetection(t) })).value),
          };
        }
        if (typeUrl === TYPE_URL.clusterLoadAssignment) return eds((a) => a);
        return undefined;
      case 'gateway': {
        const cluster = node.cluster ?? '';
        const local = (): CatalogService[] => catalog.services.filter((s) => s.clusters.includes(cluster));
        const gateway = (name: string, build: (t: Target) => Uint8Array): Resolved | undefined => {
          const t = this.#gatewayTarget(name, cluster);
          return t && { service: t.service.key, build: () => build(t) };
        };
        if (typeUrl === TYPE_URL.listener) {
          return {
            view: cluster,
            // Envoy refuses a listener without filter chains: a gateway with no local service gets none
            all: () => (local().length > 0 ? [GATEWAY_LISTENER] : []),
            resolve: (name) =>
              name !== GATEWAY_LISTENER || local().length === 0
                ? undefined
                : {
                    // the listener depends on the whole catalog: rebuilt on every catalog change
                    service: '',
                    build: () =>
                      gatewayListenerToAny(
                        gatewayListener(
                          local().flatMap((s) =>
                            s.ports.map((p) => {
                              const sni = gatewayClusterName(s.host, p.port);
                              // proxyless clients send the bare authority: accepted when it names one port
                              return { serverNames: s.ports.length === 1 ? [sni, s.host] : [sni], cluster: sni };
                            }),
                          ),
                        ),
                      ).value,
                  },
          };
        }
        if (typeUrl === TYPE_URL.cluster) {
          return {
            view: cluster,
            all: () => local().flatMap((s) => s.ports.map((p) => gatewayClusterName(s.host, p.port))),
            resolve: (name) => gateway(name, () => gatewayClusterToAny(gatewayCluster(name)).value),
          };
        }
        if (typeUrl === TYPE_URL.clusterLoadAssignment) {
          return {
            view: cluster,
            all: undefined,
            resolve: (name) =>
              gateway(name, (t) => {
                const vd = this.#vds.get(t.service.key);
                return encodeLoadAssignment(name, vd ? gatewayVirtualDestinationAssignment(snapshot, cluster, vd, t.port) : gatewayAssignment(snapshot, cluster, t.service.key, t.port));
              }),
          };
        }
        return undefined;
      }
    }
  }

  /** The services of the snapshot and the virtual destinations, as one catalog (VD keys: `vd:NAME`). */
  #catalogOf(snapshot: FederatedSnapshot): Catalog {
    const catalog = federatedCatalog(snapshot, this.#domainSuffix);
    if (this.#vds.size === 0) return catalog;
    const vds = [...this.#vds].map(
      ([key, vd]): CatalogService => ({
        key,
        namespace: '',
        name: key.slice(VD_KEY_PREFIX.length),
        host: vd.hostname,
        ports: vd.ports.map((p) => ({ port: p.number, name: p.name ?? '' })),
        clusters: virtualDestinationClusters(snapshot, vd),
        identities: [],
      }),
    );
    const services = [...catalog.services, ...vds].sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
    return { services, byHost: new Map(services.map((s) => [s.host, s])), byKey: new Map(services.map((s) => [s.key, s])) };
  }

  /** The drains of the virtual destination of catalog key `key` (`vd:NAME`). */
  #drainsOf(key: string): readonly VirtualDestinationDrain[] {
    return this.#drains.get(key.slice(VD_KEY_PREFIX.length)) ?? [];
  }

  #outboundNames(): string[] {
    return this.#catalog.services.flatMap((s) => s.ports.map((p) => outboundClusterName(s.host, p.port)));
  }

  /** `outbound|PORT||HOST` */
  #outboundTarget(name: string): Target | undefined {
    const match = /^outbound\|(\d{1,5})\|\|(.+)$/.exec(name);
    return match ? this.#portOf(match[2] ?? '', Number(match[1])) : undefined;
  }

  /** `HOST:PORT`, or `HOST` for a service with one port */
  #listenerTarget(name: string): Target | undefined {
    const match = /^(.+):(\d{1,5})$/.exec(name);
    if (match) return this.#portOf(match[1] ?? '', Number(match[2]));
    const service = this.#catalog.byHost.get(name);
    const only = service?.ports.length === 1 ? service.ports[0] : undefined;
    return service && only ? { service, port: only.port } : undefined;
  }

  /** `outbound_.PORT_._.HOST`, for a service that runs in `cluster` */
  #gatewayTarget(name: string, cluster: string): Target | undefined {
    const match = /^outbound_\.(\d{1,5})_\._\.(.+)$/.exec(name);
    const target = match ? this.#portOf(match[2] ?? '', Number(match[1])) : undefined;
    return target?.service.clusters.includes(cluster) ? target : undefined;
  }

  #portOf(host: string, port: number): Target | undefined {
    const service = this.#catalog.byHost.get(host);
    return service?.ports.some((p) => p.port === port) ? { service, port } : undefined;
  }

  #spiffeIds(service: CatalogService): string[] {
    const td = this.#trustDomain;
    if (td === undefined) return [];
    return service.identities.map((id) => {
      const [ns, sa] = id.split('/');
      return `spiffe://${td}/ns/${ns ?? ''}/sa/${sa ?? ''}`;
    });
  }

  // ---- the cache ------------------------------------------------------------------------------

  #cache(key: string, typeUrl: string): ViewCache {
    let cache = this.#caches.get(key);
    if (!cache) {
      cache = { typeUrl, entries: new Map(), generation: 0, sets: new Map() };
      this.#caches.set(key, cache);
    }
    return cache;
  }

  #entry(cache: ViewCache, name: string, plan: Plan): EncodedResource | undefined {
    let entry = cache.entries.get(name);
    if (entry && !entry.stale) return entry.resource;
    const resolved = plan.resolve(name);
    if (!resolved) {
      if (entry) this.#drop(cache, name, entry);
      return undefined;
    }
    const bytes = resolved.build();
    if (entry && sameBytes(entry.bytes, bytes)) {
      entry.stale = false;
    } else {
      if (entry) this.#drop(cache, name, entry);
      const version = String(++this.#seq);
      const resource: EncodedResource = { name, typeUrl: cache.typeUrl, value: bytes, version };
      entry = { bytes, version, stale: false, service: resolved.service, cache, resource, set: { version, resources: [resource] } };
      cache.entries.set(name, entry);
      let set = this.#byService.get(entry.service);
      if (!set) {
        set = new Set();
        this.#byService.set(entry.service, set);
      }
      set.add(entry);
    }
    return entry.resource;
  }

  #drop(cache: ViewCache, name: string, entry: Entry): void {
    cache.entries.delete(name);
    cache.generation++;
    this.#byService.get(entry.service)?.delete(entry);
  }

  // ---- changes --------------------------------------------------------------------------------

  #onChange(change: Pick<SnapshotChange, 'services'>): void {
    this.#pending ??= { services: new Set(), seenAt: performance.now() };
    for (const s of change.services) this.#pending.services.add(s);
    clearTimeout(this.#debounce);
    this.#debounce = setTimeout(() => {
      this.#apply();
    }, this.#debounceMs);
    this.#deadline ??= setTimeout(() => {
      this.#apply();
    }, this.#maxDelayMs);
  }

  #apply(): void {
    clearTimeout(this.#debounce);
    clearTimeout(this.#deadline);
    this.#debounce = undefined;
    this.#deadline = undefined;
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) return;
    this.#snapshot = this.#feed.snapshot();
    this.#plans.clear();
    const catalog = this.#catalogOf(this.#snapshot);
    const json = catalogJson(catalog);
    const catalogChanged = json.size !== this.#catalogJson.size || [...json].some(([key, value]) => this.#catalogJson.get(key) !== value);
    const clusters = clusterSignatures(this.#snapshot);
    const clustersChanged = clusters.size !== this.#clusterSignatures.size || [...clusters].some(([name, value]) => this.#clusterSignatures.get(name) !== value);
    this.#catalog = catalog;
    this.#catalogJson = json;
    this.#clusterSignatures = clusters;
    // a changed failover or outlier policy moves no catalog entry, yet changes clusters and assignments
    const vdsChanged = this.#vdsChanged;
    this.#vdsChanged = false;
    let types: string[];
    /** for an endpoint change: the names of the resources marked stale, the only ones that can change */
    let names: Set<string> | undefined;
    if (catalogChanged || clustersChanged || vdsChanged) {
      for (const cache of this.#caches.values()) {
        cache.wildcard = undefined;
        cache.generation++;
        for (const entry of cache.entries.values()) entry.stale = true;
      }
      types = ALL_TYPES;
    } else {
      names = new Set();
      // a virtual destination's endpoints come from any service its selectors match: re-checked on every change
      const vdKeys = [...this.#byService.keys()].filter((key) => key.startsWith(VD_KEY_PREFIX));
      for (const service of [...pending.services, ...vdKeys]) {
        for (const entry of this.#byService.get(service) ?? []) {
          names.add(entry.resource.name);
          entry.stale = true;
          entry.cache.wildcard = undefined;
          entry.cache.generation++;
        }
      }
      types = [TYPE_URL.clusterLoadAssignment];
    }
    this.#log.debug({ snapshot: this.#snapshot.version, services: pending.services.size, catalogChanged, clustersChanged, vdsChanged }, 'xDS: pushing');
    for (const type of types) {
      for (const listener of this.#listeners) listener(type, names);
    }
    const applied: AppliedChange = { types, seenAt: pending.seenAt, snapshotVersion: this.#snapshot.version };
    for (const listener of this.#appliedListeners) listener(applied);
  }
}

interface Resolved {
  /** the service key it is built from, for invalidation ('' for resources built from the whole catalog) */
  service: string;
  build(): Uint8Array;
}

interface Plan {
  /** the view within the kind and type: resources are shared by every proxy with the same view */
  view: string;
  /** every resource's name, for a wildcard request (LDS and CDS); undefined: the type has no wildcard */
  all: (() => string[]) | undefined;
  resolve(name: string): Resolved | undefined;
  /** the view's cache, once looked up */
  cache?: ViewCache;
}

const GATEWAY_LISTENER = gatewayListenerName();
/** Catalog keys of virtual destinations (service keys are `namespace/name`, so they cannot collide). */
const VD_KEY_PREFIX = 'vd:';

const vdMap = (vds: readonly NamedVirtualDestination[]): Map<string, VirtualDestination> => new Map(vds.map(({ name, spec }) => [`${VD_KEY_PREFIX}${name}`, spec]));

/** What of a cluster, beyond its services, shapes what proxies see: network, locality, state, gateways. */
function clusterSignatures(snapshot: FederatedSnapshot): Map<string, string> {
  return new Map(
    [...snapshot.clusters].map(([name, view]) => [name, JSON.stringify([view.cluster.network, view.cluster.region, view.cluster.zone, view.state, view.gateways, view.unreachableGateways?.map((g) => [g.address, g.port])])]),
  );
}

function catalogJson(catalog: Catalog): Map<string, string> {
  return new Map(catalog.services.map((s) => [s.key, JSON.stringify(s)]));
}

/** A short fingerprint of a long version string. */
const fingerprint = (s: string): string => hash('sha256', s, 'base64url').slice(0, 22);

/**
 * The version of a set of several resources: a fingerprint of their names and versions (a resource's version is
 * unique to its bytes), so it moves exactly when one of them does, and stays short on the wire and in every ACK.
 */
const setVersion = (resources: readonly EncodedResource[]): string => fingerprint(resources.map((r) => `${r.name}@${r.version ?? ''}`).join(','));
