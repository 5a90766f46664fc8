// Hostile input: every bad CSR, SPIFFE ID or certificate gets a clear error and changes nothing.
import { createPublicKey, generateKeyPairSync } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { DEFAULT_TRUST_POLICY } from '../../src/model/trust-policy.js';
import { signIntermediateCsr, TrustAuthority } from '../../src/trust/authority.js';
import { createCsr, CsrError } from '../../src/trust/csr.js';
import { makeWorkload, must, openssl, snapshotDir, spiffeId, TempDirs, TRUST_DOMAIN, workloadKey } from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

let work: string;
let dir: string;
let authority: TrustAuthority;

beforeAll(() => {
  work = tmp.make();
  dir = join(work, 'ca');
  authority = TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN }, {}).authority;
  authority.issueIntermediate('east-1');
  authority.deliver('east-1');
});

const WEB = spiffeId('default', 'web');

const derOf = (pem: string): Buffer => Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
const pemOf = (der: Buffer, label: string): string =>
  `-----BEGIN ${label}-----\n${must(der.toString('base64').match(/.{1,64}/g), 'base64 lines').join('\n')}\n-----END ${label}-----\n`;

/** Runs `sign` expecting it to throw a message matching `pattern`, and checks that the state dir did not change. */
function expectRefusedWithoutWrites(sign: () => unknown, pattern: RegExp): Error {
  const before = snapshotDir(dir);
  let caught: unknown;
  try {
    sign();
  } catch (error) {
    caught = error;
  }
  expect(snapshotDir(dir)).toEqual(before);
  expect(caught).toBeInstanceOf(Error);
  const error = caught as Error;
  expect(error.message).toMatch(pattern);
  return error;
}

const signCsr = (csr: string | Buffer, spiffe = WEB) => () => authority.signWorkload({ cluster: 'east-1', csr, spiffeId: spiffe });

/** A CSR made by `openssl req` with `-newkey ARGS`. */
async function opensslCsr(newkey: string[]): Promise<string> {
  const out = tmp.make();
  const result = await openssl(['req', '-new', ...newkey, '-nodes', '-keyout', join(out, 'key.pem'), '-out', join(out, 'csr.pem'), '-subj', '/CN=workload']);
  expect(result.ok, result.output).toBe(true);
  return readFileSync(join(out, 'csr.pem'), 'utf8');
}

describe('bad CSRs', () => {
  test('garbage instead of a PEM CSR is refused', () => {
    expectRefusedWithoutWrites(signCsr('hello, I am a CSR'), /no PEM "CERTIFICATE REQUEST" block found/);
  });

  test('a certificate where a CSR belongs is refused', () => {
    expectRefusedWithoutWrites(signCsr(authority.bundlePem()), /no PEM "CERTIFICATE REQUEST" block found/);
  });

  test('a PEM CSR block whose content is not DER is refused as malformed', () => {
    expectRefusedWithoutWrites(signCsr('-----BEGIN CERTIFICATE REQUEST-----\nAAAAAAAA\n-----END CERTIFICATE REQUEST-----\n'), /malformed CSR/);
    expectRefusedWithoutWrites(signCsr(Buffer.from('3082ffff0102', 'hex')), /malformed CSR/);
  });

  test('an empty CSR is refused', () => {
    expectRefusedWithoutWrites(signCsr(''), /CSR is empty/);
    expectRefusedWithoutWrites(signCsr(Buffer.alloc(0)), /CSR is empty/);
  });

  test('a CSR over the 8192-byte limit is refused; one under it is signed', () => {
    const key = workloadKey();
    const uris = (n: number): string[] => Array.from({ length: n }, (_, i) => `spiffe://example.org/ns/padding/sa/service-account-${i}`);
    const big = createCsr(key, { uris: uris(200) });
    expect(Buffer.byteLength(big)).toBeGreaterThan(8192);
    expectRefusedWithoutWrites(signCsr(big), new RegExp(`CSR is ${Buffer.byteLength(big)} bytes; the limit is 8192`));
    const small = createCsr(key, { uris: uris(60) });
    expect(Buffer.byteLength(small)).toBeLessThan(8192);
    expect(authority.signWorkload({ cluster: 'east-1', csr: small, spiffeId: WEB }).ignoredSans).toHaveLength(60);
  });

  test('a CSR with a flipped byte in its signature is refused', () => {
    const der = derOf(createCsr(workloadKey()));
    der[der.length - 1] = must(der[der.length - 1], 'last byte') ^ 0x01;
    expectRefusedWithoutWrites(signCsr(pemOf(der, 'CERTIFICATE REQUEST')), /CSR signature does not verify/);
  });

  test('a CSR whose public key was swapped for another is refused', () => {
    const key = workloadKey();
    const der = derOf(createCsr(key));
    const original = createPublicKey(key).export({ type: 'spki', format: 'der' });
    const other = createPublicKey(workloadKey()).export({ type: 'spki', format: 'der' });
    expect(other.length).toBe(original.length);
    const at = der.indexOf(original);
    expect(at).toBeGreaterThan(0);
    other.copy(der, at);
    expectRefusedWithoutWrites(signCsr(pemOf(der, 'CERTIFICATE REQUEST')), /CSR signature does not verify: the request was not signed by the key it carries/);
  });

  test('an RSA CSR from openssl with a tampered signature is refused, the untouched one is signed', async () => {
    const csr = await opensslCsr(['-newkey', 'rsa:2048']);
    expect(authority.signWorkload({ cluster: 'east-1', csr, spiffeId: WEB }).certChain).toHaveLength(3);
    const der = derOf(csr);
    der[der.length - 5] = must(der[der.length - 5], 'a signature byte') ^ 0x80;
    expectRefusedWithoutWrites(signCsr(pemOf(der, 'CERTIFICATE REQUEST')), /CSR signature does not verify/);
  });

  test.each([
    ['an Ed25519', ['-newkey', 'ed25519'], /^unsupported key type ed25519: use ECDSA \(P-256, P-384\) or RSA/],
    ['a P-521', ['-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-521'], /^unsupported EC curve secp521r1: use P-256 or P-384/],
    ['an RSA-1024', ['-newkey', 'rsa:1024'], /^unsupported RSA modulus of 1024 bits/],
  ])('%s CSR from openssl is refused as an unsupported key type', async (_name, newkey, pattern) => {
    const csr = await opensslCsr(newkey);
    const error = expectRefusedWithoutWrites(signCsr(csr), pattern);
    expect(error).toBeInstanceOf(CsrError);
  });

  test('a key type the trust policy does not allow for workloads is refused', () => {
    const policy = { ...DEFAULT_TRUST_POLICY, keyTypes: { ...DEFAULT_TRUST_POLICY.keyTypes, workload: ['ec-p256' as const] } };
    const strict = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN, policy }, {}).authority;
    strict.issueIntermediate('east-1');
    expect(() => makeWorkload(strict, { cluster: 'east-1', spiffeId: WEB, keyType: 'rsa-2048' })).toThrow(
      /workload key type rsa-2048 is not allowed by the trust policy \(allowed: ec-p256\)/,
    );
    expect(makeWorkload(strict, { cluster: 'east-1', spiffeId: WEB, keyType: 'ec-p256' }).signed.certChain).toHaveLength(3);
  });

  test('signIntermediateCsr refuses a bad CSR too', () => {
    const offline = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN, offlineRoot: true }, {});
    const base = { rootCertPem: offline.authority.bundlePem(), rootKeyPem: must(offline.offlineRootKeyPem, 'root key'), cluster: 'east-1', trustDomain: TRUST_DOMAIN };
    expect(() => signIntermediateCsr({ ...base, csrPem: 'garbage' })).toThrow(/no PEM "CERTIFICATE REQUEST" block found/);
    const der = derOf(offline.authority.intermediateCsr('east-1'));
    der[der.length - 1] = must(der[der.length - 1], 'last byte') ^ 0x01;
    expect(() => signIntermediateCsr({ ...base, csrPem: pemOf(der, 'CERTIFICATE REQUEST') })).toThrow(/CSR signature does not verify/);
  });
});

describe('bad SPIFFE IDs', () => {
  const csr = createCsr(generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey);
  test.each([
    ['no path', 'spiffe://example.org', /names a trust domain, not a workload: it needs a path/],
    ['a bare trailing slash', 'spiffe://example.org/', /path segments must not be empty/],
    ['an empty segment', 'spiffe://example.org/ns//sa/web', /path segments must not be empty/],
    ['an uppercase trust domain', 'spiffe://Example.org/ns/default/sa/web', /trust domain must be non-empty lowercase/],
    ['a port', 'spiffe://example.org:8443/ns/default/sa/web', /trust domain must be non-empty lowercase .*no port/],
    ['user info', 'spiffe://admin@example.org/ns/default/sa/web', /trust domain must be non-empty lowercase .*no user info/],
    ['a ".." segment', 'spiffe://example.org/ns/../sa/web', /must not be "\." or "\.\."/],
    ['a "." segment', 'spiffe://example.org/ns/./sa/web', /must not be "\." or "\.\."/],
    ['a query string', 'spiffe://example.org/ns/default/sa/web?admin=true', /without query or fragment/],
    ['a fragment', 'spiffe://example.org/ns/default/sa/web#x', /without query or fragment/],
    ['another scheme', 'https://example.org/ns/default/sa/web', /is not a SPIFFE ID/],
    ['a percent-encoded segment', 'spiffe://example.org/ns/def%41ult/sa/web', /may contain only letters, digits/],
    ['an empty string', '', /is not a SPIFFE ID/],
  ])('%s is refused', (_name, id, pattern) => {
    expectRefusedWithoutWrites(signCsr(csr, id), pattern);
  });

  test('an overlong SPIFFE ID is refused', () => {
    expectRefusedWithoutWrites(signCsr(csr, `spiffe://example.org/${'a'.repeat(2100)}`), /longer than 2048 bytes/);
  });
});

describe('bad certificates', () => {
  test('importIntermediate refuses garbage and damaged PEM without writing', () => {
    authority.intermediateCsr('west-1');
    expectRefusedWithoutWrites(() => authority.importIntermediate('west-1', 'garbage'), /intermediate certificate: no PEM certificate found/);
    expectRefusedWithoutWrites(
      () => authority.importIntermediate('west-1', '-----BEGIN CERTIFICATE-----\nMIIBAAAA\n-----END CERTIFICATE-----\n'),
      /intermediate certificate: certificate 1 is not valid X\.509/,
    );
  });

  test('init refuses a garbage root, a leaf as root, and two roots in one file, and creates nothing', () => {
    const leaf = makeWorkload(authority, { cluster: 'east-1', spiffeId: WEB });
    const target = join(tmp.make(), 'ca');
    const cases: [string, RegExp][] = [
      ['garbage', /root certificate: no PEM certificate found/],
      [leaf.leafPem, /root certificate is not a CA/],
      [leaf.intermediatePem, /root certificate is not self-signed/],
      [leaf.rootPem + leaf.rootPem, /must hold exactly one certificate \(found 2\)/],
    ];
    for (const [certPem, pattern] of cases) {
      expect(() => TrustAuthority.init(target, { trustDomain: TRUST_DOMAIN, importRoot: { certPem } }, {})).toThrow(pattern);
      expect(existsSync(target)).toBe(false);
    }
  });

  test('init refuses an invalid trust domain and an invalid cluster name is refused everywhere', () => {
    const target = join(tmp.make(), 'ca');
    expect(() => TrustAuthority.init(target, { trustDomain: 'Example.ORG' }, {})).toThrow(/lowercase/);
    expect(existsSync(target)).toBe(false);
    expectRefusedWithoutWrites(() => authority.issueIntermediate('-east'), /invalid cluster name "-east"/);
    expectRefusedWithoutWrites(() => authority.deliver('east.1'), /invalid cluster name "east\.1"/);
    expectRefusedWithoutWrites(() => authority.deliver('north-1'), /north-1 has no intermediate yet/);
  });
});
