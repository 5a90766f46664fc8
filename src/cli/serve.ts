import { resolve } from 'node:path';
import { Command } from 'commander';
import { parseDuration } from '../model/duration.js';
import { crossClusterHandshake } from '../sim/trust-demo.js';
import { TrustAuthority } from '../trust/authority.js';
import { startCaService } from '../trust/ca-service.js';
import { StateDir } from '../trust/state-dir.js';
import { caDir, DEFAULT_STATE_DIR } from './ca.js';
import { UsageError } from './errors.js';
import { createLogger } from './logger.js';

const DEMO_CLUSTERS = ['east-1', 'east-2', 'west-1'];

interface ServeOptions {
  stateDir?: string;
  trustDomain?: string;
  cluster: string[];
  caListen: string;
  caServerCluster?: string;
  syncEvery: string;
  demo?: boolean;
}

function hostPort(value: string): { host: string; port: number } {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const port = Number(match?.[3]);
  if (!match || port > 65535) throw new UsageError(`--ca-listen ${value}: expected HOST:PORT, e.g. 127.0.0.1:15012 or [::1]:15012`);
  return { host: match[1] ?? match[2] ?? '', port };
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

export function serveCommand(): Command {
  return new Command('serve')
    .description('run the manager: today the trust domain and its Istio-compatible CA service (registry, xDS, DNS, gateway and API are not built yet)')
    .option('--state-dir <dir>', `the manager's state: CA, registrations, API token (env MESHFED_STATE_DIR, default ${DEFAULT_STATE_DIR})`)
    .option('--trust-domain <domain>', 'create the trust domain in the state dir if it holds none')
    .option('--cluster <name>', 'make sure this cluster has an intermediate (repeatable)', collect, [])
    .option('--ca-listen <host:port>', 'where the CA gRPC service (istio.v1.auth.IstioCertificateService) listens', '127.0.0.1:15012')
    .option('--ca-server-cluster <name>', "the cluster whose intermediate signs the CA service's own certificate (default: the first cluster)")
    .option('--sync-every <duration>', 'how often to pick up changes other meshfed commands made to the state dir and renew due intermediates', '30s')
    .option('--demo', `the embedded demo: trust domain meshfed.local, clusters ${DEMO_CLUSTERS.join(', ')}, state in .meshfed/demo, and a live cross-cluster mTLS check`)
    .action(async (opts: ServeOptions) => {
      // the demo keeps the terminal for its summary; MESHFED_LOG_LEVEL=info shows the JSON log too
      const log = createLogger(process.env.MESHFED_LOG_LEVEL ?? (opts.demo ? 'warn' : 'info'));
      const stateDir = resolve(opts.stateDir ?? (opts.demo ? '.meshfed/demo' : (process.env.MESHFED_STATE_DIR ?? DEFAULT_STATE_DIR)));
      const dir = caDir(stateDir);
      const listen = hostPort(opts.caListen);
      const syncEvery = parseDuration(opts.syncEvery);
      const trustDomain = opts.trustDomain ?? (opts.demo ? 'meshfed.local' : undefined);
      let authority: TrustAuthority;
      if (StateDir.exists(dir)) {
        authority = TrustAuthority.open(dir);
        if (trustDomain && trustDomain !== authority.trustDomain) throw new UsageError(`${dir} holds trust domain ${authority.trustDomain}, not ${trustDomain}`);
      } else {
        if (!trustDomain) throw new UsageError(`${dir} holds no CA: run "meshfed ca init" or give --trust-domain`);
        authority = TrustAuthority.init(dir, { trustDomain }).authority;
        log.info({ trustDomain, stateDir: dir }, 'created trust domain');
      }
      const clusters = opts.cluster.length ? opts.cluster : opts.demo ? DEMO_CLUSTERS : [];
      for (const cluster of clusters) {
        if (!authority.intermediateCertificate(cluster)) {
          authority.issueIntermediate(cluster);
          log.info({ cluster }, 'issued intermediate');
        }
      }
      const serverCluster = opts.caServerCluster ?? clusters[0] ?? authority.clusters[0];
      if (!serverCluster) throw new UsageError('no cluster has an intermediate yet: give --cluster NAME');

      const service = await startCaService({ authority, host: listen.host, port: listen.port, serverCluster, logger: log });
      const sync = setInterval(() => {
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
      if (opts.demo) {
        const [a, b] = [DEMO_CLUSTERS[0] ?? 'east-1', DEMO_CLUSTERS[2] ?? 'west-1'];
        const report = await crossClusterHandshake(authority, a, b);
        lines.push(
          `  live check     mTLS handshake ${b} → ${a} on loopback: ${b} saw ${report.client.sawPeer}, ${a} saw ${report.server.sawPeer}`,
        );
      }
      lines.push(
        '',
        '  not built yet: cluster registry, xDS (split-horizon EDS), DNS, east-west gateway, REST API, drills',
        '',
        '  try:',
        `    npx meshfed ca status --state-dir ${stateDir}`,
        `    npx meshfed ca bundle --state-dir ${stateDir} --format spiffe`,
        `    npx meshfed ca intermediate ${serverCluster} --state-dir ${stateDir} -o secret`,
        `    npx meshfed ca token --state-dir ${stateDir} --cluster ${serverCluster} --namespace default --service-account reviews`,
        '',
        '  Ctrl-C stops.',
        '',
      );
      process.stdout.write(lines.join('\n'));

      await new Promise<void>((done) => {
        const stop = (signal: string): void => {
          log.info({ signal }, 'shutting down');
          clearInterval(sync);
          void service.close().then(done);
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
    });
}
