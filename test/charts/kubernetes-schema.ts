/**
 * Checks a rendered manifest against the Kubernetes API: its types, required fields and enums with the models of
 * `kubernetes-models` (`.validate()`), and unknown fields (a typo such as `readinesProbe`, which those models let
 * through) with the attribute maps of @kubernetes/client-node's generated API types.
 */
import * as k8s from '@kubernetes/client-node';
import { CustomResourceDefinition } from 'kubernetes-models/apiextensions.k8s.io/v1/CustomResourceDefinition';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1/PodDisruptionBudget';
import { Role } from 'kubernetes-models/rbac.authorization.k8s.io/v1/Role';
import { RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/RoleBinding';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Service } from 'kubernetes-models/v1/Service';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import type { Manifest } from './helm.js';

/** Each model takes its own typed data; what helm rendered is untyped YAML until validate() has checked it. */
type Model = new (data: never) => { validate(): void };

const MODELS: Record<string, Model> = {
  'apiextensions.k8s.io/v1/CustomResourceDefinition': CustomResourceDefinition,
  'apps/v1/Deployment': Deployment,
  'policy/v1/PodDisruptionBudget': PodDisruptionBudget,
  'rbac.authorization.k8s.io/v1/Role': Role,
  'rbac.authorization.k8s.io/v1/RoleBinding': RoleBinding,
  'v1/ConfigMap': ConfigMap,
  'v1/Service': Service,
  'v1/ServiceAccount': ServiceAccount,
};

interface Attribute {
  baseName: string;
  type: string;
}
const TYPES = k8s as unknown as Record<string, { getAttributeTypeMap?: () => Attribute[] } | undefined>;

const isObject = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

function unknownFields(value: unknown, type: string, path: string): string[] {
  const item = /^Array<(.+)>$/.exec(type)?.[1];
  if (item !== undefined) return Array.isArray(value) ? value.flatMap((child, index) => unknownFields(child, item, `${path}[${index}]`)) : [];
  const entry = /^\{ \[key: string\]: (.+); \}$/.exec(type)?.[1];
  if (entry !== undefined) return isObject(value) ? Object.entries(value).flatMap(([key, child]) => unknownFields(child, entry, `${path}.${key}`)) : [];
  const attributes = TYPES[type]?.getAttributeTypeMap?.();
  if (!attributes || !isObject(value)) return [];
  const types = new Map(attributes.map((attribute) => [attribute.baseName, attribute.type]));
  return Object.entries(value).flatMap(([key, child]) => {
    const childType = types.get(key);
    return childType === undefined ? [`${path}.${key}`] : unknownFields(child, childType, `${path}.${key}`);
  });
}

/** Throws with every problem of the manifest, named by kind, name and field path. */
export function validateManifest(manifest: Manifest): void {
  const what = `${manifest.kind} ${manifest.metadata.name}`;
  const Model = MODELS[`${manifest.apiVersion}/${manifest.kind}`];
  if (!Model) throw new Error(`${what}: ${manifest.apiVersion} ${manifest.kind} is not a kind these charts are expected to render`);
  try {
    new Model(manifest as never).validate();
  } catch (error) {
    throw new Error(`${what}: ${(error as Error).message}`, { cause: error });
  }
  const type = `${(manifest.apiVersion.split('/').at(-1) ?? '').toUpperCase()}${manifest.kind}`;
  if (!TYPES[type]?.getAttributeTypeMap) throw new Error(`${what}: @kubernetes/client-node has no type ${type}`);
  const unknown = unknownFields(manifest, type, '');
  if (unknown.length > 0) throw new Error(`${what}: unknown fields ${unknown.join(', ')}`);
}
