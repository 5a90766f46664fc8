/**
 * The shipped outage drills, run as users run them: `meshfed drill run scenarios/X.yaml --report DIR` against a
 * running `meshfed serve` of the demo federation (on the test's own addresses). What must hold whatever the
 * machine's load: every expectation of the scenario (generous `within`s), traffic ending on the right tier, and the
 * reports written.
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { servedBy, startShippedFederation, type ShippedFederation } from './shipped.js';

let federation: ShippedFederation;

beforeAll(async () => {
  federation = await startShippedFederation(70);
}, 90_000);

afterAll(async () => {
  await federation.close();
}, 90_000);

describe('shipped drills against the embedded federation: outages', { timeout: 150_000 }, () => {
  it('zone-outage: east-1 clients move to east-2 and come back; west-1 clients see nothing', async () => {
    const run = await federation.drill('zone-outage.yaml');
    expect(run.code, run.output).toBe(0);
    expect(run.result.expectations.every((e) => e.passed)).toBe(true);
    // the last seconds after the restore: back home
    expect(servedBy(run.result, 'from-east-1', 'east-1', 40)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-east-1', 'east-2', 40)).toBe(0);
    expect(run.output).toMatch(/drill zone-outage: PASSED/);
    expect(readFileSync(join(run.reportDir, 'junit.xml'), 'utf8')).toMatch(/<testsuite name="zone-outage" tests="4" failures="0"/);
    expect(readFileSync(join(run.reportDir, 'report.html'), 'utf8')).toContain('<svg');
  });

  it('region-outage: east-1 clients cross to west-1 through its gateway, and return', async () => {
    const run = await federation.drill('region-outage.yaml');
    expect(run.code, run.output).toBe(0);
    expect(servedBy(run.result, 'from-east-1', 'west-1', 20, 30)).toBeGreaterThan(0);
    expect(servedBy(run.result, 'from-east-1', 'east-1', 20, 30)).toBe(0);
    expect(servedBy(run.result, 'from-west-1', 'east-1') + servedBy(run.result, 'from-west-1', 'east-2')).toBe(0);
  });

  it('api-server-outage: east-1 keeps serving during the grace period, then is evicted and its clients move', async () => {
    const run = await federation.drill('api-server-outage.yaml');
    expect(run.code, run.output).toBe(0);
    const states = run.result.expectations.filter((e) => e.name.includes('east-1') && /stale|evicted|ready/.test(e.name));
    expect(states.length).toBe(3);
    expect(states.every((e) => e.passed)).toBe(true);
    // kept during grace: east-1 answered in the seconds right after the API went away (at 5 s)
    expect(servedBy(run.result, 'from-east-1', 'east-1', 6, 13)).toBeGreaterThan(0);
    // evicted: east-2 answered before the API came back (at 35 s)
    expect(servedBy(run.result, 'from-east-1', 'east-2', 25, 35)).toBeGreaterThan(0);
  });
});
