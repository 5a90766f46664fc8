/**
 * Weights proxyless gRPC clients honour. grpc-js-xds turns ROUND_ROBIN into xds_wrr_locality over round_robin: a
 * locality is picked by its load_balancing_weight, then its endpoints are taken in turn, ignoring their own weights
 * (see src/xds/resources/cluster.ts). A gateway that stands for several endpoints and shares a locality group with
 * endpoints of another weight would get one turn instead of its share.
 *
 * So, for proxyless clients only, a group whose HEALTHY endpoints do not all weigh the same is split: each
 * gateway endpoint moves to a group of its own (same region, zone and priority; the sub_zone gets the suffix
 * `~via~ADDRESS:PORT` so that the (locality, priority) pair stays unique, which grpc requires), and the endpoints
 * left behind keep a group of their own. Each part keeps the share of the group's weight that its healthy endpoint
 * weights are of the group's: for a split-horizon group, whose weight is its healthy sum, that is the gateway's
 * weight and the healthy sum of the endpoints left behind; for a group whose weight was shaped (a virtual
 * destination's weights or spill), the shape is kept. Envoy honours endpoint weights and gets the assignment unchanged.
 */
import type { LbEndpoint, LoadAssignment, LocalityGroup } from './split-horizon.js';

const MAX_WEIGHT = 0xffff_ffff;

const healthySum = (endpoints: readonly LbEndpoint[]): number => endpoints.filter((e) => e.health === 'HEALTHY').reduce((sum, e) => sum + e.weight, 0);

/** The weight of `part` of a split group: its healthy share of the group's weight, 1 at least. */
function partWeight(group: LocalityGroup, whole: number, part: readonly LbEndpoint[]): number {
  return Math.min(Math.max(Math.round((group.weight * healthySum(part)) / whole), 1), MAX_WEIGHT);
}

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
  // not uniformly weighted: at least two HEALTHY endpoints, so the whole is above 0
  const whole = healthySum(group.endpoints);
  const out: LocalityGroup[] = [];
  if (direct.length > 0) out.push({ ...group, weight: partWeight(group, whole, direct), endpoints: direct });
  for (const gateway of gateways) {
    out.push({
      locality: { ...group.locality, subzone: `${group.locality.subzone}~via~${hostPort(gateway)}` },
      priority: group.priority,
      weight: partWeight(group, whole, [gateway]),
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
