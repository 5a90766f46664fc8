// A root whose key never enters the state dir, and roots made elsewhere (by openssl) imported into meshfed.
import { createPrivateKey, generateKeyPairSync, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, test } from 'vitest';
import { signIntermediateCsr, TrustAuthority } from '../../src/trust/authority.js';
import { createCsr } from '../../src/trust/csr.js';
import {
  certificateNames,
  listFiles,
  makeWorkload,
  must,
  openssl,
  snapshotDir,
  spiffeId,
  TempDirs,
  TRUST_DOMAIN,
  verifyChain,
  writeFiles,
} from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

/** The base64 body of a PEM block, without armour or line breaks. */
const pemBody = (pem: string): string => pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');

/** Files in `dir` (relative names) whose content contains `needle`. */
const filesContaining = (dir: string, needle: string): string[] =>
  listFiles(dir).filter((name) => readFileSync(join(dir, name), 'utf8').replace(/\s+/g, '').includes(needle.replace(/\s+/g, '')));

describe('offline root', () => {
  let work: string;
  let dir: string;
  let authority: TrustAuthority;
  let rootKeyPem: string;

  // A fresh CA per test: the offline flow changes state, and no test should depend on another.
  beforeEach(() => {
    work = tmp.make();
    dir = join(work, 'ca');
    const created = TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN, offlineRoot: true }, {});
    authority = created.authority;
    rootKeyPem = must(created.offlineRootKeyPem, 'offlineRootKeyPem');
  });

  test('init returns the root key once and keeps no private key in the state dir', () => {
    expect(rootKeyPem).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
    expect(authority.isOfflineRoot()).toBe(true);
    const root = must(authority.roots()[0], 'root');
    expect(root.checkPrivateKey(createPrivateKey(rootKeyPem))).toBe(true);
    expect(listFiles(dir).length).toBeGreaterThan(0);
    expect(filesContaining(dir, 'PRIVATE KEY')).toEqual([]);
    expect(filesContaining(dir, pemBody(rootKeyPem))).toEqual([]);
    // Reopening does not bring it back.
    expect(TrustAuthority.open(dir, {}).isOfflineRoot()).toBe(true);
  });

  test('issueIntermediate refuses, saying the root is offline, and writes nothing', () => {
    const before = snapshotDir(dir);
    expect(() => authority.issueIntermediate('east-1')).toThrow(/root key is offline/);
    expect(snapshotDir(dir)).toEqual(before);
  });

  test('intermediateCsr → signIntermediateCsr → importIntermediate yields an intermediate whose leaves openssl verifies', async () => {
    const csrPem = authority.intermediateCsr('east-1');
    const csrCheck = await openssl(['req', '-noout', '-verify'], csrPem);
    expect(csrCheck.output).toMatch(/verify OK|Certificate request self-signature verify OK/);
    expect(authority.intermediates().find((i) => i.cluster === 'east-1')?.pendingCsr).toBe(true);

    const certPem = signIntermediateCsr({ rootCertPem: authority.bundlePem(), rootKeyPem, csrPem, cluster: 'east-1', trustDomain: TRUST_DOMAIN });
    const imported = authority.importIntermediate('east-1', certPem);
    expect(imported.ca).toBe(true);
    expect(authority.intermediates().find((i) => i.cluster === 'east-1')?.pendingCsr).toBe(false);

    const material = authority.deliver('east-1');
    expect(material['ca-cert.pem']).toBe(imported.toString());
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web') });
    const result = await verifyChain(work, { roots: material['root-cert.pem'], intermediates: material['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.output).toMatch(/leaf\.pem: OK/);
    expect(result.ok).toBe(true);

    // The cluster key is now in the state dir, the root key still is not.
    expect(filesContaining(dir, pemBody(rootKeyPem))).toEqual([]);
    expect(filesContaining(dir, 'PRIVATE KEY').every((name) => name.startsWith('clusters/east-1/'))).toBe(true);
  });

  test('importing a certificate for a different key is refused and writes nothing', () => {
    const csrPem = authority.intermediateCsr('west-1');
    const otherCsr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const wrongCert = signIntermediateCsr({ rootCertPem: authority.bundlePem(), rootKeyPem, csrPem: otherCsr, cluster: 'west-1', trustDomain: TRUST_DOMAIN });
    const before = snapshotDir(dir);
    expect(() => authority.importIntermediate('west-1', wrongCert)).toThrow(/not for cluster west-1's pending CSR \(public key differs\)/);
    expect(snapshotDir(dir)).toEqual(before);

    // The pending CSR is still there: the right certificate is accepted afterwards.
    const rightCert = signIntermediateCsr({ rootCertPem: authority.bundlePem(), rootKeyPem, csrPem, cluster: 'west-1', trustDomain: TRUST_DOMAIN });
    expect(authority.importIntermediate('west-1', rightCert).serialNumber).toBe(new X509Certificate(rightCert).serialNumber);
  });

  test('importing an intermediate signed by a root outside the bundle is refused', () => {
    const foreign = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN, offlineRoot: true }, {});
    const csrPem = authority.intermediateCsr('south-1');
    const certPem = signIntermediateCsr({
      rootCertPem: foreign.authority.bundlePem(),
      rootKeyPem: must(foreign.offlineRootKeyPem, 'foreign root key'),
      csrPem,
      cluster: 'south-1',
      trustDomain: TRUST_DOMAIN,
    });
    const before = snapshotDir(dir);
    expect(() => authority.importIntermediate('south-1', certPem)).toThrow(/not signed by any root of this trust domain/);
    expect(snapshotDir(dir)).toEqual(before);
  });

  /** The whole offline flow for one cluster, as the operator runs it. */
  const importVia = (cluster: string): X509Certificate =>
    authority.importIntermediate(
      cluster,
      signIntermediateCsr({ rootCertPem: authority.bundlePem(), rootKeyPem, csrPem: authority.intermediateCsr(cluster), cluster, trustDomain: TRUST_DOMAIN }),
    );

  test('importing without a pending CSR is refused', () => {
    const csrPem = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
    const certPem = signIntermediateCsr({ rootCertPem: authority.bundlePem(), rootKeyPem, csrPem, cluster: 'north-1', trustDomain: TRUST_DOMAIN });
    const before = snapshotDir(dir);
    expect(() => authority.importIntermediate('north-1', certPem)).toThrow(/north-1 has no pending CSR/);
    expect(snapshotDir(dir)).toEqual(before);
    // Nor can a cluster import twice for one CSR.
    importVia('east-1');
    expect(() => authority.importIntermediate('east-1', authority.deliver('east-1')['ca-cert.pem'])).toThrow(/east-1 has no pending CSR/);
  });

  test('renewDue reports due intermediates as needing the offline root instead of failing', () => {
    const serials = ['east-1', 'west-1'].map((cluster) => importVia(cluster).serialNumber);
    const later = new Date(Date.now() + 300 * 86_400_000);
    const before = snapshotDir(dir, { identity: false });
    const result = authority.renewDue(later);
    expect(result.renewed).toEqual([]);
    expect(result.needsOfflineRoot).toEqual(['east-1', 'west-1']);
    expect(snapshotDir(dir, { identity: false })).toEqual(before);
    expect(authority.intermediates().map((i) => i.serial)).toEqual(serials);
    // Not yet due: nothing to report.
    expect(authority.renewDue(new Date(Date.now() + 86_400_000))).toEqual({ renewed: [], needsOfflineRoot: [] });
  });
});

describe('a root imported from openssl', () => {
  let work: string;
  let rootCertPem: string;
  let rootKeyPem: string;

  beforeAll(async () => {
    work = tmp.make();
    // string_mask=default makes openssl encode the names as PrintableString (meshfed writes UTF8String).
    const files = writeFiles(work, {
      'root.cnf': [
        '[req]',
        'distinguished_name = dn',
        'string_mask = default',
        'prompt = no',
        'x509_extensions = v3_root',
        '[dn]',
        '[v3_root]',
        'basicConstraints = critical,CA:true',
        'keyUsage = critical,keyCertSign,cRLSign',
        'subjectKeyIdentifier = hash',
        'authorityKeyIdentifier = keyid:always',
        '',
      ].join('\n'),
    });
    const made = await openssl([
      'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(work, 'root-key.pem'), '-out', join(work, 'root-cert.pem'),
      '-days', '3650', '-subj', '/C=US/O=Acme/CN=Acme Root', '-config', files['root.cnf'],
    ]);
    expect(made.ok, made.output).toBe(true);
    rootCertPem = readFileSync(join(work, 'root-cert.pem'), 'utf8');
    rootKeyPem = readFileSync(join(work, 'root-key.pem'), 'utf8');
    const parsed = await openssl(['asn1parse'], rootCertPem);
    expect(parsed.stdout).toMatch(/PRINTABLESTRING\s*:Acme Root/);
  });

  test('with its key: intermediates copy the issuer name byte for byte and leaves verify with openssl', async () => {
    const { authority } = TrustAuthority.init(join(work, 'online'), { trustDomain: TRUST_DOMAIN, importRoot: { certPem: rootCertPem, keyPem: rootKeyPem } }, {});
    expect(authority.isOfflineRoot()).toBe(false);
    expect(authority.bundlePem()).toBe(new X509Certificate(rootCertPem).toString());
    authority.issueIntermediate('east-1');
    const material = authority.deliver('east-1');

    const root = new X509Certificate(rootCertPem);
    const intermediate = new X509Certificate(material['ca-cert.pem']);
    expect(certificateNames(intermediate).issuer.equals(certificateNames(root).subject)).toBe(true);
    expect((await openssl(['asn1parse'], material['ca-cert.pem'])).stdout).toMatch(/PRINTABLESTRING\s*:Acme Root/);

    for (const keyType of ['ec-p256', 'rsa-2048'] as const) {
      const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), keyType });
      const result = await verifyChain(work, { roots: material['root-cert.pem'], intermediates: material['ca-cert.pem'], leaf: workload.leafPem });
      expect(result.output).toMatch(/leaf\.pem: OK/);
      expect(result.ok).toBe(true);
    }
  });

  test('without its key: the root is offline and the openssl key signs intermediates through the CSR flow', async () => {
    const dir = join(work, 'offline');
    const { authority, offlineRootKeyPem } = TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN, importRoot: { certPem: rootCertPem } }, {});
    expect(offlineRootKeyPem).toBeUndefined();
    expect(authority.isOfflineRoot()).toBe(true);
    expect(filesContaining(dir, 'PRIVATE KEY')).toEqual([]);
    const csrPem = authority.intermediateCsr('west-1');
    authority.importIntermediate('west-1', signIntermediateCsr({ rootCertPem, rootKeyPem, csrPem, cluster: 'west-1', trustDomain: TRUST_DOMAIN }));
    const material = authority.deliver('west-1');
    expect(certificateNames(new X509Certificate(material['ca-cert.pem'])).issuer.equals(certificateNames(new X509Certificate(rootCertPem)).subject)).toBe(true);
    const workload = makeWorkload(authority, { cluster: 'west-1', spiffeId: spiffeId('default', 'web') });
    const result = await verifyChain(work, { roots: material['root-cert.pem'], intermediates: material['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.output).toMatch(/leaf\.pem: OK/);
    expect(result.ok).toBe(true);
  });

  test('a key that does not belong to the imported root is refused', () => {
    const otherKey = generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey.export({ type: 'pkcs8', format: 'pem' }).toString();
    const dir = join(work, 'mismatch');
    expect(() => TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN, importRoot: { certPem: rootCertPem, keyPem: otherKey } }, {})).toThrow(
      /root key does not belong to the root certificate/,
    );
    expect(listFiles(work).some((name) => name.startsWith('mismatch/'))).toBe(false);
  });
});
