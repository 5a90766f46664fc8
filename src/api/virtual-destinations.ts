/**
 * /api/v1/virtualdestinations: list, read, create (POST), create or replace (PUT), delete. Bodies and answers are
 * VirtualDestination documents as the federation file has them (`apiVersion`, `kind`, `metadata.name`, `spec`), so
 * what GET returns can be applied again; answers add `status`: where the definition comes from, the VIPs, and where
 * the backends are (a VD whose backends select nothing is accepted and says it has no endpoints).
 * GET /api/v1/export/istio?cluster=C[&name=VD][&namespace=NS]: the ServiceEntry and DestinationRule per virtual
 * destination that give a stock Istio mesh in cluster C the same behaviour (src/xds/istio-export.ts), with warnings
 * for what Istio cannot express.
 */
import { Router, json, type Request } from 'express';
import { z } from 'zod';
import type { Vips } from '../dns/vip-allocator.js';
import { API_VERSION } from '../model/federation-file.js';
import { dnsLabelSchema } from '../model/names.js';
import { virtualDestinationSchema } from '../model/virtual-destination.js';
import type { Logger } from '../logging.js';
import type { FederatedSnapshot } from '../registry/snapshot.js';
import { VirtualDestinationConflictError, type KnownVirtualDestination, type VirtualDestinations } from '../store/virtual-destinations.js';
import { virtualDestinationBackends, type BackendCluster } from '../topology/index.js';
import { IstioExportError, istioExport } from '../xds/istio-export.js';
import { ApiError, invalid, sendError } from './errors.js';

export const virtualDestinationDocumentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION, { message: `must be ${API_VERSION}` }).optional(),
  kind: z.literal('VirtualDestination', { message: 'must be VirtualDestination' }).optional(),
  metadata: z.strictObject({ name: dnsLabelSchema, creationTimestamp: z.string().optional() }),
  spec: virtualDestinationSchema,
  /** what this API answered: ignored, so an answer can be sent back as it is */
  status: z.unknown().optional(),
});

export interface VirtualDestinationStatus {
  /** file: the federation file defines it (change it there); api: applied through the API */
  source: 'file' | 'api';
  /** what meshfed's DNS answers for the hostname */
  vips?: Vips;
  /** backend endpoints serving a VD port, over every cluster, and how many are healthy */
  endpoints: number;
  healthy: number;
  clusters: BackendCluster[];
  /** why it has no endpoints, when it has none */
  message?: string;
  /** when it was last applied through the API */
  updatedAt?: string;
}

export interface VirtualDestinationView {
  apiVersion: string;
  kind: 'VirtualDestination';
  metadata: { name: string; creationTimestamp?: string };
  spec: KnownVirtualDestination['spec'];
  status: VirtualDestinationStatus;
}

export interface VirtualDestinationsRouterOptions {
  virtualDestinations: VirtualDestinations;
  snapshot: () => FederatedSnapshot;
  vips?: (hostname: string) => Vips | undefined;
  logger: Logger;
  fileName?: string;
  bodyLimitBytes: number;
}

const EXPORT_KEYS = new Set(['cluster', 'name', 'namespace']);

const shortName = (name: string): string => name.slice(0, 63);

export function virtualDestinationsRouter(options: VirtualDestinationsRouterOptions): Router {
  const { virtualDestinations: vds, logger } = options;
  const router = Router();
  const body = json({ limit: options.bodyLimitBytes, strict: true });

  const view = (vd: KnownVirtualDestination): VirtualDestinationView => {
    const clusters = virtualDestinationBackends(options.snapshot(), vd.spec);
    const endpoints = clusters.reduce((sum, c) => sum + c.endpoints, 0);
    const vips = options.vips?.(vd.spec.hostname);
    return {
      apiVersion: API_VERSION,
      kind: 'VirtualDestination',
      metadata: { name: vd.name, ...(vd.createdAt !== undefined ? { creationTimestamp: vd.createdAt } : {}) },
      spec: vd.spec,
      status: {
        source: vd.source,
        ...(vips ? { vips } : {}),
        endpoints,
        healthy: clusters.reduce((sum, c) => sum + c.healthy, 0),
        clusters,
        ...(endpoints === 0 ? { message: 'no endpoints: the backends select no service with one of its target ports in any reachable cluster' } : {}),
        ...(vd.updatedAt !== undefined ? { updatedAt: vd.updatedAt } : {}),
      },
    };
  };

  const documentOf = (req: Request): z.infer<typeof virtualDestinationDocumentSchema> => {
    if (!req.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the virtual destination as JSON, with Content-Type: application/json');
    const parsed = virtualDestinationDocumentSchema.safeParse(req.body);
    if (!parsed.success) throw invalid(parsed.error);
    return parsed.data;
  };

  const apply = (doc: z.infer<typeof virtualDestinationDocumentSchema>, createOnly: boolean): 'created' | 'updated' | 'unchanged' => {
    const name = doc.metadata.name;
    if (createOnly && vds.get(name)?.source === 'api') throw new ApiError(409, 'conflict', `virtual destination ${name} already exists: PUT /api/v1/virtualdestinations/${name} replaces it`, 'metadata.name');
    try {
      const outcome = vds.apply({ name, spec: doc.spec });
      if (outcome !== 'unchanged') logger.info({ virtualDestination: name, hostname: doc.spec.hostname, outcome }, 'virtual destination applied through the API');
      return outcome;
    } catch (error) {
      if (error instanceof VirtualDestinationConflictError) throw new ApiError(409, 'conflict', error.message, error.field);
      throw error;
    }
  };

  router
    .route('/virtualdestinations')
    .get((_req, res) => {
      res.json({ virtualDestinations: vds.list().map(view) });
    })
    .post(body, (req, res) => {
      const doc = documentOf(req);
      apply(doc, true);
      const created = vds.get(doc.metadata.name);
      if (!created) throw new ApiError(500, 'internal', 'the virtual destination was not kept');
      res.status(201).location(`/api/v1/virtualdestinations/${doc.metadata.name}`).json(view(created));
    })
    .all((req, res) => {
      res.set('Allow', 'GET, POST');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/virtualdestinations: use GET or POST`));
    });

  router
    .route('/virtualdestinations/:name')
    .get((req, res) => {
      const vd = vds.get(req.params.name);
      if (!vd) throw new ApiError(404, 'not_found', `no virtual destination named ${shortName(req.params.name)}`);
      res.json(view(vd));
    })
    .put(body, (req, res) => {
      const doc = documentOf(req);
      if (doc.metadata.name !== req.params.name) throw new ApiError(400, 'invalid', `metadata.name ${doc.metadata.name} differs from the name in the path, ${shortName(req.params.name)}`, 'metadata.name');
      const outcome = apply(doc, false);
      const vd = vds.get(doc.metadata.name);
      if (!vd) throw new ApiError(500, 'internal', 'the virtual destination was not kept');
      res.status(outcome === 'created' ? 201 : 200).json(view(vd));
    })
    .delete((req, res) => {
      const name = req.params.name;
      let deleted: boolean;
      try {
        deleted = vds.delete(name);
      } catch (error) {
        if (error instanceof VirtualDestinationConflictError) throw new ApiError(409, 'conflict', `${error.message}${options.fileName ? ` (${options.fileName})` : ''}`, error.field);
        throw error;
      }
      if (!deleted) throw new ApiError(404, 'not_found', `no virtual destination named ${shortName(name)}`);
      logger.info({ virtualDestination: name }, 'virtual destination deleted through the API');
      res.status(204).end();
    })
    .all((req, res) => {
      res.set('Allow', 'GET, PUT, DELETE');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on a virtual destination: use GET, PUT or DELETE`));
    });

  // what `meshfed vd export` prints: the Istio resources that give a stock Istio mesh in `cluster` the same behaviour
  router.get('/export/istio', (req, res) => {
    const query = req.query as Record<string, unknown>;
    for (const key of Object.keys(query)) {
      if (!EXPORT_KEYS.has(key)) throw new ApiError(400, 'invalid', `unknown query parameter ${JSON.stringify(key.slice(0, 64))} (known: ${[...EXPORT_KEYS].join(', ')})`, key);
    }
    const text = (key: string): string | undefined => {
      const value = query[key];
      if (value !== undefined && typeof value !== 'string') throw new ApiError(400, 'invalid', `${key} must be given once, as text`, key);
      return value;
    };
    const cluster = text('cluster');
    if (cluster === undefined || cluster === '') throw new ApiError(400, 'invalid', 'give cluster=NAME: the cluster whose Istio mesh the resources are for', 'cluster');
    const name = text('name');
    const namespace = text('namespace');
    const selected = vds.list().filter((vd) => name === undefined || vd.name === name);
    if (name !== undefined && selected.length === 0) throw new ApiError(404, 'not_found', `no virtual destination named ${shortName(name)}`, 'name');
    try {
      res.json(
        istioExport({
          snapshot: options.snapshot(),
          virtualDestinations: selected,
          cluster,
          vips: (hostname) => options.vips?.(hostname),
          ...(namespace !== undefined ? { namespace } : {}),
        }),
      );
    } catch (error) {
      if (error instanceof IstioExportError && error.field !== 'vips') throw new ApiError(error.field === 'cluster' ? 404 : 400, error.field === 'cluster' ? 'not_found' : 'invalid', error.message, error.field);
      throw error;
    }
  });

  return router;
}
