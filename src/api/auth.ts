import { createHash, timingSafeEqual } from 'node:crypto';
import type { RequestHandler } from 'express';
import { ApiError, sendError } from './errors.js';

const digest = (value: string): Buffer => createHash('sha256').update(value).digest();

/**
 * Requires `Authorization: Bearer <token>`. The comparison is constant-time over SHA-256 digests,
 * so neither the token's content nor its length leaks through timing.
 */
export function bearerAuth(token: string): RequestHandler {
  const expected = digest(token);
  return (req, res, next) => {
    const header = req.get('authorization');
    const match = header === undefined ? null : /^Bearer +([\x21-\x7e]+) *$/i.exec(header);
    const given = match?.[1];
    if (given !== undefined && timingSafeEqual(digest(given), expected)) {
      next();
      return;
    }
    res.set('WWW-Authenticate', given === undefined ? 'Bearer realm="meshfed"' : 'Bearer realm="meshfed", error="invalid_token"');
    sendError(res, new ApiError(401, 'unauthorized', given === undefined ? 'this API needs "Authorization: Bearer <token>" (the token is in MESHFED_API_TOKEN or the state dir\'s api-token file)' : 'the bearer token is not valid'));
  };
}
