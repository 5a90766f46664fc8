/**
 * The DNS server over real sockets, asked by Node's resolver (c-ares), by a raw client and by dig when installed.
 */
import { execFile } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { promisify } from 'node:util';
import { join } from 'node:path';
import { Registry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startDnsServer, type DnsServer, type DnsServerOptions } from '../../src/dns/server.js';
import { StaticZoneSource, type DnsName } from '../../src/dns/source.js';
import { VipAllocator } from '../../src/dns/vip-allocator.js';
import { LOOPBACK6_AVAILABLE, hasCommand, query, rcodeOf, tcpQueries, udpExchange, udpQuery } from './helpers.js';

const LONG = `${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(50)}.global`;
const NAMES: DnsName[] = [
  { hostname: 'reviews.global', ports: [{ name: 'http', number: 9080, protocol: 'HTTP' }, { name: 'grpc', number: 9090, protocol: 'GRPC' }, { number: 15000, protocol: 'TCP' }] },
  { hostname: 'ratings.global', ports: [{ name: 'http', number: 9080, protocol: 'HTTP' }] },
  { hostname: 'details.prod.mesh', ports: [] },
  { hostname: LONG, ports: [{ name: 'http', number: 8080, protocol: 'HTTP' }] },
];

const dirs: string[] = [];
function stateDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-dns-'));
  dirs.push(dir);
  return dir;
}
afterAll(() => {
  for (const dir of dirs) rmSync(dir, { recursive: true, force: true });
});

async function start(options: Partial<DnsServerOptions> & { dir?: string } = {}): Promise<{ server: DnsServer; source: StaticZoneSource; allocator: VipAllocator }> {
  const source = options.source instanceof StaticZoneSource ? options.source : new StaticZoneSource(NAMES);
  const allocator = options.allocator ?? new VipAllocator({ stateDir: options.dir ?? stateDir() });
  const server = await startDnsServer({ port: 0, zones: ['extra.example'], ...options, source, allocator });
  return { server, source, allocator };
}

function resolver(port: number, host = '127.0.0.1'): Resolver {
  const r = new Resolver({ timeout: 3000, tries: 1 });
  r.setServers([host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`]);
  return r;
}

describe('DNS server with a real resolver', () => {
  let server: DnsServer;
  let source: StaticZoneSource;
  let allocator: VipAllocator;
  let registry: Registry;
  beforeAll(async () => {
    registry = new Registry();
    ({ server, source, allocator } = await start({ registry, addresses: LOOPBACK6_AVAILABLE ? ['127.0.0.1', '::1'] : ['127.0.0.1'] }));
  });
  afterAll(() => server.close());

  it('answers A and AAAA with the VIPs and the TTL', async () => {
    const vips = allocator.vipsOf('reviews.global');
    const r = resolver(server.port);
    expect(await r.resolve4('reviews.global', { ttl: true })).toEqual([{ address: vips?.ipv4, ttl: 30 }]);
    expect(await r.resolve6('reviews.global')).toEqual([vips?.ipv6]);
    expect(await r.resolve4('REVIEWS.Global')).toEqual([vips?.ipv4]);
    expect(await r.resolve4('details.prod.mesh')).toEqual([allocator.vipsOf('details.prod.mesh')?.ipv4]);
  });

  it('answers SRV for named ports only, with the addresses in the additional section', async () => {
    const r = resolver(server.port);
    expect(await r.resolveSrv('_http._tcp.reviews.global')).toEqual([{ name: 'reviews.global', port: 9080, priority: 0, weight: 0 }]);
    expect(await r.resolveSrv('_grpc._tcp.reviews.global')).toEqual([{ name: 'reviews.global', port: 9090, priority: 0, weight: 0 }]);
    const answer = await udpQuery(server.port, query('_http._tcp.reviews.global', 'SRV', { edns: 1232 }));
    expect(answer.additionals?.filter((record) => record.type !== 'OPT')).toEqual([
      expect.objectContaining({ type: 'A', name: 'reviews.global', data: allocator.vipsOf('reviews.global')?.ipv4 }),
      expect.objectContaining({ type: 'AAAA', name: 'reviews.global', data: allocator.vipsOf('reviews.global')?.ipv6 }),
    ]);
    await expect(r.resolveSrv('_tcp._tcp.reviews.global')).rejects.toMatchObject({ code: 'ENOTFOUND' });
  });

  it('says NXDOMAIN (ENOTFOUND) for unknown names in its zones, with the SOA for negative caching', async () => {
    const r = resolver(server.port);
    await expect(r.resolve4('nope.global')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.resolve4('x.reviews.global')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(r.resolve4('anything.extra.example')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    const answer = await udpQuery(server.port, query('nope.global', 'A'));
    expect(rcodeOf(answer)).toBe('NXDOMAIN');
    expect(answer.flag_aa).toBe(true);
    expect(answer.authorities).toEqual([expect.objectContaining({ type: 'SOA', name: 'global', ttl: 30, data: expect.objectContaining({ minimum: 30 }) as unknown })]);
  });

  it('refuses names outside its zones (EREFUSED) and never forwards', async () => {
    const r = resolver(server.port);
    await expect(r.resolve4('example.com')).rejects.toMatchObject({ code: 'EREFUSED' });
    await expect(r.resolve4('mesh')).rejects.toMatchObject({ code: 'EREFUSED' });
    const answer = await udpQuery(server.port, query('example.com', 'A'));
    expect(rcodeOf(answer)).toBe('REFUSED');
    expect(answer.answers).toEqual([]);
  });

  it('says NODATA for a known name and a type it lacks, and for empty non-terminals', async () => {
    const r = resolver(server.port);
    await expect(r.resolveTxt('reviews.global')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(r.resolve4('_tcp.reviews.global')).rejects.toMatchObject({ code: 'ENODATA' });
    await expect(r.resolve4('_http._tcp.reviews.global')).rejects.toMatchObject({ code: 'ENODATA' });
    const answer = await udpQuery(server.port, query('reviews.global', 'MX'));
    expect(rcodeOf(answer)).toBe('NOERROR');
    expect(answer.questions).toEqual([{ name: 'reviews.global', type: 'MX', class: 'IN' }]);
    expect(answer.authorities?.[0]?.type).toBe('SOA');
    expect((await r.resolveSoa('global')).minttl).toBe(30);
  });

  it.skipIf(!LOOPBACK6_AVAILABLE)('answers on ::1 too', async () => {
    const r = resolver(server.port, '::1');
    expect(await r.resolve6('ratings.global')).toEqual([allocator.vipsOf('ratings.global')?.ipv6]);
    expect((await tcpQueries(server.port, [query('ratings.global', 'A')], '::1'))[0]?.answers?.[0]?.type).toBe('A');
  });

  it('echoes the question with its case, sets AA, copies RD and the ID, echoes EDNS and DO', async () => {
    const message = query('ReViEwS.GLOBAL', 'A', { id: 0xbeef, edns: 4096, dnssecOk: true });
    message[2] = (message[2] ?? 0) | 0x01; // RD
    const answer = await udpQuery(server.port, message);
    expect(answer.id).toBe(0xbeef);
    expect(answer.flag_aa).toBe(true);
    expect(answer.flag_rd).toBe(true);
    expect(answer.flag_ra).toBe(false);
    expect(answer.questions?.[0]?.name).toBe('ReViEwS.GLOBAL');
    expect(answer.answers?.[0]).toMatchObject({ name: 'ReViEwS.GLOBAL', type: 'A', ttl: 30 });
    expect(answer.additionals).toEqual([expect.objectContaining({ type: 'OPT', udpPayloadSize: 1232, flag_do: true })]);
    // the cached answer is not changed by the query that built it
    const plain = await udpQuery(server.port, query('reviews.global', 'A', { id: 7 }));
    expect(plain.id).toBe(7);
    expect(plain.flag_rd).toBe(false);
    expect(plain.questions?.[0]?.name).toBe('reviews.global');
    expect(plain.answers?.[0]?.name).toBe('reviews.global');
    expect(plain.additionals).toEqual([]);
  });

  it('answers only QUERY (NOTIMP), FORMERR for a bad question, BADVERS for EDNS version 1, silence for garbage', async () => {
    const notify = query('reviews.global', 'SOA');
    notify[2] = (notify[2] ?? 0) | (4 << 3);
    expect(rcodeOf(await udpQuery(server.port, notify))).toBe('NOTIMP');
    const twoQuestions = query('reviews.global', 'A');
    twoQuestions.writeUInt16BE(2, 4);
    expect(rcodeOf(await udpQuery(server.port, twoQuestions))).toBe('FORMERR');
    const badVersion = query('reviews.global', 'A', { edns: 1232 });
    badVersion[badVersion.length - 5] = 1; // the OPT record's version byte
    const badvers = await udpExchange(server.port, badVersion);
    expect(badvers?.readUInt16BE(2)).toBe(0x8000); // QR; the header's rcode bits are 0
    expect(badvers?.[badvers.length - 6]).toBe(1); // extended rcode 1 << 4 = 16 = BADVERS
    expect(await udpExchange(server.port, Buffer.from('hello'), '127.0.0.1', 300)).toBeUndefined();
    const response = query('reviews.global', 'A');
    response[2] = (response[2] ?? 0) | 0x80;
    expect(await udpExchange(server.port, response, '127.0.0.1', 300)).toBeUndefined();
  });

  it('sets TC when the answer exceeds the payload size and the resolver gets the full answer over TCP', async () => {
    const srvName = `_http._tcp.${LONG}`;
    const noEdns = await udpQuery(server.port, query(srvName, 'SRV'));
    expect(noEdns.flag_tc).toBe(true);
    expect(noEdns.answers).toEqual([]);
    const [full] = await tcpQueries(server.port, [query(srvName, 'SRV')]);
    expect(full?.flag_tc).toBe(false);
    expect(full?.answers).toEqual([expect.objectContaining({ type: 'SRV', data: expect.objectContaining({ port: 8080, target: LONG }) as unknown })]);
    expect(full?.additionals?.map((record) => record.type)).toEqual(['A', 'AAAA']);
    // a payload size above the server's maximum (1232) is capped to it: still too small for this answer
    expect((await udpQuery(server.port, query(srvName, 'SRV', { edns: 4096 }))).flag_tc).toBe(true);
    // a payload size below 512 is raised to 512
    expect((await udpQuery(server.port, query('_http._tcp.reviews.global', 'SRV', { edns: 100 }))).flag_tc).toBe(false);
    // Node's resolver (c-ares) retries over TCP by itself
    const connections = server.stats.tcpConnections;
    expect(await resolver(server.port).resolveSrv(srvName)).toEqual([{ name: LONG, port: 8080, priority: 0, weight: 0 }]);
    expect(server.stats.tcpConnections).toBeGreaterThan(connections);
  });

  it('serves zone changes at once, cached answers dropped', async () => {
    const r = resolver(server.port);
    expect(await r.resolve4('ratings.global')).toHaveLength(1);
    source.set([...NAMES.filter((name) => name.hostname !== 'ratings.global'), { hostname: 'new.global', ports: [] }]);
    await expect(r.resolve4('ratings.global')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    expect(await r.resolve4('new.global')).toEqual([allocator.vipsOf('new.global')?.ipv4]);
    source.set(NAMES);
    expect(await r.resolve4('ratings.global')).toEqual([allocator.vipsOf('ratings.global')?.ipv4]);
  });

  it('counts queries by type and rcode in Prometheus metrics', async () => {
    const text = await registry.metrics();
    expect(text).toMatch(/meshfed_dns_queries_total\{type="A",rcode="NOERROR"\} \d+/);
    expect(text).toMatch(/meshfed_dns_queries_total\{type="A",rcode="REFUSED"\} \d+/);
    expect(text).toMatch(/meshfed_dns_queries_total\{type="none",rcode="FORMERR"\} \d+/);
    expect(text).toMatch(/meshfed_dns_dropped_total\{reason="malformed"\} [1-9]/);
    expect(text).toMatch(/meshfed_dns_truncated_total [1-9]/);
    expect(text).toMatch(/meshfed_dns_tcp_connections_total [1-9]/);
  });
});

describe('DNS server state', () => {
  it('keeps every VIP across a restart with the same state dir', async () => {
    const dir = stateDir();
    const first = await start({ dir });
    const before = await Promise.all(['reviews.global', 'ratings.global'].map((name) => resolver(first.server.port).resolve4(name)));
    const before6 = await resolver(first.server.port).resolve6('reviews.global');
    await first.server.close();
    // names arrive in another order, with a new one first: nothing moves
    const second = await start({ dir, source: new StaticZoneSource([{ hostname: 'aaa.global', ports: [] }, ...[...NAMES].reverse()]) });
    try {
      const after = await Promise.all(['reviews.global', 'ratings.global'].map((name) => resolver(second.server.port).resolve4(name)));
      expect(after).toEqual(before);
      expect(await resolver(second.server.port).resolve6('reviews.global')).toEqual(before6);
      expect(await resolver(second.server.port).resolve4('aaa.global')).not.toEqual(before[0]);
    } finally {
      await second.server.close();
    }
  });

  it('never hands a VIP to another name while the first exists; SERVFAIL when the range is full', async () => {
    const dir = stateDir();
    const allocator = new VipAllocator({ stateDir: dir, ipv4Cidr: '10.1.1.0/30' });
    const source = new StaticZoneSource([{ hostname: 'one.global', ports: [] }, { hostname: 'two.global', ports: [] }]);
    const { server } = await start({ allocator, source });
    try {
      const r = resolver(server.port);
      const one = await r.resolve4('one.global');
      const two = await r.resolve4('two.global');
      expect(one).not.toEqual(two);
      source.set([...source.names(), { hostname: 'three.global', ports: [] }]);
      await expect(r.resolve4('three.global')).rejects.toMatchObject({ code: 'ESERVFAIL' });
      source.set([{ hostname: 'three.global', ports: [] }, { hostname: 'two.global', ports: [] }]);
      // one is gone but in its grace: three still gets nothing, and one's VIP stays one's
      await expect(r.resolve4('three.global')).rejects.toMatchObject({ code: 'ESERVFAIL' });
      expect(await r.resolve4('two.global')).toEqual(two);
      expect(allocator.vipsOf('one.global')?.ipv4).toBe(one[0]);
    } finally {
      await server.close();
    }
  });

  it('refuses to start on a port in use, and reports it', async () => {
    const { server } = await start();
    try {
      await expect(start({ port: server.port })).rejects.toMatchObject({ code: 'EADDRINUSE' });
    } finally {
      await server.close();
    }
  });
});

describe.skipIf(!hasCommand('dig'))('dig (skipped when dig is not installed: apt-get install dnsutils)', () => {
  let server: DnsServer;
  let allocator: VipAllocator;
  beforeAll(async () => {
    ({ server, allocator } = await start({ maxUdpPayload: 512 }));
  });
  afterAll(() => server.close());

  // asynchronously: the server answers from this very process
  const dig = async (...args: string[]): Promise<string> => (await promisify(execFile)('dig', ['@127.0.0.1', '-p', String(server.port), '+tries=1', '+time=3', ...args], { encoding: 'utf8', timeout: 15_000 })).stdout;

  it('A, AAAA and SRV', async () => {
    expect((await dig('+short', 'reviews.global', 'A')).trim()).toBe(allocator.vipsOf('reviews.global')?.ipv4);
    expect((await dig('+short', 'reviews.global', 'AAAA')).trim()).toBe(allocator.vipsOf('reviews.global')?.ipv6);
    expect((await dig('+short', '_http._tcp.reviews.global', 'SRV')).trim()).toBe('0 0 9080 reviews.global.');
    const full = await dig('+norec', 'ReViews.Global', 'A');
    expect(full).toMatch(/status: NOERROR/);
    expect(full).toMatch(/flags: qr aa;/);
    expect(full).toMatch(/ReViews\.Global\.\s+30\s+IN\s+A\s+240\.240\./);
    expect(full).toMatch(/EDNS: version: 0, flags:; udp: 512/);
  });

  it('NXDOMAIN with the SOA, REFUSED, NODATA', async () => {
    expect(await dig('nope.global', 'A')).toMatch(/status: NXDOMAIN[\s\S]*AUTHORITY SECTION:\nglobal\.\s+30\s+IN\s+SOA\s+dns\.meshfed\.invalid\. hostmaster\.meshfed\.invalid\. \d+ 3600 600 86400 30/);
    expect(await dig('example.com', 'A')).toMatch(/status: REFUSED/);
    expect(await dig('reviews.global', 'TXT')).toMatch(/status: NOERROR.*\n.*ANSWER: 0, AUTHORITY: 1/);
  });

  it('TC over UDP, the full answer over TCP', async () => {
    const srvName = `_http._tcp.${LONG}`;
    expect(await dig('+ignore', '+noedns', srvName, 'SRV')).toMatch(/flags: qr aa tc rd;/);
    const tcp = await dig('+tcp', srvName, 'SRV');
    expect(tcp).toMatch(/ANSWER: 1, AUTHORITY: 0, ADDITIONAL: 3/);
    expect(tcp).toMatch(/\(TCP\)/);
    // dig falls back to TCP by itself
    expect(await dig(srvName, 'SRV')).toMatch(/Truncated, retrying in TCP mode[\s\S]*ANSWER: 1/);
  });
});
