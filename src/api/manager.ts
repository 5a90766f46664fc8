import { join } from 'node:path';
import type { Registry as PromRegistry } from 'prom-client';
import { FederationFileError } from '../model/federation-file.js';
import type { Logger } from '../logging.js';
import { loadSafeKubeconfig } from '../registry/kube/kubeconfig.js';
import type { KubeSourceOptions } from '../registry/kube/kube-source.js';
import { Registry } from '../registry/registry.js';
import { createSource } from '../registry/sources.js';
import { StaticSource } from '../registry/static-source.js';
import type { LoadedFederation } from '../store/federation.js';
import { ensureStateDir, RegistrationStore } from '../store/registrations.js';
import { VirtualDestinations } from '../store/virtual-destinations.js';
import { VipAllocator } from '../dns/vip-allocator.js';
import { startAdsServer, type AdsServerHandle } from '../xds/ads-server.js';
import { FederationXds } from '../xds/federation-provider.js';
import { XdsMetrics } from '../xds/metrics.js';
import type { DrillService } from '../drills/runner.js';
import type { TrustAuthority } from '../trust/authority.js';
import type { TrustWriter } from './trust.js';
import { ApiTokenStore } from '../store/api-tokens.js';
import { AUDIT_LOG_FILE, AuditLog } from './audit.js';
import type { AuthFailureLimit } from './auth.js';
import type { ApiTls } from './tls.js';
import { createApiServer, type ApiServer, type RunningApi } from './server.js';

export interface ManagerOptions {
  stateDir: string;
  /** the API's bearer token (an admin); named tokens come from STATE_DIR/api-tokens.json */
  token: string;
  /** serve the API over HTTPS with client certificates mapped to roles */
  apiTls?: ApiTls;
  /** failed authentications allowed per client address and window */
  authFailureLimit?: AuthFailureLimit;
  logger: Logger;
  /** where the API listens */
  api: { host: string; port: number };
  /** the federation file, loaded (see loadFederationFile) */
  federation?: LoadedFederation;
  graceMs?: number;
  debounceMs?: number;
  maxDelayMs?: number;
  allowExec?: boolean;
  allowFiles?: boolean;
  /** options for every Kubernetes source */
  kube?: KubeSourceOptions;
  /** the prom-client registry for the registry's metrics, served on /metrics */
  metrics?: PromRegistry;
  /** the state dir's registrations, if the caller opened them already (default: opened here) */
  store?: RegistrationStore;
  /** where the xDS (ADS) server listens; no xDS server when absent */
  xds?: XdsOptions;
  /** the virtual destinations, if the caller opened them already (default: the federation file's and the state dir's) */
  virtualDestinations?: VirtualDestinations;
  /** the VIPs of virtual destinations' hostnames, if the caller opened them already (default: the state dir's) */
  vips?: VipAllocator;
  /** runs failover drills for /api/v1/drills */
  drills?: DrillService;
  /** the trust domain's CA, for /api/v1/trust */
  trust?: TrustAuthority;
  /** how the API changes the CA (Kubernetes mode: through the leader) */
  trustWriter?: TrustWriter;
  /** Kubernetes mode: why the CA Secret is not synced yet, for /readyz */
  storeNotSynced?: () => string | undefined;
}

export interface XdsOptions {
  host: string;
  port: number;
  /** the trust domain whose SPIFFE IDs Envoy sidecars expect of their upstreams */
  trustDomain?: string;
  /** proxyless clients use mTLS with this certificate provider instance of their bootstrap */
  proxylessMtls?: string;
  /** push coalescing (default 100 ms quiet, 1 s at most) */
  debounceMs?: number;
  maxDelayMs?: number;
}

export interface RunningXds {
  readonly provider: FederationXds;
  readonly server: AdsServerHandle;
}

export interface Manager {
  readonly registry: Registry;
  readonly store: RegistrationStore;
  readonly server: ApiServer;
  readonly api: RunningApi;
  /** the xDS server, when asked for */
  readonly xds?: RunningXds;
  /** the federation file's virtual destinations and those applied through the API */
  readonly virtualDestinations: VirtualDestinations;
  /** the VIPs meshfed's DNS gives their hostnames */
  readonly vips: VipAllocator;
  /** clusters defined by the federation file */
  readonly fileClusters: ReadonlySet<string>;
  /** registrations the federation file overrides in this run */
  readonly shadowed: readonly string[];
  /** the sources of the federation file's static clusters, by cluster name: the embedded federation reports its workloads' readiness through them */
  readonly staticSources: ReadonlyMap<string, StaticSource>;
  close(): Promise<void>;
}

/** The first line: YAML errors quote their input after it, and kubeconfigs hold credentials. */
const firstLine = (error: unknown): string => (error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '';

/**
 * Checks every kubeconfig of the federation file as a registered one is checked: an unsafe or broken one is a
 * configuration error (a FederationFileError naming the file, the cluster and the kubeconfig), not a cluster
 * that quietly never syncs.
 */
export function checkFederationKubeconfigs(federation: LoadedFederation, safety: { allowExec: boolean; allowFiles: boolean }): void {
  for (const { cluster, kubeconfigPath } of federation.clusters) {
    if (cluster.source.type !== 'kubernetes') continue;
    try {
      loadSafeKubeconfig(cluster.source.kubeconfig, { ...(cluster.source.context ? { context: cluster.source.context } : {}), ...safety });
    } catch (error) {
      throw new FederationFileError(`${federation.path} (Cluster ${cluster.name}): spec.kubeconfigFile ${kubeconfigPath ?? ''}: ${firstLine(error)}`);
    }
  }
}

/** The registrations of a state dir (created 0700 if missing); a damaged file is a RegistrationStoreError. */
export function openRegistrations(stateDir: string): RegistrationStore {
  ensureStateDir(stateDir);
  return RegistrationStore.open(stateDir);
}

/**
 * The cluster-registry half of `meshfed serve`: the registration store of the state dir, the
 * registry with the federation file's clusters and the persisted registrations, and the REST API.
 * /readyz turns ready once both are loaded. A name in both the file and the registrations: the
 * file wins for this run (logged).
 */
export async function startManager(options: ManagerOptions): Promise<Manager> {
  const { logger } = options;
  const safety = { allowExec: options.allowExec ?? false, allowFiles: options.allowFiles ?? false };
  const fileClusters = options.federation?.clusters ?? [];
  if (options.federation) checkFederationKubeconfigs(options.federation, safety);
  const store = options.store ?? openRegistrations(options.stateDir);
  const tokens = ApiTokenStore.open(options.stateDir);
  const virtualDestinations = options.virtualDestinations ?? VirtualDestinations.open(options.stateDir, options.federation?.virtualDestinations);
  const vips = options.vips ?? new VipAllocator({ stateDir: options.stateDir });
  const registry = new Registry({
    logger,
    ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    ...(options.debounceMs !== undefined ? { debounceMs: options.debounceMs } : {}),
    ...(options.maxDelayMs !== undefined ? { maxDelayMs: options.maxDelayMs } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
  });
  const kube: KubeSourceOptions = { ...options.kube, ...safety };
  const provider = options.xds
    ? new FederationXds(registry, {
        logger,
        ...(options.xds.trustDomain !== undefined ? { trustDomain: options.xds.trustDomain } : {}),
        ...(options.xds.proxylessMtls !== undefined ? { proxylessMtls: { certificateProvider: options.xds.proxylessMtls } } : {}),
        virtualDestinations: virtualDestinations.list(),
        ...(options.xds.debounceMs !== undefined ? { debounceMs: options.xds.debounceMs } : {}),
        ...(options.xds.maxDelayMs !== undefined ? { maxDelayMs: options.xds.maxDelayMs } : {}),
      })
    : undefined;
  const fileNames = new Set(fileClusters.map((c) => c.cluster.name));
  const server = createApiServer({
    registry,
    store,
    token: options.token,
    tokens,
    audit: new AuditLog({ logger, path: join(options.stateDir, AUDIT_LOG_FILE) }),
    ...(options.apiTls ? { tls: options.apiTls } : {}),
    ...(options.authFailureLimit ? { authFailureLimit: options.authFailureLimit } : {}),
    logger,
    ...safety,
    kube,
    fileClusters: fileNames,
    ...(options.federation ? { fileName: options.federation.path } : {}),
    ...(options.metrics ? { metrics: options.metrics } : {}),
    ...(provider ? { xds: provider } : {}),
    virtualDestinations,
    vips: (hostname) => vips.vipsOf(hostname),
    ...(options.drills ? { drills: options.drills } : {}),
    ...(options.trust ? { trust: options.trust } : {}),
    ...(options.trustWriter ? { trustWriter: options.trustWriter } : {}),
    ...(options.storeNotSynced ? { storeNotSynced: options.storeNotSynced } : {}),
  });
  const unsubscribeVds = provider ? virtualDestinations.subscribe(() => {
        provider.setVirtualDestinations(virtualDestinations.list());
      }) : undefined;
  // the API comes up first, so /healthz answers and /readyz says 503 while the clusters load
  let api: RunningApi;
  let xds: RunningXds | undefined;
  try {
    api = await server.startApi(options.api);
    if (provider && options.xds) {
      try {
        const observer = new XdsMetrics(options.metrics).observer(provider);
        xds = { provider, server: await startAdsServer({ host: options.xds.host, port: options.xds.port, provider, logger, observer }) };
      } catch (error) {
        await api.close();
        throw error;
      }
    }
  } catch (error) {
    unsubscribeVds?.();
    provider?.close();
    await registry.close();
    throw error;
  }
  const staticSources = new Map<string, StaticSource>();
  for (const { cluster, services } of fileClusters) {
    const source = createSource(cluster, services, { logger, kube });
    if (source instanceof StaticSource) staticSources.set(cluster.name, source);
    registry.add(cluster, source);
  }
  const shadowed: string[] = [];
  for (const { cluster } of store.list()) {
    if (fileNames.has(cluster.name)) {
      shadowed.push(cluster.name);
      logger.warn({ cluster: cluster.name, file: options.federation?.path }, 'cluster is both registered and in the federation file: the file wins for this run');
      continue;
    }
    registry.add(cluster, createSource(cluster, undefined, { logger, kube }));
  }
  for (const vd of virtualDestinations.shadowed()) {
    logger.warn({ virtualDestination: vd.name, file: options.federation?.path }, 'virtual destination applied through the API, but the federation file takes its name or hostname: the file wins for this run');
  }
  // what was just loaded is served at once, not after the debounce windows
  registry.flush();
  provider?.flush();
  server.markReady();
  logger.info({ fromFile: fileNames.size, registered: store.list().length - shadowed.length }, 'clusters loaded');

  return {
    registry,
    store,
    server,
    api,
    ...(xds ? { xds } : {}),
    fileClusters: fileNames,
    shadowed,
    staticSources,
    virtualDestinations,
    vips,
    async close() {
      server.markNotReady();
      unsubscribeVds?.();
      await xds?.server.close();
      provider?.close();
      await api.close();
      await registry.close();
    },
  };
}
