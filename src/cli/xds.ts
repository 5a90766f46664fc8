import { Command, Option } from 'commander';
import { call, connection, withServerOptions } from './api-client.js';
import { dataFormat, print } from './output.js';

interface DumpOptions {
  nodeCluster: string;
  network?: string;
  locality?: string;
  kind: string;
  output: string;
}

export function xdsCommand(): Command {
  const xds = withServerOptions(new Command('xds').description("inspect what the manager's xDS server serves, through its REST API"));
  xds
    .command('dump')
    .description('what a proxy standing in that cluster, network and locality would get: listeners, routes, clusters, endpoints (decoded)')
    .requiredOption('--node-cluster <cluster>', "the proxy's cluster (node.metadata.CLUSTER_ID)")
    .option('--network <network>', "the proxy's network (node.metadata.NETWORK); without it the proxy sees every endpoint directly")
    .option('--locality <region/zone[/subzone]>', "the proxy's locality (node.locality)")
    .addOption(new Option('--kind <kind>', 'the kind of proxy').choices(['proxyless', 'sidecar', 'gateway']).default('proxyless'))
    .addOption(new Option('-o, --output <format>', 'json or yaml').default('json'))
    .action(async function (this: Command, opts: DumpOptions) {
      const format = dataFormat(opts.output, ['json', 'yaml']);
      const query = new URLSearchParams({ cluster: opts.nodeCluster, kind: opts.kind });
      if (opts.network !== undefined) query.set('network', opts.network);
      if (opts.locality !== undefined) query.set('locality', opts.locality);
      const { data } = await call(connection(this), 'GET', `/api/v1/xds/dump?${query.toString()}`);
      print(format, data, () => '');
    });
  return xds;
}
