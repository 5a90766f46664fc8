// Chains made by the authority, checked by the real `openssl verify -x509_strict`.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_TRUST_POLICY, type KeyType } from '../../src/model/trust-policy.js';
import { TrustAuthority, type ClusterMaterial } from '../../src/trust/authority.js';
import { spkiDer } from '../../src/trust/keys.js';
import { derToPem, issuerInfo, LeafIssuer } from '../../src/trust/x509.js';
import { makeWorkload, must, spiffeId, TempDirs, TRUST_DOMAIN, verifyChain, workloadKey, type WorkloadKeyType } from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

let work: string;
let authority: TrustAuthority;
const material = new Map<string, ClusterMaterial>();
const materialOf = (cluster: string): ClusterMaterial => must(material.get(cluster), `delivered material for ${cluster}`);

beforeAll(() => {
  work = tmp.make();
  authority = TrustAuthority.init(join(work, 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  for (const cluster of ['east-1', 'west-1']) {
    authority.issueIntermediate(cluster);
    material.set(cluster, authority.deliver(cluster));
  }
});

describe('openssl verify -x509_strict accepts what the authority issues', () => {
  const cases: [string, WorkloadKeyType][] = [
    ['east-1', 'ec-p256'],
    ['east-1', 'rsa-2048'],
    ['west-1', 'ec-p256'],
    ['west-1', 'rsa-2048'],
  ];
  test.each(cases)('a leaf from %s with a %s workload key verifies against root-cert.pem through ca-cert.pem', async (cluster, keyType) => {
    const cm = materialOf(cluster);
    const workload = makeWorkload(authority, { cluster, spiffeId: spiffeId('default', `web-${keyType}`), keyType });
    expect(workload.intermediatePem).toBe(cm['ca-cert.pem']);
    const result = await verifyChain(work, { roots: cm['root-cert.pem'], intermediates: cm['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.output).toMatch(/leaf\.pem: OK/);
    expect(result.ok).toBe(true);
  });

  test('a leaf of east-1 does not verify through the west-1 intermediate (clusters are separate CAs)', async () => {
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web') });
    const west = materialOf('west-1');
    const result = await verifyChain(work, { roots: west['root-cert.pem'], intermediates: west['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.ok).toBe(false);
  });

  const caKeyTypes: { keyType: KeyType; bits: number; curve?: string }[] = [
    { keyType: 'ec-p256', bits: 256, curve: 'prime256v1' },
    { keyType: 'ec-p384', bits: 384, curve: 'secp384r1' },
    { keyType: 'rsa-3072', bits: 3072 },
  ];
  test.each(caKeyTypes)('root and intermediates of key type $keyType sign leaves openssl accepts', async ({ keyType, curve, bits }) => {
    const policy = { ...DEFAULT_TRUST_POLICY, keyTypes: { ...DEFAULT_TRUST_POLICY.keyTypes, root: keyType, intermediate: keyType } };
    const { authority: ca } = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN, keyType, policy }, {});
    ca.issueIntermediate('east-1');
    const cm = ca.deliver('east-1');
    for (const pem of [cm['root-cert.pem'], cm['ca-cert.pem']]) {
      const details = new X509Certificate(pem).publicKey.asymmetricKeyDetails;
      if (curve) expect(details?.namedCurve).toBe(curve);
      else expect(details?.modulusLength).toBe(bits);
    }
    for (const workloadKeyType of ['ec-p256', 'rsa-2048'] as const) {
      const workload = makeWorkload(ca, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), keyType: workloadKeyType });
      const result = await verifyChain(work, { roots: cm['root-cert.pem'], intermediates: cm['ca-cert.pem'], leaf: workload.leafPem });
      expect(result.output).toMatch(/leaf\.pem: OK/);
      expect(result.ok).toBe(true);
    }
  });

  test('an rsa-4096 root signs intermediates whose leaves openssl accepts', async () => {
    const { authority: ca } = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN, keyType: 'rsa-4096' }, {});
    ca.issueIntermediate('west-1');
    const cm = ca.deliver('west-1');
    expect(new X509Certificate(cm['root-cert.pem']).publicKey.asymmetricKeyDetails?.modulusLength).toBe(4096);
    const workload = makeWorkload(ca, { cluster: 'west-1', spiffeId: spiffeId('default', 'web') });
    const result = await verifyChain(work, { roots: cm['root-cert.pem'], intermediates: cm['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.output).toMatch(/leaf\.pem: OK/);
    expect(result.ok).toBe(true);
  });
});

describe('openssl verify rejects what must not be trusted', () => {
  test('signWorkload refuses a SPIFFE ID of another trust domain', () => {
    const key = workloadKey();
    expect(() => makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web', 'evil.org'), key })).toThrow(
      /spiffe:\/\/evil\.org\/ns\/default\/sa\/web is outside trust domain example\.org/,
    );
  });

  test('a leaf for another trust domain, signed directly with a genuine cluster intermediate, fails the name constraint', async () => {
    const cm = materialOf('east-1');
    const issuer = new LeafIssuer(issuerInfo(new X509Certificate(cm['ca-cert.pem']), createPrivateKey(cm['ca-key.pem'])));
    const spki = spkiDer(workloadKey());
    const now = Date.now();
    const issue = (id: string): string =>
      derToPem(issuer.issue({ spki, spiffeId: id, notBefore: new Date(now - 60_000), notAfter: new Date(now + 3_600_000) }, false));
    const chain = { roots: cm['root-cert.pem'], intermediates: cm['ca-cert.pem'] };

    // Control: the same hand-made issuance inside the trust domain is accepted, so only the name differs.
    const inside = await verifyChain(work, { ...chain, leaf: issue(spiffeId('default', 'web')) });
    expect(inside.ok).toBe(true);

    const outside = await verifyChain(work, { ...chain, leaf: issue(spiffeId('default', 'web', 'evil.org')) });
    expect(outside.ok).toBe(false);
    expect(outside.output).toMatch(/permitted subtree violation/);
  });

  test('an expired leaf is rejected as expired', async () => {
    const cm = materialOf('west-1');
    const workload = makeWorkload(authority, { cluster: 'west-1', spiffeId: spiffeId('default', 'web'), ttl: '1h', now: new Date(Date.now() - 3 * 86_400_000) });
    expect(workload.signed.notAfter.getTime()).toBeLessThan(Date.now());
    const result = await verifyChain(work, { roots: cm['root-cert.pem'], intermediates: cm['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.ok).toBe(false);
    expect(result.output).toMatch(/certificate has expired/);
  });

  test('a leaf under a foreign root of the same trust domain name is rejected', async () => {
    const { authority: foreign } = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {});
    foreign.issueIntermediate('east-1');
    const foreignWorkload = makeWorkload(foreign, { cluster: 'east-1', spiffeId: spiffeId('default', 'web') });
    const ours = materialOf('east-1');

    // Its own chain is fine under its own root...
    const ownChain = await verifyChain(work, { roots: foreignWorkload.rootPem, intermediates: foreignWorkload.intermediatePem, leaf: foreignWorkload.leafPem });
    expect(ownChain.ok).toBe(true);
    // ...but not under ours, whichever intermediate is offered.
    for (const intermediates of [foreignWorkload.intermediatePem, ours['ca-cert.pem']]) {
      const result = await verifyChain(work, { roots: ours['root-cert.pem'], intermediates, leaf: foreignWorkload.leafPem });
      expect(result.ok).toBe(false);
      expect(result.output).toMatch(/unable to get local issuer certificate|certificate signature failure/);
    }
  });
});
