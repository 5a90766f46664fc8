/**
 * Runs Kubernetes API fixtures in a process of their own for registry.bench.ts, so that
 * producing watch events does not share a core with meshfed consuming them.
 *
 * Messages in:  {op:'start', clusters, services, endpointsPerService}
 *               {op:'churn', events}      pause every fixture, apply `events` EndpointSlice changes to each, reply
 *               {op:'relist', cluster}    change every slice of a cluster while its watches are cut and history compacted
 *               {op:'release'}            resume every fixture: the backlog streams out at once
 *               {op:'stop'}
 * Messages out: {op:'started', kubeconfigs}, {op:'churned', sample}, {op:'relisting'}, {op:'released'}
 */
import { startKubeApiFixture, type KubeApiFixture, type KubeObject } from '../fixtures/kube-api.js';

type Message =
  | { op: 'start'; clusters: string[]; services: number; endpointsPerService: number }
  | { op: 'churn'; events: number }
  | { op: 'relist'; cluster: string }
  | { op: 'release' }
  | { op: 'stop' };

const NODES = 3;
const fixtures = new Map<string, KubeApiFixture>();
let layout = { services: 0, endpointsPerService: 0 };
let churnCounter = 0;
let churnRound = 0;

const sliceName = (i: number): string => `svc-${i}-abcde`;

function endpointSlice(cluster: number, i: number, readyMask: (e: number) => boolean): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: sliceName(i), namespace: 'default', labels: { 'kubernetes.io/service-name': `svc-${i}`, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: 'IPv4',
    ports: [{ name: 'grpc', port: 9080, protocol: 'TCP' }],
    endpoints: Array.from({ length: layout.endpointsPerService }, (_, e) => ({
      addresses: [address(cluster, i, e)],
      conditions: { ready: readyMask(e), serving: true, terminating: false },
      nodeName: `node-${(i + e) % NODES}`,
      targetRef: { kind: 'Pod', namespace: 'default', name: `svc-${i}-pod-${e}` },
    })),
  };
}

/** 10.C.x.y is never dialled: these addresses only exist as data inside the fixture. */
function address(cluster: number, i: number, e: number): string {
  const n = i * layout.endpointsPerService + e;
  return `10.${cluster + 1}.${Math.floor(n / 250)}.${(n % 250) + 1}`;
}

async function start(clusters: string[], services: number, endpointsPerService: number): Promise<Record<string, string>> {
  layout = { services, endpointsPerService };
  const kubeconfigs: Record<string, string> = {};
  for (const [c, name] of clusters.entries()) {
    const fixture = await startKubeApiFixture({ historyLimit: 200_000 });
    fixtures.set(name, fixture);
    for (let n = 0; n < NODES; n++) {
      fixture.apply({ apiVersion: 'v1', kind: 'Node', metadata: { name: `node-${n}`, labels: { 'topology.kubernetes.io/region': `region-${c}`, 'topology.kubernetes.io/zone': `zone-${c}-${n}` } } });
    }
    for (let i = 0; i < services; i++) {
      fixture.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: `svc-${i}`, namespace: 'default', labels: { app: `svc-${i}` } }, spec: { ports: [{ name: 'grpc', port: 9080, targetPort: 9080, protocol: 'TCP' }] } });
      for (let e = 0; e < endpointsPerService; e++) {
        fixture.apply({
          apiVersion: 'v1',
          kind: 'Pod',
          metadata: { name: `svc-${i}-pod-${e}`, namespace: 'default', labels: { app: `svc-${i}`, 'security.istio.io/tlsMode': 'istio' } },
          spec: { serviceAccountName: `svc-${i}`, nodeName: `node-${(i + e) % NODES}` },
          status: { podIP: address(c, i, e), phase: 'Running' },
        });
      }
      fixture.apply(endpointSlice(c, i, () => true));
    }
    kubeconfigs[name] = fixture.kubeconfig({ cluster: name, context: name });
  }
  return kubeconfigs;
}

/** Pauses every fixture and queues `events` slice changes on each; returns a sample of the exact watch lines. */
function churn(events: number): string[] {
  const sample: string[] = [];
  for (const fixture of fixtures.values()) fixture.pause();
  for (const [c, fixture] of [...fixtures.values()].entries()) {
    for (let k = 0; k < events; k++) {
      // each event flips a different endpoint of its slice than the event before, and each round ends elsewhere
      const i = (churnCounter + k) % layout.services;
      const flipped = (Math.floor((churnCounter + k) / layout.services) + churnRound) % layout.endpointsPerService;
      const applied = fixture.apply(endpointSlice(c, i, (e) => e !== flipped));
      if (sample.length < 3000) sample.push(JSON.stringify({ type: 'MODIFIED', object: applied }));
    }
  }
  churnCounter += events;
  churnRound++;
  return sample;
}

/** Cuts the cluster's watches and compacts its history, changing every slice meanwhile: its informers must re-list. */
function relist(cluster: string): void {
  const fixture = fixtures.get(cluster);
  if (!fixture) throw new Error(`no fixture for ${cluster}`);
  const c = [...fixtures.keys()].indexOf(cluster);
  fixture.pause();
  // two unready endpoints per slice: a state no churn round leaves behind
  for (let i = 0; i < layout.services; i++) fixture.apply(endpointSlice(c, i, (e) => e < layout.endpointsPerService - 2));
  fixture.compact();
  fixture.closeWatches();
}

process.on('message', (message: Message) => {
  void (async () => {
    switch (message.op) {
      case 'start':
        process.send?.({ op: 'started', kubeconfigs: await start(message.clusters, message.services, message.endpointsPerService) });
        break;
      case 'churn':
        process.send?.({ op: 'churned', sample: churn(message.events) });
        break;
      case 'relist':
        relist(message.cluster);
        process.send?.({ op: 'relisting' });
        break;
      case 'release':
        for (const fixture of fixtures.values()) fixture.resume();
        process.send?.({ op: 'released' });
        break;
      case 'stop':
        for (const fixture of fixtures.values()) await fixture.close();
        process.exit(0);
    }
  })();
});
