import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import formats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { parseAllDocuments } from 'yaml';
import { z } from 'zod';
import type { VirtualDestinationStatus as ApiVirtualDestinationStatus } from '../../src/api/virtual-destinations.js';
import type { DrillResult } from '../../src/drills/result.js';
import {
  CRD_GROUP,
  CRD_VERSION,
  FEDERATED_CLUSTER_STATES,
  customResourceDefinitions,
  failoverDrillStatusSchema,
  federatedClusterSpecSchema,
  federatedClusterStatusSchema,
  openApiSchema,
  renderCrdFiles,
  trustPolicySpecSchema,
  trustPolicyStatusSchema,
  virtualDestinationSpecSchema,
  virtualDestinationStatusSchema,
  type FailoverDrillStatus,
  type JsonObject,
  type JsonValue,
  type VirtualDestinationStatus,
} from '../../src/model/crds.js';
import { failoverDrillSpecSchema } from '../../src/model/failover-drill.js';
import { clusterNameSchema, dnsLabelSchema } from '../../src/model/names.js';
import { DEFAULT_TRUST_POLICY } from '../../src/model/trust-policy.js';
import { CLUSTER_STATES } from '../../src/registry/snapshot.js';
import { ROOT } from './helm.js';
import { validateManifest } from './kubernetes-schema.js';

const isObject = (value: JsonValue | undefined): value is JsonObject => typeof value === 'object' && value !== null && !Array.isArray(value);

function child(node: JsonValue | undefined, ...keys: string[]): JsonObject {
  let current = node;
  for (const key of keys) current = isObject(current) ? current[key] : undefined;
  if (!isObject(current)) throw new Error(`no object at ${keys.join('.')}`);
  return current;
}

const text = (value: JsonValue | undefined): string => {
  if (typeof value !== 'string') throw new Error(`expected a string, got ${JSON.stringify(value)}`);
  return value;
};

const crds = customResourceDefinitions();
const crd = (kind: string): JsonObject => {
  const found = crds.find((c) => child(c.spec, 'names').kind === kind);
  if (!found) throw new Error(`no CRD for ${kind}`);
  return found;
};
const version = (kind: string): JsonObject => {
  const versions = child(crd(kind), 'spec').versions;
  if (!Array.isArray(versions) || !isObject(versions[0])) throw new Error('no versions');
  return versions[0];
};
const openApi = (kind: string): JsonObject => child(version(kind), 'schema', 'openAPIV3Schema');

const KINDS = ['FederatedCluster', 'TrustPolicy', 'VirtualDestination', 'FailoverDrill'];

/** Every schema node with its path; nodes inside anyOf, allOf, oneOf and not (which may only check values) marked as such. */
function* nodes(node: JsonObject, path: string, branch = false): Generator<{ node: JsonObject; path: string; branch: boolean }> {
  yield { node, path, branch };
  if (isObject(node.properties)) for (const [name, value] of Object.entries(node.properties)) yield* nodes(child(value), `${path}.${name}`, branch);
  if (isObject(node.items)) yield* nodes(node.items, `${path}[]`, branch);
  if (isObject(node.additionalProperties)) yield* nodes(node.additionalProperties, `${path}{}`, branch);
  for (const junctor of ['anyOf', 'allOf', 'oneOf']) {
    const list = node[junctor];
    if (Array.isArray(list)) for (const [index, value] of list.entries()) yield* nodes(child(value), `${path}.${junctor}[${index}]`, true);
  }
  if (isObject(node.not)) yield* nodes(node.not, `${path}.not`, true);
}

/**
 * The CRD's OpenAPI 3.0 schema as JSON Schema for ajv, validating as the API server does under strict field
 * validation (kubectl's default): boolean exclusive bounds become numeric ones, unknown fields are refused, and the
 * x-kubernetes-* extensions (CEL rules, tested on their own below) are left out.
 */
function forAjv(node: JsonObject): JsonObject {
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key.startsWith('x-kubernetes-') || key === 'exclusiveMinimum' || key === 'exclusiveMaximum') continue;
    if (key === 'properties' && isObject(value)) out.properties = Object.fromEntries(Object.entries(value).map(([name, schema]) => [name, forAjv(child(schema))]));
    else if ((key === 'items' || key === 'additionalProperties') && isObject(value)) out[key] = forAjv(value);
    else out[key] = value;
  }
  if (node.exclusiveMinimum === true && typeof node.minimum === 'number') {
    out.exclusiveMinimum = node.minimum;
    delete out.minimum;
  }
  if (node.exclusiveMaximum === true && typeof node.maximum === 'number') {
    out.exclusiveMaximum = node.maximum;
    delete out.maximum;
  }
  if (isObject(node.properties)) out.additionalProperties = false;
  return out;
}

// the checks inside anyOf, oneOf and not carry no type (Kubernetes forbids one there)
const ajv = new Ajv({ allErrors: true, strictTypes: false });
formats.default(ajv);
const validatorFor = (kind: string, part: 'spec' | 'status') => ajv.compile(forAjv(child(openApi(kind), 'properties', part)));

describe('CRDs generated from the zod schemas', () => {
  it('are committed as npm run crds writes them, in federation/crds and in the manager chart', () => {
    const files = renderCrdFiles();
    expect(files.map((f) => f.fileName)).toEqual(['federatedclusters', 'trustpolicies', 'virtualdestinations', 'failoverdrills'].map((plural) => `${CRD_GROUP}_${plural}.yaml`));
    for (const directory of ['federation/crds', 'charts/meshfed/crds']) {
      const committed = readdirSync(join(ROOT, directory)).filter((name) => name.endsWith('.yaml')).sort();
      expect(committed, `${directory}: run npm run crds`).toEqual(files.map((f) => f.fileName).sort());
      for (const file of files) expect(readFileSync(join(ROOT, directory, file.fileName), 'utf8'), `${directory}/${file.fileName}: run npm run crds`).toBe(file.content);
    }
  });

  it('are valid CustomResourceDefinitions: namespaced, meshfed.io/v1alpha1, with a status subresource', () => {
    for (const definition of crds) {
      validateManifest(definition);
      expect(definition.spec).toMatchObject({ group: 'meshfed.io', scope: 'Namespaced' });
      expect(version(text(child(definition.spec, 'names').kind))).toMatchObject({ name: 'v1alpha1', served: true, storage: true, subresources: { status: {} } });
    }
  });

  it('have structural schemas: a type on every node, no references, unions or additionalProperties: false, RE2 patterns', () => {
    for (const kind of KINDS) {
      for (const { node, path, branch } of nodes(openApi(kind), kind)) {
        for (const forbidden of ['$ref', '$schema', 'const', 'definitions', 'propertyNames']) expect(node, `${path}: ${forbidden}`).not.toHaveProperty([forbidden]);
        expect(node.additionalProperties, path).not.toBe(false);
        if (branch) {
          const set = Object.keys(node).filter((key) => ['type', 'description', 'default', 'additionalProperties', 'nullable'].includes(key) || key.startsWith('x-kubernetes-'));
          expect(set, `${path}: anyOf, allOf, oneOf and not may only check values`).toEqual([]);
        } else expect(typeof node.type, `${path}: type`).toBe('string');
        // a list map's keys must be required (or defaulted) fields of its items
        if (node['x-kubernetes-list-type'] === 'map') {
          const keys = node['x-kubernetes-list-map-keys'];
          expect(Array.isArray(keys) && keys.length > 0, `${path}: list map keys`).toBe(true);
          for (const key of Array.isArray(keys) ? keys : []) expect(child(node, 'items').required, `${path}: list map key ${JSON.stringify(key)}`).toContain(key);
        }
        if (typeof node.pattern === 'string') expect(node.pattern, `${path}: Kubernetes matches with RE2 (no lookaround, no backreferences)`).not.toMatch(/\(\?[=!<]|\\[1-9]/);
        // Kubernetes refuses a default that its own schema rejects
        if (node.default !== undefined && !branch) expect(ajv.validate(forAjv({ ...node, default: null }), node.default), `${path}: default`).toBe(true);
      }
    }
  });

  it('name the columns kubectl get shows, from fields the schema has', () => {
    const columns = (kind: string) => {
      const list = version(kind).additionalPrinterColumns;
      if (!Array.isArray(list)) throw new Error('no columns');
      return list.map((c) => child(c)).filter((c) => c.priority === undefined);
    };
    expect(columns('FederatedCluster').map((c) => text(c.name).toUpperCase())).toEqual(['NETWORK', 'STATE', 'ENDPOINTS', 'AGE']);
    expect(columns('TrustPolicy').map((c) => text(c.name).toUpperCase())).toEqual(['ROOT-KEY', 'STATE', 'AGE']);
    expect(columns('VirtualDestination').map((c) => text(c.name).toUpperCase())).toEqual(['HOSTNAME', 'FAILOVER', 'HEALTHY', 'ENDPOINTS', 'AGE']);
    expect(columns('FailoverDrill').map((c) => text(c.name).toUpperCase())).toEqual(['STATE', 'DURATION', 'AGE']);
    for (const kind of KINDS) {
      for (const column of columns(kind)) {
        const path = text(column.jsonPath).split('.').slice(1);
        if (path[0] === 'metadata') continue;
        const field = child(openApi(kind), ...path.flatMap((part) => ['properties', part]));
        expect(field.type === 'integer' ? 'integer' : 'string', text(column.jsonPath)).toBe(column.type);
      }
    }
  });

  it('report the states the registry has', () => {
    expect([...FEDERATED_CLUSTER_STATES]).toEqual([...CLUSTER_STATES]);
  });

  const namePattern = (kind: string): RegExp => {
    const rules = openApi(kind)['x-kubernetes-validations'];
    expect(Array.isArray(rules)).toBe(true);
    const rule = text(child(Array.isArray(rules) ? rules[0] : null).rule);
    const pattern = /^self\.metadata\.name\.matches\('(.+)'\)$/.exec(rule)?.[1];
    expect(pattern).toBeDefined();
    return new RegExp(pattern ?? '');
  };

  it.each([
    ['FederatedCluster', clusterNameSchema],
    ['VirtualDestination', dnsLabelSchema],
    ['FailoverDrill', dnsLabelSchema],
  ] as const)('check a %s\'s name as the federation file does, in CEL', (kind, schema) => {
    const pattern = namePattern(kind);
    for (const name of ['east-1', 'a', 'x'.repeat(63), 'East-1', '-east', 'east.1', 'x'.repeat(64)]) expect(pattern.test(name), name).toBe(schema.safeParse(name).success);
  });

  it('list the meshfed.io resources the manager\'s Role grants, reading them and writing their status', () => {
    const rbac = readFileSync(join(ROOT, 'charts/meshfed/templates/rbac.yaml'), 'utf8');
    const plurals = crds.map((definition) => text(child(definition.spec, 'names').plural));
    expect(rbac).toContain(`resources: [${plurals.join(', ')}]`);
    expect(rbac).toContain(`resources: [${plurals.map((plural) => `${plural}/status`).join(', ')}]`);
  });

  const { keyTypes, lifetimes: defaultLifetimes, limits } = DEFAULT_TRUST_POLICY;
  const policy = { keyTypes, lifetimes: defaultLifetimes, limits };
  const lifetimes = (workload: Record<string, JsonValue>) => ({ ...policy, lifetimes: { ...policy.lifetimes, workload: { ...policy.lifetimes.workload, ...workload } } });
  const secret = { name: 'east-1-kubeconfig' };
  const vd = (fields: Record<string, JsonValue>) => ({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ name: 'reviews' }], ...fields });
  const apiStatus: ApiVirtualDestinationStatus = {
    source: 'api',
    vips: { ipv4: '240.240.0.1', ipv6: 'fd00:6d65:7368::1' },
    endpoints: 3,
    healthy: 2,
    clusters: [{ cluster: 'east-1', services: ['default/reviews'], endpoints: 3, healthy: 2 }],
    updatedAt: '2026-01-02T03:04:05Z',
  };
  // the REST API's status, but for where the definition came from (source, updatedAt), is a VirtualDestination's status
  const vdStatus: VirtualDestinationStatus = { endpoints: apiStatus.endpoints, healthy: apiStatus.healthy, clusters: apiStatus.clusters, ...(apiStatus.vips ? { vips: apiStatus.vips } : {}) };
  const traffic = { name: 'calls', from: 'east-1', to: 'reviews.global:9080', rate: 10 };
  const down = { at: '10s', name: 'down', fault: 'kill-workloads', target: { cluster: 'east-1' } };
  const shift = { shift: { traffic: 'calls', to: ['west-1'], after: 'down', within: '5s' } };
  const drill = (fields: Record<string, JsonValue>) => ({ duration: '30s', traffic: [traffic], steps: [down, { at: '20s', name: 'back', fault: 'restore' }], expectations: [shift], ...fields });
  const report: DrillResult = {
    name: 'east-1-down',
    startedAt: '2026-01-02T03:04:05.123Z',
    durationSeconds: 30.2,
    passed: false,
    clusters: ['east-1', 'west-1'],
    streams: [],
    events: [],
    expectations: [{ name: 'calls shifts to west-1 within 5s of down', passed: false, detail: 'shifted after 6.2 s' }],
    shifts: [{ stream: 'calls', fault: 'down', timeToDetectMs: 120, timeToShiftMs: 6200, failedDuringShift: 14 }],
  };
  // a drill's status carries what its JSON report says of the run
  const drillStatus: FailoverDrillStatus = { state: report.passed ? 'passed' : 'failed', startedAt: report.startedAt, durationSeconds: report.durationSeconds, passed: report.passed, expectations: report.expectations, shifts: report.shifts };
  const samples: { kind: string; part: 'spec' | 'status'; schema: z.ZodType; ok: boolean; what: string; value: unknown }[] = [
    { what: 'the least a cluster needs', ok: true, value: { network: 'net-east', kubeconfigSecret: secret } },
    {
      what: 'every field',
      ok: true,
      value: {
        network: 'net_east.1',
        region: 'us-east',
        zone: 'us-east-1a',
        gateways: [{ address: '10.0.0.1' }, { address: '2001:db8::1', port: 15444 }, { address: 'Gateway.east.example.com', locality: { zone: 'us-east-1b' } }],
        kubeconfigSecret: { name: 'remote.secrets', key: 'east-1' },
        context: 'east',
      },
    },
    { what: 'no network', ok: false, value: { kubeconfigSecret: secret } },
    { what: 'no kubeconfig Secret', ok: false, value: { network: 'net-east' } },
    { what: 'an inline kubeconfig', ok: false, value: { network: 'net-east', kubeconfigSecret: secret, kubeconfig: 'apiVersion: v1' } },
    { what: 'a network with a space', ok: false, value: { network: 'net east', kubeconfigSecret: secret } },
    { what: 'a gateway port of 0', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: '10.0.0.1', port: 0 }] } },
    { what: 'a gateway port of 65536', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: '10.0.0.1', port: 65536 }] } },
    { what: 'a fractional port', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: '10.0.0.1', port: 15443.5 }] } },
    { what: 'a gateway address that is neither IP nor name', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: 'gw_1!' }] } },
    { what: 'a gateway name starting with "-"', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: '-gw.example.com' }] } },
    { what: 'a gateway name of 254 characters', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: `${'a'.repeat(63)}.`.repeat(4).slice(0, 254) }] } },
    { what: 'a gateway with an unknown field', ok: false, value: { network: 'n', kubeconfigSecret: secret, gateways: [{ address: '10.0.0.1', weight: 2 }] } },
    { what: 'a region of 129 characters', ok: false, value: { network: 'n', kubeconfigSecret: secret, region: 'r'.repeat(129) } },
    { what: 'a Secret name in capitals', ok: false, value: { network: 'n', kubeconfigSecret: { name: 'East' } } },
    { what: 'a Secret key with "/"', ok: false, value: { network: 'n', kubeconfigSecret: { name: 'east', key: 'a/b' } } },
    { what: 'an empty context', ok: false, value: { network: 'n', kubeconfigSecret: secret, context: '' } },
  ].map((sample) => ({ ...sample, kind: 'FederatedCluster', part: 'spec' as const, schema: federatedClusterSpecSchema }));
  samples.push(
    ...[
      { what: 'a ready cluster', ok: true, value: { state: 'ready', since: '2026-01-02T03:04:05Z', lastSync: '2026-01-02T03:04:06.5Z', services: 4, endpoints: 12 } },
      { what: 'a cluster syncing, with its reason', ok: true, value: { state: 'syncing', reason: 'connect ECONNREFUSED' } },
      { what: 'an unknown state', ok: false, value: { state: 'down' } },
      { what: 'a time that is not RFC 3339', ok: false, value: { state: 'ready', since: 'yesterday' } },
      { what: 'a negative count', ok: false, value: { state: 'ready', endpoints: -1 } },
    ].map((sample) => ({ ...sample, kind: 'FederatedCluster', part: 'status' as const, schema: federatedClusterStatusSchema })),
    ...[
      { what: 'the default policy', ok: true, value: policy },
      { what: 'durations of several units', ok: true, value: lifetimes({ default: '1h30m', max: '90d' }) },
      { what: 'a duration the parser trims', ok: true, value: lifetimes({ default: ' 24h ' }) },
      { what: 'a duration of zero', ok: false, value: lifetimes({ default: '0s' }) },
      { what: 'a duration of zero in two parts', ok: false, value: lifetimes({ default: '0h00m' }) },
      { what: 'an unknown unit', ok: false, value: lifetimes({ max: '24x' }) },
      { what: 'an empty duration', ok: false, value: lifetimes({ max: '' }) },
      { what: 'renewAt 0', ok: false, value: lifetimes({ renewAt: 0 }) },
      { what: 'renewAt 1', ok: false, value: lifetimes({ renewAt: 1 }) },
      { what: 'no workload key types', ok: false, value: { ...policy, keyTypes: { ...policy.keyTypes, workload: [] } } },
      { what: 'an RSA-2048 root', ok: false, value: { ...policy, keyTypes: { ...policy.keyTypes, root: 'rsa-2048' } } },
      { what: 'a CSR limit under 256 bytes', ok: false, value: { ...policy, limits: { maxCsrBytes: 100 } } },
      { what: 'apiVersion inside the spec', ok: false, value: DEFAULT_TRUST_POLICY },
    ].map((sample) => ({ ...sample, kind: 'TrustPolicy', part: 'spec' as const, schema: trustPolicySpecSchema })),
    ...[
      { what: 'an accepted policy', ok: true, value: { state: 'accepted', observedGeneration: 3 } },
      { what: 'an unknown state', ok: false, value: { state: 'pending' } },
    ].map((sample) => ({ ...sample, kind: 'TrustPolicy', part: 'status' as const, schema: trustPolicyStatusSchema })),
    ...[
      { what: 'the least a virtual destination needs', ok: true, value: vd({}) },
      {
        what: 'every field',
        ok: true,
        value: vd({
          ports: [{ number: 9080, protocol: 'GRPC', name: 'grpc', targetPort: 9081 }, { number: 80, protocol: 'HTTP' }],
          backends: [{ namespace: 'default', name: 'reviews', clusters: ['east-1'] }, { labels: { app: 'reviews' } }],
          failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { region: 'us-west', zone: 'us-west-1a' }, { region: 'eu' }], weights: [{ cluster: 'east-1', weight: 0 }, { cluster: 'east-2', weight: 10 }], minHealthyPercent: 70 },
          outlierDetection: { consecutive5xx: 5, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50, failurePercentage: { threshold: 80 } },
        }),
      },
      { what: 'locality failover with region mappings', ok: true, value: vd({ failover: { regionMappings: [{ from: 'us-east', to: ['us-west', 'eu'] }] } }) },
      ...['Reviews.global', 'reviews', 'reviews.global.', '*.global', '10.0.0.1', 'reviews.123', 'reviews.default.svc.cluster.local', 'cluster.local', '-reviews.global', `${'a'.repeat(63)}.`.repeat(4).slice(0, 254)].map((hostname) => ({
        what: `the hostname ${hostname.slice(0, 40)}`,
        ok: false,
        value: vd({ hostname }),
      })),
      { what: 'no port', ok: false, value: vd({ ports: [] }) },
      { what: 'a port name of digits only', ok: false, value: vd({ ports: [{ number: 80, protocol: 'HTTP', name: '8080' }] }) },
      { what: 'an unknown protocol', ok: false, value: vd({ ports: [{ number: 80, protocol: 'UDP' }] }) },
      { what: 'a backend that selects by neither name nor labels', ok: false, value: vd({ backends: [{ namespace: 'default' }] }) },
      { what: 'an empty label selector', ok: false, value: vd({ backends: [{ labels: {} }] }) },
      { what: 'policy priority without an order', ok: false, value: vd({ failover: { policy: 'priority' } }) },
      { what: 'an order with policy locality', ok: false, value: vd({ failover: { order: [{ cluster: 'east-1' }] } }) },
      { what: 'region mappings with policy priority', ok: false, value: vd({ failover: { policy: 'priority', order: [{ cluster: 'east-1' }], regionMappings: [{ from: 'a', to: ['b'] }] } }) },
      { what: 'an order entry naming a cluster and a region', ok: false, value: vd({ failover: { policy: 'priority', order: [{ cluster: 'east-1', region: 'us-east' }] } }) },
      { what: 'an order entry with a zone but no region', ok: false, value: vd({ failover: { policy: 'priority', order: [{ zone: 'us-east-1a' }] } }) },
      { what: 'weights that are all 0', ok: false, value: vd({ failover: { weights: [{ cluster: 'east-1', weight: 0 }] } }) },
      { what: 'an ejection interval of 0s', ok: false, value: vd({ outlierDetection: { interval: '0s' } }) },
      { what: 'an unknown field', ok: false, value: vd({ vip: '240.0.0.1' }) },
    ].map((sample) => ({ ...sample, kind: 'VirtualDestination', part: 'spec' as const, schema: virtualDestinationSpecSchema })),
    ...[
      { what: 'what the REST API reports, without where the definition came from', ok: true, value: vdStatus },
      { what: 'no endpoints, with why', ok: true, value: { endpoints: 0, healthy: 0, clusters: [], message: 'no endpoints' } },
      { what: 'a VIP that is not an address', ok: false, value: { ...vdStatus, vips: { ipv4: 'reviews', ipv6: 'fd00::1' } } },
      { what: 'a negative count', ok: false, value: { ...vdStatus, healthy: -1 } },
    ].map((sample) => ({ ...sample, kind: 'VirtualDestination', part: 'status' as const, schema: virtualDestinationStatusSchema })),
    ...[
      { what: 'a drill with a fault, a restore and a shift', ok: true, value: drill({}) },
      { what: 'a drain of a zone, an embedded federation with a grace period, time ranges', ok: true, value: drill({ target: { federation: 'demo.yaml', grace: '20s' }, steps: [{ at: '10s', name: 'down', fault: 'drain', target: { region: 'us-east', zone: 'us-east-1a', virtualDestination: 'reviews' } }], expectations: [{ maxFailedRequests: { count: 0, during: { from: 'down+1.5s' } } }] }) },
      { what: 'a running meshfed as the target', ok: true, value: drill({ target: { server: 'https://meshfed.example.com:8443' } }) },
      { what: 'a duration without a unit', ok: false, value: drill({ duration: '30' }) },
      { what: 'a timeout with a space', ok: false, value: drill({ traffic: [{ ...traffic, timeout: '2 s' }] }) },
      { what: 'a destination port of 0', ok: false, value: drill({ traffic: [{ ...traffic, to: 'reviews.global:0' }] }) },
      { what: 'a destination port of 65536', ok: false, value: drill({ traffic: [{ ...traffic, to: 'reviews.global:65536' }] }) },
      { what: 'a destination under cluster.local', ok: false, value: drill({ traffic: [{ ...traffic, to: 'reviews.default.svc.cluster.local:9080' }] }) },
      { what: 'a destination that is an IP address', ok: false, value: drill({ traffic: [{ ...traffic, to: '10.0.0.1:9080' }] }) },
      { what: 'a restore with a target', ok: false, value: drill({ steps: [down, { at: '20s', name: 'back', fault: 'restore', target: { cluster: 'east-1' } }] }) },
      { what: 'a fault step naming a step to undo', ok: false, value: drill({ steps: [{ ...down, of: 'back' }, { at: '20s', name: 'back', fault: 'restore' }] }) },
      { what: 'a fault without a target', ok: false, value: drill({ steps: [{ at: '10s', name: 'down', fault: 'partition' }] }) },
      { what: 'kill-gateway of a region', ok: false, value: drill({ steps: [{ at: '10s', name: 'down', fault: 'kill-gateway', target: { cluster: 'east-1', region: 'us-east' } }] }) },
      { what: 'a drain without its virtual destination', ok: false, value: drill({ steps: [{ at: '10s', name: 'down', fault: 'drain', target: { cluster: 'east-1' } }] }) },
      { what: 'kill-workloads of a cluster and a region', ok: false, value: drill({ steps: [{ at: '10s', name: 'down', fault: 'kill-workloads', target: { cluster: 'east-1', region: 'us-east' } }] }) },
      { what: 'kill-workloads of a zone alone', ok: false, value: drill({ steps: [{ at: '10s', name: 'down', fault: 'kill-workloads', target: { zone: 'us-east-1a' } }] }) },
      { what: 'an expectation of two kinds', ok: false, value: drill({ expectations: [{ ...shift, maxFailedRequests: { count: 0 } }] }) },
      { what: 'an empty expectation', ok: false, value: drill({ expectations: [{}] }) },
      { what: 'a time reference with an offset without a unit', ok: false, value: drill({ expectations: [{ maxFailedRequests: { count: 0, during: { from: 'down+8' } } }] }) },
      { what: 'a target with both a federation and a server', ok: false, value: drill({ target: { federation: 'demo.yaml', server: 'http://localhost:8080' } }) },
      { what: 'a running meshfed with a grace period', ok: false, value: drill({ target: { server: 'http://localhost:8080', grace: '20s' } }) },
      { what: 'a server that is not http(s)', ok: false, value: drill({ target: { server: 'ftp://meshfed.example.com' } }) },
      { what: 'a share of 0', ok: false, value: drill({ expectations: [{ shift: { ...shift.shift, share: 0 } }] }) },
      { what: 'no traffic', ok: false, value: drill({ traffic: [] }) },
    ].map((sample) => ({ ...sample, kind: 'FailoverDrill', part: 'spec' as const, schema: failoverDrillSpecSchema })),
    ...[
      { what: 'a drill that ran, from its report', ok: true, value: drillStatus },
      { what: 'a running drill', ok: true, value: { state: 'running', startedAt: '2026-01-02T03:04:05Z' } },
      { what: 'a drill that could not run', ok: true, value: { state: 'error', reason: 'federation demo.yaml: no such file' } },
      { what: 'an unknown state', ok: false, value: { state: 'done' } },
      { what: 'a negative time to shift', ok: false, value: { ...drillStatus, shifts: [{ stream: 'calls', fault: 'down', timeToShiftMs: -1, failedDuringShift: 0 }] } },
    ].map((sample) => ({ ...sample, kind: 'FailoverDrill', part: 'status' as const, schema: failoverDrillStatusSchema })),
  );

  it.each(samples.map((s) => [`${s.kind} ${s.part}: ${s.what}`, s] as const))('accept and refuse as zod does: %s', (_name, sample) => {
    expect(sample.schema.safeParse(sample.value).success, 'zod').toBe(sample.ok);
    const validate = validatorFor(sample.kind, sample.part);
    expect(validate(sample.value), `CRD schema: ${ajv.errorsText(validate.errors)}`).toBe(sample.ok);
  });

  /** What the API server lets through and meshfed refuses when it reads the object: the field's description says so. */
  const checkedByMeshfed: { kind: string; what: string; schema: z.ZodType; value: unknown; described: string[] }[] = [
    { kind: 'VirtualDestination', what: 'two ports with one name', schema: virtualDestinationSpecSchema, value: vd({ ports: [{ number: 80, protocol: 'HTTP', name: 'web' }, { number: 81, protocol: 'HTTP', name: 'web' }] }), described: ['ports'] },
    { kind: 'VirtualDestination', what: 'a region mapped to itself', schema: virtualDestinationSpecSchema, value: vd({ failover: { regionMappings: [{ from: 'eu', to: ['eu'] }] } }), described: ['failover'] },
    { kind: 'VirtualDestination', what: 'an order entry never reached', schema: virtualDestinationSpecSchema, value: vd({ failover: { policy: 'priority', order: [{ region: 'eu' }, { region: 'eu', zone: 'eu-1a' }] } }), described: ['failover'] },
    { kind: 'FailoverDrill', what: 'a step after the end', schema: failoverDrillSpecSchema, value: drill({ steps: [{ ...down, at: '40s' }] }), described: [] },
    { kind: 'FailoverDrill', what: 'an expectation naming unknown traffic', schema: failoverDrillSpecSchema, value: drill({ expectations: [{ shift: { ...shift.shift, traffic: 'other' } }] }), described: [] },
    { kind: 'FailoverDrill', what: 'a timeout over its bound', schema: failoverDrillSpecSchema, value: drill({ traffic: [{ ...traffic, timeout: '5m' }] }), described: [] },
    { kind: 'FailoverDrill', what: 'a grace period in fractions of a second', schema: failoverDrillSpecSchema, value: drill({ target: { federation: 'demo.yaml', grace: '1.5s' } }), described: ['target', 'grace'] },
  ];

  it.each(checkedByMeshfed.map((c) => [`${c.kind}: ${c.what}`, c] as const))('leave to meshfed, and say so, what the API server cannot check: %s', (_name, c) => {
    expect(c.schema.safeParse(c.value).success, 'zod').toBe(false);
    expect(validatorFor(c.kind, 'spec')(c.value), 'CRD schema').toBe(true);
    const field = child(openApi(c.kind), 'properties', 'spec', ...c.described.flatMap((part) => ['properties', part]));
    expect(text(field.description)).toMatch(/meshfed checks/);
  });

  it('take the demo\'s virtual destinations and every shipped scenario as they are, as meshfed.io/v1alpha1 objects', () => {
    const documents = (file: string): JsonObject[] => parseAllDocuments(readFileSync(join(ROOT, file), 'utf8')).map((document) => child(document.toJS() as JsonValue));
    const objects = [
      ...documents('federation/demo.yaml').filter((object) => object.kind === 'VirtualDestination'),
      ...readdirSync(join(ROOT, 'scenarios'))
        .filter((name) => name.endsWith('.yaml'))
        .flatMap((name) => documents(`scenarios/${name}`)),
    ];
    expect(objects.filter((object) => object.kind === 'VirtualDestination').length).toBeGreaterThan(0);
    expect(objects.filter((object) => object.kind === 'FailoverDrill').length).toBe(readdirSync(join(ROOT, 'scenarios')).filter((name) => name.endsWith('.yaml')).length);
    for (const object of objects) {
      const kind = text(object.kind);
      const name = text(child(object, 'metadata').name);
      expect(object.apiVersion, name).toBe(`${CRD_GROUP}/${CRD_VERSION}`);
      expect(namePattern(kind).test(name), name).toBe(true);
      const validate = validatorFor(kind, 'spec');
      expect(validate(object.spec), `${kind} ${name}: ${ajv.errorsText(validate.errors)}`).toBe(true);
    }
  });

  it('refuse to generate a schema from a rule they cannot express', () => {
    expect(() => openApiSchema(z.strictObject({ at: z.string().refine((value) => value.startsWith('x')) }), 'spec')).toThrow(/spec\.properties\.at: a refinement that the CRD cannot express/);
    expect(() => openApiSchema(z.strictObject({ size: z.string().transform((value) => value.length) }), 'spec')).toThrow(/spec\.properties\.size: a refinement that the CRD cannot express/);
    expect(() => openApiSchema(z.strictObject({ port: z.union([z.number(), z.string()]) }), 'spec')).toThrow(/has no structural-schema form/);
  });
});
