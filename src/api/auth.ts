/**
 * Who is calling /api/v1, and whether they may. Credentials: `Authorization: Bearer <token>` (the state dir's
 * api-token, an admin; or a named token of STATE_DIR/api-tokens.json with its role), or, on an HTTPS API, a client
 * certificate of the federation whose SPIFFE ID is mapped to a role. A token, when given, decides alone. Failed
 * authentications are counted per client address; too many in a window are answered 429 with Retry-After.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { TLSSocket } from 'node:tls';
import type { NextFunction, Request, RequestHandler, Response } from 'express';
import { rateLimit } from 'express-rate-limit';
import { roleAllows, type ApiRole } from '../model/api-roles.js';
import type { Logger } from '../logging.js';
import { ApiTokensError, BOOTSTRAP_TOKEN_NAME, type ApiTokenStore } from '../store/api-tokens.js';
import { uriSans } from '../trust/x509.js';
import { ApiError, sendError } from './errors.js';
import { contextOf, type Principal } from './request-context.js';
import { requiredRole, type RouteSpec } from './routes.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

export interface AuthFailureLimit {
  /** failed authentications allowed per client address and window */
  limit: number;
  windowMs: number;
}

export const DEFAULT_AUTH_FAILURE_LIMIT: AuthFailureLimit = { limit: 20, windowMs: 60_000 };

export interface AuthOptions {
  /** the state dir's api-token (or MESHFED_API_TOKEN): an admin */
  token: string;
  /** named tokens with roles */
  tokens?: ApiTokenStore;
  /** SPIFFE ID → role, for client certificates (HTTPS API only) */
  identities?: ReadonlyMap<string, ApiRole>;
  logger: Logger;
  failureLimit?: AuthFailureLimit;
}

type Outcome = { principal: Principal } | { refusal: ApiError; counts: boolean; challenge?: string };

const unauthorized = (message: string, challenge: string): Outcome => ({ refusal: new ApiError(401, 'unauthorized', message), counts: true, challenge });

/**
 * Authenticates every request: sets the request's principal, or answers 401 (403 for a valid client certificate
 * whose SPIFFE ID has no role).
 */
export function authenticate(options: AuthOptions): RequestHandler {
  const bootstrap = digest(options.token);
  const { logger } = options;
  const limit = options.failureLimit ?? DEFAULT_AUTH_FAILURE_LIMIT;
  const limiter = rateLimit({
    windowMs: limit.windowMs,
    limit: limit.limit,
    standardHeaders: 'draft-8',
    legacyHeaders: false,
    validate: { xForwardedForHeader: false },
    handler: (req, res) => {
      logger.warn({ client: req.ip, limit: limit.limit, windowMs: limit.windowMs }, 'API: too many failed authentications from this address');
      sendError(res, new ApiError(429, 'too_many_requests', `too many failed authentications from this address: try again in ${String(res.get('Retry-After') ?? Math.ceil(limit.windowMs / 1000))} s`));
    },
  });

  const byToken = (given: string): Outcome => {
    const givenDigest = digest(given);
    if (timingSafeEqual(givenDigest, bootstrap)) return { principal: { kind: 'token', name: BOOTSTRAP_TOKEN_NAME, role: 'admin' } };
    try {
      const named = options.tokens?.lookup(givenDigest.toString('hex'));
      if (named) return { principal: { kind: 'token', name: named.name, role: named.role } };
    } catch (error) {
      if (!(error instanceof ApiTokensError)) throw error;
      logger.error({ err: { message: error.message } }, 'API: the named token file is damaged; no named token is accepted until it is fixed');
    }
    return unauthorized('the bearer token is not valid', 'Bearer realm="meshfed", error="invalid_token"');
  };

  const byCertificate = (socket: TLSSocket): Outcome | undefined => {
    const cert = socket.getPeerX509Certificate();
    if (!cert) return undefined;
    if (!socket.authorized) {
      return unauthorized(`the client certificate is not accepted: ${String(socket.authorizationError)} (it must chain to the federation's trust bundle)`, 'Bearer realm="meshfed"');
    }
    const uris = uriSans(cert);
    const [spiffeId] = uris;
    if (cert.ca || uris.length !== 1 || spiffeId === undefined) return unauthorized('the client certificate must be a workload certificate with exactly one SPIFFE ID (URI SAN)', 'Bearer realm="meshfed"');
    const role = options.identities?.get(spiffeId);
    if (role === undefined) {
      return { refusal: new ApiError(403, 'forbidden', `${spiffeId.slice(0, 512)} has no role on this API: map it to viewer, operator or admin in the manager's --api-identities file`), counts: false };
    }
    return { principal: { kind: 'certificate', name: spiffeId, role } };
  };

  const identify = (req: Request): Outcome => {
    const header = req.get('authorization');
    if (header !== undefined) {
      const given = /^Bearer +([\x21-\x7e]+) *$/i.exec(header)?.[1];
      if (given === undefined) return unauthorized('the Authorization header must be "Bearer <token>"', 'Bearer realm="meshfed", error="invalid_request"');
      return byToken(given);
    }
    const fromCertificate = req.socket instanceof TLSSocket ? byCertificate(req.socket) : undefined;
    return (
      fromCertificate ??
      unauthorized(
        `this API needs "Authorization: Bearer <token>" (the token is in MESHFED_API_TOKEN or the state dir's api-token file; meshfed api token create makes named ones)${req.socket instanceof TLSSocket ? ', or a client certificate of the federation' : ''}`,
        'Bearer realm="meshfed"',
      )
    );
  };

  return (req: Request, res: Response, next: NextFunction) => {
    const outcome = identify(req);
    const context = contextOf(req);
    if ('principal' in outcome) {
      context.principal = outcome.principal;
      next();
      return;
    }
    const { refusal } = outcome;
    context.log.warn({ client: req.ip, method: req.method, path: (req.baseUrl + req.path).slice(0, 512), status: refusal.status, reason: refusal.message.slice(0, 300) }, 'API: authentication failed');
    if (outcome.challenge !== undefined) res.set('WWW-Authenticate', outcome.challenge);
    if (!outcome.counts) {
      sendError(res, refusal);
      return;
    }
    // only failures reach the limiter: it counts this one, and answers 429 itself once the address is over its limit
    void limiter(req, res, (error?: unknown) => {
      if (error !== undefined) next(error);
      else sendError(res, refusal);
    });
  };
}

/** Answers 403 when the caller's role is weaker than what the route needs (the route table decides). */
export function authorize(routes: readonly RouteSpec[]): RequestHandler {
  return (req, res, next) => {
    const { principal } = contextOf(req);
    const path = req.baseUrl + req.path;
    const needed = requiredRole(routes, req.method, path);
    if (!principal) {
      sendError(res, new ApiError(401, 'unauthorized', 'not authenticated'));
      return;
    }
    if (!roleAllows(principal.role, needed)) {
      sendError(res, new ApiError(403, 'forbidden', `${req.method} ${path.slice(0, 200)} needs role ${needed} (or stronger); ${principal.kind === 'token' ? 'token' : 'client certificate'} ${principal.name.slice(0, 512)} has role ${principal.role}`));
      return;
    }
    next();
  };
}
