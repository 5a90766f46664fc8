/**
 * GET /api/v1/trust through real HTTP to a running manager: the trust domain's roots, every cluster's intermediate with
 * its expiry, renewal point and delivery, and where a root rotation stands, as the CA's state dir says — and never a
 * key, a PEM or the token secret. Also the dashboard's static files: served open, with their CSP, and nothing else of
 * their folder.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import type { TrustInfo } from '../../src/api/trust.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { subjectKeyIdHex } from '../../src/trust/x509.js';
import { CapturingLogger, request, startTestManager, tempDir, TOKEN } from './helpers.js';

const stateDir = tempDir('meshfed-trust-api-');
const logger = new CapturingLogger();
let authority: TrustAuthority;
let manager: Manager;
let base: string;
const seen: string[] = [];

async function trust(): Promise<TrustInfo> {
  const answer = await request(base, 'GET', '/api/v1/trust');
  seen.push(answer.text);
  expect(answer.status).toBe(200);
  return answer.json as TrustInfo;
}

beforeAll(async () => {
  authority = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: 'trust.test' }, {}).authority;
  authority.issueIntermediate('east-1');
  authority.issueIntermediate('west-1');
  // the CA service's token secret exists: it must not show up
  authority.tokenSecret();
  manager = await startTestManager(stateDir, logger, { trust: authority });
  base = manager.api.url;
});

afterAll(async () => {
  await manager.close();
});

describe('GET /api/v1/trust', () => {
  it('needs the bearer token', async () => {
    const answer = await request(base, 'GET', '/api/v1/trust', { token: null });
    expect(answer.status).toBe(401);
    expect(answer.text).not.toContain('trust.test');
  });

  it('shows the root, each intermediate with its expiry and renewal point, and that nothing was delivered yet', async () => {
    const info = await trust();
    const root = authority.roots()[0] ?? new X509Certificate('');
    expect(info.trustDomain).toBe('trust.test');
    expect(info.roots).toHaveLength(1);
    expect(info.roots[0]).toMatchObject({
      id: subjectKeyIdHex(root),
      active: true,
      offline: false,
      serial: root.serialNumber,
      notAfter: new Date(root.validTo).toISOString(),
    });
    expect(info.roots[0]?.subject).toContain('O=trust.test');
    expect(info.activeRootId).toBe(info.roots[0]?.id);
    expect(info.intermediates.map((i) => i.cluster)).toEqual(['east-1', 'west-1']);
    for (const intermediate of info.intermediates) {
      const cert = authority.intermediateCertificate(intermediate.cluster);
      expect(intermediate).toMatchObject({ serial: cert?.serialNumber, rootId: info.activeRootId, notAfter: new Date(cert?.validTo ?? 0).toISOString(), delivered: false, pendingCsr: false });
      // renewal comes between issue and expiry
      expect(Date.parse(intermediate.renewAfter ?? '')).toBeGreaterThan(Date.parse(intermediate.notBefore ?? ''));
      expect(Date.parse(intermediate.renewAfter ?? '')).toBeLessThan(Date.parse(intermediate.notAfter ?? ''));
    }
    expect(info.rotation.phase).toBe('none');
    expect(info.rotation.steps).toEqual([{ step: 'deliver the current bundle', done: false, waitingFor: ['east-1', 'west-1'] }]);
  });

  it('follows the CA: a delivery and a rotation started show at the next read', async () => {
    authority.deliver('east-1');
    const delivered = await trust();
    expect(delivered.intermediates.find((i) => i.cluster === 'east-1')?.delivered).toBe(true);
    expect(delivered.intermediates.find((i) => i.cluster === 'west-1')?.delivered).toBe(false);

    const rotation = authority.startRotation();
    const rotating = await trust();
    expect(rotating.roots).toHaveLength(2);
    expect(rotating.roots.filter((r) => r.active).map((r) => r.id)).toEqual([rotation.oldRootId]);
    expect(rotating.roots.map((r) => r.id)).toContain(rotation.newRootId);
    expect(rotating.rotation).toMatchObject({ phase: 'bundle-added', oldRootId: rotation.oldRootId, newRootId: rotation.newRootId });
    expect(rotating.rotation.steps[0]).toMatchObject({ done: false, waitingFor: ['east-1', 'west-1'] });
    expect(rotating.bundleSequence).toBe(authority.bundleSequence);
  });

  it('allows GET only', async () => {
    const answer = await request(base, 'POST', '/api/v1/trust', { body: {} });
    expect(answer.status).toBe(405);
    expect(answer.headers.get('allow')).toBe('GET');
  });

  it('never carries key material, a certificate or the token secret', () => {
    const all = seen.join('\n');
    expect(all).not.toMatch(/PRIVATE KEY|BEGIN CERTIFICATE|BEGIN/);
    expect(all).not.toContain(authority.tokenSecret().toString('base64'));
    expect(all).not.toContain(TOKEN);
  });
});

describe('the dashboard files', () => {
  it('serves the page open, under a same-origin content security policy', async () => {
    const page = await request(base, 'GET', '/', { token: null });
    expect(page.status).toBe(200);
    expect(page.headers.get('content-type')).toContain('text/html');
    expect(page.headers.get('content-security-policy')).toContain("default-src 'self'");
    expect(page.text).toContain('<script type="module" src="/app.js"></script>');
    for (const asset of ['/app.js', '/api.js', '/views.js', '/dom.js', '/dashboard.css', '/favicon.svg']) {
      const answer = await request(base, 'GET', asset, { token: null });
      expect(answer.status, asset).toBe(200);
    }
    expect((await request(base, 'GET', '/app.js', { token: null })).headers.get('content-type')).toContain('javascript');
  });

  it('serves nothing else of its folder, and the API stays behind its token', async () => {
    for (const path of ['/tsconfig.json', '/types.d.ts', '/../package.json', '/%2e%2e/package.json']) {
      expect((await request(base, 'GET', path, { token: null })).status, path).toBe(404);
    }
    expect((await request(base, 'GET', '/api/v1/clusters', { token: null })).status).toBe(401);
  });
});
