// The Istio-compatible CA service, driven by a real @grpc/grpc-js client over TLS on loopback,
// with `openssl verify` judging what it issues; plus the bearer-token format on its own.
import { execFile } from 'node:child_process';
import { createHmac, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import type { PeerCertificate } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import { Registry as PromRegistry } from 'prom-client';
import * as protoLoader from '@grpc/proto-loader';
import { pino } from 'pino';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import { registerTrustMetrics } from '../../src/trust/metrics.js';
import { startCaService, type CaServiceHandle } from '../../src/trust/ca-service.js';
import { createCsr } from '../../src/trust/csr.js';
import { generateKey, privateKeyPem } from '../../src/trust/keys.js';
import { issueToken, MAX_TOKEN_BYTES, TokenError, verifyToken } from '../../src/trust/tokens.js';

const TD = 'mesh.test';
const OPENSSL = '/usr/bin/openssl';
const METHOD = '/istio.v1.auth.IstioCertificateService/CreateCertificate';
const CA_ID = `spiffe://${TD}/ns/meshfed-system/sa/meshfed-ca`;
const HOUR_MS = 3_600_000;

// ---- the client side, loaded from the proto file on its own -------------------------------

const packageDefinition = protoLoader.loadSync(fileURLToPath(new URL('../../proto/istio/ca.proto', import.meta.url)), {
  keepCase: true,
  longs: String,
  defaults: true,
  oneofs: true,
});
const serviceDefinition = packageDefinition['istio.v1.auth.IstioCertificateService'];
if (!serviceDefinition || !('CreateCertificate' in serviceDefinition)) throw new Error('ca.proto lacks IstioCertificateService');
const createCertificate = serviceDefinition.CreateCertificate;
if (typeof createCertificate !== 'object') throw new Error('ca.proto lacks CreateCertificate');

interface RequestMessage {
  csr: string;
  validity_duration: number;
  metadata?: { fields: Record<string, { stringValue?: string; numberValue?: number }> };
}

function responseChain(message: object): string[] {
  if (!('cert_chain' in message) || !Array.isArray(message.cert_chain)) throw new Error('response has no cert_chain');
  const chain: unknown[] = message.cert_chain;
  return chain.map((pem) => {
    if (typeof pem !== 'string') throw new Error('cert_chain holds a non-string');
    return pem;
  });
}

type Outcome = { ok: true; chain: string[] } | { ok: false; code: grpc.status; details: string };

interface CallOptions {
  csr: string;
  token?: string;
  clientCert?: { key: string; chain: string };
  /** the roots the client trusts; the federation's bundle by default */
  roots?: string;
  validitySeconds?: number;
  metadata?: RequestMessage['metadata'];
}

let authority: TrustAuthority;
let service: CaServiceHandle;
let stateDir: string;
const logLines: string[] = [];
const metrics = new PromRegistry();

function callCa(options: CallOptions): Promise<Outcome> {
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined =>
    cert.subjectaltname === `URI:${CA_ID}` ? undefined : new Error(`server is not ${CA_ID}: ${cert.subjectaltname ?? 'no SAN'}`);
  const credentials = grpc.credentials.createSsl(
    Buffer.from(options.roots ?? authority.bundlePem()),
    options.clientCert ? Buffer.from(options.clientCert.key) : null,
    options.clientCert ? Buffer.from(options.clientCert.chain) : null,
    { checkServerIdentity },
  );
  const client = new grpc.Client(`127.0.0.1:${service.port}`, credentials, { 'grpc.use_local_subchannel_pool': 1, 'grpc.ssl_target_name_override': 'meshfed-ca' });
  const metadata = new grpc.Metadata();
  if (options.token !== undefined) metadata.add('authorization', `Bearer ${options.token}`);
  const request: RequestMessage = { csr: options.csr, validity_duration: options.validitySeconds ?? 0, ...(options.metadata ? { metadata: options.metadata } : {}) };
  return new Promise<Outcome>((resolve) => {
    client.makeUnaryRequest(
      METHOD,
      (value: RequestMessage) => createCertificate.requestSerialize(value),
      (buffer: Buffer) => responseChain(createCertificate.responseDeserialize(buffer)),
      request,
      metadata,
      { deadline: Date.now() + 30_000 },
      (error, chain) => {
        client.close();
        if (error) resolve({ ok: false, code: error.code, details: error.details });
        else resolve({ ok: true, chain: chain ?? [] });
      },
    );
  });
}

function expectFailure(outcome: Outcome, code: grpc.status): string {
  if (outcome.ok) throw new Error(`expected ${grpc.status[code]}, but a certificate was issued`);
  expect(grpc.status[outcome.code]).toBe(grpc.status[code]);
  return outcome.details;
}

function expectChain(outcome: Outcome): string[] {
  if (!outcome.ok) throw new Error(`expected a certificate chain, got ${grpc.status[outcome.code]}: ${outcome.details}`);
  return outcome.chain;
}

const issuedCount = (): number => logLines.filter((line) => line.includes('"workload certificate issued"')).length;

function openssl(args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    execFile(OPENSSL, args, { timeout: 30_000 }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : 1) : 0, output: stdout + stderr });
    });
  });
}

/** `openssl verify -x509_strict` of a leaf-first, root-last chain. */
async function opensslVerify(chain: string[]): Promise<{ code: number; output: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-ca-verify-'));
  try {
    const [leaf = '', ...rest] = chain;
    const root = rest.pop() ?? '';
    writeFileSync(join(dir, 'leaf.pem'), leaf);
    writeFileSync(join(dir, 'root.pem'), root);
    writeFileSync(join(dir, 'untrusted.pem'), rest.join(''));
    return await openssl(['verify', '-x509_strict', '-CAfile', join(dir, 'root.pem'), '-untrusted', join(dir, 'untrusted.pem'), join(dir, 'leaf.pem')]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function workloadCsr(uris?: string[]): { key: KeyObject; csr: string } {
  const key = generateKey('ec-p256');
  return { key, csr: createCsr(key, uris ? { uris } : {}) };
}

/** A workload SVID the authority signed directly, usable as a client certificate. */
function clientSvid(cluster: string, spiffeId: string, from: TrustAuthority = authority): { key: string; chain: string } {
  const { key, csr } = workloadCsr();
  const svid = from.signWorkload({ cluster, csr, spiffeId });
  return { key: privateKeyPem(key), chain: svid.certChain.slice(0, -1).join('') };
}

const token = (cluster: string, namespace: string, serviceAccount: string, ttlMs = HOUR_MS, now?: Date): string =>
  issueToken(authority.tokenSecret(), { cluster, namespace, serviceAccount }, ttlMs, now);

const leafOf = (chain: string[]): X509Certificate => new X509Certificate(chain[0] ?? '');

beforeAll(async () => {
  stateDir = mkdtempSync(join(tmpdir(), 'meshfed-ca-service-'));
  authority = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: TD }, {}).authority;
  authority.issueIntermediate('east-1');
  authority.issueIntermediate('west-1');
  const logger = pino({ level: 'info' }, { write: (line: string) => void logLines.push(line) });
  service = await startCaService({ authority, host: '127.0.0.1', port: 0, serverCluster: 'east-1', logger, metrics: registerTrustMetrics(authority, metrics) });
});

afterAll(async () => {
  await service.close();
  rmSync(stateDir, { recursive: true, force: true });
});

describe('CA service: bearer tokens', () => {
  it('issues leaf-first, root-last chains that openssl verifies, with the SAN from the token, never the CSR', async () => {
    const requested = `spiffe://${TD}/ns/kube-system/sa/admin`;
    const bearer = token('west-1', 'shop', 'cart');
    const { csr } = workloadCsr([requested, 'spiffe://other.test/ns/x/sa/y']);
    const chain = expectChain(await callCa({ csr, token: bearer }));

    expect(chain).toHaveLength(3);
    const [leaf, intermediate, root] = chain.map((pem) => new X509Certificate(pem));
    expect(leaf?.subjectAltName).toBe(`URI:spiffe://${TD}/ns/shop/sa/cart`);
    expect(leaf?.ca).toBe(false);
    // signed under the token's cluster
    expect(intermediate?.raw.equals(authority.intermediateCertificate('west-1')?.raw ?? Buffer.alloc(0))).toBe(true);
    expect(root?.raw.equals(authority.roots()[0]?.raw ?? Buffer.alloc(0))).toBe(true);
    const verified = await opensslVerify(chain);
    expect(verified.output).toContain('OK');
    expect(verified.code).toBe(0);

    const log = logLines.join('');
    expect(log).toContain(`spiffe://${TD}/ns/shop/sa/cart`);
    expect(log).toContain(leaf?.serialNumber ?? 'no serial');
    expect(log).toContain(requested); // reported as ignored
    expect(log).toContain('ignored');
    expect(log).not.toContain(bearer);
    expect(log).not.toContain('CERTIFICATE REQUEST');
    expect(log).not.toContain(csr.split('\n')[1] ?? 'no csr line');
  });

  it('gives the policy default lifetime for validity_duration 0 and honours a shorter request', async () => {
    const bearer = token('east-1', 'shop', 'cart');
    const byDefault = leafOf(expectChain(await callCa({ csr: workloadCsr().csr, token: bearer, validitySeconds: 0 })));
    const oneHour = leafOf(expectChain(await callCa({ csr: workloadCsr().csr, token: bearer, validitySeconds: 3600 })));
    const lifetime = (cert: X509Certificate) => (new Date(cert.validTo).getTime() - new Date(cert.validFrom).getTime()) / 1000;
    // both are backdated by one minute; the second-resolution encoding can round either end by 1 s
    expect(Math.abs(lifetime(byDefault) - (24 * 3600 + 60))).toBeLessThanOrEqual(1);
    expect(Math.abs(lifetime(oneHour) - (3600 + 60))).toBeLessThanOrEqual(1);
  });

  it('refuses a call without credentials as UNAUTHENTICATED and signs nothing', async () => {
    const before = issuedCount();
    const details = expectFailure(await callCa({ csr: workloadCsr().csr }), grpc.status.UNAUTHENTICATED);
    expect(details).toMatch(/no credentials/);
    expect(issuedCount()).toBe(before);
  });

  it('refuses garbage, expired, forged and tampered tokens as UNAUTHENTICATED without echoing them', async () => {
    const before = issuedCount();
    const { csr } = workloadCsr();
    const expired = token('east-1', 'shop', 'cart', 1000, new Date(Date.now() - HOUR_MS));
    const forged = issueToken(Buffer.alloc(32, 7), { cluster: 'east-1', namespace: 'shop', serviceAccount: 'cart' }, HOUR_MS);
    const valid = token('east-1', 'shop', 'cart');
    const [prefix = '', , mac = ''] = valid.split('.');
    const claims = Buffer.from(JSON.stringify({ cluster: 'east-1', namespace: 'kube-system', serviceAccount: 'admin', iat: Date.now(), exp: Date.now() + HOUR_MS })).toString('base64url');
    const tampered = `${prefix}.${claims}.${mac}`;
    const cases: [string, RegExp][] = [
      ['not-a-token', /not a meshfed token/],
      [expired, /expired/],
      [forged, /signature does not verify/],
      [tampered, /signature does not verify/],
      ['mfd1.x'.padEnd(MAX_TOKEN_BYTES + 10, 'x'), /longer than/],
    ];
    for (const [bad, reason] of cases) {
      const details = expectFailure(await callCa({ csr, token: bad }), grpc.status.UNAUTHENTICATED);
      expect(details).toMatch(reason);
      expect(details).not.toContain(bad);
    }
    expect(issuedCount()).toBe(before);
    expect(logLines.join('')).not.toContain(tampered);
  });

  it('answers PERMISSION_DENIED when the ClusterID metadata names another cluster, and accepts the right one', async () => {
    const bearer = token('east-1', 'shop', 'cart');
    const wrong = { fields: { ClusterID: { stringValue: 'west-1' } } };
    expect(expectFailure(await callCa({ csr: workloadCsr().csr, token: bearer, metadata: wrong }), grpc.status.PERMISSION_DENIED)).toMatch(/ClusterID/);
    const notString = { fields: { ClusterID: { numberValue: 1 } } };
    expectFailure(await callCa({ csr: workloadCsr().csr, token: bearer, metadata: notString }), grpc.status.INVALID_ARGUMENT);
    const right = { fields: { ClusterID: { stringValue: 'east-1' } } };
    expect(leafOf(expectChain(await callCa({ csr: workloadCsr().csr, token: bearer, metadata: right }))).subjectAltName).toBe(`URI:spiffe://${TD}/ns/shop/sa/cart`);
  });
});

describe('CA service: metrics', () => {
  /** the value of one series on /metrics, 0 while it has none */
  const series = async (line: string): Promise<number> => Number(new RegExp(`^${line.replace(/[{}]/g, '\\$&')} (\\d+)$`, 'm').exec(await metrics.metrics())?.[1] ?? 0);

  it('counts certificates issued by cluster and requests refused by status, and exports every expiry', async () => {
    const issued = 'meshfed_ca_certificates_issued_total{cluster="west-1"}';
    const refused = 'meshfed_ca_certificate_requests_refused_total{code="UNAUTHENTICATED"}';
    const [issuedBefore, refusedBefore] = [await series(issued), await series(refused)];
    expectChain(await callCa({ csr: workloadCsr().csr, token: token('west-1', 'shop', 'cart') }));
    expectFailure(await callCa({ csr: workloadCsr().csr, token: 'not-a-token' }), grpc.status.UNAUTHENTICATED);
    expect(await series(issued)).toBe(issuedBefore + 1);
    expect(await series(refused)).toBe(refusedBefore + 1);
    const east = authority.intermediates().find((i) => i.cluster === 'east-1');
    expect(await series(`meshfed_ca_certificate_expiry_timestamp_seconds{kind="intermediate",cluster="east-1",root="${east?.rootId ?? ''}"}`)).toBe(Math.floor(Date.parse(east?.notAfter ?? '') / 1000));
  });
});

describe('CA service: hostile requests', () => {
  it('rejects a garbage CSR with INVALID_ARGUMENT and a clear message', async () => {
    const bearer = token('east-1', 'shop', 'cart');
    expect(expectFailure(await callCa({ csr: 'hello', token: bearer }), grpc.status.INVALID_ARGUMENT)).toMatch(/invalid CSR: .*CERTIFICATE REQUEST/);
    expect(expectFailure(await callCa({ csr: '', token: bearer }), grpc.status.INVALID_ARGUMENT)).toMatch(/CSR is empty/);
    const junk = `-----BEGIN CERTIFICATE REQUEST-----\n${Buffer.from('not der at all').toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    expect(expectFailure(await callCa({ csr: junk, token: bearer }), grpc.status.INVALID_ARGUMENT)).toMatch(/invalid CSR/);
  });

  it('rejects CSRs over the policy limit and messages over the gRPC cap, then keeps serving', async () => {
    const bearer = token('east-1', 'shop', 'cart');
    const limit = authority.policy.limits.maxCsrBytes;
    const big = `${workloadCsr().csr}${' '.repeat(limit)}`;
    expect(expectFailure(await callCa({ csr: big, token: bearer }), grpc.status.INVALID_ARGUMENT)).toMatch(new RegExp(`limit is ${limit}`));
    expectFailure(await callCa({ csr: 'x'.repeat(256 * 1024), token: bearer }), grpc.status.RESOURCE_EXHAUSTED);
    const chain = expectChain(await callCa({ csr: workloadCsr().csr, token: bearer }));
    expect(leafOf(chain).subjectAltName).toBe(`URI:spiffe://${TD}/ns/shop/sa/cart`);
  });

  it('rejects a validity above the policy maximum with INVALID_ARGUMENT', async () => {
    const bearer = token('east-1', 'shop', 'cart');
    const details = expectFailure(await callCa({ csr: workloadCsr().csr, token: bearer, validitySeconds: 91 * 24 * 3600 }), grpc.status.INVALID_ARGUMENT);
    expect(details).toMatch(/exceeds the policy maximum of 90d/);
    expectFailure(await callCa({ csr: workloadCsr().csr, token: bearer, validitySeconds: -5 }), grpc.status.INVALID_ARGUMENT);
  });

  it('rejects a CSR whose signature does not verify (not signed by the key it carries)', async () => {
    const pem = workloadCsr().csr;
    const der = Buffer.from(pem.replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, ''), 'base64');
    der[der.length - 1] = (der[der.length - 1] ?? 0) ^ 0x01;
    const broken = `-----BEGIN CERTIFICATE REQUEST-----\n${der.toString('base64')}\n-----END CERTIFICATE REQUEST-----\n`;
    const details = expectFailure(await callCa({ csr: broken, token: token('east-1', 'shop', 'cart') }), grpc.status.INVALID_ARGUMENT);
    expect(details).toMatch(/signature does not verify/);
  });
});

describe('CA service: mTLS', () => {
  it('authenticates a workload by its client SVID and signs the same identity under its cluster', async () => {
    const caller = `spiffe://${TD}/ns/payments/sa/ledger`;
    const clientCert = clientSvid('west-1', caller);
    const { csr } = workloadCsr([`spiffe://${TD}/ns/kube-system/sa/admin`]);
    const chain = expectChain(await callCa({ csr, clientCert, metadata: { fields: { ClusterID: { stringValue: 'west-1' } } } }));
    expect(leafOf(chain).subjectAltName).toBe(`URI:${caller}`);
    expect(new X509Certificate(chain[1] ?? '').raw.equals(authority.intermediateCertificate('west-1')?.raw ?? Buffer.alloc(0))).toBe(true);
    expect((await opensslVerify(chain)).code).toBe(0);
  });

  it('prefers the verified client certificate over a bearer token and checks ClusterID against it', async () => {
    const caller = `spiffe://${TD}/ns/payments/sa/ledger`;
    const clientCert = clientSvid('west-1', caller);
    const chain = expectChain(await callCa({ csr: workloadCsr().csr, clientCert, token: token('east-1', 'shop', 'cart') }));
    expect(leafOf(chain).subjectAltName).toBe(`URI:${caller}`);
    const denied = await callCa({ csr: workloadCsr().csr, clientCert, metadata: { fields: { ClusterID: { stringValue: 'east-1' } } } });
    expectFailure(denied, grpc.status.PERMISSION_DENIED);
  });

  it('still accepts a certificate from a cluster intermediate that has since been reissued', async () => {
    authority.issueIntermediate('north-1');
    const caller = `spiffe://${TD}/ns/inventory/sa/stock`;
    const clientCert = clientSvid('north-1', caller);
    authority.issueIntermediate('north-1');
    const chain = expectChain(await callCa({ csr: workloadCsr().csr, clientCert }));
    expect(leafOf(chain).subjectAltName).toBe(`URI:${caller}`);
    expect(new X509Certificate(chain[1] ?? '').raw.equals(authority.intermediateCertificate('north-1')?.raw ?? Buffer.alloc(0))).toBe(true);
  });

  it('never trusts a client certificate from a foreign root, even in the same trust domain', async () => {
    const foreignDir = join(stateDir, 'foreign');
    const foreign = TrustAuthority.init(foreignDir, { trustDomain: TD }, {}).authority;
    foreign.issueIntermediate('east-1');
    const clientCert = clientSvid('east-1', `spiffe://${TD}/ns/kube-system/sa/admin`, foreign);
    const before = issuedCount();
    const outcome = await callCa({ csr: workloadCsr().csr, clientCert });
    if (outcome.ok) throw new Error('a certificate was issued to a foreign client');
    expect(['UNAVAILABLE', 'UNAUTHENTICATED']).toContain(grpc.status[outcome.code]);
    expect(issuedCount()).toBe(before);
  });

  it('is not reachable by a client that trusts another root (the server proves its SPIFFE ID under ours)', async () => {
    const foreign = TrustAuthority.init(join(stateDir, 'foreign-2'), { trustDomain: TD }, {}).authority;
    const outcome = await callCa({ csr: workloadCsr().csr, token: token('east-1', 'shop', 'cart'), roots: foreign.bundlePem() });
    expectFailure(outcome, grpc.status.UNAVAILABLE);
  });
});

describe('CA service: renewal of its own certificate', () => {
  it('does nothing while nothing changed', () => {
    expect(service.refresh()).toBe(false);
  });

  it('follows a root rotation without a restart: new connections get the new bundle and a certificate under the new root', async () => {
    const oldRoot = authority.bundlePem();
    authority.startRotation();
    for (const cluster of authority.clusters) authority.deliver(cluster);
    authority.advanceRotation();
    const newRoot = authority.rootById(authority.activeRootId).toString();
    expect(newRoot).not.toBe(oldRoot);

    // Before the refresh the server still presents its certificate under the old root.
    expectFailure(await callCa({ csr: workloadCsr().csr, token: token('east-1', 'shop', 'cart'), roots: newRoot }), grpc.status.UNAVAILABLE);
    expect(service.refresh()).toBe(true);
    const chain = expectChain(await callCa({ csr: workloadCsr().csr, token: token('east-1', 'shop', 'cart'), roots: newRoot }));
    expect(chain[chain.length - 1]).toBe(newRoot);
    expect((await opensslVerify(chain)).code).toBe(0);

    // Both roots are trusted for client certificates during the rotation.
    const underNew = clientSvid('west-1', `spiffe://${TD}/ns/shop/sa/new`);
    expect(leafOf(expectChain(await callCa({ csr: workloadCsr().csr, clientCert: underNew, roots: newRoot }))).subjectAltName).toBe(`URI:spiffe://${TD}/ns/shop/sa/new`);
    expect(service.refresh()).toBe(false);
  });

  it('renews at half its life', () => {
    expect(service.refresh(new Date(Date.now() + 11 * HOUR_MS))).toBe(false);
    expect(service.refresh(new Date(Date.now() + 13 * HOUR_MS))).toBe(true);
  });
});

describe('bearer tokens', () => {
  const secret = Buffer.alloc(32, 1);
  const claims = { cluster: 'east-1', namespace: 'shop', serviceAccount: 'cart' };
  const now = new Date('2030-01-01T00:00:00Z');

  it('round-trips its claims and expiry', () => {
    const issued = issueToken(secret, claims, HOUR_MS, now);
    expect(issued.startsWith('mfd1.')).toBe(true);
    const verified = verifyToken(secret, issued, now);
    expect(verified).toMatchObject(claims);
    expect(verified.expiresAt.toISOString()).toBe('2030-01-01T01:00:00.000Z');
  });

  it('rejects a tampered payload, a wrong secret, expiry and malformed tokens', () => {
    const issued = issueToken(secret, claims, HOUR_MS, now);
    const [, payload = '', mac = ''] = issued.split('.');
    const body = JSON.parse(Buffer.from(payload, 'base64url').toString()) as Record<string, unknown>;
    const tampered = `mfd1.${Buffer.from(JSON.stringify({ ...body, namespace: 'kube-system' })).toString('base64url')}.${mac}`;
    expect(() => verifyToken(secret, tampered, now)).toThrow(/signature does not verify/);
    expect(() => verifyToken(Buffer.alloc(32, 2), issued, now)).toThrow(/signature does not verify/);
    expect(() => verifyToken(secret, issued, new Date(now.getTime() + HOUR_MS))).toThrow(/expired/);
    expect(() => verifyToken(secret, `${issued}x`, now)).toThrow(/signature does not verify/);
    expect(() => verifyToken(secret, issued.slice(0, -2), now)).toThrow(TokenError);
    expect(() => verifyToken(secret, `${issued}.extra`, now)).toThrow(/malformed/);
    expect(() => verifyToken(secret, `mfd2.${payload}.${mac}`, now)).toThrow(/not a meshfed token/);
    expect(() => verifyToken(secret, `mfd1.${payload}.${mac}`.padEnd(MAX_TOKEN_BYTES + 1, 'A'), now)).toThrow(/longer than/);
  });

  it('rejects a validly signed token whose payload is not well-formed', () => {
    // MAC arbitrary JSON with the right secret, to reach the checks behind the signature
    const forge = (body: unknown): string => {
      const signed = `mfd1.${Buffer.from(JSON.stringify(body)).toString('base64url')}`;
      return `${signed}.${createHmac('sha256', secret).update(signed, 'ascii').digest('base64url')}`;
    };
    expect(() => verifyToken(secret, forge({ ...claims, iat: now.getTime() }), now)).toThrow(/malformed token payload/);
    expect(() => verifyToken(secret, forge({ ...claims, namespace: '../x', iat: now.getTime(), exp: now.getTime() + 1 }), now)).toThrow(/namespace/);
  });

  it('refuses to issue for invalid claims, lifetimes or secrets', () => {
    expect(() => issueToken(secret, { ...claims, namespace: 'Bad_NS' }, HOUR_MS)).toThrow(/namespace/);
    expect(() => issueToken(secret, claims, 0)).toThrow(/positive/);
    expect(() => issueToken(Buffer.alloc(8), claims, HOUR_MS)).toThrow(/at least 32 bytes/);
  });
});
