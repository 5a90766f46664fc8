/**
 * The CLI's side of the manager's REST API: where it is (--server, MESHFED_SERVER), the token (--token-file,
 * MESHFED_API_TOKEN), and one call with clear errors.
 */
import { existsSync, readFileSync, statSync } from 'node:fs';
import type { Command } from 'commander';
import { z } from 'zod';
import { API_TOKEN_ENV } from '../store/api-token.js';
import { UsageError } from './errors.js';

export const DEFAULT_SERVER = 'http://127.0.0.1:8080';
export const SERVER_ENV = 'MESHFED_SERVER';
const MAX_FILE_BYTES = 512 * 1024;
const REQUEST_TIMEOUT_MS = 30_000;

/** What the server said no to: exit 1, with its message and the field it named. */
export class ApiCallError extends Error {}

const errorView = z.object({ error: z.object({ code: z.string(), message: z.string(), field: z.string().optional() }) });

export interface Connection {
  server: URL;
  token: string;
}

export function readLimited(path: string, option: string): string {
  if (!existsSync(path)) throw new UsageError(`${option}: ${path} does not exist`);
  const stat = statSync(path);
  if (!stat.isFile()) throw new UsageError(`${option}: ${path} is not a file`);
  if (stat.size > MAX_FILE_BYTES) throw new UsageError(`${option}: ${path} is ${stat.size} bytes; the limit is ${MAX_FILE_BYTES}`);
  return readFileSync(path, 'utf8');
}

export function connection(command: Command): Connection {
  const opts = command.optsWithGlobals<{ server?: string; tokenFile?: string }>();
  const serverText = opts.server ?? (process.env[SERVER_ENV] || DEFAULT_SERVER);
  let server: URL;
  try {
    server = new URL(serverText);
  } catch {
    throw new UsageError(`--server ${serverText}: not a URL (expected e.g. ${DEFAULT_SERVER})`);
  }
  if (server.protocol !== 'http:' && server.protocol !== 'https:') throw new UsageError(`--server ${serverText}: use an http:// or https:// URL`);
  let token: string | undefined;
  if (opts.tokenFile !== undefined) {
    token = readLimited(opts.tokenFile, '--token-file').trim();
    if (token === '') throw new UsageError(`--token-file: ${opts.tokenFile} is empty`);
  } else {
    token = process.env[API_TOKEN_ENV] || undefined;
  }
  if (token === undefined) throw new UsageError(`no API token: set ${API_TOKEN_ENV} or give --token-file FILE (meshfed serve stores it in STATE_DIR/api-token)`);
  return { server, token };
}

/** One call to the manager's API; a refusal or an unreachable server is an ApiCallError (exit 1). */
export async function call(conn: Connection, method: string, path: string, body?: unknown): Promise<{ status: number; data: unknown }> {
  const url = new URL(path, conn.server);
  let response: Response;
  try {
    response = await fetch(url, {
      method,
      headers: {
        authorization: `Bearer ${conn.token}`,
        accept: 'application/json',
        ...(body !== undefined ? { 'content-type': 'application/json' } : {}),
      },
      ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
      signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS),
      redirect: 'error',
    });
  } catch (error) {
    const cause = (error as { cause?: { code?: string; message?: string } }).cause;
    const why = (error as Error).name === 'TimeoutError' ? `no answer within ${REQUEST_TIMEOUT_MS / 1000} s` : (cause?.code ?? cause?.message ?? (error as Error).message);
    throw new ApiCallError(`cannot reach the meshfed API at ${conn.server.origin}: ${why} (is "meshfed serve" running there? set --server or ${SERVER_ENV})`);
  }
  const text = await response.text();
  let data: unknown = undefined;
  if (text !== '') {
    try {
      data = JSON.parse(text);
    } catch {
      throw new ApiCallError(`${conn.server.origin} answered ${method} ${url.pathname} with ${response.status} and a body that is not JSON: is it a meshfed API?`);
    }
  }
  if (!response.ok) {
    const parsed = errorView.safeParse(data);
    const detail = parsed.success ? `${parsed.data.error.message}${parsed.data.error.field ? ` (field: ${parsed.data.error.field})` : ''}` : `HTTP ${response.status}`;
    const hints: Partial<Record<number, string>> = {
      401: ` — check ${API_TOKEN_ENV} or --token-file`,
      403: ' — ask an admin for a token with that role (meshfed api token create --role ROLE)',
      429: ' — too many failed authentications from here: wait, then check the token',
    };
    const hint = hints[response.status] ?? '';
    throw new ApiCallError(`the server refused: ${detail}${hint}`);
  }
  return { status: response.status, data };
}


/** The --server and --token-file options every API command takes. */
export function withServerOptions(command: Command): Command {
  return command
    .option('--server <url>', `the manager's API (env ${SERVER_ENV}, default ${DEFAULT_SERVER})`)
    .option('--token-file <file>', `a file holding the API token (default: env ${API_TOKEN_ENV}); meshfed serve keeps it in STATE_DIR/api-token`);
}
