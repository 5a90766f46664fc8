/**
 * The data the DNS server answers from, rebuilt whole on every change of its source: the names (hostnames, their
 * SRV names, and the empty non-terminals between them and their zone), and the zones with their SOA.
 *
 * A hostname's zone is its parent domain (`global` for `reviews.global`); extra zones can be configured. Names are
 * keyed by their lowercased wire form (length-prefixed labels, without the final zero byte) read as latin1, so the
 * key of a parent domain is a suffix of its child's key, and a name read off the wire needs no decoding to be found:
 * the hot path finds its number in a NameTable by bytes and hash, making no string, and copies its answer out of
 * the AnswerCache, where the responder stores each answer the first time it is asked for.
 */
import { encode, type Answer, type SoaAnswer } from 'dns-packet';
import { normalizeHostname, type Vips } from './vip-allocator.js';
import type { DnsName } from './source.js';

export interface SoaOptions {
  /** the primary server named in the SOA (default `dns.meshfed.invalid`) */
  mname?: string;
  /** the responsible mailbox, as a name (default `hostmaster.meshfed.invalid`) */
  rname?: string;
}

export interface ZoneOptions {
  ttl: number;
  negativeTtl: number;
  extraZones: readonly string[];
  soa: SoaOptions;
  serial: number;
}

export interface Zone {
  readonly name: string;
  readonly soa: SoaAnswer;
  /** the SOA as a wire resource record, ready to append to a negative answer */
  readonly soaRecord: Buffer;
}

/** one query kind's answer for one name, encoded once; see responder.ts */
export interface CachedAnswer {
  readonly rcode: number;
  readonly full: Buffer;
  /** header (TC set), question and OPT only: for a client whose payload size the full answer exceeds */
  readonly truncated: Buffer;
  /** offsets in `full`, past the question, of owner names equal to the question's name (patched to its case) */
  readonly ownerOffsets: readonly number[];
}

export interface ZoneNode {
  /** lowercase, without the final dot */
  readonly name: string;
  readonly wire: Buffer;
  readonly zone: Zone;
  readonly apex: boolean;
  /** a hostname: it has (or ought to have) A and AAAA records */
  host: boolean;
  vips: Vips | undefined;
  srv: { port: number; target: ZoneNode } | undefined;
}

/** a node's answer cache slots: 7 query kinds (A, AAAA, SRV, SOA, NS, ANY, any other type) × without and with EDNS */
export const CACHE_SLOTS = 14;

export interface ZoneIndex {
  readonly nodes: ReadonlyMap<string, ZoneNode>;
  /** the same nodes, numbered, for the hot path */
  readonly table: NameTable;
  /** the answers encoded so far, CACHE_SLOTS per node from its number in the table on (see responder.ts) */
  readonly answers: AnswerCache;
  readonly zones: ReadonlyMap<string, Zone>;
  readonly ttl: number;
  /** names of the source that were left out, and why */
  readonly skipped: readonly string[];
}

const LABEL = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;
const PORT_NAME = /^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/;

export function isHostname(name: string): boolean {
  const labels = name.split('.');
  return name.length <= 253 && labels.length >= 2 && labels.every((label) => LABEL.test(label));
}

/** wire form: length-prefixed labels and the final zero byte; names are validated before they get here */
export function toWire(name: string): Buffer {
  const labels = name === '' ? [] : name.split('.');
  const wire = Buffer.alloc(labels.reduce((sum, label) => sum + label.length + 1, 1));
  let offset = 0;
  for (const label of labels) {
    wire[offset] = label.length;
    wire.write(label, offset + 1, 'latin1');
    offset += label.length + 1;
  }
  return wire;
}

export const keyOf = (wire: Buffer): string => wire.toString('latin1', 0, wire.length - 1);

/** FNV-1a's offset basis, as an int32 */
export const HASH_SEED = 0x811c9dc5 | 0;

/** one FNV-1a step: the hash of a key is hashStep applied to HASH_SEED and each of its bytes in turn (an int32) */
export const hashStep = (hash: number, byte: number): number => Math.imul(hash ^ byte, 0x01000193);

/** FNV-1a over the first `length` bytes (a key's bytes: the lowercased wire name without its final zero), an int32 */
export function hashWire(bytes: Uint8Array, length: number): number {
  let hash = HASH_SEED;
  for (let i = 0; i < length; i++) hash = hashStep(hash, bytes[i] ?? 0);
  return hash;
}

/** int32s per NameTable slot: 1 + the node's number (0: an empty slot), its key's hash, start in the keys, length */
const SLOT = 4;

/**
 * The nodes by key, numbered, for the hot path: open addressing (linear probing, at most half full) over one
 * Int32Array, the keys side by side in one buffer, so finding a name read off the wire makes no string and follows
 * no object pointer: a probe reads one slot (its 16 bytes) and the bytes of one key.
 */
export class NameTable {
  readonly #mask: number;
  readonly #slots: Int32Array;
  readonly #keys: Uint8Array;
  /** by number */
  readonly nodes: readonly ZoneNode[];

  constructor(nodes: readonly ZoneNode[]) {
    let size = 16;
    while (size < nodes.length * 2) size *= 2;
    this.#mask = size - 1;
    this.#slots = new Int32Array(size * SLOT);
    this.#keys = new Uint8Array(nodes.reduce((sum, node) => sum + node.wire.length - 1, 0));
    this.nodes = nodes;
    let start = 0;
    nodes.forEach((node, number) => {
      const length = node.wire.length - 1;
      this.#keys.set(node.wire.subarray(0, length), start);
      const hash = hashWire(node.wire, length);
      let slot = hash & this.#mask;
      while (this.#slots[slot * SLOT] !== 0) slot = (slot + 1) & this.#mask;
      this.#slots.set([number + 1, hash, start, length], slot * SLOT);
      start += length;
    });
  }

  /** the number of the node whose key is the first `length` bytes of `key`, given their hashWire; -1 if none */
  find(key: Uint8Array, length: number, hash: number): number {
    const slots = this.#slots;
    const mask = this.#mask;
    for (let slot = hash & mask; ; slot = (slot + 1) & mask) {
      const at = slot * SLOT;
      const entry = slots[at] ?? 0;
      if (entry === 0) return -1;
      if (slots[at + 1] !== hash || slots[at + 3] !== length) continue;
      const keys = this.#keys;
      const start = slots[at + 2] ?? 0;
      let i = 0;
      while (i < length && keys[start + i] === key[i]) i++;
      if (i === length) return entry - 1;
    }
  }
}

/** int32s per answer in AnswerCache: where its full form starts in the bytes, its length, the same two of its truncated form, its rcode */
const META = 5;

/**
 * The answers encoded so far, numbered, by slot (see responder.ts); dropped with their index. The bytes of all of
 * them lie side by side in one buffer, and where each one lies in one Int32Array, so that copying an answer out
 * follows no object pointer (through a Buffer object per answer, those pointers were most of the responder's time:
 * a cache miss each, under load).
 */
export class AnswerCache {
  /** per slot: 1 + the number of its answer, or 0 until first asked for */
  readonly #ids: Int32Array;
  #meta = new Int32Array(META * 64);
  #bytes = new Uint8Array(16 * 1024);
  #used = 0;
  readonly #ownerOffsets: (readonly number[])[] = [];

  constructor(slots: number) {
    this.#ids = new Int32Array(slots);
  }

  /** every answer's bytes; where one lies: start() and length() */
  get bytes(): Uint8Array {
    return this.#bytes;
  }

  /** the number of the slot's answer, or -1 */
  find(slot: number): number {
    return (this.#ids[slot] ?? 0) - 1;
  }

  /** stores the slot's answer; returns its number */
  add(slot: number, answer: CachedAnswer): number {
    const number = this.#ownerOffsets.length;
    this.#ownerOffsets.push(answer.ownerOffsets);
    if ((number + 1) * META > this.#meta.length) this.#meta = grown(this.#meta, (number + 1) * META);
    const fullStart = this.#used;
    const truncatedStart = fullStart + answer.full.length;
    this.#used = truncatedStart + answer.truncated.length;
    if (this.#used > this.#bytes.length) this.#bytes = grown(this.#bytes, this.#used);
    this.#bytes.set(answer.full, fullStart);
    this.#bytes.set(answer.truncated, truncatedStart);
    this.#meta.set([fullStart, answer.full.length, truncatedStart, answer.truncated.length, answer.rcode], number * META);
    this.#ids[slot] = number + 1;
    return number;
  }

  start(answer: number, truncated: boolean): number {
    return this.#meta[answer * META + (truncated ? 2 : 0)] ?? 0;
  }

  length(answer: number, truncated: boolean): number {
    return this.#meta[answer * META + (truncated ? 3 : 1)] ?? 0;
  }

  rcode(answer: number): number {
    return this.#meta[answer * META + 4] ?? 0;
  }

  /** the full form's owner names equal to the question's name, as CachedAnswer.ownerOffsets */
  ownerOffsets(answer: number): readonly number[] {
    return this.#ownerOffsets[answer] ?? [];
  }
}

/** a copy of `array` with room for at least `size` elements (doubling) */
function grown<T extends Int32Array | Uint8Array>(array: T, size: number): T {
  let length = array.length * 2;
  while (length < size) length *= 2;
  const next = array instanceof Int32Array ? new Int32Array(length) : new Uint8Array(length);
  next.set(array);
  return next as T;
}

/** one resource record, encoded without compression as dns-packet does */
export function encodeRecord(record: Answer): Buffer {
  return encode({ type: 'response', answers: [record] }).subarray(12);
}

function makeZone(name: string, options: ZoneOptions): Zone {
  const soa: SoaAnswer = {
    type: 'SOA',
    name,
    class: 'IN',
    // RFC 2308: a negative answer is cached for min(SOA TTL, SOA minimum)
    ttl: options.negativeTtl,
    data: {
      mname: options.soa.mname ?? 'dns.meshfed.invalid',
      rname: options.soa.rname ?? 'hostmaster.meshfed.invalid',
      serial: options.serial,
      refresh: 3600,
      retry: 600,
      expire: 86400,
      minimum: options.negativeTtl,
    },
  };
  return { name, soa, soaRecord: encodeRecord(soa) };
}

export function buildZoneIndex(names: readonly DnsName[], vips: ReadonlyMap<string, Vips>, options: ZoneOptions): ZoneIndex {
  const skipped: string[] = [];
  const zones = new Map<string, Zone>();
  const nodes = new Map<string, ZoneNode>();
  const addZone = (name: string): void => {
    const key = keyOf(toWire(name));
    if (!zones.has(key)) zones.set(key, makeZone(name, options));
  };
  const hosts: { hostname: string; entry: DnsName }[] = [];
  for (const entry of names) {
    const hostname = normalizeHostname(entry.hostname);
    if (!isHostname(hostname)) {
      skipped.push(`${entry.hostname}: not a DNS hostname of two or more labels`);
      continue;
    }
    hosts.push({ hostname, entry });
    addZone(hostname.slice(hostname.indexOf('.') + 1));
  }
  for (const zone of options.extraZones) {
    const name = normalizeHostname(zone);
    if (name === '' || !name.split('.').every((label) => LABEL.test(label))) skipped.push(`zone ${zone}: not a DNS name`);
    else addZone(name);
  }

  /** the longest zone that holds the name (the name's own key is a suffix of itself) */
  const zoneOf = (key: string): Zone | undefined => {
    for (let i = 0; i < key.length; i += key.charCodeAt(i) + 1) {
      const zone = zones.get(key.slice(i));
      if (zone) return zone;
    }
    return undefined;
  };
  /** the node for a name, with the empty non-terminals between it and its zone's apex */
  const nodeFor = (name: string, zone: Zone): ZoneNode => {
    const wire = toWire(name);
    const key = keyOf(wire);
    let node = nodes.get(key);
    if (!node) {
      node = { name, wire, zone, apex: name === zone.name, host: false, vips: undefined, srv: undefined };
      nodes.set(key, node);
      if (!node.apex) nodeFor(name.slice(name.indexOf('.') + 1), zone);
    }
    return node;
  };
  for (const zone of zones.values()) nodeFor(zone.name, zone);

  for (const { hostname, entry } of hosts) {
    const zone = zoneOf(keyOf(toWire(hostname)));
    if (!zone) continue; // cannot happen: the hostname's parent is a zone
    const host = nodeFor(hostname, zone);
    if (host.host) {
      skipped.push(`${hostname}: given more than once (the first one is served)`);
      continue;
    }
    host.host = true;
    host.vips = vips.get(hostname);
    for (const port of entry.ports) {
      if (port.name === undefined) continue;
      const portName = port.name.toLowerCase();
      const srvName = `_${portName}._${port.protocol.toUpperCase() === 'UDP' ? 'udp' : 'tcp'}.${hostname}`;
      if (!PORT_NAME.test(portName) || srvName.length > 253 || !Number.isInteger(port.number) || port.number < 1 || port.number > 65535) {
        skipped.push(`${hostname}: port ${port.name} (${port.number}) gives no SRV record: bad port name or number, or the name is too long`);
        continue;
      }
      const srv = nodeFor(srvName, zone);
      if (srv.srv) skipped.push(`${hostname}: port name ${port.name} used twice (the first one is served)`);
      else srv.srv = { port: port.number, target: host };
    }
  }
  return { nodes, table: new NameTable([...nodes.values()]), answers: new AnswerCache(nodes.size * CACHE_SLOTS), zones, ttl: options.ttl, skipped };
}
