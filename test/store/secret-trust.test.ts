/**
 * The CA kept in a Kubernetes Secret, through the real client-node against the kube-api fixture: the leader
 * creates it, followers read it and sign workload certificates with it, followers' changes are refused, a stale
 * writer's commit is refused with a 409 and leaves the Secret as it was, and the leader delivers clusters' material.
 */
import { X509Certificate } from 'node:crypto';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { parseTrustManifest, TrustAuthority } from '../../src/trust/authority.js';
import { createCsr } from '../../src/trust/csr.js';
import { generateKey } from '../../src/trust/keys.js';
import { SecretTrustStore } from '../../src/store/kubernetes/secret-trust-state.js';
import { cacertsSecretName, KubernetesTrust, NotLeaderError } from '../../src/store/kubernetes/secret-trust.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';

const NAMESPACE = 'meshfed';
const SECRET = 'meshfed-ca';
const fixtures: KubeApiFixture[] = [];

afterEach(async () => {
  await Promise.all(fixtures.splice(0).map((f) => f.close()));
});

async function setup(): Promise<{ f: KubeApiFixture; core: CoreV1Api; replica: (leader: boolean) => KubernetesTrust }> {
  const f = await startKubeApiFixture();
  fixtures.push(f);
  const kc = new KubeConfig();
  kc.loadFromString(f.kubeconfig());
  const core = kc.makeApiClient(CoreV1Api);
  const replica = (leader: boolean): KubernetesTrust =>
    new KubernetesTrust({ core, namespace: NAMESPACE, secretName: SECRET, isLeader: () => leader, leader: () => 'meshfed-0', env: {} });
  return { f, core, replica };
}

const secretData = (f: KubeApiFixture, name = SECRET): Record<string, string> => (f.get('v1', 'Secret', name, NAMESPACE)?.['data'] ?? {}) as Record<string, string>;
const storedManifest = (f: KubeApiFixture): ReturnType<typeof parseTrustManifest> =>
  parseTrustManifest((JSON.parse(Buffer.from(secretData(f)['manifest.json'] ?? '', 'base64').toString('utf8')) as { body: unknown }).body);
const writes = (f: KubeApiFixture): string[] => f.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path} ${String(r.status)}`);

describe('the CA in a Kubernetes Secret', () => {
  it('is created by the leader and read by a follower, which signs workload certificates that chain to the root', async () => {
    const { f, replica } = await setup();
    const leader = replica(true);
    await leader.initialize('example.org', ['east-1', 'west-1']);
    const manifest = storedManifest(f);
    expect(manifest.trustDomain).toBe('example.org');
    expect(Object.keys(manifest.clusters).sort()).toEqual(['east-1', 'west-1']);
    expect(manifest.tokenSecret).toBeDefined();
    // every file the manifest names is in the Secret, with "/" as "_"
    expect(Object.keys(secretData(f))).toContain(manifest.roots[0]?.cert.replaceAll('/', '_'));

    const follower = replica(false);
    expect(await follower.refresh()).toBe(true);
    const authority = follower.authority;
    if (!authority) throw new Error('the follower holds no CA');
    const before = writes(f).length;
    const key = generateKey('ec-p256');
    const signed = authority.signWorkload({ cluster: 'east-1', csr: createCsr(key), spiffeId: 'spiffe://example.org/ns/default/sa/reviews' });
    const [leaf, intermediate, root] = signed.certChain.map((pem) => new X509Certificate(pem));
    expect(leaf && intermediate && leaf.verify(intermediate.publicKey)).toBe(true);
    expect(root && intermediate?.verify(root.publicKey)).toBe(true);
    expect(root?.fingerprint256).toBe(leader.authority?.roots()[0]?.fingerprint256);
    expect(writes(f)).toHaveLength(before);
    expect(authority.tokenSecret().equals(leader.authority?.tokenSecret() ?? Buffer.alloc(0))).toBe(true);
  });

  it("refuses a follower's change, naming the leader, and writes nothing", async () => {
    const { f, replica } = await setup();
    await replica(true).initialize('example.org', ['east-1']);
    const follower = replica(false);
    await follower.refresh();
    const before = writes(f);
    await expect(follower.change('start rotation', (a) => a.startRotation())).rejects.toThrow(NotLeaderError);
    await expect(follower.change('start rotation', (a) => a.startRotation())).rejects.toThrow(/not the leader.*meshfed-0/);
    expect(writes(f)).toEqual(before);
    expect(storedManifest(f).rotation).toBeUndefined();
  });

  it("refuses a stale writer's commit with a 409: the Secret keeps the other's step, applied once", async () => {
    const { f, core, replica } = await setup();
    await replica(true).initialize('example.org', ['east-1']);
    const open = async (): Promise<{ store: SecretTrustStore; authority: TrustAuthority }> => {
      const store = new SecretTrustStore(core, NAMESPACE, SECRET);
      await store.load();
      return { store, authority: TrustAuthority.openState(store.open(parseTrustManifest), {}) };
    };
    const deposed = await open();
    const current = await open();
    current.authority.startRotation();
    await current.store.flush();
    deposed.authority.startRotation();
    await expect(deposed.store.flush()).rejects.toSatisfy((error: unknown) => (error as { code?: number }).code === 409);
    const manifest = storedManifest(f);
    expect(manifest.roots).toHaveLength(2);
    expect(manifest.rootGeneration).toBe(2);
    expect(manifest.rotation?.phase).toBe('bundle-added');
    expect(f.requests.filter((r) => r.method === 'PUT' && r.path.endsWith(`/secrets/${SECRET}`)).map((r) => r.status).slice(-2)).toEqual([200, 409]);
  });

  it('leader: delivers each cluster its material in a Secret, so a rotation can go through all three steps', async () => {
    const { f, replica } = await setup();
    const leader = replica(true);
    await leader.initialize('example.org', ['east-1', 'west-1']);
    expect((await leader.reconcile()).delivered).toEqual(['east-1', 'west-1']);
    const material = secretData(f, cacertsSecretName('east-1'));
    expect(Object.keys(material).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    await leader.change('start', (a) => a.startRotation());
    await expect(leader.change('advance', (a) => a.advanceRotation())).rejects.toThrow(/not done for east-1, west-1/);
    expect(storedManifest(f).rotation?.phase).toBe('bundle-added');
    await leader.reconcile();
    const bundle = Buffer.from(secretData(f, cacertsSecretName('west-1'))['root-cert.pem'] ?? '', 'base64').toString();
    expect(bundle.match(/BEGIN CERTIFICATE/g)).toHaveLength(2);
    await leader.change('advance', (a) => a.advanceRotation());
    await leader.reconcile();
    const status = await leader.change('advance', (a) => a.advanceRotation());
    expect(status.phase).toBe('none');
    expect(storedManifest(f).roots).toHaveLength(1);
    expect(storedManifest(f).bundleSequence).toBe(3);
  });
});
