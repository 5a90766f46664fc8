import { createServer, type Server as HttpServer } from 'node:http';
import { createServer as createHttpsServer, type Server as HttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import express, { Router, type ErrorRequestHandler, type Express, type RequestHandler } from 'express';
import helmet from 'helmet';
import type { Registry as PromRegistry } from 'prom-client';
import type { Logger } from '../logging.js';
import type { KubeSourceOptions } from '../registry/kube/kube-source.js';
import type { Registry } from '../registry/registry.js';
import type { Vips } from '../dns/vip-allocator.js';
import type { ApiTokenStore } from '../store/api-tokens.js';
import type { RegistrationStore } from '../store/registrations.js';
import type { VirtualDestinations } from '../store/virtual-destinations.js';
import type { FederationXds } from '../xds/federation-provider.js';
import type { TrustAuthority } from '../trust/authority.js';
import { AuditLog, auditChanges, auditRouter } from './audit.js';
import { authenticate, authorize, type AuthFailureLimit } from './auth.js';
import { clustersRouter } from './clusters.js';
import type { DrillService } from '../drills/runner.js';
import { dashboardRouter } from './dashboard.js';
import { drillsRouter } from './drills.js';
import { ApiError, sendError } from './errors.js';
import { trustRouter, type TrustWriter } from './trust.js';
import { openApiRouter } from './openapi.js';
import { requestContext, requestScopedLogger } from './request-context.js';
import { API_ROUTES, type RouteGroup } from './routes.js';
import { serverSerial, type ApiTls } from './tls.js';
import { virtualDestinationsRouter } from './virtual-destinations.js';
import { xdsRouter } from './xds.js';

export const DEFAULT_BODY_LIMIT_BYTES = 512 * 1024;
/** how often an HTTPS API checks whether its certificate is due for renewal */
const TLS_RENEW_CHECK_MS = 60_000;

export interface ApiServerOptions {
  registry: Registry;
  store: RegistrationStore;
  /** the bearer token for /api/v1 that is an admin (the state dir's api-token) */
  token: string;
  /** named tokens with roles (STATE_DIR/api-tokens.json) */
  tokens?: ApiTokenStore;
  /** where changes are recorded (default: the log only) */
  audit?: AuditLog;
  /** serve HTTPS with this material, accepting client certificates of the federation */
  tls?: ApiTls;
  /** failed authentications allowed per client address and window (default 20 a minute) */
  authFailureLimit?: AuthFailureLimit;
  logger: Logger;
  /** let registered kubeconfigs use exec/auth-provider plugins (off: Istio's remote-secret exfiltration fix) */
  allowExec?: boolean;
  /** let registered kubeconfigs name files on the manager's filesystem (off) */
  allowFiles?: boolean;
  /** options for the Kubernetes sources of clusters registered through the API */
  kube?: KubeSourceOptions;
  /** clusters the federation file defines: they cannot be registered or removed through the API */
  fileClusters?: Iterable<string>;
  /** the federation file's path, for messages */
  fileName?: string;
  /** served on /metrics; default: the registry's own prom-client registry */
  metrics?: PromRegistry;
  /** default 512 KiB */
  bodyLimitBytes?: number;
  /** the xDS server's resources, for GET /api/v1/xds/dump and /api/v1/explain */
  xds?: FederationXds;
  /** the federation's virtual destinations, for /api/v1/virtualdestinations */
  virtualDestinations?: VirtualDestinations;
  /** the VIPs meshfed's DNS gives virtual destinations' hostnames */
  vips?: (hostname: string) => Vips | undefined;
  /** runs failover drills, for /api/v1/drills */
  drills?: DrillService;
  /** the trust domain's CA, for /api/v1/trust */
  trust?: TrustAuthority;
  /** how POST /api/v1/trust/rotation changes the CA (default: directly; Kubernetes mode: through the leader) */
  trustWriter?: TrustWriter;
  /** a store that must be synced before /readyz says ready (Kubernetes mode: the CA Secret); the reason while not */
  storeNotSynced?: () => string | undefined;
}

export interface RunningApi {
  readonly host: string;
  readonly port: number;
  /** http://HOST:PORT, or https:// */
  readonly url: string;
  close(): Promise<void>;
}

export interface ApiServer {
  readonly app: Express;
  /** whether /readyz says ready */
  readonly ready: boolean;
  /** /readyz answers 200 from now on (call it once the initial configuration is loaded) */
  markReady(): void;
  /** /readyz answers 503 again (shutting down) */
  markNotReady(): void;
  /** listens on HOST:PORT (port 0: any free port) */
  startApi(listen: { host: string; port: number }): Promise<RunningApi>;
}

/** the version of the API the OpenAPI document describes */
const API_DOCUMENT_VERSION = '1';

const noStore: RequestHandler = (_req, res, next) => {
  res.set('Cache-Control', 'no-store');
  next();
};

/** body-parser's errors carry the raw body (`err.body`), which may hold credentials: only the status and type are used. */
function toApiError(error: unknown, limit: number): ApiError {
  if (error instanceof ApiError) return error;
  const { status, type } = (typeof error === 'object' && error !== null ? error : {}) as { status?: unknown; type?: unknown };
  switch (type) {
    case 'entity.too.large':
      return new ApiError(413, 'too_large', `the request body is larger than ${Math.round(limit / 1024)} KiB`);
    case 'entity.parse.failed':
      return new ApiError(400, 'invalid', 'the request body is not valid JSON (a JSON object is expected)');
    case 'encoding.unsupported':
    case 'charset.unsupported':
      return new ApiError(415, 'unsupported_media_type', 'send the request body as UTF-8 JSON without content encoding');
    case 'request.aborted':
    case 'request.size.invalid':
      return new ApiError(400, 'invalid', 'the request body was incomplete');
    default:
      if (typeof status === 'number' && status >= 400 && status < 500) return new ApiError(status, 'invalid', 'the request could not be read');
      return new ApiError(500, 'internal', 'internal error (see the manager log)');
  }
}

/**
 * The REST API: /healthz, /readyz and /metrics are open; /api/v1 needs a token or a client certificate with a role
 * strong enough for the route (src/api/routes.ts). Every answer is JSON (metrics aside) with helmet's headers and an
 * X-Request-Id; errors are `{ error: { code, message, field? } }` and never carry a stack trace, a kubeconfig or a
 * token. Every change is audited.
 */
export function createApiServer(options: ApiServerOptions): ApiServer {
  const { registry } = options;
  // every line logged while a request is handled carries its id
  const logger = requestScopedLogger(options.logger);
  const audit = options.audit ?? new AuditLog({ logger: options.logger });
  const groups = new Set<RouteGroup>(['health', 'api', 'clusters']);
  if (options.virtualDestinations) groups.add('virtualdestinations');
  if (options.xds) groups.add('xds');
  if (options.drills) groups.add('drills');
  if (options.trust) groups.add('trust');
  const routes = API_ROUTES.filter((route) => groups.has(route.group));
  const limit = options.bodyLimitBytes ?? DEFAULT_BODY_LIMIT_BYTES;
  const metrics = options.metrics ?? registry.metrics.registry;
  let ready = false;

  const app = express();
  app.disable('x-powered-by');
  app.set('etag', false);
  app.set('json spaces', 2);
  app.use(requestContext(options.logger));
  // helmet's defaults: a CSP of default-src 'self' (a dashboard served from here works), nosniff, HSTS, no framing…
  app.use(helmet());

  app.get('/healthz', noStore, (_req, res) => {
    res.json({ status: 'ok' });
  });
  app.get('/readyz', noStore, (_req, res) => {
    const notSynced = options.storeNotSynced?.();
    if (notSynced !== undefined) res.status(503).json({ status: 'starting', error: { code: 'unavailable', message: notSynced } });
    else if (ready) res.json({ status: 'ready' });
    else res.status(503).json({ status: 'starting', error: { code: 'unavailable', message: 'the manager is loading its configuration' } });
  });
  app.get('/metrics', noStore, async (_req, res) => {
    const text = await metrics.metrics();
    res.set('Content-Type', metrics.contentType).send(text);
  });

  const v1 = Router();
  v1.use(
    noStore,
    authenticate({
      token: options.token,
      ...(options.tokens ? { tokens: options.tokens } : {}),
      ...(options.tls ? { identities: options.tls.identities } : {}),
      logger,
      ...(options.authFailureLimit ? { failureLimit: options.authFailureLimit } : {}),
    }),
    auditChanges(audit, routes),
    authorize(routes),
  );
  v1.use(openApiRouter(routes, API_DOCUMENT_VERSION));
  v1.use(auditRouter(audit));
  v1.use(
    clustersRouter({
      registry,
      store: options.store,
      logger,
      fileClusters: new Set(options.fileClusters ?? []),
      ...(options.fileName !== undefined ? { fileName: options.fileName } : {}),
      allowExec: options.allowExec ?? false,
      allowFiles: options.allowFiles ?? false,
      kube: { ...options.kube, allowExec: options.allowExec ?? false, allowFiles: options.allowFiles ?? false },
      bodyLimitBytes: limit,
    }),
  );
  if (options.virtualDestinations) {
    v1.use(
      virtualDestinationsRouter({
        virtualDestinations: options.virtualDestinations,
        snapshot: () => registry.snapshot(),
        ...(options.vips ? { vips: options.vips } : {}),
        logger,
        ...(options.fileName !== undefined ? { fileName: options.fileName } : {}),
        bodyLimitBytes: limit,
      }),
    );
  }
  if (options.xds) v1.use(xdsRouter(options.xds));
  if (options.drills) v1.use(drillsRouter(options.drills, limit));
  if (options.trust) v1.use(trustRouter(options.trust, options.trustWriter));
  v1.use((req, res) => {
    sendError(res, new ApiError(404, 'not_found', `no such API: ${req.method} /api/v1${req.path.slice(0, 200)}`));
  });
  app.use('/api/v1', v1);
  app.use(dashboardRouter());

  app.use((req, res) => {
    sendError(res, new ApiError(404, 'not_found', `no such path: ${req.method} ${req.path.slice(0, 200)}`));
  });

  const onError: ErrorRequestHandler = (error: unknown, req, res, next) => {
    const apiError = toApiError(error, limit);
    if (apiError.status >= 500) logger.error({ method: req.method, path: req.path, err: { message: error instanceof Error ? error.message.split('\n')[0] : 'unknown' } }, 'API request failed');
    else logger.debug({ method: req.method, path: req.path, status: apiError.status, code: apiError.code, ...(apiError.field ? { field: apiError.field } : {}) }, 'API request refused');
    if (res.headersSent) {
      next(error);
      return;
    }
    sendError(res, apiError);
  };
  app.use(onError);

  return {
    app,
    get ready() {
      return ready;
    },
    markReady() {
      ready = true;
    },
    markNotReady() {
      ready = false;
    },
    async startApi(listen) {
      const { tls } = options;
      const server: HttpServer | HttpsServer = tls ? createHttpsServer({ ...tls.material(), requestCert: true, rejectUnauthorized: false, minVersion: 'TLSv1.2' }, app) : createServer(app);
      // clients without a certificate are let through to the token check; one that does not verify is refused there
      const renewal = tls
        ? setInterval(() => {
            try {
              const renewed = tls.renewDue();
              if (!renewed) return;
              if ('setSecureContext' in server) server.setSecureContext(renewed);
              logger.info({ identity: tls.serverId, serial: serverSerial(renewed) }, 'API server certificate renewed');
            } catch (error) {
              logger.error({ identity: tls.serverId, err: { message: (error as Error).message } }, 'API server certificate renewal failed; keeping the current one');
            }
          }, TLS_RENEW_CHECK_MS).unref()
        : undefined;
      // bounded waits for slow or stalled clients
      server.headersTimeout = 20_000;
      server.requestTimeout = 60_000;
      server.keepAliveTimeout = 5_000;
      const sockets = new Set<Socket>();
      server.on('connection', (socket: Socket) => {
        sockets.add(socket);
        socket.once('close', () => sockets.delete(socket));
      });
      await new Promise<void>((done, fail) => {
        const onListenError = (error: NodeJS.ErrnoException): void => {
          clearInterval(renewal);
          fail(new Error(`the API cannot listen on ${listen.host}:${listen.port}: ${error.code === 'EADDRINUSE' ? 'the address is in use (give --api HOST:PORT)' : (error.code ?? error.message)}`));
        };
        server.once('error', onListenError);
        server.listen(listen.port, listen.host, () => {
          server.off('error', onListenError);
          done();
        });
      });
      server.on('error', (error) => {
        logger.error({ err: { message: error.message } }, 'API server error');
      });
      const port = (server.address() as AddressInfo).port;
      const host = listen.host;
      const url = `${tls ? 'https' : 'http'}://${host.includes(':') ? `[${host}]` : host}:${port}`;
      logger.info({ url, ...(tls ? { identity: tls.serverId, serial: serverSerial(tls.material()), clientIdentities: tls.identities.size } : {}) }, 'API listening');
      return {
        host,
        port,
        url,
        close: () =>
          new Promise<void>((done) => {
            clearInterval(renewal);
            server.close(() => {
              done();
            });
            server.closeIdleConnections();
            // in-flight requests get a moment, then their connections go
            setTimeout(() => {
              for (const socket of sockets) socket.destroy();
            }, 1_000).unref();
          }),
      };
    },
  };
}
