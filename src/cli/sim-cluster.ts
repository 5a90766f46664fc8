/**
 * `meshfed sim-cluster NAME`: one static cluster of a federation file as a process of its own (say, in its own network
 * namespace): a real demo workload behind every endpoint of the cluster, whatever its address, with SVIDs issued
 * through the cluster's intermediate from the state dir, and the demo client's identity and gRPC xDS bootstrap. The
 * manager (`meshfed serve --remote-workloads`) probes the workloads' readiness; the cluster's east-west gateway is
 * `meshfed gateway`.
 */
import { resolve } from 'node:path';
import { Command } from 'commander';
import { parseDuration } from '../model/duration.js';
import { StaticSource } from '../registry/static-source.js';
import { startEmbeddedFederation } from '../sim/embedded-federation.js';
import { loadFederationFile } from '../store/federation.js';
import { StateDir } from '../trust/state-dir.js';
import { TrustAuthority } from '../trust/authority.js';
import { DEFAULT_CERTIFICATE_PROVIDER } from '../xds/resources/proxyless-tls.js';
import { caDir, DEFAULT_STATE_DIR } from './ca.js';
import { UsageError } from './errors.js';
import { hostPort } from './host-port.js';
import { createLogger } from './logger.js';

interface SimClusterOptions {
  config: string;
  stateDir?: string;
  dir?: string;
  xds: string;
  service: string[];
  certificateProvider: string;
  probePeriod: string;
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function simClusterCommand(): Command {
  return new Command('sim-cluster')
    .description("run one static cluster of a federation file in this process: a demo workload (gRPC echo + health, or HTTP; mTLS with its SVID) behind each of its endpoints, and its demo client's xDS bootstrap (for a cluster in its own network namespace; serve --remote-workloads probes them)")
    .argument('<cluster>', 'the static cluster to run')
    .requiredOption('--config <file>', 'the federation file that lists the cluster')
    .option('--state-dir <dir>', `the manager's state dir, whose CA issues the SVIDs (env MESHFED_STATE_DIR, default ${DEFAULT_STATE_DIR})`)
    .option('--dir <dir>', "where SVIDs and the demo client's bootstrap are written (default STATE_DIR/sim)")
    .option('--xds <host:port>', "meshfed's xDS server, named in the demo client's bootstrap", '127.0.0.1:15010')
    .option('--service <name>', "run only this service's workloads (repeatable; default: every service of the cluster)", collect, [])
    .option('--certificate-provider <instance>', "the certificate provider instance of the demo client's bootstrap (serve's --proxyless-mtls)", DEFAULT_CERTIFICATE_PROVIDER)
    .option('--probe-period <duration>', "how often the workloads' readiness is probed here (logged; the manager probes them on its own; e.g. 1s, 500ms)", '1s')
    .action(async (name: string, opts: SimClusterOptions) => {
      const log = createLogger(process.env.MESHFED_LOG_LEVEL ?? 'info');
      const stateDir = resolve(opts.stateDir ?? process.env.MESHFED_STATE_DIR ?? DEFAULT_STATE_DIR);
      const xds = hostPort(opts.xds, '--xds', '15010');
      const probePeriodMs = parseDuration(opts.probePeriod, { milliseconds: true });
      const federation = loadFederationFile(opts.config);
      const entry = federation.clusters.find((c) => c.cluster.name === name);
      if (!entry) throw new UsageError(`${opts.config} has no cluster ${JSON.stringify(name.slice(0, 100))} (it has ${federation.clusters.map((c) => c.cluster.name).join(', ') || 'none'})`);
      if (!entry.services) throw new UsageError(`cluster ${name} is a Kubernetes cluster: only a static cluster's workloads can be simulated`);
      const unknown = opts.service.filter((s) => !entry.services?.some((known) => known.name === s));
      if (unknown.length) throw new UsageError(`cluster ${name} has no service ${unknown.join(', ')}`);
      const services = opts.service.length ? entry.services.filter((s) => opts.service.includes(s.name)) : entry.services;
      if (!StateDir.exists(caDir(stateDir))) throw new UsageError(`${stateDir} holds no CA: start meshfed serve with it first, or run "meshfed ca init"`);
      const authority = TrustAuthority.open(caDir(stateDir));
      if (!authority.intermediateCertificate(name)) throw new UsageError(`cluster ${name} has no intermediate in ${stateDir}: meshfed serve --config issues one, or "meshfed ca intermediate ${name}"`);

      const dir = resolve(opts.dir ?? resolve(stateDir, 'sim'));
      const simulated = await startEmbeddedFederation({
        clusters: [{ cluster: entry.cluster, services }],
        sources: new Map([[name, new StaticSource(name, services)]]),
        authority,
        dir,
        probe: { periodMs: probePeriodMs },
        xds,
        certificateProvider: opts.certificateProvider,
        runsHere: () => true,
        logger: log,
      });
      const client = simulated.client(name);
      const lines = [
        '',
        `meshfed sim-cluster ${name} (network ${entry.cluster.network})`,
        ...simulated.workloads().map((w) => `  workload       ${w.id} on ${w.ports.map((p) => `${w.address}:${String(p.port)} (${p.protocol})`).join(', ')}${w.spiffeId ? ` as ${w.spiffeId}` : ''}`),
        ...(client?.bootstrap !== undefined ? [`  demo client    GRPC_XDS_BOOTSTRAP=${client.bootstrap} (${client.spiffeId}, xDS ${opts.xds})`] : []),
        '',
        '  Ctrl-C stops.',
        '',
      ];
      // the signal handlers are in place before the summary says Ctrl-C stops
      const stopped = new Promise<void>((done) => {
        const stop = (signal: string): void => {
          log.info({ signal, cluster: name }, 'shutting down');
          void simulated.close().then(done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      process.stdout.write(lines.join('\n'));
      await stopped;
    });
}
