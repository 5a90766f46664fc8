import { z } from 'zod';
import { localitySchema } from './locality.js';
import { clusterNameSchema, hostSchema, networkNameSchema, portSchema } from './names.js';

export const DEFAULT_GATEWAY_PORT = 15443;

export const gatewaySchema = z.strictObject({
  /** IP, or a DNS name (a cloud load balancer) resolved before it reaches a proxy */
  address: hostSchema,
  port: portSchema.default(DEFAULT_GATEWAY_PORT),
  /** defaults to the cluster's region and zone */
  locality: localitySchema.partial().optional(),
});
export type Gateway = z.infer<typeof gatewaySchema>;

/** How meshfed learns a cluster's services and endpoints. */
export const clusterSourceSchema = z.discriminatedUnion('type', [
  /** listed in the federation file */
  z.strictObject({ type: z.literal('static') }),
  /** watched through the Kubernetes API with this kubeconfig (inline YAML) */
  z.strictObject({
    type: z.literal('kubernetes'),
    kubeconfig: z.string().min(1, 'kubeconfig must not be empty').max(256 * 1024, 'kubeconfig is larger than 256 KiB'),
    context: z.string().optional(),
  }),
]);
export type ClusterSource = z.infer<typeof clusterSourceSchema>;

export const clusterSchema = z.strictObject({
  name: clusterNameSchema,
  network: networkNameSchema,
  region: z.string().max(128).default(''),
  zone: z.string().max(128).default(''),
  /** explicit east-west gateways; they win over discovered ones */
  gateways: z.array(gatewaySchema).default([]),
  source: clusterSourceSchema.default({ type: 'static' }),
});
export type Cluster = z.infer<typeof clusterSchema>;
export type ClusterInput = z.input<typeof clusterSchema>;
