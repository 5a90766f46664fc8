import { createHmac, timingSafeEqual } from 'node:crypto';
import { z } from 'zod';
import { clusterNameSchema } from '../model/trust-policy.js';

/**
 * Bearer tokens for the CA service: `mfd1.<base64url(JSON claims)>.<base64url(HMAC-SHA256)>`.
 * The MAC covers everything before the last dot (prefix included), keyed by the
 * authority's token secret (`TrustAuthority.tokenSecret()`). Times are Unix milliseconds.
 */
export const TOKEN_PREFIX = 'mfd1.';
export const MAX_TOKEN_BYTES = 4096;
/** A token issued this far in the future (clock skew between manager replicas) is still accepted. */
const MAX_CLOCK_SKEW_MS = 60_000;
const MIN_SECRET_BYTES = 32;
const MAC_BYTES = 32;

export class TokenError extends Error {}

/** Who the token speaks for: a Kubernetes service account in a member cluster. */
export interface TokenClaims {
  cluster: string;
  namespace: string;
  serviceAccount: string;
}

export interface VerifiedToken extends TokenClaims {
  issuedAt: Date;
  expiresAt: Date;
}

/** Kubernetes: namespaces are DNS-1123 labels, service accounts DNS-1123 subdomains. */
const namespaceSchema = z
  .string()
  .regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, 'namespace must be a DNS-1123 label');
const serviceAccountSchema = z
  .string()
  .max(253, 'service account must be at most 253 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'service account must be a DNS-1123 subdomain');

const claimsSchema = z.strictObject({
  cluster: clusterNameSchema,
  namespace: namespaceSchema,
  serviceAccount: serviceAccountSchema,
});

const payloadSchema = claimsSchema.extend({
  iat: z.number().int().nonnegative(),
  exp: z.number().int().positive(),
});

const BASE64URL = /^[A-Za-z0-9_-]+$/;

function checkSecret(secret: Buffer): void {
  if (secret.length < MIN_SECRET_BYTES) throw new TokenError(`token secret must be at least ${MIN_SECRET_BYTES} bytes`);
}

function mac(secret: Buffer, signed: string): Buffer {
  return createHmac('sha256', secret).update(signed, 'ascii').digest();
}

/** Issues a token for `claims`, valid for `ttlMs` from `now`. */
export function issueToken(secret: Buffer, claims: TokenClaims, ttlMs: number, now: Date = new Date()): string {
  checkSecret(secret);
  if (!Number.isSafeInteger(ttlMs) || ttlMs <= 0) throw new TokenError('token lifetime must be a positive whole number of milliseconds');
  const parsed = claimsSchema.safeParse(claims);
  if (!parsed.success) throw new TokenError(`invalid token claims: ${describe(parsed.error)}`);
  const iat = now.getTime();
  const payload = { ...parsed.data, iat, exp: iat + ttlMs };
  const signed = TOKEN_PREFIX + Buffer.from(JSON.stringify(payload), 'utf8').toString('base64url');
  const token = `${signed}.${mac(secret, signed).toString('base64url')}`;
  if (token.length > MAX_TOKEN_BYTES) throw new TokenError(`token would be ${token.length} bytes; the limit is ${MAX_TOKEN_BYTES}`);
  return token;
}

/**
 * Checks a token's MAC, shape and lifetime; returns its claims or throws a TokenError
 * whose message says what is wrong (never the token itself).
 */
export function verifyToken(secret: Buffer, token: string, now: Date = new Date()): VerifiedToken {
  checkSecret(secret);
  if (token.length > MAX_TOKEN_BYTES) throw new TokenError(`token is longer than ${MAX_TOKEN_BYTES} bytes`);
  if (!token.startsWith(TOKEN_PREFIX)) throw new TokenError(`not a meshfed token (expected the "${TOKEN_PREFIX}" prefix)`);
  const parts = token.slice(TOKEN_PREFIX.length).split('.');
  const [payloadPart, macPart] = parts;
  if (parts.length !== 2 || !payloadPart || !macPart || !BASE64URL.test(payloadPart) || !BASE64URL.test(macPart)) {
    throw new TokenError(`malformed token: expected ${TOKEN_PREFIX}PAYLOAD.MAC in base64url`);
  }
  const given = Buffer.from(macPart, 'base64url');
  const expected = mac(secret, TOKEN_PREFIX + payloadPart);
  // The length check reveals only the MAC length, which is public.
  if (given.length !== MAC_BYTES || !timingSafeEqual(given, expected)) throw new TokenError('token signature does not verify');
  let body: unknown;
  try {
    body = JSON.parse(Buffer.from(payloadPart, 'base64url').toString('utf8'));
  } catch {
    throw new TokenError('malformed token: the payload is not JSON');
  }
  const parsed = payloadSchema.safeParse(body);
  if (!parsed.success) throw new TokenError(`malformed token payload: ${describe(parsed.error)}`);
  const { iat, exp, ...claims } = parsed.data;
  const at = now.getTime();
  if (exp <= at) throw new TokenError(`token expired at ${new Date(exp).toISOString()}`);
  if (iat > at + MAX_CLOCK_SKEW_MS) throw new TokenError(`token is issued in the future (${new Date(iat).toISOString()})`);
  if (exp <= iat) throw new TokenError('malformed token: it expires before it was issued');
  return { ...claims, issuedAt: new Date(iat), expiresAt: new Date(exp) };
}

function describe(error: z.ZodError): string {
  return error.issues.map((issue) => `${issue.path.join('.') || '(root)'}: ${issue.message}`).join('; ');
}
