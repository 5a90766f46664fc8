import { z } from 'zod';
import { isIP } from 'node:net';

const DNS_LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const DNS_LABEL_RULE = 'a DNS-1123 label: lowercase letters, digits and "-", at most 63 characters, starting and ending alphanumeric';

/** Kubernetes object names that must be DNS-1123 labels (namespace, service names). */
export const dnsLabelSchema = z.string().regex(DNS_LABEL, `must be ${DNS_LABEL_RULE}`);

export const clusterNameSchema = z.string().regex(DNS_LABEL, `cluster name must be ${DNS_LABEL_RULE}`);

/** Network names: Istio allows any label-like string (e.g. "network1", "net-east"). */
export const networkNameSchema = z
  .string()
  .regex(/^[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'must be 1-63 letters, digits, "-", "_" or ".", starting and ending alphanumeric');

export const ipAddressSchema = z.string().refine((value) => isIP(value) !== 0, { message: 'must be an IPv4 or IPv6 address' });

/** A gateway address may be an IP or a DNS name (a cloud load balancer's hostname). */
export const hostSchema = z.string().refine((value) => isIP(value) !== 0 || /^(?=.{1,253}$)([a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$/i.test(value), {
  message: 'must be an IP address or a DNS name',
});

export const portSchema = z.number({ message: 'must be a port number' }).int('must be a whole number').min(1, 'must be 1-65535').max(65535, 'must be 1-65535');

/** Kubernetes label maps: keys with an optional DNS prefix, values up to 63 characters. */
export const labelsSchema = z.record(
  z.string().regex(/^([a-z0-9]([-a-z0-9.]*[a-z0-9])?\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, 'label keys are [prefix/]name, name at most 63 characters'),
  z.string().regex(/^(([A-Za-z0-9][-A-Za-z0-9_.]{0,61})?[A-Za-z0-9])?$/, 'label values are at most 63 letters, digits, "-", "_" or "."'),
);
