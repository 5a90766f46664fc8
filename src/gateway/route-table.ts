/**
 * Where the gateway sends a connection: its routes are exactly what meshfed tells an Envoy east-west gateway over
 * xDS (the 15443 listener's filter chains: server names → cluster; that cluster's ClusterLoadAssignment: the local
 * endpoints), so the built-in gateway and an Envoy one route the same way. Those resources hold only the gateway's
 * own cluster's mTLS endpoints (src/topology/gateway-targets.ts): a connection never takes a second gateway hop.
 *
 * An SNI resolves to the healthy endpoints of the best priority that has any (the endpoints nearest the gateway).
 * Refusals, each with its reason: no SNI; an SNI no chain names ('unknown-sni'), or a bare hostname of a service
 * with several ports, whose port cannot be told ('ambiguous-port'); a route whose endpoints are all unhealthy
 * ('no-endpoints').
 */
import { HEALTH_STATUS } from '../xds/envoy-protos.js';
import type { ClusterLoadAssignmentObject } from '../xds/resources/endpoints.js';
import type { GatewayChain } from '../xds/resources/gateway-listener.js';

export interface GatewayTarget {
  address: string;
  port: number;
}

export interface GatewayRoute {
  serverName: string;
  /** the gateway cluster, `outbound_.PORT_._.HOST` */
  cluster: string;
  /** the healthy endpoints of the best priority that has any */
  targets: readonly GatewayTarget[];
}

export type RefusalReason = 'no-sni' | 'unknown-sni' | 'ambiguous-port' | 'no-endpoints';

export type Resolution = { kind: 'route'; route: GatewayRoute } | { kind: 'refused'; reason: RefusalReason };

const SNI_FORM = /^outbound_\.(\d{1,5})_\.([^.]*)_\.(.+)$/;

function healthyTargets(cla: ClusterLoadAssignmentObject | undefined): GatewayTarget[] {
  const byPriority = new Map<number, GatewayTarget[]>();
  for (const group of cla?.endpoints ?? []) {
    const healthy = group.lb_endpoints.filter((e) => e.health_status === HEALTH_STATUS.HEALTHY);
    if (healthy.length === 0) continue;
    const priority = group.priority ?? 0;
    const list = byPriority.get(priority) ?? [];
    for (const e of healthy) list.push({ address: e.endpoint.address.socket_address.address, port: e.endpoint.address.socket_address.port_value ?? 0 });
    byPriority.set(priority, list);
  }
  const best = Math.min(...byPriority.keys());
  return byPriority.get(best) ?? [];
}

export class RouteTable {
  /** server name → cluster */
  readonly #clusters: ReadonlyMap<string, string>;
  /** cluster → healthy targets */
  readonly #targets: ReadonlyMap<string, readonly GatewayTarget[]>;
  /** bare hosts that name a service with several ports */
  readonly #multiPortHosts: ReadonlySet<string>;

  constructor(chains: readonly GatewayChain[], assignments: ReadonlyMap<string, ClusterLoadAssignmentObject>) {
    const clusters = new Map<string, string>();
    const portsByHost = new Map<string, Set<string>>();
    for (const chain of chains) {
      for (const name of chain.serverNames) clusters.set(name, chain.cluster);
      const form = SNI_FORM.exec(chain.cluster);
      const host = form?.[3];
      if (host !== undefined) portsByHost.set(host, (portsByHost.get(host) ?? new Set()).add(form?.[1] ?? ''));
    }
    this.#clusters = clusters;
    this.#targets = new Map(chains.map((c) => [c.cluster, healthyTargets(assignments.get(c.cluster))]));
    this.#multiPortHosts = new Set([...portsByHost].filter(([, ports]) => ports.size > 1).map(([host]) => host));
  }

  static readonly EMPTY = new RouteTable([], new Map());

  /** how many server names lead somewhere */
  get size(): number {
    return this.#clusters.size;
  }

  resolve(serverName: string | undefined): Resolution {
    if (serverName === undefined) return { kind: 'refused', reason: 'no-sni' };
    const cluster = this.#clusters.get(serverName);
    if (cluster === undefined) return { kind: 'refused', reason: this.#multiPortHosts.has(serverName) ? 'ambiguous-port' : 'unknown-sni' };
    const targets = this.#targets.get(cluster) ?? [];
    if (targets.length === 0) return { kind: 'refused', reason: 'no-endpoints' };
    return { kind: 'route', route: { serverName, cluster, targets } };
  }
}
