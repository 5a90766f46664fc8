/**
 * The OpenAPI 3.1 document of the REST API, built from the route table (src/api/routes.ts); request body schemas
 * come from the zod schemas the routes validate with (z.toJSONSchema), so the document cannot drift from them.
 */
import { Router } from 'express';
import { z } from 'zod';
import { API_ROLES } from '../model/api-roles.js';
import type { RouteSpec } from './routes.js';

type Json = Record<string, unknown>;

const errorSchema: Json = {
  type: 'object',
  required: ['error'],
  properties: {
    error: {
      type: 'object',
      required: ['code', 'message'],
      properties: { code: { type: 'string' }, message: { type: 'string' }, field: { type: 'string', description: 'the field of the request at fault' } },
    },
  },
};

const ERROR_REF = { $ref: '#/components/schemas/Error' };
const REQUEST_ID_HEADER = { 'X-Request-Id': { description: 'the request id (the one sent, when sane; else a new UUID)', schema: { type: 'string' } } };

/** /api/v1/clusters/:name → /api/v1/clusters/{name} */
export const openApiPath = (path: string): string => path.replace(/:([A-Za-z_]\w*)/g, '{$1}');

function jsonSchemaOf(schema: z.ZodType): Json {
  // what a client sends: input types, defaults optional; refinements zod cannot express are checked by the server
  const json = z.toJSONSchema(schema, { io: 'input', unrepresentable: 'any' }) as Json;
  // the document's dialect is OpenAPI 3.1's (JSON Schema 2020-12): no per-schema $schema
  delete json.$schema;
  return json;
}

function operation(route: RouteSpec): Json {
  const pathParams = [...route.path.matchAll(/:([A-Za-z_]\w*)/g)].map((m) => ({ name: m[1], in: 'path', required: true, schema: { type: 'string' } }));
  const queryParams = (route.query ?? []).map((q) => ({
    name: q.name,
    in: 'query',
    required: q.required ?? false,
    description: q.description,
    schema: q.values ? { type: 'string', enum: [...q.values] } : { type: 'string' },
  }));
  const responses: Json = {};
  for (const [status, description] of Object.entries(route.responses)) {
    const ok = Number(status) < 400;
    responses[status] = {
      description,
      headers: REQUEST_ID_HEADER,
      ...(Number(status) === 204 ? {} : { content: { 'application/json': { schema: ok ? { type: 'object' } : ERROR_REF } } }),
    };
  }
  if (route.path === '/metrics') responses['200'] = { description: route.responses[200], content: { 'text/plain': { schema: { type: 'string' } } } };
  if (route.access !== 'open') {
    const error = (description: string): Json => ({ description, headers: REQUEST_ID_HEADER, content: { 'application/json': { schema: ERROR_REF } } });
    responses['401'] = error('no credentials, or credentials that are not valid');
    responses['403'] = error(`the caller's role is weaker than ${route.access}`);
    responses['429'] = error('too many failed authentications from this address: wait for Retry-After seconds');
  }
  return {
    summary: route.summary,
    operationId: `${route.method.toLowerCase()}${openApiPath(route.path).replace(/[{}]/g, '').replace(/[^A-Za-z0-9]+(.)?/g, (_m, c: string | undefined) => (c ?? '').toUpperCase())}`,
    'x-meshfed-role': route.access,
    ...(route.access === 'open' ? { security: [] } : {}),
    ...(pathParams.length + queryParams.length > 0 ? { parameters: [...pathParams, ...queryParams] } : {}),
    ...(route.body ? { requestBody: { required: true, description: route.body.description, content: { 'application/json': { schema: jsonSchemaOf(route.body.schema) } } } } : {}),
    responses,
  };
}

export function openApiDocument(routes: readonly RouteSpec[], version: string): Json {
  const paths: Record<string, Json> = {};
  for (const route of routes) {
    const path = openApiPath(route.path);
    paths[path] = { ...paths[path], [route.method.toLowerCase()]: operation(route) };
  }
  return {
    openapi: '3.1.0',
    info: {
      title: 'meshfed API',
      version,
      description: `The REST API of the meshfed manager. Roles, weakest first: ${API_ROLES.join(', ')}; each operation names the weakest role that may call it (x-meshfed-role).`,
    },
    paths,
    components: {
      schemas: { Error: errorSchema },
      securitySchemes: {
        bearerAuth: { type: 'http', scheme: 'bearer', description: "the state dir's api-token (admin), or a named token made with meshfed api token create" },
        mutualTLS: { type: 'mutualTLS', description: 'with serve --api-tls: a client certificate of the federation whose SPIFFE ID --api-identities maps to a role' },
      },
    },
    security: [{ bearerAuth: [] }, { mutualTLS: [] }],
  };
}

/** GET /openapi.json (mounted under /api/v1): the document, built once. */
export function openApiRouter(routes: readonly RouteSpec[], version: string): Router {
  const document = openApiDocument(routes, version);
  const router = Router();
  router.get('/openapi.json', (_req, res) => {
    res.json(document);
  });
  return router;
}
