import { Command, Option } from 'commander';
import { Registry as PromRegistry, collectDefaultMetrics } from 'prom-client';
import { clusterNameSchema, networkNameSchema } from '../model/names.js';
import { parseDuration } from '../model/duration.js';
import { startGatewayAdmin } from '../gateway/admin.js';
import { startGateway, type Balance } from '../gateway/gateway.js';
import { GatewayMetrics } from '../gateway/metrics.js';
import { adsRouteSource, gatewayNode } from '../gateway/route-sources.js';
import { UsageError } from './errors.js';
import { hostPort } from './host-port.js';
import { createLogger } from './logger.js';

interface GatewayCliOptions {
  cluster: string;
  network: string;
  xds: string;
  listen: string;
  admin: string;
  id?: string;
  balance: Balance;
  maxConnections: string;
  helloTimeout: string;
  connectTimeout: string;
  idleTimeout: string;
  drain: string;
}

function positiveInteger(value: string, option: string): number {
  const n = Number(value);
  if (!Number.isInteger(n) || n < 1) throw new UsageError(`${option} ${value}: expected a positive integer`);
  return n;
}

export function gatewayCommand(): Command {
  return new Command('gateway')
    .description("run an east-west gateway for one cluster: TLS passthrough by SNI to that cluster's own endpoints, routes from meshfed's xDS server")
    .requiredOption('--cluster <name>', 'the cluster this gateway belongs to (its only targets are that cluster\'s endpoints)')
    .requiredOption('--network <network>', "the cluster's network")
    .option('--xds <host:port>', "meshfed's xDS server", '127.0.0.1:15010')
    .option('--listen <host:port>', 'where to accept connections', '0.0.0.0:15443')
    .option('--admin <host:port>', 'health, readiness and metrics (/healthz, /readyz, /metrics)', '127.0.0.1:15021')
    .option('--id <id>', 'the xDS node id (default: router~meshfed-gateway~CLUSTER)')
    .addOption(new Option('--balance <policy>', 'how endpoints are picked').choices(['round-robin', 'least-connections']).default('round-robin'))
    .option('--max-connections <n>', 'client connections at once; more are refused', '10000')
    .option('--hello-timeout <duration>', 'how long a client may take to send its ClientHello', '10s')
    .option('--connect-timeout <duration>', 'per endpoint tried', '5s')
    .option('--idle-timeout <duration>', 'a connection with no bytes either way for this long is closed', '1h')
    .option('--drain <duration>', 'on SIGTERM/SIGINT: how long connections in flight may take to finish', '30s')
    .action(async (opts: GatewayCliOptions) => {
      const log = createLogger(process.env.MESHFED_LOG_LEVEL ?? 'info');
      const cluster = clusterNameSchema.parse(opts.cluster);
      const network = networkNameSchema.parse(opts.network);
      const listen = hostPort(opts.listen, '--listen', '15443');
      const admin = hostPort(opts.admin, '--admin', '15021');
      hostPort(opts.xds, '--xds', '15010');
      const drainMs = parseDuration(opts.drain);
      const registry = new PromRegistry();
      collectDefaultMetrics({ register: registry });
      const routes = adsRouteSource({ target: opts.xds, node: gatewayNode(opts.id ?? `meshfed-gateway~${cluster}`, cluster, network), logger: log });
      const gateway = await startGateway({
        host: listen.host,
        port: listen.port,
        routes,
        logger: log,
        metrics: new GatewayMetrics(registry),
        balance: opts.balance,
        maxConnections: positiveInteger(opts.maxConnections, '--max-connections'),
        helloTimeoutMs: parseDuration(opts.helloTimeout),
        connectTimeoutMs: parseDuration(opts.connectTimeout),
        idleTimeoutMs: parseDuration(opts.idleTimeout),
      });
      const adminServer = await startGatewayAdmin({ ...admin, gateway, routes, metrics: registry });
      // the signal handlers are in place before the line that says the gateway is ready
      const stopped = new Promise<void>((done) => {
        const stop = (signal: string): void => {
          log.info({ signal, connections: gateway.connections(), drainMs }, 'gateway draining');
          void gateway.drain(drainMs).then(async () => {
            routes.close();
            await adminServer.close();
            log.info({}, 'gateway stopped');
            done();
          });
        };
        process.once('SIGINT', stop);
        process.once('SIGTERM', stop);
      });
      log.info({ cluster, network, listen: `${listen.host}:${String(gateway.port)}`, admin: `${admin.host}:${String(adminServer.port)}`, xds: opts.xds }, 'gateway ready');
      await stopped;
    });
}
