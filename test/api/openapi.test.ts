import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import formats from 'ajv-formats';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { DrillRunner } from '../../src/drills/runner.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { CapturingLogger, request, startTestManager, tempDir } from './helpers.js';

const work = tempDir('meshfed-openapi-');
let manager: Manager;

beforeAll(async () => {
  const trust = TrustAuthority.init(join(work, 'state', 'ca'), { trustDomain: 'openapi.test' }, {}).authority;
  manager = await startTestManager(join(work, 'state'), new CapturingLogger(), { xds: { host: '127.0.0.1', port: 0 }, drills: new DrillRunner(), trust });
});

afterAll(async () => {
  await manager.close();
  rmSync(work, { recursive: true, force: true });
});

interface Operation {
  'x-meshfed-role': string;
  security?: unknown[];
  parameters?: { name: string; in: string }[];
  requestBody?: { content: { 'application/json': { schema: object } } };
  responses: Record<string, unknown>;
}
interface OpenApi {
  openapi: string;
  paths: Record<string, Record<string, Operation>>;
}

interface Layer {
  rawPath?: unknown;
  route?: { path: string; methods: Record<string, boolean> };
  handle: { stack?: Layer[] };
}

/** METHOD PATH of every route express serves, found by walking the app's router stack (405 catch-alls aside). */
function servedRoutes(stack: Layer[], prefix = ''): string[] {
  const out: string[] = [];
  for (const layer of stack) {
    if (layer.route) {
      for (const [method, on] of Object.entries(layer.route.methods)) {
        if (on && method !== '_all') out.push(`${method.toUpperCase()} ${prefix}${layer.route.path}`);
      }
    } else if (layer.handle.stack) {
      const mount = typeof layer.rawPath === 'string' && layer.rawPath !== '/' ? layer.rawPath : '';
      out.push(...servedRoutes(layer.handle.stack, prefix + mount));
    }
  }
  return out;
}

async function document(): Promise<OpenApi> {
  const answer = await request(manager.api.url, 'GET', '/api/v1/openapi.json');
  expect(answer.status).toBe(200);
  return answer.json as OpenApi;
}

describe('OpenAPI document at /api/v1/openapi.json', () => {
  it('needs a token like every /api/v1 route', async () => {
    expect((await request(manager.api.url, 'GET', '/api/v1/openapi.json', { token: null })).status).toBe(401);
  });

  it('documents exactly the routes express serves', async () => {
    const doc = await document();
    expect(doc.openapi).toBe('3.1.0');
    const documented = Object.entries(doc.paths)
      .flatMap(([path, ops]) => Object.keys(ops).map((method) => `${method.toUpperCase()} ${path}`))
      .sort();
    const app = manager.server.app as unknown as { router: { stack: Layer[] } };
    const served = servedRoutes(app.router.stack)
      .map((route) => route.replace(/:(\w+)/g, '{$1}'))
      .sort();
    expect(served.length).toBeGreaterThan(15);
    expect(documented).toEqual([...new Set(served)]);
  });

  it('names path and query parameters, the role of each operation, and the auth errors of every protected one', async () => {
    const doc = await document();
    const cluster = doc.paths['/api/v1/clusters/{name}']?.delete;
    expect(cluster?.['x-meshfed-role']).toBe('admin');
    expect(cluster?.parameters).toEqual([expect.objectContaining({ name: 'name', in: 'path' })]);
    expect(Object.keys(cluster?.responses ?? {})).toEqual(expect.arrayContaining(['204', '401', '403', '404', '429']));
    const dump = doc.paths['/api/v1/xds/dump']?.get;
    expect(dump?.parameters?.map((p) => `${p.in}:${p.name}`)).toEqual(['query:cluster', 'query:network', 'query:locality', 'query:kind']);
    const health = doc.paths['/healthz']?.get;
    expect(health?.security).toEqual([]);
    expect(Object.keys(health?.responses ?? {})).not.toContain('401');
  });

  it('has request body schemas generated from the zod schemas the routes validate with: valid JSON Schema that accepts what the API accepts', async () => {
    const doc = await document();
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    formats.default(ajv);
    const bodies = Object.entries(doc.paths).flatMap(([path, ops]) => Object.entries(ops).filter(([, op]) => op.requestBody).map(([method, op]) => ({ at: `${method} ${path}`, schema: op.requestBody?.content['application/json'].schema ?? {} })));
    expect(bodies.map((b) => b.at).sort()).toEqual(['post /api/v1/clusters', 'post /api/v1/drills', 'post /api/v1/trust/rotation', 'post /api/v1/virtualdestinations', 'put /api/v1/virtualdestinations/{name}']);
    const validators = new Map(bodies.map((b) => [b.at, ajv.compile(b.schema)]));
    const vd = { apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestination', metadata: { name: 'cart' }, spec: { hostname: 'cart.global', ports: [{ number: 7070, protocol: 'GRPC' }], backends: [{ name: 'cart' }] } };
    const validVd = validators.get('post /api/v1/virtualdestinations');
    expect(validVd?.(vd)).toBe(true);
    expect(validVd?.({ ...vd, extra: 1 })).toBe(false);
    expect(validVd?.({ ...vd, metadata: { name: 'Not_A_Label' } })).toBe(false);
    // and the server agrees with the document on both
    expect((await request(manager.api.url, 'POST', '/api/v1/virtualdestinations', { body: vd })).status).toBe(201);
    expect((await request(manager.api.url, 'POST', '/api/v1/virtualdestinations', { body: { ...vd, metadata: { name: 'x' }, extra: 1 } })).status).toBe(400);
    const register = validators.get('post /api/v1/clusters');
    expect(register?.({ name: 'east-1', network: 'net-1', kubeconfig: 'apiVersion: v1' })).toBe(true);
    expect(register?.({ name: 'east-1', network: 'net-1', kubeconfig: 'x', unknown: true })).toBe(false);
    const rotation = validators.get('post /api/v1/trust/rotation');
    expect(rotation?.({ action: 'advance' })).toBe(true);
    expect(rotation?.({ action: 'rotate-everything' })).toBe(false);
  });
});
