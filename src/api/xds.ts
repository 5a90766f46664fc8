/**
 * GET /api/v1/xds/dump?cluster=C[&network=N][&locality=REGION/ZONE/SUBZONE][&kind=proxyless|sidecar|gateway]:
 * what such a proxy would get from the xDS server, decoded (src/xds/dump.ts).
 * GET /api/v1/explain?from=CLUSTER[/REGION[/ZONE]]&host=HOST[:PORT]: every endpoint a client standing there sees for
 * HOST, its priority, weight, health, whether it is direct or behind which gateway, and the rule that put it there
 * (FederationXds.explain: the functions its EDS is built from).
 */
import { Router } from 'express';
import { formatLocality } from '../model/locality.js';
import type { FederationXds } from '../xds/federation-provider.js';
import { dumpRequestSchema, xdsDump } from '../xds/dump.js';
import { ApiError, invalid } from './errors.js';

const QUERY_KEYS = new Set(['kind', 'cluster', 'network', 'locality']);

const single = (value: unknown, key: string): string | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ApiError(400, 'invalid', `${key} must be given once, as text`, key);
  return value;
};

export function xdsRouter(provider: FederationXds): Router {
  const router = Router();
  router.get('/xds/dump', (req, res) => {
    const query = req.query as Record<string, unknown>;
    for (const key of Object.keys(query)) {
      if (!QUERY_KEYS.has(key)) throw new ApiError(400, 'invalid', `unknown query parameter ${JSON.stringify(key.slice(0, 64))} (known: ${[...QUERY_KEYS].join(', ')})`, key);
    }
    const locality = single(query.locality, 'locality') ?? '';
    const parts = locality.split('/');
    if (parts.length > 3) throw new ApiError(400, 'invalid', 'locality is REGION[/ZONE[/SUBZONE]]', 'locality');
    const parsed = dumpRequestSchema.safeParse({
      kind: single(query.kind, 'kind'),
      cluster: single(query.cluster, 'cluster'),
      network: single(query.network, 'network'),
      region: parts[0] ?? '',
      zone: parts[1] ?? '',
      subzone: parts[2] ?? '',
    });
    if (!parsed.success) throw invalid(parsed.error);
    res.json(xdsDump(provider, parsed.data));
  });
  router.get('/explain', (req, res) => {
    const query = req.query as Record<string, unknown>;
    for (const key of Object.keys(query)) {
      if (key !== 'from' && key !== 'host') throw new ApiError(400, 'invalid', `unknown query parameter ${JSON.stringify(key.slice(0, 64))} (known: from, host)`, key);
    }
    const from = single(query.from, 'from') ?? '';
    const target = single(query.host, 'host') ?? '';
    const [clusterName = '', region, zone, subzone] = from.split('/');
    const cluster = provider.snapshot().clusters.get(clusterName);
    if (!cluster) throw new ApiError(404, 'not_found', `no cluster ${JSON.stringify(clusterName.slice(0, 64))}: give from=CLUSTER[/REGION[/ZONE]]`, 'from');
    const hostPort = /^(.+?)(?::(\d{1,5}))?$/.exec(target);
    const host = hostPort?.[1] ?? '';
    const port = hostPort?.[2] === undefined ? undefined : Number(hostPort[2]);
    const node = {
      id: `explain~${clusterName}`,
      cluster: clusterName,
      network: cluster.cluster.network,
      locality: { region: region ?? cluster.cluster.region, zone: zone ?? (region === undefined ? cluster.cluster.zone : ''), subzone: subzone ?? '' },
    };
    const explanation = provider.explain(node, host, port);
    if (!explanation) throw new ApiError(404, 'not_found', `${JSON.stringify(target.slice(0, 253))} names no service or virtual destination (with that port)`, 'host');
    const { assignment, reasons, ...about } = explanation;
    res.json({
      from: { cluster: clusterName, network: node.network, locality: formatLocality(node.locality) },
      ...about,
      groups: assignment.groups.map((g, i) => ({
        priority: g.priority,
        locality: formatLocality(g.locality),
        weight: g.weight,
        reason: reasons[i],
        endpoints: g.endpoints.map((e) => ({
          address: e.address,
          port: e.port,
          weight: e.weight,
          health: e.health,
          via: e.via.kind === 'direct' ? 'direct' : `gateway of ${e.via.clusters.join(', ')} (${e.via.network}), standing for ${String(e.via.endpoints)} endpoints`,
        })),
      })),
      dropped: assignment.dropped,
    });
  });
  return router;
}
