/**
 * The Kubernetes fault world (src/drills/kubernetes-faults.ts) on its own, over real HTTPS to the kube-api fixture:
 * what it refuses, and that a fault it cannot do changes nothing and says why (a missing permission, no Deployment,
 * no gateway pod, an unsafe kubeconfig).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema, type Cluster } from '../../src/model/cluster.js';
import { kubernetesFaults, type KubernetesFaults } from '../../src/drills/kubernetes-faults.js';
import type { Fault } from '../../src/drills/world.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { deploymentObject, type ManagedDeployment } from './kube-controller.js';

let fixture: KubeApiFixture;
let cluster: Cluster;
let faults: KubernetesFaults;

const ALLOWED = { allowDisruptive: true };
const killReviews: Fault = { kind: 'kill-workloads', target: { cluster: 'kube-1', service: 'default/reviews' } };
const writes = (): string[] => fixture.requests.filter((r) => r.method !== 'GET').map((r) => `${r.method} ${r.path}`);
const reviews: ManagedDeployment = { namespace: 'default', name: 'reviews-v1', labels: { app: 'reviews' }, serviceAccount: 'reviews', slots: [] };

beforeAll(async () => {
  fixture = await startKubeApiFixture();
  cluster = clusterSchema.parse({ name: 'kube-1', network: 'net-k', source: { type: 'kubernetes', kubeconfig: fixture.kubeconfig({ cluster: 'kube-1' }) } });
  const staticCluster = clusterSchema.parse({ name: 'east-1', network: 'net-east' });
  faults = kubernetesFaults({ clusters: () => [cluster, staticCluster], gatewayReturnMs: 2_000 });
  fixture.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { selector: { app: 'reviews' }, ports: [{ name: 'grpc', port: 9080 }] } });
  fixture.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'orphan', namespace: 'default' }, spec: { selector: { app: 'orphan' }, ports: [{ name: 'grpc', port: 9080 }] } });
  fixture.apply(deploymentObject(reviews, 3));
});

afterAll(async () => {
  await fixture.close();
});

describe('the Kubernetes fault world', () => {
  it('owns only the clusters watched through the Kubernetes API', () => {
    expect(faults.owns('kube-1')).toBe(true);
    expect(faults.owns('east-1')).toBe(false);
    expect(faults.owns('nowhere')).toBe(false);
  });

  it('refuses, before anything, what it cannot or may not do', () => {
    expect(faults.refusal(killReviews, { allowDisruptive: false })).toContain('--allow-disruptive');
    expect(faults.refusal({ kind: 'kill-gateway', target: { cluster: 'kube-1' } }, { allowDisruptive: false })).toContain('deletes its east-west gateway pods');
    expect(faults.refusal(killReviews, ALLOWED)).toBeUndefined();
    expect(faults.refusal({ kind: 'drain', target: { cluster: 'kube-1', virtualDestination: 'reviews' } }, { allowDisruptive: false })).toBeUndefined();
    expect(faults.refusal({ kind: 'partition', target: { cluster: 'kube-1' } }, ALLOWED)).toContain('partition cannot be done to Kubernetes cluster kube-1');
    expect(faults.refusal({ kind: 'api-outage', target: { cluster: 'kube-1' } }, ALLOWED)).toContain('api-outage cannot be done');
  });

  it('applies nothing it refuses, even when asked directly', async () => {
    await expect(faults.apply(killReviews, { allowDisruptive: false })).rejects.toThrow('--allow-disruptive');
    expect(writes()).toEqual([]);
  });

  it('names the permission the kubeconfig lacks, and changes nothing', async () => {
    fixture.failWith(403);
    try {
      await expect(faults.apply(killReviews, ALLOWED)).rejects.toThrow(/403 Forbidden: the kubeconfig's user may not list services in default/);
    } finally {
      fixture.failWith(null);
    }
    expect(writes()).toEqual([]);
  });

  it('says so when no Deployment stands behind the service, or there is no such service', async () => {
    await expect(faults.apply({ kind: 'kill-workloads', target: { cluster: 'kube-1', service: 'default/orphan' } }, ALLOWED)).rejects.toThrow('no Deployment of cluster kube-1 runs pods that service "default/orphan" selects');
    await expect(faults.apply({ kind: 'kill-workloads', target: { cluster: 'kube-1', service: 'missing' } }, ALLOWED)).rejects.toThrow('cluster kube-1 has no service "missing"');
    expect(writes()).toEqual([]);
  });

  it('scales to zero and back to exactly what it was, once however often restore is called', async () => {
    const applied = await faults.apply({ kind: 'kill-workloads', target: { cluster: 'kube-1', service: 'reviews' } }, ALLOWED);
    expect(applied.disruptive).toBe(true);
    const replicas = (): unknown => (fixture.get('apps/v1', 'Deployment', 'reviews-v1', 'default')?.['spec'] as { replicas?: unknown } | undefined)?.replicas;
    expect(replicas()).toBe(0);
    await Promise.all([applied.restore(), applied.restore()]);
    await applied.restore();
    expect(replicas()).toBe(3);
    expect(writes()).toEqual(['PATCH /apis/apps/v1/namespaces/default/deployments/reviews-v1/scale', 'PATCH /apis/apps/v1/namespaces/default/deployments/reviews-v1/scale']);
  });

  it('finds no gateway pod under the selector and says how to set another, changing nothing', async () => {
    const before = writes().length;
    await expect(faults.apply({ kind: 'kill-gateway', target: { cluster: 'kube-1' } }, ALLOWED)).rejects.toThrow('no pod of cluster kube-1 matches "istio=eastwestgateway,topology.istio.io/network=net-k" (serve --drill-gateway-selector');
    const custom = kubernetesFaults({ clusters: () => [cluster], gatewaySelector: 'app=gw,net={network}' });
    await expect(custom.apply({ kind: 'kill-gateway', target: { cluster: 'kube-1' } }, ALLOWED)).rejects.toThrow('"app=gw,net=net-k"');
    expect(writes().length).toBe(before);
  });

  it('uses the kubeconfig under the same rules as the registry: an exec plugin is refused', async () => {
    const exec = clusterSchema.parse({
      name: 'kube-exec',
      network: 'net-x',
      source: {
        type: 'kubernetes',
        kubeconfig: fixture.kubeconfig({ cluster: 'kube-exec' }).replace(/token: .*/, 'exec: { apiVersion: client.authentication.k8s.io/v1, command: /bin/true }'),
      },
    });
    const withExec = kubernetesFaults({ clusters: () => [exec] });
    const before = fixture.requests.length;
    await expect(withExec.apply({ kind: 'kill-workloads', target: { cluster: 'kube-exec', service: 'reviews' } }, ALLOWED)).rejects.toThrow(/exec/);
    expect(fixture.requests.length).toBe(before);
  });
});
