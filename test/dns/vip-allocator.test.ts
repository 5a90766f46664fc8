import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { formatIp, parseCidr, parseIp } from '../../src/dns/ip.js';
import { VIP_FILE, VipAllocator, VipExhaustedError } from '../../src/dns/vip-allocator.js';

let stateDir: string;
beforeEach(() => {
  stateDir = mkdtempSync(join(tmpdir(), 'meshfed-vips-'));
});
afterEach(() => {
  rmSync(stateDir, { recursive: true, force: true });
});

describe('ip', () => {
  it('parses and formats IPv4 and IPv6 (RFC 5952)', () => {
    expect(parseCidr('240.240.7.9/16').text).toBe('240.240.0.0/16');
    expect(parseCidr('fd6d:6573:6866:0:1::/64').text).toBe('fd6d:6573:6866::/64');
    for (const text of ['::', '::1', '1::', 'fd00::1:0:0:1', '2001:db8:0:0:1:0:0:1', '1:2:3:4:5:6:7:8', 'fd6d:6573:6866:0:2eab:2b9c:ec9a:2fbb']) {
      const parsed = parseIp(text);
      expect(parsed && formatIp(parsed.family, parsed.value)).toBe(text === '2001:db8:0:0:1:0:0:1' ? '2001:db8::1:0:0:1' : text);
    }
    for (const bad of ['240.240.0.0', '240.240.0.0/33', '::/129', 'x/8', '1.2.3.4/08x', 'fe80::1%eth0/64']) expect(() => parseCidr(bad)).toThrow();
  });
});

describe('VipAllocator', () => {
  it('gives each name a VIP in the default ranges, deterministically, and keeps it across restarts', () => {
    const first = new VipAllocator({ stateDir });
    const { assigned } = first.sync(['reviews.global', 'Ratings.Global.']);
    const reviews = assigned.get('reviews.global');
    expect(reviews?.ipv4).toMatch(/^240\.240\.\d+\.\d+$/);
    expect(reviews?.ipv6).toMatch(/^fd6d:6573:6866:/);
    expect(assigned.get('ratings.global')).toBeDefined();
    // a fresh state dir prefers the same addresses (hash of the name)
    const otherDir = mkdtempSync(join(tmpdir(), 'meshfed-vips-'));
    try {
      expect(new VipAllocator({ stateDir: otherDir }).sync(['reviews.global']).assigned.get('reviews.global')).toEqual(reviews);
    } finally {
      rmSync(otherDir, { recursive: true, force: true });
    }
    // a restart reads the file: same VIPs, even when the order and the other names differ
    const second = new VipAllocator({ stateDir });
    expect(second.sync(['zzz.global', 'ratings.global', 'reviews.global']).assigned.get('reviews.global')).toEqual(reviews);
    const saved = JSON.parse(readFileSync(join(stateDir, VIP_FILE), 'utf8')) as { vips: Record<string, unknown> };
    expect(Object.keys(saved.vips).sort()).toEqual(['ratings.global', 'reviews.global', 'zzz.global']);
  });

  it('never gives out the network or broadcast address, probes on collision, and reports exhaustion', () => {
    const allocator = new VipAllocator({ stateDir, ipv4Cidr: '10.9.8.4/30', ipv6Cidr: 'fd00::/120' });
    const { assigned, exhausted } = allocator.sync(['a.global', 'b.global', 'c.global']);
    expect([...assigned.values()].map((vips) => vips.ipv4).sort()).toEqual(['10.9.8.5', '10.9.8.6']);
    expect(exhausted).toHaveLength(1);
    expect(exhausted[0]).toBeInstanceOf(VipExhaustedError);
    expect(exhausted[0]?.message).toMatch(/no free VIP for [abc]\.global in 10\.9\.8\.4\/30: all 2 usable addresses are held/);
    for (const vips of assigned.values()) {
      const offset = (parseIp(vips.ipv6)?.value ?? 0n) - (parseIp('fd00::')?.value ?? 0n);
      expect(offset >= 1n && offset < 256n - 128n).toBe(true);
    }
    expect(() => new VipAllocator({ stateDir, ipv4Cidr: '10.0.0.1/31' })).toThrow(/prefix length of 30 or less/);
    expect(() => new VipAllocator({ stateDir, ipv4Cidr: 'fd00::/64' })).toThrow(/is not IPv4/);
  });

  it('keeps a released VIP for the grace, never reassigning it, then frees it', () => {
    let now = Date.parse('2026-01-01T00:00:00Z');
    const options = { stateDir, ipv4Cidr: '10.0.0.0/30', ipv6Cidr: 'fd00::/120', releaseGraceMs: 60_000, now: () => now };
    const allocator = new VipAllocator(options);
    const a = allocator.sync(['a.global', 'b.global']).assigned.get('a.global');
    // a goes away; a new name must not get its VIP while a is in its grace (the range has nothing else free)
    now += 1000;
    const during = allocator.sync(['b.global', 'c.global']);
    expect(during.assigned.has('c.global')).toBe(false);
    expect(during.exhausted.map((error) => error.hostname)).toEqual(['c.global']);
    // a restart in the grace remembers the release
    const restarted = new VipAllocator(options);
    expect(restarted.vipsOf('a.global')).toEqual(a);
    // a comes back within the grace: same VIPs
    now += 1000;
    expect(restarted.sync(['a.global', 'b.global']).assigned.get('a.global')).toEqual(a);
    // a goes away for longer than the grace: its VIP may go to another name
    now += 1000;
    restarted.sync(['b.global']);
    now += 60_000;
    const after = restarted.sync(['b.global', 'c.global']);
    expect(after.assigned.get('c.global')?.ipv4).toBe(a?.ipv4);
    expect(restarted.vipsOf('a.global')).toBeUndefined();
  });

  it('renumbers only the names whose saved VIPs left the configured range', () => {
    const first = new VipAllocator({ stateDir });
    const before = first.sync(['a.global', 'b.global']).assigned;
    const moved = new VipAllocator({ stateDir, ipv6Cidr: 'fd01::/64' });
    const after = moved.sync(['a.global', 'b.global']).assigned;
    expect(after.get('a.global')?.ipv4).toBe(before.get('a.global')?.ipv4);
    expect(after.get('a.global')?.ipv6).toMatch(/^fd01::/);
    expect(JSON.parse(readFileSync(join(stateDir, VIP_FILE), 'utf8'))).toMatchObject({ vips: { 'a.global': { ipv6: after.get('a.global')?.ipv6 } } });
  });

  it('refuses a corrupt state file instead of renumbering', () => {
    writeFileSync(join(stateDir, VIP_FILE), '{"version":1,"vips":{"a.global":{"ipv4":1}}}');
    expect(() => new VipAllocator({ stateDir })).toThrow(/is not a valid VIP allocation file/);
    writeFileSync(join(stateDir, VIP_FILE), 'not json');
    expect(() => new VipAllocator({ stateDir })).toThrow(/fix or remove it/);
  });

  it('gives two names found with the same VIP in a hand-edited file different VIPs', () => {
    writeFileSync(join(stateDir, VIP_FILE), JSON.stringify({ version: 1, vips: { 'a.global': { ipv4: '240.240.1.1', ipv6: 'fd6d:6573:6866::1' }, 'b.global': { ipv4: '240.240.1.1', ipv6: 'fd6d:6573:6866::2' } } }));
    const { assigned } = new VipAllocator({ stateDir }).sync(['a.global', 'b.global']);
    expect(assigned.get('a.global')?.ipv4).toBe('240.240.1.1');
    expect(assigned.get('b.global')?.ipv4).not.toBe('240.240.1.1');
  });
});
