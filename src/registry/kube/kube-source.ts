/**
 * A cluster watched through its Kubernetes API: Services, EndpointSlices, Pods and Nodes through
 * `@kubernetes/client-node` informers (ListWatch), folded into ServiceViews for the registry.
 *
 * ListWatch keeps its informer cache, its events, its resourceVersion handling and its re-list after 410 Gone;
 * what it talks through is meshfed's (watch-transport.ts): a lean watch transport on node's https with a
 * keep-alive agent per generation of informers, the kubeconfig's TLS and credentials as client-node applies
 * them, a deadline for each answer, raw line splitting and one JSON.parse per line, ERROR events and HTTP
 * errors as errors with their status code, a silent end on abort even in flight, and backoff for watches that
 * keep ending at once without an event. What this module adds around ListWatch:
 * - After any error but 410 (connection refused or dropped, an HTTP error status, an ERROR event, garbage, a
 *   missed deadline) ListWatch calls its error callbacks and stays down. Here every informer is then stopped
 *   and a fresh set started after an exponential backoff with jitter; each fresh set lists from scratch, and
 *   the lists replace what was known, so whatever was deleted meanwhile goes away (`resync`).
 * - A watch that was answered may be quiet for good, so a hung API server looks like a quiet one. A liveness
 *   probe (GET /version with the kubeconfig's credentials, with a timeout; `probeFailureThreshold` misses in a
 *   row) reports the failure, and once the server answers again the watches are replaced by a fresh list and
 *   watch (a socket that died silently would otherwise never deliver again).
 * - Lists are plain GETs parsed as JSON, with a timeout, not the generated CoreV1Api/DiscoveryV1Api calls:
 *   their deserializer throws on one malformed object and fails the whole list, for good.
 * - Each generation of informers has an AbortSignal: tearing it down ends its lists and watches, in flight or
 *   not, and nothing of it reaches the registry afterwards.
 */
import { STATUS_CODES } from 'node:http';
import { ListWatch, V1ListMeta, type KubeConfig, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import type { Cluster, Gateway } from '../../model/cluster.js';
import { SILENT_LOGGER, type Logger } from '../../logging.js';
import type { ClusterSource, ServiceView, SourceEvents } from '../source.js';
import { loadSafeKubeconfig } from './kubeconfig.js';
import { deepEqual, deepFreeze, discoverGateways, LABEL_NETWORK, serviceKeyOf, settleView, sliceServiceKey, translateServiceView, type ClusterContext, type ObjectLookup, type Skipped, type SliceMemo } from './translate.js';
import { ApiClient, DroppedError, EmptyWatchError, StatusError, TimeoutError, WatchTransport } from './watch-transport.js';

export interface KubeSourceOptions {
  logger?: Logger;
  /** how often the API server's liveness is checked (default 5 s) */
  probeIntervalMs?: number;
  /** how long a liveness check may take before it counts as failed (default 3 s) */
  probeTimeoutMs?: number;
  /** how many liveness checks in a row must fail before the cluster counts as lost (default 2) */
  probeFailureThreshold?: number;
  /** first delay before the watches are restarted after a failure (default 0.5 s), doubling up to backoffMaxMs */
  backoffInitialMs?: number;
  /** longest delay between restarts (default 30 s) */
  backoffMaxMs?: number;
  /** how long a full list of one kind may take (default 60 s) */
  listTimeoutMs?: number;
  /** how long a watch request may wait for the API server's answer to begin (default 30 s); the stream may then be quiet for any time */
  watchConnectTimeoutMs?: number;
  /** allow exec credential plugins and auth providers in the kubeconfig (they run code on the manager) */
  allowExec?: boolean;
  /** allow kubeconfig fields that name files on the manager */
  allowFiles?: boolean;
}

export const DEFAULT_PROBE_INTERVAL_MS = 5_000;
export const DEFAULT_PROBE_TIMEOUT_MS = 3_000;
export const DEFAULT_PROBE_FAILURE_THRESHOLD = 2;
export const DEFAULT_BACKOFF_INITIAL_MS = 500;
export const DEFAULT_BACKOFF_MAX_MS = 30_000;
export const DEFAULT_LIST_TIMEOUT_MS = 60_000;
export const DEFAULT_WATCH_CONNECT_TIMEOUT_MS = 30_000;

const MAX_PROBE_BODY = 64 * 1024;
/** V8 strings end near 512 MiB; a list larger than this is refused rather than crashing the manager */
const MAX_LIST_BODY = 256 * 1024 * 1024;

type Kind = 'services' | 'endpointslices' | 'pods' | 'nodes';
const KINDS: readonly Kind[] = ['services', 'endpointslices', 'pods', 'nodes'];
const PATHS: Record<Kind, string> = {
  services: '/api/v1/services',
  endpointslices: '/apis/discovery.k8s.io/v1/endpointslices',
  pods: '/api/v1/pods',
  nodes: '/api/v1/nodes',
};

type AnyList = KubernetesListObject<KubernetesObject>;

interface Generation {
  readonly id: number;
  readonly informers: ListWatch<KubernetesObject>[];
  /** kinds listed since this generation started */
  readonly listed: Set<Kind>;
  /** all four listed: changes flow to the registry */
  live: boolean;
  /** aborted when the generation is torn down: ends its lists and watches, in flight or not */
  readonly aborter: AbortController;
  /** its lists and watches go through this client (and its keep-alive connections) */
  readonly client: ApiClient;
}

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function describeStatus(code: number, detail: string, server: string, request: string, permission: string): string {
  if (code === 401) return "401 Unauthorized: the kubeconfig's credentials were rejected";
  if (code === 403) return `403 Forbidden: the kubeconfig's user may not ${permission}${detail ? ` (${detail})` : ''}`;
  const text = STATUS_CODES[code] ?? 'Unknown Status';
  return `API server ${server} answered ${code} ${text} to ${request}${detail && detail !== text ? `: ${detail}` : ''}`;
}

const CONNECTION_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'EHOSTUNREACH', 'ENETUNREACH', 'ENOTFOUND', 'EAI_AGAIN', 'ETIMEDOUT', 'EPIPE', 'ECONNABORTED']);

/**
 * A failure as a person reads it: which server, what was asked (`request`, e.g. "GET /api/v1/pods"), what the
 * kubeconfig's user would need to be allowed (`permission`, e.g. "list and watch pods"), and what went wrong.
 */
export function describeKubeError(err: unknown, server: string, request: string, permission: string): string {
  if (err instanceof EmptyWatchError) return err.message;
  if (err instanceof TimeoutError) return `API server ${server} not responding: ${err.message}`;
  if (err instanceof StatusError) return describeStatus(err.statusCode, err.message.slice(0, 300), server, request, permission);
  const message = err instanceof Error ? err.message : String(err);
  const code = isRecord(err) && typeof err['code'] === 'string' ? err['code'] : '';
  if (err instanceof DroppedError) return `API server ${server} dropped the connection (${request})`;
  if (CONNECTION_CODES.has(code)) return `API server ${server} unreachable: ${message}`;
  if (err instanceof SyntaxError) return `API server ${server} answered ${request} with something that is not Kubernetes JSON (${message.slice(0, 120)})`;
  if (/certificate|self[- ]signed|TLS|SSL/i.test(message)) return `TLS with API server ${server} failed: ${message}`;
  return `${request} on API server ${server} failed: ${message}`;
}

/** Where the source's objects are kept between events. */
interface SliceEntry {
  object: unknown;
  service: string | undefined;
}

/**
 * One Kubernetes cluster as a ClusterSource. Nothing here throws into the registry: a bad kubeconfig, an
 * unreachable server or garbage from it become `failed(reason)` for this cluster alone.
 */
export class KubeSource implements ClusterSource {
  readonly #cluster: Cluster;
  readonly #ctx: ClusterContext;
  readonly #log: Logger;
  readonly #probeIntervalMs: number;
  readonly #probeTimeoutMs: number;
  readonly #probeFailureThreshold: number;
  readonly #backoffInitialMs: number;
  readonly #backoffMaxMs: number;
  readonly #listTimeoutMs: number;
  readonly #watchConnectTimeoutMs: number;
  readonly #allowExec: boolean;
  readonly #allowFiles: boolean;

  #events: SourceEvents | undefined;
  #kc: KubeConfig | undefined;
  /** the liveness probe's connection, apart from the informers' */
  #probeClient: ApiClient | undefined;
  #server = '';
  #stopped = false;
  #started = false;

  #gen: Generation | undefined;
  #genCounter = 0;
  #backoffMs: number;
  #restartTimer: NodeJS.Timeout | undefined;
  #probeTimer: NodeJS.Timeout | undefined;
  /** aborted by stop(): the probe in flight */
  readonly #aborter = new AbortController();
  #probeFailing = false;
  /** liveness checks failed in a row */
  #probeMisses = 0;
  /** synced() reported and no failure since */
  #healthy = false;
  #lastFailure: string | undefined;

  // what the informers have told us
  readonly #services = new Map<string, unknown>();
  readonly #slices = new Map<string, SliceEntry>();
  readonly #slicesByService = new Map<string, Set<string>>();
  readonly #pods = new Map<string, unknown>();
  readonly #nodes = new Map<string, unknown>();
  /** bumped on every pod or node change: while it stands, slice translations may take over their pod and node details */
  #lookupGeneration = 0;
  /** the last translation of each slice, for its next version to take over from */
  readonly #sliceMemo: SliceMemo = new Map();
  /** which pods and nodes each service's endpoints refer to, and the reverse */
  readonly #refs = new Map<string, { pods: ReadonlySet<string>; nodes: ReadonlySet<string> }>();
  readonly #podUsers = new Map<string, Set<string>>();
  readonly #nodeUsers = new Map<string, Set<string>>();
  /** services labelled with this cluster's network (gateway candidates) */
  readonly #gatewayServices = new Set<string>();
  #views = new Map<string, ServiceView>();
  #gateways: readonly Gateway[] | undefined;
  /** reasons already logged for skipped objects, so churn does not flood the log */
  readonly #skipLog = new Map<string, string>();

  // what is waiting for the next flush
  readonly #dirty = new Set<string>();
  #fullResync = false;
  #gatewaysDirty = false;
  #pendingEvents = 0;
  #flushHandle: NodeJS.Immediate | undefined;

  readonly #lookup: ObjectLookup = {
    pod: (namespace, name) => this.#pods.get(`${namespace}/${name}`),
    node: (name) => this.#nodes.get(name),
    generation: () => this.#lookupGeneration,
  };

  constructor(cluster: Cluster, options: KubeSourceOptions = {}) {
    if (cluster.source.type !== 'kubernetes') throw new TypeError(`cluster ${cluster.name} is not a Kubernetes cluster (source type ${cluster.source.type})`);
    this.#cluster = cluster;
    this.#ctx = { name: cluster.name, network: cluster.network, region: cluster.region, zone: cluster.zone };
    this.#log = options.logger ?? SILENT_LOGGER;
    this.#probeIntervalMs = options.probeIntervalMs ?? DEFAULT_PROBE_INTERVAL_MS;
    this.#probeTimeoutMs = options.probeTimeoutMs ?? DEFAULT_PROBE_TIMEOUT_MS;
    this.#probeFailureThreshold = Math.max(1, options.probeFailureThreshold ?? DEFAULT_PROBE_FAILURE_THRESHOLD);
    this.#backoffInitialMs = options.backoffInitialMs ?? DEFAULT_BACKOFF_INITIAL_MS;
    this.#backoffMaxMs = Math.max(options.backoffMaxMs ?? DEFAULT_BACKOFF_MAX_MS, this.#backoffInitialMs);
    this.#listTimeoutMs = options.listTimeoutMs ?? DEFAULT_LIST_TIMEOUT_MS;
    this.#watchConnectTimeoutMs = options.watchConnectTimeoutMs ?? DEFAULT_WATCH_CONNECT_TIMEOUT_MS;
    this.#allowExec = options.allowExec ?? false;
    this.#allowFiles = options.allowFiles ?? false;
    this.#backoffMs = this.#backoffInitialMs;
  }

  start(events: SourceEvents): void {
    if (this.#started) throw new Error(`the source of cluster ${this.#cluster.name} was already started`);
    this.#started = true;
    this.#events = events;
    const source = this.#cluster.source;
    if (source.type !== 'kubernetes') return;
    try {
      const kc = loadSafeKubeconfig(source.kubeconfig, { ...(source.context ? { context: source.context } : {}), allowExec: this.#allowExec, allowFiles: this.#allowFiles });
      this.#kc = kc;
      this.#probeClient = new ApiClient(kc);
      this.#server = this.#probeClient.server;
    } catch (err) {
      const reason = `invalid kubeconfig: ${(err as Error).message}`;
      this.#log.warn({ cluster: this.#cluster.name, reason }, 'cannot watch cluster');
      this.#report(reason);
      return;
    }
    this.#log.info({ cluster: this.#cluster.name, server: this.#server }, 'watching cluster');
    this.#startInformers();
    this.#scheduleProbe();
  }

  stop(): Promise<void> {
    this.#stopped = true;
    this.#teardown();
    clearTimeout(this.#restartTimer);
    clearTimeout(this.#probeTimer);
    this.#aborter.abort();
    this.#probeClient?.close();
    if (this.#flushHandle) clearImmediate(this.#flushHandle);
    this.#flushHandle = undefined;
    this.#events = undefined;
    return Promise.resolve();
  }

  // ---- informers ------------------------------------------------------------------------------

  #alive(id: number): boolean {
    return !this.#stopped && this.#gen?.id === id;
  }

  #startInformers(): void {
    const kc = this.#kc;
    if (!kc || this.#stopped) return;
    const id = ++this.#genCounter;
    const gen: Generation = { id, informers: [], listed: new Set(), live: false, aborter: new AbortController(), client: new ApiClient(kc) };
    this.#gen = gen;
    const starts: (() => Promise<void>)[] = [];
    for (const kind of KINDS) {
      const watch = new WatchTransport(gen.client, {
        signal: gen.aborter.signal,
        connectTimeoutMs: this.#watchConnectTimeoutMs,
        backoff: (attempt) => Math.min(this.#backoffInitialMs * 2 ** (attempt - 1), this.#backoffMaxMs),
        onLine: () => {
          this.#pendingEvents++;
          this.#scheduleFlush();
        },
      });
      const listFn = async (): Promise<AnyList> => {
        const list = await this.#list(gen, kind);
        if (this.#alive(id)) this.#guard(() => {
          this.#listed(gen, kind, list.items);
        });
        return list;
      };
      const informer = new ListWatch<KubernetesObject>(PATHS[kind], watch, listFn, false);
      const upsert = (object: KubernetesObject): void => {
        if (this.#alive(id)) this.#applyGuarded(kind, object, false);
      };
      informer.on('add', upsert);
      informer.on('update', upsert);
      informer.on('delete', (object: KubernetesObject) => {
        if (this.#alive(id)) this.#applyGuarded(kind, object, true);
      });
      informer.on('error', (err: unknown) => {
        if (this.#alive(id)) this.#guard(() => {
          this.#informerFailed(kind, err);
        });
      });
      gen.informers.push(informer);
      starts.push(() =>
        informer.start().catch((err: unknown) => {
          if (this.#alive(id)) this.#guard(() => {
            this.#informerFailed(kind, err);
          });
        }),
      );
    }
    for (const start of starts) void start();
  }

  #teardown(): void {
    const gen = this.#gen;
    this.#gen = undefined;
    if (!gen) return;
    gen.aborter.abort();
    for (const informer of gen.informers) void informer.stop().catch(() => undefined);
    gen.client.close();
  }

  /**
   * A full list of one kind, read as plain JSON. Not through the generated CoreV1Api/DiscoveryV1Api clients:
   * their deserializer throws on a single malformed object ("data is not iterable"), failing the whole list
   * for good, and they have no timeout. Items ListWatch cannot index (no metadata.name) are left out here,
   * because ListWatch reads them unguarded in a promise nobody awaits.
   */
  async #list(gen: Generation, kind: Kind): Promise<AnyList> {
    const answer = await gen.client.get(PATHS[kind], { timeoutMs: this.#listTimeoutMs, maxBytes: MAX_LIST_BODY, signal: gen.aborter.signal });
    if (!isRecord(answer) || (answer['items'] !== null && answer['items'] !== undefined && !Array.isArray(answer['items']))) {
      throw new SyntaxError(`not a Kubernetes list`);
    }
    const metadata = isRecord(answer['metadata']) ? answer['metadata'] : {};
    const resourceVersion = typeof metadata['resourceVersion'] === 'string' ? metadata['resourceVersion'] : '';
    const items: KubernetesObject[] = [];
    for (const item of Array.isArray(answer['items']) ? (answer['items'] as unknown[]) : []) {
      if (isRecord(item) && isRecord(item['metadata']) && typeof item['metadata']['name'] === 'string' && item['metadata']['name'] !== '') items.push(item);
      else this.#skip(`${kind} list item`, 'the object has no metadata.name');
    }
    const listMeta = new V1ListMeta();
    listMeta.resourceVersion = resourceVersion;
    return { metadata: listMeta, items };
  }

  #informerFailed(kind: Kind, err: unknown): void {
    const reason = describeKubeError(err, this.#server, `GET ${PATHS[kind]}`, `list and watch ${kind}`);
    this.#log.warn({ cluster: this.#cluster.name, kind, reason }, 'cluster watch failed');
    this.#teardown();
    this.#report(reason);
    this.#scheduleRestart();
  }

  #scheduleRestart(): void {
    if (this.#stopped || this.#restartTimer) return;
    const base = this.#backoffMs;
    this.#backoffMs = Math.min(base * 2, this.#backoffMaxMs);
    const delay = Math.round(base / 2 + (Math.random() * base) / 2);
    this.#restartTimer = setTimeout(() => {
      this.#restartTimer = undefined;
      this.#restart(`after ${delay} ms`);
    }, delay);
    this.#restartTimer.unref();
  }

  #restart(why: string): void {
    if (this.#stopped) return;
    clearTimeout(this.#restartTimer);
    this.#restartTimer = undefined;
    this.#teardown();
    this.#log.info({ cluster: this.#cluster.name, why }, 'restarting cluster watches');
    this.#events?.watchRestarted();
    this.#startInformers();
  }

  /** Runs a handler; a bug in it hurts this cluster only and is logged, never thrown into client-node. */
  #guard(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.#failedToApply(err);
    }
  }

  /** #apply, guarded as #guard does (without a closure per event: this runs for every watch event) */
  #applyGuarded(kind: Kind, object: unknown, deleted: boolean): void {
    try {
      this.#apply(kind, object, deleted);
    } catch (err) {
      this.#failedToApply(err);
    }
  }

  #failedToApply(err: unknown): void {
    this.#log.error({ cluster: this.#cluster.name, err: { message: (err as Error).message, stack: (err as Error).stack } }, 'cluster source failed to apply an update');
  }

  // ---- the objects ----------------------------------------------------------------------------

  /** A complete list of one kind: it replaces what was known of that kind. */
  #listed(gen: Generation, kind: Kind, items: readonly unknown[]): void {
    switch (kind) {
      case 'services':
        this.#services.clear();
        this.#gatewayServices.clear();
        break;
      case 'endpointslices':
        this.#slices.clear();
        this.#slicesByService.clear();
        this.#sliceMemo.clear();
        break;
      case 'pods':
        this.#pods.clear();
        this.#lookupGeneration++;
        break;
      case 'nodes':
        this.#nodes.clear();
        this.#lookupGeneration++;
        break;
    }
    for (const item of items) this.#apply(kind, item, false);
    gen.listed.add(kind);
    this.#fullResync = true;
    this.#scheduleFlush();
  }

  #apply(kind: Kind, object: unknown, deleted: boolean): void {
    const metadata = isRecord(object) && isRecord(object['metadata']) ? object['metadata'] : {};
    const name = typeof metadata['name'] === 'string' ? metadata['name'] : '';
    const namespace = typeof metadata['namespace'] === 'string' ? metadata['namespace'] : '';
    if (!name) {
      this.#skip(`${kind} (unnamed)`, 'the object has no metadata.name');
      return;
    }
    switch (kind) {
      case 'services': {
        const key = serviceKeyOf(object);
        if (!key) {
          this.#skip(`Service ${namespace}/${name}`, 'namespace or name is not a DNS-1123 label');
          return;
        }
        if (deleted) this.#services.delete(key);
        else this.#services.set(key, object);
        const labels = isRecord(metadata['labels']) ? metadata['labels'] : {};
        const candidate = !deleted && labels[LABEL_NETWORK] === this.#cluster.network;
        if (candidate || this.#gatewayServices.has(key)) this.#gatewaysDirty = true;
        if (candidate) this.#gatewayServices.add(key);
        else this.#gatewayServices.delete(key);
        this.#dirty.add(key);
        break;
      }
      case 'endpointslices': {
        const id = `${namespace}/${name}`;
        const entry = this.#slices.get(id);
        const previous = entry?.service;
        const service = deleted ? undefined : sliceServiceKey(object);
        if (previous !== undefined && previous !== service) {
          this.#slicesByService.get(previous)?.delete(id);
          if (this.#slicesByService.get(previous)?.size === 0) this.#slicesByService.delete(previous);
        }
        if (previous !== undefined) this.#dirty.add(previous);
        if (deleted) {
          this.#slices.delete(id);
          this.#sliceMemo.delete(id);
          break;
        }
        if (entry) {
          entry.object = object;
          entry.service = service;
        } else this.#slices.set(id, { object, service });
        if (service !== undefined) {
          let ids = this.#slicesByService.get(service);
          if (!ids) this.#slicesByService.set(service, (ids = new Set()));
          ids.add(id);
          this.#dirty.add(service);
        }
        break;
      }
      case 'pods': {
        const key = `${namespace}/${name}`;
        if (deleted) this.#pods.delete(key);
        else this.#pods.set(key, object);
        this.#lookupGeneration++;
        for (const service of this.#podUsers.get(key) ?? []) this.#dirty.add(service);
        break;
      }
      case 'nodes': {
        if (deleted) this.#nodes.delete(name);
        else this.#nodes.set(name, object);
        this.#lookupGeneration++;
        for (const service of this.#nodeUsers.get(name) ?? []) this.#dirty.add(service);
        break;
      }
    }
    this.#scheduleFlush();
  }

  #skip(object: string, reason: string): void {
    if (this.#skipLog.get(object) === reason) return;
    if (this.#skipLog.size > 10_000) this.#skipLog.clear();
    this.#skipLog.set(object, reason);
    this.#log.warn({ cluster: this.#cluster.name, object, reason }, 'Kubernetes object skipped');
  }

  // ---- folding into views ---------------------------------------------------------------------

  #scheduleFlush(): void {
    if (this.#flushHandle || this.#stopped) return;
    this.#flushHandle = setImmediate(() => {
      this.#flushHandle = undefined;
      this.#guard(() => {
        this.#flush();
      });
    });
  }

  #flush(): void {
    const events = this.#events;
    const gen = this.#gen;
    if (!events || this.#stopped) return;
    if (this.#pendingEvents > 0) {
      events.eventsReceived(this.#pendingEvents);
      this.#pendingEvents = 0;
    }
    if (!gen) return;
    if (!gen.live) {
      if (gen.listed.size < KINDS.length) return;
      gen.live = true;
      this.#backoffMs = this.#backoffInitialMs;
      this.#fullResync = true;
    }
    if (this.#fullResync) {
      this.#fullResync = false;
      this.#dirty.clear();
      const keys = new Set([...this.#services.keys(), ...this.#views.keys()]);
      for (const key of keys) this.#recompute(key);
      events.resync(new Map(this.#views));
      this.#gatewaysDirty = true;
    } else {
      const keys = [...this.#dirty];
      this.#dirty.clear();
      for (const key of keys) {
        const before = this.#views.get(key);
        const after = this.#recompute(key);
        if (before !== after) events.serviceChanged(key, after);
      }
    }
    if (this.#gatewaysDirty) {
      this.#gatewaysDirty = false;
      const { gateways, skipped } = discoverGateways([...this.#gatewayServices].map((key) => this.#services.get(key)), this.#cluster.network);
      for (const s of skipped) this.#skip(s.object, s.reason);
      if (!this.#gateways || !deepEqual(gateways, this.#gateways)) {
        this.#gateways = deepFreeze(gateways);
        events.gatewaysDiscovered(this.#gateways);
      }
    }
    if (!this.#healthy) this.#announceSynced();
  }

  /** Recomputes one service's view; returns the (possibly unchanged) view, or undefined when it is gone. */
  #recompute(key: string): ServiceView | undefined {
    const service = this.#services.get(key);
    const previous = this.#views.get(key);
    if (service === undefined) {
      this.#setRefs(key, undefined);
      this.#views.delete(key);
      return undefined;
    }
    const slices: unknown[] = [];
    for (const id of this.#slicesByService.get(key) ?? []) {
      const entry = this.#slices.get(id);
      if (entry) slices.push(entry.object);
    }
    const result = translateServiceView(service, slices, this.#ctx, this.#lookup, this.#sliceMemo);
    this.#setRefs(key, result);
    this.#logSkipped(result.skipped);
    if (!result.view) {
      this.#views.delete(key);
      return undefined;
    }
    const view = settleView(previous, result.view);
    this.#views.set(key, view);
    return view;
  }

  #logSkipped(skipped: readonly Skipped[]): void {
    for (const s of skipped) this.#skip(s.object, s.reason);
  }

  #setRefs(key: string, refs: { pods: ReadonlySet<string>; nodes: ReadonlySet<string> } | undefined): void {
    const old = this.#refs.get(key);
    if (old !== undefined && old.pods === refs?.pods && old.nodes === refs.nodes) return;
    if (old) {
      for (const pod of old.pods) if (!refs?.pods.has(pod)) removeRef(this.#podUsers, pod, key);
      for (const node of old.nodes) if (!refs?.nodes.has(node)) removeRef(this.#nodeUsers, node, key);
    }
    if (!refs || (refs.pods.size === 0 && refs.nodes.size === 0)) {
      this.#refs.delete(key);
      return;
    }
    for (const pod of refs.pods) if (!old?.pods.has(pod)) addRef(this.#podUsers, pod, key);
    for (const node of refs.nodes) if (!old?.nodes.has(node)) addRef(this.#nodeUsers, node, key);
    this.#refs.set(key, { pods: refs.pods, nodes: refs.nodes });
  }

  // ---- health ---------------------------------------------------------------------------------

  #report(reason: string): void {
    this.#healthy = false;
    if (reason === this.#lastFailure) return;
    this.#lastFailure = reason;
    this.#events?.failed(reason);
  }

  #announceSynced(): void {
    if (this.#probeFailing || this.#healthy || !this.#gen?.live) return;
    this.#healthy = true;
    this.#lastFailure = undefined;
    this.#log.info({ cluster: this.#cluster.name, services: this.#views.size }, 'cluster in sync');
    this.#events?.synced();
  }

  #scheduleProbe(): void {
    if (this.#stopped) return;
    this.#probeTimer = setTimeout(() => {
      this.#probeTimer = undefined;
      void this.#probe().then(
        (reason) => {
          this.#guard(() => {
            this.#probed(reason);
          });
          this.#scheduleProbe();
        },
        () => {
          this.#scheduleProbe();
        },
      );
    }, this.#probeIntervalMs);
    this.#probeTimer.unref();
  }

  #probed(failure: string | undefined): void {
    if (this.#stopped) return;
    if (failure !== undefined) {
      this.#probeMisses++;
      if (this.#probeMisses < this.#probeFailureThreshold) {
        this.#log.debug({ cluster: this.#cluster.name, reason: failure, misses: this.#probeMisses }, 'API server liveness check missed');
        return;
      }
      if (!this.#probeFailing) {
        this.#probeFailing = true;
        this.#log.warn({ cluster: this.#cluster.name, reason: failure }, 'API server liveness check failed');
      }
      this.#report(failure);
      return;
    }
    this.#probeMisses = 0;
    if (!this.#probeFailing) return;
    this.#probeFailing = false;
    // whatever watches lived through the outage may have died silently, and whatever was opened during it may hang
    // for good: start afresh from a full list
    this.#restart('the API server answers again');
  }

  /** GET /version with the kubeconfig's credentials; undefined when the server answered properly, else why not. */
  async #probe(): Promise<string | undefined> {
    const client = this.#probeClient;
    if (!client || this.#stopped) return undefined;
    const request = 'GET /version';
    try {
      const version = await client.get('/version', { timeoutMs: this.#probeTimeoutMs, maxBytes: MAX_PROBE_BODY, signal: this.#aborter.signal });
      return isRecord(version) ? undefined : `API server ${this.#server} answered ${request} with JSON that is not a version document`;
    } catch (err) {
      if (err instanceof SyntaxError) return `API server ${this.#server} answered ${request} with something that is not JSON (is it a Kubernetes API server?)`;
      return describeKubeError(err, this.#server, request, 'read /version');
    }
  }
}

function addRef(map: Map<string, Set<string>>, target: string, service: string): void {
  let services = map.get(target);
  if (!services) map.set(target, (services = new Set()));
  services.add(service);
}

function removeRef(map: Map<string, Set<string>>, target: string, service: string): void {
  const services = map.get(target);
  if (!services) return;
  services.delete(service);
  if (services.size === 0) map.delete(target);
}
