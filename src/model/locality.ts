import { z } from 'zod';

/** Where something runs, as Envoy's Locality and Kubernetes' topology labels say it. */
export const localitySchema = z.strictObject({
  region: z.string().max(128).default(''),
  zone: z.string().max(128).default(''),
  subzone: z.string().max(128).default(''),
});

export type Locality = z.infer<typeof localitySchema>;

export const EMPTY_LOCALITY: Locality = Object.freeze({ region: '', zone: '', subzone: '' });

/** Istio's `region/zone/subzone` form. */
export const formatLocality = (l: Locality): string => [l.region, l.zone, l.subzone].join('/').replace(/\/+$/, '');
