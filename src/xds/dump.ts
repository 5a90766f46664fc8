/**
 * `meshfed xds dump`: what a proxy of a given kind, cluster, network and locality would get, read through the very
 * provider the ADS server serves from (same views, same cache, same bytes), then decoded for people: every
 * google.protobuf.Any at any depth is expanded into `{ "@type": URL, ...fields }`.
 */
import { z } from 'zod';
import { clusterNameSchema, networkNameSchema } from '../model/names.js';
import type { NodeIdentity, ResourceProvider } from './ads-server.js';
import { decodeToObject, envoyRoot, MESSAGE_NAME, TYPE_URL } from './envoy-protos.js';
import type { ProxyKind } from './federation-provider.js';

export const PROXY_KINDS = ['proxyless', 'sidecar', 'gateway'] as const satisfies readonly ProxyKind[];

const localityPart = z
  .string()
  .max(128, 'must be at most 128 characters')
  .regex(/^[^/]*$/, 'must not contain "/"');

/** Who to dump for (the query of GET /api/v1/xds/dump). */
export const dumpRequestSchema = z.strictObject({
  kind: z.enum(PROXY_KINDS, { message: 'kind must be proxyless, sidecar or gateway' }).default('proxyless'),
  cluster: clusterNameSchema,
  network: networkNameSchema.optional(),
  region: localityPart.default(''),
  zone: localityPart.default(''),
  subzone: localityPart.default(''),
});
export type DumpRequest = z.infer<typeof dumpRequestSchema>;

export interface XdsDump {
  node: NodeIdentity;
  kind: ProxyKind;
  /** per type: its version for this node, and the resources decoded */
  listeners: DumpedType;
  routes: DumpedType;
  clusters: DumpedType;
  endpoints: DumpedType;
}

export interface DumpedType {
  typeUrl: string;
  version: string;
  resources: unknown[];
}

/** The node identity a proxy of that kind would present (Istio's conventions, as proxyKind reads them). */
export function dumpNode(request: DumpRequest): NodeIdentity {
  const node: NodeIdentity = {
    id: `${request.kind === 'gateway' ? 'router' : 'sidecar'}~meshfed-dump~${request.cluster}`,
    cluster: request.cluster,
    locality: { region: request.region, zone: request.zone, subzone: request.subzone },
  };
  if (request.network !== undefined) node.network = request.network;
  if (request.kind === 'proxyless') node.generator = 'grpc';
  if (request.kind === 'sidecar') node.userAgent = 'envoy';
  return node;
}

const MESSAGE_OF_TYPE = new Map<string, string>(Object.entries(TYPE_URL).map(([key, url]) => [url, MESSAGE_NAME[key as keyof typeof MESSAGE_NAME]]));

/** Decodes a nested Any's value (base64 in the object form) and everything inside it; unknown types stay as they are. */
function expand(value: unknown): unknown {
  if (Array.isArray(value)) return value.map(expand);
  if (typeof value !== 'object' || value === null) return value;
  const record = value as Record<string, unknown>;
  const typeUrl = record.type_url;
  if (typeof typeUrl === 'string' && Object.keys(record).every((k) => k === 'type_url' || k === 'value')) {
    const message = typeUrl.replace(/^type\.googleapis\.com\//, '');
    const type = envoyRoot().lookup(message);
    if (type && 'decode' in type) {
      const bytes = typeof record.value === 'string' ? Buffer.from(record.value, 'base64') : new Uint8Array();
      const decoded = expand(decodeToObject(envoyRoot().lookupType(message), bytes)) as Record<string, unknown>;
      return { '@type': typeUrl, ...decoded };
    }
  }
  return Object.fromEntries(Object.entries(record).map(([k, v]) => [k, expand(v)]));
}

function dumpType(provider: ResourceProvider, node: NodeIdentity, typeUrl: string, names: readonly string[]): { dumped: DumpedType; names: string[] } {
  const set = provider.resources(node, typeUrl, names);
  const message = MESSAGE_OF_TYPE.get(typeUrl);
  if (!set || message === undefined) return { dumped: { typeUrl, version: '', resources: [] }, names: [] };
  const type = envoyRoot().lookupType(message);
  const resources = set.resources.map((r) => ({ '@type': typeUrl, ...(expand(decodeToObject(type, r.value)) as Record<string, unknown>) }));
  return { dumped: { typeUrl, version: set.version, resources }, names: set.resources.map((r) => r.name) };
}

/**
 * Everything the provider would send such a node: every listener and cluster (wildcard), the routes those listeners
 * name (meshfed names a route configuration after its listener), and the endpoints of every cluster.
 */
export function xdsDump(provider: ResourceProvider, request: DumpRequest): XdsDump {
  const node = dumpNode(request);
  const listeners = dumpType(provider, node, TYPE_URL.listener, []);
  const clusters = dumpType(provider, node, TYPE_URL.cluster, []);
  const routes = dumpType(provider, node, TYPE_URL.routeConfiguration, request.kind === 'proxyless' ? listeners.names : []);
  const endpoints = dumpType(provider, node, TYPE_URL.clusterLoadAssignment, clusters.names);
  return { node, kind: request.kind, listeners: listeners.dumped, routes: routes.dumped, clusters: clusters.dumped, endpoints: endpoints.dumped };
}
