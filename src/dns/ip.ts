/**
 * IPv4 and IPv6 addresses as integers (bigint) and back, and CIDR ranges: just what the VIP allocator needs.
 * Parsing is strict (dotted-quad without leading zeros; RFC 4291 text forms without zone ids or embedded IPv4).
 */
import { isIPv4, isIPv6 } from 'node:net';

export type Family = 4 | 6;

export interface Cidr {
  readonly family: Family;
  /** the network address, host bits zero */
  readonly base: bigint;
  readonly prefixLength: number;
  /** how many addresses the range holds */
  readonly size: bigint;
  /** the range as given, normalised: `240.240.0.0/16` */
  readonly text: string;
}

const BITS: Record<Family, number> = { 4: 32, 6: 128 };

export function parseIp(text: string): { family: Family; value: bigint } | undefined {
  if (isIPv4(text)) {
    let value = 0n;
    for (const part of text.split('.')) value = (value << 8n) | BigInt(Number(part));
    return { family: 4, value };
  }
  if (!isIPv6(text) || text.includes('.') || text.includes('%')) return undefined;
  const [head = '', tail] = text.split('::');
  const headGroups = head === '' ? [] : head.split(':');
  const tailGroups = tail === undefined || tail === '' ? [] : tail.split(':');
  const groups = tail === undefined ? headGroups : [...headGroups, ...Array<string>(8 - headGroups.length - tailGroups.length).fill('0'), ...tailGroups];
  let value = 0n;
  for (const group of groups) value = (value << 16n) | BigInt(parseInt(group, 16));
  return { family: 6, value };
}

export function formatIp(family: Family, value: bigint): string {
  if (family === 4) return [24n, 16n, 8n, 0n].map((shift) => String((value >> shift) & 0xffn)).join('.');
  const groups = [112n, 96n, 80n, 64n, 48n, 32n, 16n, 0n].map((shift) => Number((value >> shift) & 0xffffn));
  // RFC 5952: the longest run of two or more zero groups (the first of equal runs) becomes "::"
  let bestStart = -1;
  let bestLength = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLength) {
      bestStart = i;
      bestLength = j - i;
    }
    i = j;
  }
  const hex = (part: number[]): string => part.map((group) => group.toString(16)).join(':');
  if (bestStart < 0) return hex(groups);
  return `${hex(groups.slice(0, bestStart))}::${hex(groups.slice(bestStart + bestLength))}`;
}

/** Parses `ADDRESS/PREFIX`; throws an Error naming what is wrong. */
export function parseCidr(text: string): Cidr {
  const slash = text.indexOf('/');
  const address = slash < 0 ? undefined : parseIp(text.slice(0, slash));
  const prefixText = slash < 0 ? '' : text.slice(slash + 1);
  if (!address || !/^\d{1,3}$/.test(prefixText)) throw new Error(`"${text}" is not a CIDR range (ADDRESS/PREFIX-LENGTH)`);
  const bits = BITS[address.family];
  const prefixLength = Number(prefixText);
  if (prefixLength > bits) throw new Error(`"${text}": an IPv${address.family} prefix length is at most ${bits}`);
  const hostBits = BigInt(bits - prefixLength);
  const base = (address.value >> hostBits) << hostBits;
  return { family: address.family, base, prefixLength, size: 1n << hostBits, text: `${formatIp(address.family, base)}/${prefixLength}` };
}
