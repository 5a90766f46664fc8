import type { Response } from 'express';
import type { z } from 'zod';

export type ApiErrorCode =
  | 'invalid'
  | 'unauthorized'
  | 'forbidden'
  | 'too_many_requests'
  | 'not_found'
  | 'method_not_allowed'
  | 'conflict'
  | 'too_large'
  | 'unsupported_media_type'
  | 'unavailable'
  | 'internal';

/** The one shape of every error the API returns: `{ error: { code, message, field? } }`. Never a stack trace. */
export interface ApiErrorBody {
  error: { code: ApiErrorCode; message: string; field?: string };
}

export class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: ApiErrorCode,
    message: string,
    readonly field?: string,
  ) {
    super(message);
  }

  body(): ApiErrorBody {
    return { error: { code: this.code, message: this.message, ...(this.field !== undefined ? { field: this.field } : {}) } };
  }
}

export function sendError(res: Response, error: ApiError): void {
  res.status(error.status).json(error.body());
}

/** `gateways[0].port` from zod's path. */
export function fieldPath(path: readonly PropertyKey[]): string {
  return path
    .map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`))
    .join('')
    .replace(/^\./, '');
}

/** The first zod issue as a 400 that names the field. */
export function invalid(error: z.ZodError): ApiError {
  const issue = error.issues[0];
  if (!issue) return new ApiError(400, 'invalid', 'invalid request body');
  if (issue.code === 'unrecognized_keys') {
    const key = issue.keys[0] ?? '';
    return new ApiError(400, 'invalid', `unknown field "${key.slice(0, 64)}"`, fieldPath([...issue.path, key]));
  }
  const field = fieldPath(issue.path);
  return new ApiError(400, 'invalid', field ? `${field}: ${issue.message}` : issue.message, field || undefined);
}
