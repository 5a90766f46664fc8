import { readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { API_ROUTES } from '../../src/api/routes.js';
import { DrillRunner } from '../../src/drills/runner.js';
import { API_TOKENS_FILE, ApiTokenStore } from '../../src/store/api-tokens.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { CapturingLogger, request, startTestManager, tempDir, TOKEN, type ErrorJson } from './helpers.js';

const work = tempDir('meshfed-security-');
const stateDir = join(work, 'state');
const logger = new CapturingLogger();
let manager: Manager;
let trust: TrustAuthority;

beforeAll(async () => {
  trust = TrustAuthority.init(join(work, 'ca'), { trustDomain: 'security.test' }, {}).authority;
  manager = await startTestManager(stateDir, logger, { xds: { host: '127.0.0.1', port: 0 }, drills: new DrillRunner(logger), trust });
});

afterAll(async () => {
  await manager.close();
  rmSync(work, { recursive: true, force: true });
});

const KUBECONFIG_SECRET = 'kubeconfig-secret-token-4f1c9e2a7b';
const kubeconfig = `apiVersion: v1
kind: Config
current-context: c
clusters:
- name: c
  cluster: { server: 'https://127.0.0.1:1' }
contexts:
- name: c
  context: { cluster: c, user: u }
users:
- name: u
  user: { token: ${KUBECONFIG_SECRET} }
`;

interface AuditJson {
  time: string;
  requestId: string;
  who: { kind: string; name: string; role: string };
  method: string;
  path: string;
  resource?: string;
  status: number;
  outcome: string;
}

const logLines = (): Record<string, unknown>[] => logger.lines.map((line) => JSON.parse(line) as Record<string, unknown>);

describe('API hardening: headers, request ids, size limits', () => {
  it("sends helmet's headers on every answer, open or not, error or not", async () => {
    for (const [path, token] of [['/healthz', null], ['/api/v1/clusters', TOKEN], ['/api/v1/clusters', null], ['/nothing', null]] as const) {
      const answer = await request(manager.api.url, 'GET', path, { token });
      expect(answer.headers.get('content-security-policy'), path).toMatch(/(^|;)default-src 'self'(;|$)/);
      expect(answer.headers.get('x-content-type-options'), path).toBe('nosniff');
      expect(answer.headers.get('x-frame-options'), path).toBe('SAMEORIGIN');
      expect(answer.headers.get('strict-transport-security'), path).toMatch(/max-age=\d+/);
      expect(answer.headers.get('referrer-policy'), path).toBe('no-referrer');
      expect(answer.headers.get('x-powered-by'), path).toBeNull();
    }
  });

  it('gives every request an id: a sane one sent is kept, anything else replaced by a UUID; it is echoed and on the log lines of the request', async () => {
    const kept = await fetch(`${manager.api.url}/api/v1/virtualdestinations`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json', 'x-request-id': 'trace-abc.123' },
      body: JSON.stringify({ metadata: { name: 'cart' }, spec: { hostname: 'cart.global', ports: [{ number: 7070, protocol: 'GRPC' }], backends: [{ name: 'cart' }] } }),
    });
    expect(kept.status).toBe(201);
    expect(kept.headers.get('x-request-id')).toBe('trace-abc.123');
    // the router's own line, logged deep inside the handler, carries the id
    expect(logLines().find((l) => l.msg === 'virtual destination applied through the API')?.requestId).toBe('trace-abc.123');
    const replaced = await fetch(`${manager.api.url}/healthz`, { headers: { 'x-request-id': 'bad id\twith "quotes"' } });
    expect(replaced.headers.get('x-request-id')).toMatch(/^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/);
    const a = await request(manager.api.url, 'GET', '/api/v1/clusters');
    const b = await request(manager.api.url, 'GET', '/api/v1/clusters');
    expect(a.headers.get('x-request-id')).not.toBe(b.headers.get('x-request-id'));
    expect(logLines().find((l) => l.msg === 'API request' && l.requestId === a.headers.get('x-request-id'))).toMatchObject({ method: 'GET', path: '/api/v1/clusters', status: 200, who: 'bootstrap', role: 'admin' });
  });

  it('refuses a body over the limit with 413 on every route that takes one, and changes nothing', async () => {
    const big = JSON.stringify({ padding: 'x'.repeat(600 * 1024) });
    const withBody = API_ROUTES.filter((r) => r.body);
    expect(withBody.length).toBe(5);
    const before = manager.virtualDestinations.list().length;
    for (const route of withBody) {
      const answer = await request(manager.api.url, route.method, route.path.replace(/:\w+/g, 'x'), { raw: big });
      expect(answer.status, `${route.method} ${route.path}`).toBe(413);
      expect((answer.json as ErrorJson).error.code).toBe('too_large');
    }
    expect(manager.virtualDestinations.list().length).toBe(before);
    expect(TrustAuthority.open(join(work, 'ca'), {}).roots()).toHaveLength(1);
    expect(trust.rotationStatus().phase).toBe('none');
  });
});

describe('API hardening: rate limit on failed authentication', () => {
  // a manager of its own: no other test's failures count against its budget
  let limitedManager: Manager;
  beforeAll(async () => {
    limitedManager = await startTestManager(join(work, 'limited'), logger, {});
  });
  afterAll(async () => {
    await limitedManager.close();
  });

  it('answers 429 with Retry-After after 20 failures a minute from one address; successes do not count and still pass', async () => {
    const manager = limitedManager;
    // many successful requests first: they must not use up the budget
    for (let i = 0; i < 30; i++) expect((await request(manager.api.url, 'GET', '/api/v1/clusters')).status).toBe(200);
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<typeof request>> | undefined;
    for (let i = 0; i < 25 && !limited; i++) {
      const answer = await request(manager.api.url, 'GET', '/api/v1/clusters', { token: `wrong-token-${String(i).padStart(20, '0')}` });
      statuses.push(answer.status);
      if (answer.status === 429) limited = answer;
    }
    expect(statuses).toEqual([...Array<number>(20).fill(401), 429]);
    expect(Number(limited?.headers.get('retry-after'))).toBeGreaterThan(0);
    expect((limited?.json as ErrorJson).error.code).toBe('too_many_requests');
    // the right token still works from the same address
    expect((await request(manager.api.url, 'GET', '/api/v1/clusters')).status).toBe(200);
    expect(logLines().some((l) => l.msg === 'API: too many failed authentications from this address')).toBe(true);
  });
});

describe('API hardening: the audit log', () => {
  let viewer: string;
  beforeAll(() => {
    viewer = ApiTokenStore.open(stateDir).create('auditor', 'viewer').token;
  });

  it('records every change (who, what, when, request id, outcome), refused ones too, and no reads; never a body', async () => {
    const auditPath = join(stateDir, 'audit.log');
    const before = Date.now();
    const registered = await request(manager.api.url, 'POST', '/api/v1/clusters', { body: { name: 'audited', network: 'net-a', kubeconfig } });
    expect(registered.status).toBe(201);
    const refused = await request(manager.api.url, 'DELETE', '/api/v1/clusters/audited', { token: viewer });
    expect(refused.status).toBe(403);
    const invalid = await request(manager.api.url, 'POST', '/api/v1/clusters', { body: { name: 'Bad Name', network: 'n', kubeconfig } });
    expect(invalid.status).toBe(400);
    const linesBefore = readFileSync(auditPath, 'utf8').trim().split('\n').length;
    for (let i = 0; i < 3; i++) await request(manager.api.url, 'GET', '/api/v1/clusters/audited', { token: viewer });
    expect(readFileSync(auditPath, 'utf8').trim().split('\n')).toHaveLength(linesBefore);

    expect(statSync(auditPath).mode & 0o777).toBe(0o600);
    const text = readFileSync(auditPath, 'utf8');
    expect(text).not.toContain(KUBECONFIG_SECRET);
    expect(text).not.toContain(TOKEN);
    expect(text).not.toContain(viewer);
    const entries = text.trim().split('\n').map((line) => JSON.parse(line) as AuditJson);
    const byRequest = (answer: { headers: Headers }): AuditJson | undefined => entries.find((e) => e.requestId === answer.headers.get('x-request-id'));
    expect(byRequest(registered)).toMatchObject({ who: { kind: 'token', name: 'bootstrap', role: 'admin' }, method: 'POST', path: '/api/v1/clusters', resource: 'cluster/audited', status: 201, outcome: 'succeeded' });
    expect(byRequest(refused)).toMatchObject({ who: { kind: 'token', name: 'auditor', role: 'viewer' }, method: 'DELETE', resource: 'cluster/audited', status: 403, outcome: 'refused' });
    expect(byRequest(invalid)).toMatchObject({ status: 400, outcome: 'refused' });
    const when = Date.parse(byRequest(registered)?.time ?? '');
    expect(when).toBeGreaterThanOrEqual(before - 1000);
    expect(when).toBeLessThanOrEqual(Date.now());
    // the same entries on the manager's log, marked
    expect(logLines().find((l) => l.audit === true && l.requestId === registered.headers.get('x-request-id'))).toMatchObject({ msg: 'audit', status: 201 });
    expect(logger.text()).not.toContain(KUBECONFIG_SECRET);
  });

  it('serves the recent entries, newest first, to admins only; unauthenticated attempts are not entries', async () => {
    await request(manager.api.url, 'DELETE', '/api/v1/clusters/x', { token: 'not-a-valid-token-at-all-000' });
    expect((await request(manager.api.url, 'GET', '/api/v1/audit', { token: viewer })).status).toBe(403);
    const answer = await request(manager.api.url, 'GET', '/api/v1/audit?limit=2');
    expect(answer.status).toBe(200);
    const { entries } = answer.json as { entries: AuditJson[] };
    expect(entries).toHaveLength(2);
    expect(Date.parse(entries[0]?.time ?? '')).toBeGreaterThanOrEqual(Date.parse(entries[1]?.time ?? ''));
    const all = (await request(manager.api.url, 'GET', '/api/v1/audit?limit=1000')).json as { entries: AuditJson[] };
    expect(all.entries.some((e) => e.path === '/api/v1/clusters/x')).toBe(false);
    expect((await request(manager.api.url, 'GET', '/api/v1/audit?limit=0')).status).toBe(400);
    expect((await request(manager.api.url, 'GET', '/api/v1/audit?limit=abc')).status).toBe(400);
  });

  it('keeps the entries across a restart (read back from the file)', async () => {
    const other = await startTestManager(stateDir, new CapturingLogger(), {});
    try {
      const { entries } = (await request(other.api.url, 'GET', '/api/v1/audit')).json as { entries: AuditJson[] };
      expect(entries.some((e) => e.resource === 'cluster/audited' && e.status === 201)).toBe(true);
    } finally {
      await other.close();
    }
  });
});

describe('named tokens at rest', () => {
  it('stores only SHA-256 digests, 0600; lists names and roles, never tokens; revocation and a damaged file refuse the tokens', async () => {
    const dir = join(work, 'tokens');
    const store = ApiTokenStore.open(dir);
    const { token, entry } = store.create('ci', 'operator');
    expect(entry).toMatchObject({ name: 'ci', role: 'operator' });
    const path = join(dir, API_TOKENS_FILE);
    const text = readFileSync(path, 'utf8');
    expect(text).not.toContain(token);
    expect(text).toContain((await import('node:crypto')).createHash('sha256').update(token).digest('hex'));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(JSON.stringify(store.list())).not.toContain(token);
    expect(() => store.create('ci', 'admin')).toThrow(/exists/);
    expect(() => store.create('bootstrap', 'admin')).toThrow(/bootstrap/);
    expect(() => store.create('Not A Name', 'admin')).toThrow(/token name/);

    const m = await startTestManager(dir, new CapturingLogger(), {});
    try {
      expect((await request(m.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
      writeFileSync(path, '{ damaged');
      expect((await request(m.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(401);
      // the state dir's own token still works while the file is damaged
      expect((await request(m.api.url, 'GET', '/api/v1/clusters')).status).toBe(200);
      writeFileSync(path, text);
      expect((await request(m.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
      expect(ApiTokenStore.open(dir).revoke('ci')).toBe(true);
      expect((await request(m.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(401);
    } finally {
      await m.close();
    }
    writeFileSync(path, '{ damaged');
    expect(() => ApiTokenStore.open(dir)).toThrow(/damaged/);
  });
});
