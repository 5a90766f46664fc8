/**
 * Weights proxyless gRPC clients honour. grpc-js-xds turns ROUND_ROBIN into xds_wrr_locality over round_robin: a
 * locality is picked by its load_balancing_weight, then its endpoints are taken in turn, ignoring their own weights
 * (see src/xds/resources/cluster.ts). A gateway that stands for several endpoints and shares a locality group with
 * endpoints of another weight would get one turn instead of its share.
 *
 * So, for proxyless clients only, a group whose HEALTHY endpoints do not all weigh the same is split: each
 * gateway endpoint moves to a group of its own (same region, zone and priority; the sub_zone gets the suffix
 * `~via~ADDRESS:PORT` so that the (locality, priority) pair stays unique, which grpc requires) whose weight is the
 * gateway's weight, and the endpoints left behind keep a group weighing their healthy sum. Envoy honours endpoint
 * weights and gets the assignment unchanged.
 */
import type { LbEndpoint, LoadAssignment, LocalityGroup } from './split-horizon.js';

const MAX_WEIGHT = 0xffff_ffff;

const healthyWeight = (endpoints: readonly LbEndpoint[]): number =>
  Math.min(Math.max(endpoints.filter((e) => e.health === 'HEALTHY').reduce((sum, e) => sum + e.weight, 0), 1), MAX_WEIGHT);

function uniformlyWeighted(group: LocalityGroup): boolean {
  let weight: number | undefined;
  for (const e of group.endpoints) {
    if (e.health !== 'HEALTHY') continue;
    if (weight === undefined) weight = e.weight;
    else if (e.weight !== weight) return false;
  }
  return true;
}

const hostPort = (e: LbEndpoint): string => (e.address.includes(':') ? `[${e.address}]:${e.port}` : `${e.address}:${e.port}`);

function split(group: LocalityGroup): LocalityGroup[] {
  const direct = group.endpoints.filter((e) => e.via.kind === 'direct');
  const gateways = group.endpoints.filter((e) => e.via.kind === 'gateway');
  const out: LocalityGroup[] = [];
  if (direct.length > 0) out.push({ ...group, weight: healthyWeight(direct), endpoints: direct });
  for (const gateway of gateways) {
    out.push({
      locality: { ...group.locality, subzone: `${group.locality.subzone}~via~${hostPort(gateway)}` },
      priority: group.priority,
      weight: healthyWeight([gateway]),
      endpoints: [gateway],
    });
  }
  return out;
}

/** The assignment as a proxyless gRPC client must get it for traffic to follow the weights. */
export function forProxylessClients(assignment: LoadAssignment): LoadAssignment {
  if (assignment.groups.every(uniformlyWeighted)) return assignment;
  return { ...assignment, groups: assignment.groups.flatMap((g) => (uniformlyWeighted(g) ? [g] : split(g))) };
}
