/**
 * Hostile input: 100,000 random and mutated datagrams at the UDP server (a seeded PRNG, so a failure can be
 * replayed: MESHFED_FUZZ_SEED), then the server must still answer; and the responder alone under many more.
 */
import { createSocket } from 'node:dgram';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROP_REASONS, DnsStats } from '../../src/dns/metrics.js';
import { Responder } from '../../src/dns/responder.js';
import { startDnsServer, type DnsServer } from '../../src/dns/server.js';
import { StaticZoneSource, type DnsName } from '../../src/dns/source.js';
import { VipAllocator } from '../../src/dns/vip-allocator.js';
import { buildZoneIndex } from '../../src/dns/zone.js';
import { query, udpQuery } from './helpers.js';
import { Prng } from '../prng.js';

const PACKETS = 100_000;
const BATCH = 50;
/** after each batch, wait this long at most for its answers (a lost datagram costs this wait, no more) */
const BATCH_WAIT_MS = 100;
const TIME_LIMIT_MS = 90_000;
const SEED = Number(process.env.MESHFED_FUZZ_SEED ?? 20260601);

const NAMES: DnsName[] = Array.from({ length: 20 }, (_, i) => ({ hostname: `svc-${i}.global`, ports: [{ name: 'http', number: 8000 + i, protocol: 'HTTP' }] }));

const SEEDS = [
  query('svc-1.global', 'A'),
  query('SVC-2.Global', 'AAAA', { edns: 1232 }),
  query('_http._tcp.svc-3.global', 'SRV', { edns: 512, dnssecOk: true }),
  query('nope.global', 'A'),
  query('example.com', 'A', { edns: 4096 }),
  query('global', 'SOA'),
  query('svc-4.global', 'ANY' as 'A'),
  query('svc-5.global', 'TXT', { edns: 1232 }),
];

function generator(seed: number): () => Buffer {
  const prng = new Prng(seed);
  const random = (): number => prng.next();
  const int = (n: number): number => Math.floor(random() * n);
  return () => {
    const kind = random();
    if (kind < 0.3) {
      const bytes = Buffer.alloc(int(600));
      for (let i = 0; i < bytes.length; i++) bytes[i] = int(256);
      return bytes;
    }
    const packet = Buffer.from(SEEDS[int(SEEDS.length)] ?? SEEDS[0] ?? Buffer.alloc(0));
    if (kind < 0.45) {
      // a good header, random everything after it
      const tail = Buffer.alloc(int(300));
      for (let i = 0; i < tail.length; i++) tail[i] = int(256);
      return Buffer.concat([packet.subarray(0, 12), tail]);
    }
    const mutations = 1 + int(4);
    let out = packet;
    for (let m = 0; m < mutations; m++) {
      const what = int(6);
      if (what === 0 && out.length > 0) out[int(out.length)] = (out[int(out.length)] ?? 0) ^ (1 << int(8));
      else if (what === 1 && out.length > 0) out[int(out.length)] = int(256);
      else if (what === 2) out = out.subarray(0, int(out.length + 1));
      else if (what === 3 && out.length >= 12) out.writeUInt16BE(int(4) === 0 ? int(65536) : int(3), 4 + 2 * int(4));
      else if (what === 4) out = Buffer.concat([out, Buffer.from([0xc0, int(256), int(256), int(256)])]);
      else if (what === 5 && out.length > 13) out[12 + int(Math.min(out.length - 12, 30))] = [0, 63, 64, 0xc0, 0xff][int(5)] ?? 0;
    }
    return out;
  };
}

/** what every answer must look like: a response, decodable */
function checkAnswer(answer: Buffer): void {
  expect(answer.length).toBeGreaterThanOrEqual(12);
  expect((answer[2] ?? 0) & 0x80).toBe(0x80);
  decode(answer);
}

const answerable = (packet: Buffer): boolean => packet.length >= 12 && ((packet[2] ?? 0) & 0x80) === 0;

describe('DNS fuzzing', () => {
  let server: DnsServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-dns-fuzz-'));
    server = await startDnsServer({ source: new StaticZoneSource(NAMES), allocator: new VipAllocator({ stateDir: dir }), port: 0 });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it(`survives ${PACKETS.toLocaleString('en-US')} random and mutated datagrams (seed ${SEED}) and still answers`, async () => {
    const next = generator(SEED);
    const client = createSocket('udp4');
    await new Promise<void>((done) => client.bind(0, '127.0.0.1', done));
    let received = 0;
    let malformedAnswers = 0;
    client.on('message', (answer) => {
      received++;
      try {
        checkAnswer(answer);
      } catch {
        malformedAnswers++;
      }
    });
    const deadline = Date.now() + TIME_LIMIT_MS;
    let sent = 0;
    let expected = 0;
    try {
      while (sent < PACKETS && Date.now() < deadline) {
        for (let i = 0; i < BATCH && sent < PACKETS; i++, sent++) {
          const packet = next();
          if (answerable(packet)) expected++;
          client.send(packet, server.port, '127.0.0.1');
        }
        // let the server (this process) answer the batch before sending more: socket buffers are small
        const batchDeadline = Date.now() + BATCH_WAIT_MS;
        while (received < expected && Date.now() < batchDeadline) await new Promise((done) => setImmediate(done));
      }
      const settle = Date.now() + 5000;
      while (received < expected && Date.now() < settle) await new Promise((done) => setTimeout(done, 20));
    } finally {
      client.close();
    }
    console.log(`fuzz: sent ${sent}, ${expected} with a query header, ${received} answered; dropped by reason ${DROP_REASONS.map((reason, i) => `${reason} ${server.stats.dropped[i]}`).join(', ')}`);
    expect(sent).toBe(PACKETS);
    expect(malformedAnswers).toBe(0);
    expect(received).toBeLessThanOrEqual(expected);
    // loopback UDP may lose a little on a busy machine; nearly every query must be answered
    expect(received).toBeGreaterThanOrEqual(Math.floor(expected * 0.95));
    expect(server.stats.dropped[DROP_REASONS.indexOf('internal-error')]).toBe(0);
    const after = await udpQuery(server.port, query('svc-7.global', 'A'));
    expect(after.answers?.[0]?.type).toBe('A');
  });

  it('the responder alone: 300,000 more inputs, always an answer or silence, never a throw', () => {
    const index = buildZoneIndex(NAMES, new Map(NAMES.map((name, i) => [name.hostname, { ipv4: `240.240.0.${i + 1}`, ipv6: `fd00::${i + 1}` }])), {
      ttl: 30,
      negativeTtl: 30,
      extraZones: [],
      soa: {},
      serial: 1,
    });
    const stats = new DnsStats();
    const responder = new Responder(index, { stats });
    const next = generator(SEED + 1);
    let answered = 0;
    for (let i = 0; i < 300_000; i++) {
      const packet = next();
      const answer = responder.respond(packet, i % 2 === 0);
      if (answer) {
        answered++;
        if (i % 10 === 0) checkAnswer(answer);
      } else expect(answerable(packet)).toBe(false);
    }
    expect(answered).toBeGreaterThan(100_000);
  });
});
