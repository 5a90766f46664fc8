// Root rotation bookkeeping, intermediate renewal and the SPIFFE bundle.
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, describe, expect, test } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import { makeWorkload, must, pemCertificates, spiffeId, TempDirs, TRUST_DOMAIN, verifyChain } from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

const YEAR_MS = 365 * 86_400_000;

/** A fresh CA with east-1 and west-1 intermediates, both delivered. */
function federation(now?: Date): { authority: TrustAuthority; work: string; dir: string } {
  const work = tmp.make();
  const dir = join(work, 'ca');
  const authority = TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN, ...(now ? { now } : {}) }, {}).authority;
  for (const cluster of ['east-1', 'west-1']) {
    authority.issueIntermediate(cluster, now ? { now } : {});
    authority.deliver(cluster);
  }
  return { authority, work, dir };
}

const fingerprints = (pem: string): string[] => pemCertificates(pem).map((c) => c.fingerprint256);

describe('root rotation', () => {
  test('advanceRotation refuses, naming the cluster, while a cluster has not been delivered the two-root bundle', () => {
    const { authority } = federation();
    authority.startRotation();
    authority.deliver('east-1');
    expect(() => authority.advanceRotation()).toThrow(/west-1/);
    expect(() => authority.advanceRotation()).not.toThrow(/east-1/);
    expect(authority.rotationStatus().phase).toBe('bundle-added');
    authority.deliver('west-1');
    expect(authority.advanceRotation().phase).toBe('intermediates-reissued');
  });

  test('advanceRotation refuses to remove the old root while a cluster lacks its reissued intermediate', () => {
    const { authority } = federation();
    authority.startRotation();
    authority.deliver('east-1');
    authority.deliver('west-1');
    authority.advanceRotation();
    authority.deliver('west-1');
    expect(() => authority.advanceRotation()).toThrow(/east-1/);
    expect(authority.roots()).toHaveLength(2);
  });

  test('the refusal survives a restart: the delivery record is persisted', () => {
    const { authority, dir } = federation();
    authority.startRotation();
    authority.deliver('east-1');
    const reopened = TrustAuthority.open(dir, {});
    expect(() => reopened.advanceRotation()).toThrow(/west-1/);
    reopened.deliver('west-1');
    expect(TrustAuthority.open(dir, {}).advanceRotation().phase).toBe('intermediates-reissued');
  });

  test('rotationStatus shows each step, what it waits for, and what to do next', () => {
    const { authority } = federation();
    const idle = authority.rotationStatus();
    expect(idle.phase).toBe('none');
    expect(idle.steps).toEqual([]);

    const started = authority.startRotation();
    expect(started.phase).toBe('bundle-added');
    expect(started.oldRootId).toBe(must(authority.rotationStatus().oldRootId, 'old root id'));
    expect(started.newRootId).not.toBe(started.oldRootId);
    expect(started.steps.map((s) => s.step)).toEqual([
      'step 1: new root in every bundle',
      'step 2: intermediates reissued under the new root',
      'step 3: old root removed from every bundle',
    ]);
    expect(started.steps[0]).toEqual({ step: 'step 1: new root in every bundle', done: false, waitingFor: ['east-1', 'west-1'] });
    expect(started.next).toMatch(/deliver the two-root bundle to east-1, west-1/);

    authority.deliver('east-1');
    expect(authority.rotationStatus().steps[0]?.waitingFor).toEqual(['west-1']);
    authority.deliver('west-1');
    const ready = authority.rotationStatus();
    expect(ready.steps[0]?.done).toBe(true);
    expect(ready.next).toMatch(/advance/);

    const reissued = authority.advanceRotation();
    expect(reissued.phase).toBe('intermediates-reissued');
    expect(reissued.steps[0]?.done).toBe(true);
    expect(reissued.steps[1]).toEqual({ step: 'step 2: intermediates reissued under the new root', done: false, waitingFor: ['east-1', 'west-1'] });
    for (const cluster of ['east-1', 'west-1']) authority.deliver(cluster);
    expect(authority.rotationStatus().steps[1]?.done).toBe(true);

    const finished = authority.advanceRotation();
    expect(finished.phase).toBe('none');
    // The one-root bundle has not reached the clusters yet: status says so.
    expect(finished.steps).toEqual([{ step: 'deliver the current bundle', done: false, waitingFor: ['east-1', 'west-1'] }]);
    for (const cluster of ['east-1', 'west-1']) authority.deliver(cluster);
    expect(authority.rotationStatus().steps).toEqual([]);
  });

  test('a second rotation cannot start while one is under way; advance and abort need one', () => {
    const { authority } = federation();
    expect(() => authority.advanceRotation()).toThrow(/no root rotation is under way/);
    expect(() => authority.abortRotation()).toThrow(/no root rotation is under way/);
    authority.startRotation();
    expect(() => authority.startRotation()).toThrow(/already under way/);
  });

  test('abortRotation after step 1 restores the single old root', () => {
    const { authority } = federation();
    const before = authority.bundlePem();
    authority.startRotation();
    expect(fingerprints(authority.bundlePem())).toHaveLength(2);
    const aborted = authority.abortRotation();
    expect(aborted.phase).toBe('none');
    expect(authority.bundlePem()).toBe(before);
  });

  test('abortRotation after step 2 restores the old root and reissues intermediates under it', async () => {
    const { authority, work } = federation();
    const before = authority.bundlePem();
    authority.startRotation();
    for (const cluster of ['east-1', 'west-1']) authority.deliver(cluster);
    authority.advanceRotation();
    authority.abortRotation();
    expect(authority.bundlePem()).toBe(before);
    for (const cluster of ['east-1', 'west-1']) {
      const material = authority.deliver(cluster);
      expect(material['root-cert.pem']).toBe(before);
      const workload = makeWorkload(authority, { cluster, spiffeId: spiffeId('default', 'web') });
      const result = await verifyChain(work, { roots: before, intermediates: material['ca-cert.pem'], leaf: workload.leafPem });
      expect(result.output).toMatch(/OK/);
      expect(result.ok).toBe(true);
    }
  });
});

describe('renewDue', () => {
  const issuedAt = new Date(Math.floor(Date.now() / 1000) * 1000);

  test('before 66% of the intermediate lifetime nothing is reissued', () => {
    const { authority } = federation(issuedAt);
    const serials = authority.intermediates().map((i) => i.serial);
    const result = authority.renewDue(new Date(issuedAt.getTime() + 0.6 * YEAR_MS));
    expect(result).toEqual({ renewed: [], needsOfflineRoot: [] });
    expect(authority.intermediates().map((i) => i.serial)).toEqual(serials);
  });

  test('past 66% of the intermediate lifetime every intermediate is reissued and signs leaves openssl accepts', async () => {
    const { authority, work } = federation(issuedAt);
    const before = new Map(authority.intermediates().map((i) => [i.cluster, i]));
    const renewAfter = new Date(must(before.get('east-1')?.renewAfter, 'renewAfter'));
    expect(renewAfter.getTime()).toBeGreaterThan(issuedAt.getTime() + 0.65 * YEAR_MS);
    expect(renewAfter.getTime()).toBeLessThan(issuedAt.getTime() + 0.67 * YEAR_MS);

    const now = new Date(issuedAt.getTime() + 0.7 * YEAR_MS);
    const result = authority.renewDue(now);
    expect(result.renewed.sort()).toEqual(['east-1', 'west-1']);
    for (const status of authority.intermediates()) {
      expect(status.serial).not.toBe(before.get(status.cluster)?.serial);
      expect(new Date(must(status.notAfter, 'notAfter')).getTime()).toBeGreaterThan(now.getTime() + 0.9 * YEAR_MS);
      expect(status.delivered).toBe(false);
    }
    // Renewed once, not again.
    expect(authority.renewDue(now).renewed).toEqual([]);

    const material = authority.deliver('east-1');
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), now });
    expect(workload.intermediatePem).toBe(material['ca-cert.pem']);
    const verified = await verifyChain(work, { roots: material['root-cert.pem'], intermediates: material['ca-cert.pem'], leaf: workload.leafPem }, [
      '-attime',
      String(Math.floor(now.getTime() / 1000) + 3600),
    ]);
    expect(verified.output).toMatch(/OK/);
    expect(verified.ok).toBe(true);
  });
});

describe('SPIFFE trust bundle (JWKS)', () => {
  test('each key is an x509-svid key with exactly one certificate, the PEM root', () => {
    const { authority } = federation();
    const jwks = authority.bundleJwks();
    expect(jwks.keys).toHaveLength(1);
    const [key] = jwks.keys;
    expect(key?.use).toBe('x509-svid');
    expect(key?.x5c).toHaveLength(1);
    const fromJwks = new X509Certificate(Buffer.from(must(key?.x5c[0], 'x5c'), 'base64'));
    expect(fromJwks.raw.equals(must(pemCertificates(authority.bundlePem())[0], 'PEM root').raw)).toBe(true);
    // The JWK's public key is the certificate's.
    expect(key?.kty).toBe('EC');
    expect(key?.crv).toBe('P-256');
    expect(fromJwks.publicKey.export({ format: 'jwk' })).toMatchObject({ x: key?.x, y: key?.y });
    expect(JSON.stringify(jwks)).not.toMatch(/"d"/);
    expect(jwks.spiffe_refresh_hint).toBe(300);
  });

  test('spiffe_sequence increases when a rotation starts and when the old root is removed; the keys follow the roots', () => {
    const { authority } = federation();
    const initial = authority.bundleJwks();
    authority.startRotation();
    const during = authority.bundleJwks();
    expect(during.spiffe_sequence).toBeGreaterThan(initial.spiffe_sequence);
    expect(during.keys).toHaveLength(2);
    // As served (JSON): every key is an X.509-SVID key carrying one certificate.
    const wire = JSON.parse(JSON.stringify(during)) as { keys: { use: unknown; x5c: unknown[] }[] };
    expect(wire.keys.map((k) => [k.use, k.x5c.length])).toEqual([
      ['x509-svid', 1],
      ['x509-svid', 1],
    ]);
    for (const cluster of ['east-1', 'west-1']) authority.deliver(cluster);
    authority.advanceRotation();
    const reissued = authority.bundleJwks();
    expect(reissued.spiffe_sequence).toBe(during.spiffe_sequence);
    for (const cluster of ['east-1', 'west-1']) authority.deliver(cluster);
    authority.advanceRotation();
    const after = authority.bundleJwks();
    expect(after.spiffe_sequence).toBeGreaterThan(during.spiffe_sequence);
    expect(after.keys).toHaveLength(1);
    expect(after.keys[0]?.x5c).toEqual(during.keys[1]?.x5c);
    expect(after.keys[0]?.x5c).not.toEqual(initial.keys[0]?.x5c);
    const pemRoot = must(pemCertificates(authority.bundlePem())[0], 'PEM root');
    expect(after.keys[0]?.x5c[0]).toBe(pemRoot.raw.toString('base64'));
  });
});
