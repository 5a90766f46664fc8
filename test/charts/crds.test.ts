import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv } from 'ajv';
import formats from 'ajv-formats';
import { describe, expect, it } from 'vitest';
import { z } from 'zod';
import { CRD_GROUP, FEDERATED_CLUSTER_STATES, customResourceDefinitions, federatedClusterSpecSchema, federatedClusterStatusSchema, openApiSchema, renderCrdFiles, trustPolicySpecSchema, trustPolicyStatusSchema, type JsonObject, type JsonValue } from '../../src/model/crds.js';
import { clusterNameSchema } from '../../src/model/names.js';
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

/** Every schema node with its path, anyOf branches marked as such. */
function* nodes(node: JsonObject, path: string, branch = false): Generator<{ node: JsonObject; path: string; branch: boolean }> {
  yield { node, path, branch };
  if (isObject(node.properties)) for (const [name, value] of Object.entries(node.properties)) yield* nodes(child(value), `${path}.${name}`);
  if (isObject(node.items)) yield* nodes(node.items, `${path}[]`);
  if (isObject(node.additionalProperties)) yield* nodes(node.additionalProperties, `${path}{}`);
  if (Array.isArray(node.anyOf)) for (const [index, value] of node.anyOf.entries()) yield* nodes(child(value), `${path}.anyOf[${index}]`, true);
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
    else if (key === 'anyOf' && Array.isArray(value)) out.anyOf = value.map((branch) => forAjv(child(branch)));
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

const ajv = new Ajv({ allErrors: true });
formats.default(ajv);
const validatorFor = (kind: string, part: 'spec' | 'status') => ajv.compile(forAjv(child(openApi(kind), 'properties', part)));

describe('CRDs generated from the zod schemas', () => {
  it('are committed as npm run crds writes them, in federation/crds and in the manager chart', () => {
    const files = renderCrdFiles();
    expect(files.map((f) => f.fileName)).toEqual([`${CRD_GROUP}_federatedclusters.yaml`, `${CRD_GROUP}_trustpolicies.yaml`]);
    for (const directory of ['federation/crds', 'charts/meshfed/crds']) {
      const committed = readdirSync(join(ROOT, directory)).filter((name) => name.endsWith('.yaml')).sort();
      expect(committed, `${directory}: run npm run crds`).toEqual(files.map((f) => f.fileName));
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
    for (const kind of ['FederatedCluster', 'TrustPolicy']) {
      for (const { node, path, branch } of nodes(openApi(kind), kind)) {
        for (const forbidden of ['$ref', '$schema', 'const', 'oneOf', 'allOf', 'not', 'definitions']) expect(node, `${path}: ${forbidden}`).not.toHaveProperty([forbidden]);
        expect(node.additionalProperties, path).not.toBe(false);
        if (branch) expect(Object.keys(node).every((key) => key === 'format' || key === 'pattern'), `${path}: an anyOf branch may only check values`).toBe(true);
        else expect(typeof node.type, `${path}: type`).toBe('string');
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
    for (const kind of ['FederatedCluster', 'TrustPolicy']) {
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

  it('check a FederatedCluster\'s name with the cluster name rule, in CEL', () => {
    const rules = openApi('FederatedCluster')['x-kubernetes-validations'];
    expect(Array.isArray(rules)).toBe(true);
    const rule = text(child(Array.isArray(rules) ? rules[0] : null).rule);
    const pattern = /^self\.metadata\.name\.matches\('(.+)'\)$/.exec(rule)?.[1];
    expect(pattern).toBeDefined();
    for (const name of ['east-1', 'a', 'x'.repeat(63), 'East-1', '-east', 'east.1', 'x'.repeat(64)]) {
      expect(new RegExp(pattern ?? '').test(name), name).toBe(clusterNameSchema.safeParse(name).success);
    }
  });

  const { keyTypes, lifetimes: defaultLifetimes, limits } = DEFAULT_TRUST_POLICY;
  const policy = { keyTypes, lifetimes: defaultLifetimes, limits };
  const lifetimes = (workload: Record<string, JsonValue>) => ({ ...policy, lifetimes: { ...policy.lifetimes, workload: { ...policy.lifetimes.workload, ...workload } } });
  const secret = { name: 'east-1-kubeconfig' };
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
  );

  it.each(samples.map((s) => [`${s.kind} ${s.part}: ${s.what}`, s] as const))('accept and refuse as zod does: %s', (_name, sample) => {
    expect(sample.schema.safeParse(sample.value).success, 'zod').toBe(sample.ok);
    const validate = validatorFor(sample.kind, sample.part);
    expect(validate(sample.value), `CRD schema: ${ajv.errorsText(validate.errors)}`).toBe(sample.ok);
  });

  it('refuse to generate a schema from a rule they cannot express', () => {
    expect(() => openApiSchema(z.strictObject({ at: z.string().refine((value) => value.startsWith('x')) }), 'spec')).toThrow(/spec\.properties\.at: a refinement that the CRD cannot express/);
    expect(() => openApiSchema(z.strictObject({ port: z.union([z.number(), z.string()]) }), 'spec')).toThrow(/has no structural-schema form/);
  });
});
