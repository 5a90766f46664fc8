/**
 * The shipped drain and gateway drills, run as users run them (see shipped-outages.test.ts): the drain moves traffic
 * and back without failing a single request; losing gateways one after the other (a kill, then a partition that
 * only meshfed's gateway probes can notice) keeps the clients that cross them served through the gateway that is left.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { failedRequests, servedBy, startShippedFederation, type ShippedFederation } from './shipped.js';

let federation: ShippedFederation;

beforeAll(async () => {
  federation = await startShippedFederation(75);
}, 90_000);

afterAll(async () => {
  await federation.close();
}, 90_000);

describe('shipped drills against the embedded federation: drain and gateways', { timeout: 150_000 }, () => {
  it('drain-and-failback fails zero requests', async () => {
    const run = await federation.drill('drain-and-failback.yaml');
    expect(run.code, run.output).toBe(0);
    expect(failedRequests(run.result)).toBe(0);
    expect(run.result.events.some((e) => e.kind === 'rollback')).toBe(false);
  });

  it('gateway-loss: west-1 clients carry on through the gateway that is left, and come home', async () => {
    const run = await federation.drill('gateway-loss.yaml');
    expect(run.code, run.output).toBe(0);
    expect(run.result.expectations.filter((e) => !e.passed)).toEqual([]);
    // partitioned at 30 s: once meshfed's gateway probes found east-2's gateway down, west-1's clients are on east-1
    // alone until everything is restored at 50 s (counted by send time, so calls hanging in the partition count)
    expect(servedBy(run.result, 'from-west-1', 'east-1', 42, 50)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-west-1', 'east-2', 42, 50)).toBe(0);
    const last = Math.max(...(run.result.streams.find((s) => s.name === 'from-west-1')?.seconds.map((s) => s.t) ?? [0]));
    expect(servedBy(run.result, 'from-west-1', 'west-1', last - 3)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-east-1', 'east-2') + servedBy(run.result, 'from-east-1', 'west-1')).toBe(0);
  });
});
