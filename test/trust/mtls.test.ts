// Cross-cluster mutual TLS with Node's tls (OpenSSL) on 127.0.0.1, using what the authority issues.
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import { connectWorkload, eventually, makeWorkload, spiffeId, startWorkloadServer, TempDirs, tlsIdentity, TRUST_DOMAIN, type Workload, type WorkloadServer } from './helpers.js';

const tmp = new TempDirs();
let authority: TrustAuthority;
let bundle: string;
let server: WorkloadServer;
let reviews: Workload; // east-1
let productpage: Workload; // west-1

const REVIEWS = spiffeId('reviews', 'reviews');
const PRODUCTPAGE = spiffeId('productpage', 'productpage');

beforeAll(async () => {
  authority = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  authority.issueIntermediate('east-1');
  authority.issueIntermediate('west-1');
  bundle = authority.deliver('east-1')['root-cert.pem'];
  expect(authority.deliver('west-1')['root-cert.pem']).toBe(bundle);
  reviews = makeWorkload(authority, { cluster: 'east-1', spiffeId: REVIEWS, keyType: 'ec-p256' });
  productpage = makeWorkload(authority, { cluster: 'west-1', spiffeId: PRODUCTPAGE, keyType: 'rsa-2048' });
  server = await startWorkloadServer(tlsIdentity(reviews, bundle));
});

afterAll(async () => {
  await server.close();
  tmp.cleanup();
});

describe('mTLS between clusters', () => {
  test('a workload in east-1 and a workload in west-1 authenticate each other and see each other\'s SPIFFE ID', async () => {
    const result = await connectWorkload(server.port, tlsIdentity(productpage, bundle), REVIEWS);
    expect(result.error).toBeUndefined();
    expect(result.ok).toBe(true);
    expect(result.serverIds).toEqual([REVIEWS]);
    expect(result.seenByServer).toBe(PRODUCTPAGE);
  });

  test('the reverse direction works too: west-1 serves, east-1 connects', async () => {
    const westServer = await startWorkloadServer(tlsIdentity(productpage, bundle));
    try {
      const result = await connectWorkload(westServer.port, tlsIdentity(reviews, bundle), PRODUCTPAGE);
      expect(result.ok).toBe(true);
      expect(result.serverIds).toEqual([PRODUCTPAGE]);
      expect(result.seenByServer).toBe(REVIEWS);
    } finally {
      await westServer.close();
    }
  });

  test('a client certificate from a foreign root is refused by the server', async () => {
    const foreign = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
    foreign.issueIntermediate('west-1');
    const impostor = makeWorkload(foreign, { cluster: 'west-1', spiffeId: PRODUCTPAGE });
    const refusedBefore = server.clientErrors.length;
    // The impostor trusts our bundle, so it is happy with the server; the server must not be happy with it.
    const result = await connectWorkload(server.port, tlsIdentity(impostor, bundle), REVIEWS);
    expect(result.ok).toBe(false);
    expect(result.seenByServer).toBeUndefined();
    await eventually(() => server.clientErrors.length > refusedBefore);
    expect(server.clientErrors.length).toBe(refusedBefore + 1);
    expect(server.clientErrors.at(-1)?.authorizationError).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');

    // And a legitimate client still gets in afterwards.
    const legit = await connectWorkload(server.port, tlsIdentity(productpage, bundle), REVIEWS);
    expect(legit.ok).toBe(true);
  });

  test('a client refuses a server whose certificate comes from a foreign root', async () => {
    const foreign = TrustAuthority.init(join(tmp.make(), 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
    foreign.issueIntermediate('east-1');
    const impostor = makeWorkload(foreign, { cluster: 'east-1', spiffeId: REVIEWS });
    const impostorServer = await startWorkloadServer(tlsIdentity(impostor, bundle));
    try {
      const result = await connectWorkload(impostorServer.port, tlsIdentity(productpage, bundle), REVIEWS);
      expect(result.ok).toBe(false);
      expect(result.error).toMatch(/unable to get local issuer certificate|certificate signature failure/);
    } finally {
      await impostorServer.close();
    }
  });
});
