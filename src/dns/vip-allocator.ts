/**
 * Stable virtual IPs for DNS names: one IPv4 address from a CIDR range (default 240.240.0.0/16, in the reserved
 * 240/4 block so it never collides with a real network) and one IPv6 address from a ULA prefix (default
 * fd6d:6573:6866::/64, global ID "meshf" in ASCII) per hostname.
 *
 * - Deterministic preference: a name first asks for the address its SHA-256 points at inside the range, and on a
 *   collision probes upward (wrapping) to the next free one, so a fresh state dir gives mostly the same VIPs.
 * - Never given out: the IPv4 network and broadcast addresses; IPv6 interface id 0 (subnet-router anycast) and the
 *   highest 128 (RFC 2526's reserved subnet anycast addresses).
 * - Persisted in STATE_DIR/dns-vips.json (written atomically), so a name keeps its VIPs across restarts.
 * - A name that goes away keeps its VIPs, unused, for the release grace (default 24 h): clients cache answers
 *   and keep connections to the old VIP, and a VD deleted and re-created in that time gets the same VIPs back.
 *   Only after the grace can the addresses go to another name; while the first name exists, never.
 * - If a configured range changes, names whose VIPs fall outside it get new ones from the new range.
 * - A full range is reported by VipExhaustedError (for that name; the others keep theirs).
 */
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { writeFileAtomic } from '../store/atomic.js';
import { formatIp, parseCidr, parseIp, type Cidr, type Family } from './ip.js';

export const DEFAULT_IPV4_CIDR = '240.240.0.0/16';
export const DEFAULT_IPV6_CIDR = 'fd6d:6573:6866::/64';
export const DEFAULT_RELEASE_GRACE_MS = 24 * 60 * 60 * 1000;
export const VIP_FILE = 'dns-vips.json';

export interface Vips {
  readonly ipv4: string;
  readonly ipv6: string;
}

export interface VipAllocatorOptions {
  stateDir: string;
  ipv4Cidr?: string;
  ipv6Cidr?: string;
  releaseGraceMs?: number;
  /** for tests: the clock, in ms since the epoch */
  now?: () => number;
}

export class VipExhaustedError extends Error {
  constructor(
    readonly hostname: string,
    readonly cidr: string,
    held: number,
  ) {
    super(`no free VIP for ${hostname} in ${cidr}: all ${held} usable addresses are held by other names (in use, or released less than the grace ago)`);
    this.name = 'VipExhaustedError';
  }
}

export interface VipSyncResult {
  /** every hostname asked for that has its VIPs */
  readonly assigned: ReadonlyMap<string, Vips>;
  /** hostnames left without VIPs, and why */
  readonly exhausted: readonly VipExhaustedError[];
}

const fileSchema = z.object({
  version: z.literal(1),
  vips: z.record(
    z.string(),
    z.object({
      ipv4: z.string(),
      ipv6: z.string(),
      releasedAt: z.iso.datetime().optional(),
    }),
  ),
});

interface Entry {
  ipv4: bigint;
  ipv6: bigint;
  /** ms since the epoch when the name went away; undefined while it exists */
  releasedAt: number | undefined;
}

/** One range: which offsets are taken, and by which name. */
class Pool {
  readonly #first: bigint;
  readonly #usable: bigint;
  readonly #taken = new Map<bigint, string>();

  constructor(readonly cidr: Cidr) {
    if (cidr.family === 4 && cidr.prefixLength > 30) throw new Error(`VIP range ${cidr.text}: an IPv4 range needs a prefix length of 30 or less`);
    if (cidr.family === 6 && cidr.prefixLength > 120) throw new Error(`VIP range ${cidr.text}: an IPv6 range needs a prefix length of 120 or less`);
    this.#first = 1n;
    this.#usable = cidr.family === 4 ? cidr.size - 2n : cidr.size - 129n;
  }

  /** the address's offset if it is a usable address of this range */
  offsetOf(value: bigint): bigint | undefined {
    const offset = value - this.cidr.base;
    return offset >= this.#first && offset < this.#first + this.#usable ? offset : undefined;
  }

  holder(offset: bigint): string | undefined {
    return this.#taken.get(offset);
  }

  take(offset: bigint, hostname: string): void {
    this.#taken.set(offset, hostname);
  }

  free(offset: bigint): void {
    this.#taken.delete(offset);
  }

  allocate(hostname: string): bigint {
    if (BigInt(this.#taken.size) >= this.#usable) throw new VipExhaustedError(hostname, this.cidr.text, this.#taken.size);
    const digest = createHash('sha256').update(`${this.cidr.family}:${hostname}`).digest();
    const start = (digest.readBigUInt64BE(0) * (1n << 64n) + digest.readBigUInt64BE(8)) % this.#usable;
    // bounded: at most #usable probes, and a free offset exists (checked above)
    for (let i = 0n; i < this.#usable; i++) {
      const offset = this.#first + ((start + i) % this.#usable);
      if (!this.#taken.has(offset)) {
        this.#taken.set(offset, hostname);
        return offset;
      }
    }
    throw new VipExhaustedError(hostname, this.cidr.text, this.#taken.size);
  }
}

export function normalizeHostname(hostname: string): string {
  return hostname.toLowerCase().replace(/\.$/, '');
}

export class VipAllocator {
  readonly path: string;
  readonly #pools: Record<Family, Pool>;
  readonly #entries = new Map<string, Entry>();
  readonly #graceMs: number;
  readonly #now: () => number;
  /** the loaded file was changed (names renumbered into new ranges) and is not saved yet */
  #dirty = false;

  /** Loads the persisted VIPs; throws if the file exists but cannot be read as such (never silently renumbers). */
  constructor(options: VipAllocatorOptions) {
    this.path = join(options.stateDir, VIP_FILE);
    const v4 = parseCidr(options.ipv4Cidr ?? DEFAULT_IPV4_CIDR);
    const v6 = parseCidr(options.ipv6Cidr ?? DEFAULT_IPV6_CIDR);
    if (v4.family !== 4) throw new Error(`VIP range ${v4.text} is not IPv4`);
    if (v6.family !== 6) throw new Error(`VIP range ${v6.text} is not IPv6`);
    this.#pools = { 4: new Pool(v4), 6: new Pool(v6) };
    this.#graceMs = options.releaseGraceMs ?? DEFAULT_RELEASE_GRACE_MS;
    this.#now = options.now ?? Date.now;
    this.#load();
  }

  /** the VIPs a name holds now (also while released and in its grace) */
  vipsOf(hostname: string): Vips | undefined {
    const entry = this.#entries.get(normalizeHostname(hostname));
    return entry && { ipv4: formatIp(4, entry.ipv4), ipv6: formatIp(6, entry.ipv6) };
  }

  /**
   * Makes the allocation match the names that exist now: each keeps (or gets back, within the grace) its VIPs or
   * gets new ones; names no longer present are released; releases older than the grace are forgotten. Persists
   * the result when anything changed.
   */
  sync(hostnames: Iterable<string>): VipSyncResult {
    const now = this.#now();
    const present = new Set<string>();
    for (const hostname of hostnames) present.add(normalizeHostname(hostname));
    let changed = false;
    for (const [hostname, entry] of this.#entries) {
      if (present.has(hostname)) {
        if (entry.releasedAt !== undefined) {
          entry.releasedAt = undefined;
          changed = true;
        }
      } else if (entry.releasedAt === undefined) {
        entry.releasedAt = now;
        changed = true;
      } else if (now - entry.releasedAt >= this.#graceMs) {
        this.#forget(hostname, entry);
        changed = true;
      }
    }
    const assigned = new Map<string, Vips>();
    const exhausted: VipExhaustedError[] = [];
    for (const hostname of present) {
      let entry = this.#entries.get(hostname);
      if (!entry) {
        try {
          entry = this.#allocate(hostname);
        } catch (error) {
          if (!(error instanceof VipExhaustedError)) throw error;
          exhausted.push(error);
          continue;
        }
        changed = true;
      }
      assigned.set(hostname, { ipv4: formatIp(4, entry.ipv4), ipv6: formatIp(6, entry.ipv6) });
    }
    if (changed || this.#dirty) this.#save();
    return { assigned, exhausted };
  }

  #allocate(hostname: string): Entry {
    const ipv4 = this.#pools[4].allocate(hostname);
    let ipv6: bigint;
    try {
      ipv6 = this.#pools[6].allocate(hostname);
    } catch (error) {
      this.#pools[4].free(ipv4);
      throw error;
    }
    const entry = { ipv4: this.#pools[4].cidr.base + ipv4, ipv6: this.#pools[6].cidr.base + ipv6, releasedAt: undefined };
    this.#entries.set(hostname, entry);
    return entry;
  }

  #forget(hostname: string, entry: Entry): void {
    this.#entries.delete(hostname);
    for (const [family, value] of [[4, entry.ipv4] as const, [6, entry.ipv6] as const]) {
      const offset = this.#pools[family].offsetOf(value);
      if (offset !== undefined && this.#pools[family].holder(offset) === hostname) this.#pools[family].free(offset);
    }
  }

  #load(): void {
    if (!existsSync(this.path)) return;
    let parsed: z.infer<typeof fileSchema>;
    try {
      parsed = fileSchema.parse(JSON.parse(readFileSync(this.path, 'utf8')));
    } catch (error) {
      throw new Error(`${this.path} is not a valid VIP allocation file (fix or remove it; removing it renumbers every VIP): ${error instanceof Error ? error.message : String(error)}`, { cause: error });
    }
    const renumber: string[] = [];
    for (const [name, saved] of Object.entries(parsed.vips)) {
      const hostname = normalizeHostname(name);
      const ipv4 = this.#claim(4, saved.ipv4, hostname);
      const ipv6 = this.#claim(6, saved.ipv6, hostname);
      const releasedAt = saved.releasedAt === undefined ? undefined : Date.parse(saved.releasedAt);
      if (ipv4 !== undefined && ipv6 !== undefined) this.#entries.set(hostname, { ipv4, ipv6, releasedAt });
      else {
        for (const [family, value] of [[4, ipv4] as const, [6, ipv6] as const]) {
          const offset = value === undefined ? undefined : this.#pools[family].offsetOf(value);
          if (offset !== undefined) this.#pools[family].free(offset);
        }
        if (releasedAt === undefined) renumber.push(hostname);
      }
    }
    // names whose saved VIPs left the configured ranges (or clashed) get new ones now, before any new name
    this.#dirty = Object.keys(parsed.vips).length !== this.#entries.size;
    for (const hostname of renumber) {
      try {
        this.#allocate(hostname);
      } catch (error) {
        if (!(error instanceof VipExhaustedError)) throw error;
      }
    }
  }

  /** the saved address as a value if it lies in the range and no other name holds it */
  #claim(family: Family, text: string, hostname: string): bigint | undefined {
    const parsed = parseIp(text);
    if (parsed?.family !== family) return undefined;
    const pool = this.#pools[family];
    const offset = pool.offsetOf(parsed.value);
    if (offset === undefined || pool.holder(offset) !== undefined) return undefined;
    pool.take(offset, hostname);
    return parsed.value;
  }

  #save(): void {
    const vips: z.infer<typeof fileSchema>['vips'] = {};
    for (const [hostname, entry] of [...this.#entries].sort(([a], [b]) => a.localeCompare(b))) {
      vips[hostname] = {
        ipv4: formatIp(4, entry.ipv4),
        ipv6: formatIp(6, entry.ipv6),
        ...(entry.releasedAt === undefined ? {} : { releasedAt: new Date(entry.releasedAt).toISOString() }),
      };
    }
    const file: z.infer<typeof fileSchema> = { version: 1, vips };
    writeFileAtomic(this.path, `${JSON.stringify(file, null, 2)}\n`, 0o644);
    this.#dirty = false;
  }
}
