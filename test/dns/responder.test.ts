/**
 * The responder's hot-path structures at a size where they matter: the name table (open addressing, linear probes)
 * with thousands of names, the answer store after it has grown many times, and the UDP server answering bursts.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode, type DecodedPacket } from 'dns-packet';
import { afterAll, describe, expect, it } from 'vitest';
import { DnsStats } from '../../src/dns/metrics.js';
import { Responder } from '../../src/dns/responder.js';
import { startDnsServer } from '../../src/dns/server.js';
import { StaticZoneSource, type DnsName } from '../../src/dns/source.js';
import { VipAllocator } from '../../src/dns/vip-allocator.js';
import { buildZoneIndex, hashWire, type ZoneIndex } from '../../src/dns/zone.js';
import { query, rcodeOf } from './helpers.js';

const COUNT = 3000;
const NAMES: DnsName[] = Array.from({ length: COUNT }, (_, i) => ({
  hostname: i % 3 === 0 ? `api-${i}.prod.mesh` : `svc-${i}.global`,
  ports: [{ name: 'http', number: 8000 + (i % 1000), protocol: 'HTTP' }],
}));
const vipOf = (i: number): { ipv4: string; ipv6: string } => ({ ipv4: `240.240.${(i + 1) >> 8}.${(i + 1) & 0xff}`, ipv6: `fd00::${(i + 1).toString(16)}` });
const data = (records: DecodedPacket['answers']): unknown[] => (records ?? []).map((record) => ('data' in record ? (record.data as unknown) : undefined));

function zone(): ZoneIndex {
  return buildZoneIndex(NAMES, new Map(NAMES.map((name, i) => [name.hostname, vipOf(i)])), { ttl: 30, negativeTtl: 30, extraZones: [], soa: {}, serial: 1 });
}

function ask(responder: Responder, message: Buffer): DecodedPacket {
  const answer = responder.respond(message, false);
  if (!answer) throw new Error('no answer');
  return decode(answer);
}

describe('the responder with thousands of names', () => {
  it('finds every name, answers each right, and answers the same after its answer store has grown', () => {
    const responder = new Responder(zone(), { stats: new DnsStats() });
    const first = new Map<number, Buffer>();
    NAMES.forEach(({ hostname, ports }, i) => {
      const a = ask(responder, query(hostname, 'A', { id: i }));
      expect(rcodeOf(a)).toBe('NOERROR');
      expect(data(a.answers)).toEqual([vipOf(i).ipv4]);
      const aaaa = ask(responder, query(hostname, 'AAAA', { id: i, edns: 1232 }));
      expect(data(aaaa.answers)).toEqual([vipOf(i).ipv6]);
      const srv = ask(responder, query(`_http._tcp.${hostname}`, 'SRV', { id: i }));
      expect(data(srv.answers)).toEqual([{ priority: 0, weight: 0, port: ports[0]?.number, target: hostname }]);
      expect(data(srv.additionals)).toEqual([vipOf(i).ipv4, vipOf(i).ipv6]);
      if (i < 100) first.set(i, responder.respond(query(hostname, 'A', { id: i }), false) ?? Buffer.alloc(0));
    });
    // every answer above was encoded once and stored; the early ones were copied each time the store grew
    for (const [i, bytes] of first) expect(responder.respond(query(NAMES[i]?.hostname ?? '', 'A', { id: i }), false)).toEqual(bytes);
  });

  it('tells apart names that share a prefix, a suffix or a length, and keeps the case of the question', () => {
    const responder = new Responder(zone(), { stats: new DnsStats() });
    expect(rcodeOf(ask(responder, query(`svc-${COUNT + 1}.global`, 'A')))).toBe('NXDOMAIN');
    expect(rcodeOf(ask(responder, query('vc-1.global', 'A')))).toBe('NXDOMAIN');
    expect(rcodeOf(ask(responder, query('svc-2.global', 'A')))).toBe('NOERROR');
    expect(rcodeOf(ask(responder, query('svc-3.global', 'A')))).toBe('NXDOMAIN'); // 3 is api-3.prod.mesh
    expect(rcodeOf(ask(responder, query('svc-1.globa', 'A')))).toBe('REFUSED');
    expect(rcodeOf(ask(responder, query('x.svc-1.global', 'A')))).toBe('NXDOMAIN');
    const nodata = ask(responder, query('_tcp.svc-1.global', 'A'));
    expect([rcodeOf(nodata), nodata.answers, nodata.authorities?.[0]?.type]).toEqual(['NOERROR', [], 'SOA']);
    const mixed = ask(responder, query('API-3.Prod.MESH', 'A'));
    expect([mixed.answers?.map((record) => record.name), data(mixed.answers)]).toEqual([['API-3.Prod.MESH'], [vipOf(3).ipv4]]);
    expect(ask(responder, query('api-3.prod.mesh', 'A')).answers?.[0]?.name).toBe('api-3.prod.mesh');
  });

  it('the name table: each node under its own key, no node under another key of the same hash or length', () => {
    const { table } = zone();
    expect(table.nodes.length).toBeGreaterThan(COUNT * 3);
    table.nodes.forEach((node, number) => {
      const length = node.wire.length - 1;
      expect(table.find(node.wire, length, hashWire(node.wire, length))).toBe(number);
      const other = Buffer.from(node.wire);
      other[length - 1] = (other[length - 1] ?? 0) ^ 0x01;
      expect(table.find(other, length, hashWire(node.wire, length))).toBe(-1);
      expect(table.find(node.wire, length - 1, hashWire(node.wire, length))).toBe(-1);
    });
  });
});

describe('the UDP server under bursts', () => {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-dns-burst-'));
  afterAll(() => {
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers a burst of 500 queries sent at once from one socket, each once, and closes with queries in flight', async () => {
    const server = await startDnsServer({ source: new StaticZoneSource(NAMES.slice(0, 50)), allocator: new VipAllocator({ stateDir: dir }), port: 0 });
    const client = createSocket('udp4');
    const ids = new Map<number, number>();
    const all = new Promise<void>((resolve) => {
      client.on('message', (answer) => {
        const id = answer.readUInt16BE(0);
        ids.set(id, (ids.get(id) ?? 0) + 1);
        if (ids.size === 500) resolve();
      });
    });
    await new Promise<void>((bound) => {
      client.bind(0, '127.0.0.1', bound);
    });
    client.setRecvBufferSize(1024 * 1024);
    for (let id = 0; id < 500; id++) client.send(query(NAMES[id % 50]?.hostname ?? '', id % 2 ? 'A' : 'AAAA', { id }), server.port, '127.0.0.1');
    await all;
    expect([...ids.values()].every((count) => count === 1)).toBe(true);
    // queries in flight when the server closes: answered or not, nothing throws, now or at the next turn of the loop
    for (let id = 0; id < 200; id++) client.send(query(NAMES[id % 50]?.hostname ?? '', 'A', { id }), server.port, '127.0.0.1');
    await server.close();
    await new Promise((turn) => setImmediate(turn));
    client.close();
  });
});
