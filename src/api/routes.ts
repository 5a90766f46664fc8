/**
 * Every route of the REST API, one entry each: method, path, who may call it (the minimum role, or open), and what
 * the OpenAPI document says of it. The authorization middleware, the audit log and GET /api/v1/openapi.json all read
 * this table, and a test checks it against the routes express really serves. A new route is one entry here.
 */
import { z } from 'zod';
import { API_VERSION } from '../model/federation-file.js';
import { failoverDrillSpecSchema } from '../model/failover-drill.js';
import { dnsLabelSchema, labelsSchema } from '../model/names.js';
import type { ApiRole } from '../model/api-roles.js';
import { PROXY_KINDS } from '../xds/dump.js';
import { registerRequestSchema } from './clusters.js';
import { virtualDestinationDocumentSchema } from './virtual-destinations.js';
import { rotationRequestSchema } from './trust.js';

export type HttpMethod = 'GET' | 'POST' | 'PUT' | 'DELETE';

/** A part of the API the server mounts only when it has what it serves (xDS, virtual destinations, drills…). */
export type RouteGroup = 'health' | 'api' | 'clusters' | 'virtualdestinations' | 'xds' | 'drills' | 'trust';

export interface QueryParameter {
  name: string;
  description: string;
  required?: boolean;
  /** the allowed values */
  values?: readonly string[];
}

export interface RouteSpec {
  method: HttpMethod;
  /** the full path in express's form: /api/v1/clusters/:name */
  path: string;
  /** the weakest role that may call it; open: no credentials at all */
  access: ApiRole | 'open';
  group: RouteGroup;
  summary: string;
  /** what a change acts on, for the audit log: cluster, virtual-destination, drill */
  resource?: string;
  query?: readonly QueryParameter[];
  /** the JSON body it takes */
  body?: { description: string; schema: z.ZodType };
  /** status → what it means; the errors every /api/v1 route may answer (401, 403, 429) are added by the document */
  responses: Readonly<Record<number, string>>;
}

const failoverDrillDocumentSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('FailoverDrill'),
  metadata: z.strictObject({ name: dnsLabelSchema, labels: labelsSchema.optional(), annotations: z.record(z.string(), z.string()).optional() }),
  spec: failoverDrillSpecSchema,
  /** the operator's consent to faults that change real clusters through their Kubernetes API (drill run --allow-disruptive) */
  allowDisruptive: z.boolean().optional(),
});

const V1 = '/api/v1';

export const API_ROUTES: readonly RouteSpec[] = [
  { method: 'GET', path: '/healthz', access: 'open', group: 'health', summary: 'liveness: the process answers', responses: { 200: 'alive' } },
  { method: 'GET', path: '/readyz', access: 'open', group: 'health', summary: 'readiness: the configuration is loaded', responses: { 200: 'ready', 503: 'still loading, or shutting down' } },
  { method: 'GET', path: '/metrics', access: 'open', group: 'health', summary: 'Prometheus metrics (text exposition format)', responses: { 200: 'the metrics' } },

  { method: 'GET', path: `${V1}/openapi.json`, access: 'viewer', group: 'api', summary: 'this document', responses: { 200: 'the OpenAPI 3.1 document of the API' } },
  { method: 'GET', path: `${V1}/audit`, access: 'admin', group: 'api', summary: 'the most recent audit log entries (every change: who, what, when), newest first', query: [{ name: 'limit', description: 'how many entries (1-1000, default 100)' }], responses: { 200: 'the entries', 400: 'a bad limit' } },

  { method: 'GET', path: `${V1}/clusters`, access: 'viewer', group: 'clusters', summary: 'the clusters of the federation and their live status', responses: { 200: 'the clusters' } },
  {
    method: 'POST',
    path: `${V1}/clusters`,
    access: 'admin',
    group: 'clusters',
    resource: 'cluster',
    summary: 'register a Kubernetes cluster with a kubeconfig or an Istio remote secret',
    body: { description: 'the registration; the kubeconfig is a secret and never shown again', schema: registerRequestSchema },
    responses: { 201: 'registered', 400: 'an invalid registration, naming the field', 409: 'the name is taken', 413: 'the body is too large', 415: 'not JSON' },
  },
  { method: 'GET', path: `${V1}/clusters/:name`, access: 'viewer', group: 'clusters', summary: 'one cluster and its live status', responses: { 200: 'the cluster', 404: 'no such cluster' } },
  { method: 'DELETE', path: `${V1}/clusters/:name`, access: 'admin', group: 'clusters', resource: 'cluster', summary: 'remove a cluster registered through the API', responses: { 204: 'removed', 404: 'no such cluster', 409: 'defined in the federation file' } },

  { method: 'GET', path: `${V1}/virtualdestinations`, access: 'viewer', group: 'virtualdestinations', summary: 'the virtual destinations, with their VIPs and backends', responses: { 200: 'the virtual destinations' } },
  {
    method: 'POST',
    path: `${V1}/virtualdestinations`,
    access: 'operator',
    group: 'virtualdestinations',
    resource: 'virtual-destination',
    summary: 'create a virtual destination',
    body: { description: 'a VirtualDestination document', schema: virtualDestinationDocumentSchema },
    responses: { 201: 'created', 400: 'an invalid document, naming the field', 409: 'the name or hostname is taken', 413: 'the body is too large', 415: 'not JSON' },
  },
  { method: 'GET', path: `${V1}/virtualdestinations/:name`, access: 'viewer', group: 'virtualdestinations', summary: 'one virtual destination', responses: { 200: 'the virtual destination', 404: 'no such virtual destination' } },
  {
    method: 'PUT',
    path: `${V1}/virtualdestinations/:name`,
    access: 'operator',
    group: 'virtualdestinations',
    resource: 'virtual-destination',
    summary: 'create or replace a virtual destination',
    body: { description: 'a VirtualDestination document whose metadata.name is the name in the path', schema: virtualDestinationDocumentSchema },
    responses: { 200: 'replaced', 201: 'created', 400: 'an invalid document, naming the field', 409: 'the hostname is taken, or the federation file defines it', 413: 'the body is too large', 415: 'not JSON' },
  },
  { method: 'DELETE', path: `${V1}/virtualdestinations/:name`, access: 'operator', group: 'virtualdestinations', resource: 'virtual-destination', summary: 'delete a virtual destination applied through the API', responses: { 204: 'deleted', 404: 'no such virtual destination', 409: 'defined in the federation file' } },
  {
    method: 'GET',
    path: `${V1}/export/istio`,
    access: 'viewer',
    group: 'virtualdestinations',
    summary: "the ServiceEntry and DestinationRule per virtual destination that give a stock Istio mesh in a cluster the same behaviour",
    query: [
      { name: 'cluster', description: 'the cluster whose mesh the resources are for', required: true },
      { name: 'name', description: 'only this virtual destination' },
      { name: 'namespace', description: 'the namespace of the resources' },
    ],
    responses: { 200: 'the resources and warnings', 400: 'a bad query', 404: 'no such cluster or virtual destination' },
  },

  {
    method: 'GET',
    path: `${V1}/xds/dump`,
    access: 'viewer',
    group: 'xds',
    summary: 'what the xDS server sends a proxy standing in a cluster, decoded',
    query: [
      { name: 'cluster', description: 'the cluster the proxy stands in', required: true },
      { name: 'network', description: 'its network (default: the cluster\'s)' },
      { name: 'locality', description: 'REGION[/ZONE[/SUBZONE]]' },
      { name: 'kind', description: 'the kind of proxy (default proxyless)', values: PROXY_KINDS },
    ],
    responses: { 200: 'the resources by type', 400: 'a bad query' },
  },
  {
    method: 'GET',
    path: `${V1}/explain`,
    access: 'viewer',
    group: 'xds',
    summary: 'every endpoint a client standing somewhere sees for a host, and the rule that put it there',
    query: [
      { name: 'from', description: 'CLUSTER[/REGION[/ZONE]]', required: true },
      { name: 'host', description: 'HOST[:PORT]', required: true },
    ],
    responses: { 200: 'the explanation', 400: 'a bad query', 404: 'no such cluster or host' },
  },

  { method: 'GET', path: `${V1}/drills`, access: 'viewer', group: 'drills', summary: 'the drill runs of this manager', responses: { 200: 'the runs' } },
  {
    method: 'POST',
    path: `${V1}/drills`,
    access: 'operator',
    group: 'drills',
    resource: 'drill',
    summary: 'run a failover drill against this manager\'s world',
    body: { description: 'a FailoverDrill document (the scenario file, as JSON), and allowDisruptive: true to allow faults that change real clusters (kill-workloads, kill-gateway on a Kubernetes cluster)', schema: failoverDrillDocumentSchema },
    responses: { 202: 'started; follow it at the Location', 400: 'an invalid scenario, nothing to drill, or a fault on a real cluster without allowDisruptive', 409: 'a drill is running', 413: 'the body is too large', 415: 'not JSON' },
  },
  { method: 'GET', path: `${V1}/drills/:id`, access: 'viewer', group: 'drills', summary: 'one drill run: its state, progress and result', responses: { 200: 'the run', 404: 'no such run' } },
  { method: 'GET', path: `${V1}/drills/:id/report.html`, access: 'viewer', group: 'drills', summary: "an ended drill's self-contained HTML report", responses: { 200: 'the report (text/html)', 404: 'no such run', 409: 'still running, or ended without a result' } },
  { method: 'GET', path: `${V1}/drills/:id/traffic.html`, access: 'viewer', group: 'drills', summary: "the traffic charts of an ended drill's report, alone (the dashboard shows them)", responses: { 200: 'the charts (text/html)', 404: 'no such run', 409: 'still running, or ended without a result' } },

  { method: 'GET', path: `${V1}/trust`, access: 'viewer', group: 'trust', summary: 'the trust domain: roots, per-cluster intermediates with their expiry, renewal and delivery, and the rotation state (never key material)', responses: { 200: 'the trust domain' } },
  {
    method: 'POST',
    path: `${V1}/trust/rotation`,
    access: 'admin',
    group: 'trust',
    resource: 'trust',
    summary: 'one root rotation step: start (new root in the bundle), advance (reissue intermediates, then remove the old root) or abort; in Kubernetes mode only the leader takes it',
    body: { description: 'the step', schema: rotationRequestSchema },
    responses: { 200: 'the rotation status after the step', 400: 'not a step', 409: 'the step is refused (a rotation under way, clusters lacking the current step)', 415: 'not JSON', 503: 'this replica is not the leader (the Meshfed-Leader header names it)' },
  },
];

export interface RouteMatch {
  route: RouteSpec;
  params: Record<string, string>;
}

const compiled = new Map<string, { pattern: RegExp; names: string[] }>();

/** express's matching, as far as the table uses it: `:param` is one path segment; case-insensitive; one trailing slash allowed. */
function compile(path: string): { pattern: RegExp; names: string[] } {
  let entry = compiled.get(path);
  if (!entry) {
    const names: string[] = [];
    const source = path
      .split('/')
      .map((segment) => {
        if (segment.startsWith(':')) {
          names.push(segment.slice(1));
          return '([^/]+)';
        }
        return segment.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
      })
      .join('/');
    entry = { pattern: new RegExp(`^${source}/?$`, 'i'), names };
    compiled.set(path, entry);
  }
  return entry;
}

/** The route of `routes` a request for METHOD PATH is served by (HEAD as GET). */
export function matchRoute(routes: readonly RouteSpec[], method: string, path: string): RouteMatch | undefined {
  const wanted = method === 'HEAD' ? 'GET' : method;
  for (const route of routes) {
    if (route.method !== wanted) continue;
    const { pattern, names } = compile(route.path);
    const match = pattern.exec(path);
    if (!match) continue;
    const params: Record<string, string> = {};
    names.forEach((name, i) => {
      const raw = match[i + 1] ?? '';
      try {
        params[name] = decodeURIComponent(raw);
      } catch {
        params[name] = raw;
      }
    });
    return { route, params };
  }
  return undefined;
}

/** Whether a method only reads. */
export const isRead = (method: string): boolean => method === 'GET' || method === 'HEAD' || method === 'OPTIONS';

/**
 * The role a request needs: its route's; for a request no route serves (it gets a 404 or 405), viewer to read and
 * admin for anything else, so a path the table and express disagree on can never let a weaker role change things.
 */
export function requiredRole(routes: readonly RouteSpec[], method: string, path: string): ApiRole {
  const access = matchRoute(routes, method, path)?.route.access;
  if (access !== undefined && access !== 'open') return access;
  return isRead(method) ? 'viewer' : 'admin';
}
