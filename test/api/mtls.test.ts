import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { apiTlsFromAuthority, ApiTlsError, parseApiIdentities, type ApiTls } from '../../src/api/tls.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { makeWorkload, spiffeId, TempDirs, TRUST_DOMAIN, type Workload } from '../trust/helpers.js';
import { CapturingLogger, startTestManager, TOKEN } from './helpers.js';
import { httpsCall, type HttpsAnswer } from './https-client.js';

const tmp = new TempDirs();
let authority: TrustAuthority;
let tls: ApiTls;
let manager: Manager;
let bundle: string;

const CI = spiffeId('platform', 'ci');
const DASHBOARD = spiffeId('platform', 'dashboard');

beforeAll(async () => {
  authority = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  authority.issueIntermediate('east-1');
  authority.issueIntermediate('west-1');
  bundle = authority.bundlePem();
  const identities = parseApiIdentities(`${CI}: operator\n${DASHBOARD}: viewer\n`, 'identities.yaml', TRUST_DOMAIN);
  tls = apiTlsFromAuthority(authority, 'east-1', identities);
  manager = await startTestManager(join(tmp.make(), 'state'), new CapturingLogger(), { apiTls: tls });
});

afterAll(async () => {
  await manager.close();
  tmp.cleanup();
});

const call = (method: string, path: string, options: { client?: Workload; token?: string; body?: unknown } = {}): Promise<HttpsAnswer> =>
  httpsCall(manager.api.url, method, path, { ca: bundle, serverId: tls.serverId, ...options });

describe('API over HTTPS with client certificates of the federation', () => {
  it("serves HTTPS with a certificate of the federation's CA that carries the API's SPIFFE ID", async () => {
    expect(manager.api.url).toMatch(/^https:\/\/127\.0\.0\.1:\d+$/);
    const answer = await call('GET', '/healthz');
    expect(answer.status).toBe(200);
    expect(answer.serverIds).toEqual([`spiffe://${TRUST_DOMAIN}/ns/meshfed-system/sa/meshfed-api`]);
  });

  it('maps a client certificate from a cluster intermediate to its role: the operator changes VDs, not clusters', async () => {
    const ci = makeWorkload(authority, { cluster: 'west-1', spiffeId: CI });
    expect((await call('GET', '/api/v1/clusters', { client: ci })).status).toBe(200);
    const vd = { metadata: { name: 'cart' }, spec: { hostname: 'cart.global', ports: [{ number: 7070, protocol: 'GRPC' }], backends: [{ name: 'cart' }] } };
    expect((await call('PUT', '/api/v1/virtualdestinations/cart', { client: ci, body: vd })).status).toBe(201);
    const forbidden = await call('DELETE', '/api/v1/clusters/anything', { client: ci });
    expect(forbidden.status).toBe(403);
    expect(JSON.parse(forbidden.body)).toMatchObject({ error: { code: 'forbidden' } });
    expect(forbidden.body).toContain(`client certificate ${CI} has role operator`);
    const dashboard = makeWorkload(authority, { cluster: 'east-1', spiffeId: DASHBOARD });
    expect((await call('GET', '/api/v1/virtualdestinations/cart', { client: dashboard })).status).toBe(200);
    expect((await call('DELETE', '/api/v1/virtualdestinations/cart', { client: dashboard })).status).toBe(403);
    // the change is audited under the SPIFFE ID
    const audit = JSON.parse((await call('GET', '/api/v1/audit', { token: TOKEN })).body) as { entries: { who: { kind: string; name: string; role: string }; method: string; status: number }[] };
    expect(audit.entries).toContainEqual(expect.objectContaining({ who: { kind: 'certificate', name: CI, role: 'operator' }, method: 'PUT', status: 201 }));
  });

  it('answers 403 for a valid certificate whose SPIFFE ID has no role', async () => {
    const stranger = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'stranger') });
    const answer = await call('GET', '/api/v1/clusters', { client: stranger });
    expect(answer.status).toBe(403);
    expect(answer.body).toContain('has no role on this API');
  });

  it('refuses a certificate from an unrelated CA, even one claiming a mapped SPIFFE ID in the same trust domain', async () => {
    const foreign = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
    foreign.issueIntermediate('east-1');
    const impostor = makeWorkload(foreign, { cluster: 'east-1', spiffeId: CI });
    const answer = await call('GET', '/api/v1/clusters', { client: impostor });
    expect(answer.status).toBe(401);
    expect(answer.body).toContain('the client certificate is not accepted');
  });

  it('still takes bearer tokens, and a token given decides alone: a bad token is refused even with a good certificate', async () => {
    expect((await call('GET', '/api/v1/clusters', { token: TOKEN })).status).toBe(200);
    expect((await call('GET', '/api/v1/clusters')).status).toBe(401);
    const ci = makeWorkload(authority, { cluster: 'west-1', spiffeId: CI });
    expect((await call('GET', '/api/v1/clusters', { client: ci, token: 'a-wrong-token-0123456789' })).status).toBe(401);
  });

  it('refuses an identities file with a bad role, a non-SPIFFE key, or an ID of another trust domain, naming it', () => {
    expect(() => parseApiIdentities(`${CI}: root\n`, 'ids.yaml', TRUST_DOMAIN)).toThrow(ApiTlsError);
    expect(() => parseApiIdentities('https://example.org/ci: admin\n', 'ids.yaml', TRUST_DOMAIN)).toThrow(/not a SPIFFE ID/);
    expect(() => parseApiIdentities('spiffe://elsewhere.org/ns/a/sa/b: admin\n', 'ids.yaml', TRUST_DOMAIN)).toThrow(/outside trust domain/);
    expect(() => parseApiIdentities('[1, 2]', 'ids.yaml', TRUST_DOMAIN)).toThrow(/ids.yaml: expected a map/);
  });
});
