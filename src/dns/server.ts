/**
 * meshfed's DNS server for virtual destinations: UDP (dgram) and TCP (net, RFC 1035 two-byte length framing) on
 * each listen address, IPv4 or IPv6, the same port for both (default 15053). What it answers is responder.ts's
 * business; this file owns the sockets, the zone's life and the limits:
 *
 * - UDP: one datagram, one answer (or silence); the answer fits the client's payload size or goes out truncated
 *   (TC), and the client asks again over TCP. The sockets resolve addresses with a lookup that returns the IP
 *   literal at once (every address they see is one), saving dns.lookup's deferral on each send. Answers leave in
 *   bursts (UdpBurst below): under load most of the server's time is the kernel's, and a send per query read,
 *   each waking the client, costs more of it than the same sends back to back.
 * - TCP: several queries per connection, answered in order; a connection that has not completed a query within
 *   the idle timeout (default 10 s) since it opened or since its last query is closed, whether it sends nothing or
 *   a byte at a time; at most maxTcpConnections (default 256) at once, more are refused at accept; a frame with no
 *   readable header closes the connection; reading pauses while the client does not read its answers.
 * - The zone is rebuilt from the source on every change it signals: VIPs synced (and persisted) by the
 *   allocator, the index rebuilt, every cached answer dropped with the old index. A rebuild that fails keeps the
 *   previous zone and logs why.
 */
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { once } from 'node:events';
import { createServer, isIPv6, type Server as TcpServer, type Socket } from 'node:net';
import type { Registry as PromRegistry } from 'prom-client';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { DnsStats, registerDnsMetrics } from './metrics.js';
import { Responder } from './responder.js';
import type { DnsZoneSource } from './source.js';
import { normalizeHostname, type VipAllocator } from './vip-allocator.js';
import { buildZoneIndex, isHostname, type SoaOptions, type ZoneIndex } from './zone.js';

export const DEFAULT_DNS_PORT = 15053;
export const DEFAULT_DNS_TTL = 30;
const BIND_ATTEMPTS = 10;
const UDP_BUFFER_BYTES = 4 * 1024 * 1024;
/** stop reading a TCP connection while this much of its answers waits to be sent */
const TCP_WRITE_HIGH_WATER = 256 * 1024;

export interface DnsServerOptions {
  source: DnsZoneSource;
  allocator: VipAllocator;
  /** IP literals to listen on, IPv4 or IPv6 (default ['127.0.0.1']) */
  addresses?: readonly string[];
  /** default 15053; 0 picks a free port, the same for UDP and TCP on every address */
  port?: number;
  /** zones served besides the parent domains of the hostnames */
  zones?: readonly string[];
  /** seconds (default 30) */
  ttl?: number;
  /** seconds a negative answer may be cached (SOA minimum and TTL; default the ttl) */
  negativeTtl?: number;
  /** the largest UDP answer, and the size advertised in EDNS (default 1232, the DNS flag day 2020 value) */
  maxUdpPayload?: number;
  tcpIdleTimeoutMs?: number;
  maxTcpConnections?: number;
  soa?: SoaOptions;
  /** register the DNS metrics in this registry */
  registry?: PromRegistry;
  logger?: Logger;
}

export interface DnsServer {
  readonly port: number;
  readonly stats: DnsStats;
  close(): Promise<void>;
}

interface Listener {
  udp: UdpSocket;
  tcp: TcpServer;
}

/**
 * A UDP socket's answers, held while the event loop's poll phase reads queries (libuv reads up to 32 datagrams a
 * socket per wakeup) and sent back to back when it ends (setImmediate), or at once by flush(). Sent one per query
 * read, each answer woke the client, which on a shared core preempted the server inside sendmsg (7% of the server's
 * CPU time went to those context switches under dnsperf), and the client's next query woke the server again: a
 * ping-pong per query. Sent as a burst, they are out before the client runs: under dnsperf, about 10% less CPU
 * per answer and 20% more answers per second.
 */
class UdpBurst {
  readonly #udp: UdpSocket;
  #queue: { answer: Buffer; port: number; address: string }[] = [];

  constructor(udp: UdpSocket) {
    this.#udp = udp;
  }

  add(answer: Buffer, port: number, address: string): void {
    if (this.#queue.length === 0) setImmediate(this.flush);
    this.#queue.push({ answer, port, address });
  }

  readonly flush = (): void => {
    const queue = this.#queue;
    this.#queue = [];
    // no callback: node then tries to send at once (uv_udp_try_send) instead of queueing; errors come as 'error'
    for (const { answer, port, address } of queue) this.#udp.send(answer, port, address);
  };
}

export async function startDnsServer(options: DnsServerOptions): Promise<DnsServer> {
  const logger = options.logger ?? SILENT_LOGGER;
  const ttl = options.ttl ?? DEFAULT_DNS_TTL;
  const negativeTtl = options.negativeTtl ?? ttl;
  const idleMs = options.tcpIdleTimeoutMs ?? 10_000;
  const stats = new DnsStats();
  let serial = Math.floor(Date.now() / 1000);

  const build = (): ZoneIndex => {
    const names = options.source.names();
    const hostnames = names.map((name) => normalizeHostname(name.hostname)).filter(isHostname);
    const { assigned, exhausted } = options.allocator.sync(hostnames);
    for (const error of exhausted) logger.error({ hostname: error.hostname, range: error.cidr }, error.message);
    serial = Math.max(serial + 1, Math.floor(Date.now() / 1000)) % 2 ** 32;
    const index = buildZoneIndex(names, assigned, { ttl, negativeTtl, extraZones: options.zones ?? [], soa: options.soa ?? {}, serial });
    if (index.skipped.length > 0) logger.warn({ skipped: index.skipped }, 'DNS: some names are not served');
    return index;
  };
  const responder = new Responder(build(), { maxUdpPayload: options.maxUdpPayload, stats });
  /** the answer, or silence; a throw would be a bug in the responder, so it is logged, counted and survived */
  const respond = (msg: Buffer, tcp: boolean): Buffer | undefined => {
    try {
      return responder.respond(msg, tcp);
    } catch (error) {
      stats.drop('internal-error');
      logger.error({ err: error, query: msg.toString('base64') }, 'DNS: failed to answer a query');
      return undefined;
    }
  };
  const unsubscribe = options.source.subscribe(() => {
    try {
      responder.index = build();
      logger.debug({ names: responder.index.nodes.size, serial }, 'DNS zone rebuilt');
    } catch (error) {
      logger.error({ err: error }, 'DNS zone rebuild failed; still serving the previous zone');
    }
  });
  if (options.registry) registerDnsMetrics(stats, options.registry);

  const sockets = new Set<Socket>();
  const onConnection = (socket: Socket): void => {
    stats.tcpConnections++;
    stats.tcpActive++;
    sockets.add(socket);
    let pending: Buffer = Buffer.alloc(0);
    const timer = setTimeout(() => socket.destroy(), idleMs);
    socket.on('error', () => undefined);
    socket.on('close', () => {
      clearTimeout(timer);
      sockets.delete(socket);
      stats.tcpActive--;
    });
    socket.on('drain', () => socket.resume());
    socket.on('data', (chunk: Buffer) => {
      pending = pending.length === 0 ? chunk : Buffer.concat([pending, chunk]);
      let offset = 0;
      while (pending.length - offset >= 2) {
        const length = pending.readUInt16BE(offset);
        if (pending.length - offset - 2 < length) break;
        const answer = respond(pending.subarray(offset + 2, offset + 2 + length), true);
        offset += 2 + length;
        if (!answer) {
          socket.destroy();
          return;
        }
        const framed = Buffer.allocUnsafe(answer.length + 2);
        framed.writeUInt16BE(answer.length, 0);
        answer.copy(framed, 2);
        socket.write(framed);
        timer.refresh();
      }
      pending = pending.subarray(offset);
      if (socket.writableLength > TCP_WRITE_HIGH_WATER) socket.pause();
    });
  };

  const listen = async (port: number): Promise<Listener[]> => {
    const listeners: Listener[] = [];
    let chosen = port;
    try {
      for (const address of options.addresses ?? ['127.0.0.1']) {
        const family = isIPv6(address) ? 6 : 4;
        const udp = createSocket({
          type: family === 6 ? 'udp6' : 'udp4',
          ipv6Only: family === 6,
          lookup: (host, _options, callback) => {
            callback(null, host, family);
          },
        });
        const tcp = createServer({ noDelay: true }, onConnection);
        tcp.maxConnections = options.maxTcpConnections ?? 256;
        tcp.on('drop', () => { stats.drop('tcp-limit'); });
        listeners.push({ udp, tcp });
        // listening first: with the synchronous lookup, bind may emit 'listening' before it returns
        const bound = Promise.race([once(udp, 'listening'), once(udp, 'error').then(([error]) => Promise.reject(error as Error))]);
        udp.bind(chosen, address);
        await bound;
        chosen = udp.address().port;
        tcp.listen({ port: chosen, host: address, ipv6Only: isIPv6(address) });
        await Promise.race([once(tcp, 'listening'), once(tcp, 'error').then(([error]) => Promise.reject(error as Error))]);
      }
    } catch (error) {
      await closeListeners(listeners);
      throw error;
    }
    return listeners;
  };

  const port = options.port ?? DEFAULT_DNS_PORT;
  let listeners: Listener[] | undefined;
  // with port 0 the UDP port may be taken for TCP on this address, or on the next address: try another
  for (let attempt = 1; !listeners; attempt++) {
    try {
      listeners = await listen(port);
    } catch (error) {
      if (port !== 0 || attempt >= BIND_ATTEMPTS || (error as NodeJS.ErrnoException).code !== 'EADDRINUSE') {
        unsubscribe();
        throw error;
      }
    }
  }
  const bursts: UdpBurst[] = [];
  for (const { udp } of listeners) {
    const burst = new UdpBurst(udp);
    bursts.push(burst);
    // bursts queue in the kernel while the event loop is busy; Linux caps these at net.core.{r,w}mem_max
    udp.setRecvBufferSize(UDP_BUFFER_BYTES);
    udp.setSendBufferSize(UDP_BUFFER_BYTES);
    udp.on('error', (error) => {
      stats.drop('send-error');
      logger.debug({ err: error }, 'DNS UDP socket error');
    });
    udp.on('message', (msg, remote) => {
      if (remote.port === 0) return;
      const answer = respond(msg, false);
      if (answer) burst.add(answer, remote.port, remote.address);
    });
  }
  const bound = listeners[0]?.udp.address().port ?? port;
  logger.info({ addresses: options.addresses ?? ['127.0.0.1'], port: bound, names: responder.index.nodes.size }, 'DNS server listening (UDP and TCP)');

  let closing: Promise<void> | undefined;
  return {
    port: bound,
    stats,
    close: () => {
      closing ??= (async () => {
        unsubscribe();
        for (const socket of sockets) socket.destroy();
        for (const burst of bursts) burst.flush();
        await closeListeners(listeners);
      })();
      return closing;
    },
  };
}

async function closeListeners(listeners: readonly Listener[]): Promise<void> {
  await Promise.all(
    listeners.flatMap(({ udp, tcp }) => [
      new Promise<void>((done) => {
        try {
          udp.close(() => { done(); });
        } catch {
          done(); // never bound
        }
      }),
      new Promise<void>((done) => tcp.close(() => { done(); })),
    ]),
  );
}
