/**
 * Pure functions from Kubernetes objects (as the API server sends them: Service, EndpointSlice, Pod, Node) to
 * meshfed's model. Objects are taken as `unknown` and read field by field: anything missing has its Kubernetes
 * default, and an object that cannot be used is skipped with a reason, never thrown over.
 */
import { isIP } from 'node:net';
import { DEFAULT_GATEWAY_PORT, type Gateway } from '../../model/cluster.js';
import type { Locality } from '../../model/locality.js';
import type { ServiceView } from '../source.js';
import { PROTOCOLS, serviceKey, type Endpoint, type EndpointHealth, type EndpointPort, type Service, type ServicePort } from '../../model/service.js';

export const LABEL_SERVICE_NAME = 'kubernetes.io/service-name';
export const LABEL_TLS_MODE = 'security.istio.io/tlsMode';
export const LABEL_NETWORK = 'topology.istio.io/network';
export const LABEL_GATEWAY_PORT = 'networking.istio.io/gatewayPort';
export const LABEL_REGION = 'topology.kubernetes.io/region';
export const LABEL_ZONE = 'topology.kubernetes.io/zone';
export const LABEL_SUBZONE = 'topology.istio.io/subzone';

/** What translation needs to know about the cluster the objects come from. */
export interface ClusterContext {
  name: string;
  network: string;
  /** defaults for endpoints whose node says nothing */
  region: string;
  zone: string;
}

/** Looks up the objects an endpoint refers to. */
export interface ObjectLookup {
  pod(namespace: string, name: string): unknown;
  node(name: string): unknown;
}

/** An object, or a part of one, that was left out, and why. */
export interface Skipped {
  /** e.g. `Service default/reviews`, `EndpointSlice default/reviews-abc endpoints[2]` */
  object: string;
  reason: string;
}

// ---- reading unknown JSON ----------------------------------------------------------------------

type Obj = Record<string, unknown>;
const isObj = (value: unknown): value is Obj => typeof value === 'object' && value !== null && !Array.isArray(value);
const obj = (value: unknown): Obj => (isObj(value) ? value : {});
const arr = (value: unknown): unknown[] => (Array.isArray(value) ? (value as unknown[]) : []);
const str = (value: unknown): string | undefined => (typeof value === 'string' ? value : undefined);

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const LABEL_KEY = /^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const LABEL_VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/;
const NETWORK = /^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;
const HOSTNAME = /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i;

// Objects from the API server are replaced on every change, never mutated, so whatever is derived from one
// object alone is computed once per object: under endpoint churn only the slice that changed is read anew.
const labelsMemo = new WeakMap<object, Readonly<Record<string, string>>>();
const podMemo = new WeakMap<object, PodInfo>();
/** One frozen object per distinct value, so that equal localities and port lists compare by reference. */
class Interner<T> {
  readonly #values = new Map<string, T>();
  constructor(readonly limit: number) {}

  intern(key: string, make: () => T): T {
    const found = this.#values.get(key);
    if (found !== undefined) return found;
    if (this.#values.size >= this.limit) this.#values.clear();
    const value = make();
    this.#values.set(key, value);
    return value;
  }
}
const localities = new Interner<Locality>(10_000);
const portLists = new Interner<EndpointPort[]>(10_000);

/** Freezes in place and keeps the (mutable) model type: the model's types are plain, its values are frozen. */
function frozen<T extends object>(value: T): T {
  Object.freeze(value);
  return value;
}

/** The labels of an object's metadata, frozen; keys or values Kubernetes would not allow are dropped. */
export function labelsOf(object: unknown): Readonly<Record<string, string>> {
  if (isObj(object)) {
    const known = labelsMemo.get(object);
    if (known) return known;
    const labels = Object.freeze(readLabels(object));
    labelsMemo.set(object, labels);
    return labels;
  }
  return Object.freeze({});
}

function readLabels(object: unknown): Record<string, string> {
  const raw = obj(obj(obj(object)['metadata'])['labels']);
  const labels: Record<string, string> = {};
  for (const key of Object.keys(raw)) {
    const value = raw[key];
    if (typeof value === 'string' && key.length <= 316 && LABEL_KEY.test(key) && LABEL_VALUE.test(value)) labels[key] = value;
  }
  return labels;
}

function nameOf(object: unknown): { namespace: string; name: string } {
  const metadata = obj(obj(object)['metadata']);
  return { namespace: str(metadata['namespace']) ?? '', name: str(metadata['name']) ?? '' };
}

function describe(kind: string, object: unknown): string {
  const { namespace, name } = nameOf(object);
  return `${kind} ${namespace ? `${namespace}/` : ''}${name || '(unnamed)'}`;
}

function port(value: unknown): number | undefined {
  return typeof value === 'number' && Number.isInteger(value) && value >= 1 && value <= 65535 ? value : undefined;
}

function protocol(value: unknown): (typeof PROTOCOLS)[number] | undefined {
  if (value === undefined || value === null) return 'TCP';
  return (PROTOCOLS as readonly unknown[]).includes(value) ? (value as (typeof PROTOCOLS)[number]) : undefined;
}

// ---- services ----------------------------------------------------------------------------------

/** `namespace/name` of a Service object, or undefined when it has no usable name. */
export function serviceKeyOf(service: unknown): string | undefined {
  const { namespace, name } = nameOf(service);
  return DNS_LABEL.test(namespace) && DNS_LABEL.test(name) ? serviceKey(namespace, name) : undefined;
}

/**
 * A Service object as the model's Service. A named targetPort is resolved through the EndpointSlices' ports
 * (a slice port carries the service port's name and the number the name resolved to); unresolved, it is left out.
 */
export function translateService(object: unknown, cluster: string, slices: readonly unknown[] = []): { service: Service; skipped: Skipped[] } | { skipped: Skipped[] } {
  const what = describe('Service', object);
  if (!isObj(object)) return { skipped: [{ object: what, reason: 'not an object' }] };
  const { namespace, name } = nameOf(object);
  if (!DNS_LABEL.test(namespace)) return { skipped: [{ object: what, reason: `namespace "${namespace}" is not a DNS-1123 label` }] };
  if (!DNS_LABEL.test(name)) return { skipped: [{ object: what, reason: `name "${name}" is not a DNS-1123 label` }] };
  const skipped: Skipped[] = [];
  const ports: ServicePort[] = [];
  const seen = new Set<string>();
  for (const [index, raw] of arr(obj(object['spec'])['ports']).entries()) {
    const p = obj(raw);
    const number = port(p['port']);
    const proto = protocol(p['protocol']);
    const portName = str(p['name']) ?? '';
    if (number === undefined || proto === undefined || portName.length > 63) {
      skipped.push({ object: `${what} spec.ports[${index}]`, reason: number === undefined ? 'port is not a number 1-65535' : proto === undefined ? `protocol ${JSON.stringify(p['protocol'])} is not TCP, UDP or SCTP` : 'name is longer than 63 characters' });
      continue;
    }
    if (seen.has(`${number}/${proto}`)) continue;
    seen.add(`${number}/${proto}`);
    const out: ServicePort = { name: portName, port: number, protocol: proto };
    const target = p['targetPort'];
    if (typeof target === 'number') {
      const t = port(target);
      if (t !== undefined) out.targetPort = t;
    } else if (typeof target === 'string' && target !== '') {
      const resolved = /^\d+$/.test(target) ? port(Number(target)) : resolveNamedPort(slices, portName, proto);
      if (resolved !== undefined) out.targetPort = resolved;
    }
    const appProtocol = str(p['appProtocol']);
    if (appProtocol !== undefined && appProtocol.length <= 256) out.appProtocol = appProtocol;
    ports.push(out);
  }
  return { service: { cluster, namespace, name, ports, labels: labelsOf(object) }, skipped };
}

function resolveNamedPort(slices: readonly unknown[], portName: string, proto: string): number | undefined {
  for (const slice of slices) {
    for (const raw of arr(obj(slice)['ports'])) {
      const p = obj(raw);
      if ((str(p['name']) ?? '') === portName && (protocol(p['protocol']) ?? '') === proto) {
        const number = port(p['port']);
        if (number !== undefined) return number;
      }
    }
  }
  return undefined;
}

// ---- endpoints ---------------------------------------------------------------------------------

const HEALTH_RANK: Record<EndpointHealth, number> = { ready: 3, serving: 2, terminating: 1, unready: 0 };

/** An EndpointSlice endpoint's conditions as the model's health (nil `ready` means ready, as Kubernetes says). */
export function healthOf(conditions: unknown): EndpointHealth {
  const c = obj(conditions);
  if (c['terminating'] === true) return 'terminating';
  if (c['ready'] !== false) return 'ready';
  if (c['serving'] === true) return 'serving';
  return 'unready';
}

/** The service an EndpointSlice belongs to (`namespace/name` from its kubernetes.io/service-name label). */
export function sliceServiceKey(slice: unknown): string | undefined {
  const { namespace } = nameOf(slice);
  const service = str(obj(obj(obj(slice)['metadata'])['labels'])[LABEL_SERVICE_NAME]);
  return service !== undefined && DNS_LABEL.test(namespace) && DNS_LABEL.test(service) ? serviceKey(namespace, service) : undefined;
}

export interface EndpointsResult {
  /** sorted by address, one per address */
  endpoints: Endpoint[];
  skipped: Skipped[];
  /** `namespace/name` of every pod the endpoints refer to (found or not), so a pod change can find its services */
  pods: Set<string>;
  /** names of every node the endpoints refer to */
  nodes: Set<string>;
}

/** The endpoints of one service: the union of its EndpointSlices, with pod and node details folded in. */
export function translateEndpoints(slices: readonly unknown[], cluster: ClusterContext, lookup: ObjectLookup): EndpointsResult {
  const byAddress = new Map<string, Endpoint>();
  const skipped: Skipped[] = [];
  const pods = new Set<string>();
  const nodes = new Set<string>();
  for (const slice of slices) {
    const what = describe('EndpointSlice', slice);
    if (!isObj(slice)) {
      skipped.push({ object: what, reason: 'not an object' });
      continue;
    }
    const addressType = slice['addressType'];
    if (addressType !== 'IPv4' && addressType !== 'IPv6') {
      skipped.push({ object: what, reason: addressType === 'FQDN' ? 'FQDN slices are not supported (endpoints must be IP addresses)' : `addressType ${JSON.stringify(addressType)} is not IPv4 or IPv6` });
      continue;
    }
    const { namespace } = nameOf(slice);
    const parsed: EndpointPort[] = [];
    for (const [index, raw] of arr(slice['ports']).entries()) {
      const p = obj(raw);
      const number = port(p['port']);
      const proto = protocol(p['protocol']);
      const portName = str(p['name']) ?? '';
      if (number === undefined || proto === undefined || portName.length > 63) {
        skipped.push({ object: `${what} ports[${index}]`, reason: number === undefined ? 'port is not a number 1-65535' : proto === undefined ? 'protocol is not TCP, UDP or SCTP' : 'name is too long' });
        continue;
      }
      parsed.push({ name: portName, port: number, protocol: proto });
    }
    const ports = portLists.intern(JSON.stringify(parsed), () => frozen(parsed.map((p) => frozen(p))));
    for (const [index, raw] of arr(slice['endpoints']).entries()) {
      const e = obj(raw);
      const address = str(arr(e['addresses'])[0]);
      const family = address === undefined ? 0 : isIP(address);
      if (address === undefined || family !== (addressType === 'IPv4' ? 4 : 6)) {
        skipped.push({ object: `${what} endpoints[${index}]`, reason: address === undefined ? 'no address' : `address ${JSON.stringify(address)} is not an ${addressType} address` });
        continue;
      }
      const endpoint = endpointOf(e, address, ports, namespace, cluster, lookup, pods, nodes);
      const existing = byAddress.get(address);
      if (!existing || HEALTH_RANK[endpoint.health] > HEALTH_RANK[existing.health]) byAddress.set(address, endpoint);
    }
  }
  const endpoints = [...byAddress.values()].sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { endpoints, skipped, pods, nodes };
}

function endpointOf(e: Obj, address: string, ports: EndpointPort[], sliceNamespace: string, cluster: ClusterContext, lookup: ObjectLookup, pods: Set<string>, nodes: Set<string>): Endpoint {
  const ref = obj(e['targetRef']);
  let pod: Obj | undefined;
  if (ref['kind'] === 'Pod') {
    const podName = str(ref['name']);
    const podNamespace = str(ref['namespace']) ?? sliceNamespace;
    if (podName) {
      pods.add(`${podNamespace}/${podName}`);
      const found = lookup.pod(podNamespace, podName);
      if (isObj(found)) pod = found;
    }
  }
  const info = pod ? podInfo(pod) : NO_POD;
  const nodeName = str(e['nodeName']) ?? info.nodeName;
  let nodeLabels: Readonly<Record<string, string>> = NO_LABELS;
  if (nodeName) {
    nodes.add(nodeName);
    const node = lookup.node(nodeName);
    if (node !== undefined) nodeLabels = labelsOf(node);
  }
  const region = nodeLabels[LABEL_REGION] ?? cluster.region;
  const zone = nodeLabels[LABEL_ZONE] ?? str(e['zone']) ?? cluster.zone;
  const subzone = nodeLabels[LABEL_SUBZONE] ?? '';
  const locality = localities.intern(`${region}\u0000${zone}\u0000${subzone}`, () => Object.freeze({ region, zone, subzone }));
  const endpoint: Endpoint = {
    address,
    ports,
    locality,
    serviceAccount: info.serviceAccount,
    labels: info.labels,
    tlsMode: info.tlsMode,
    health: healthOf(e['conditions']),
  };
  if (info.network !== undefined) endpoint.network = info.network;
  return frozen(endpoint);
}

/** What an endpoint takes from its pod. */
interface PodInfo {
  labels: Readonly<Record<string, string>>;
  serviceAccount: string;
  tlsMode: Endpoint['tlsMode'];
  network?: string;
  nodeName?: string;
}

const NO_LABELS: Readonly<Record<string, string>> = Object.freeze({});
const NO_POD: PodInfo = Object.freeze({ labels: NO_LABELS, serviceAccount: 'default', tlsMode: 'plaintext' });

function podInfo(pod: Obj): PodInfo {
  const known = podMemo.get(pod);
  if (known) return known;
  const spec = obj(pod['spec']);
  const labels = labelsOf(pod);
  const account = str(spec['serviceAccountName']) ?? str(spec['serviceAccount']) ?? 'default';
  const network = labels[LABEL_NETWORK];
  const nodeName = str(spec['nodeName']);
  const info: PodInfo = Object.freeze({
    labels,
    serviceAccount: account.length > 0 && account.length <= 253 ? account : 'default',
    tlsMode: labels[LABEL_TLS_MODE] === 'istio' ? 'mtls' : 'plaintext',
    ...(network !== undefined && NETWORK.test(network) ? { network } : {}),
    ...(nodeName ? { nodeName } : {}),
  });
  podMemo.set(pod, info);
  return info;
}

// ---- gateways ----------------------------------------------------------------------------------

/**
 * East-west gateways of a network, as Istio finds them: Services labelled `topology.istio.io/network=<network>`,
 * one gateway per load-balancer ingress (IP or hostname), on the port the `networking.istio.io/gatewayPort`
 * label names (15443 by default), provided the Service exposes that port.
 */
export function discoverGateways(services: Iterable<unknown>, network: string): { gateways: Gateway[]; skipped: Skipped[] } {
  const gateways = new Map<string, Gateway>();
  const skipped: Skipped[] = [];
  for (const service of services) {
    const labels = labelsOf(service);
    if (labels[LABEL_NETWORK] !== network) continue;
    const what = describe('Service', service);
    const portLabel = labels[LABEL_GATEWAY_PORT];
    const gatewayPort = portLabel !== undefined && /^\d+$/.test(portLabel) ? (port(Number(portLabel)) ?? DEFAULT_GATEWAY_PORT) : DEFAULT_GATEWAY_PORT;
    const ports = arr(obj(obj(service)['spec'])['ports']).map((p) => port(obj(p)['port']));
    if (ports.length > 0 && !ports.includes(gatewayPort)) {
      skipped.push({ object: what, reason: `labelled ${LABEL_NETWORK}=${network} but exposes no port ${gatewayPort}` });
      continue;
    }
    const ingress = arr(obj(obj(obj(service)['status'])['loadBalancer'])['ingress']);
    if (ingress.length === 0) {
      skipped.push({ object: what, reason: `labelled ${LABEL_NETWORK}=${network} but has no load-balancer ingress yet` });
      continue;
    }
    for (const [index, raw] of ingress.entries()) {
      const i = obj(raw);
      const address = str(i['ip']) ?? str(i['hostname']);
      if (address === undefined || (isIP(address) === 0 && !HOSTNAME.test(address))) {
        skipped.push({ object: `${what} status.loadBalancer.ingress[${index}]`, reason: 'neither an IP address nor a DNS name' });
        continue;
      }
      gateways.set(`${address}:${gatewayPort}`, { address, port: gatewayPort });
    }
  }
  return { gateways: [...gateways.values()].sort((a, b) => (a.address === b.address ? a.port - b.port : a.address < b.address ? -1 : 1)), skipped };
}

// ---- comparing and freezing -------------------------------------------------------------------

/** Structural equality for the JSON-like values of the model. */
export function deepEqual(a: unknown, b: unknown): boolean {
  if (a === b) return true;
  if (typeof a !== 'object' || typeof b !== 'object' || a === null || b === null) return false;
  if (Array.isArray(a)) {
    if (!Array.isArray(b) || a.length !== b.length) return false;
    for (let i = 0; i < a.length; i++) if (!deepEqual(a[i], b[i])) return false;
    return true;
  }
  if (Array.isArray(b)) return false;
  const ka = Object.keys(a);
  const kb = Object.keys(b);
  if (ka.length !== kb.length) return false;
  for (const key of ka) {
    if (!Object.prototype.hasOwnProperty.call(b, key)) return false;
    if (!deepEqual((a as Obj)[key], (b as Obj)[key])) return false;
  }
  return true;
}

/** Freezes a JSON-like value and everything in it. */
export function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null && !Object.isFrozen(value)) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function sameEndpoint(a: Endpoint, b: Endpoint): boolean {
  return (
    a.address === b.address &&
    a.health === b.health &&
    a.serviceAccount === b.serviceAccount &&
    a.tlsMode === b.tlsMode &&
    a.network === b.network &&
    (a.ports === b.ports || deepEqual(a.ports, b.ports)) &&
    (a.locality === b.locality || deepEqual(a.locality, b.locality)) &&
    (a.labels === b.labels || deepEqual(a.labels, b.labels))
  );
}

/**
 * The frozen view for `next`, made of `previous`'s objects wherever they are unchanged, or `previous`
 * itself when nothing changed: consumers can tell what changed by reference.
 */
export function settleView(previous: ServiceView | undefined, next: { service: Service; endpoints: readonly Endpoint[] }): ServiceView {
  const service = previous && (previous.service === next.service || deepEqual(previous.service, next.service)) ? previous.service : deepFreeze(next.service);
  let changed = previous === undefined || service !== previous.service || previous.endpoints.length !== next.endpoints.length;
  // both lists are sorted by address, so an unchanged endpoint sits at the same index
  const endpoints = next.endpoints.map((endpoint, i) => {
    const old = previous?.endpoints[i];
    if (old && sameEndpoint(old, endpoint)) return old;
    changed = true;
    return Object.isFrozen(endpoint) ? endpoint : deepFreeze(endpoint);
  });
  if (!changed && previous) return previous;
  return Object.freeze({ service, endpoints: Object.freeze(endpoints) });
}

// ---- one service with its endpoints ------------------------------------------------------------

export interface ServiceViewResult {
  /** undefined when the Service object cannot be used (see skipped) */
  view: ServiceView | undefined;
  skipped: Skipped[];
  /** pods and nodes the endpoints refer to */
  pods: Set<string>;
  nodes: Set<string>;
}

/** A Service and its EndpointSlices as one ServiceView (endpoints frozen; see settleView for the whole). */
export function translateServiceView(service: unknown, slices: readonly unknown[], cluster: ClusterContext, lookup: ObjectLookup): ServiceViewResult {
  const translated = translateService(service, cluster.name, slices);
  if (!('service' in translated)) return { view: undefined, skipped: translated.skipped, pods: new Set(), nodes: new Set() };
  const { endpoints, skipped, pods, nodes } = translateEndpoints(slices, cluster, lookup);
  return { view: { service: translated.service, endpoints }, skipped: [...translated.skipped, ...skipped], pods, nodes };
}
