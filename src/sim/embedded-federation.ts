/**
 * The embedded federation's workloads, for `meshfed serve` (and `npm start`): for every static cluster of the
 * federation file, a real server behind each loopback endpoint (src/sim/workloads.ts), each with an SVID from its
 * cluster's intermediate; a kubelet-like readiness prober per cluster that reports into the cluster's StaticSource;
 * and, per cluster, a demo client identity with a gRPC xDS bootstrap file, so a proxyless client can stand in that
 * cluster and call what the federation serves:
 *
 *   DIR/CLUSTER/bootstrap.json                        GRPC_XDS_BOOTSTRAP for a proxyless gRPC client in CLUSTER
 *   DIR/CLUSTER/default/demo-client/{cert,key,ca}.pem  that client's SVID (spiffe://TD/ns/default/sa/demo-client)
 *   DIR/CLUSTER/NAMESPACE/SERVICE_ACCOUNT/...         the workloads' SVIDs
 *
 * The bootstrap names one certificate provider instance (`default` unless told otherwise: the name serve's
 * --proxyless-mtls gives meshfed's clusters), a file_watcher over the demo client's files.
 */
import { join } from 'node:path';
import type { Cluster } from '../model/cluster.js';
import type { StaticService } from '../model/federation-file.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { StaticSource } from '../registry/static-source.js';
import { writeFileAtomic } from '../store/atomic.js';
import type { TrustAuthority } from '../trust/authority.js';
import { DEFAULT_CERTIFICATE_PROVIDER } from '../xds/resources/proxyless-tls.js';
import { SimIdentities, type IdentityFiles } from './identities.js';
import { probeSettings, ReadinessProber, type ProbeSettings } from './prober.js';
import { Workload, workloadSpecs, type WorkloadStatus } from './workloads.js';

/** The service account of each cluster's demo client. */
export const DEMO_CLIENT_SERVICE_ACCOUNT = 'demo-client';
/** The identity the readiness probes present to mTLS workloads. */
const PROBER_NAMESPACE = 'kube-system';
const PROBER_SERVICE_ACCOUNT = 'kubelet';
/** How often identities are checked for renewal (each is renewed at half its lifetime). */
const RENEW_CHECK_MS = 60_000;
/** How often the demo clients' file_watcher rereads their files. */
const FILE_WATCHER_REFRESH = '60s';

export interface EmbeddedFederationOptions {
  /** the federation file's clusters; Kubernetes clusters and static clusters without loopback endpoints get no workloads */
  clusters: readonly { cluster: Cluster; services?: readonly StaticService[] }[];
  /** the static clusters' sources, by cluster name (Manager.staticSources): readiness is reported through them */
  sources: ReadonlyMap<string, StaticSource>;
  authority: TrustAuthority;
  /** where SVIDs and bootstrap files are written (created 0700) */
  dir: string;
  probe?: Partial<ProbeSettings>;
  /** the xDS server the demo clients' bootstraps name; no bootstrap files without it */
  xds?: { host: string; port: number };
  /** the certificate provider instance of the bootstraps (default `default`) */
  certificateProvider?: string;
  /** which endpoint addresses get a workload in this process (default: loopback ones; `meshfed sim-cluster`: all) */
  runsHere?: (address: string) => boolean;
  logger?: Logger;
}

export interface DemoClient {
  cluster: string;
  spiffeId: string;
  files: IdentityFiles;
  /** the gRPC xDS bootstrap (GRPC_XDS_BOOTSTRAP), when an xDS server was given */
  bootstrap?: string;
}

export interface SimulatedWorkload extends WorkloadStatus {
  /** what the cluster's prober reports: ready or not */
  ready: boolean;
}

export interface EmbeddedFederation {
  readonly dir: string;
  readonly probe: ProbeSettings;
  readonly certificateProvider: string;
  /** the clusters that run workloads, in file order */
  readonly clusters: readonly string[];
  /** static clusters left without workloads, and why */
  readonly skipped: readonly { cluster: string; reason: string }[];
  workloads(): SimulatedWorkload[];
  /** The workload's process dies (listeners and live connections destroyed); its cluster's prober will notice. */
  kill(workloadId: string): Promise<void>;
  /** The workload starts again on its address and port. */
  start(workloadId: string): Promise<void>;
  /** The workload's health checks fail (or pass again) while it keeps answering calls: its prober will notice. */
  setServing(workloadId: string, serving: boolean): void;
  /** The demo client of a cluster that runs workloads. */
  client(cluster: string): DemoClient | undefined;
  /** Lines for serve's terminal summary; `shown` shortens paths for display. */
  summary(shown?: (path: string) => string): string[];
  close(): Promise<void>;
}

/** grpc's server_uri for where the xDS server listens: a wildcard address is reached on loopback. */
function xdsServerUri(host: string, port: number): string {
  const reachable = host === '0.0.0.0' || host === '' ? '127.0.0.1' : host === '::' ? '::1' : host;
  return reachable.includes(':') ? `[${reachable}]:${String(port)}` : `${reachable}:${String(port)}`;
}

function bootstrapJson(cluster: Cluster, xds: { host: string; port: number }, instance: string, files: IdentityFiles): string {
  const bootstrap = {
    xds_servers: [{ server_uri: xdsServerUri(xds.host, xds.port), channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: `sim~${cluster.name}~${DEMO_CLIENT_SERVICE_ACCOUNT}`,
      locality: cluster.region === '' ? {} : { region: cluster.region, zone: cluster.zone },
      metadata: { CLUSTER_ID: cluster.name, NETWORK: cluster.network, GENERATOR: 'grpc' },
    },
    certificate_providers: {
      [instance]: {
        plugin_name: 'file_watcher',
        config: { certificate_file: files.certificate, private_key_file: files.privateKey, ca_certificate_file: files.ca, refresh_interval: FILE_WATCHER_REFRESH },
      },
    },
  };
  return `${JSON.stringify(bootstrap, null, 2)}\n`;
}

interface ClusterRun {
  cluster: Cluster;
  workloads: Workload[];
  prober: ReadinessProber;
  client: DemoClient;
}

/**
 * Starts the workloads of every static cluster, waits for each prober's first round (so what meshfed serves says
 * which workloads answer), then probes every period. A workload that cannot listen (its address taken) fails the
 * whole start: what was started is closed again, and the error names the workload and the address.
 */
export async function startEmbeddedFederation(options: EmbeddedFederationOptions): Promise<EmbeddedFederation> {
  const log = options.logger ?? SILENT_LOGGER;
  const probe = probeSettings(options.probe);
  const instance = options.certificateProvider ?? DEFAULT_CERTIFICATE_PROVIDER;
  const identities = new SimIdentities(options.authority, options.dir);
  const skipped: { cluster: string; reason: string }[] = [];
  const plans: { cluster: Cluster; services: readonly StaticService[]; source: StaticSource; specs: ReturnType<typeof workloadSpecs> }[] = [];
  const owners = new Map<string, string>();
  for (const { cluster, services } of options.clusters) {
    const source = options.sources.get(cluster.name);
    if (cluster.source.type !== 'static' || !services || !source) continue;
    const specs = workloadSpecs(cluster, services, options.runsHere);
    if (specs.length === 0) continue;
    if (!options.authority.intermediateCertificate(cluster.name)) {
      skipped.push({ cluster: cluster.name, reason: 'no intermediate CA to issue its workloads certificates' });
      continue;
    }
    for (const spec of specs) {
      for (const p of spec.ports) {
        const at = `${spec.address}:${String(p.port)}`;
        const owner = owners.get(at);
        if (owner !== undefined) throw new Error(`embedded workloads: ${spec.id} and ${owner} both listen on ${at}`);
        owners.set(at, spec.id);
      }
    }
    plans.push({ cluster, services, source, specs });
  }

  const runs: ClusterRun[] = [];
  const started: Workload[] = [];
  try {
    for (const { cluster, services, source, specs } of plans) {
      const workloads = specs.map((spec) => new Workload(spec, spec.tlsMode === 'mtls' ? identities.get(cluster.name, spec.namespace, spec.serviceAccount) : undefined));
      for (const w of workloads) {
        await w.start();
        started.push(w);
      }
      const demo = identities.get(cluster.name, 'default', DEMO_CLIENT_SERVICE_ACCOUNT);
      const client: DemoClient = { cluster: cluster.name, spiffeId: demo.spiffeId, files: demo.files };
      if (options.xds) {
        client.bootstrap = join(options.dir, cluster.name, 'bootstrap.json');
        writeFileAtomic(client.bootstrap, bootstrapJson(cluster, options.xds, instance, demo.files));
      }
      const prober = new ReadinessProber({
        cluster: cluster.name,
        services,
        source,
        workloads,
        identity: identities.inMemory(cluster.name, PROBER_NAMESPACE, PROBER_SERVICE_ACCOUNT),
        settings: probe,
        logger: log,
      });
      runs.push({ cluster, workloads, prober, client });
    }
    await Promise.all(runs.map((r) => r.prober.tick()));
  } catch (error) {
    identities.close();
    await Promise.all(started.map((w) => w.kill()));
    throw error;
  }
  for (const r of runs) r.prober.start();
  identities.startRenewal(
    RENEW_CHECK_MS,
    (renewed) => {
      log.info({ renewed }, 'renewed workload certificates');
    },
    (error) => {
      log.error({ err: { message: error.message } }, 'workload certificate renewal failed');
    },
  );
  log.info({ clusters: runs.map((r) => r.cluster.name), workloads: started.length, dir: options.dir }, 'embedded workloads started');

  const byId = new Map(runs.flatMap((r) => r.workloads.map((w) => [w.spec.id, { workload: w, prober: r.prober }] as const)));
  const find = (id: string): Workload => {
    const found = byId.get(id)?.workload;
    if (!found) throw new Error(`no workload ${JSON.stringify(id.slice(0, 200))} (ids are CLUSTER/NAMESPACE/SERVICE/ADDRESS)`);
    return found;
  };
  const workloads = (): SimulatedWorkload[] =>
    [...byId.values()].map(({ workload, prober }) => ({ ...workload.status(), ready: prober.ready(workload.spec.id) ?? false }));

  return {
    dir: options.dir,
    probe,
    certificateProvider: instance,
    clusters: runs.map((r) => r.cluster.name),
    skipped,
    workloads,
    async kill(id) {
      await find(id).kill();
      log.info({ workload: id }, 'workload killed');
    },
    async start(id) {
      await find(id).start();
      log.info({ workload: id }, 'workload started');
    },
    setServing(id, serving) {
      find(id).setServing(serving);
      log.info({ workload: id, serving }, serving ? 'workload serving' : 'workload not serving');
    },
    client: (cluster) => runs.find((r) => r.cluster.name === cluster)?.client,
    summary(shown = (path) => path) {
      return summaryLines({ workloads: workloads(), runs, skipped, probe, instance, dir: options.dir, shown });
    },
    async close() {
      identities.close();
      await Promise.all(runs.map((r) => r.prober.stop()));
      await Promise.all(started.map((w) => w.kill()));
    },
  };
}

const seconds = (ms: number): string => `${String(ms / 1000)}s`;

function summaryLines(s: {
  workloads: SimulatedWorkload[];
  runs: readonly ClusterRun[];
  skipped: readonly { cluster: string; reason: string }[];
  probe: ProbeSettings;
  instance: string;
  dir: string;
  shown: (path: string) => string;
}): string[] {
  const lines: string[] = [];
  if (s.workloads.length > 0) {
    const byService = new Map<string, { count: number; kinds: Set<string> }>();
    for (const w of s.workloads) {
      const name = w.namespace === 'default' ? w.service : `${w.namespace}/${w.service}`;
      const entry = byService.get(name) ?? { count: 0, kinds: new Set<string>() };
      entry.count++;
      for (const p of w.ports) entry.kinds.add(p.protocol === 'grpc' ? 'gRPC echo + health' : 'HTTP');
      byService.set(name, entry);
    }
    const services = [...byService].map(([name, e]) => `${name} ${String(e.count)} (${[...e.kinds].join(', ')})`).join(', ');
    const ready = s.workloads.filter((w) => w.ready).length;
    lines.push(
      `  workloads      ${String(s.workloads.length)} on loopback in ${s.runs.map((r) => r.cluster.name).join(', ')}: ${services}; mTLS with their SVIDs (in ${s.shown(s.dir)})`,
      `  readiness      probed like a kubelet every ${seconds(s.probe.periodMs)} (timeout ${seconds(s.probe.timeoutMs)}, failureThreshold ${String(s.probe.failureThreshold)}, successThreshold ${String(s.probe.successThreshold)}): ${String(ready)} of ${String(s.workloads.length)} ready`,
    );
    const first = s.runs.find((r) => r.client.bootstrap !== undefined);
    if (first?.client.bootstrap !== undefined) {
      const others = s.runs.filter((r) => r !== first).map((r) => r.cluster.name);
      lines.push(
        `  demo clients   GRPC_XDS_BOOTSTRAP=${s.shown(first.client.bootstrap)}${others.length ? ` (or ${others.join(', ')})` : ''}: a proxyless gRPC client in that cluster,`,
        `                 ${first.client.spiffeId} over mTLS (certificate provider "${s.instance}")`,
      );
    }
  }
  for (const { cluster, reason } of s.skipped) lines.push(`  workloads      none in ${cluster}: ${reason}`);
  return lines;
}
