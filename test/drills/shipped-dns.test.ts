/**
 * The shipped HTTP-via-DNS drill, run as users run it (see shipped-outages.test.ts): `meshfed drill run
 * scenarios/ratings-outage-http.yaml --report DIR` against a running `meshfed serve` of the demo federation on the
 * test's own addresses (127.0.90-92.x). Its clients resolve ratings.global through meshfed's DNS and call it through
 * their cluster's simulated sidecar, a real xDS client of that meshfed.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedBy, startShippedFederation, type ShippedFederation } from './shipped.js';

let federation: ShippedFederation;

beforeAll(async () => {
  federation = await startShippedFederation(89);
}, 90_000);

afterAll(async () => {
  await federation.close();
}, 90_000);

describe('shipped drills against the embedded federation: HTTP clients via DNS', { timeout: 150_000 }, () => {
  it('ratings-outage-http: east-1 HTTP clients move from the killed ratings to east-2 and come back; the report counts requests by serving cluster', async () => {
    const run = await federation.drill('ratings-outage-http.yaml');
    expect(run.code, run.output).toBe(0);
    expect(run.result.expectations.every((e) => e.passed)).toBe(true);
    expect(run.result.streams.map((s) => [s.name, s.from, s.to, s.via])).toEqual([
      ['from-east-1', 'east-1', 'ratings.global:9080', 'dns'],
      ['from-west-1', 'west-1', 'ratings.global:9080', 'dns'],
    ]);
    // before the fault (at 10 s): east-1 served its own clients; while it was down: east-2, never east-1
    expect(servedBy(run.result, 'from-east-1', 'east-1', 0, 10)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-east-1', 'east-2', 0, 10)).toBe(0);
    expect(servedBy(run.result, 'from-east-1', 'east-2', 16, 25)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-east-1', 'east-1', 16, 25)).toBe(0);
    // back home by the end
    expect(servedBy(run.result, 'from-east-1', 'east-1', 36)).toBeGreaterThan(0);
    // west-1's clients never left their cluster
    expect(servedBy(run.result, 'from-west-1', 'west-1')).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-west-1', 'east-1') + servedBy(run.result, 'from-west-1', 'east-2')).toBe(0);
    // what failed (in-flight requests the dying workload reset, if any) is counted by the kinds a client can see, never
    // as a reply it could not read (bad-reply) or a VIP meshfed's DNS did not give (dns-*)
    const errors = run.result.streams.flatMap((s) => s.seconds.flatMap((second) => Object.keys(second.errors)));
    expect(errors.every((kind) => /^(http-\d{3}|timeout|E[A-Z]+)$/.test(kind)), errors.join()).toBe(true);
    expect(run.output).toMatch(/drill ratings-outage-http: PASSED/);
  });
});
