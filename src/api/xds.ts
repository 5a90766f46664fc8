/**
 * GET /api/v1/xds/dump?cluster=C[&network=N][&locality=REGION/ZONE/SUBZONE][&kind=proxyless|sidecar|gateway]:
 * what such a proxy would get from the xDS server, decoded (src/xds/dump.ts).
 */
import { Router } from 'express';
import type { ResourceProvider } from '../xds/ads-server.js';
import { dumpRequestSchema, xdsDump } from '../xds/dump.js';
import { ApiError, invalid } from './errors.js';

const QUERY_KEYS = new Set(['kind', 'cluster', 'network', 'locality']);

const single = (value: unknown, key: string): string | undefined => {
  if (value === undefined) return undefined;
  if (typeof value !== 'string') throw new ApiError(400, 'invalid', `${key} must be given once, as text`, key);
  return value;
};

export function xdsRouter(provider: ResourceProvider): Router {
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
  return router;
}
