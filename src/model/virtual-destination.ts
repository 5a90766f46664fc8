/**
 * A virtual destination: one global hostname (`reviews.global`) for services that run in many clusters, with the
 * failover order and the split that decide which copy a client reaches. Gloo Mesh's VirtualDestination, Consul's
 * service-resolver failover and Kuma's MeshLoadBalancingStrategy are the references (issue 6).
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { clusterNameSchema, dnsLabelSchema, labelsSchema, portSchema } from './names.js';
import { durationSchema } from './trust-policy.js';

export const VD_PROTOCOLS = ['HTTP', 'GRPC', 'HTTP2', 'TCP', 'TLS'] as const;
export type VirtualDestinationProtocol = (typeof VD_PROTOCOLS)[number];

export const FAILOVER_POLICIES = ['locality', 'priority'] as const;

const HOST_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

/** Why `value` is not a virtual destination hostname, or undefined when it is one. */
function hostnameProblem(value: string): string | undefined {
  if (value === '') return 'must not be empty';
  if (value.length > 253) return 'must be at most 253 characters';
  if (value.includes('*')) return 'must not be a wildcard: a virtual destination has one exact name';
  if (value.endsWith('.')) return `must not end with "." (write ${value.replace(/\.+$/, '') || 'reviews.global'})`;
  if (isIP(value) !== 0) return 'must be a DNS name, not an IP address';
  if (value !== value.toLowerCase()) return `must be lowercase (${value.toLowerCase()})`;
  const labels = value.split('.');
  if (labels.length < 2) return `must have at least two labels, such as ${value}.global`;
  const bad = labels.find((label) => !HOST_LABEL.test(label));
  if (bad !== undefined) return `label "${bad}" must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit`;
  if (/^[0-9]+$/.test(labels.at(-1) ?? '')) return 'the last label must not be all digits';
  if (value === 'cluster.local' || value.endsWith('.cluster.local')) return 'must not be under cluster.local, where the Kubernetes services\' names live';
  return undefined;
}

/** A DNS name: lowercase, no wildcard, no trailing dot, not an IP address, at least two labels. */
export const vdHostnameSchema = z.string().superRefine((value, ctx) => {
  const problem = hostnameProblem(value);
  if (problem !== undefined) ctx.addIssue({ code: 'custom', message: problem });
});

/** An IANA service name, as Kubernetes port names are (it becomes the SRV record's `_name`). */
const portNameSchema = z
  .string()
  .max(15, 'must be at most 15 characters (an IANA service name)')
  .regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?$/, 'must be lowercase letters, digits and "-", starting and ending with a letter or digit')
  .regex(/[a-z]/, 'must contain a letter');

export const vdPortSchema = z.strictObject({
  number: portSchema,
  protocol: z.enum(VD_PROTOCOLS, { message: `must be one of ${VD_PROTOCOLS.join(', ')}` }),
  /** the port of the backend services this port sends to; default: the same number */
  targetPort: portSchema.optional(),
  name: portNameSchema.optional(),
});
export type VirtualDestinationPort = z.infer<typeof vdPortSchema>;

/** The backend services' port that a virtual destination port sends to. */
export const vdTargetPort = (port: VirtualDestinationPort): number => port.targetPort ?? port.number;

export const vdBackendSchema = z
  .strictObject({
    /** absent: every namespace */
    namespace: dnsLabelSchema.optional(),
    /** the Service's name */
    name: dnsLabelSchema.optional(),
    /** a selector on the Service's labels: every label given must match */
    labels: labelsSchema.refine((labels) => Object.keys(labels).length > 0, { message: 'must not be empty: an empty selector would select every service' }).optional(),
    /** absent: every cluster of the federation */
    clusters: z.array(clusterNameSchema).min(1, 'must name at least one cluster (leave clusters out for all of them)').optional(),
  })
  .refine((backend) => backend.name !== undefined || backend.labels !== undefined, { message: 'a backend must select services by name or by labels' });
export type VirtualDestinationBackend = z.infer<typeof vdBackendSchema>;

const regionSchema = z.string().min(1, 'must not be empty').max(128, 'must be at most 128 characters');

const regionMappingSchema = z.strictObject({
  from: regionSchema,
  to: z.array(regionSchema).min(1, 'must name at least one region'),
});

/** One step of an explicit failover order: a cluster, or a region (optionally one zone of it). */
const orderEntrySchema = z
  .strictObject({
    cluster: clusterNameSchema.optional(),
    region: regionSchema.optional(),
    zone: regionSchema.optional(),
  })
  .superRefine((entry, ctx) => {
    if (entry.cluster !== undefined && (entry.region !== undefined || entry.zone !== undefined)) {
      ctx.addIssue({ code: 'custom', message: 'an entry names a cluster or a locality (region, zone), not both', path: ['cluster'] });
    } else if (entry.cluster === undefined && entry.region === undefined) {
      ctx.addIssue({ code: 'custom', message: entry.zone === undefined ? 'an entry names a cluster, or a region and optionally a zone' : 'zone needs its region' });
    }
  });
export type FailoverOrderEntry = z.infer<typeof orderEntrySchema>;

const clusterWeightSchema = z.strictObject({
  cluster: clusterNameSchema,
  weight: z.number({ message: 'must be a number 0-100' }).int('must be a whole number').min(0, 'must be 0-100').max(100, 'must be 0-100'),
});

/** True when every endpoint `later` matches is already matched by `earlier`. */
const covers = (earlier: FailoverOrderEntry, later: FailoverOrderEntry): boolean =>
  earlier.cluster !== undefined
    ? earlier.cluster === later.cluster
    : later.cluster === undefined && earlier.region === later.region && (earlier.zone === undefined || earlier.zone === later.zone);

const describeEntry = (entry: FailoverOrderEntry): string => (entry.cluster !== undefined ? `cluster ${entry.cluster}` : entry.zone !== undefined ? `${entry.region ?? ''}/${entry.zone}` : `region ${entry.region ?? ''}`);

export const failoverSchema = z
  .strictObject({
    policy: z.enum(FAILOVER_POLICIES, { message: 'must be locality or priority' }).default('locality'),
    /** locality only: from the proxy's region, fail over to these regions in this order before any other region */
    regionMappings: z.array(regionMappingSchema).optional(),
    /** priority only (and required there): the tiers, first to last; endpoints matching no entry come last */
    order: z.array(orderEntrySchema).min(1, 'must have at least one entry').optional(),
    /** relative weights of clusters within each tier, combined with either order; unlisted clusters weigh 0 */
    weights: z.array(clusterWeightSchema).min(1, 'must have at least one entry').optional(),
    /** capacity-aware spill: below this healthy share, a tier sends a proportional part of its traffic to the next */
    minHealthyPercent: z.number({ message: 'must be a number 0-100' }).int('must be a whole number').min(0, 'must be 0-100').max(100, 'must be 0-100').optional(),
  })
  .superRefine((failover, ctx) => {
    if (failover.policy === 'priority' && failover.regionMappings !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'only applies with policy locality (with priority, list the regions in order)', path: ['regionMappings'] });
    }
    if (failover.policy === 'locality' && failover.order !== undefined) {
      ctx.addIssue({ code: 'custom', message: 'only applies with policy priority (locality orders by distance; use regionMappings to change it)', path: ['order'] });
    }
    if (failover.policy === 'priority' && failover.order === undefined) ctx.addIssue({ code: 'custom', message: 'is required with policy priority', path: ['order'] });
    const froms = new Map<string, number>();
    (failover.regionMappings ?? []).forEach((mapping, i) => {
      const first = froms.get(mapping.from);
      if (first !== undefined) ctx.addIssue({ code: 'custom', message: `region ${mapping.from} is already mapped by regionMappings[${first}]`, path: ['regionMappings', i, 'from'] });
      else froms.set(mapping.from, i);
      mapping.to.forEach((region, j) => {
        if (region === mapping.from) ctx.addIssue({ code: 'custom', message: `must not list ${region}, the region it maps from`, path: ['regionMappings', i, 'to', j] });
        else if (mapping.to.indexOf(region) !== j) ctx.addIssue({ code: 'custom', message: `lists ${region} twice`, path: ['regionMappings', i, 'to', j] });
      });
    });
    const order = failover.order ?? [];
    order.forEach((entry, j) => {
      const earlier = order.findIndex((other, i) => i < j && covers(other, entry));
      if (earlier !== -1) ctx.addIssue({ code: 'custom', message: `${describeEntry(entry)} is never reached: order[${earlier}] (${describeEntry(order[earlier] ?? entry)}) comes first`, path: ['order', j] });
    });
    const weights = failover.weights ?? [];
    weights.forEach((entry, j) => {
      const first = weights.findIndex((other) => other.cluster === entry.cluster);
      if (first !== j) ctx.addIssue({ code: 'custom', message: `cluster ${entry.cluster} is already weighted by weights[${first}]`, path: ['weights', j, 'cluster'] });
    });
    if (weights.length > 0 && weights.every((entry) => entry.weight === 0)) ctx.addIssue({ code: 'custom', message: 'at least one cluster must weigh more than 0', path: ['weights'] });
  });
export type Failover = z.infer<typeof failoverSchema>;

const countSchema = z.number({ message: 'must be a number' }).int('must be a whole number').min(0, 'must be 0 or more').max(0xffff_ffff, 'is too large');

/** Failure-percentage ejection (Envoy's failure_percentage_*): the one detection proxyless gRPC runs as well. */
const failurePercentageSchema = z.strictObject({
  /** eject an endpoint whose share of failed calls over an interval is at or above this percentage */
  threshold: z
    .number({ error: (issue) => (issue.input === undefined ? 'is required: a number 0-100' : 'must be a number 0-100') })
    .int('must be a whole number')
    .min(0, 'must be 0-100')
    .max(100, 'must be 0-100'),
  /** judge only when at least this many endpoints had requestVolume calls in the interval (default 5) */
  minimumHosts: countSchema.optional(),
  /** judge only endpoints with at least this many calls in the interval (default 50) */
  requestVolume: countSchema.optional(),
});

export const outlierDetectionSchema = z.strictObject({
  consecutive5xx: countSchema.optional(),
  consecutiveGatewayErrors: countSchema.optional(),
  interval: durationSchema.optional(),
  baseEjectionTime: durationSchema.optional(),
  maxEjectionPercent: z.number().int('must be a whole number').min(0, 'must be 0-100').max(100, 'must be 0-100').optional(),
  failurePercentage: failurePercentageSchema.optional(),
});
export type OutlierDetection = z.infer<typeof outlierDetectionSchema>;

export const virtualDestinationSchema = z.strictObject({
  hostname: vdHostnameSchema,
  ports: z
    .array(vdPortSchema)
    .min(1, 'must have at least one port')
    .superRefine((ports, ctx) => {
      ports.forEach((port, j) => {
        const first = ports.findIndex((other) => other.number === port.number);
        if (first !== j) ctx.addIssue({ code: 'custom', message: `port ${port.number} is already ports[${first}]`, path: [j, 'number'] });
        const named = port.name === undefined ? -1 : ports.findIndex((other) => other.name === port.name);
        if (named !== -1 && named !== j) ctx.addIssue({ code: 'custom', message: `name ${port.name ?? ''} is already used by ports[${named}]`, path: [j, 'name'] });
      });
    }),
  backends: z.array(vdBackendSchema).min(1, 'must have at least one backend'),
  failover: failoverSchema.default({ policy: 'locality' }),
  outlierDetection: outlierDetectionSchema.optional(),
});
export type VirtualDestination = z.infer<typeof virtualDestinationSchema>;
export type VirtualDestinationInput = z.input<typeof virtualDestinationSchema>;

/** A virtual destination with its name (metadata.name), as a set of them is kept. */
export interface NamedVirtualDestination {
  readonly name: string;
  readonly spec: VirtualDestination;
}

/** Why `candidate` cannot join `existing`: its name or its hostname is taken. Undefined when it can. */
export function virtualDestinationConflict(existing: Iterable<NamedVirtualDestination>, candidate: NamedVirtualDestination): { field: 'metadata.name' | 'spec.hostname'; message: string } | undefined {
  for (const other of existing) {
    if (other.name === candidate.name) return { field: 'metadata.name', message: `virtual destination ${candidate.name} is defined twice` };
    if (other.spec.hostname === candidate.spec.hostname) return { field: 'spec.hostname', message: `hostname ${candidate.spec.hostname} is already the hostname of virtual destination ${other.name}` };
  }
  return undefined;
}
