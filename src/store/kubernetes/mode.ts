/**
 * `meshfed serve --store kubernetes`: the pieces a replica runs when the federation's state lives in its namespace.
 * Every replica campaigns for the leader Lease, reads the CA from its Secret and serves xDS, DNS and the CA
 * service; the leader alone writes: it creates the CA, renews intermediates, delivers clusters' material and takes
 * rotation steps (see secret-trust.ts). Other Kubernetes-backed stores (the custom resources) plug in through
 * `kubeConfig`, `namespace`, `isLeader()` and `onLeading()`.
 */
import { CoordinationV1Api, CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../../logging.js';
import type { TrustAuthority } from '../../trust/authority.js';
import { LeaseElector } from './lease-elector.js';
import { KubernetesTrust, NotLeaderError } from './secret-trust.js';

export const DEFAULT_LEASE_NAME = 'meshfed-leader';
export const DEFAULT_CA_SECRET = 'meshfed-ca';

export interface KubernetesModeOptions {
  namespace: string;
  /** a kubeconfig file; without it, the pod's in-cluster service account */
  kubeconfig?: string;
  leaseName: string;
  /** whole seconds; the renew deadline is 2/3 of it and the retry period 2/15, as client-go's 15 s / 10 s / 2 s */
  leaseDurationMs: number;
  /** this replica: the pod name */
  identity: string;
  /** the Secret that holds the CA */
  caSecret: string;
  /** the trust domain to create when the Secret holds no CA yet */
  trustDomain?: string;
  /** clusters that must have an intermediate */
  clusters: readonly string[];
  /** how often followers re-read the CA Secret and the leader renews and delivers */
  syncEveryMs: number;
  /** how long to wait at start for the CA (a leader to create it) */
  startupTimeoutMs?: number;
  logger: Logger;
}

export interface KubernetesMode {
  readonly kubeConfig: KubeConfig;
  readonly namespace: string;
  readonly identity: string;
  /** the CA, read from its Secret (kept current by the sync loop) */
  readonly authority: TrustAuthority;
  readonly trust: KubernetesTrust;
  isLeader(): boolean;
  /** the leader as this replica last saw the Lease */
  leader(): string | undefined;
  /** called with true when this replica starts leading and false when it stops; returns the unsubscribe */
  onLeading(listener: (leading: boolean) => void): () => void;
  /** called after the CA changed (read from the Secret or written by this replica) */
  onTrustChange(listener: () => void): () => void;
  /** why the CA Secret is not synced, or undefined when it is (for /readyz) */
  notSynced(): string | undefined;
  /** stops the sync loop and releases the Lease if this replica holds it */
  close(): Promise<void>;
}

export function loadKubeConfig(file: string | undefined): KubeConfig {
  const kc = new KubeConfig();
  if (file !== undefined) kc.loadFromFile(file);
  else kc.loadFromCluster();
  return kc;
}

export async function startKubernetesMode(options: KubernetesModeOptions): Promise<KubernetesMode> {
  const { logger: log, namespace } = options;
  if (options.leaseDurationMs < 1000 || options.leaseDurationMs % 1000 !== 0) throw new Error(`--lease-duration must be whole seconds, at least 1 s (not ${options.leaseDurationMs} ms)`);
  const kubeConfig = loadKubeConfig(options.kubeconfig);
  const leadingListeners = new Set<(leading: boolean) => void>();
  const changeListeners = new Set<() => void>();
  let lastSyncError: string | undefined;
  let timer: NodeJS.Timeout | undefined;
  let closed = false;

  const elector = new LeaseElector({
    api: kubeConfig.makeApiClient(CoordinationV1Api),
    namespace,
    name: options.leaseName,
    identity: options.identity,
    leaseDurationMs: options.leaseDurationMs,
    renewDeadlineMs: Math.round((options.leaseDurationMs * 2) / 3),
    retryPeriodMs: Math.max(100, Math.round((options.leaseDurationMs * 2) / 15)),
    logger: log,
    onStartedLeading: () => {
      for (const listener of leadingListeners) listener(true);
      // a new leader continues at once from what the Secret says
      if (!closed && trust.authority) void sync();
    },
    onStoppedLeading: () => {
      for (const listener of leadingListeners) listener(false);
    },
    onNewLeader: (leader) => {
      log.info({ leader: leader ?? null }, 'the leader changed');
    },
  });
  const trust = new KubernetesTrust({
    core: kubeConfig.makeApiClient(CoreV1Api),
    namespace,
    secretName: options.caSecret,
    isLeader: () => elector.isLeader(),
    leader: () => elector.leader(),
    logger: log,
  });

  let syncing: Promise<void> | undefined;
  const sync = (): Promise<void> => {
    syncing ??= (async () => {
      try {
        let changed: boolean;
        if (elector.isLeader()) {
          const version = trust.resourceVersion;
          await trust.reconcile();
          changed = trust.resourceVersion !== version;
        } else {
          changed = await trust.refresh();
        }
        lastSyncError = undefined;
        if (changed) for (const listener of changeListeners) listener();
      } catch (error) {
        if (error instanceof NotLeaderError) return;
        lastSyncError = (error as Error).message;
        log.error({ err: { message: lastSyncError } }, 'CA Secret sync failed');
      }
    })().finally(() => {
      syncing = undefined;
    });
    return syncing;
  };

  elector.start();
  try {
    await waitForCa(options, elector, trust);
  } catch (error) {
    await elector.stop();
    throw error;
  }
  const authority = trust.authority;
  if (!authority) throw new Error('the CA Secret holds no CA');
  const loop = (): void => {
    timer = setTimeout(() => {
      void sync().finally(() => {
        if (!closed) loop();
      });
    }, options.syncEveryMs);
  };
  loop();

  return {
    kubeConfig,
    namespace,
    identity: options.identity,
    authority,
    trust,
    isLeader: () => elector.isLeader(),
    leader: () => elector.leader(),
    onLeading: (listener) => {
      leadingListeners.add(listener);
      return () => leadingListeners.delete(listener);
    },
    onTrustChange: (listener) => {
      changeListeners.add(listener);
      return () => changeListeners.delete(listener);
    },
    notSynced: () => (lastSyncError !== undefined ? `the CA Secret ${namespace}/${options.caSecret} could not be read: ${lastSyncError}` : undefined),
    close: async () => {
      closed = true;
      clearTimeout(timer);
      await syncing;
      await elector.stop();
    },
  };
}

class NoTrustDomainError extends Error {}

/** Until the Secret holds a CA with an intermediate for every required cluster: the leader makes it, followers wait for it. */
async function waitForCa(options: KubernetesModeOptions, elector: LeaseElector, trust: KubernetesTrust): Promise<void> {
  const limitMs = options.startupTimeoutMs ?? Math.max(60_000, 4 * options.leaseDurationMs);
  const deadline = Date.now() + limitMs;
  const ready = (): boolean => trust.authority !== undefined && options.clusters.every((c) => trust.authority?.intermediateCertificate(c) !== undefined);
  let lastError = '';
  while (Date.now() < deadline) {
    try {
      if (elector.isLeader()) {
        await trust.refresh();
        const trustDomain = options.trustDomain ?? trust.authority?.trustDomain;
        if (trustDomain === undefined) throw new NoTrustDomainError(`Secret ${options.namespace}/${options.caSecret} holds no CA: give --trust-domain, or a federation file with spec.trustDomain`);
        await trust.initialize(trustDomain, options.clusters);
      } else {
        await trust.refresh();
      }
      if (ready()) return;
    } catch (error) {
      if (error instanceof NoTrustDomainError) throw error;
      if (!(error instanceof NotLeaderError)) lastError = (error as Error).message;
    }
    await new Promise((done) => setTimeout(done, Math.min(500, options.syncEveryMs)));
  }
  throw new Error(`no CA in Secret ${options.namespace}/${options.caSecret} within ${String(limitMs / 1000)} s (leader: ${elector.leader() ?? 'none'})${lastError ? `: ${lastError}` : ''}`);
}
