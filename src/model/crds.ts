/**
 * meshfed's Kubernetes CustomResourceDefinitions, generated from the zod schemas so that one set of rules holds
 * for the federation file, the REST API and the Kubernetes API alike. `npm run crds` writes them to
 * `federation/crds/` and `charts/meshfed/crds/`.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { clusterSchema } from './cluster.js';
import { clusterNameSchema, hostSchema } from './names.js';
import { durationSchema, trustPolicySchema } from './trust-policy.js';

export const CRD_GROUP = 'meshfed.io';
export const CRD_VERSION = 'v1alpha1';

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

/** A cluster's state as the registry reports it: syncing → ready → stale → evicted. */
export const FEDERATED_CLUSTER_STATES = ['syncing', 'ready', 'stale', 'evicted'] as const;

/** Kubernetes object names that are DNS-1123 subdomains (Secrets among them). */
const secretNameSchema = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, 'must be a DNS-1123 subdomain: lowercase letters, digits, "-" and ".", starting and ending alphanumeric');

const secretKeySchema = z
  .string()
  .max(253, 'must be at most 253 characters')
  .regex(/^[-._a-zA-Z0-9]+$/, 'a Secret key may contain only letters, digits, "-", "_" and "."');

/** A FederatedCluster's spec: a cluster registration, with its kubeconfig in a Secret of meshfed's namespace. */
export const federatedClusterSpecSchema = clusterSchema
  .omit({ name: true, source: true })
  .extend({
    kubeconfigSecret: z
      .strictObject({
        name: secretNameSchema.describe('the Secret, in the FederatedCluster\'s namespace'),
        key: secretKeySchema.optional().describe('the data key that holds the kubeconfig (default: the cluster\'s name, as in an Istio remote secret)'),
      })
      .describe('the Secret that holds the cluster\'s kubeconfig, credentials inline'),
    context: z.string().min(1).optional().describe('the kubeconfig context to use (default: its current-context)'),
  })
  .describe('a Kubernetes cluster of the federation, watched through its API server; metadata.name is the cluster\'s name');
export type FederatedClusterSpec = z.infer<typeof federatedClusterSpecSchema>;

const timestampSchema = z.iso.datetime();
const countSchema = z.number().int().min(0);

export const federatedClusterStatusSchema = z
  .strictObject({
    state: z.enum(FEDERATED_CLUSTER_STATES),
    reason: z.string().optional().describe('why the cluster is not ready, when it is not'),
    since: timestampSchema.optional().describe('when the cluster entered its state'),
    lastSync: timestampSchema.optional().describe('the last time its API server answered'),
    services: countSchema.optional(),
    endpoints: countSchema.optional(),
  })
  .describe('the cluster as meshfed\'s registry sees it');
export type FederatedClusterStatus = z.infer<typeof federatedClusterStatusSchema>;

export const trustPolicySpecSchema = trustPolicySchema.omit({ apiVersion: true, kind: true }).describe('key types, certificate lifetimes and limits of the trust domain');
export type TrustPolicySpec = z.infer<typeof trustPolicySpecSchema>;

export const TRUST_POLICY_STATES = ['accepted', 'rejected'] as const;

export const trustPolicyStatusSchema = z
  .strictObject({
    state: z.enum(TRUST_POLICY_STATES),
    reason: z.string().optional().describe('why the policy was rejected, when it was'),
    observedGeneration: countSchema.optional().describe('the metadata.generation the state is about'),
  })
  .describe('whether meshfed applies the policy');
export type TrustPolicyStatus = z.infer<typeof trustPolicyStatusSchema>;

const DNS_NAME_LABEL = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';

/**
 * The OpenAPI form of rules that the zod schemas check in code (`refine`), which JSON Schema cannot see.
 * Kubernetes matches patterns with RE2: no lookaround, no backreferences, no flags.
 */
const REFINEMENTS = new Map<z.core.$ZodType, JsonObject>([
  // an IP address, or a DNS name of at most 253 characters, letters in either case
  [hostSchema, { maxLength: 253, anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }, { pattern: `^${DNS_NAME_LABEL}(\\.${DNS_NAME_LABEL})*$` }] }],
  // parseDuration: trimmed, number-unit pairs, and a total greater than zero (so at least one amount is not zero)
  [durationSchema, { pattern: '^\\s*([0-9]+[smhdwy])*0*[1-9][0-9]*[smhdwy]([0-9]+[smhdwy])*\\s*$' }],
]);

const hasCustomCheck = (schema: z.core.$ZodType): boolean => (schema._zod.def.checks ?? []).some((check) => check._zod.def.check === 'custom');

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function toJson(value: unknown, path: string): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map((item, index) => toJson(item, `${path}[${index}]`));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toJson(item, `${path}.${key}`)]));
  throw new Error(`${path}: ${typeof value} is not JSON`);
}

const UNSUPPORTED = ['$ref', '$defs', 'definitions', 'oneOf', 'allOf', 'not', 'const', 'patternProperties', 'propertyNames'];

/**
 * Turns zod's OpenAPI 3.0 output into a Kubernetes structural schema: every node has a type, no references or
 * unions, and no `additionalProperties: false` (Kubernetes forbids it beside `properties`; the API server prunes
 * unknown fields, and rejects them under strict field validation, kubectl's default).
 */
function structural(node: unknown, path: string): JsonObject {
  if (!isObject(node)) throw new Error(`${path}: expected a schema object`);
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (UNSUPPORTED.includes(key)) throw new Error(`${path}: "${key}" has no structural-schema form; give the CRD a schema without it`);
    if (key === '$schema' || (key === 'additionalProperties' && value === false)) continue;
    if (key === 'properties') {
      if (!isObject(value)) throw new Error(`${path}.properties: expected an object`);
      out.properties = Object.fromEntries(Object.entries(value).map(([name, child]) => [name, structural(child, `${path}.${name}`)]));
    } else if (key === 'items' || key === 'additionalProperties') {
      out[key] = structural(value, `${path}.${key}`);
    } else if (key === 'anyOf') {
      // only the value checks of REFINEMENTS, which carry no type of their own
      if (!Array.isArray(value) || !value.every((branch) => isObject(branch) && !('type' in branch))) throw new Error(`${path}: a union of types has no structural-schema form`);
      out.anyOf = toJson(value, `${path}.anyOf`);
    } else {
      out[key] = toJson(value, `${path}.${key}`);
    }
  }
  if (typeof out.type !== 'string') throw new Error(`${path}: every node of a structural schema needs a type`);
  return out;
}

/** The OpenAPI v3 structural schema Kubernetes validates a field with, from its zod schema. */
export function openApiSchema(schema: z.ZodType, path: string): JsonObject {
  const generated = z.toJSONSchema(schema, {
    target: 'openapi-3.0',
    io: 'input',
    override: ({ zodSchema, jsonSchema, path: at }) => {
      const refinement = REFINEMENTS.get(zodSchema);
      if (refinement) Object.assign(jsonSchema, refinement);
      else if (hasCustomCheck(zodSchema)) throw new Error(`${[path, ...at].join('.')}: a refinement that the CRD cannot express; add its OpenAPI form to REFINEMENTS`);
    },
  });
  return structural(generated, path);
}

const patternOf = (schema: z.ZodType): string => {
  const pattern = z.toJSONSchema(schema).pattern;
  if (pattern === undefined) throw new Error('expected a schema with a pattern');
  return pattern;
};

interface PrinterColumn {
  name: string;
  type: 'string' | 'integer' | 'date';
  jsonPath: string;
  description?: string;
  priority?: number;
}

interface KindDefinition {
  kind: string;
  plural: string;
  shortNames: string[];
  spec: z.ZodType;
  status: z.ZodType;
  columns: PrinterColumn[];
  /** CEL rules on the whole object, for what the spec cannot say (metadata.name) */
  rules?: JsonObject[];
}

const AGE: PrinterColumn = { name: 'Age', type: 'date', jsonPath: '.metadata.creationTimestamp' };

const KINDS: KindDefinition[] = [
  {
    kind: 'FederatedCluster',
    plural: 'federatedclusters',
    shortNames: ['fedcluster'],
    spec: federatedClusterSpecSchema,
    status: federatedClusterStatusSchema,
    columns: [
      { name: 'Network', type: 'string', jsonPath: '.spec.network' },
      { name: 'State', type: 'string', jsonPath: '.status.state' },
      { name: 'Endpoints', type: 'integer', jsonPath: '.status.endpoints' },
      AGE,
      { name: 'Reason', type: 'string', jsonPath: '.status.reason', priority: 1 },
    ],
    rules: [{ rule: `self.metadata.name.matches('${patternOf(clusterNameSchema)}')`, message: 'metadata.name is the cluster\'s name: a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters, starting and ending alphanumeric)' }],
  },
  {
    kind: 'TrustPolicy',
    plural: 'trustpolicies',
    shortNames: ['trustpolicy'],
    spec: trustPolicySpecSchema,
    status: trustPolicyStatusSchema,
    columns: [
      { name: 'Root-Key', type: 'string', jsonPath: '.spec.keyTypes.root' },
      { name: 'State', type: 'string', jsonPath: '.status.state' },
      AGE,
    ],
  },
];

export interface CustomResourceDefinition extends JsonObject {
  apiVersion: 'apiextensions.k8s.io/v1';
  kind: 'CustomResourceDefinition';
  metadata: { name: string; labels: Record<string, string> };
  spec: JsonObject;
}

function customResourceDefinition(definition: KindDefinition): CustomResourceDefinition {
  const root: JsonObject = {
    type: 'object',
    required: ['spec'],
    properties: {
      apiVersion: { type: 'string' },
      kind: { type: 'string' },
      metadata: { type: 'object' },
      spec: openApiSchema(definition.spec, 'spec'),
      status: openApiSchema(definition.status, 'status'),
    },
    ...(definition.rules ? { 'x-kubernetes-validations': definition.rules } : {}),
  };
  return {
    apiVersion: 'apiextensions.k8s.io/v1',
    kind: 'CustomResourceDefinition',
    metadata: { name: `${definition.plural}.${CRD_GROUP}`, labels: { 'app.kubernetes.io/part-of': 'meshfed' } },
    spec: {
      group: CRD_GROUP,
      scope: 'Namespaced',
      names: {
        kind: definition.kind,
        listKind: `${definition.kind}List`,
        plural: definition.plural,
        singular: definition.kind.toLowerCase(),
        shortNames: definition.shortNames,
        categories: ['meshfed'],
      },
      versions: [
        {
          name: CRD_VERSION,
          served: true,
          storage: true,
          subresources: { status: {} },
          additionalPrinterColumns: definition.columns.map((column) => ({ ...column })),
          schema: { openAPIV3Schema: root },
        },
      ],
    },
  };
}

/** meshfed's CRDs: FederatedCluster and TrustPolicy. */
export const customResourceDefinitions = (): CustomResourceDefinition[] => KINDS.map(customResourceDefinition);

const HEADER = '# Generated from the zod schemas in src/model by `npm run crds` (scripts/generate-crds.ts); do not edit.\n';

/** Each CRD as the YAML file `npm run crds` writes, named `<group>_<plural>.yaml`. */
export function renderCrdFiles(): { fileName: string; content: string }[] {
  return KINDS.map((definition) => ({
    fileName: `${CRD_GROUP}_${definition.plural}.yaml`,
    content: HEADER + stringify(customResourceDefinition(definition), { lineWidth: 0 }),
  }));
}
