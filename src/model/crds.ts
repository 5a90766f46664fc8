/**
 * meshfed's Kubernetes CustomResourceDefinitions, generated from the zod schemas so that one set of rules holds
 * for the federation file, the REST API and the Kubernetes API alike. `npm run crds` writes them to
 * `federation/crds/` and `charts/meshfed/crds/`.
 */
import { stringify } from 'yaml';
import { z } from 'zod';
import { clusterSchema } from './cluster.js';
import {
  destinationSchema,
  drillDurationTextSchema,
  expectationSchema,
  FAULT_KINDS,
  failoverDrillSpecSchema,
  FEDERATED_CLUSTER_STATES,
  graceSchema,
  stepSchema,
  targetSpecSchema,
  timeRefSchema,
} from './failover-drill.js';
import { clusterNameSchema, dnsLabelSchema, hostSchema } from './names.js';
import { durationSchema, trustPolicySchema } from './trust-policy.js';
import { failoverSchema, vdBackendSchema, vdHostnameSchema, virtualDestinationSchema } from './virtual-destination.js';

export const CRD_GROUP = 'meshfed.io';
export const CRD_VERSION = 'v1alpha1';

export type JsonValue = string | number | boolean | null | JsonValue[] | JsonObject;
export interface JsonObject {
  [key: string]: JsonValue;
}

export { FEDERATED_CLUSTER_STATES };

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

export const virtualDestinationSpecSchema = virtualDestinationSchema.describe('a global hostname for services that run in many clusters, with its failover order; metadata.name is its name');
export type VirtualDestinationSpec = z.infer<typeof virtualDestinationSpecSchema>;

const vipsSchema = z.strictObject({ ipv4: z.ipv4(), ipv6: z.ipv6() }).describe('the addresses meshfed\'s DNS answers for the hostname');

export const virtualDestinationStatusSchema = z
  .strictObject({
    endpoints: countSchema.describe('backend endpoints that serve a port of the virtual destination, over every cluster'),
    healthy: countSchema.describe('how many of them are healthy'),
    clusters: z
      .array(
        z.strictObject({
          cluster: clusterNameSchema,
          services: z.array(z.string()).describe('namespace/name of the services selected that have one of its target ports'),
          endpoints: countSchema,
          healthy: countSchema,
        }),
      )
      .describe('where the backends are, cluster by cluster'),
    vips: vipsSchema.optional(),
    message: z.string().optional().describe('why it has no endpoints, when it has none'),
    observedGeneration: countSchema.optional().describe('the metadata.generation the status is about'),
  })
  .describe('the backends meshfed finds for the virtual destination');
export type VirtualDestinationStatus = z.infer<typeof virtualDestinationStatusSchema>;

export const FAILOVER_DRILL_STATES = ['running', 'passed', 'failed', 'error'] as const;

const millisecondsSchema = z.number().min(0);

export const failoverDrillStatusSchema = z
  .strictObject({
    state: z.enum(FAILOVER_DRILL_STATES).describe('running; passed or failed (every expectation held, or not); error: the drill could not run'),
    reason: z.string().optional().describe('why the drill could not run, when it could not'),
    observedGeneration: countSchema.optional().describe('the metadata.generation the status is about'),
    startedAt: timestampSchema.optional(),
    durationSeconds: z.number().min(0).optional().describe('how long it ran'),
    passed: z.boolean().optional().describe('every expectation held'),
    expectations: z
      .array(z.strictObject({ name: z.string().describe('what it expected, in words'), passed: z.boolean(), detail: z.string().describe('what was measured against it') }))
      .optional(),
    shifts: z
      .array(
        z.strictObject({
          stream: dnsLabelSchema.describe('the traffic stream'),
          fault: dnsLabelSchema.describe('the step that caused the shift'),
          timeToDetectMs: millisecondsSchema.optional().describe('until the first request served by the new tier, or the first failure'),
          timeToShiftMs: millisecondsSchema.optional().describe('until 95% of a second\'s requests were on the new tier'),
          failedDuringShift: countSchema.describe('requests that failed between the fault and the shift'),
          timeToFailBackMs: millisecondsSchema.optional().describe('for a restore: until 95% were back on the first tier'),
        }),
      )
      .optional()
      .describe('what each fault\'s shift took, per stream, in milliseconds from the fault'),
  })
  .describe('the drill\'s last run, as its JSON report carries it');
export type FailoverDrillStatus = z.infer<typeof failoverDrillStatusSchema>;

const patternOf = (schema: z.ZodType): string => {
  const pattern = z.toJSONSchema(schema).pattern;
  if (pattern === undefined) throw new Error('expected a schema with a pattern');
  return pattern;
};

const DNS_NAME_LABEL = '[A-Za-z0-9]([-A-Za-z0-9]{0,61}[A-Za-z0-9])?';
const VD_LABEL = '[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?';
const VD_HOSTNAME = `${VD_LABEL}(\\.${VD_LABEL})+`;
const PORT = '0*([1-9][0-9]{0,3}|[1-5][0-9]{4}|6[0-4][0-9]{3}|65[0-4][0-9]{2}|655[0-2][0-9]|6553[0-5])';
const DRILL_DURATION = '([0-9]+(\\.[0-9]+)?(ms|s|m))+';
const has = (...fields: string[]): JsonObject => ({ required: fields });
const anyField = (...fields: string[]): JsonObject => ({ anyOf: fields.map((field) => has(field)) });
const WHOLE_CLUSTER_FAULTS: readonly string[] = ['kill-gateway', 'partition', 'api-outage'];
const faultStep = (faults: readonly string[], target: JsonObject): JsonObject => ({
  properties: { fault: { enum: [...faults] }, target },
  required: ['target'],
  not: has('of'),
});

/**
 * The OpenAPI form of rules that the zod schemas check in code (`refine`), which JSON Schema cannot see.
 * Kubernetes matches patterns with RE2: no lookaround, no backreferences, no flags.
 */
const REFINEMENTS = new Map<z.core.$ZodType, JsonObject>([
  // an IP address, or a DNS name of at most 253 characters, letters in either case
  [hostSchema, { maxLength: 253, anyOf: [{ format: 'ipv4' }, { format: 'ipv6' }, { pattern: `^${DNS_NAME_LABEL}(\\.${DNS_NAME_LABEL})*$` }] }],
  // parseDuration: trimmed, number-unit pairs, and a total greater than zero (so at least one amount is not zero)
  [durationSchema, { pattern: '^\\s*([0-9]+[smhdwy])*0*[1-9][0-9]*[smhdwy]([0-9]+[smhdwy])*\\s*$' }],
  // lowercase labels, at least two; neither an IP address (its last label would be all digits) nor under cluster.local
  [vdHostnameSchema, { maxLength: 253, pattern: `^${VD_HOSTNAME}$`, not: { pattern: '\\.[0-9]+$|(^|\\.)cluster\\.local$' } }],
  [virtualDestinationSchema.shape.ports, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['number'] }],
  [vdBackendSchema, anyField('name', 'labels')],
  [vdBackendSchema.shape.labels.unwrap(), { minProperties: 1 }],
  // a cluster, or a region (with a zone, optionally)
  [failoverSchema.shape.order.unwrap().element, { ...anyField('cluster', 'region'), not: { anyOf: [has('cluster', 'region'), has('cluster', 'zone')] } }],
  [
    failoverSchema,
    {
      anyOf: [
        { properties: { policy: { enum: ['priority'] } }, required: ['policy', 'order'], not: has('regionMappings') },
        { properties: { policy: { enum: ['locality'] } }, not: has('order') },
      ],
    },
  ],
  [failoverSchema.shape.regionMappings.unwrap(), { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['from'] }],
  [failoverSchema.shape.regionMappings.unwrap().element.shape.to, { 'x-kubernetes-list-type': 'set' }],
  // unique clusters, and not every weight 0
  [failoverSchema.shape.weights.unwrap(), { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['cluster'], not: { items: { properties: { weight: { maximum: 0 } } } } }],
  // parseDrillDuration; the bounds, which differ from field to field, are checked when meshfed reads the drill
  [drillDurationTextSchema, { pattern: `^${DRILL_DURATION}$`, description: 'a duration such as 500ms, 10s, 1.5s or 1m30s' }],
  // a virtual destination's hostname, then :port (1-65535)
  [destinationSchema, { pattern: `^${VD_HOSTNAME}(:${PORT})?$`, not: { pattern: '^[^:]{254}|\\.[0-9]+(:[0-9]+)?$|(^|\\.)cluster\\.local(:[0-9]+)?$' } }],
  [timeRefSchema, { pattern: `^(start|end|${patternOf(dnsLabelSchema).replace(/^\^|\$$/g, '')}(\\+${DRILL_DURATION})?)$` }],
  [
    stepSchema,
    {
      anyOf: [
        { properties: { fault: { enum: ['restore'] } }, not: has('target') },
        faultStep(WHOLE_CLUSTER_FAULTS, { required: ['cluster'], not: anyField('region', 'zone', 'service', 'virtualDestination') }),
        faultStep(['drain'], { ...anyField('cluster', 'region'), required: ['virtualDestination'], not: { anyOf: [has('cluster', 'region'), has('service')] } }),
        faultStep(
          FAULT_KINDS.filter((fault) => fault !== 'drain' && !WHOLE_CLUSTER_FAULTS.includes(fault)),
          { ...anyField('cluster', 'region'), not: { anyOf: [has('cluster', 'region'), has('virtualDestination')] } },
        ),
      ],
    },
  ],
  [expectationSchema, { oneOf: ['shift', 'failBack', 'maxFailedRequests', 'clusterState', 'servedBy'].map((kind) => has(kind)) }],
  // z.url's protocol option, which format: uri does not carry (the URL parser lowercases the scheme)
  [targetSpecSchema.in.shape.server.unwrap(), { pattern: '^[Hh][Tt][Tt][Pp][Ss]?:' }],
  [targetSpecSchema, { anyOf: [{ ...has('federation'), not: has('server') }, { ...has('server'), not: anyField('federation', 'grace') }] }],
  [failoverDrillSpecSchema.shape.traffic, { 'x-kubernetes-list-type': 'map', 'x-kubernetes-list-map-keys': ['name'] }],
]);

/**
 * Rules zod checks that no schema of the API server can hold: names that refer to other entries, durations compared
 * with one another, label keys (Kubernetes has no propertyNames). The API server accepts what breaks them; meshfed's
 * own parsing (these zod schemas) refuses it, so whatever reads these objects reports it in their status. Each is named
 * in the field's description, so `kubectl explain` shows it.
 */
const CHECKED_BY_MESHFED = new Map<z.core.$ZodType, string>([
  [virtualDestinationSchema.shape.ports, 'meshfed checks that no two ports share a name'],
  [vdBackendSchema.shape.labels.unwrap(), 'meshfed checks the label keys ([prefix/]name)'],
  [failoverSchema, 'meshfed checks that a region mapping does not list the region it maps from, and that every order entry can be reached (no earlier entry covers it)'],
  [graceSchema, 'meshfed checks that it is whole seconds'],
  [
    failoverDrillSpecSchema,
    'meshfed checks, when it reads the drill, the durations\' bounds and what refers to other entries: step names are unique and neither start nor end, every step begins before the end, a restore undoes an earlier fault step, expectations name existing traffic and steps (failBack a restore), and no within is longer than the drill',
  ],
]);

const hasCustomCheck = (schema: z.core.$ZodType): boolean => (schema._zod.def.checks ?? []).some((check) => check._zod.def.check === 'custom');

/** A pipe into a transform: the transform may refuse what its input accepts. */
const transforms = (schema: z.core.$ZodType): boolean => schema._zod.def.type === 'pipe' && schema instanceof z.ZodPipe && schema.out._zod.def.type === 'transform';
const transformsChecked = (schema: z.core.$ZodType): boolean => schema instanceof z.ZodPipe && REFINEMENTS.has(schema.in);

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function toJson(value: unknown, path: string): JsonValue {
  if (value === null || typeof value === 'string' || typeof value === 'number' || typeof value === 'boolean') return value;
  if (Array.isArray(value)) return value.map((item, index) => toJson(item, `${path}[${index}]`));
  if (isObject(value)) return Object.fromEntries(Object.entries(value).map(([key, item]) => [key, toJson(item, `${path}.${key}`)]));
  throw new Error(`${path}: ${typeof value} is not JSON`);
}

const UNSUPPORTED = ['$ref', '$defs', 'definitions', 'const', 'patternProperties', 'propertyNames'];
const JUNCTORS = ['anyOf', 'allOf', 'oneOf', 'not'];
/** what Kubernetes refuses inside anyOf, allOf, oneOf and not: they may only check values */
const NOT_IN_JUNCTORS = ['type', 'description', 'default', 'additionalProperties', 'nullable'];

/** A junctor's branches, checked to hold value checks only (zod's allOf of patterns repeats the node's type: dropped). */
function valueChecks(node: unknown, path: string, type: JsonValue | undefined): JsonValue {
  if (!isObject(node)) throw new Error(`${path}: expected a schema object`);
  const out: JsonObject = {};
  for (const [key, value] of Object.entries(node)) {
    if (key === 'type' && value === type) continue;
    if (NOT_IN_JUNCTORS.includes(key) || key.startsWith('x-kubernetes-') || UNSUPPORTED.includes(key)) throw new Error(`${path}: a union of types has no structural-schema form (a junctor may only check values, not set "${key}")`);
    if (key === 'properties' && isObject(value)) out.properties = Object.fromEntries(Object.entries(value).map(([name, child]) => [name, valueChecks(child, `${path}.${name}`, undefined)]));
    else if (key === 'items') out.items = valueChecks(value, `${path}.items`, undefined);
    else if (JUNCTORS.includes(key)) out[key] = junctor(key, value, path, undefined);
    else out[key] = toJson(value, `${path}.${key}`);
  }
  return out;
}

function junctor(key: string, value: unknown, path: string, type: JsonValue | undefined): JsonValue {
  if (key === 'not') return valueChecks(value, `${path}.not`, type);
  if (!Array.isArray(value)) throw new Error(`${path}.${key}: expected a list`);
  return value.map((branch, index) => valueChecks(branch, `${path}.${key}[${index}]`, key === 'allOf' ? type : undefined));
}

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
    } else if (JUNCTORS.includes(key)) {
      // the value checks of REFINEMENTS, and zod's allOf of patterns; a union of types has no structural form
      out[key] = junctor(key, value, path, typeof node.type === 'string' ? node.type : undefined);
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
      const note = CHECKED_BY_MESHFED.get(zodSchema);
      if (refinement) Object.assign(jsonSchema, refinement);
      if (note) {
        jsonSchema.description = jsonSchema.description ? `${jsonSchema.description}; ${note}` : note;
        delete jsonSchema.propertyNames;
      }
      if (!refinement && !note && (hasCustomCheck(zodSchema) || (transforms(zodSchema) && !transformsChecked(zodSchema)))) {
        throw new Error(`${[path, ...at].join('.')}: a refinement that the CRD cannot express; add its OpenAPI form to REFINEMENTS`);
      }
    },
  });
  return structural(generated, path);
}

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

/** CEL: metadata.name is a DNS-1123 label, as the federation file and the REST API require (`what` names it). */
const labelName = (what: string): JsonObject => ({
  rule: `self.metadata.name.matches('${patternOf(dnsLabelSchema)}')`,
  message: `metadata.name is ${what}: a DNS-1123 label (lowercase letters, digits and "-", at most 63 characters, starting and ending alphanumeric)`,
});

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
    rules: [{ ...labelName('the cluster\'s name'), rule: `self.metadata.name.matches('${patternOf(clusterNameSchema)}')` }],
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
  {
    kind: 'VirtualDestination',
    plural: 'virtualdestinations',
    shortNames: ['vd'],
    spec: virtualDestinationSpecSchema,
    status: virtualDestinationStatusSchema,
    columns: [
      { name: 'Hostname', type: 'string', jsonPath: '.spec.hostname' },
      { name: 'Failover', type: 'string', jsonPath: '.spec.failover.policy' },
      { name: 'Healthy', type: 'integer', jsonPath: '.status.healthy' },
      { name: 'Endpoints', type: 'integer', jsonPath: '.status.endpoints' },
      AGE,
      { name: 'Message', type: 'string', jsonPath: '.status.message', priority: 1 },
    ],
    rules: [labelName('the virtual destination\'s name')],
  },
  {
    kind: 'FailoverDrill',
    plural: 'failoverdrills',
    shortNames: ['drill'],
    spec: failoverDrillSpecSchema,
    status: failoverDrillStatusSchema,
    columns: [
      { name: 'State', type: 'string', jsonPath: '.status.state' },
      { name: 'Duration', type: 'string', jsonPath: '.spec.duration' },
      AGE,
      { name: 'Reason', type: 'string', jsonPath: '.status.reason', priority: 1 },
    ],
    rules: [labelName('the drill\'s name')],
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

/** meshfed's CRDs: FederatedCluster, TrustPolicy, VirtualDestination and FailoverDrill. */
export const customResourceDefinitions = (): CustomResourceDefinition[] => KINDS.map(customResourceDefinition);

const HEADER = '# Generated from the zod schemas in src/model by `npm run crds` (scripts/generate-crds.ts); do not edit.\n';

/** Each CRD as the YAML file `npm run crds` writes, named `<group>_<plural>.yaml`. */
export function renderCrdFiles(): { fileName: string; content: string }[] {
  return KINDS.map((definition) => ({
    fileName: `${CRD_GROUP}_${definition.plural}.yaml`,
    content: HEADER + stringify(customResourceDefinition(definition), { lineWidth: 0 }),
  }));
}
