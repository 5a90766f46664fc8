import { expect } from 'vitest';
import { formatLocality } from '../../src/model/locality.js';
import type { LoadAssignment } from '../../src/topology/index.js';

/** What grpc and Envoy NACK or mis-handle: duplicate addresses, duplicate groups, priority gaps, zero weights. */
export function expectValidForXds(a: LoadAssignment): void {
  const addresses = a.groups.flatMap((g) => g.endpoints.map((e) => `${e.address}|${e.port}`));
  expect(new Set(addresses).size).toBe(addresses.length);
  const localities = a.groups.map((g) => `${formatLocality(g.locality)}|${g.priority}`);
  expect(new Set(localities).size).toBe(localities.length);
  const priorities = [...new Set(a.groups.map((g) => g.priority))];
  expect(priorities).toEqual(priorities.map((_, i) => i));
  for (const g of a.groups) {
    expect(g.weight).toBeGreaterThan(0);
    expect(g.endpoints.length).toBeGreaterThan(0);
    for (const e of g.endpoints) {
      expect(e.weight).toBeGreaterThan(0);
      expect(e.weight).toBeLessThanOrEqual(0xffff_ffff);
    }
  }
}
