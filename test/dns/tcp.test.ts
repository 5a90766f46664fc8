/** DNS over TCP: pipelining, garbage, idle and slowloris connections, the connection limit, backpressure. */
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { connect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { decode } from 'dns-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { DROP_REASONS } from '../../src/dns/metrics.js';
import { startDnsServer, type DnsServer } from '../../src/dns/server.js';
import { StaticZoneSource } from '../../src/dns/source.js';
import { VipAllocator } from '../../src/dns/vip-allocator.js';
import { query, rcodeOf, tcpQueries } from './helpers.js';

const IDLE_MS = 500;
const LIMIT = 4;

function frame(message: Buffer): Buffer {
  const framed = Buffer.alloc(message.length + 2);
  framed.writeUInt16BE(message.length, 0);
  message.copy(framed, 2);
  return framed;
}

async function open(port: number): Promise<Socket> {
  const socket = connect({ port, host: '127.0.0.1' });
  socket.on('error', () => undefined);
  await once(socket, 'connect');
  return socket;
}

/** ms until the server closes the socket, or Infinity after limitMs */
async function closedWithin(socket: Socket, limitMs: number): Promise<number> {
  const started = Date.now();
  const closed = once(socket, 'close').then(() => Date.now() - started);
  const timeout = new Promise<number>((done) => setTimeout(() => { done(Infinity); }, limitMs));
  const result = await Promise.race([closed, timeout]);
  socket.destroy();
  return result;
}

describe('DNS over TCP', () => {
  let server: DnsServer;
  let dir: string;
  beforeAll(async () => {
    dir = mkdtempSync(join(tmpdir(), 'meshfed-dns-tcp-'));
    const source = new StaticZoneSource([{ hostname: 'reviews.global', ports: [{ name: 'http', number: 9080, protocol: 'HTTP' }] }]);
    server = await startDnsServer({ source, allocator: new VipAllocator({ stateDir: dir }), port: 0, tcpIdleTimeoutMs: IDLE_MS, maxTcpConnections: LIMIT });
  });
  afterAll(async () => {
    await server.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('answers several queries on one connection, in order, FORMERR included', async () => {
    const bad = query('reviews.global', 'A', { id: 3 });
    bad.writeUInt16BE(0, 4); // no question
    const answers = await tcpQueries(server.port, [query('reviews.global', 'A', { id: 1 }), query('_http._tcp.reviews.global', 'SRV', { id: 2 }), bad, query('nope.global', 'AAAA', { id: 4 })]);
    expect(answers.map((answer) => [answer.id, rcodeOf(answer)])).toEqual([
      [1, 'NOERROR'],
      [2, 'NOERROR'],
      [3, 'FORMERR'],
      [4, 'NXDOMAIN'],
    ]);
  });

  it('closes a connection that sends a frame with no readable header', async () => {
    const socket = await open(server.port);
    socket.write(Buffer.from([0, 3, 1, 2, 3]));
    expect(await closedWithin(socket, IDLE_MS / 2)).toBeLessThan(IDLE_MS / 2);
  });

  it('closes idle connections and slowloris connections after the idle timeout', async () => {
    const idle = await open(server.port);
    const slow = await open(server.port);
    // a frame announced as 40 bytes, sent a byte every 50 ms: never complete within the timeout
    slow.write(Buffer.from([0, 40]));
    const drip = setInterval(() => slow.write(Buffer.from([0x41])), 50);
    try {
      const [idleMs, slowMs] = await Promise.all([closedWithin(idle, IDLE_MS * 10), closedWithin(slow, IDLE_MS * 10)]);
      expect(idleMs).toBeGreaterThanOrEqual(IDLE_MS - 50);
      expect(idleMs).toBeLessThan(IDLE_MS * 10);
      expect(slowMs).toBeGreaterThanOrEqual(IDLE_MS - 50);
      expect(slowMs).toBeLessThan(IDLE_MS * 10);
    } finally {
      clearInterval(drip);
    }
  });

  it('refuses connections beyond the limit, and accepts again when they close', async () => {
    const held = await Promise.all(Array.from({ length: LIMIT }, () => open(server.port)));
    await new Promise((done) => setTimeout(done, 50));
    const before = server.stats.dropped[DROP_REASONS.indexOf('tcp-limit')] ?? 0;
    const extra = await open(server.port);
    expect(await closedWithin(extra, IDLE_MS / 2)).toBeLessThan(IDLE_MS / 2);
    expect(server.stats.dropped[DROP_REASONS.indexOf('tcp-limit')]).toBe(before + 1);
    for (const socket of held) socket.destroy();
    await new Promise((done) => setTimeout(done, 50));
    expect((await tcpQueries(server.port, [query('reviews.global', 'A')]))[0]?.answers).toHaveLength(1);
  });

  it('answers every query of a client that writes 20,000 before reading any', async () => {
    const count = 20_000;
    const socket = await open(server.port);
    socket.pause();
    socket.write(Buffer.concat(Array.from({ length: count }, (_, i) => frame(query('reviews.global', 'A', { id: i % 65536 })))));
    await new Promise((done) => setTimeout(done, 200));
    let answers = 0;
    let pending = Buffer.alloc(0);
    const done = new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`only ${answers} of ${count} answers`));
      }, 30_000);
      socket.on('data', (chunk: Buffer) => {
        pending = Buffer.concat([pending, chunk]);
        while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
          const answer = decode(pending.subarray(2, 2 + pending.readUInt16BE(0)));
          if (answer.id !== answers % 65536) reject(new Error(`answer ${answers} has id ${answer.id}`));
          answers++;
          pending = pending.subarray(2 + pending.readUInt16BE(0));
        }
        if (answers === count) {
          clearTimeout(timer);
          resolve();
        }
      });
    });
    socket.resume();
    await done;
    socket.destroy();
    expect(answers).toBe(count);
  });
});
