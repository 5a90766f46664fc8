/**
 * Per-request context: an id (a sane incoming X-Request-Id, else a random UUID) returned in X-Request-Id, a child
 * logger carrying it, and who the caller turned out to be. The context follows the request through async code
 * (AsyncLocalStorage), so every line logged while handling it carries its id, routers' lines included.
 */
import { AsyncLocalStorage } from 'node:async_hooks';
import { randomUUID } from 'node:crypto';
import type { Request, RequestHandler } from 'express';
import type { ApiRole } from '../model/api-roles.js';
import type { Logger } from '../logging.js';

export const REQUEST_ID_HEADER = 'X-Request-Id';
const SANE_REQUEST_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** Who made a request: a named token (or the state dir's bootstrap token), or a client certificate's SPIFFE ID. */
export interface Principal {
  kind: 'token' | 'certificate';
  /** the token's name, or the SPIFFE ID */
  name: string;
  role: ApiRole;
}

export interface RequestContext {
  readonly id: string;
  readonly log: Logger;
  principal?: Principal;
}

const storage = new AsyncLocalStorage<RequestContext>();
const contexts = new WeakMap<Request, RequestContext>();

interface ChildCapable extends Logger {
  child(bindings: object): Logger;
}
const canChild = (logger: Logger): logger is ChildCapable => typeof (logger as Partial<ChildCapable>).child === 'function';

/** `logger` with `bindings` on every line: pino's child logger when it is one. */
export function childLogger(logger: Logger, bindings: object): Logger {
  if (canChild(logger)) return logger.child(bindings);
  return {
    debug: (obj, msg) => {
      logger.debug({ ...bindings, ...obj }, msg);
    },
    info: (obj, msg) => {
      logger.info({ ...bindings, ...obj }, msg);
    },
    warn: (obj, msg) => {
      logger.warn({ ...bindings, ...obj }, msg);
    },
    error: (obj, msg) => {
      logger.error({ ...bindings, ...obj }, msg);
    },
  };
}

/** Gives each request its id and context; the first middleware of the app. */
export function requestContext(logger: Logger): RequestHandler {
  return (req, res, next) => {
    const given = req.get(REQUEST_ID_HEADER);
    const id = given !== undefined && SANE_REQUEST_ID.test(given) ? given : randomUUID();
    const context: RequestContext = { id, log: childLogger(logger, { requestId: id }) };
    contexts.set(req, context);
    res.set(REQUEST_ID_HEADER, id);
    res.once('finish', () => {
      const who = context.principal;
      context.log.debug({ method: req.method, path: (req.baseUrl + req.path).slice(0, 512), status: res.statusCode, ...(who ? { who: who.name, role: who.role } : {}) }, 'API request');
    });
    storage.run(context, next);
  };
}

/** The context requestContext gave this request. */
export function contextOf(req: Request): RequestContext {
  const context = contexts.get(req);
  if (!context) throw new Error('requestContext() must run before this middleware');
  return context;
}

/** A logger that writes through the current request's child logger (so with its id), or `base` outside requests. */
export function requestScopedLogger(base: Logger): Logger {
  const current = (): Logger => storage.getStore()?.log ?? base;
  return {
    debug: (obj, msg) => {
      current().debug(obj, msg);
    },
    info: (obj, msg) => {
      current().info(obj, msg);
    },
    warn: (obj, msg) => {
      current().warn(obj, msg);
    },
    error: (obj, msg) => {
      current().error(obj, msg);
    },
  };
}
