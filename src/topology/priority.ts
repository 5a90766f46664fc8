import type { Locality } from '../model/locality.js';

/** 0 same region+zone+subzone, 1 same region+zone, 2 same region, 3 elsewhere (before renumbering). */
export type LocalityPriority = 0 | 1 | 2 | 3;

/**
 * An endpoint's priority relative to the asking proxy (issue 4's tiers, the same ladder as Istio's locality
 * failover in pilot/pkg/networking/core/loadbalancer/loadbalancer.go: 0 same region/zone/subzone, 1 same
 * region/zone, 2 same region, 3 others).
 *
 * meshfed's decision: a proxy that does not know its region gives everything priority 0, since there is
 * nothing to be near to. Missing fields compare as ''.
 */
export function localityPriority(proxy: Partial<Locality>, endpoint: Partial<Locality>): LocalityPriority {
  const region = proxy.region ?? '';
  if (region === '') return 0;
  if ((endpoint.region ?? '') !== region) return 3;
  if ((endpoint.zone ?? '') !== (proxy.zone ?? '')) return 2;
  if ((endpoint.subzone ?? '') !== (proxy.subzone ?? '')) return 1;
  return 0;
}

/** Lexical order by region, then zone, then subzone. */
export function compareLocality(a: Locality, b: Locality): number {
  return cmp(a.region, b.region) || cmp(a.zone, b.zone) || cmp(a.subzone, b.subzone);
}

export const localityKey = (l: Locality): string => `${l.region}\u0000${l.zone}\u0000${l.subzone}`;

function cmp(a: string, b: string): number {
  return a < b ? -1 : a > b ? 1 : 0;
}

/** The locality rule behind a priority, in words (for `explain`): what localityPriority's tiers mean. */
export type LocalityReason = 'same-zone' | 'same-region' | 'other-region' | 'unordered';

export function localityReason(proxy: Partial<Locality>, endpoint: Partial<Locality>): LocalityReason {
  if ((proxy.region ?? '') === '') return 'unordered';
  const raw = localityPriority(proxy, endpoint);
  return raw <= 1 ? 'same-zone' : raw === 2 ? 'same-region' : 'other-region';
}
