/**
 * Helpers for the Kubernetes-source suites: bounded waits, Kubernetes object builders, clusters backed by the
 * kube-api fixture, and short timings so fault-domain behaviour shows in seconds.
 */
import { clusterSchema, type Cluster, type ClusterInput } from '../../src/model/cluster.js';
import type { Endpoint } from '../../src/model/service.js';
import type { Logger } from '../../src/logging.js';
import { Registry, type RegistryOptions } from '../../src/registry/registry.js';
import type { ClusterState } from '../../src/registry/snapshot.js';
import { KubeSource, type KubeSourceOptions } from '../../src/registry/kube/kube-source.js';
import { startKubeApiFixture, type KubeApiFixture, type KubeObject } from '../fixtures/kube-api.js';

/** Registry timings for tests: a short grace period, a short debounce. */
export const FAST_REGISTRY: RegistryOptions = { graceMs: 1500, debounceMs: 20, maxDelayMs: 200 };

/** Source timings for tests: a fast probe and a fast backoff. */
export const FAST_SOURCE: KubeSourceOptions = { probeIntervalMs: 200, probeTimeoutMs: 500, probeFailureThreshold: 2, backoffInitialMs: 100, backoffMaxMs: 500 };

/**
 * Polls `condition` every 20 ms until it holds; fails after `ms` with what was awaited and, when given, the
 * state that was seen last.
 */
export async function waitFor(condition: () => boolean | Promise<boolean>, ms: number, what: string, seen?: () => unknown): Promise<void> {
  const deadline = Date.now() + ms;
  for (;;) {
    if (await condition()) return;
    if (Date.now() > deadline) {
      const detail = seen ? `; last seen: ${JSON.stringify(seen(), null, 0)}` : '';
      throw new Error(`timed out after ${ms} ms waiting for ${what}${detail}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export function kubeCluster(fixture: KubeApiFixture, input: Omit<ClusterInput, 'source'> & { context?: string }): Cluster {
  const { context, ...rest } = input;
  return clusterSchema.parse({ ...rest, source: { type: 'kubernetes', kubeconfig: fixture.kubeconfig({ cluster: input.name }), ...(context ? { context } : {}) } });
}

// ---- Kubernetes objects --------------------------------------------------------------------------

export interface ServiceSpec {
  ports?: { name?: string; port: number; targetPort?: number | string; protocol?: string; appProtocol?: string }[];
  labels?: Record<string, string>;
  type?: string;
  /** LoadBalancer ingress entries */
  ingress?: ({ ip: string } | { hostname: string })[];
}

export function service(namespace: string, name: string, spec: ServiceSpec = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace, labels: spec.labels ?? { app: name } },
    spec: { type: spec.type ?? 'ClusterIP', selector: { app: name }, ports: spec.ports ?? [{ name: 'http', port: 9080, targetPort: 9080, protocol: 'TCP' }] },
    ...(spec.ingress ? { status: { loadBalancer: { ingress: spec.ingress } } } : {}),
  };
}

export interface EndpointSpec {
  ip: string;
  pod?: string;
  node?: string;
  zone?: string;
  ready?: boolean;
  serving?: boolean;
  terminating?: boolean;
}

export function slice(namespace: string, name: string, serviceName: string, endpoints: EndpointSpec[], opts: { ports?: { name?: string; port: number; protocol?: string }[]; addressType?: string } = {}): KubeObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace, labels: { 'kubernetes.io/service-name': serviceName, 'endpointslice.kubernetes.io/managed-by': 'endpointslice-controller.k8s.io' } },
    addressType: opts.addressType ?? 'IPv4',
    ports: opts.ports ?? [{ name: 'http', port: 9080, protocol: 'TCP' }],
    endpoints: endpoints.map((e) => ({
      addresses: [e.ip],
      conditions: {
        ...(e.ready === undefined ? {} : { ready: e.ready }),
        ...(e.serving === undefined ? {} : { serving: e.serving }),
        ...(e.terminating === undefined ? {} : { terminating: e.terminating }),
      },
      ...(e.pod ? { targetRef: { kind: 'Pod', namespace, name: e.pod } } : {}),
      ...(e.node ? { nodeName: e.node } : {}),
      ...(e.zone ? { zone: e.zone } : {}),
    })),
  };
}

export function pod(namespace: string, name: string, spec: { serviceAccount?: string; labels?: Record<string, string>; node?: string; ip?: string } = {}): KubeObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: spec.labels ?? {} },
    spec: { ...(spec.serviceAccount ? { serviceAccountName: spec.serviceAccount } : {}), ...(spec.node ? { nodeName: spec.node } : {}), containers: [{ name: 'app', image: 'app:1' }] },
    status: { phase: 'Running', ...(spec.ip ? { podIP: spec.ip } : {}) },
  };
}

export function node(name: string, topology: { region?: string; zone?: string; subzone?: string } = {}): KubeObject {
  const labels: Record<string, string> = { 'kubernetes.io/hostname': name };
  if (topology.region) labels['topology.kubernetes.io/region'] = topology.region;
  if (topology.zone) labels['topology.kubernetes.io/zone'] = topology.zone;
  if (topology.subzone) labels['topology.istio.io/subzone'] = topology.subzone;
  return { apiVersion: 'v1', kind: 'Node', metadata: { name, labels } };
}

/** An Istio-injected pod's labels. */
export const meshLabels = (app: string, extra: Record<string, string> = {}): Record<string, string> => ({ app, 'security.istio.io/tlsMode': 'istio', ...extra });

// ---- reading the registry --------------------------------------------------------------------------

export function endpointsIn(registry: Registry, cluster: string, key: string): readonly Endpoint[] | undefined {
  return registry.snapshot().clusters.get(cluster)?.services.get(key)?.endpoints;
}

export function addressesIn(registry: Registry, cluster: string, key: string): string[] | undefined {
  return endpointsIn(registry, cluster, key)?.map((e) => e.address);
}

export function stateOf(registry: Registry, cluster: string): ClusterState | undefined {
  return registry.status(cluster)?.state;
}

/** The snapshot's view of each cluster: state, reason and service keys, for failure messages. */
export function summary(registry: Registry): unknown {
  return [...registry.snapshot().clusters.values()].map((c) => ({ cluster: c.cluster.name, state: c.state, reason: c.reason, services: Object.fromEntries([...c.services].map(([k, v]) => [k, v.endpoints.map((e) => `${e.address}:${e.health}`)])) }));
}

/** The value of a metric for one cluster label, from the registry's prom-client registry. */
export async function metricValue(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const metric = registry.metrics.registry.getSingleMetric(name);
  if (!metric) return undefined;
  const { values } = await metric.get();
  const found = values.find((v) => Object.entries(labels).every(([k, value]) => v.labels[k] === value));
  return found?.value;
}

// ---- a three-cluster federation on three fixture API servers ----------------------------------------

export const CLUSTERS = {
  'east-1': { network: 'net-east', region: 'us-east', zone: 'us-east-1a', net: 1 },
  'east-2': { network: 'net-east', region: 'us-east', zone: 'us-east-1b', net: 2 },
  'west-1': { network: 'net-west', region: 'us-west', zone: 'us-west-1a', net: 3 },
} as const;
export type ClusterName = keyof typeof CLUSTERS;
export const CLUSTER_NAMES = Object.keys(CLUSTERS) as ClusterName[];

export interface LogLine {
  level: 'debug' | 'info' | 'warn' | 'error';
  msg: string;
  obj: object;
}

export function recordingLogger(): { logger: Logger; lines: LogLine[] } {
  const lines: LogLine[] = [];
  const at =
    (level: LogLine['level']) =>
    (obj: object, msg?: string): void => {
      lines.push({ level, msg: msg ?? '', obj });
    };
  return { logger: { debug: at('debug'), info: at('info'), warn: at('warn'), error: at('error') }, lines };
}

/**
 * What every fixture cluster starts with: two nodes in two zones of the cluster's region, the `reviews`
 * service with two Istio pods (service account bookinfo-reviews), and `ratings` with one plain pod.
 */
export function seedCluster(fixture: KubeApiFixture, name: ClusterName): void {
  const { region, net } = CLUSTERS[name];
  fixture.apply(node(`${name}-node-a`, { region, zone: `${region}-1a` }));
  fixture.apply(node(`${name}-node-b`, { region, zone: `${region}-1b`, subzone: 'rack-2' }));
  fixture.apply(service('bookinfo', 'reviews'));
  fixture.apply(pod('bookinfo', 'reviews-1', { serviceAccount: 'bookinfo-reviews', labels: meshLabels('reviews', { version: 'v1' }), node: `${name}-node-a` }));
  fixture.apply(pod('bookinfo', 'reviews-2', { serviceAccount: 'bookinfo-reviews', labels: meshLabels('reviews', { version: 'v2' }), node: `${name}-node-b` }));
  fixture.apply(
    slice('bookinfo', 'reviews-abcde', 'reviews', [
      { ip: `10.${net}.0.1`, pod: 'reviews-1' },
      { ip: `10.${net}.0.2`, pod: 'reviews-2' },
    ]),
  );
  fixture.apply(service('bookinfo', 'ratings'));
  fixture.apply(pod('bookinfo', 'ratings-1', { serviceAccount: 'bookinfo-ratings', labels: { app: 'ratings' }, node: `${name}-node-a` }));
  fixture.apply(slice('bookinfo', 'ratings-xyz', 'ratings', [{ ip: `10.${net}.1.1`, pod: 'ratings-1' }]));
}

export interface Federation {
  registry: Registry;
  fixtures: Record<ClusterName, KubeApiFixture>;
  sources: Record<ClusterName, KubeSource>;
  clusters: Record<ClusterName, Cluster>;
  log: LogLine[];
  close(): Promise<void>;
}

/** Three fixture API servers, seeded, registered in one Registry with short timings; resolves once all are ready. */
export async function startFederation(options: { gateways?: Partial<Record<ClusterName, { address: string; port?: number }[]>>; registry?: RegistryOptions; source?: KubeSourceOptions } = {}): Promise<Federation> {
  const { logger, lines } = recordingLogger();
  const registry = new Registry({ ...FAST_REGISTRY, logger, ...options.registry });
  const fixtures = {} as Record<ClusterName, KubeApiFixture>;
  const sources = {} as Record<ClusterName, KubeSource>;
  const clusters = {} as Record<ClusterName, Cluster>;
  const started = await Promise.all(CLUSTER_NAMES.map(() => startKubeApiFixture()));
  const close = async (): Promise<void> => {
    await registry.close();
    await Promise.all(started.map((f) => f.close()));
  };
  try {
    for (const [index, name] of CLUSTER_NAMES.entries()) {
      const fixture = started[index];
      if (!fixture) throw new Error('fixture missing');
      seedCluster(fixture, name);
      const { network, region, zone } = CLUSTERS[name];
      const cluster = kubeCluster(fixture, { name, network, region, zone, gateways: options.gateways?.[name] ?? [] });
      const source = new KubeSource(cluster, { ...FAST_SOURCE, logger, ...options.source });
      fixtures[name] = fixture;
      sources[name] = source;
      clusters[name] = cluster;
      registry.add(cluster, source);
    }
    await waitFor(() => CLUSTER_NAMES.every((name) => registry.snapshot().clusters.get(name)?.state === 'ready'), 10_000, 'all three clusters ready in the snapshot', () => summary(registry));
    // the watches start after the lists: wait for all four of each cluster, so faults injected next hit a steady state
    await waitFor(() => started.every((f) => f.watchCount() === 4), 10_000, 'four open watches per fixture', () => started.map((f) => f.watchCount()));
  } catch (err) {
    await close();
    throw err;
  }
  return { registry, fixtures, sources, clusters, log: lines, close };
}
