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
  /**
   * A number that changes whenever a pod or node does: while it stays the same, every lookup answers the same,
   * and what a slice's endpoints took from their pods and nodes can be taken over. Without it, nothing is.
   */
  generation?(): number;
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
export function translateService(object: unknown, cluster: string, slices: readonly unknown[] = []): ServiceResult {
  if (!isObj(object)) return { skipped: [{ object: describe('Service', object), reason: 'not an object' }] };
  const known = serviceMemo.get(object);
  if (known?.cluster === cluster) return known.result;
  const { result, named } = readService(object, cluster, slices);
  // a named targetPort is resolved through the slices, which change on their own
  if (!named) serviceMemo.set(object, { cluster, result });
  return result;
}

type ServiceResult = { service: Service; skipped: Skipped[] } | { skipped: Skipped[] };
/** Services whose translation depends on the Service object alone. */
const serviceMemo = new WeakMap<object, { cluster: string; result: ServiceResult }>();

function readService(object: Obj, cluster: string, slices: readonly unknown[]): { result: ServiceResult; named: boolean } {
  const what = describe('Service', object);
  let named = false;
  const { namespace, name } = nameOf(object);
  if (!DNS_LABEL.test(namespace)) return { result: { skipped: [{ object: what, reason: `namespace "${namespace}" is not a DNS-1123 label` }] }, named };
  if (!DNS_LABEL.test(name)) return { result: { skipped: [{ object: what, reason: `name "${name}" is not a DNS-1123 label` }] }, named };
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
      named ||= !/^\d+$/.test(target);
      const resolved = /^\d+$/.test(target) ? port(Number(target)) : resolveNamedPort(slices, portName, proto);
      if (resolved !== undefined) out.targetPort = resolved;
    }
    const appProtocol = str(p['appProtocol']);
    if (appProtocol !== undefined && appProtocol.length <= 256) out.appProtocol = appProtocol;
    ports.push(out);
  }
  return { result: { service: { cluster, namespace, name, ports, labels: labelsOf(object) }, skipped }, named };
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
  /** sorted by address, one per address (shared with the slice translations it came from: never to be changed) */
  endpoints: Endpoint[];
  skipped: readonly Skipped[];
  /** `namespace/name` of every pod the endpoints refer to (found or not), so a pod change can find its services */
  pods: ReadonlySet<string>;
  /** names of every node the endpoints refer to */
  nodes: ReadonlySet<string>;
}

/** What was read from one endpoint of a slice, and what became of it. */
class EndpointInput {
  constructor(
    readonly address: string | undefined,
    readonly health: EndpointHealth,
    readonly refKind: unknown,
    readonly refName: string | undefined,
    readonly refNamespace: string | undefined,
    readonly nodeName: string | undefined,
    readonly zone: string | undefined,
    /** undefined when the endpoint was skipped */
    readonly endpoint: Endpoint | undefined,
    readonly skipped: Skipped | undefined,
    /** the pod and node it refers to */
    readonly pod: string | undefined,
    readonly node: string | undefined,
  ) {}

  /** the same endpoint with another health */
  withHealth(health: EndpointHealth): EndpointInput {
    const endpoint = this.endpoint === undefined ? undefined : frozen({ ...this.endpoint, health });
    return new EndpointInput(this.address, health, this.refKind, this.refName, this.refNamespace, this.nodeName, this.zone, endpoint, this.skipped, this.pod, this.node);
  }
}

/**
 * One EndpointSlice on its own, kept so that the slice's next version can take over whatever did not change
 * (under endpoint churn, most of a slice stays as it was).
 */
export interface SliceTranslation extends EndpointsResult {
  /** the slice object it was made from, and with what */
  readonly slice: unknown;
  readonly cluster: ClusterContext;
  /** the lookup's generation at the time (undefined: the lookup has none, and nothing is taken over) */
  readonly generation: number | undefined;
  readonly addressType: unknown;
  readonly rawPorts: unknown;
  readonly ports: EndpointPort[];
  readonly portsSkipped: readonly Skipped[];
  /** one per endpoint of the slice, in its order */
  readonly inputs: readonly EndpointInput[];
  /** indexes of `inputs` in the order of `endpoints`; undefined when one address came more than once */
  readonly order: readonly number[] | undefined;
}

/** The last translation of each slice, by `namespace/name`, for its next version to take over from. */
export type SliceMemo = Map<string, SliceTranslation>;

const NO_SKIPPED: readonly Skipped[] = Object.freeze([]);
const NO_NAMES: ReadonlySet<string> = new Set();
const byAddress = (a: Endpoint, b: Endpoint): number => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0);

function unusableSlice(slice: unknown, cluster: ClusterContext, generation: number | undefined, reason: string): SliceTranslation {
  return {
    slice,
    cluster,
    generation,
    addressType: undefined,
    rawPorts: undefined,
    ports: [],
    portsSkipped: NO_SKIPPED,
    inputs: [],
    order: [],
    endpoints: [],
    skipped: [{ object: describe('EndpointSlice', slice), reason }],
    pods: NO_NAMES,
    nodes: NO_NAMES,
  };
}

/**
 * The endpoints of one EndpointSlice, with pod and node details folded in. From `previous` (the last
 * translation of the same slice, made with the same lookup generation) every endpoint that reads the same is
 * taken over as is, and one whose health alone changed is copied with its new health.
 */
function translateSlice(slice: unknown, cluster: ClusterContext, lookup: ObjectLookup, previous?: SliceTranslation): SliceTranslation {
  const generation = lookup.generation?.();
  const base = previous !== undefined && generation !== undefined && previous.generation === generation && previous.cluster === cluster ? previous : undefined;
  if (base !== undefined && base.slice === slice) return base;
  if (!isObj(slice)) return unusableSlice(slice, cluster, generation, 'not an object');
  const addressType = slice['addressType'];
  if (addressType !== 'IPv4' && addressType !== 'IPv6') {
    return unusableSlice(slice, cluster, generation, addressType === 'FQDN' ? 'FQDN slices are not supported (endpoints must be IP addresses)' : `addressType ${JSON.stringify(addressType)} is not IPv4 or IPv6`);
  }
  const { namespace } = nameOf(slice);
  const rawPorts = slice['ports'];
  let ports: EndpointPort[];
  let portsSkipped: readonly Skipped[];
  if (base !== undefined && base.addressType === addressType && deepEqual(rawPorts, base.rawPorts)) {
    ports = base.ports;
    portsSkipped = base.portsSkipped;
  } else {
    ({ ports, skipped: portsSkipped } = slicePorts(slice, rawPorts));
  }
  // what the slice had before can be taken over only if its endpoints would come out the same given the same reading
  const old = base !== undefined && base.ports === ports && base.addressType === addressType ? base.inputs : undefined;
  const rawEndpoints = arr(slice['endpoints']);
  const inputs: EndpointInput[] = [];
  let sameLayout = old !== undefined && old.length === rawEndpoints.length;
  let sameRefs = sameLayout;
  let unchanged = sameLayout;
  for (let index = 0; index < rawEndpoints.length; index++) {
    const e = obj(rawEndpoints[index]);
    const address = str(arr(e['addresses'])[0]);
    const health = healthOf(e['conditions']);
    const ref = obj(e['targetRef']);
    const refKind = ref['kind'];
    const refName = str(ref['name']);
    const refNamespace = str(ref['namespace']);
    const nodeName = str(e['nodeName']);
    const zone = str(e['zone']);
    const before = old?.[index];
    let input: EndpointInput;
    if (before !== undefined && before.address === address && before.refKind === refKind && before.refName === refName && before.refNamespace === refNamespace && before.nodeName === nodeName && before.zone === zone) {
      input = before.health === health || before.endpoint === undefined ? before : before.withHealth(health);
    } else {
      input = readEndpoint(slice, index, address, health, refKind, refName, refNamespace, nodeName, zone, e, addressType, ports, namespace, cluster, lookup);
    }
    inputs.push(input);
    if (input !== before) unchanged = false;
    if (before === undefined || before.address !== input.address || (before.endpoint === undefined) !== (input.endpoint === undefined)) sameLayout = false;
    if (before === undefined || before.pod !== input.pod || before.node !== input.node) sameRefs = false;
  }
  if (unchanged && base !== undefined) return { ...base, slice };
  let order: number[] | undefined;
  let endpoints: Endpoint[];
  if (sameLayout && base?.order !== undefined) {
    order = base.order as number[];
    endpoints = [];
    for (const i of order) endpoints.push(inputs[i]?.endpoint as Endpoint);
  } else {
    ({ order, endpoints } = sortInputs(inputs));
  }
  let skipped: Skipped[] | readonly Skipped[] = portsSkipped;
  for (const input of inputs) if (input.skipped !== undefined) skipped = [...skipped, input.skipped];
  let pods: ReadonlySet<string>;
  let nodes: ReadonlySet<string>;
  if (sameRefs && base !== undefined) ({ pods, nodes } = base);
  else {
    const podSet = new Set<string>();
    const nodeSet = new Set<string>();
    for (const input of inputs) {
      if (input.pod !== undefined) podSet.add(input.pod);
      if (input.node !== undefined) nodeSet.add(input.node);
    }
    pods = podSet;
    nodes = nodeSet;
  }
  return { slice, cluster, generation, addressType, rawPorts, ports, portsSkipped, inputs, order, endpoints, skipped, pods, nodes };
}

function slicePorts(slice: unknown, rawPorts: unknown): { ports: EndpointPort[]; skipped: readonly Skipped[] } {
  const parsed: EndpointPort[] = [];
  let skipped: readonly Skipped[] = NO_SKIPPED;
  for (const [index, raw] of arr(rawPorts).entries()) {
    const p = obj(raw);
    const number = port(p['port']);
    const proto = protocol(p['protocol']);
    const portName = str(p['name']) ?? '';
    if (number === undefined || proto === undefined || portName.length > 63) {
      skipped = [...skipped, { object: `${describe('EndpointSlice', slice)} ports[${index}]`, reason: number === undefined ? 'port is not a number 1-65535' : proto === undefined ? 'protocol is not TCP, UDP or SCTP' : 'name is too long' }];
      continue;
    }
    parsed.push({ name: portName, port: number, protocol: proto });
  }
  return { ports: portLists.intern(JSON.stringify(parsed), () => frozen(parsed.map((p) => frozen(p)))), skipped };
}

function readEndpoint(
  slice: unknown,
  index: number,
  address: string | undefined,
  health: EndpointHealth,
  refKind: unknown,
  refName: string | undefined,
  refNamespace: string | undefined,
  nodeName: string | undefined,
  zone: string | undefined,
  e: Obj,
  addressType: 'IPv4' | 'IPv6',
  ports: EndpointPort[],
  sliceNamespace: string,
  cluster: ClusterContext,
  lookup: ObjectLookup,
): EndpointInput {
  const family = address === undefined ? 0 : isIP(address);
  if (address === undefined || family !== (addressType === 'IPv4' ? 4 : 6)) {
    const reason = address === undefined ? 'no address' : `address ${JSON.stringify(address)} is not an ${addressType} address`;
    const skipped = { object: `${describe('EndpointSlice', slice)} endpoints[${index}]`, reason };
    return new EndpointInput(address, health, refKind, refName, refNamespace, nodeName, zone, undefined, skipped, undefined, undefined);
  }
  const refs: { pod?: string; node?: string } = {};
  const endpoint = endpointOf(e, address, ports, sliceNamespace, cluster, lookup, refs);
  return new EndpointInput(address, health, refKind, refName, refNamespace, nodeName, zone, endpoint, undefined, refs.pod, refs.node);
}

/** The endpoints of inputs sorted by address, one per address (the healthier wins), and where each came from. */
function sortInputs(inputs: readonly EndpointInput[]): { order: number[] | undefined; endpoints: Endpoint[] } {
  const winners = new Map<string, number>();
  let duplicates = false;
  for (const [i, input] of inputs.entries()) {
    const endpoint = input.endpoint;
    if (endpoint === undefined) continue;
    const existing = winners.get(endpoint.address);
    if (existing !== undefined) {
      duplicates = true;
      const kept = inputs[existing]?.endpoint;
      if (kept !== undefined && HEALTH_RANK[endpoint.health] <= HEALTH_RANK[kept.health]) continue;
    }
    winners.set(endpoint.address, i);
  }
  const order = [...winners.values()].sort((a, b) => byAddress(inputs[a]?.endpoint as Endpoint, inputs[b]?.endpoint as Endpoint));
  return { order: duplicates ? undefined : order, endpoints: order.map((i) => inputs[i]?.endpoint as Endpoint) };
}

/** The endpoints of one service: the union of its slices' (one per address, the healthier wins), sorted by address. */
function joinSlices(slices: readonly SliceTranslation[]): EndpointsResult {
  const [first] = slices;
  if (slices.length === 1 && first !== undefined) return first;
  const winners = new Map<string, Endpoint>();
  const skipped: Skipped[] = [];
  const pods = new Set<string>();
  const nodes = new Set<string>();
  for (const slice of slices) {
    skipped.push(...slice.skipped);
    for (const pod of slice.pods) pods.add(pod);
    for (const node of slice.nodes) nodes.add(node);
    for (const endpoint of slice.endpoints) {
      const existing = winners.get(endpoint.address);
      if (!existing || HEALTH_RANK[endpoint.health] > HEALTH_RANK[existing.health]) winners.set(endpoint.address, endpoint);
    }
  }
  return { endpoints: [...winners.values()].sort(byAddress), skipped, pods, nodes };
}

/**
 * The endpoints of one service: the union of its EndpointSlices, with pod and node details folded in. With a
 * memo, each slice takes over what its last translation had that still holds, and leaves its own there.
 */
export function translateEndpoints(slices: readonly unknown[], cluster: ClusterContext, lookup: ObjectLookup, memo?: SliceMemo): EndpointsResult {
  return joinSlices(
    slices.map((slice) => {
      if (memo === undefined) return translateSlice(slice, cluster, lookup);
      const { namespace, name } = nameOf(slice);
      const id = `${namespace}/${name}`;
      const translation = translateSlice(slice, cluster, lookup, memo.get(id));
      memo.set(id, translation);
      return translation;
    }),
  );
}

function endpointOf(e: Obj, address: string, ports: EndpointPort[], sliceNamespace: string, cluster: ClusterContext, lookup: ObjectLookup, refs: { pod?: string; node?: string }): Endpoint {
  const ref = obj(e['targetRef']);
  let pod: Obj | undefined;
  if (ref['kind'] === 'Pod') {
    const podName = str(ref['name']);
    const podNamespace = str(ref['namespace']) ?? sliceNamespace;
    if (podName) {
      refs.pod = `${podNamespace}/${podName}`;
      const found = lookup.pod(podNamespace, podName);
      if (isObj(found)) pod = found;
    }
  }
  const info = pod ? podInfo(pod) : NO_POD;
  const nodeName = str(e['nodeName']) ?? info.nodeName;
  let nodeLabels: Readonly<Record<string, string>> = NO_LABELS;
  if (nodeName) {
    refs.node = nodeName;
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
  // for-in over the plain objects of the model and of parsed JSON: no key arrays to allocate
  let keys = 0;
  for (const key in a) {
    if (!Object.prototype.hasOwnProperty.call(a, key)) continue;
    if (!Object.prototype.hasOwnProperty.call(b, key) || !deepEqual((a as Obj)[key], (b as Obj)[key])) return false;
    keys++;
  }
  for (const key in b) if (Object.prototype.hasOwnProperty.call(b, key)) keys--;
  return keys === 0;
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
  // both lists are sorted by address, so an unchanged endpoint sits at the same index; `next.endpoints` itself
  // is kept (frozen) unless one of its endpoints is to be replaced by an equal one of `previous`
  let endpoints: Endpoint[] | undefined;
  for (let i = 0; i < next.endpoints.length; i++) {
    const endpoint = next.endpoints[i] as Endpoint;
    const old = previous?.endpoints[i];
    let settled = endpoint;
    if (old !== undefined && (old === endpoint || sameEndpoint(old, endpoint))) settled = old;
    else {
      changed = true;
      deepFreeze(endpoint);
    }
    if (settled !== endpoint) endpoints ??= next.endpoints.slice(0, i);
    endpoints?.push(settled);
  }
  if (!changed && previous) return previous;
  return Object.freeze({ service, endpoints: Object.freeze(endpoints ?? next.endpoints) });
}

// ---- one service with its endpoints ------------------------------------------------------------

export interface ServiceViewResult {
  /** undefined when the Service object cannot be used (see skipped) */
  view: ServiceView | undefined;
  skipped: readonly Skipped[];
  /** pods and nodes the endpoints refer to */
  pods: ReadonlySet<string>;
  nodes: ReadonlySet<string>;
}

/**
 * A Service and its EndpointSlices as one ServiceView (endpoints frozen; see settleView for the whole). With a
 * memo, the slices' endpoints are taken over from their last translations where they still hold.
 */
export function translateServiceView(service: unknown, slices: readonly unknown[], cluster: ClusterContext, lookup: ObjectLookup, memo?: SliceMemo): ServiceViewResult {
  const translated = translateService(service, cluster.name, slices);
  if (!('service' in translated)) return { view: undefined, skipped: translated.skipped, pods: NO_NAMES, nodes: NO_NAMES };
  const { endpoints, skipped, pods, nodes } = translateEndpoints(slices, cluster, lookup, memo);
  return { view: { service: translated.service, endpoints }, skipped: translated.skipped.length === 0 ? skipped : [...translated.skipped, ...skipped], pods, nodes };
}
