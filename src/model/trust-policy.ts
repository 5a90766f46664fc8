import { z } from 'zod';
import { parseDuration } from './duration.js';

export const KEY_TYPES = ['ec-p256', 'ec-p384', 'rsa-3072', 'rsa-4096'] as const;
export type KeyType = (typeof KEY_TYPES)[number];

/** A trust domain is a SPIFFE authority: lowercase letters, digits, '.', '-' and '_'. */
export const trustDomainSchema = z
  .string()
  .min(1, 'trust domain must not be empty')
  .max(255, 'trust domain must be at most 255 characters')
  .regex(/^[a-z0-9._-]+$/, 'trust domain may contain only lowercase letters, digits, ".", "-" and "_" (SPIFFE)');

export { clusterNameSchema } from './names.js';

/** A duration such as `24h`, `30d` or `1h30m`, as parseDuration reads it. */
export const durationSchema = z.string().refine(
  (value) => {
    try {
      parseDuration(value);
      return true;
    } catch {
      return false;
    }
  },
  { message: 'must be a duration such as 24h, 30d or 1y' },
);

const ratioSchema = z.number().gt(0, 'must be greater than 0').lt(1, 'must be less than 1');

const lifetimeSchema = z.strictObject({
  default: durationSchema,
  max: durationSchema,
  renewAt: ratioSchema.describe('fraction of the lifetime after which the certificate is renewed'),
});

export const trustPolicySchema = z.strictObject({
  apiVersion: z.literal('meshfed.io/v1alpha1'),
  kind: z.literal('TrustPolicy'),
  keyTypes: z.strictObject({
    root: z.enum(KEY_TYPES),
    intermediate: z.enum(KEY_TYPES),
    /** key types accepted in workload CSRs; rsa-2048 is Istio's default workload key */
    workload: z.array(z.enum(['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'])).min(1),
  }),
  lifetimes: z.strictObject({
    root: lifetimeSchema,
    intermediate: lifetimeSchema,
    workload: lifetimeSchema,
  }),
  limits: z.strictObject({
    maxCsrBytes: z.number().int().min(256).max(65536),
  }),
});

export type TrustPolicy = z.infer<typeof trustPolicySchema>;

export const DEFAULT_TRUST_POLICY: TrustPolicy = {
  apiVersion: 'meshfed.io/v1alpha1',
  kind: 'TrustPolicy',
  keyTypes: { root: 'ec-p256', intermediate: 'ec-p256', workload: ['ec-p256', 'ec-p384', 'rsa-2048', 'rsa-3072', 'rsa-4096'] },
  lifetimes: {
    root: { default: '10y', max: '20y', renewAt: 0.8 },
    intermediate: { default: '1y', max: '5y', renewAt: 0.66 },
    workload: { default: '24h', max: '90d', renewAt: 0.5 },
  },
  limits: { maxCsrBytes: 8192 },
};
