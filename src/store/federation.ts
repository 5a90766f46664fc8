import { existsSync, readFileSync, statSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import { clusterSchema, type Cluster } from '../model/cluster.js';
import { FederationFileError, parseFederationFile, type StaticService } from '../model/federation-file.js';
import type { NamedVirtualDestination } from '../model/virtual-destination.js';

const MAX_FEDERATION_FILE_BYTES = 16 * 1024 * 1024;
const MAX_KUBECONFIG_BYTES = 256 * 1024;

/** A cluster of the federation file, ready for the registry: a kubeconfigFile is read into the cluster's inline source. */
export interface FileCluster {
  readonly cluster: Cluster;
  /** a static cluster's services (undefined for a Kubernetes cluster) */
  readonly services?: StaticService[];
  /** for a Kubernetes cluster: the kubeconfig file it was read from (absolute) */
  readonly kubeconfigPath?: string;
}

export interface LoadedFederation {
  /** absolute path of the file */
  readonly path: string;
  readonly name?: string;
  readonly trustDomain?: string;
  readonly clusters: FileCluster[];
  /** the file's VirtualDestinations, in file order; names and hostnames unique */
  readonly virtualDestinations: NamedVirtualDestination[];
}

function readLimited(path: string, limit: number, what: string): string {
  if (!existsSync(path)) throw new FederationFileError(`${what}: ${path} does not exist`);
  const stat = statSync(path);
  if (!stat.isFile()) throw new FederationFileError(`${what}: ${path} is not a file`);
  if (stat.size > limit) throw new FederationFileError(`${what}: ${path} is ${stat.size} bytes; the limit is ${limit}`);
  return readFileSync(path, 'utf8');
}

/**
 * Reads a federation file from disk: parses it (see parseFederationFile), resolves every
 * `kubeconfigFile` relative to the file's own directory and reads it into the cluster's source.
 * Errors are FederationFileErrors that name the file, the cluster and the field.
 */
export function loadFederationFile(path: string): LoadedFederation {
  const absolute = resolve(path);
  const parsed = parseFederationFile(readLimited(absolute, MAX_FEDERATION_FILE_BYTES, 'federation file'), absolute);
  const clusters = parsed.clusters.map((definition): FileCluster => {
    const { kubeconfigFile, context, services, ...rest } = definition;
    if (kubeconfigFile === undefined) return { cluster: clusterSchema.parse({ ...rest, source: { type: 'static' } }), services: services ?? [] };
    const kubeconfigPath = resolve(dirname(absolute), kubeconfigFile);
    const kubeconfig = readLimited(kubeconfigPath, MAX_KUBECONFIG_BYTES, `${absolute} (Cluster ${definition.name}): spec.kubeconfigFile`);
    if (kubeconfig.trim() === '') throw new FederationFileError(`${absolute} (Cluster ${definition.name}): spec.kubeconfigFile: ${kubeconfigPath} is empty`);
    const cluster = clusterSchema.parse({ ...rest, source: { type: 'kubernetes', kubeconfig, ...(context ? { context } : {}) } });
    return { cluster, kubeconfigPath };
  });
  return {
    path: absolute,
    ...(parsed.name !== undefined ? { name: parsed.name } : {}),
    ...(parsed.trustDomain !== undefined ? { trustDomain: parsed.trustDomain } : {}),
    clusters,
    virtualDestinations: parsed.virtualDestinations,
  };
}
