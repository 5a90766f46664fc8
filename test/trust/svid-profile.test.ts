// The X.509-SVID and intermediate profiles, read back with `openssl x509 -text` and Node's X509Certificate.
import { createPrivateKey, X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TrustAuthority, type ClusterMaterial } from '../../src/trust/authority.js';
import { createCsr } from '../../src/trust/csr.js';
import {
  extensionNames,
  extensionText,
  makeWorkload,
  must,
  openssl,
  opensslText,
  pemCertificates,
  spiffeId,
  TempDirs,
  TRUST_DOMAIN,
  workloadKey,
  writeFiles,
  type ExtensionText,
} from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

let work: string;
let authority: TrustAuthority;
let east: ClusterMaterial;

const ext = (text: string, name: string): ExtensionText => must(extensionText(text, name), `extension "${name}" in\n${text}`);

beforeAll(() => {
  work = tmp.make();
  authority = TrustAuthority.init(join(work, 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  authority.issueIntermediate('east-1');
  east = authority.deliver('east-1');
});

describe('X.509-SVID profile', () => {
  test('the leaf carries exactly one URI SAN, the requested SPIFFE ID, whatever SANs the CSR asked for; ignoredSans lists them', async () => {
    const dir = tmp.make();
    const req = await openssl([
      'req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes',
      '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'csr.pem'),
      '-subj', '/CN=admin.evil.example.com',
      '-addext', 'subjectAltName=DNS:evil.example.com,URI:spiffe://example.org/ns/kube-system/sa/admin,IP:10.0.0.1',
    ]);
    expect(req.ok, req.output).toBe(true);
    const csr = readFileSync(join(dir, 'csr.pem'), 'utf8');
    const requested = spiffeId('default', 'web');
    const signed = authority.signWorkload({ cluster: 'east-1', csr, spiffeId: requested });

    expect(signed.spiffeId).toBe(requested);
    expect(signed.ignoredSans).toEqual(['DNS:evil.example.com', 'URI:spiffe://example.org/ns/kube-system/sa/admin', 'IP:0a000001']);

    const leafPem = must(signed.certChain[0], 'leaf');
    const leaf = new X509Certificate(leafPem);
    expect(leaf.subjectAltName).toBe(`URI:${requested}`);
    expect(leaf.subject || '').toBe(''); // Node reports an empty subject as undefined
    expect(leaf.checkHost('evil.example.com')).toBeUndefined();
    expect(leaf.checkIP('10.0.0.1')).toBeUndefined();

    const text = await opensslText(leafPem);
    const san = ext(text, 'X509v3 Subject Alternative Name');
    expect(san.critical).toBe(true); // the subject is empty, so RFC 5280 wants the SAN critical
    expect(san.value).toBe(`URI:${requested}`);
    expect(text).not.toMatch(/evil|kube-system|10\.0\.0\.1/);
  });

  test('an EC leaf: CA:FALSE, critical key usage Digital Signature only, EKU server and client auth', async () => {
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), keyType: 'ec-p256' });
    const text = await opensslText(workload.leafPem);
    expect(ext(text, 'X509v3 Basic Constraints')).toEqual({ critical: true, value: 'CA:FALSE' });
    expect(ext(text, 'X509v3 Key Usage')).toEqual({ critical: true, value: 'Digital Signature' });
    expect(text).not.toMatch(/Certificate Sign/);
    expect(ext(text, 'X509v3 Extended Key Usage').value).toBe('TLS Web Server Authentication, TLS Web Client Authentication');
    const leaf = new X509Certificate(workload.leafPem);
    expect(leaf.ca).toBe(false);
    expect(leaf.keyUsage).toEqual(['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2']);
    // The leaf names its issuer by key: AKI = the intermediate's SKI.
    const intermediateText = await opensslText(east['ca-cert.pem']);
    expect(ext(text, 'X509v3 Authority Key Identifier').value).toContain(ext(intermediateText, 'X509v3 Subject Key Identifier').value);
  });

  test('an RSA leaf: key usage Digital Signature and Key Encipherment, still no Certificate Sign', async () => {
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), keyType: 'rsa-2048' });
    const text = await opensslText(workload.leafPem);
    expect(ext(text, 'X509v3 Key Usage')).toEqual({ critical: true, value: 'Digital Signature, Key Encipherment' });
    expect(ext(text, 'X509v3 Basic Constraints').value).toBe('CA:FALSE');
    expect(text).not.toMatch(/Certificate Sign/);
  });

  test('serial numbers are positive and unique over 200 leaves of the same CSR', async () => {
    const csr = createCsr(workloadKey());
    const serials = new Set<string>();
    let first = '';
    for (let i = 0; i < 200; i++) {
      const signed = authority.signWorkload({ cluster: 'east-1', csr, spiffeId: spiffeId('default', 'web') });
      const leafPem = must(signed.certChain[0], 'leaf');
      if (i === 0) first = leafPem;
      const serial = new X509Certificate(leafPem).serialNumber;
      expect(serial).toMatch(/^[0-9A-F]+$/);
      expect(BigInt(`0x${serial}`)).toBeGreaterThan(0n);
      serials.add(serial);
    }
    expect(serials.size).toBe(200);
    // openssl prints a negative serial with a leading "-": make sure it reads the same positive number.
    const printed = await openssl(['x509', '-noout', '-serial'], first);
    expect(printed.stdout.trim()).toBe(`serial=${new X509Certificate(first).serialNumber}`);
  });

  test('the default lifetime is 24h', () => {
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), now });
    const leaf = new X509Certificate(workload.leafPem);
    expect(new Date(leaf.validTo).getTime() - now.getTime()).toBe(24 * 3_600_000);
    expect(workload.signed.notAfter.getTime()).toBe(new Date(leaf.validTo).getTime());
    expect(new Date(leaf.validFrom).getTime()).toBeLessThanOrEqual(now.getTime());
  });

  test('a leaf never outlives its intermediate', () => {
    const shortLived = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
    const intermediate = shortLived.issueIntermediate('east-1', { ttl: '30d' });
    const workload = makeWorkload(shortLived, { cluster: 'east-1', spiffeId: spiffeId('default', 'web'), ttl: '90d' });
    const leaf = new X509Certificate(workload.leafPem);
    expect(new Date(leaf.validTo).getTime()).toBe(new Date(intermediate.validTo).getTime());
    expect(workload.signed.notAfter.getTime()).toBe(new Date(intermediate.validTo).getTime());
  });

  test('a lifetime above the policy maximum of 90d is refused; 90d itself is granted', () => {
    const csr = createCsr(workloadKey());
    const id = spiffeId('default', 'web');
    expect(() => authority.signWorkload({ cluster: 'east-1', csr, spiffeId: id, ttl: '91d' })).toThrow(/exceeds the policy maximum of 90d/);
    expect(() => authority.signWorkload({ cluster: 'east-1', csr, spiffeId: id, ttl: 91 * 86_400_000 })).toThrow(/exceeds the policy maximum of 90d/);
    const now = new Date(Math.floor(Date.now() / 1000) * 1000);
    const signed = authority.signWorkload({ cluster: 'east-1', csr, spiffeId: id, ttl: '90d', now });
    expect(new Date(new X509Certificate(must(signed.certChain[0], 'leaf')).validTo).getTime() - now.getTime()).toBe(90 * 86_400_000);
  });
});

describe('intermediate CA profile', () => {
  test('CA:TRUE critical with pathlen 0, keyCertSign and cRLSign critical, SKI and AKI, name constraint permitting the trust domain', async () => {
    const text = await opensslText(east['ca-cert.pem']);
    expect(ext(text, 'X509v3 Basic Constraints')).toEqual({ critical: true, value: 'CA:TRUE, pathlen:0' });
    expect(ext(text, 'X509v3 Key Usage')).toEqual({ critical: true, value: 'Certificate Sign, CRL Sign' });
    const nameConstraints = ext(text, 'X509v3 Name Constraints');
    expect(nameConstraints.critical).toBe(true);
    expect(nameConstraints.value.split('\n')).toEqual(['Permitted:', `URI:${TRUST_DOMAIN}`]);
    expect(text).not.toMatch(/Excluded:/);

    const ski = ext(text, 'X509v3 Subject Key Identifier').value;
    expect(ski).toMatch(/^([0-9A-F]{2}:){19}[0-9A-F]{2}$/);
    const rootText = await opensslText(east['root-cert.pem']);
    expect(ext(text, 'X509v3 Authority Key Identifier').value).toContain(ext(rootText, 'X509v3 Subject Key Identifier').value);
    expect(new Set(extensionNames(text))).toEqual(
      new Set(['X509v3 Basic Constraints', 'X509v3 Key Usage', 'X509v3 Subject Key Identifier', 'X509v3 Authority Key Identifier', 'X509v3 Name Constraints']),
    );
  });

  test('its subject names the trust domain and the cluster; it is issued by the root', () => {
    const intermediate = new X509Certificate(east['ca-cert.pem']);
    const root = new X509Certificate(east['root-cert.pem']);
    expect(intermediate.subject).toContain(`O=${TRUST_DOMAIN}`);
    expect(intermediate.subject).toContain('OU=east-1');
    expect(intermediate.ca).toBe(true);
    expect(intermediate.checkIssued(root)).toBe(true);
    expect(intermediate.verify(root.publicKey)).toBe(true);
    expect(root.checkIssued(root)).toBe(true);
    expect(intermediate.serialNumber).not.toBe(root.serialNumber);
  });

  test('the root is CA:TRUE critical with pathlen 1 and carries the trust domain name constraint', async () => {
    const text = await opensslText(east['root-cert.pem']);
    expect(ext(text, 'X509v3 Basic Constraints')).toEqual({ critical: true, value: 'CA:TRUE, pathlen:1' });
    expect(ext(text, 'X509v3 Name Constraints').value.split('\n')).toEqual(['Permitted:', `URI:${TRUST_DOMAIN}`]);
    expect(ext(text, 'X509v3 Key Usage')).toEqual({ critical: true, value: 'Certificate Sign, CRL Sign' });
    expect(ext(text, 'X509v3 Authority Key Identifier').value).toContain(ext(text, 'X509v3 Subject Key Identifier').value);
  });
});

describe("Istio's plug-in CA layout", () => {
  test('cert-chain.pem is the intermediate then the root; root-cert.pem holds the roots; ca-key.pem is the intermediate key', () => {
    expect(Object.keys(east).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    const chain = pemCertificates(east['cert-chain.pem']);
    expect(chain).toHaveLength(2);
    const [intermediate, root] = chain;
    expect(must(intermediate, 'intermediate').raw.equals(new X509Certificate(east['ca-cert.pem']).raw)).toBe(true);
    expect(must(root, 'root').raw.equals(must(authority.roots()[0], 'root').raw)).toBe(true);
    expect(east['root-cert.pem']).toBe(authority.bundlePem());
    expect(pemCertificates(east['root-cert.pem'])).toHaveLength(1);
    expect(new X509Certificate(east['ca-cert.pem']).checkPrivateKey(createPrivateKey(east['ca-key.pem']))).toBe(true);
    expect(east['ca-key.pem']).toMatch(/^-----BEGIN PRIVATE KEY-----\n/);
  });

  test('ca-key.pem, ca-cert.pem and cert-chain.pem as written out are accepted by openssl', async () => {
    const files = writeFiles(tmp.make(), east);
    const keyCheck = await openssl(['pkey', '-in', files['ca-key.pem'], '-noout']);
    expect(keyCheck.ok, keyCheck.output).toBe(true);
    const certPub = await openssl(['x509', '-in', files['ca-cert.pem'], '-noout', '-pubkey']);
    const keyPub = await openssl(['pkey', '-in', files['ca-key.pem'], '-pubout']);
    expect(certPub.stdout).toBe(keyPub.stdout);
    const verify = await openssl(['verify', '-x509_strict', '-CAfile', files['root-cert.pem'], files['cert-chain.pem']]);
    expect(verify.stdout).toMatch(/cert-chain\.pem: OK/);
  });
});
