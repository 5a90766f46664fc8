import { Command, Option } from 'commander';
import { z } from 'zod';
import { ApiCallError, call, connection, withServerOptions } from './api-client.js';
import { dataFormat, print, table } from './output.js';

const explanationView = z.looseObject({
  from: z.looseObject({ cluster: z.string(), network: z.string(), locality: z.string() }),
  kind: z.string(),
  name: z.string(),
  host: z.string(),
  port: z.number(),
  groups: z.array(
    z.looseObject({
      priority: z.number(),
      locality: z.string(),
      weight: z.number(),
      reason: z.string(),
      endpoints: z.array(z.looseObject({ address: z.string(), port: z.number(), weight: z.number(), health: z.string(), via: z.string() })),
    }),
  ),
});
type ExplanationView = z.infer<typeof explanationView>;

function text(e: ExplanationView): string {
  const where = `${e.from.cluster} (network ${e.from.network}${e.from.locality ? `, ${e.from.locality}` : ''})`;
  const head = `${e.host}:${String(e.port)} (${e.kind === 'virtual-destination' ? 'virtual destination' : 'service'} ${e.name}) as a client in ${where} sees it:\n`;
  if (e.groups.length === 0) return `${head}  no endpoints\n`;
  const rows = e.groups.flatMap((g) =>
    g.endpoints.map((ep) => [String(g.priority), g.locality || '-', String(g.weight), g.reason, `${ep.address.includes(':') ? `[${ep.address}]` : ep.address}:${String(ep.port)}`, String(ep.weight), ep.health, ep.via]),
  );
  return head + table(['PRIORITY', 'LOCALITY', 'GROUP WEIGHT', 'WHY THERE', 'ENDPOINT', 'WEIGHT', 'HEALTH', 'VIA'], rows);
}

export function explainCommand(): Command {
  return withServerOptions(
    new Command('explain')
      .description('why traffic goes where it goes: every endpoint a client in that cluster sees for HOST, its priority, weight, health, direct or behind which gateway, and the rule that put it there')
      .requiredOption('--from <cluster[/region[/zone]]>', "where the client stands (default locality: the cluster's)")
      .argument('<host[:port]>', 'a service (NAME.NAMESPACE.svc.cluster.local) or a virtual destination hostname; the port may be left out when it has one')
      .addOption(new Option('-o, --output <format>', 'text, json or yaml').default('text')),
  ).action(async function (this: Command, host: string, opts: { from: string; output: string }) {
    const format = dataFormat(opts.output);
    const query = new URLSearchParams({ from: opts.from, host });
    const { data } = await call(connection(this), 'GET', `/api/v1/explain?${query.toString()}`);
    const parsed = explanationView.safeParse(data);
    if (!parsed.success) throw new ApiCallError('unexpected answer to explain');
    print(format, data, () => text(parsed.data));
  });
}
