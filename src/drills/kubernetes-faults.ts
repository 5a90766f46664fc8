/**
 * Drill faults on clusters meshfed watches through the Kubernetes API, done through that API with the cluster's own
 * registered kubeconfig (the one the registry watches it with). They change a real cluster, so each needs the
 * operator's explicit consent for the drill (`meshfed drill run --allow-disruptive`; `allowDisruptive: true` beside
 * the document in POST /api/v1/drills); without it the drill is refused before anything changes. meshfed's brain is
 * never told: it learns of the fault as in production (the EndpointSlices its informers watch, its gateway probes,
 * the clients' errors).
 *
 * - kill-workloads (target.cluster and target.service): the Deployments whose pod template the service selects are
 *   scaled to zero through their `scale` subresource (JSON merge patch), after their replica counts are recorded;
 *   restore scales each back to exactly what it was. Zones cannot be narrowed: a Deployment's scale is for every
 *   zone, and a pod deleted in one zone is recreated, so such a step is refused (drain a zone instead). A whole
 *   cluster without a service is refused too: it would scale down every Deployment, the mesh's own included.
 * - kill-gateway: the east-west gateway pods (label selector `istio=eastwestgateway,topology.istio.io/network=NET`,
 *   Istio's convention for the cluster's network; `serve --drill-gateway-selector` sets another) are deleted; their
 *   Deployment recreates them, and restore waits (bounded) until as many new ones are Running and Ready.
 * - partition and api-outage cannot be done through the Kubernetes API (they need the network, or the API server
 *   itself, to go away): refused before the drill starts. drain is meshfed's own act and needs no consent.
 *
 * The kubeconfig's user needs: list services (in all namespaces for a service named without its namespace), list
 * deployments, get and patch deployments/scale (group apps), list pods in all namespaces and delete pods where the
 * gateway runs (scenarios/README.md has the ClusterRole).
 */
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { Cluster } from '../model/cluster.js';
import { loadSafeKubeconfig, type SafeKubeconfigOptions } from '../registry/kube/kubeconfig.js';
import { KubeApi, KubeRequestError } from './kubernetes-api.js';
import type { AppliedFault, Fault, FaultOptions, FaultTarget } from './world.js';

/** Istio's east-west gateway pods (samples/multicluster/gen-eastwest-gateway.sh), of one network */
export const ISTIO_GATEWAY_SELECTOR = 'istio=eastwestgateway,topology.istio.io/network={network}';
/** how long restoring kill-gateway waits for the recreated pods */
export const DEFAULT_GATEWAY_RETURN_MS = 120_000;
const GATEWAY_POLL_MS = 500;

const MAX_SELECTOR_LENGTH = 1024;

/**
 * What is wrong with a gateway pod selector as given (`{network}` allowed), or undefined: it must be printable,
 * bounded and not empty; the API server checks the rest of its syntax.
 */
export function gatewaySelectorProblem(selector: string): string | undefined {
  if (selector.trim() === '' || selector.length > MAX_SELECTOR_LENGTH || !/^[\x20-\x7e]+$/.test(selector)) {
    return `must be a Kubernetes label selector of printable characters, at most ${String(MAX_SELECTOR_LENGTH)} long (like ${ISTIO_GATEWAY_SELECTOR})`;
  }
  return undefined;
}

export interface KubernetesFaultsParts {
  /** the clusters meshfed watches now, with their registered sources (the registry's snapshot) */
  clusters: () => Iterable<Cluster>;
  /** what a kubeconfig may do, as for the registry */
  safety?: Pick<SafeKubeconfigOptions, 'allowExec' | 'allowFiles'>;
  /** the label selector of a cluster's east-west gateway pods; `{network}` stands for the cluster's network */
  gatewaySelector?: string;
  /** how long restoring kill-gateway waits for the pods to be back */
  gatewayReturnMs?: number;
  /** how long one request to an API server may take */
  requestTimeoutMs?: number;
  logger?: Logger;
}

/** The faults of the clusters watched through the Kubernetes API. */
export interface KubernetesFaults {
  /** whether `cluster` is watched through the Kubernetes API (its faults are done here) */
  owns(cluster: string): boolean;
  /** why `fault` on a cluster of these cannot run under `options`, found before anything changes; undefined when it can */
  refusal(fault: Fault, options: FaultOptions): string | undefined;
  /** applies it; throws, changing nothing, when it cannot */
  apply(fault: Fault, options: FaultOptions): Promise<AppliedFault>;
}

type Json = Record<string, unknown>;

const isRecord = (value: unknown): value is Json => typeof value === 'object' && value !== null && !Array.isArray(value);
const record = (value: unknown): Json => (isRecord(value) ? value : {});
const items = (list: unknown): Json[] => (Array.isArray(record(list)['items']) ? (record(list)['items'] as unknown[]).filter(isRecord) : []);
const text = (value: unknown): string => (typeof value === 'string' ? value : '');
const quote = (s: string): string => JSON.stringify(s.slice(0, 200));
const seg = encodeURIComponent;

function labelsOf(object: unknown): Record<string, string> {
  const labels = record(record(object)['labels']);
  return Object.fromEntries(Object.entries(labels).filter((entry): entry is [string, string] => typeof entry[1] === 'string'));
}

const metaOf = (object: Json): { name: string; namespace: string } => {
  const meta = record(object['metadata']);
  return { name: text(meta['name']), namespace: text(meta['namespace']) };
};

/** A pod that counts as back: running, and ready when it reports conditions. */
function podReady(pod: Json): boolean {
  const status = record(pod['status']);
  if (status['phase'] !== 'Running') return false;
  const conditions = Array.isArray(status['conditions']) ? (status['conditions'] as unknown[]).filter(isRecord) : [];
  const ready = conditions.find((c) => c['type'] === 'Ready');
  return ready === undefined || ready['status'] === 'True';
}

/** A fault on a real cluster, whose restore runs once however often it is called. */
function applied(label: string, undo: () => Promise<void>): AppliedFault {
  let restoring: Promise<void> | undefined;
  return { label, disruptive: true, restore: () => (restoring ??= undo()) };
}

export function kubernetesFaults(parts: KubernetesFaultsParts): KubernetesFaults {
  const log = parts.logger ?? SILENT_LOGGER;
  const selectorTemplate = parts.gatewaySelector ?? ISTIO_GATEWAY_SELECTOR;
  const returnMs = parts.gatewayReturnMs ?? DEFAULT_GATEWAY_RETURN_MS;

  const kubeClusters = (): Map<string, Cluster> => new Map([...parts.clusters()].filter((c) => c.source.type === 'kubernetes').map((c) => [c.name, c]));

  /** the API of a cluster, through its registered kubeconfig (loaded afresh: a re-registration may have changed it) */
  function apiOf(cluster: Cluster): KubeApi {
    const source = cluster.source;
    if (source.type !== 'kubernetes') throw new Error(`cluster ${cluster.name} is not watched through the Kubernetes API`);
    const kc = loadSafeKubeconfig(source.kubeconfig, { ...(source.context !== undefined ? { context: source.context } : {}), ...parts.safety });
    return new KubeApi(kc, parts.requestTimeoutMs);
  }

  function clusterOf(kind: string, target: FaultTarget): Cluster {
    const name = target.cluster ?? '';
    const cluster = kubeClusters().get(name);
    if (!cluster) throw new Error(`${kind}: cluster ${quote(name)} is not watched through the Kubernetes API`);
    return cluster;
  }

  function refusal(fault: Fault, options: FaultOptions): string | undefined {
    const { kind, target } = fault;
    if (kind === 'drain') return undefined;
    const cluster = target.cluster ?? '';
    if (kind === 'partition' || kind === 'api-outage') {
      const needs = kind === 'partition' ? "the cluster's network to drop its gateway's traffic" : 'its API server to go away';
      return `${kind} cannot be done to Kubernetes cluster ${cluster} through its API (it needs ${needs}); drill it on the embedded federation, or use kill-gateway`;
    }
    if (target.zone !== undefined) {
      return `${kind} on Kubernetes cluster ${cluster} cannot be narrowed to zone ${target.zone}: a Deployment's scale covers every zone and a deleted pod is recreated; target the whole cluster, or drain the zone`;
    }
    if (kind === 'kill-workloads' && target.service === undefined) {
      return `kill-workloads on Kubernetes cluster ${cluster} needs target.service: meshfed scales down the Deployments behind one service, never a whole cluster's`;
    }
    if (!options.allowDisruptive) {
      const what = kind === 'kill-workloads' ? `scales the Deployments of ${target.service ?? ''} to zero` : 'deletes its east-west gateway pods';
      return `${kind} changes the real cluster ${cluster} (it ${what}): run the drill with --allow-disruptive (API: allowDisruptive: true)`;
    }
    return undefined;
  }

  /** The services `namespace/name` or `name` (any namespace) names, with their selectors. */
  async function servicesNamed(api: KubeApi, cluster: string, service: string): Promise<{ namespace: string; name: string; selector: Record<string, string> }[]> {
    const slash = service.indexOf('/');
    let found: Json[];
    if (slash !== -1) {
      const namespace = service.slice(0, slash);
      const name = service.slice(slash + 1);
      const list = await api.send({ method: 'GET', path: `/api/v1/namespaces/${seg(namespace)}/services?fieldSelector=${seg(`metadata.name=${name}`)}`, permission: `list services in ${namespace}` });
      found = items(list);
    } else {
      const list = await api.send({ method: 'GET', path: `/api/v1/services?fieldSelector=${seg(`metadata.name=${service}`)}`, permission: 'list services in all namespaces' });
      found = items(list);
    }
    if (found.length === 0) throw new Error(`kill-workloads: cluster ${cluster} has no service ${quote(service)}`);
    return found.map((svc) => {
      const { name, namespace } = metaOf(svc);
      const selector = labelsOf({ labels: record(svc['spec'])['selector'] });
      if (Object.keys(selector).length === 0) throw new Error(`kill-workloads: service ${namespace}/${name} of cluster ${cluster} has no selector, so no Deployment stands behind it`);
      return { namespace, name, selector };
    });
  }

  async function killWorkloads(target: FaultTarget): Promise<AppliedFault> {
    const cluster = clusterOf('kill-workloads', target);
    const api = apiOf(cluster);
    const services = await servicesNamed(api, cluster.name, target.service ?? '');
    const scaled: { namespace: string; name: string; replicas: number }[] = [];
    const scalePath = (d: { namespace: string; name: string }): string => `/apis/apps/v1/namespaces/${seg(d.namespace)}/deployments/${seg(d.name)}/scale`;
    const scale = (d: { namespace: string; name: string }, replicas: number): Promise<unknown> =>
      api.send({ method: 'PATCH', path: scalePath(d), body: { spec: { replicas } }, permission: `patch deployments/scale in ${d.namespace}` });
    const deployments: { namespace: string; name: string }[] = [];
    for (const svc of services) {
      const list = await api.send({ method: 'GET', path: `/apis/apps/v1/namespaces/${seg(svc.namespace)}/deployments`, permission: `list deployments in ${svc.namespace}` });
      for (const deployment of items(list)) {
        const template = labelsOf(record(record(deployment['spec'])['template'])['metadata']);
        if (Object.entries(svc.selector).every(([key, value]) => template[key] === value)) deployments.push(metaOf(deployment));
      }
    }
    if (deployments.length === 0) {
      throw new Error(`kill-workloads: no Deployment of cluster ${cluster.name} runs pods that service ${quote(target.service ?? '')} selects (meshfed scales Deployments only)`);
    }
    const restore = async (): Promise<void> => {
      await Promise.all(scaled.map((d) => scale(d, d.replicas)));
      log.info({ cluster: cluster.name, deployments: scaled.map((d) => `${d.namespace}/${d.name}=${String(d.replicas)}`) }, 'drill: deployments scaled back');
    };
    try {
      for (const d of deployments) {
        const current = await api.send({ method: 'GET', path: scalePath(d), permission: `get deployments/scale in ${d.namespace}` });
        const replicas = record(record(current)['spec'])['replicas'];
        const count = typeof replicas === 'number' ? replicas : 0;
        if (count === 0) continue;
        // recorded before the change: a patch that reached the server but whose answer was lost is still undone
        scaled.push({ ...d, replicas: count });
        await scale(d, 0);
      }
    } catch (error) {
      await restore().catch((undo: unknown) => {
        log.warn({ cluster: cluster.name, err: { message: (undo as Error).message } }, 'drill: could not scale back after a failed kill-workloads');
      });
      throw new Error(`kill-workloads: ${(error as Error).message}`, { cause: error });
    }
    const label = `kill-workloads ${cluster.name} ${target.service ?? ''}`;
    log.info({ fault: label, deployments: scaled.map((d) => `${d.namespace}/${d.name}`) }, 'drill: deployments scaled to zero');
    return applied(label, restore);
  }

  async function killGateway(target: FaultTarget): Promise<AppliedFault> {
    const cluster = clusterOf('kill-gateway', target);
    const api = apiOf(cluster);
    const selector = selectorTemplate.replaceAll('{network}', cluster.network);
    const listPods = async (): Promise<Json[]> =>
      items(await api.send({ method: 'GET', path: `/api/v1/pods?labelSelector=${seg(selector)}`, permission: 'list pods in all namespaces' }));
    const pods = (await listPods()).map((pod) => ({ ...metaOf(pod), uid: text(record(pod['metadata'])['uid']) }));
    if (pods.length === 0) throw new Error(`kill-gateway: no pod of cluster ${cluster.name} matches ${quote(selector)} (serve --drill-gateway-selector sets the gateway pods' label selector)`);
    const deleted = new Set<string>();
    for (const pod of pods) {
      try {
        // exactly the pod listed: one recreated under the same name meanwhile is not deleted again
        const preconditions = pod.uid !== '' ? { body: { apiVersion: 'v1', kind: 'DeleteOptions', preconditions: { uid: pod.uid } } } : {};
        await api.send({ method: 'DELETE', path: `/api/v1/namespaces/${seg(pod.namespace)}/pods/${seg(pod.name)}`, ...preconditions, permission: `delete pods in ${pod.namespace}` });
        deleted.add(`${pod.namespace}/${pod.name}`);
      } catch (error) {
        // gone already, or replaced: not this fault's to wait for
        if (error instanceof KubeRequestError && (error.statusCode === 404 || error.statusCode === 409)) continue;
        const done = deleted.size > 0 ? ` (${String(deleted.size)} of its ${String(pods.length)} gateway pods were deleted before: their Deployment recreates them)` : '';
        throw new Error(`kill-gateway: ${(error as Error).message}${done}`, { cause: error });
      }
    }
    if (deleted.size === 0) throw new Error(`kill-gateway: the gateway pods of cluster ${cluster.name} (${quote(selector)}) went away before meshfed could delete them`);
    const label = `kill-gateway ${cluster.name}`;
    log.info({ fault: label, selector, pods: [...deleted] }, 'drill: gateway pods deleted');
    return applied(label, async () => {
      const deadline = Date.now() + returnMs;
      for (;;) {
        const back = (await listPods()).filter((pod) => !deleted.has(`${metaOf(pod).namespace}/${metaOf(pod).name}`) && podReady(pod));
        if (back.length >= deleted.size) {
          log.info({ fault: label, pods: back.map((pod) => metaOf(pod).name) }, 'drill: gateway pods back');
          return;
        }
        if (Date.now() > deadline) throw new Error(`${label}: ${String(back.length)} of ${String(deleted.size)} gateway pods are back and ready after ${String(returnMs / 1000)} s`);
        await new Promise((done) => setTimeout(done, GATEWAY_POLL_MS));
      }
    });
  }

  return {
    owns: (cluster) => kubeClusters().has(cluster),
    refusal,
    async apply(fault, options) {
      const refused = refusal(fault, options);
      if (refused !== undefined) throw new Error(refused);
      if (fault.kind === 'kill-workloads') return killWorkloads(fault.target);
      if (fault.kind === 'kill-gateway') return killGateway(fault.target);
      throw new Error(`${fault.kind} is not done through the Kubernetes API`);
    },
  };
}
