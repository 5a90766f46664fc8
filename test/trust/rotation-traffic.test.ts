// The three-step root rotation with mTLS traffic flowing between two clusters the whole time.
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import { afterAll, expect, test } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import {
  connectWorkload,
  eventually,
  makeWorkload,
  must,
  pemCertificates,
  spiffeId,
  startWorkloadServer,
  TempDirs,
  tlsIdentity,
  TRUST_DOMAIN,
  verifyChain,
  type TlsIdentity,
  type WorkloadServer,
} from './helpers.js';

const tmp = new TempDirs();
const servers: WorkloadServer[] = [];
afterAll(async () => {
  for (const server of servers) await server.close();
  tmp.cleanup();
});

const REVIEWS = spiffeId('reviews', 'reviews'); // server, east-1
const PRODUCTPAGE = spiffeId('productpage', 'productpage'); // client, west-1
const MAX_CONNECTIONS = 2000;
const MAX_TRAFFIC_MS = 45_000;

/** A client workload that keeps opening mTLS connections, one after another, within a bounded count and time. */
class Traffic {
  succeeded = 0;
  readonly failures: string[] = [];
  readonly byStage = new Map<string, number>();
  stage = 'before rotation';
  #stop = false;
  #waiters: { target: number; resolve: () => void }[] = [];
  readonly done: Promise<void>;

  constructor(port: number, identity: () => TlsIdentity) {
    const deadline = Date.now() + MAX_TRAFFIC_MS;
    this.done = (async () => {
      for (let n = 0; n < MAX_CONNECTIONS && !this.#stop && Date.now() < deadline; n++) {
        const stage = this.stage;
        // A new identity object per connection: the client picks up refreshed material at once.
        const result = await connectWorkload(port, identity(), REVIEWS);
        if (result.ok && result.seenByServer === PRODUCTPAGE && result.serverIds.includes(REVIEWS)) {
          this.succeeded++;
          this.byStage.set(stage, (this.byStage.get(stage) ?? 0) + 1);
        } else {
          this.failures.push(`${stage}: ${result.error ?? `unexpected answer ${result.seenByServer ?? ''}`}`);
        }
        this.#wake();
      }
      this.#stop = true;
      this.#wake();
    })();
  }

  get total(): number {
    return this.succeeded + this.failures.length;
  }

  /** Resolves once `count` more connections have finished (or traffic has stopped). */
  more(count: number): Promise<void> {
    const target = this.total + count;
    return new Promise((resolve) => {
      this.#waiters.push({ target, resolve });
      this.#wake();
    });
  }

  async stop(): Promise<void> {
    this.#stop = true;
    await this.done;
  }

  #wake(): void {
    this.#waiters = this.#waiters.filter((waiter) => {
      if (this.total < waiter.target && !this.#stop) return true;
      waiter.resolve();
      return false;
    });
  }
}

test('root rotation with traffic flowing: zero failed handshakes, and afterwards only the new root is trusted', async () => {
  const work = tmp.make();
  const authority = TrustAuthority.init(join(work, 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  const clusters = ['east-1', 'west-1'];
  for (const cluster of clusters) authority.issueIntermediate(cluster);
  const oldRoot = must(authority.roots()[0], 'the first root');

  let eastBundle = authority.deliver('east-1')['root-cert.pem'];
  let westBundle = authority.deliver('west-1')['root-cert.pem'];
  let reviews = makeWorkload(authority, { cluster: 'east-1', spiffeId: REVIEWS });
  let productpage = makeWorkload(authority, { cluster: 'west-1', spiffeId: PRODUCTPAGE, keyType: 'rsa-2048' });
  const productpageBeforeRotation = productpage;

  const server = await startWorkloadServer(tlsIdentity(reviews, eastBundle));
  servers.push(server);
  const traffic = new Traffic(server.port, () => tlsIdentity(productpage, westBundle));
  const PER_STAGE = 25;
  await traffic.more(PER_STAGE);

  // Step 1: the new root joins every bundle; workloads refresh their bundle.
  traffic.stage = 'step 1';
  const started = authority.startRotation();
  expect(started.phase).toBe('bundle-added');
  const newRootId = must(started.newRootId, 'new root id');
  const deliveredStep1 = Object.fromEntries(clusters.map((c) => [c, authority.deliver(c)]));
  eastBundle = must(deliveredStep1['east-1'], 'east-1 material')['root-cert.pem'];
  westBundle = must(deliveredStep1['west-1'], 'west-1 material')['root-cert.pem'];
  expect(pemCertificates(eastBundle)).toHaveLength(2);
  server.setIdentity(tlsIdentity(reviews, eastBundle));
  await traffic.more(PER_STAGE);

  // Step 2: intermediates reissued under the new root; clusters get them; workloads renew their leaves.
  traffic.stage = 'step 2';
  expect(authority.advanceRotation().phase).toBe('intermediates-reissued');
  for (const cluster of clusters) {
    const material = authority.deliver(cluster);
    expect(pemCertificates(material['cert-chain.pem'])[1]?.raw.equals(authority.rootById(newRootId).raw)).toBe(true);
  }
  reviews = makeWorkload(authority, { cluster: 'east-1', spiffeId: REVIEWS, key: reviews.key });
  server.setIdentity(tlsIdentity(reviews, eastBundle));
  await traffic.more(PER_STAGE);
  productpage = makeWorkload(authority, { cluster: 'west-1', spiffeId: PRODUCTPAGE, key: productpage.key });
  expect(new X509Certificate(productpage.rootPem).raw.equals(authority.rootById(newRootId).raw)).toBe(true);
  await traffic.more(PER_STAGE);

  // Step 3: the old root leaves every bundle; workloads refresh their bundle.
  traffic.stage = 'step 3';
  expect(authority.advanceRotation().phase).toBe('none');
  eastBundle = authority.deliver('east-1')['root-cert.pem'];
  westBundle = authority.deliver('west-1')['root-cert.pem'];
  server.setIdentity(tlsIdentity(reviews, eastBundle));
  await traffic.more(PER_STAGE);
  traffic.stage = 'after rotation';
  await traffic.more(PER_STAGE);
  await traffic.stop();

  expect(traffic.failures).toEqual([]);
  for (const stage of ['before rotation', 'step 1', 'step 2', 'step 3', 'after rotation']) {
    expect(traffic.byStage.get(stage) ?? 0, `successful connections during ${stage}`).toBeGreaterThanOrEqual(PER_STAGE);
  }
  expect(server.clientErrors).toEqual([]);

  // Only the new root is left.
  const bundle = pemCertificates(authority.bundlePem());
  expect(bundle).toHaveLength(1);
  expect(must(bundle[0], 'root').raw.equals(authority.rootById(newRootId).raw)).toBe(true);
  expect(must(bundle[0], 'root').raw.equals(oldRoot.raw)).toBe(false);
  expect(pemCertificates(eastBundle).map((c) => c.fingerprint256)).toEqual([must(bundle[0], 'root').fingerprint256]);

  // A workload still holding a leaf under the old root is refused, by the server and by openssl.
  const stale = await connectWorkload(server.port, tlsIdentity(productpageBeforeRotation, eastBundle), REVIEWS);
  expect(stale.ok).toBe(false);
  await eventually(() => server.clientErrors.length > 0);
  expect(server.clientErrors).toHaveLength(1);
  expect(server.clientErrors.at(-1)?.authorizationError).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
  const verified = await verifyChain(work, { roots: authority.bundlePem(), intermediates: productpageBeforeRotation.intermediatePem, leaf: productpageBeforeRotation.leafPem });
  expect(verified.ok).toBe(false);
  // ...while the renewed leaf is accepted.
  const renewed = await connectWorkload(server.port, tlsIdentity(productpage, westBundle), REVIEWS);
  expect(renewed.ok).toBe(true);
});
