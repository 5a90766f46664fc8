/**
 * Readiness of simulated workloads that run in other processes (`meshfed sim-cluster`, say one per network namespace):
 * serve probes each of them as a kubelet would (src/sim/prober.ts: gRPC health or GET /healthz over mTLS, the workload
 * presenting its own SPIFFE ID, Kubernetes' thresholds) and reports the result through the cluster's StaticSource, as
 * it would learn it from an EndpointSlice. Only the probes run here: the workloads, and their SVIDs, live where they run.
 */
import type { Cluster } from '../model/cluster.js';
import type { StaticService } from '../model/federation-file.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { StaticSource } from '../registry/static-source.js';
import type { TrustAuthority } from '../trust/authority.js';
import { SimIdentities } from './identities.js';
import { probeSettings, ReadinessProber, type ProbeSettings } from './prober.js';
import { Workload, workloadSpecs } from './workloads.js';

/** The identity the probes present, as the embedded federation's prober does. */
const PROBER_NAMESPACE = 'kube-system';
const PROBER_SERVICE_ACCOUNT = 'kubelet';
/** How often the probes' own certificate is checked for renewal (it is renewed at half its lifetime). */
const RENEW_CHECK_MS = 60_000;

export interface RemoteReadinessOptions {
  /** the federation file's clusters; only static ones with probed endpoints count */
  clusters: readonly { cluster: Cluster; services?: readonly StaticService[] }[];
  /** the static clusters' sources, by cluster name: readiness is reported through them */
  sources: ReadonlyMap<string, StaticSource>;
  authority: TrustAuthority;
  /** which endpoint addresses are probed from here (serve: the ones that are not loopback) */
  probes: (address: string) => boolean;
  probe?: Partial<ProbeSettings>;
  logger?: Logger;
}

export interface RemoteReadiness {
  readonly probe: ProbeSettings;
  /** the clusters whose workloads are probed */
  readonly clusters: readonly string[];
  /** how many workloads are probed */
  readonly workloads: number;
  /** static clusters left unprobed, and why */
  readonly skipped: readonly { cluster: string; reason: string }[];
  close(): Promise<void>;
}

/**
 * Starts one prober per static cluster with probed endpoints. Every workload counts as unready until its first
 * successful probe, as a pod does: workloads that start later are picked up within a period.
 */
export function startRemoteReadiness(options: RemoteReadinessOptions): RemoteReadiness {
  const log = options.logger ?? SILENT_LOGGER;
  const probe = probeSettings(options.probe);
  // the workloads' identities are issued only to know the SPIFFE ID each must present; nothing is written
  const identities = new SimIdentities(options.authority, '');
  const probers: ReadinessProber[] = [];
  const skipped: { cluster: string; reason: string }[] = [];
  let workloads = 0;
  for (const { cluster, services } of options.clusters) {
    const source = options.sources.get(cluster.name);
    if (cluster.source.type !== 'static' || !services || !source) continue;
    const specs = workloadSpecs(cluster, services, options.probes);
    if (specs.length === 0) continue;
    if (!options.authority.intermediateCertificate(cluster.name)) {
      skipped.push({ cluster: cluster.name, reason: 'no intermediate CA to check its workloads certificates' });
      continue;
    }
    const targets = specs.map((spec) => new Workload(spec, spec.tlsMode === 'mtls' ? identities.inMemory(cluster.name, spec.namespace, spec.serviceAccount) : undefined));
    workloads += targets.length;
    probers.push(
      new ReadinessProber({
        cluster: cluster.name,
        services,
        source,
        workloads: targets,
        identity: identities.inMemory(cluster.name, PROBER_NAMESPACE, PROBER_SERVICE_ACCOUNT),
        settings: probe,
        logger: log,
      }),
    );
  }
  for (const prober of probers) prober.start();
  identities.startRenewal(
    RENEW_CHECK_MS,
    (renewed) => {
      log.info({ renewed }, 'renewed the readiness probes\' certificates');
    },
    (error) => {
      log.error({ err: { message: error.message } }, 'readiness probe certificate renewal failed');
    },
  );
  log.info({ clusters: probers.map((p) => p.cluster), workloads }, 'probing the readiness of workloads that run elsewhere');
  return {
    probe,
    clusters: probers.map((p) => p.cluster),
    workloads,
    skipped,
    async close() {
      identities.close();
      await Promise.all(probers.map((p) => p.stop()));
    },
  };
}
