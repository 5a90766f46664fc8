import { Router, json, type Request, type Response } from 'express';
import { z } from 'zod';
import { clusterSchema, gatewaySchema, type Cluster } from '../model/cluster.js';
import { clusterNameSchema, networkNameSchema } from '../model/names.js';
import type { Logger } from '../logging.js';
import type { ClusterStatus, Registry } from '../registry/registry.js';
import { KubeconfigError, loadSafeKubeconfig, parseRemoteSecret } from '../registry/kube/kubeconfig.js';
import type { KubeSourceOptions } from '../registry/kube/kube-source.js';
import { createSource } from '../registry/sources.js';
import type { Registration, RegistrationStore } from '../store/registrations.js';
import { ApiError, invalid, sendError } from './errors.js';

export const MAX_KUBECONFIG_BYTES = 256 * 1024;

/** POST /api/v1/clusters */
export const registerRequestSchema = z
  .strictObject({
    name: clusterNameSchema,
    network: networkNameSchema,
    region: z.string().max(128, 'must be at most 128 characters').optional(),
    zone: z.string().max(128, 'must be at most 128 characters').optional(),
    gateways: z.array(gatewaySchema).max(32, 'at most 32 gateways').optional(),
    /** a kubeconfig, as YAML text */
    kubeconfig: z.string().min(1, 'must not be empty').max(MAX_KUBECONFIG_BYTES, 'is larger than 256 KiB').optional(),
    /** the kubeconfig context to use (default: its current-context) */
    context: z.string().min(1).max(253).optional(),
    /** an Istio remote secret (a Secret labelled istio/multiCluster: "true"), as YAML or JSON text */
    remoteSecret: z.string().min(1, 'must not be empty').max(MAX_KUBECONFIG_BYTES, 'is larger than 256 KiB').optional(),
  })
  .superRefine((body, ctx) => {
    if (body.kubeconfig !== undefined && body.remoteSecret !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['remoteSecret'], message: 'give either kubeconfig or remoteSecret, not both' });
    } else if (body.kubeconfig === undefined && body.remoteSecret === undefined) {
      ctx.addIssue({ code: 'custom', path: ['kubeconfig'], message: 'a cluster is registered with a kubeconfig or an Istio remote secret (remoteSecret): give one' });
    }
  });
export type RegisterRequest = z.infer<typeof registerRequestSchema>;

/** A cluster as the API shows it: live status and where its definition comes from; never its kubeconfig. */
export interface ClusterInfo extends ClusterStatus {
  /** api: registered through the API (persisted in the state dir); file: defined in the federation file */
  origin: 'api' | 'file';
  registeredAt?: string;
  context?: string;
}

export interface ClustersRouterOptions {
  registry: Registry;
  store: RegistrationStore;
  logger: Logger;
  /** names of the clusters the federation file defines (the file wins over a registration of the same name) */
  fileClusters?: ReadonlySet<string>;
  /** where the federation file is, for error messages */
  fileName?: string;
  allowExec?: boolean;
  allowFiles?: boolean;
  kube?: KubeSourceOptions;
  bodyLimitBytes: number;
}

/** The first line of an error message: parsers put excerpts of their input after it, and input here holds credentials. */
const firstLine = (error: unknown): string => ((error instanceof Error ? error.message : String(error)).split('\n')[0] ?? '').slice(0, 500);

/**
 * The field a KubeconfigError names: its message starts with the path inside the document
 * (`users[0].user.exec: exec credential plugins are not allowed…`), which becomes `kubeconfig.users[0].user.exec`.
 */
function kubeconfigField(error: unknown, base: string): string {
  if (!(error instanceof KubeconfigError)) return base;
  const path = /^([A-Za-z][\w.\-/[\]]*): /.exec(error.message)?.[1];
  if (path === undefined || path === 'kubeconfig' || path === 'remote secret') return base;
  return `${base}.${path}`;
}

/** Checks the credentials of a registration and builds the Cluster; every failure is a 400 naming the field. */
function clusterFrom(body: RegisterRequest, options: ClustersRouterOptions): Cluster {
  const safety = { allowExec: options.allowExec ?? false, allowFiles: options.allowFiles ?? false };
  let kubeconfig: string;
  let field: 'kubeconfig' | 'remoteSecret';
  if (body.remoteSecret !== undefined) {
    field = 'remoteSecret';
    let entries: { cluster: string; kubeconfig: string }[];
    try {
      entries = parseRemoteSecret(body.remoteSecret);
    } catch (error) {
      throw new ApiError(400, 'invalid', `remoteSecret: ${firstLine(error)}`, kubeconfigField(error, 'remoteSecret'));
    }
    const entry = entries.find((e) => e.cluster === body.name);
    if (!entry) {
      const names = entries.map((e) => e.cluster.slice(0, 63)).join(', ') || 'none';
      throw new ApiError(400, 'invalid', `remoteSecret: the secret holds kubeconfigs for ${names}, not for ${body.name} (its data key must be the cluster's name)`, 'remoteSecret');
    }
    kubeconfig = entry.kubeconfig;
    if (kubeconfig.length > MAX_KUBECONFIG_BYTES) throw new ApiError(400, 'invalid', 'remoteSecret: the kubeconfig in it is larger than 256 KiB', 'remoteSecret');
  } else {
    field = 'kubeconfig';
    kubeconfig = body.kubeconfig ?? '';
  }
  try {
    loadSafeKubeconfig(kubeconfig, { ...(body.context !== undefined ? { context: body.context } : {}), ...safety });
  } catch (error) {
    const named = kubeconfigField(error, field);
    // a context the kubeconfig does not have is the context field's fault
    const contextFault = body.context !== undefined && named === `${field}.contexts` && firstLine(error).includes('no context named');
    const what = field === 'remoteSecret' ? `remoteSecret: the kubeconfig for ${body.name}` : 'kubeconfig';
    throw new ApiError(400, 'invalid', `${what}: ${firstLine(error)}`, contextFault ? 'context' : field === 'remoteSecret' ? 'remoteSecret' : named);
  }
  const parsed = clusterSchema.safeParse({
    name: body.name,
    network: body.network,
    ...(body.region !== undefined ? { region: body.region } : {}),
    ...(body.zone !== undefined ? { zone: body.zone } : {}),
    ...(body.gateways !== undefined ? { gateways: body.gateways } : {}),
    source: { type: 'kubernetes', kubeconfig, ...(body.context !== undefined ? { context: body.context } : {}) },
  });
  if (!parsed.success) throw invalid(parsed.error);
  return parsed.data;
}

function synthesizedStatus(registration: Registration): ClusterStatus {
  const { cluster } = registration;
  return {
    name: cluster.name,
    network: cluster.network,
    region: cluster.region,
    zone: cluster.zone,
    source: cluster.source.type,
    gateways: cluster.gateways,
    gatewaysFrom: cluster.gateways.length ? 'registration' : 'none',
    state: 'syncing',
    reason: 'registered, but not running in this manager',
    since: registration.registeredAt,
    services: 0,
    endpoints: 0,
    watchRestarts: 0,
    events: 0,
    eventsPerSecond: 0,
  };
}

/** GET/POST /clusters, GET/DELETE /clusters/:name (mounted under /api/v1, behind the bearer token). */
export function clustersRouter(options: ClustersRouterOptions): Router {
  const { registry, store, logger } = options;
  const fileClusters = options.fileClusters ?? new Set<string>();
  const router = Router();

  const info = (name: string): ClusterInfo | undefined => {
    const registration = store.get(name);
    const fromFile = fileClusters.has(name);
    const status = registry.status(name) ?? (registration && !fromFile ? synthesizedStatus(registration) : undefined);
    if (!status) return undefined;
    const cluster = fromFile ? undefined : registration?.cluster;
    return {
      ...status,
      origin: fromFile || !registration ? 'file' : 'api',
      ...(registration && !fromFile ? { registeredAt: registration.registeredAt } : {}),
      ...(cluster?.source.type === 'kubernetes' && cluster.source.context ? { context: cluster.source.context } : {}),
    };
  };

  router
    .route('/clusters')
    .get((_req, res) => {
      const names = new Set([...registry.list().map((s) => s.name), ...store.list().map((r) => r.cluster.name)]);
      const clusters = [...names]
        .sort()
        .map(info)
        .filter((c): c is ClusterInfo => c !== undefined);
      res.json({ clusters });
    })
    .post(json({ limit: options.bodyLimitBytes, strict: true }), (req: Request, res: Response) => {
      if (!req.is('application/json')) throw new ApiError(415, 'unsupported_media_type', 'send the registration as JSON, with Content-Type: application/json');
      const parsed = registerRequestSchema.safeParse(req.body);
      if (!parsed.success) throw invalid(parsed.error);
      const body = parsed.data;
      const cluster = clusterFrom(body, options);
      // from here to registry.add nothing awaits, so two registrations of one name cannot interleave
      if (fileClusters.has(cluster.name)) {
        throw new ApiError(409, 'conflict', `cluster ${cluster.name} is defined in the federation file${options.fileName ? ` ${options.fileName}` : ''}; change it there`, 'name');
      }
      if (store.has(cluster.name) || registry.has(cluster.name)) throw new ApiError(409, 'conflict', `cluster ${cluster.name} is already registered`, 'name');
      store.add(cluster);
      try {
        registry.add(cluster, createSource(cluster, undefined, { logger, ...(options.kube ? { kube: options.kube } : {}) }));
      } catch (error) {
        store.remove(cluster.name);
        throw error;
      }
      logger.info({ cluster: cluster.name, network: cluster.network, source: body.remoteSecret !== undefined ? 'remote-secret' : 'kubeconfig' }, 'cluster registered through the API');
      res.status(201).location(`/api/v1/clusters/${cluster.name}`).json(info(cluster.name));
    })
    .all((req, res) => {
      res.set('Allow', 'GET, POST');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on /api/v1/clusters: use GET or POST`));
    });

  router
    .route('/clusters/:name')
    .get((req, res) => {
      const name = req.params.name;
      const cluster = info(name);
      if (!cluster) throw new ApiError(404, 'not_found', `no cluster named ${name.slice(0, 63)}`);
      res.json(cluster);
    })
    .delete(async (req, res) => {
      const name = req.params.name;
      const registered = store.has(name);
      if (fileClusters.has(name)) {
        if (!registered) throw new ApiError(409, 'conflict', `cluster ${name} is defined in the federation file${options.fileName ? ` ${options.fileName}` : ''}; remove it there`);
        // the file's definition runs; only the registration it shadows goes
        store.remove(name);
        logger.info({ cluster: name }, 'registration removed; the federation file still defines this cluster');
        res.status(204).end();
        return;
      }
      if (!registered && !registry.has(name)) throw new ApiError(404, 'not_found', `no cluster named ${name.slice(0, 63)}`);
      if (!registered) throw new ApiError(409, 'conflict', `cluster ${name} was not registered through the API`);
      store.remove(name);
      await registry.remove(name);
      logger.info({ cluster: name }, 'cluster removed through the API');
      res.status(204).end();
    })
    .all((req, res) => {
      res.set('Allow', 'GET, DELETE');
      sendError(res, new ApiError(405, 'method_not_allowed', `${req.method} is not allowed on a cluster: use GET or DELETE`));
    });

  return router;
}
