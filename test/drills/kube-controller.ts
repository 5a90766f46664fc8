/**
 * What kube-controller-manager and the kubelets of a fixture cluster would do, for the drills on Kubernetes
 * clusters: the only simulated part of those tests. Every 100 ms it holds each Deployment it manages at its
 * `spec.replicas`, as written by whoever wrote it (meshfed, through the fixture's real HTTP API):
 * - too few pods (scaled up, or pods deleted): it starts the servers of free slots (real gRPC echo workloads, for a
 *   Deployment behind a service) and creates their pods, Running and Ready, under new names;
 * - too many (scaled down): it stops their servers, marks their EndpointSlice endpoints not ready and terminating,
 *   removes the pods, then drops the endpoints;
 * - a pod deleted from outside: its server stops (as a kubelet's container would), and a new pod replaces it.
 * The EndpointSlice of a Deployment's service lists its pods, ready.
 */
import { randomBytes } from 'node:crypto';
import type { Workload } from '../../src/sim/workloads.js';
import type { KubeApiFixture, KubeObject } from '../fixtures/kube-api.js';

export interface Slot {
  /** the pod IP */
  ip: string;
  /** the server a pod in this slot runs (none: a pod without a server, like a gateway nobody calls here) */
  workload?: Workload;
}

export interface ManagedDeployment {
  namespace: string;
  name: string;
  /** its pod template's labels */
  labels: Record<string, string>;
  serviceAccount: string;
  /** one per replica it may have */
  slots: Slot[];
  /** the service whose EndpointSlice lists its pods, and the port the pods serve */
  service?: { name: string; portName: string; port: number };
}

export const NODE = 'node-1';

interface RunningPod {
  name: string;
  slot: Slot;
}

const replicasOf = (deployment: KubeObject | undefined): number => {
  const spec = deployment?.['spec'];
  const replicas = typeof spec === 'object' && spec !== null && 'replicas' in spec ? spec.replicas : undefined;
  return typeof replicas === 'number' ? replicas : 0;
};

export function deploymentObject(d: ManagedDeployment, replicas: number): KubeObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name: d.name, namespace: d.namespace, labels: d.labels },
    spec: {
      replicas,
      selector: { matchLabels: d.labels },
      template: { metadata: { labels: d.labels }, spec: { serviceAccountName: d.serviceAccount, containers: [{ name: 'app', image: 'app:1' }] } },
    },
  };
}

export class FakeKubelet {
  readonly #pods = new Map<ManagedDeployment, RunningPod[]>();
  readonly #slices = new Map<ManagedDeployment, string>();
  readonly #timer: NodeJS.Timeout;
  #tick: Promise<void> = Promise.resolve();
  #busy = false;
  /** what went wrong in a tick, for the test to show */
  readonly errors: string[] = [];

  constructor(
    private readonly fixture: KubeApiFixture,
    private readonly zone: { region: string; zone: string },
    private readonly deployments: readonly ManagedDeployment[],
  ) {
    fixture.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: NODE, labels: { 'kubernetes.io/hostname': NODE, 'topology.kubernetes.io/region': zone.region, 'topology.kubernetes.io/zone': zone.zone } } });
    for (const d of deployments) this.#pods.set(d, []);
    this.#timer = setInterval(() => {
      if (this.#busy) return;
      this.#busy = true;
      this.#tick = this.reconcile()
        .catch((error: unknown) => {
          this.errors.push(String(error));
        })
        .finally(() => {
          this.#busy = false;
        });
    }, 100);
  }

  /** the names of a Deployment's pods now */
  podNames(d: ManagedDeployment): string[] {
    return (this.#pods.get(d) ?? []).map((p) => p.name);
  }

  async reconcile(): Promise<void> {
    for (const d of this.deployments) await this.#reconcile(d);
  }

  async #reconcile(d: ManagedDeployment): Promise<void> {
    const want = replicasOf(this.fixture.get('apps/v1', 'Deployment', d.name, d.namespace));
    let pods = this.#pods.get(d) ?? [];
    for (const gone of pods.filter((p) => this.fixture.get('v1', 'Pod', p.name, d.namespace) === undefined)) await gone.slot.workload?.kill();
    pods = pods.filter((p) => this.fixture.get('v1', 'Pod', p.name, d.namespace) !== undefined);
    if (pods.length > want) {
      const victims = pods.slice(want);
      pods = pods.slice(0, want);
      await Promise.all(victims.map((p) => p.slot.workload?.kill() ?? Promise.resolve()));
      this.#writeSlice(d, pods, victims);
      for (const p of victims) this.fixture.remove('v1', 'Pod', p.name, d.namespace);
    }
    const used = new Set(pods.map((p) => p.slot));
    for (const slot of d.slots.filter((s) => !used.has(s)).slice(0, Math.max(0, want - pods.length))) {
      await slot.workload?.start();
      const name = `${d.name}-${randomBytes(3).toString('hex')}`;
      this.fixture.apply({
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name, namespace: d.namespace, labels: d.labels },
        spec: { serviceAccountName: d.serviceAccount, nodeName: NODE, containers: [{ name: 'app', image: 'app:1' }] },
        status: { phase: 'Running', podIP: slot.ip, conditions: [{ type: 'Ready', status: 'True' }] },
      });
      pods.push({ name, slot });
    }
    this.#pods.set(d, pods);
    this.#writeSlice(d, pods, []);
  }

  #writeSlice(d: ManagedDeployment, ready: readonly RunningPod[], terminating: readonly RunningPod[]): void {
    const service = d.service;
    if (!service) return;
    const endpoint = (p: RunningPod, up: boolean): Record<string, unknown> => ({
      addresses: [p.slot.ip],
      conditions: up ? { ready: true, serving: true, terminating: false } : { ready: false, serving: false, terminating: true },
      targetRef: { kind: 'Pod', namespace: d.namespace, name: p.name },
      nodeName: NODE,
      zone: this.zone.zone,
    });
    const slice: KubeObject = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${service.name}-slice`, namespace: d.namespace, labels: { 'kubernetes.io/service-name': service.name, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
      addressType: 'IPv4',
      ports: [{ name: service.portName, port: service.port, protocol: 'TCP', appProtocol: 'grpc' }],
      endpoints: [...ready.map((p) => endpoint(p, true)), ...terminating.map((p) => endpoint(p, false))],
    };
    const written = JSON.stringify(slice);
    if (this.#slices.get(d) === written) return;
    this.fixture.apply(slice);
    this.#slices.set(d, written);
  }

  /** stops reconciling and every server */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await this.#tick;
    await Promise.all(this.deployments.flatMap((d) => d.slots.map((s) => s.workload?.kill() ?? Promise.resolve())));
  }
}
