import { isIP } from 'node:net';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { formatLocality } from '../model/locality.js';
import { ApiCallError, call, connection, readLimited, withServerOptions } from './api-client.js';
import { UsageError } from './errors.js';
import { dataFormat, print, table } from './output.js';

const gatewayView = z.looseObject({ address: z.string(), port: z.number(), locality: z.looseObject({ region: z.string().optional(), zone: z.string().optional(), subzone: z.string().optional() }).optional() });

const clusterView = z.looseObject({
  name: z.string(),
  network: z.string(),
  region: z.string(),
  zone: z.string(),
  source: z.string(),
  origin: z.string().optional(),
  context: z.string().optional(),
  registeredAt: z.string().optional(),
  gateways: z.array(gatewayView),
  gatewaysFrom: z.string(),
  state: z.string(),
  reason: z.string().optional(),
  since: z.string(),
  lastSync: z.string().optional(),
  services: z.number(),
  endpoints: z.number(),
  watchRestarts: z.number(),
  events: z.number().optional(),
  eventsPerSecond: z.number(),
});
type ClusterView = z.infer<typeof clusterView>;

function parseCluster(data: unknown, what: string): ClusterView {
  const parsed = clusterView.safeParse(data);
  if (!parsed.success) throw new ApiCallError(`unexpected answer to ${what}: ${parsed.error.issues[0]?.message ?? 'not a cluster'}`);
  return parsed.data;
}

/** ADDR, ADDR:PORT, [IPv6] or [IPv6]:PORT */
export function parseGateway(value: string): { address: string; port?: number } {
  let address: string;
  let portText: string | undefined;
  const bracketed = /^\[([^\]]+)\](?::(\d+))?$/.exec(value);
  if (bracketed) [, address = '', portText] = bracketed;
  else if (isIP(value) === 6) address = value;
  else {
    const match = /^([^:]+)(?::(\d+))?$/.exec(value);
    if (!match) throw new UsageError(`--gateway ${value}: expected ADDRESS[:PORT], e.g. 203.0.113.10:15443 or [2001:db8::1]:15443`);
    [, address = '', portText] = match;
  }
  if (portText === undefined) return { address };
  const port = Number(portText);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new UsageError(`--gateway ${value}: the port must be 1-65535`);
  return { address, port };
}

const collect = (value: string, previous: string[]): string[] => [...previous, value];

const locality = (c: ClusterView): string => formatLocality({ region: c.region, zone: c.zone, subzone: '' }) || '-';
const gateways = (c: ClusterView): string => c.gateways.map((g) => `${g.address.includes(':') ? `[${g.address}]` : g.address}:${g.port}`).join(',') || '-';

function listText(clusters: ClusterView[]): string {
  if (clusters.length === 0) return 'no clusters: register one with "meshfed cluster register NAME --network NET --kubeconfig FILE"\n';
  return table(
    ['NAME', 'NETWORK', 'LOCALITY', 'SOURCE', 'STATE', 'SERVICES', 'ENDPOINTS', 'GATEWAYS', 'REASON'],
    clusters.map((c) => [c.name, c.network, locality(c), c.source, c.state, String(c.services), String(c.endpoints), gateways(c), c.reason ?? '']),
  );
}

function detailText(c: ClusterView): string {
  const rows: [string, string][] = [
    ['name', c.name],
    ['network', c.network],
    ['locality', locality(c)],
    ['source', `${c.source}${c.context ? ` (context ${c.context})` : ''}`],
    ['defined by', c.origin === 'file' ? 'the federation file' : c.origin === 'api' ? `registration${c.registeredAt ? ` at ${c.registeredAt}` : ''}` : '-'],
    ['state', `${c.state} since ${c.since}`],
    ...(c.reason ? ([['reason', c.reason]] as [string, string][]) : []),
    ['last sync', c.lastSync ?? 'never'],
    ['services', String(c.services)],
    ['endpoints', String(c.endpoints)],
    ['gateways', `${gateways(c)}${c.gatewaysFrom === 'registration' ? ' (configured)' : c.gatewaysFrom === 'discovery' ? ' (discovered in the cluster)' : ''}`],
    ['watch restarts', String(c.watchRestarts)],
    ['events', `${c.events !== undefined ? `${c.events} received, ` : ''}${c.eventsPerSecond}/s over the last 10 s`],
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n') + '\n';
}

const outputOption = (): Option => new Option('-o, --output <format>', 'output format: text|json|yaml').default('text');

interface RegisterOptions {
  network: string;
  kubeconfig?: string;
  context?: string;
  remoteSecret?: string;
  region?: string;
  zone?: string;
  gateway: string[];
  output: string;
}

export function clusterCommand(): Command {
  const cluster = withServerOptions(new Command('cluster').description("register, list, inspect and remove the federation's clusters, through the manager's REST API"));

  cluster
    .command('register')
    .description('register a Kubernetes cluster: meshfed watches its Services, EndpointSlices, Pods and Nodes through its API server')
    .argument('<name>', 'the cluster name (a DNS-1123 label; for a remote secret, its data key)')
    .requiredOption('--network <network>', "the cluster's network (Istio's topology.istio.io/network)")
    .option('--kubeconfig <file>', 'a kubeconfig for the cluster (no exec plugins, credentials inline: kubectl config view --minify --flatten)')
    .option('--context <context>', 'the kubeconfig context to use (default: its current-context)')
    .option('--remote-secret <file>', 'an Istio remote secret instead of a kubeconfig (istioctl create-remote-secret)')
    .option('--region <region>', 'default region of its endpoints (default: from its Nodes)')
    .option('--zone <zone>', 'default zone of its endpoints')
    .option('--gateway <address:port>', 'an east-west gateway (repeatable; wins over the one discovered in the cluster; port default 15443)', collect, [])
    .addOption(outputOption())
    .action(async function (this: Command, name: string, opts: RegisterOptions) {
      const format = dataFormat(opts.output);
      if (opts.kubeconfig !== undefined && opts.remoteSecret !== undefined) throw new UsageError('give --kubeconfig or --remote-secret, not both');
      if (opts.kubeconfig === undefined && opts.remoteSecret === undefined) throw new UsageError('give --kubeconfig FILE or --remote-secret FILE: meshfed watches the cluster through its API server');
      const gatewayList = opts.gateway.map(parseGateway);
      const body = {
        name,
        network: opts.network,
        ...(opts.region !== undefined ? { region: opts.region } : {}),
        ...(opts.zone !== undefined ? { zone: opts.zone } : {}),
        ...(gatewayList.length ? { gateways: gatewayList } : {}),
        ...(opts.kubeconfig !== undefined ? { kubeconfig: readLimited(opts.kubeconfig, '--kubeconfig') } : {}),
        ...(opts.remoteSecret !== undefined ? { remoteSecret: readLimited(opts.remoteSecret, '--remote-secret') } : {}),
        ...(opts.context !== undefined ? { context: opts.context } : {}),
      };
      const { data } = await call(connection(this), 'POST', '/api/v1/clusters', body);
      const c = parseCluster(data, 'the registration');
      print(format, c, () => `registered cluster ${c.name} (network ${c.network}): ${c.state}${c.reason ? ` — ${c.reason}` : ''}\nfollow it with: meshfed cluster get ${c.name}\n`);
    });

  cluster
    .command('list')
    .description('every cluster: network, locality, state, services, endpoints, gateways')
    .addOption(outputOption())
    .action(async function (this: Command, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const { data } = await call(connection(this), 'GET', '/api/v1/clusters');
      const parsed = z.object({ clusters: z.array(clusterView) }).safeParse(data);
      if (!parsed.success) throw new ApiCallError('unexpected answer to the cluster list');
      print(format, parsed.data, () => listText(parsed.data.clusters));
    });

  cluster
    .command('get')
    .description("one cluster's status")
    .argument('<name>', 'the cluster name')
    .addOption(outputOption())
    .action(async function (this: Command, name: string, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const { data } = await call(connection(this), 'GET', `/api/v1/clusters/${encodeURIComponent(name)}`);
      const c = parseCluster(data, `get ${name}`);
      print(format, c, () => detailText(c));
    });

  cluster
    .command('remove')
    .description('stop watching a registered cluster and drop its registration; its endpoints leave the federation')
    .argument('<name>', 'the cluster name')
    .action(async function (this: Command, name: string) {
      await call(connection(this), 'DELETE', `/api/v1/clusters/${encodeURIComponent(name)}`);
      process.stdout.write(`removed cluster ${name}\n`);
    });

  return cluster;
}
