import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { writeFileAtomic } from './atomic.js';

export const API_TOKEN_ENV = 'MESHFED_API_TOKEN';
export const API_TOKEN_FILE = 'api-token';
const MIN_TOKEN_LENGTH = 16;
const MAX_TOKEN_LENGTH = 4096;

export class ApiTokenError extends Error {}

export interface ApiToken {
  /** the secret itself: never log it */
  readonly token: string;
  /** env: from MESHFED_API_TOKEN; file: read from the state dir; generated: created now and stored in the state dir */
  readonly from: 'env' | 'file' | 'generated';
  /** where it is stored (file, generated) */
  readonly path?: string;
}

/** Checks a token's shape; the message never contains the token. */
export function checkToken(token: string, where: string): string {
  if (token.length < MIN_TOKEN_LENGTH) throw new ApiTokenError(`${where}: the API token must be at least ${MIN_TOKEN_LENGTH} characters`);
  if (token.length > MAX_TOKEN_LENGTH) throw new ApiTokenError(`${where}: the API token must be at most ${MAX_TOKEN_LENGTH} characters`);
  if (!/^[\x21-\x7e]+$/.test(token)) throw new ApiTokenError(`${where}: the API token may hold only printable ASCII characters, no spaces`);
  return token;
}

/**
 * The API's bearer token: MESHFED_API_TOKEN when set, else `<stateDir>/api-token`, else a new one
 * (32 random bytes, base64url) written there 0600 — `from: 'generated'` tells the caller to show it once.
 */
export function loadOrCreateApiToken(stateDir: string, env: NodeJS.ProcessEnv = process.env): ApiToken {
  const fromEnv = env[API_TOKEN_ENV];
  if (fromEnv !== undefined && fromEnv !== '') return { token: checkToken(fromEnv, API_TOKEN_ENV), from: 'env' };
  const path = join(stateDir, API_TOKEN_FILE);
  if (existsSync(path)) {
    const stat = statSync(path);
    if (!stat.isFile() || stat.size > MAX_TOKEN_LENGTH + 2) throw new ApiTokenError(`${path} is not a token file`);
    if ((stat.mode & 0o077) !== 0) chmodSync(path, 0o600);
    return { token: checkToken(readFileSync(path, 'utf8').trim(), path), from: 'file', path };
  }
  const token = randomBytes(32).toString('base64url');
  writeFileAtomic(path, token + '\n', 0o600);
  return { token, from: 'generated', path };
}
