import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { API_ROUTES, type RouteSpec } from '../../src/api/routes.js';
import { DrillRunner } from '../../src/drills/runner.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { API_ROLES, type ApiRole } from '../../src/model/api-roles.js';
import { ApiTokenStore } from '../../src/store/api-tokens.js';
import { CapturingLogger, request, startTestManager, tempDir, TOKEN, type ErrorJson } from './helpers.js';

const work = tempDir('meshfed-rbac-');
const logger = new CapturingLogger();
let manager: Manager;
const tokens = new Map<ApiRole, string>();

beforeAll(async () => {
  const stateDir = join(work, 'state');
  const trust = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: 'rbac.test' }, {}).authority;
  manager = await startTestManager(stateDir, logger, { xds: { host: '127.0.0.1', port: 0 }, drills: new DrillRunner(logger), trust });
  // made while the manager runs: it must pick them up without a restart
  const store = ApiTokenStore.open(stateDir);
  for (const role of API_ROLES) tokens.set(role, store.create(`${role}-token`, role).token);
});

afterAll(async () => {
  await manager.close();
  rmSync(work, { recursive: true, force: true });
});

const tokenOf = (role: ApiRole): string => {
  const token = tokens.get(role);
  if (token === undefined) throw new Error(`no ${role} token`);
  return token;
};

/** What issue 8 asks, written out independently of the route table: viewer reads; operator changes VDs and runs drills; admin the rest. */
function expectedRole(route: RouteSpec): ApiRole | 'open' {
  if (!route.path.startsWith('/api/v1/')) return 'open';
  if (route.path === '/api/v1/audit') return 'admin';
  if (route.method === 'GET') return 'viewer';
  if (route.path.startsWith('/api/v1/virtualdestinations') || route.path.startsWith('/api/v1/drills')) return 'operator';
  return 'admin';
}

/** A concrete request path: params named nothing that exists, so an allowed change fails harmlessly (404/400). */
const concrete = (path: string): string => path.replace(/:(\w+)/g, 'no-such-$1');

describe('RBAC: each role × each endpoint, through real HTTP', () => {
  it('the route table gives every endpoint the role the issue asks for', () => {
    for (const route of API_ROUTES) expect(`${route.method} ${route.path} ${route.access}`).toBe(`${route.method} ${route.path} ${expectedRole(route)}`);
  });

  it('allows each role exactly the endpoints its rank reaches, and answers 403 naming the role needed otherwise', async () => {
    const rows: string[] = [];
    for (const route of API_ROUTES) {
      const expected = expectedRole(route);
      for (const role of API_ROLES) {
        const answer = await request(manager.api.url, route.method, concrete(route.path), { token: tokenOf(role), ...(route.body ? { body: {} } : {}) });
        const allowed = expected === 'open' || API_ROLES.indexOf(role) >= API_ROLES.indexOf(expected);
        rows.push(`${route.method} ${route.path} as ${role}: ${allowed ? 'allowed' : 'denied'} → ${answer.status}`);
        if (allowed) {
          expect([401, 403], `${route.method} ${route.path} as ${role}`).not.toContain(answer.status);
        } else {
          expect(answer.status, `${route.method} ${route.path} as ${role}`).toBe(403);
          const error = (answer.json as ErrorJson).error;
          expect(error.code).toBe('forbidden');
          expect(error.message).toContain(`needs role ${expected}`);
          expect(error.message).toContain(`${role}-token has role ${role}`);
        }
      }
    }
    // every route was tried by every role
    expect(rows).toHaveLength(API_ROUTES.length * API_ROLES.length);
  });

  it('lets the state dir token (admin) do everything, and refuses a missing or unknown token with 401', async () => {
    const registered = await request(manager.api.url, 'DELETE', '/api/v1/clusters/no-such-cluster', { token: TOKEN });
    expect(registered.status).toBe(404);
    const audit = await request(manager.api.url, 'GET', '/api/v1/audit', { token: TOKEN });
    expect(audit.status).toBe(200);
    expect((await request(manager.api.url, 'GET', '/api/v1/clusters', { token: null })).status).toBe(401);
    expect((await request(manager.api.url, 'GET', '/api/v1/clusters', { token: 'x'.repeat(40) })).status).toBe(401);
  });

  it('an operator really changes a virtual destination, and a viewer sees it but cannot delete it', async () => {
    const doc = { apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestination', metadata: { name: 'reviews' }, spec: { hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'HTTP' }], backends: [{ name: 'reviews', namespace: 'default' }] } };
    const created = await request(manager.api.url, 'POST', '/api/v1/virtualdestinations', { token: tokenOf('operator'), body: doc });
    expect(created.status).toBe(201);
    expect((await request(manager.api.url, 'GET', '/api/v1/virtualdestinations/reviews', { token: tokenOf('viewer') })).status).toBe(200);
    expect((await request(manager.api.url, 'DELETE', '/api/v1/virtualdestinations/reviews', { token: tokenOf('viewer') })).status).toBe(403);
    expect(manager.virtualDestinations.get('reviews')).toBeDefined();
    expect((await request(manager.api.url, 'DELETE', '/api/v1/virtualdestinations/reviews', { token: tokenOf('operator') })).status).toBe(204);
    expect(manager.virtualDestinations.get('reviews')).toBeUndefined();
  });

  it('a change to a path no route serves needs admin: a weaker role gets 403, an admin the 405 or 404', async () => {
    const patch = await request(manager.api.url, 'PATCH', '/api/v1/virtualdestinations/x', { token: tokenOf('operator'), body: {} });
    expect(patch.status).toBe(403);
    expect((patch.json as ErrorJson).error.message).toContain('needs role admin');
    expect((await request(manager.api.url, 'PATCH', '/api/v1/virtualdestinations/x', { token: tokenOf('admin'), body: {} })).status).toBe(405);
    expect((await request(manager.api.url, 'POST', '/api/v1/nothing-here', { token: tokenOf('admin'), body: {} })).status).toBe(404);
    // the table's match is express's: case and a trailing slash do not slip a write past it
    expect((await request(manager.api.url, 'POST', '/api/v1/CLUSTERS/', { token: tokenOf('operator'), body: {} })).status).toBe(403);
  });

  it('a revoked token is refused from the next request on, without a restart', async () => {
    const store = ApiTokenStore.open(join(work, 'state'));
    const { token } = store.create('short-lived', 'viewer');
    expect((await request(manager.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
    expect(store.revoke('short-lived')).toBe(true);
    const refused = await request(manager.api.url, 'GET', '/api/v1/clusters', { token });
    expect(refused.status).toBe(401);
    expect(refused.headers.get('www-authenticate')).toContain('invalid_token');
  });
});
