import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { formatDuration, parseDuration } from '../../src/model/duration.js';
import { DEFAULT_TRUST_POLICY, trustPolicySchema } from '../../src/model/trust-policy.js';

describe('trust policy', () => {
  it('ca/trust-policy.yaml is valid and identical to the built-in default', () => {
    const file: unknown = parse(readFileSync(resolve(import.meta.dirname, '../../ca/trust-policy.yaml'), 'utf8'));
    expect(trustPolicySchema.parse(file)).toEqual(DEFAULT_TRUST_POLICY);
  });

  it('names the bad field of an invalid policy', () => {
    const result = trustPolicySchema.safeParse({ ...DEFAULT_TRUST_POLICY, lifetimes: { ...DEFAULT_TRUST_POLICY.lifetimes, workload: { default: '24 hours', max: '90d', renewAt: 1.5 } } });
    expect(result.success).toBe(false);
    const paths = result.error?.issues.map((i) => i.path.join('.'));
    expect(paths).toEqual(expect.arrayContaining(['lifetimes.workload.default', 'lifetimes.workload.renewAt']));
  });

  it('parses and formats durations', () => {
    expect(parseDuration('24h')).toBe(86_400_000);
    expect(parseDuration('1h30m')).toBe(5_400_000);
    expect(parseDuration('1y')).toBe(365 * 86_400_000);
    expect(formatDuration(parseDuration('1d2h'))).toBe('1d2h');
    for (const bad of ['', '10', 'h', '-1h', '1.5h', '0s', '24 h']) expect(() => parseDuration(bad)).toThrow(/invalid duration/);
    // milliseconds only where asked for (command-line probe timings), never in stored resources
    expect(() => parseDuration('250ms')).toThrow(/invalid duration "250ms": use a number and a unit \(s, m, h/);
    expect([parseDuration('250ms', { milliseconds: true }), parseDuration('1s500ms', { milliseconds: true }), parseDuration('2m', { milliseconds: true })]).toEqual([250, 1_500, 120_000]);
    for (const bad of ['0ms', '1.5ms', 'ms', '250 ms']) expect(() => parseDuration(bad, { milliseconds: true })).toThrow(/invalid duration/);
  });
});
