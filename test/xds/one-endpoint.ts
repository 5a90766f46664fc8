/**
 * Small resources for the raw ADS tests: a one-endpoint assignment whose address encodes `n`, so each version of a
 * resource has different bytes.
 */
import type { LoadAssignment } from '../../src/topology/index.js';

export const addressOf = (n: number): string => `10.0.${Math.floor(n / 250)}.${(n % 250) + 1}`;

export function assignment(n: number): LoadAssignment {
  return {
    service: 'ns/x',
    port: 80,
    groups: [
      {
        locality: { region: 'r1', zone: 'z1', subzone: '' },
        priority: 0,
        weight: 1,
        endpoints: [{ address: addressOf(n), port: 8080, weight: 1, health: 'HEALTHY', via: { kind: 'direct' } }],
      },
    ],
    scaleFactor: 1,
    dropped: [],
    skippedGateways: [],
  };
}
