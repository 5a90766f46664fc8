/**
 * The audit log: every change asked of the API by an authenticated caller (every request but reads), whether it
 * succeeded or was refused: who (token name or SPIFFE ID, and role), what (method, path, resource, status), when,
 * and the request id. Each entry is a JSON line appended to STATE_DIR/audit.log (0600) and a line on the manager's
 * log marked `audit: true`. Bodies are never recorded: registrations carry kubeconfigs.
 */
import { chmodSync, closeSync, fstatSync, fsyncSync, openSync, readSync, writeSync } from 'node:fs';
import { Router, type RequestHandler } from 'express';
import { z } from 'zod';
import { apiRoleSchema } from '../model/api-roles.js';
import type { Logger } from '../logging.js';
import { ApiError } from './errors.js';
import { contextOf } from './request-context.js';
import { isRead, matchRoute, type RouteSpec } from './routes.js';

export const AUDIT_LOG_FILE = 'audit.log';
/** entries kept in memory for GET /api/v1/audit */
const KEEP = 1000;
const DEFAULT_LIMIT = 100;
/** how much of an existing file's end is read at start, for the recent entries */
const TAIL_BYTES = 1024 * 1024;

const auditEntrySchema = z.object({
  time: z.string(),
  requestId: z.string(),
  who: z.object({ kind: z.enum(['token', 'certificate']), name: z.string(), role: apiRoleSchema }),
  method: z.string(),
  path: z.string(),
  resource: z.string().optional(),
  status: z.number(),
  outcome: z.enum(['succeeded', 'refused', 'failed', 'aborted']),
});
export type AuditEntry = z.infer<typeof auditEntrySchema>;

export interface AuditLogOptions {
  logger: Logger;
  /** the file entries are appended to; none: the log and memory only */
  path?: string;
}

/** The last lines of a file, at most TAIL_BYTES of it (the first, possibly cut, line dropped). */
function tailLines(path: string): string[] {
  let fd: number;
  try {
    fd = openSync(path, 'r');
  } catch {
    return [];
  }
  try {
    const size = fstatSync(fd).size;
    const length = Math.min(size, TAIL_BYTES);
    const buffer = Buffer.alloc(length);
    readSync(fd, buffer, 0, length, size - length);
    const lines = buffer.toString('utf8').split('\n');
    return size > length ? lines.slice(1) : lines;
  } finally {
    closeSync(fd);
  }
}

export class AuditLog {
  readonly #logger: Logger;
  readonly #path: string | undefined;
  readonly #recent: AuditEntry[] = [];

  constructor(options: AuditLogOptions) {
    this.#logger = options.logger;
    this.#path = options.path;
    if (this.#path === undefined) return;
    for (const line of tailLines(this.#path)) {
      if (line.trim() === '') continue;
      try {
        const parsed = auditEntrySchema.safeParse(JSON.parse(line));
        if (parsed.success) this.#remember(parsed.data);
      } catch {
        // a line cut by a crash: the entries around it still count
      }
    }
  }

  record(entry: AuditEntry): void {
    this.#remember(entry);
    this.#logger.info({ audit: true, ...entry }, 'audit');
    if (this.#path === undefined) return;
    try {
      const fd = openSync(this.#path, 'a', 0o600);
      try {
        if ((fstatSync(fd).mode & 0o077) !== 0) chmodSync(this.#path, 0o600);
        writeSync(fd, JSON.stringify(entry) + '\n');
        fsyncSync(fd);
      } finally {
        closeSync(fd);
      }
    } catch (error) {
      this.#logger.error({ audit: true, path: this.#path, err: { message: (error as NodeJS.ErrnoException).code ?? (error as Error).message } }, 'could not append to the audit log');
    }
  }

  /** The most recent entries, newest first. */
  recent(limit = DEFAULT_LIMIT): AuditEntry[] {
    return this.#recent.slice(-limit).reverse();
  }

  #remember(entry: AuditEntry): void {
    this.#recent.push(entry);
    if (this.#recent.length > KEEP) this.#recent.splice(0, this.#recent.length - KEEP);
  }
}

function outcomeOf(status: number, finished: boolean): AuditEntry['outcome'] {
  if (!finished) return 'aborted';
  if (status >= 500) return 'failed';
  return status >= 400 ? 'refused' : 'succeeded';
}

/** What a change acted on: the route's resource and the name in the path, or in the Location of what it created. */
function resourceOf(routes: readonly RouteSpec[], method: string, path: string, location: string | undefined): string | undefined {
  const match = matchRoute(routes, method, path);
  if (!match?.route.resource) return undefined;
  const named = Object.values(match.params)[0] ?? (location !== undefined ? decodeURIComponent(location.split('/').pop() ?? '') : undefined);
  return named ? `${match.route.resource}/${named.slice(0, 253)}` : match.route.resource;
}

/** Records every authenticated request that is not a read, once its answer is sent (or the client went away). */
export function auditChanges(audit: AuditLog, routes: readonly RouteSpec[]): RequestHandler {
  return (req, res, next) => {
    const context = contextOf(req);
    const principal = context.principal;
    if (principal && !isRead(req.method)) {
      const time = new Date().toISOString();
      const path = (req.baseUrl + req.path).slice(0, 512);
      res.once('close', () => {
        const location = res.get('Location');
        const resource = resourceOf(routes, req.method, path, typeof location === 'string' ? location : undefined);
        audit.record({
          time,
          requestId: context.id,
          who: { ...principal },
          method: req.method,
          path,
          ...(resource !== undefined ? { resource } : {}),
          status: res.statusCode,
          outcome: outcomeOf(res.statusCode, res.writableFinished),
        });
      });
    }
    next();
  };
}

/** GET /audit?limit=N (mounted under /api/v1). */
export function auditRouter(audit: AuditLog): Router {
  const router = Router();
  router.get('/audit', (req, res) => {
    const text = req.query.limit;
    if (text !== undefined && (typeof text !== 'string' || !/^\d{1,4}$/.test(text) || Number(text) < 1 || Number(text) > KEEP)) {
      throw new ApiError(400, 'invalid', `limit must be a whole number from 1 to ${KEEP}`, 'limit');
    }
    res.json({ entries: audit.recent(text === undefined ? DEFAULT_LIMIT : Number(text)) });
  });
  return router;
}
