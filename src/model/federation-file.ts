import { parseAllDocuments, type Document } from 'yaml';
import { z } from 'zod';
import { gatewaySchema } from './cluster.js';
import { localitySchema } from './locality.js';
import { clusterNameSchema, dnsLabelSchema, labelsSchema, networkNameSchema } from './names.js';
import { endpointSchema, servicePortSchema } from './service.js';
import { trustDomainSchema } from './trust-policy.js';
import { virtualDestinationConflict, virtualDestinationSchema, type NamedVirtualDestination } from './virtual-destination.js';

export const API_VERSION = 'meshfed.io/v1alpha1';
const MAX_FILE_BYTES = 16 * 1024 * 1024;

const metadataSchema = z.strictObject({
  name: dnsLabelSchema,
  labels: labelsSchema.optional(),
  annotations: z.record(z.string(), z.string()).optional(),
  /** set by meshfed in what it answers (like Kubernetes); ignored here, so `meshfed vd get -o yaml` can be applied again */
  creationTimestamp: z.string().optional(),
});

export const staticServiceSchema = z.strictObject({
  namespace: dnsLabelSchema.default('default'),
  name: dnsLabelSchema,
  ports: z.array(servicePortSchema).default([]),
  labels: labelsSchema.default({}),
  endpoints: z.array(endpointSchema).default([]),
});
export type StaticService = z.infer<typeof staticServiceSchema>;

const clusterSpecSchema = z
  .strictObject({
    network: networkNameSchema,
    region: z.string().max(128).default(''),
    zone: z.string().max(128).default(''),
    gateways: z.array(gatewaySchema).default([]),
    /** a Kubernetes cluster: path to its kubeconfig, relative to this file */
    kubeconfigFile: z.string().min(1).optional(),
    context: z.string().optional(),
    /** a cluster without an API server: its services and endpoints, listed here */
    services: z.array(staticServiceSchema).optional(),
  })
  .refine((spec) => !(spec.kubeconfigFile && spec.services), { message: 'a cluster has either kubeconfigFile (watched through its API server) or services (static), not both', path: ['services'] })
  .refine((spec) => !(spec.context && !spec.kubeconfigFile), { message: 'context only applies with kubeconfigFile', path: ['context'] });

const federationSpecSchema = z.strictObject({
  trustDomain: trustDomainSchema.optional(),
  /** default locality for clusters that name none */
  defaultLocality: localitySchema.partial().optional(),
});

const apiVersionSchema = z.literal(API_VERSION, { message: `must be ${API_VERSION}` });

const documentSchema = z.discriminatedUnion('kind', [
  z.strictObject({ apiVersion: apiVersionSchema, kind: z.literal('Federation'), metadata: metadataSchema, spec: federationSpecSchema }),
  z.strictObject({ apiVersion: apiVersionSchema, kind: z.literal('Cluster'), metadata: metadataSchema.extend({ name: clusterNameSchema }), spec: clusterSpecSchema }),
  // status is meshfed's report (in what the API answers): ignored, like kubectl apply ignores it
  z.strictObject({ apiVersion: apiVersionSchema, kind: z.literal('VirtualDestination'), metadata: metadataSchema, spec: virtualDestinationSchema, status: z.unknown().optional() }),
]);

export interface ClusterDefinition {
  name: string;
  network: string;
  region: string;
  zone: string;
  gateways: z.infer<typeof gatewaySchema>[];
  kubeconfigFile?: string;
  context?: string;
  /** present for static clusters */
  services?: StaticService[];
}

export interface FederationFile {
  name?: string;
  trustDomain?: string;
  clusters: ClusterDefinition[];
  /** in file order; names and hostnames unique */
  virtualDestinations: NamedVirtualDestination[];
}

export class FederationFileError extends Error {}

const formatPath = (path: readonly PropertyKey[]): string => path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '');

function describeIssue(issue: z.core.$ZodIssue): string {
  // an unknown key is reported on its parent: name the key itself, so the path points at the typo
  if (issue.code === 'unrecognized_keys') return issue.keys.map((key) => `${formatPath([...issue.path, key])}: unknown field`).join('; ');
  if (issue.code === 'invalid_union' && issue.path.at(-1) === 'kind') return `kind: must be Federation, Cluster or VirtualDestination`;
  return `${formatPath(issue.path) || '(document)'}: ${issue.message}`;
}

/** The document's value; an alias that names no anchor (an unquoted `*.global`, say) or too many aliases is an error. */
function toValue(document: Document.Parsed, where: string): unknown {
  try {
    return document.toJS({ maxAliasCount: 100 });
  } catch (error) {
    const message = error instanceof Error ? error.message : String(error);
    throw new FederationFileError(`${where}: invalid YAML: ${message} (quote a value that starts with "*" or "&")`);
  }
}

/** Parses a federation file: a YAML stream of meshfed.io/v1alpha1 documents (Federation, Cluster, VirtualDestination). */
export function parseFederationFile(text: string, sourceName = 'federation file'): FederationFile {
  if (Buffer.byteLength(text) > MAX_FILE_BYTES) throw new FederationFileError(`${sourceName}: larger than ${MAX_FILE_BYTES} bytes`);
  const documents = parseAllDocuments(text);
  const result: FederationFile = { clusters: [], virtualDestinations: [] };
  const seen = new Set<string>();
  let defaultLocality: { region?: string; zone?: string } | undefined;
  let index = 0;
  for (const document of Array.isArray(documents) ? documents : [documents]) {
    index++;
    const where = `${sourceName}, document ${index}`;
    const [yamlError] = document.errors;
    if (yamlError) {
      const position = yamlError.linePos?.[0];
      const message = (yamlError.message.split('\n')[0] ?? '').replace(/ at line \d+, column \d+:?$/, '');
      throw new FederationFileError(`${where}: invalid YAML at line ${position?.line ?? '?'}, column ${position?.col ?? '?'}: ${message}`);
    }
    const value = toValue(document, where);
    if (value === null || value === undefined) continue;
    const kind = typeof value === 'object' && 'kind' in value ? String(value.kind) : 'no kind';
    const parsed = documentSchema.safeParse(value);
    if (!parsed.success) {
      const name = typeof value === 'object' && 'metadata' in value && typeof value.metadata === 'object' && value.metadata && 'name' in value.metadata ? ` ${String(value.metadata.name)}` : '';
      throw new FederationFileError(`${where} (${kind}${name}): ${parsed.error.issues.map(describeIssue).join('; ')}`);
    }
    const doc = parsed.data;
    if (doc.kind === 'Federation') {
      if (result.name !== undefined) throw new FederationFileError(`${where}: only one Federation document is allowed`);
      result.name = doc.metadata.name;
      if (doc.spec.trustDomain) result.trustDomain = doc.spec.trustDomain;
      defaultLocality = doc.spec.defaultLocality;
      continue;
    }
    if (doc.kind === 'VirtualDestination') {
      const named: NamedVirtualDestination = { name: doc.metadata.name, spec: doc.spec };
      const conflict = virtualDestinationConflict(result.virtualDestinations, named);
      if (conflict) throw new FederationFileError(`${where} (VirtualDestination ${named.name}): ${conflict.field}: ${conflict.message}`);
      result.virtualDestinations.push(named);
      continue;
    }
    if (seen.has(doc.metadata.name)) throw new FederationFileError(`${where} (Cluster ${doc.metadata.name}): metadata.name: cluster ${doc.metadata.name} is defined twice`);
    seen.add(doc.metadata.name);
    const { kubeconfigFile, context, services, ...rest } = doc.spec;
    result.clusters.push({
      name: doc.metadata.name,
      ...rest,
      ...(kubeconfigFile ? { kubeconfigFile } : {}),
      ...(context ? { context } : {}),
      ...(services ? { services } : kubeconfigFile ? {} : { services: [] }),
    });
  }
  // the Federation's default locality fills in clusters that name none, wherever the Federation document stands
  for (const cluster of result.clusters) {
    if (cluster.region === '' && defaultLocality?.region) cluster.region = defaultLocality.region;
    if (cluster.zone === '' && defaultLocality?.zone && cluster.region === (defaultLocality.region ?? cluster.region)) cluster.zone = defaultLocality.zone;
  }
  return result;
}
