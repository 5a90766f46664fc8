import { readFileSync } from 'node:fs';
import { Command, Option } from 'commander';
import { z } from 'zod';
import { FederationFileError, parseFederationFile } from '../model/federation-file.js';
import { ApiCallError, call, connection, readLimited, withServerOptions } from './api-client.js';
import { istioExportYaml } from '../xds/istio-export.js';
import { UsageError } from './errors.js';
import { dataFormat, print, table } from './output.js';

const MAX_STDIN_BYTES = 512 * 1024;

const exportView = z.object({ resources: z.array(z.looseObject({ apiVersion: z.string(), kind: z.string() })), warnings: z.array(z.string()) });

const backendClusterView = z.looseObject({ cluster: z.string(), services: z.array(z.string()), endpoints: z.number(), healthy: z.number() });

const portView = z.looseObject({ number: z.number(), protocol: z.string(), targetPort: z.number().optional(), name: z.string().optional() });

const vdView = z.looseObject({
  apiVersion: z.string(),
  kind: z.string(),
  metadata: z.looseObject({ name: z.string(), creationTimestamp: z.string().optional() }),
  spec: z.looseObject({
    hostname: z.string(),
    ports: z.array(portView),
    backends: z.array(z.record(z.string(), z.unknown())),
    failover: z.looseObject({ policy: z.string(), minHealthyPercent: z.number().optional() }),
  }),
  status: z.looseObject({
    source: z.string(),
    vips: z.looseObject({ ipv4: z.string().optional(), ipv6: z.string().optional() }).optional(),
    endpoints: z.number(),
    healthy: z.number(),
    clusters: z.array(backendClusterView),
    message: z.string().optional(),
    updatedAt: z.string().optional(),
  }),
});
type VdView = z.infer<typeof vdView>;

function parseVd(data: unknown, what: string): VdView {
  const parsed = vdView.safeParse(data);
  if (!parsed.success) throw new ApiCallError(`unexpected answer to ${what}: ${parsed.error.issues[0]?.message ?? 'not a virtual destination'}`);
  return parsed.data;
}

const ports = (vd: VdView): string => vd.spec.ports.map((p) => `${String(p.number)}/${p.protocol}${p.targetPort !== undefined && p.targetPort !== p.number ? `→${String(p.targetPort)}` : ''}`).join(',');
const clustersOf = (vd: VdView): string => vd.status.clusters.map((c) => `${c.cluster} ${String(c.healthy)}/${String(c.endpoints)}`).join(', ') || '-';

function listText(vds: VdView[]): string {
  if (vds.length === 0) return 'no virtual destinations: apply one with "meshfed vd apply -f FILE" (see federation/README.md)\n';
  return table(
    ['NAME', 'HOSTNAME', 'PORTS', 'FAILOVER', 'VIP', 'HEALTHY', 'CLUSTERS', 'SOURCE'],
    vds.map((vd) => [vd.metadata.name, vd.spec.hostname, ports(vd), vd.spec.failover.policy, vd.status.vips?.ipv4 ?? '-', `${String(vd.status.healthy)}/${String(vd.status.endpoints)}`, clustersOf(vd), vd.status.source]),
  );
}

function detailText(vd: VdView): string {
  const rows: [string, string][] = [
    ['name', vd.metadata.name],
    ['hostname', vd.spec.hostname],
    ['ports', ports(vd)],
    ['failover', `${vd.spec.failover.policy}${vd.spec.failover.minHealthyPercent !== undefined ? `, spill below ${String(vd.spec.failover.minHealthyPercent)}% healthy` : ''}`],
    ['VIPs', [vd.status.vips?.ipv4, vd.status.vips?.ipv6].filter((v) => v !== undefined).join(', ') || '-'],
    ['defined by', vd.status.source === 'file' ? 'the federation file' : `the API${vd.status.updatedAt ? `, last applied ${vd.status.updatedAt}` : ''}`],
    ['endpoints', `${String(vd.status.healthy)} healthy of ${String(vd.status.endpoints)}${vd.status.message ? ` — ${vd.status.message}` : ''}`],
    ...vd.status.clusters.map((c): [string, string] => [`  ${c.cluster}`, `${String(c.healthy)}/${String(c.endpoints)} (${c.services.join(', ')})`]),
  ];
  const width = Math.max(...rows.map(([k]) => k.length));
  return rows.map(([k, v]) => `${`${k}:`.padEnd(width + 2)}${v}`).join('\n') + '\n' + `why traffic goes where: meshfed explain --from CLUSTER ${vd.spec.hostname}\n`;
}

const outputOption = (): Option => new Option('-o, --output <format>', 'output format: text|json|yaml').default('text');

function readInput(file: string): string {
  if (file !== '-') return readLimited(file, '-f');
  const text = readFileSync(0, 'utf8');
  if (Buffer.byteLength(text) > MAX_STDIN_BYTES) throw new UsageError(`-f -: standard input is larger than ${MAX_STDIN_BYTES} bytes`);
  return text;
}

export function vdCommand(): Command {
  const vd = withServerOptions(new Command('vd').description("apply, list, inspect and delete virtual destinations (global hostnames with failover), through the manager's REST API"));

  vd.command('apply')
    .description('create or replace the VirtualDestination documents of a YAML file (the federation file format; see federation/README.md)')
    .requiredOption('-f, --filename <file>', 'a YAML file of VirtualDestination documents; - reads standard input')
    .action(async function (this: Command, opts: { filename: string }) {
      let parsed;
      try {
        parsed = parseFederationFile(readInput(opts.filename), opts.filename === '-' ? 'standard input' : opts.filename);
      } catch (error) {
        if (error instanceof FederationFileError) throw new UsageError(error.message);
        throw error;
      }
      if (parsed.clusters.length > 0 || parsed.name !== undefined) {
        throw new UsageError(`${opts.filename}: vd apply takes VirtualDestination documents only (clusters are registered with "meshfed cluster register" or defined in the federation file given to serve)`);
      }
      if (parsed.virtualDestinations.length === 0) throw new UsageError(`${opts.filename}: no VirtualDestination document`);
      const conn = connection(this);
      for (const { name, spec } of parsed.virtualDestinations) {
        const { status } = await call(conn, 'PUT', `/api/v1/virtualdestinations/${encodeURIComponent(name)}`, { apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestination', metadata: { name }, spec });
        process.stdout.write(`virtualdestination/${name} ${status === 201 ? 'created' : 'configured'}\n`);
      }
    });

  vd.command('list')
    .description('every virtual destination: hostname, ports, failover, VIP, healthy endpoints per cluster')
    .addOption(outputOption())
    .action(async function (this: Command, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const { data } = await call(connection(this), 'GET', '/api/v1/virtualdestinations');
      const parsed = z.object({ virtualDestinations: z.array(vdView) }).safeParse(data);
      if (!parsed.success) throw new ApiCallError('unexpected answer to the virtual destination list');
      print(format, parsed.data, () => listText(parsed.data.virtualDestinations));
    });

  vd.command('get')
    .description('one virtual destination, with where its backends are (-o yaml gives a document vd apply takes)')
    .argument('<name>', 'its name (metadata.name)')
    .addOption(outputOption())
    .action(async function (this: Command, name: string, opts: { output: string }) {
      const format = dataFormat(opts.output);
      const { data } = await call(connection(this), 'GET', `/api/v1/virtualdestinations/${encodeURIComponent(name)}`);
      const one = parseVd(data, `get ${name}`);
      print(format, one, () => detailText(one));
    });

  vd.command('delete')
    .description('delete a virtual destination applied through the API; its hostname leaves xDS and DNS')
    .argument('<name>', 'its name')
    .action(async function (this: Command, name: string) {
      await call(connection(this), 'DELETE', `/api/v1/virtualdestinations/${encodeURIComponent(name)}`);
      process.stdout.write(`virtualdestination/${name} deleted\n`);
    });

  vd.command('export')
    .description("the Istio ServiceEntry and DestinationRule per virtual destination that give a stock Istio mesh in CLUSTER the same behaviour (YAML for kubectl apply -f -; what Istio cannot express is said on standard error)")
    .requiredOption('--cluster <cluster>', 'the cluster whose Istio sidecars the resources are for')
    .option('--name <name>', 'only this virtual destination')
    .option('--namespace <namespace>', 'the namespace of the resources (default istio-system)')
    .addOption(new Option('-o, --output <format>', 'output format: yaml|json').default('yaml'))
    .action(async function (this: Command, opts: { cluster: string; name?: string; namespace?: string; output: string }) {
      const format = dataFormat(opts.output, ['yaml', 'json']);
      const query = new URLSearchParams({ cluster: opts.cluster, ...(opts.name !== undefined ? { name: opts.name } : {}), ...(opts.namespace !== undefined ? { namespace: opts.namespace } : {}) });
      const { data } = await call(connection(this), 'GET', `/api/v1/export/istio?${query.toString()}`);
      const parsed = exportView.safeParse(data);
      if (!parsed.success) throw new ApiCallError('unexpected answer to the Istio export');
      for (const warning of parsed.data.warnings) process.stderr.write(`warning: ${warning}\n`);
      if (format === 'json') process.stdout.write(JSON.stringify(parsed.data.resources, null, 2) + '\n');
      else process.stdout.write(istioExportYaml(parsed.data.resources));
    });

  return vd;
}
