import { rmSync } from 'node:fs';
import { hostname } from 'node:os';
import { join, relative, resolve } from 'node:path';
import { Command } from 'commander';
import { collectDefaultMetrics, Registry as PromRegistry } from 'prom-client';
import { checkFederationKubeconfigs, openRegistrations, startManager, type Manager } from '../api/manager.js';
import { parseDuration } from '../model/duration.js';
import { formatLocality } from '../model/locality.js';
import { DEFAULT_GATEWAY_PROBE, GatewayProber } from '../registry/gateway-probe.js';
import { DEFAULT_GRACE_MS } from '../registry/registry.js';
import { startDnsServer, type DnsServer } from '../dns/server.js';
import { StaticZoneSource, type DnsName } from '../dns/source.js';
import { DEFAULT_IPV4_CIDR, VipAllocator } from '../dns/vip-allocator.js';
import { closeEmbeddedGateways, startEmbeddedGateways, type EmbeddedGateway } from '../gateway/embedded.js';
import { startEmbeddedFederation, type EmbeddedFederation } from '../sim/embedded-federation.js';
import { startRemoteReadiness, type RemoteReadiness } from '../sim/remote-readiness.js';
import { isLoopback } from '../sim/workloads.js';
import { crossClusterHandshake } from '../sim/trust-demo.js';
import { embeddedWorld } from '../drills/embedded-world.js';
import { gatewaySelectorProblem, ISTIO_GATEWAY_SELECTOR, kubernetesFaults } from '../drills/kubernetes-faults.js';
import { withKubernetesFaults } from '../drills/kubernetes-world.js';
import { DrillRunner } from '../drills/runner.js';
import { apiTlsFromAuthority, loadApiIdentities } from '../api/tls.js';
import { API_TOKEN_ENV, loadOrCreateApiToken } from '../store/api-token.js';
import { loadFederationFile, type LoadedFederation } from '../store/federation.js';
import { VirtualDestinations } from '../store/virtual-destinations.js';
import { DEFAULT_CERTIFICATE_PROVIDER } from '../xds/resources/proxyless-tls.js';
import type { NamedVirtualDestination } from '../model/virtual-destination.js';
import { TrustAuthority } from '../trust/authority.js';
import { startCaService, type CaServiceHandle } from '../trust/ca-service.js';
import { registerTrustMetrics } from '../trust/metrics.js';
import { StateDir } from '../trust/state-dir.js';
import { DEFAULT_CA_SECRET, DEFAULT_LEASE_NAME, startKubernetesMode, type KubernetesMode } from '../store/kubernetes/mode.js';
import { caDir, DEFAULT_STATE_DIR } from './ca.js';
import { DEFAULT_SERVER } from './api-client.js';
import { UsageError } from './errors.js';
import { hostPort } from './host-port.js';
import { createLogger } from './logger.js';
import { table } from './output.js';

const DEMO_CLUSTERS = ['east-1', 'east-2', 'west-1'];
/** how long the startup summary waits for Kubernetes clusters' first sync */
const SUMMARY_WAIT_MS = 3_000;

interface ServeOptions {
  stateDir?: string;
  trustDomain?: string;
  cluster: string[];
  caListen: string;
  caServerCluster?: string;
  syncEvery: string;
  demo?: boolean;
  config?: string;
  api: string;
  xds: string;
  dns: string;
  proxylessMtls?: string;
  gateways: boolean;
  workloads?: boolean;
  remoteWorkloads?: boolean;
  probePeriod: string;
  gatewayProbe: boolean;
  gatewayProbePeriod: string;
  gatewayProbeTimeout: string;
  gatewayProbeFailures: string;
  gatewayProbeSuccesses: string;
  grace: string;
  allowKubeconfigExec?: boolean;
  allowKubeconfigFiles?: boolean;
  drillGatewaySelector: string;
  apiTls?: boolean;
  apiIdentities?: string;
  store: string;
  namespace?: string;
  kubeconfig?: string;
  leaseName: string;
  leaseDuration: string;
  caSecret: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

/** A path as the user would type it from here. */
const shown = (path: string): string => {
  const rel = relative(process.cwd(), path);
  return rel && !rel.startsWith('..') ? rel : path;
};

function openAuthority(dir: string, trustDomain: string | undefined, trustDomainFrom: string, log: ReturnType<typeof createLogger>): TrustAuthority {
  if (StateDir.exists(dir)) {
    const authority = TrustAuthority.open(dir);
    if (trustDomain && trustDomain !== authority.trustDomain) throw new UsageError(`${dir} holds trust domain ${authority.trustDomain}, not ${trustDomain} (from ${trustDomainFrom})`);
    return authority;
  }
  if (!trustDomain) throw new UsageError(`${dir} holds no CA: run "meshfed ca init", give --trust-domain, or a federation file with spec.trustDomain`);
  const authority = TrustAuthority.init(dir, { trustDomain }).authority;
  log.info({ trustDomain, stateDir: dir }, 'created trust domain');
  return authority;
}

/** With --store kubernetes: joins the replicas (the Lease) and waits for the CA in its Secret. */
async function kubernetesMode(opts: ServeOptions, trustDomain: string | undefined, clusters: readonly string[], syncEveryMs: number, log: ReturnType<typeof createLogger>): Promise<KubernetesMode | undefined> {
  if (opts.store !== 'kubernetes') {
    if (opts.store !== 'state-dir') throw new UsageError(`--store must be state-dir or kubernetes, not ${JSON.stringify(opts.store)}`);
    if (opts.namespace !== undefined || opts.kubeconfig !== undefined) throw new UsageError('--namespace and --kubeconfig belong to --store kubernetes');
    return undefined;
  }
  const namespace = opts.namespace ?? process.env.POD_NAMESPACE;
  if (!namespace) throw new UsageError('--store kubernetes needs --namespace (or env POD_NAMESPACE)');
  return startKubernetesMode({
    namespace,
    ...(opts.kubeconfig !== undefined ? { kubeconfig: opts.kubeconfig } : {}),
    leaseName: opts.leaseName,
    leaseDurationMs: parseDuration(opts.leaseDuration),
    identity: process.env.POD_NAME ?? hostname(),
    caSecret: opts.caSecret,
    ...(trustDomain !== undefined ? { trustDomain } : {}),
    clusters,
    syncEveryMs,
    logger: log,
  });
}

/** Waits (bounded) until no Kubernetes cluster is still on its very first sync attempt, so the summary shows real states. */
async function settle(manager: Manager): Promise<void> {
  const deadline = Date.now() + SUMMARY_WAIT_MS;
  const pending = (): boolean => manager.registry.list().some((c) => c.state === 'syncing' && c.reason === 'waiting for the first sync');
  while (pending() && Date.now() < deadline) await new Promise((done) => setTimeout(done, 50));
}

function clusterLines(manager: Manager, federation: LoadedFederation | undefined, simulated: readonly string[]): string[] {
  const statuses = manager.registry.list();
  if (statuses.length === 0) return ['  clusters       none yet: give --config FILE, or register one with "npx meshfed cluster register NAME --network NET --kubeconfig FILE"'];
  const rows = statuses.map((c) => [
    c.name,
    c.network,
    formatLocality({ region: c.region, zone: c.zone, subzone: '' }) || '-',
    manager.fileClusters.has(c.name) ? `${c.source} (file)` : `${c.source} (registered)`,
    c.state,
    String(c.services),
    String(c.endpoints),
    c.gateways.map((g) => `${g.address}:${g.port}`).join(',') || '-',
    c.reason ?? '',
  ]);
  const text = table(['NAME', 'NETWORK', 'LOCALITY', 'SOURCE', 'STATE', 'SERVICES', 'ENDPOINTS', 'GATEWAYS', 'REASON'], rows).trimEnd().split('\n');
  const networks = new Set(statuses.map((c) => c.network));
  const lines = [`  clusters       ${statuses.length} in ${networks.size} network${networks.size === 1 ? '' : 's'}${federation ? ` (federation ${federation.name ?? '-'} from ${shown(federation.path)})` : ''}`, ...text.map((line) => `    ${line}`)];
  const statics = statuses.filter((c) => c.source === 'static' && !simulated.includes(c.name)).map((c) => c.name);
  if (statics.length) {
    lines.push(
      `  note           the services and endpoints of ${statics.join(', ')} are static entries of the federation file: they are the`,
      "                 registry's data, not running workloads (serve --workloads runs the loopback ones as demo workloads).",
    );
  }
  if (manager.shadowed.length) lines.push(`  shadowed       ${manager.shadowed.join(', ')}: registered, but the federation file defines them too; the file wins for this run`);
  return lines;
}

/** The DNS names of the virtual destinations (the hostname and its ports). */
function dnsNames(vds: readonly NamedVirtualDestination[]): DnsName[] {
  return vds.map(({ spec }) => ({
    hostname: spec.hostname,
    ports: spec.ports.map((p) => ({ ...(p.name !== undefined ? { name: p.name } : {}), number: p.number, protocol: p.protocol })),
  }));
}

/** `meshfed xds dump` for a proxy standing in the first cluster, where it stands. */
function dumpHint(manager: Manager, serverFlag: string): string[] {
  const first = manager.registry.list()[0];
  if (!manager.xds || !first) return [];
  const locality = formatLocality({ region: first.region, zone: first.zone, subzone: '' });
  return [`    npx meshfed xds dump --node-cluster ${first.name} --network ${first.network}${locality ? ` --locality ${locality}` : ''}${serverFlag}`];
}

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the manager: the trust domain and its Istio-compatible CA service, the cluster registry, the split-horizon xDS server, built-in east-west gateways for simulated clusters, and the REST API')
    .option('--config <file>', 'a federation file (YAML): the Federation and its clusters; see federation/README.md')
    .option('--api <host:port>', 'where the REST API listens (port 0: any free port)', '127.0.0.1:8080')
    .option('--api-tls', "serve the API over HTTPS with a certificate of the federation's CA (SPIFFE ID spiffe://TD/ns/meshfed-system/sa/meshfed-api), accepting client certificates of the federation")
    .option('--api-identities <file>', 'with --api-tls: a YAML/JSON map of client SPIFFE ID → role (viewer, operator, admin)')
    .option('--xds <host:port>', 'where the xDS server (envoy.service.discovery.v3.AggregatedDiscoveryService) listens', '127.0.0.1:15010')
    .option('--dns <host:port>', "where the DNS server for the virtual destinations' hostnames listens (UDP and TCP)", '127.0.0.1:15053')
    .option('--proxyless-mtls <instance>', "proxyless gRPC clients call over mTLS with the certificates of this certificate provider instance of their bootstrap (e.g. default: a file_watcher with the workload's SVID)")
    .option('--no-gateways', "don't run the built-in east-west gateways of the federation file's static clusters (on their loopback gateway addresses)")
    .option('--workloads', "run the loopback endpoints of the federation file's static clusters as real demo workloads (gRPC echo + health, HTTP; mTLS), their readiness probed like a kubelet's (default with --demo; proxyless mTLS defaults to the certificate provider instance default)")
    .option('--no-workloads', "don't run the demo workloads, not even with --demo")
    .option('--remote-workloads', "the federation file's static endpoints that are not on loopback are demo workloads run elsewhere (meshfed sim-cluster): probe their readiness from here like a kubelet and report it as their health (proxyless mTLS defaults to the certificate provider instance default)")
    .option('--probe-period <duration>', "how often the demo workloads' readiness is probed (e.g. 1s, 500ms)", '1s')
    .option('--no-gateway-probe', "don't probe the federation's east-west gateways (then a gateway that cannot be reached is only left by clients' own outlier detection)")
    .option('--gateway-probe-period <duration>', 'how often each east-west gateway is probed (a TCP connect and a TLS ClientHello on its address); endpoints behind a gateway found down are withheld from other networks (e.g. 1s, 250ms)', `${DEFAULT_GATEWAY_PROBE.periodMs / 1000}s`)
    .option('--gateway-probe-timeout <duration>', 'how long a gateway probe waits for an answer (e.g. 1s, 250ms)', `${DEFAULT_GATEWAY_PROBE.timeoutMs / 1000}s`)
    .option('--gateway-probe-failures <n>', 'failed probes in a row that make a gateway unreachable', String(DEFAULT_GATEWAY_PROBE.failureThreshold))
    .option('--gateway-probe-successes <n>', 'successful probes in a row that make it reachable again', String(DEFAULT_GATEWAY_PROBE.successThreshold))
    .option('--state-dir <dir>', `the manager's state: CA, registrations, API token (env MESHFED_STATE_DIR, default ${DEFAULT_STATE_DIR})`)
    .option('--grace <duration>', 'how long a cluster that lost its API server keeps serving its last-known endpoints before they are evicted', `${DEFAULT_GRACE_MS / 1000}s`)
    .option('--allow-kubeconfig-exec', 'let kubeconfigs run exec credential plugins and auth providers on the manager (off: they are refused)')
    .option('--allow-kubeconfig-files', "let kubeconfigs name files on the manager's filesystem (off: credentials must be inline)")
    .option('--drill-gateway-selector <selector>', "the label selector of a Kubernetes cluster's east-west gateway pods, which a drill's kill-gateway deletes ({network}: the cluster's network)", ISTIO_GATEWAY_SELECTOR)
    .option('--trust-domain <domain>', 'create the trust domain in the state dir if it holds none (default: the federation file\'s trustDomain)')
    .option('--cluster <name>', 'make sure this cluster has an intermediate (repeatable; default: the federation file\'s clusters)', collect, [])
    .option('--ca-listen <host:port>', 'where the CA gRPC service (istio.v1.auth.IstioCertificateService) listens', '127.0.0.1:15012')
    .option('--ca-server-cluster <name>', "the cluster whose intermediate signs the CA service's own certificate (default: the first cluster)")
    .option('--sync-every <duration>', 'how often to pick up changes other meshfed commands made to the state dir and renew due intermediates', '30s')
    .option('--store <kind>', 'where the CA lives: state-dir, or kubernetes (a Secret in --namespace; replicas elect a leader on a Lease, and only the leader changes the CA)', 'state-dir')
    .option('--namespace <ns>', 'with --store kubernetes: the namespace of the Lease and the CA Secret (default: env POD_NAMESPACE)')
    .option('--kubeconfig <file>', "with --store kubernetes: the kubeconfig of the manager's own cluster (default: the pod's in-cluster service account)")
    .option('--lease-name <name>', 'with --store kubernetes: the coordination.k8s.io Lease the replicas elect their leader on', DEFAULT_LEASE_NAME)
    .option('--lease-duration <duration>', 'with --store kubernetes: how long a leader that stopped renewing keeps the Lease (whole seconds; the leader renews every 2/15 of it)', '15s')
    .option('--ca-secret <name>', 'with --store kubernetes: the Secret that holds the CA', DEFAULT_CA_SECRET)
    .option('--demo', `the embedded demo: trust domain meshfed.local, intermediates for ${DEMO_CLUSTERS.join(', ')}, state in .meshfed/demo, demo workloads behind the federation file's static clusters, and a live cross-cluster mTLS check`)
    .action(async (opts: ServeOptions) => {
      // the demo keeps the terminal for its summary; MESHFED_LOG_LEVEL=info shows the JSON log too
      const log = createLogger(process.env.MESHFED_LOG_LEVEL ?? (opts.demo ? 'warn' : 'info'));
      const stateDir = resolve(opts.stateDir ?? (opts.demo ? '.meshfed/demo' : (process.env.MESHFED_STATE_DIR ?? DEFAULT_STATE_DIR)));
      const dir = caDir(stateDir);
      const listen = hostPort(opts.caListen, '--ca-listen', '15012');
      const apiListen = hostPort(opts.api, '--api', '8080');
      const xdsListen = hostPort(opts.xds, '--xds', '15010');
      const dnsListen = hostPort(opts.dns, '--dns', '15053');
      const syncEvery = parseDuration(opts.syncEvery);
      const graceMs = parseDuration(opts.grace);
      const probePeriodMs = parseDuration(opts.probePeriod, { milliseconds: true });
      const count = (value: string, flag: string): number => {
        if (!/^[1-9]\d{0,5}$/.test(value)) throw new UsageError(`${flag} must be a whole number of at least 1, not ${JSON.stringify(value)}`);
        return Number(value);
      };
      const gatewayProbe = opts.gatewayProbe
        ? {
            periodMs: parseDuration(opts.gatewayProbePeriod, { milliseconds: true }),
            timeoutMs: parseDuration(opts.gatewayProbeTimeout, { milliseconds: true }),
            failureThreshold: count(opts.gatewayProbeFailures, '--gateway-probe-failures'),
            successThreshold: count(opts.gatewayProbeSuccesses, '--gateway-probe-successes'),
          }
        : undefined;
      const federation = opts.config !== undefined ? loadFederationFile(opts.config) : undefined;
      const safety = { allowExec: opts.allowKubeconfigExec ?? false, allowFiles: opts.allowKubeconfigFiles ?? false };
      const gatewaySelector = opts.drillGatewaySelector.trim();
      const selectorProblem = gatewaySelectorProblem(gatewaySelector);
      if (selectorProblem !== undefined) throw new UsageError(`--drill-gateway-selector ${selectorProblem}`);
      if (opts.apiIdentities !== undefined && opts.apiTls !== true) throw new UsageError('--api-identities maps client certificates to roles: it needs --api-tls');
      if (opts.workloads === true && !federation) throw new UsageError('--workloads runs the static clusters of a federation file: give --config FILE');
      if (opts.remoteWorkloads === true && !federation) throw new UsageError('--remote-workloads probes the static clusters of a federation file: give --config FILE');
      const runWorkloads = federation !== undefined && (opts.workloads ?? opts.demo ?? false);
      const remoteWorkloads = federation !== undefined && opts.remoteWorkloads === true;
      // the demo workloads serve mTLS only: proxyless clients must be told to use it
      const proxylessMtls = opts.proxylessMtls ?? (runWorkloads || remoteWorkloads ? DEFAULT_CERTIFICATE_PROVIDER : undefined);
      // every input is checked before anything is created: a bad file or a damaged state dir changes nothing
      if (federation) checkFederationKubeconfigs(federation, safety);
      const store = openRegistrations(stateDir);
      const virtualDestinations = VirtualDestinations.open(stateDir, federation?.virtualDestinations);
      const vips = new VipAllocator({ stateDir });

      const trustDomain = opts.trustDomain ?? federation?.trustDomain ?? (opts.demo ? 'meshfed.local' : undefined);
      const trustDomainFrom = opts.trustDomain ? '--trust-domain' : federation?.trustDomain ? federation.path : '--demo';
      // explicit --cluster: each must get an intermediate; otherwise the demo's and the federation file's clusters should
      const explicit = opts.cluster.length > 0;
      const clusters = explicit ? opts.cluster : [...new Set([...(opts.demo ? DEMO_CLUSTERS : []), ...(federation?.clusters.map((c) => c.cluster.name) ?? [])])];
      const kube = await kubernetesMode(opts, trustDomain, clusters, syncEvery, log);
      const authority = kube ? kube.authority : openAuthority(dir, trustDomain, trustDomainFrom, log);
      const apiIdentities = opts.apiIdentities !== undefined ? loadApiIdentities(opts.apiIdentities, authority.trustDomain) : undefined;
      // in Kubernetes mode the leader issues the clusters' intermediates (kubernetesMode waits for them)
      for (const cluster of kube ? [] : clusters) {
        if (authority.intermediateCertificate(cluster)) continue;
        if (!explicit && authority.isOfflineRoot()) {
          log.warn({ cluster }, 'cluster has no intermediate and the root is offline: sign one with "meshfed ca csr" and "meshfed ca sign-intermediate"');
          continue;
        }
        authority.issueIntermediate(cluster);
        log.info({ cluster }, 'issued intermediate');
      }
      const serverCluster = opts.caServerCluster ?? clusters.find((c) => authority.intermediateCertificate(c)) ?? authority.clusters[0];
      if (!serverCluster) throw new UsageError('no cluster has an intermediate yet: give --cluster NAME');

      const apiTls = opts.apiTls === true ? apiTlsFromAuthority(authority, serverCluster, apiIdentities ?? new Map()) : undefined;
      const token = loadOrCreateApiToken(stateDir);
      const drills = new DrillRunner(log);
      const metrics = new PromRegistry();
      collectDefaultMetrics({ register: metrics });
      const service: CaServiceHandle = await startCaService({ authority, host: listen.host, port: listen.port, serverCluster, logger: log, metrics: registerTrustMetrics(authority, metrics) });
      const unsubscribeTrust = kube?.onTrustChange(() => {
        service.refresh();
      });
      let manager: Manager;
      try {
        manager = await startManager({
          drills,
          trust: authority,
          stateDir,
          token: token.token,
          ...(apiTls ? { apiTls } : {}),
          logger: log,
          api: apiListen,
          ...(federation ? { federation } : {}),
          graceMs,
          ...safety,
          metrics,
          store,
          virtualDestinations,
          vips,
          ...(kube ? { trustWriter: kube.trust, storeNotSynced: () => kube.notSynced() } : {}),
          xds: { ...xdsListen, trustDomain: authority.trustDomain, ...(proxylessMtls !== undefined ? { proxylessMtls } : {}) },
        });
      } catch (error) {
        await Promise.allSettled([service.close(), kube?.close()]);
        // a token generated for a start that failed was never shown: the next start makes and shows a new one
        if (token.from === 'generated' && token.path) rmSync(token.path, { force: true });
        throw error;
      }
      let gateways: EmbeddedGateway[] = [];
      if (opts.gateways && manager.xds && federation) {
        try {
          gateways = await startEmbeddedGateways(
            federation.clusters.map((c) => c.cluster),
            manager.xds.provider,
            log,
            metrics,
          );
        } catch (error) {
          await Promise.allSettled([manager.close(), service.close()]);
          throw error;
        }
      }
      let dns: DnsServer;
      const zone = new StaticZoneSource(dnsNames(virtualDestinations.list()));
      const unsubscribeZone = virtualDestinations.subscribe(() => {
        zone.set(dnsNames(virtualDestinations.list()));
      });
      try {
        dns = await startDnsServer({
          source: zone,
          allocator: vips,
          addresses: [dnsListen.host],
          port: dnsListen.port,
          registry: metrics,
          logger: log,
        });
      } catch (error) {
        unsubscribeZone();
        await closeEmbeddedGateways(gateways);
        await Promise.allSettled([manager.close(), service.close()]);
        throw error;
      }
      let workloads: EmbeddedFederation | undefined;
      if (runWorkloads) {
        try {
          workloads = await startEmbeddedFederation({
            clusters: federation.clusters,
            sources: manager.staticSources,
            authority,
            dir: join(stateDir, 'sim'),
            probe: { periodMs: probePeriodMs },
            ...(manager.xds ? { xds: { host: xdsListen.host, port: manager.xds.server.port } } : {}),
            ...(proxylessMtls !== undefined ? { certificateProvider: proxylessMtls } : {}),
            logger: log,
          });
        } catch (error) {
          unsubscribeZone();
          await closeEmbeddedGateways(gateways);
          await Promise.allSettled([manager.close(), service.close(), dns.close()]);
          throw new Error(`${(error as Error).message} (another process on that address? serve --no-workloads runs without them)`, { cause: error });
        }
        const registry = manager.registry;
        const kubeFaults = kubernetesFaults({ clusters: () => [...registry.snapshot().clusters.values()].map((view) => view.cluster), safety, gatewaySelector, logger: log });
        drills.attach(
          withKubernetesFaults(
            embeddedWorld({
              registry: manager.registry,
              provider: manager.xds?.provider,
              staticSources: manager.staticSources,
              virtualDestinations: manager.virtualDestinations,
              gateways,
              federation: workloads,
              ...(manager.xds ? { xds: { host: xdsListen.host, port: manager.xds.server.port } } : {}),
              dns: { host: dnsListen.host, port: dns.port },
              logger: log,
            }),
            kubeFaults,
          ),
        );
      }
      const remote: RemoteReadiness | undefined = remoteWorkloads
        ? startRemoteReadiness({
            clusters: federation.clusters,
            sources: manager.staticSources,
            authority,
            probes: (address) => !isLoopback(address),
            probe: { periodMs: probePeriodMs },
            logger: log,
          })
        : undefined;
      const prober = gatewayProbe ? new GatewayProber(manager.registry, { ...gatewayProbe, logger: log, metrics }) : undefined;
      prober?.start();
      // Kubernetes mode keeps the CA current from its Secret itself (store/kubernetes/mode.ts)
      const sync = kube ? undefined : setInterval(() => {
        try {
          if (authority.reload()) log.info({ stateDir: dir, bundleSequence: authority.bundleSequence }, 'picked up changes to the state dir');
          const { renewed, needsOfflineRoot } = authority.renewDue();
          if (renewed.length) log.info({ clusters: renewed }, 'renewed intermediates');
          if (needsOfflineRoot.length) log.warn({ clusters: needsOfflineRoot }, 'intermediates due for renewal, but the root is offline');
          service.refresh();
        } catch (error) {
          log.error({ err: { message: (error as Error).message } }, 'state dir sync or intermediate renewal failed');
        }
      }, syncEvery);

      const lines = [
        '',
        'meshfed serve',
        `  trust domain   ${authority.trustDomain} (state in ${stateDir})`,
        `  roots          ${authority.roots().length}, active ${authority.activeRootId.slice(0, 16)}…`,
        `  intermediates  ${authority.intermediates().map((i) => `${i.cluster} (until ${i.notAfter?.slice(0, 10) ?? '-'})`).join(', ') || 'none'}`,
        `  CA service     ${listen.host}:${service.port} istio.v1.auth.IstioCertificateService/CreateCertificate (TLS; mTLS SVID or bearer token)`,
      ];
      if (kube) lines.push(`  Kubernetes     namespace ${kube.namespace}: CA in Secret ${opts.caSecret}, replica ${kube.identity}, leader ${kube.leader() ?? 'none yet'} (Lease ${opts.leaseName})`);
      if (opts.demo) {
        const [a, b] = [DEMO_CLUSTERS[0] ?? 'east-1', DEMO_CLUSTERS[2] ?? 'west-1'];
        const report = await crossClusterHandshake(authority, a, b);
        lines.push(`  live check     mTLS handshake ${b} → ${a} on loopback: ${b} saw ${report.client.sawPeer}, ${a} saw ${report.server.sawPeer}`);
      }
      await settle(manager);
      lines.push(...clusterLines(manager, federation, workloads?.clusters ?? []));
      if (manager.xds) {
        lines.push(`  xDS            ${xdsListen.host}:${manager.xds.server.port} ADS, state of the world and delta: split-horizon endpoints for proxyless gRPC, Envoy sidecars and east-west gateways`);
      }
      if (gateways.length > 0) {
        lines.push(`  gateways       ${gateways.map((g) => `${g.cluster} ${g.handle.host}:${String(g.handle.port)}`).join(', ')} (built in: TLS passthrough by SNI, routes from xDS)`);
      }
      if (prober) {
        const { periodMs, timeoutMs, failureThreshold, successThreshold } = prober.settings;
        lines.push(`  gateway probes every ${String(periodMs / 1000)} s (timeout ${String(timeoutMs / 1000)} s): down after ${String(failureThreshold)} failures, up after ${String(successThreshold)} success${successThreshold === 1 ? '' : 'es'}; endpoints behind a gateway found down are withheld from other networks`);
      }
      if (workloads) lines.push(...workloads.summary(shown));
      if (remote) {
        lines.push(`  remote workloads ${String(remote.workloads)} in ${remote.clusters.join(', ') || 'no cluster'} (run elsewhere): readiness probed from here every ${String(remote.probe.periodMs / 1000)} s`);
        for (const { cluster, reason } of remote.skipped) lines.push(`  remote workloads none probed in ${cluster}: ${reason}`);
      }
      const vdNames = virtualDestinations.list().map((vd) => vd.spec.hostname);
      lines.push(
        `  DNS            ${dnsListen.host}:${String(dns.port)} (UDP and TCP): ${vdNames.length ? vdNames.join(', ') : 'no virtual destination yet'}; virtual IPs from ${DEFAULT_IPV4_CIDR}, kept in the state dir`,
      );
      lines.push(`  API            ${manager.api.url} (REST /api/v1/clusters, /api/v1/virtualdestinations, /api/v1/drills, /api/v1/xds/dump and /api/v1/explain with a bearer token; /healthz, /readyz and /metrics are open)`);
      if (token.from === 'generated') {
        lines.push(`  API token      ${token.token}`, `                 generated now and stored in ${token.path ?? ''} (0600); it is not shown again`);
        // the token is on screen already: the link signs the browser in (the fragment never reaches the server)
        lines.push(`  dashboard      ${manager.api.url}/#token=${encodeURIComponent(token.token)}`);
      } else {
        lines.push(`  API token      ${token.from === 'env' ? `from ${API_TOKEN_ENV}` : `in ${token.path ?? ''}`}`);
        lines.push(`  dashboard      ${manager.api.url}/ (sign in with the API token: ${token.from === 'env' ? `the value of ${API_TOKEN_ENV}` : `cat ${shown(token.path ?? '')}`})`);
      }
      const serverFlag = manager.api.url === DEFAULT_SERVER ? '' : ` --server ${manager.api.url}`;
      lines.push(
        '',
        '  try:',
        ...(token.from === 'env' ? [] : [`    export ${API_TOKEN_ENV}=$(cat ${shown(token.path ?? '')})`]),
        `    npx meshfed cluster list${serverFlag}`,
        `    npx meshfed vd list${serverFlag}`,
        ...(manager.registry.list()[0] ? [`    npx meshfed cluster get ${manager.registry.list()[0]?.name ?? ''}${serverFlag} -o yaml`] : []),
        ...dumpHint(manager, serverFlag),
        ...(workloads ? [`    npx meshfed drill run scenarios/region-outage.yaml${serverFlag} --report drill-report`] : []),
        `    curl -s ${manager.api.url}/metrics | grep meshfed_cluster_state`,
        `    npx meshfed ca status --state-dir ${stateDir}`,
        `    npx meshfed ca bundle --state-dir ${stateDir} --format spiffe`,
        `    npx meshfed ca intermediate ${serverCluster} --state-dir ${stateDir} -o secret`,
        `    npx meshfed ca token --state-dir ${stateDir} --cluster ${serverCluster} --namespace default --service-account reviews`,
        '',
        '  Ctrl-C stops.',
        '',
      );
      // the signal handlers are in place before the summary says Ctrl-C stops
      const stopped = new Promise<void>((done) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'shutting down');
          clearInterval(sync);
          unsubscribeZone();
          unsubscribeTrust?.();
          const closing = drills.close().then(() => Promise.all([workloads?.close(), remote?.close(), prober?.stop()]));
          void Promise.allSettled([closing.then(() => closeEmbeddedGateways(gateways)).then(() => manager.close()), service.close(), dns.close(), kube?.close()]).then(() => {
            done();
          });
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      process.stdout.write(lines.join('\n'));
      await stopped;
    });
}
