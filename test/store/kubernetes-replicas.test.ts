/**
 * `meshfed serve --store kubernetes` as several replicas (child processes of the built CLI) against the kube-api
 * fixture: exactly one leader; a root rotation started through the leader; the leader SIGKILLed between steps; a
 * new leader takes over within the lease duration and finishes the rotation, every step applied exactly once and in
 * order (read back from the CA Secret and from every write in the fixture's request log); the live replicas keep
 * serving xDS and signing real CSRs with the CA service throughout.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execFile, type ChildProcessByStdio } from 'node:child_process';
import type { PeerCertificate } from 'node:tls';
import type { Readable } from 'node:stream';
import { X509Certificate } from 'node:crypto';
import * as grpc from '@grpc/grpc-js';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, describe, expect, it } from 'vitest';
import { parseTrustManifest, TrustAuthority, type TrustManifest } from '../../src/trust/authority.js';
import { loadCaProto } from '../../src/trust/ca-service.js';
import { createCsr } from '../../src/trust/csr.js';
import { generateKey } from '../../src/trust/keys.js';
import { issueToken } from '../../src/trust/tokens.js';
import { SecretTrustStore } from '../../src/store/kubernetes/secret-trust-state.js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject } from '../../src/xds/ads-protocol.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { cleanEnv, MESHFED_CLI, startServe, type Serve } from '../cli/meshfed-bin.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { eventually } from '../sim/helpers.js';
import { RawStream } from '../xds/raw-ads-stream.js';

const NAMESPACE = 'meshfed';
const SECRET = 'meshfed-ca';
const TOKEN = 'replica-test-api-token-0123456789abcdef';
const LEASE_SECONDS = 3;
const TRUST_DOMAIN = 'example.org';

const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
const dir = mkdtempSync(join(tmpdir(), 'meshfed-replicas-'));
let fixture: KubeApiFixture | undefined;

afterAll(async () => {
  for (const child of children) child.kill('SIGKILL');
  await fixture?.close();
  rmSync(dir, { recursive: true, force: true });
});

interface Replica {
  name: string;
  serve: Serve;
  xdsPort: number;
  caPort: number;
}

async function startReplica(kubeconfig: string, name: string): Promise<Replica> {
  const serve = await startServe(
    [
      '--store', 'kubernetes', '--namespace', NAMESPACE, '--kubeconfig', kubeconfig,
      '--lease-duration', `${String(LEASE_SECONDS)}s`, '--sync-every', '1s',
      '--trust-domain', TRUST_DOMAIN, '--cluster', 'east-1', '--cluster', 'west-1',
      '--state-dir', join(dir, name), '--no-gateway-probe',
      '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0',
    ],
    { cwd: dir, children, env: { POD_NAME: name, MESHFED_API_TOKEN: TOKEN } },
  );
  const port = (pattern: RegExp): number => Number(pattern.exec(serve.stdout)?.[1] ?? NaN);
  expect(serve.stdout).toContain(`replica ${name}`);
  return { name, serve, xdsPort: port(/xDS {12}127\.0\.0\.1:(\d+)/), caPort: port(/CA service {5}127\.0\.0\.1:(\d+)/) };
}

const leaseHolder = (f: KubeApiFixture): string | undefined =>
  (f.get('coordination.k8s.io/v1', 'Lease', 'meshfed-leader', NAMESPACE)?.['spec'] as { holderIdentity?: string } | undefined)?.holderIdentity;

/** Runs the built `meshfed` CLI with the replicas' API token. */
function cli(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done) => {
    execFile(process.execPath, [...MESHFED_CLI, ...args], { cwd: dir, env: cleanEnv({ MESHFED_API_TOKEN: TOKEN }), timeout: 60_000 }, (error, stdout, stderr) => {
      done({ code: error ? (typeof error.code === 'number' ? error.code : null) : 0, stdout, stderr });
    });
  });
}

/** The CA's manifest as written in a Secret body (base64 data) */
function manifestOf(data: Record<string, string> | undefined): TrustManifest {
  const raw = Buffer.from(data?.['manifest.json'] ?? '', 'base64').toString('utf8');
  return parseTrustManifest((JSON.parse(raw) as { body: unknown }).body);
}

/** The CA manifest of every write of the CA Secret the fixture accepted (created or replaced), in order. */
const acceptedCaWrites = (f: KubeApiFixture): TrustManifest[] =>
  f.requests
    .filter((r) => (r.method === 'PUT' || r.method === 'POST') && r.path.includes('/secrets') && (r.status === 200 || r.status === 201) && r.body?.includes(`"name":"${SECRET}"`))
    .map((r) => manifestOf((JSON.parse(r.body ?? '{}') as { data?: Record<string, string> }).data));

const storedManifest = (f: KubeApiFixture): TrustManifest => manifestOf(f.get('v1', 'Secret', SECRET, NAMESPACE)?.['data'] as Record<string, string> | undefined);

async function rotation(replica: Replica, action: 'start' | 'advance'): Promise<{ status: number; leader: string | null; body: { phase?: string; error?: { message: string } } }> {
  const res = await fetch(`${replica.serve.api}/api/v1/trust/rotation`, {
    method: 'POST',
    headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
    body: JSON.stringify({ action }),
  });
  return { status: res.status, leader: res.headers.get('meshfed-leader'), body: (await res.json()) as { phase?: string; error?: { message: string } } };
}

async function trustStatus(replica: Replica): Promise<{ rotation: { phase: string; steps: { done: boolean; waitingFor: string[] }[] }; intermediates: { cluster: string; delivered: boolean }[] }> {
  const res = await fetch(`${replica.serve.api}/api/v1/trust`, { headers: { authorization: `Bearer ${TOKEN}` } });
  return (await res.json()) as Awaited<ReturnType<typeof trustStatus>>;
}

/** A real CSR to the replica's CA service, with a bearer token of the CA; resolves to the chain (leaf first). */
async function signedBy(replica: Replica, authority: TrustAuthority): Promise<X509Certificate[]> {
  const { createCertificate } = loadCaProto();
  const checkServerIdentity = (_host: string, cert: PeerCertificate): Error | undefined =>
    cert.subjectaltname?.startsWith(`URI:spiffe://${TRUST_DOMAIN}/`) ? undefined : new Error(`unexpected CA identity ${cert.subjectaltname ?? '-'}`);
  const client = new grpc.Client(`127.0.0.1:${String(replica.caPort)}`, grpc.credentials.createSsl(Buffer.from(authority.bundlePem()), null, null, { checkServerIdentity }), {
    'grpc.use_local_subchannel_pool': 1,
    'grpc.ssl_target_name_override': 'meshfed-ca',
  });
  const metadata = new grpc.Metadata();
  metadata.add('authorization', `Bearer ${issueToken(authority.tokenSecret(), { cluster: 'east-1', namespace: 'shop', serviceAccount: 'cart' }, 600_000)}`);
  try {
    const chain = await new Promise<string[]>((done, fail) => {
      client.makeUnaryRequest(
        '/istio.v1.auth.IstioCertificateService/CreateCertificate',
        createCertificate.requestSerialize,
        createCertificate.responseDeserialize,
        { csr: createCsr(generateKey('ec-p256')), validity_duration: '600', metadata: null },
        metadata,
        { deadline: Date.now() + 30_000 },
        (error, response) => {
          if (error) fail(error);
          else done(response?.cert_chain ?? []);
        },
      );
    });
    return chain.map((pem) => new X509Certificate(pem));
  } finally {
    client.close();
  }
}

/** An ADS stream to the replica's xDS server answers a listener request. */
async function xdsAnswers(replica: Replica): Promise<boolean> {
  const { method } = adsServiceDefinition();
  const client = new grpc.Client(`127.0.0.1:${String(replica.xdsPort)}`, grpc.credentials.createInsecure());
  const stream = new RawStream<DiscoveryRequestObject, DiscoveryResponseObject>(client, ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
  try {
    stream.send({ node: { id: 'sidecar~10.0.0.1~probe.shop~shop.svc.cluster.local', metadata: { fields: { CLUSTER_ID: { stringValue: 'east-1' }, NETWORK: { stringValue: 'net-east' } } } }, type_url: TYPE_URL.cluster, resource_names: [] });
    const response = await stream.next(20_000);
    return response.type_url === TYPE_URL.cluster && response.nonce !== '';
  } finally {
    stream.call.cancel();
    client.close();
  }
}

describe('meshfed serve --store kubernetes, several replicas', () => {
  it('a leader killed mid-rotation is replaced within the lease duration, and the rotation finishes with every step applied once, in order', async () => {
    const f = await startKubeApiFixture();
    fixture = f;
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    writeFileSync(kubeconfig, f.kubeconfig(), { mode: 0o600 });
    const kc = new KubeConfig();
    kc.loadFromString(f.kubeconfig());
    const store = new SecretTrustStore(kc.makeApiClient(CoreV1Api), NAMESPACE, SECRET);
    /** the CA as the Secret holds it now, read as a client would */
    const currentCa = async (): Promise<TrustAuthority> => {
      await store.load();
      return TrustAuthority.openState(store.open(parseTrustManifest), {});
    };

    // two replicas: exactly one leader, and the other agrees
    const replicas = await Promise.all(['meshfed-0', 'meshfed-1'].map((name) => startReplica(kubeconfig, name)));
    await eventually(() => leaseHolder(f) !== undefined && leaseHolder(f) !== '', 'a leader');
    const firstLeader = leaseHolder(f);
    const leader = replicas.find((r) => r.name === firstLeader);
    const follower = replicas.find((r) => r.name !== firstLeader);
    if (!leader || !follower) throw new Error(`the leader ${String(firstLeader)} is not one of the replicas`);
    await eventually(async () => (await trustStatus(leader)).intermediates.every((i) => i.delivered), 'the leader to deliver both clusters their material');

    // a follower refuses the step and names the leader; the leader takes it
    const refused = await rotation(follower, 'start');
    expect(refused.status).toBe(503);
    expect(refused.leader).toBe(leader.name);
    expect(refused.body.error?.message).toContain(leader.name);
    expect(storedManifest(f).rotation).toBeUndefined();
    const started = await rotation(leader, 'start');
    expect(started.status).toBe(200);
    expect(started.body.phase).toBe('bundle-added');

    // a third replica joins mid-rotation as a follower
    replicas.push(await startReplica(kubeconfig, 'meshfed-2'));
    await eventually(async () => (await trustStatus(leader)).rotation.steps[0]?.done === true, 'the two-root bundle delivered to every cluster');
    expect(leaseHolder(f)).toBe(leader.name);

    // the leader dies between steps, without releasing its Lease
    leader.serve.child.kill('SIGKILL');
    await new Promise((done) => leader.serve.child.once('exit', done));
    const survivors = replicas.filter((r) => r !== leader);
    // the survivors keep serving xDS and the CA service while there is no leader
    const caDuringFailover = await currentCa();
    for (const replica of survivors) {
      expect(await xdsAnswers(replica)).toBe(true);
      const [leaf, intermediate] = await signedBy(replica, caDuringFailover);
      expect(leaf && intermediate && leaf.verify(intermediate.publicKey)).toBe(true);
    }
    await eventually(() => survivors.some((r) => r.name === leaseHolder(f)), 'a new leader among the survivors', 60_000);
    const next = survivors.find((r) => r.name === leaseHolder(f));
    if (!next) throw new Error('no new leader');
    expect((f.get('coordination.k8s.io/v1', 'Lease', 'meshfed-leader', NAMESPACE)?.['spec'] as { leaseTransitions?: number }).leaseTransitions).toBe(1);
    expect(storedManifest(f).rotation?.phase).toBe('bundle-added');

    // the new leader continues where the Secret says the rotation stands
    await eventually(async () => (await rotation(next, 'advance')).status === 200, 'the new leader to take step 2');
    expect(storedManifest(f).rotation?.phase).toBe('intermediates-reissued');
    await eventually(async () => (await trustStatus(next)).rotation.steps[1]?.done === true, 'the new intermediates delivered');
    // the last step through the CLI: a follower refuses it naming the leader, the leader takes it
    const other = survivors.find((r) => r !== next);
    if (!other) throw new Error('two survivors');
    const refusedByCli = await cli(['ca', 'rotate', 'advance', '--server', other.serve.api, '-o', 'json']);
    expect(refusedByCli.code).toBe(1);
    expect(refusedByCli.stderr).toContain(`not the leader`);
    expect(refusedByCli.stderr).toContain(next.name);
    expect(storedManifest(f).rotation?.phase).toBe('intermediates-reissued');
    const finished = await cli(['ca', 'rotate', 'advance', '--server', next.serve.api, '-o', 'json']);
    expect(finished.code).toBe(0);
    expect((JSON.parse(finished.stdout) as { phase: string }).phase).toBe('none');

    // the Secret: one root, generation 2, the bundle moved twice
    const final = storedManifest(f);
    expect(final.roots).toHaveLength(1);
    expect(final.rootGeneration).toBe(2);
    expect(final.bundleSequence).toBe(3);
    expect(final.rotation).toBeUndefined();
    expect(Object.values(final.clusters).every((c) => c.rootId === final.activeRootId)).toBe(true);

    // every accepted write of the CA Secret, in order: each rotation step exactly once
    const steps = acceptedCaWrites(f).map((m) => `${m.rotation?.phase ?? 'none'} g${String(m.rootGeneration)} b${String(m.bundleSequence)}`);
    const transitions = steps.filter((step, i) => step !== steps[i - 1]);
    expect(transitions).toEqual(['none g1 b1', 'bundle-added g2 b2', 'intermediates-reissued g2 b2', 'none g2 b3']);

    // the survivors sign with intermediates under the new root
    const ca = await currentCa();
    for (const replica of survivors) {
      await eventually(async () => {
        const chain = await signedBy(replica, ca);
        return chain[2]?.fingerprint256 === ca.rootById(ca.activeRootId).fingerprint256;
      }, `${replica.name} to sign under the new root`);
    }

    // /readyz follows the CA Secret: unreadable → 503, readable again → 200
    for (const replica of survivors) expect((await fetch(`${replica.serve.api}/readyz`)).status).toBe(200);
    f.failWith(503);
    await eventually(async () => (await fetch(`${other.serve.api}/readyz`)).status === 503, 'a follower to report the CA Secret unreadable');
    f.failWith(null);
    await eventually(async () => (await fetch(`${other.serve.api}/readyz`)).status === 200, 'the follower to be ready again');
    // a clean stop releases the Lease
    expect(await Promise.all(survivors.map((r) => r.serve.stop()))).toEqual([0, 0]);
    expect(leaseHolder(f)).toBe('');
  }, 300_000);

  it('a leader frozen past its lease (SIGSTOP) takes no step when it thaws: its successor has the lead, the step is applied once', async () => {
    const f = await startKubeApiFixture();
    const kubeconfig = join(dir, 'kubeconfig-frozen.yaml');
    writeFileSync(kubeconfig, f.kubeconfig(), { mode: 0o600 });
    try {
      const replicas = await Promise.all(['frozen-0', 'frozen-1'].map((name) => startReplica(kubeconfig, name)));
      await eventually(() => replicas.some((r) => r.name === leaseHolder(f)), 'a leader');
      const frozen = replicas.find((r) => r.name === leaseHolder(f));
      const successor = replicas.find((r) => r !== frozen);
      if (!frozen || !successor) throw new Error('two replicas');
      frozen.serve.child.kill('SIGSTOP');
      await eventually(() => leaseHolder(f) === successor.name, 'the other replica to take the lease', 60_000);
      expect((await rotation(successor, 'start')).status).toBe(200);
      frozen.serve.child.kill('SIGCONT');
      // the thawed replica has not renewed for longer than its renew deadline: it does not act as the leader
      const stale = await rotation(frozen, 'start');
      expect(stale.status).toBe(503);
      expect(stale.leader).not.toBe(frozen.name);
      await eventually(async () => (await rotation(frozen, 'advance')).leader === successor.name, 'the thawed replica to name its successor');
      const written = acceptedCaWrites(f).map((m) => `${m.rotation?.phase ?? 'none'} g${String(m.rootGeneration)}`);
      expect(written.filter((step, i) => step !== written[i - 1])).toEqual(['none g1', 'bundle-added g2']);
      expect(storedManifest(f).rotation?.phase).toBe('bundle-added');
      expect(leaseHolder(f)).toBe(successor.name);
      expect(await Promise.all(replicas.map((r) => r.serve.stop()))).toEqual([0, 0]);
    } finally {
      await f.close();
    }
  }, 300_000);

  it('refuses bad Kubernetes-mode flags with a usage error (exit 2) naming the flag, before touching anything', async () => {
    const base = ['serve', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--trust-domain', TRUST_DOMAIN, '--state-dir', join(dir, 'bad')];
    const cases: [string[], RegExp][] = [
      [['--store', 'etcd'], /--store must be state-dir or kubernetes/],
      [['--store', 'kubernetes'], /needs --namespace/],
      [['--namespace', 'meshfed'], /--namespace and --kubeconfig belong to --store kubernetes/],
    ];
    for (const [args, message] of cases) {
      const run = await cli([...base, ...args]);
      expect(run.code).toBe(2);
      expect(run.stderr).toMatch(message);
    }
  }, 120_000);
});
