/**
 * The data the DNS server answers from, rebuilt whole on every change of its source: the names (hostnames, their
 * SRV names, and the empty non-terminals between them and their zone), and the zones with their SOA.
 *
 * A hostname's zone is its parent domain (`global` for `reviews.global`); extra zones can be configured. Names are
 * keyed by their lowercased wire form (length-prefixed labels, without the final zero byte) read as latin1, so the
 * key of a parent domain is a suffix of its child's key, and a name read off the wire needs no decoding to be found.
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
  /** encoded answers by query kind; see responder.ts */
  readonly cache: Map<number, CachedAnswer>;
}

export interface ZoneIndex {
  readonly nodes: ReadonlyMap<string, ZoneNode>;
  /** the same nodes by hashWire of their key: the hot path finds a name without making a string */
  readonly byHash: ReadonlyMap<number, readonly ZoneNode[]>;
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

/** FNV-1a over the first `length` bytes (a key's bytes: the lowercased wire name without its final zero) */
export function hashWire(bytes: Uint8Array, length: number): number {
  let hash = 0x811c9dc5;
  for (let i = 0; i < length; i++) hash = Math.imul(hash ^ (bytes[i] ?? 0), 0x01000193);
  return hash >>> 0;
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
      node = { name, wire, zone, apex: name === zone.name, host: false, vips: undefined, srv: undefined, cache: new Map() };
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
  const byHash = new Map<number, ZoneNode[]>();
  for (const node of nodes.values()) {
    const hash = hashWire(node.wire, node.wire.length - 1);
    const list = byHash.get(hash);
    if (list) list.push(node);
    else byHash.set(hash, [node]);
  }
  return { nodes, byHash, zones, ttl: options.ttl, skipped };
}
