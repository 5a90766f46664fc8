import { z } from 'zod';
import { localitySchema } from './locality.js';
import { clusterNameSchema, dnsLabelSchema, ipAddressSchema, labelsSchema, networkNameSchema, portSchema } from './names.js';

export const PROTOCOLS = ['TCP', 'UDP', 'SCTP'] as const;

export const servicePortSchema = z.strictObject({
  name: z.string().max(63).default(''),
  port: portSchema,
  protocol: z.enum(PROTOCOLS, { message: 'protocol must be TCP, UDP or SCTP' }).default('TCP'),
  /** the port on the endpoints; defaults to `port` */
  targetPort: portSchema.optional(),
  /** Kubernetes appProtocol (e.g. grpc, http, kubernetes.io/h2c) */
  appProtocol: z.string().max(256).optional(),
});
export type ServicePort = z.infer<typeof servicePortSchema>;

export const serviceSchema = z.strictObject({
  cluster: clusterNameSchema,
  namespace: dnsLabelSchema,
  name: dnsLabelSchema,
  ports: z.array(servicePortSchema).default([]),
  labels: labelsSchema.default({}),
});
export type Service = z.infer<typeof serviceSchema>;

export const ENDPOINT_HEALTH = ['ready', 'serving', 'terminating', 'unready'] as const;
export type EndpointHealth = (typeof ENDPOINT_HEALTH)[number];

export const endpointPortSchema = z.strictObject({
  name: z.string().max(63).default(''),
  port: portSchema,
  protocol: z.enum(PROTOCOLS).default('TCP'),
});
export type EndpointPort = z.infer<typeof endpointPortSchema>;

export const endpointSchema = z.strictObject({
  address: ipAddressSchema,
  ports: z.array(endpointPortSchema).default([]),
  locality: localitySchema.partial().default({}),
  serviceAccount: z.string().max(253).default('default'),
  labels: labelsSchema.default({}),
  /** mtls: the workload terminates mesh mTLS (an Istio sidecar or proxyless gRPC); plaintext: it does not */
  tlsMode: z.enum(['mtls', 'plaintext']).default('mtls'),
  health: z.enum(ENDPOINT_HEALTH).default('ready'),
  /** the endpoint's own network when it differs from its cluster's (Istio's topology.istio.io/network pod label) */
  network: networkNameSchema.optional(),
});
export type Endpoint = z.infer<typeof endpointSchema>;

/** The identity of a service across the federation's clusters: same namespace and name means same service. */
export const serviceKey = (namespace: string, name: string): string => `${namespace}/${name}`;
