/**
 * Drill faults on a cluster meshfed watches through the Kubernetes API (src/drills/kubernetes-faults.ts), through the
 * real `meshfed serve` and `meshfed drill run`, against the kube-api fixture (real HTTPS, real list/watch, real
 * writes):
 *
 *   east-1  static      net-east  us-east/us-east-1a  reviews 127.0.100.1-2   gateway 127.0.103.1   drill clients here
 *   west-1  static      net-west  us-west/us-west-1a  reviews 127.0.101.1-2   gateway 127.0.103.2
 *   kube-1  Kubernetes  net-east  us-east/us-east-1b  reviews 127.0.102.1-2 (Deployment reviews-v1, 2 replicas)
 *
 * reviews.global fails over by priority: kube-1, then west-1, then east-1. kube-1's pods are real gRPC echo servers
 * with SVIDs of the federation's CA; a test-side controller (kube-controller.ts) stands in for kube-controller-manager
 * and the kubelets. Besides reviews-v1, kube-1 runs ratings-v1 (nothing may touch it) and two east-west gateway pods
 * (istio-system/istio-eastwestgateway). Times are the scenarios' own (generous) windows, never asserted here.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import type { DrillResult } from '../../src/drills/result.js';
import { SimIdentities } from '../../src/sim/identities.js';
import { Workload } from '../../src/sim/workloads.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { cleanEnv, MESHFED_CLI, startServe, type Serve } from '../cli/meshfed-bin.js';
import { startKubeApiFixture, type KubeApiFixture, type RequestRecord } from '../fixtures/kube-api.js';
import { eventually, freePort } from '../sim/helpers.js';
import { deploymentObject, FakeKubelet, type ManagedDeployment } from './kube-controller.js';

const TRUST_DOMAIN = 'disr.test';
const KUBE = { region: 'us-east', zone: 'us-east-1b' };

const work = mkdtempSync(join(tmpdir(), 'meshfed-kube-faults-'));
const stateDir = join(work, 'state');
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
let fixture: KubeApiFixture;
let kubelet: FakeKubelet;
let serve: Serve;
let token: string;
let reviews: ManagedDeployment;
let ratings: ManagedDeployment;
let gateway: ManagedDeployment;

const writes = (): RequestRecord[] => fixture.requests.filter((r) => r.method !== 'GET');
const bodyOf = (r: RequestRecord): unknown => JSON.parse(r.body ?? '{}') as unknown;
const replicas = (d: ManagedDeployment): unknown => (fixture.get('apps/v1', 'Deployment', d.name, d.namespace)?.['spec'] as { replicas?: unknown } | undefined)?.replicas;
const scalePath = (d: ManagedDeployment): string => `/apis/apps/v1/namespaces/${d.namespace}/deployments/${d.name}/scale`;

async function api(method: string, path: string, body?: unknown): Promise<{ status: number; data: Record<string, unknown> }> {
  const res = await fetch(new URL(path, serve.api), {
    method,
    headers: { authorization: `Bearer ${token}`, ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
    ...(body !== undefined ? { body: JSON.stringify(body) } : {}),
  });
  return { status: res.status, data: (await res.json()) as Record<string, unknown> };
}

/** Runs a drill through POST /api/v1/drills and waits (bounded) for its end. */
async function drillThroughApi(document: Record<string, unknown>, allowDisruptive: boolean): Promise<{ state: string; result: DrillResult }> {
  const started = await api('POST', '/api/v1/drills', { ...document, allowDisruptive });
  expect(started.status, JSON.stringify(started.data)).toBe(202);
  const id = String(started.data['id']);
  let run = started.data;
  await eventually(async () => {
    run = (await api('GET', `/api/v1/drills/${id}`)).data;
    return run['state'] !== 'running';
  }, `drill ${id} to end`, 180_000);
  expect(run['state'], JSON.stringify(run['error'] ?? '')).not.toBe('error');
  return { state: String(run['state']), result: run['result'] as DrillResult };
}

/** `meshfed drill run FILE --server API ARGS`: exit code and output. */
async function drillCli(file: string, args: string[]): Promise<{ code: number | null; output: string }> {
  const child = spawn(process.execPath, [...MESHFED_CLI, 'drill', 'run', file, '--server', serve.api, ...args], { cwd: work, env: cleanEnv({ MESHFED_API_TOKEN: token }), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const code = await new Promise<number | null>((done) => child.once('exit', done));
  return { code, output };
}

function scenario(name: string, duration: string, steps: Record<string, unknown>[], expectations: Record<string, unknown>[] = []): Record<string, unknown> {
  return {
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'FailoverDrill',
    metadata: { name },
    spec: {
      duration,
      traffic: [{ name: 'from-east-1', from: 'east-1', to: 'reviews.global:9080', rate: 20, clients: 2, timeout: '1s' }],
      steps,
      expectations,
    },
  };
}

const killReviews = { at: '3s', name: 'reviews-down', fault: 'kill-workloads', target: { cluster: 'kube-1', service: 'default/reviews' } };

/** Requests of a stream answered by `cluster` in seconds [from, to). */
const servedBy = (result: DrillResult, cluster: string, from = 0, to = Infinity): number =>
  (result.streams[0]?.seconds ?? []).filter((s) => s.t >= from && s.t < to).reduce((sum, s) => sum + (s.byCluster[cluster] ?? 0), 0);

function staticCluster(name: string, network: string, region: string, zone: string, reviewsAt: readonly string[], ports: readonly number[], gatewayAt: string, gatewayPort: number): string {
  return stringify({
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'Cluster',
    metadata: { name },
    spec: {
      network,
      region,
      zone,
      gateways: [{ address: gatewayAt, port: gatewayPort }],
      services: [
        {
          name: 'reviews',
          ports: [{ name: 'grpc', port: 9080, appProtocol: 'grpc' }],
          endpoints: reviewsAt.map((address, i) => ({ address, ports: [{ name: 'grpc', port: ports[i] ?? 0 }], serviceAccount: 'reviews' })),
        },
      ],
    },
  });
}

beforeAll(async () => {
  fixture = await startKubeApiFixture();
  const kubeconfig = join(work, 'kube-1.kubeconfig');
  writeFileSync(kubeconfig, fixture.kubeconfig({ cluster: 'kube-1' }), { mode: 0o600 });

  // the CA first: kube-1's workloads serve SVIDs of the trust domain meshfed serves
  const authority = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: TRUST_DOMAIN }, {}).authority;
  for (const cluster of ['east-1', 'west-1', 'kube-1']) authority.issueIntermediate(cluster);
  const identities = new SimIdentities(authority, join(work, 'identities'));
  mkdirSync(join(work, 'identities'), { recursive: true });
  const kubePort = await freePort('127.0.102.1');
  const reviewsSlots = ['127.0.102.1', '127.0.102.2'].map((ip) => ({
    ip,
    workload: new Workload(
      { id: `kube-1/default/reviews/${ip}`, cluster: 'kube-1', namespace: 'default', service: 'reviews', address: ip, ports: [{ name: 'grpc', port: kubePort, protocol: 'grpc' }], serviceAccount: 'reviews', tlsMode: 'mtls', locality: `${KUBE.region}/${KUBE.zone}` },
      identities.inMemory('kube-1', 'default', 'reviews'),
    ),
  }));
  reviews = { namespace: 'default', name: 'reviews-v1', labels: { app: 'reviews', version: 'v1', 'security.istio.io/tlsMode': 'istio' }, serviceAccount: 'reviews', slots: reviewsSlots, service: { name: 'reviews', portName: 'grpc', port: kubePort } };
  ratings = { namespace: 'default', name: 'ratings-v1', labels: { app: 'ratings', version: 'v1' }, serviceAccount: 'ratings', slots: [{ ip: '127.0.102.21' }] };
  gateway = {
    namespace: 'istio-system',
    name: 'istio-eastwestgateway',
    labels: { istio: 'eastwestgateway', app: 'istio-eastwestgateway', 'topology.istio.io/network': 'net-east' },
    serviceAccount: 'istio-eastwestgateway',
    slots: [{ ip: '127.0.102.31' }, { ip: '127.0.102.32' }],
  };
  for (const [name, selector] of [['reviews', { app: 'reviews' }], ['ratings', { app: 'ratings' }]] as const) {
    fixture.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name, namespace: 'default', labels: { app: name } }, spec: { selector, ports: [{ name: 'grpc', port: 9080, targetPort: kubePort, protocol: 'TCP', appProtocol: 'grpc' }] } });
  }
  fixture.apply(deploymentObject(reviews, 2));
  fixture.apply(deploymentObject(ratings, 1));
  fixture.apply(deploymentObject(gateway, 2));
  kubelet = new FakeKubelet(fixture, KUBE, [reviews, ratings, gateway]);
  await eventually(() => kubelet.podNames(reviews).length === 2 && kubelet.podNames(gateway).length === 2, 'the fixture cluster to run its pods');

  const [e1, e2, w1, w2, g1, g2] = await Promise.all([
    freePort('127.0.100.1'),
    freePort('127.0.100.2'),
    freePort('127.0.101.1'),
    freePort('127.0.101.2'),
    freePort('127.0.103.1'),
    freePort('127.0.103.2'),
  ]);
  const federation = join(work, 'federation.yaml');
  writeFileSync(
    federation,
    [
      stringify({ apiVersion: 'meshfed.io/v1alpha1', kind: 'Federation', metadata: { name: 'disr' }, spec: { trustDomain: TRUST_DOMAIN } }),
      staticCluster('east-1', 'net-east', 'us-east', 'us-east-1a', ['127.0.100.1', '127.0.100.2'], [e1, e2], '127.0.103.1', g1),
      staticCluster('west-1', 'net-west', 'us-west', 'us-west-1a', ['127.0.101.1', '127.0.101.2'], [w1, w2], '127.0.103.2', g2),
      stringify({ apiVersion: 'meshfed.io/v1alpha1', kind: 'Cluster', metadata: { name: 'kube-1' }, spec: { network: 'net-east', ...KUBE, kubeconfigFile: 'kube-1.kubeconfig' } }),
      stringify({
        apiVersion: 'meshfed.io/v1alpha1',
        kind: 'VirtualDestination',
        metadata: { name: 'reviews' },
        spec: {
          hostname: 'reviews.global',
          ports: [{ number: 9080, protocol: 'GRPC', name: 'grpc' }],
          backends: [{ name: 'reviews' }],
          failover: { policy: 'priority', order: [{ cluster: 'kube-1' }, { cluster: 'west-1' }, { cluster: 'east-1' }] },
        },
      }),
    ].join('---\n'),
  );
  serve = await startServe(
    ['--config', federation, '--workloads', '--grace', '10s', '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'],
    { cwd: work, children },
  );
  token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
  await eventually(async () => {
    const { data } = await api('GET', '/api/v1/clusters/kube-1');
    return data['state'] === 'ready' && data['endpoints'] === 2;
  }, 'meshfed to see kube-1 ready with its two reviews endpoints');
}, 120_000);

afterAll(async () => {
  await serve.stop();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  await kubelet.close();
  await fixture.close();
  rmSync(work, { recursive: true, force: true });
});

describe('faults on a Kubernetes cluster are refused before anything changes', () => {
  it('refuses kill-workloads and kill-gateway without --allow-disruptive, naming the flag and the steps, and writes nothing', async () => {
    const document = scenario('kube-kill', '10s', [killReviews, { at: '4s', name: 'gateway-down', fault: 'kill-gateway', target: { cluster: 'kube-1' } }]);
    const refused = await api('POST', '/api/v1/drills', document);
    expect(refused.status).toBe(400);
    const message = JSON.stringify(refused.data);
    expect(message).toContain('--allow-disruptive');
    expect(message).toContain('step reviews-down');
    expect(message).toContain('step gateway-down');

    const explicitNo = await api('POST', '/api/v1/drills', { ...document, allowDisruptive: false });
    expect(explicitNo.status).toBe(400);
    const notBoolean = await api('POST', '/api/v1/drills', { ...document, allowDisruptive: 'yes' });
    expect(notBoolean.status).toBe(400);
    expect(JSON.stringify(notBoolean.data)).toContain('allowDisruptive');

    const file = join(work, 'kube-kill.yaml');
    writeFileSync(file, stringify(document));
    const cli = await drillCli(file, []);
    expect(cli.code).not.toBe(0);
    expect(cli.output).toContain('--allow-disruptive');

    expect(writes()).toEqual([]);
    expect(replicas(reviews)).toBe(2);
  });

  it('refuses partition and api-outage on a Kubernetes cluster even with --allow-disruptive, with the reason', async () => {
    for (const fault of ['partition', 'api-outage']) {
      const refused = await api('POST', '/api/v1/drills', {
        ...scenario(`kube-${fault}`, '10s', [{ at: '2s', name: 'cut', fault, target: { cluster: 'kube-1' } }]),
        allowDisruptive: true,
      });
      expect(refused.status).toBe(400);
      expect(JSON.stringify(refused.data)).toContain(`step cut: ${fault} cannot be done to Kubernetes cluster kube-1 through its API`);
    }
    const zone = await api('POST', '/api/v1/drills', { ...scenario('kube-zone', '10s', [{ ...killReviews, target: { cluster: 'kube-1', zone: KUBE.zone, service: 'reviews' } }]), allowDisruptive: true });
    expect(zone.status).toBe(400);
    expect(JSON.stringify(zone.data)).toContain('cannot be narrowed to zone us-east-1b');
    const wholeCluster = await api('POST', '/api/v1/drills', { ...scenario('kube-all', '10s', [{ ...killReviews, target: { cluster: 'kube-1' } }]), allowDisruptive: true });
    expect(wholeCluster.status).toBe(400);
    expect(JSON.stringify(wholeCluster.data)).toContain('needs target.service');
    // us-east holds east-1 (embedded) and kube-1 (Kubernetes): a step may not strike half of what it names
    const region = await api('POST', '/api/v1/drills', { ...scenario('kube-region', '10s', [{ ...killReviews, target: { region: 'us-east' } }]), allowDisruptive: true });
    expect(region.status).toBe(400);
    expect(JSON.stringify(region.data)).toContain('kill-workloads on region us-east would reach the Kubernetes cluster kube-1');
    expect(writes()).toEqual([]);
  });

  it('refuses a scenario file that carries the consent itself', async () => {
    const file = join(work, 'kube-consenting.yaml');
    writeFileSync(file, stringify({ ...scenario('kube-consenting', '10s', [killReviews]), allowDisruptive: true }));
    const cli = await drillCli(file, ['--allow-disruptive']);
    expect(cli.code).toBe(2);
    expect(cli.output).toContain('allowDisruptive: unknown field');
    expect(writes()).toEqual([]);
  });
});

describe('drain on a Kubernetes cluster', () => {
  it('needs no flag and writes nothing to the cluster: meshfed stops sending its endpoints', async () => {
    const { state, result } = await drillThroughApi(
      scenario('kube-drain', '8s', [
        { at: '1s', name: 'drain-kube-1', fault: 'drain', target: { cluster: 'kube-1', virtualDestination: 'reviews' } },
        { at: '5s', name: 'undrain', fault: 'restore' },
      ]),
      false,
    );
    expect(state, JSON.stringify(result.expectations)).toBe('passed');
    expect(result.events.map((e) => e.label)).toContain('drain kube-1 reviews');
    expect(servedBy(result, 'west-1', 1, 5)).toBeGreaterThan(0);
    expect(writes()).toEqual([]);
  }, 120_000);
});

describe('with --allow-disruptive', () => {
  it('scales the Deployment behind the service to zero: traffic moves to west-1, and restore scales it back to exactly 2 (meshfed drill run)', async () => {
    const file = join(work, 'kube-reviews-down.yaml');
    writeFileSync(
      file,
      stringify(
        scenario(
          'kube-reviews-down',
          '30s',
          [killReviews, { at: '16s', name: 'reviews-back', fault: 'restore' }],
          [
            { shift: { traffic: 'from-east-1', to: ['west-1'], after: 'reviews-down', within: '10s' } },
            { failBack: { traffic: 'from-east-1', to: ['kube-1'], after: 'reviews-back', within: '12s' } },
          ],
        ),
      ),
    );
    const before = fixture.requests.length;
    const reportDir = join(work, 'report-kill');
    const run = await drillCli(file, ['--allow-disruptive', '--report', reportDir]);
    const result = JSON.parse(readFileSync(join(reportDir, 'drill.json'), 'utf8')) as DrillResult;
    expect(run.code, run.output).toBe(0);
    expect(result.passed, run.output).toBe(true);
    // real traffic: kube-1 answered before the fault and after the restore, west-1 in between
    expect(servedBy(result, 'kube-1', 0, 3)).toBeGreaterThan(0);
    expect(servedBy(result, 'west-1', 3, 16)).toBeGreaterThan(0);
    expect(servedBy(result, 'kube-1', 6, 16)).toBe(0);

    const scaled = fixture.requests.slice(before).filter((r) => r.method !== 'GET');
    expect(scaled.map((r) => [r.method, r.path, r.contentType, bodyOf(r)])).toEqual([
      ['PATCH', scalePath(reviews), 'application/merge-patch+json', { spec: { replicas: 0 } }],
      ['PATCH', scalePath(reviews), 'application/merge-patch+json', { spec: { replicas: 2 } }],
    ]);
    expect(replicas(reviews)).toBe(2);
    expect(replicas(ratings)).toBe(1);
  }, 120_000);

  it('rolls a kill back the moment an expectation breaks: the replicas are back before the drill ends', async () => {
    await eventually(() => kubelet.podNames(reviews).length === 2, 'reviews back to two pods');
    const before = fixture.requests.length;
    const { state, result } = await drillThroughApi(
      scenario(
        'kube-rollback',
        '25s',
        [killReviews, { at: '20s', name: 'gateway-down', fault: 'kill-gateway', target: { cluster: 'kube-1' } }],
        // kube-1 cannot serve while its reviews are scaled to zero: this breaks, and the kill goes back at once
        [{ servedBy: { traffic: 'from-east-1', clusters: ['kube-1'], between: { from: 'reviews-down+2s', to: 'reviews-down+4s' } } }],
      ),
      true,
    );
    expect(state).toBe('failed');
    const rollback = result.events.find((e) => e.kind === 'rollback');
    expect(rollback?.label).toContain('kill-workloads kube-1');
    expect(rollback?.t ?? Infinity).toBeLessThan(result.durationSeconds);
    // the step after the rollback was skipped: no gateway pod was deleted
    expect(fixture.requests.slice(before).filter((r) => r.method !== 'GET').map((r) => [r.method, r.path, bodyOf(r)])).toEqual([
      ['PATCH', scalePath(reviews), { spec: { replicas: 0 } }],
      ['PATCH', scalePath(reviews), { spec: { replicas: 2 } }],
    ]);
    expect(replicas(reviews)).toBe(2);
    // restored while the drill ran: kube-1 served again before its end
    expect(servedBy(result, 'kube-1', (rollback?.t ?? 0) + 1)).toBeGreaterThan(0);
  }, 120_000);

  it('kill-gateway deletes exactly the gateway pods, and restore waits until their Deployment has them back', async () => {
    const gatewayPods = kubelet.podNames(gateway);
    const others = [...kubelet.podNames(reviews), ...kubelet.podNames(ratings)];
    expect(gatewayPods).toHaveLength(2);
    const before = fixture.requests.length;
    const { state, result } = await drillThroughApi(
      scenario('kube-gateway-down', '12s', [
        { at: '2s', name: 'gateway-down', fault: 'kill-gateway', target: { cluster: 'kube-1' } },
        { at: '6s', name: 'gateway-back', fault: 'restore' },
      ]),
      true,
    );
    expect(state, JSON.stringify(result.expectations)).toBe('passed');
    const deleted = fixture.requests.slice(before).filter((r) => r.method !== 'GET');
    expect(deleted.map((r) => `${r.method} ${r.path}`).sort()).toEqual(gatewayPods.map((name) => `DELETE /api/v1/namespaces/istio-system/pods/${name}`).sort());
    expect(result.events.map((e) => e.label)).toContain('restore kill-gateway kube-1');
    const now = kubelet.podNames(gateway);
    expect(now).toHaveLength(2);
    expect(now.filter((name) => gatewayPods.includes(name))).toEqual([]);
    expect([...kubelet.podNames(reviews), ...kubelet.podNames(ratings)].sort()).toEqual(others.sort());
  }, 120_000);

  // the last test: it stops the manager
  it('restores when the manager is stopped mid-drill (Ctrl-C): the Deployment is back at 2 before serve exits', async () => {
    await eventually(() => kubelet.podNames(reviews).length === 2, 'reviews back to two pods');
    const before = fixture.requests.length;
    const started = await api('POST', '/api/v1/drills', { ...scenario('kube-interrupted', '60s', [{ ...killReviews, at: '1s' }]), allowDisruptive: true });
    expect(started.status).toBe(202);
    await eventually(() => replicas(reviews) === 0, 'the drill to scale reviews-v1 to zero');
    await serve.stop();
    expect(replicas(reviews)).toBe(2);
    expect(fixture.requests.slice(before).filter((r) => r.method !== 'GET').map((r) => [r.method, r.path, bodyOf(r)])).toEqual([
      ['PATCH', scalePath(reviews), { spec: { replicas: 0 } }],
      ['PATCH', scalePath(reviews), { spec: { replicas: 2 } }],
    ]);
  }, 120_000);
});
