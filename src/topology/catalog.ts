/**
 * The federated service catalog: which services exist across the federation, under which hostname, on which ports,
 * and which workload identities serve them. A service is the same service in every cluster that has it under the
 * same namespace and name (Istio's namespace sameness); its ports are the union of every cluster's ports by number.
 */
import type { FederatedSnapshot } from '../registry/snapshot.js';

export const DEFAULT_DOMAIN_SUFFIX = 'cluster.local';

export interface CatalogPort {
  port: number;
  /** the first non-empty name any cluster gives the port */
  name: string;
}

export interface CatalogService {
  /** namespace/name */
  key: string;
  namespace: string;
  name: string;
  /** name.namespace.svc.SUFFIX */
  host: string;
  /** sorted by port number */
  ports: CatalogPort[];
  /** non-evicted clusters that have the service, sorted */
  clusters: string[];
  /** `namespace/serviceAccount` of its mTLS endpoints, sorted (the identities a client may expect to meet) */
  identities: string[];
}

export interface Catalog {
  /** sorted by host */
  services: CatalogService[];
  byHost: ReadonlyMap<string, CatalogService>;
  byKey: ReadonlyMap<string, CatalogService>;
}

export const serviceHost = (namespace: string, name: string, domainSuffix = DEFAULT_DOMAIN_SUFFIX): string => `${name}.${namespace}.svc.${domainSuffix}`;

/** The catalog of a snapshot; evicted clusters contribute nothing. */
export function federatedCatalog(snapshot: FederatedSnapshot, domainSuffix = DEFAULT_DOMAIN_SUFFIX): Catalog {
  const acc = new Map<string, { namespace: string; name: string; ports: Map<number, string>; clusters: Set<string>; identities: Set<string> }>();
  for (const [clusterName, view] of snapshot.clusters) {
    if (view.state === 'evicted') continue;
    for (const [key, sv] of view.services) {
      let entry = acc.get(key);
      if (!entry) {
        entry = { namespace: sv.service.namespace, name: sv.service.name, ports: new Map(), clusters: new Set(), identities: new Set() };
        acc.set(key, entry);
      }
      entry.clusters.add(clusterName);
      for (const p of sv.service.ports) {
        if (p.protocol !== 'TCP') continue;
        const known = entry.ports.get(p.port);
        if (known === undefined || known === '') entry.ports.set(p.port, p.name);
      }
      for (const ep of sv.endpoints) if (ep.tlsMode === 'mtls') entry.identities.add(`${sv.service.namespace}/${ep.serviceAccount}`);
    }
  }
  const services = [...acc.entries()]
    .map(
      ([key, e]): CatalogService => ({
        key,
        namespace: e.namespace,
        name: e.name,
        host: serviceHost(e.namespace, e.name, domainSuffix),
        ports: [...e.ports.entries()].map(([port, name]) => ({ port, name })).sort((a, b) => a.port - b.port),
        clusters: [...e.clusters].sort(),
        identities: [...e.identities].sort(),
      }),
    )
    .filter((s) => s.ports.length > 0)
    .sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  return {
    services,
    byHost: new Map(services.map((s) => [s.host, s])),
    byKey: new Map(services.map((s) => [s.key, s])),
  };
}
