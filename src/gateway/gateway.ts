/**
 * meshfed's east-west gateway: TCP on 15443, the TLS ClientHello read (never terminated: the gateway sees no
 * plaintext), its SNI resolved through the route table (src/gateway/route-table.ts), and the connection spliced,
 * ClientHello bytes first, to a healthy local endpoint of the service it names.
 *
 * What a real proxy does, and how:
 * - balancing: round robin (default) or least connections, over the route's healthy endpoints;
 * - an endpoint that refuses the connect (or does not answer within the connect timeout) is skipped and the next one
 *   tried, up to `connectAttempts` endpoints;
 * - timeouts: the ClientHello must arrive within `helloTimeoutMs`; an established connection idle (no bytes either
 *   way) for `idleTimeoutMs` is closed;
 * - at most `maxConnections` at once; one more is refused ('over-limit');
 * - drain: stop accepting, let the connections in flight finish up to a deadline, then close what is left;
 * - every refusal is counted by reason; a TLS client refused after its ClientHello gets a fatal TLS alert
 *   (unrecognized_name for an SNI that leads nowhere, internal_error for an endpoint that cannot be reached) so it
 *   fails fast and says why; a client that is not TLS is just closed.
 * Logs carry addresses, server names, reasons and byte counts, never payload.
 *
 * Faults, for failover drills (the gateway's clients and meshfed are told nothing):
 * - a killed gateway is `close`d (listener closed, every connection destroyed: clients see resets, then refused
 *   connects) and `reopen`ed on the same address and port, with the same routes, settings and metrics;
 * - a `partition` cuts the network between the gateway and its clients: no byte moves either way. Loopback cannot
 *   drop SYNs without privileges, so the kernel still completes TCP handshakes, but a new connection is held
 *   unread and unanswered (no ClientHello timeout runs: the gateway never saw it); live connections stop being read
 *   on both sides, so nothing is forwarded either way and the kernel buffers fill. Clients see calls time out, as
 *   behind a real partition. Healing resumes everything, and the held connections are served as if their packets
 *   had just arrived. What the gateway decides on its own meanwhile (an endpoint closing, a timeout already
 *   running) still reaches the client at once.
 *
 * How, cheaply (issue 5): one Connection object per client and one set of listener functions shared by every
 * connection (each socket carries its connection), no pipe(): each chunk is written to the other side as it arrives,
 * with backpressure (pause on a full write, resume on 'drain') and each side's FIN passed on. The hello and connect
 * timeouts are deadline queues under one timer each, the idle timeout one sweep for every connection; metrics are
 * plain additions until scraped; nothing is built for a log line that will not be written.
 */
import { connect, createServer, type Server, type Socket } from 'node:net';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { DEFAULT_MAX_HELLO_BYTES, readClientHello } from './client-hello.js';
import type { GatewayMetrics } from './metrics.js';
import type { RouteSource } from './route-sources.js';
import type { GatewayTarget } from './route-table.js';

export type Balance = 'round-robin' | 'least-connections';

export type Outcome =
  | 'forwarded'
  | 'no-sni'
  | 'unknown-sni'
  | 'ambiguous-port'
  | 'no-endpoints'
  | 'not-tls'
  | 'malformed'
  | 'too-large'
  | 'unsupported-version'
  | 'hello-timeout'
  | 'client-closed'
  | 'connect-failed'
  | 'over-limit'
  | 'draining';

export interface GatewayOptions {
  host: string;
  /** 0: any free port */
  port: number;
  routes: RouteSource;
  logger?: Logger;
  metrics?: GatewayMetrics;
  balance?: Balance;
  /** default 10 s */
  helloTimeoutMs?: number;
  /** per endpoint tried; default 5 s */
  connectTimeoutMs?: number;
  /** default 1 h, as Envoy's tcp_proxy; checked by a sweep (every tenth of it, at most every second), so it may act up to two sweeps late */
  idleTimeoutMs?: number;
  /** default 10,000 */
  maxConnections?: number;
  /** endpoints tried before giving up; default 3 */
  connectAttempts?: number;
  /** largest ClientHello accepted; default 16 KiB */
  maxHelloBytes?: number;
}

export interface GatewayHandle {
  host: string;
  port: number;
  /** connections open now (reading a hello, connecting, or spliced) */
  connections(): number;
  draining(): boolean;
  /** stop accepting; resolves when every connection ended, or at the deadline after closing the rest */
  drain(deadlineMs: number): Promise<void>;
  /** closes everything at once */
  close(): Promise<void>;
  /** after `close` (a gateway killed by a drill): listens again on the same address and port, same routes, settings and metrics */
  reopen(): Promise<void>;
  /** a drill's network partition between the gateway and its clients (see the module comment); false heals it */
  partition(partitioned: boolean): void;
  partitioned(): boolean;
}

const ALERT_UNRECOGNIZED_NAME = 112;
const ALERT_INTERNAL_ERROR = 80;
/** A fatal TLS alert record (TLS 1.2 record version, which every TLS client accepts in an alert). */
const alert = (description: number): Buffer => Buffer.from([21, 3, 3, 0, 2, 2, description]);

/** Client bytes held while the endpoint is being connected (a TLS client sends nothing more until it hears back) */
const MAX_PENDING_BYTES = 64 * 1024;

// A connection's phases.
/** reading the ClientHello */
const HELLO = 0;
/** connecting to an endpoint (perhaps the next one) */
const CONNECTING = 1;
/** spliced: bytes flow both ways */
const SPLICED = 2;
/** refused, or closed */
const DONE = 3;

const CONNECTION = Symbol('meshfed.gateway.connection');

/** Both sockets of a connection carry it, so that the listeners below are plain functions shared by every connection. */
interface Tagged extends Socket {
  [CONNECTION]?: Connection;
}

/** One client connection, from accept to close; plain fields, so that a connection costs one object and no closures. */
class Connection {
  phase = HELLO;
  upstream: Tagged | undefined = undefined;
  /** the ClientHello bytes so far: the first chunk, then (rarely) all chunks */
  first: Buffer | undefined = undefined;
  chunks: Buffer[] | undefined = undefined;
  received = 0;
  /** everything received up to and including the ClientHello, written to the endpoint first */
  hello: Buffer | undefined = undefined;
  /** client bytes that arrived while connecting, and whether the client ended meanwhile */
  pending: Buffer[] | undefined = undefined;
  pendingBytes = 0;
  clientEnded = false;
  serverName = '';
  /** the endpoints to try: `targets` from `start` round, at most `limit` of them (or `ordered`, for least-connections) */
  targets: readonly GatewayTarget[] = [];
  ordered: GatewayTarget[] | undefined = undefined;
  start = 0;
  tried = 0;
  limit = 0;
  /** the endpoint spliced to (address|port), for least-connections */
  endpointKey: string | undefined = undefined;
  /** bytes moved since the last idle sweep; when it last saw some */
  moved = true;
  lastMoved = 0;
  /** links of the deadline queue (hello, or connect) this connection waits in */
  deadline = 0;
  queue: DeadlineQueue | undefined = undefined;
  prev: Connection | undefined = undefined;
  next: Connection | undefined = undefined;

  constructor(
    readonly gateway: Gateway,
    readonly client: Tagged,
    readonly started: number,
  ) {}
}

/**
 * Connections that wait for something with the same timeout (a ClientHello; an endpoint's connect), in deadline order
 * (which is arrival order, the timeout being the same for all), under one timer: joining and leaving are O(1) and cost
 * no timer object.
 */
class DeadlineQueue {
  #head: Connection | undefined;
  #tail: Connection | undefined;
  #timer: NodeJS.Timeout | undefined;
  readonly #timeoutMs: number;
  readonly #expire: (c: Connection) => void;
  readonly #fire = (): void => {
    this.#timer = undefined;
    const now = performance.now();
    for (let c = this.#head; c !== undefined && c.deadline <= now; c = this.#head) {
      this.remove(c);
      this.#expire(c);
    }
    this.#arm(now);
  };

  constructor(timeoutMs: number, expire: (c: Connection) => void) {
    this.#timeoutMs = timeoutMs;
    this.#expire = expire;
  }

  add(c: Connection, now: number): void {
    c.deadline = now + this.#timeoutMs;
    c.queue = this;
    c.prev = this.#tail;
    c.next = undefined;
    if (this.#tail === undefined) this.#head = c;
    else this.#tail.next = c;
    this.#tail = c;
    if (this.#timer === undefined) this.#arm(now);
  }

  remove(c: Connection): void {
    if (c.queue !== this) return;
    if (c.prev === undefined) this.#head = c.next;
    else c.prev.next = c.next;
    if (c.next === undefined) this.#tail = c.prev;
    else c.next.prev = c.prev;
    c.queue = undefined;
    c.prev = undefined;
    c.next = undefined;
  }

  close(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
  }

  /** (re)arms the timer for the head's deadline; a head that left early just makes the timer fire early, once */
  #arm(now: number): void {
    if (this.#head === undefined) return;
    this.#timer = setTimeout(this.#fire, Math.max(Math.ceil(this.#head.deadline - now), 1));
    this.#timer.unref();
  }
}

// The listeners, one set for every connection: `this` is the socket, and the socket carries its connection.

function onClientData(this: Tagged, chunk: Buffer): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  if (c.phase === SPLICED) {
    c.moved = true;
    if (c.upstream?.write(chunk) === false) this.pause();
  } else if (c.phase === HELLO) {
    c.gateway.helloData(c, chunk);
  } else if (c.phase === CONNECTING) {
    (c.pending ??= []).push(chunk);
    c.pendingBytes += chunk.length;
    if (c.pendingBytes > MAX_PENDING_BYTES) this.pause();
  }
}

function onClientEnd(this: Tagged): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  if (c.phase === SPLICED) c.upstream?.end();
  else if (c.phase === CONNECTING) c.clientEnded = true;
  else if (c.phase === HELLO) c.gateway.refuse(c, 'client-closed');
}

function onClientDrain(this: Tagged): void {
  const c = this[CONNECTION];
  if (c !== undefined && !c.gateway.partitioned) c.upstream?.resume();
}

function onClientClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c !== undefined) c.gateway.clientClosed(c);
}

function onUpstreamConnect(this: Tagged): void {
  const c = this[CONNECTION];
  if (c?.upstream !== this || c.phase !== CONNECTING) {
    this.destroy();
    return;
  }
  c.gateway.connected(c, this);
}

function onUpstreamData(this: Tagged, chunk: Buffer): void {
  const c = this[CONNECTION];
  if (c === undefined) return;
  c.moved = true;
  if (!c.client.write(chunk)) this.pause();
}

function onUpstreamEnd(this: Tagged): void {
  this[CONNECTION]?.client.end();
}

function onUpstreamDrain(this: Tagged): void {
  const c = this[CONNECTION];
  if (c !== undefined && !c.gateway.partitioned) c.client.resume();
}

function onUpstreamError(this: Tagged, err: Error): void {
  const c = this[CONNECTION];
  if (c?.upstream !== this) return; // an attempt given up already
  if (c.phase === CONNECTING) c.gateway.connectFailed(c, this, err);
  else c.client.destroy();
}

function onUpstreamClose(this: Tagged): void {
  const c = this[CONNECTION];
  if (c?.upstream === this) c.gateway.upstreamClosed(c);
}

function ignore(): void {
  // errors are handled where the socket's 'close' follows
}

function destroyLater(socket: Socket): void {
  socket.destroy();
}

/** Log fields with `from`, the client's address, read only if the line is written (getpeername is a syscall). */
function withPeer(socket: Socket, fields: object): object {
  let peer: string | undefined;
  return Object.defineProperty({ ...fields }, 'from', {
    enumerable: true,
    get: () => (peer ??= `${socket.remoteAddress ?? '?'}:${String(socket.remotePort ?? 0)}`),
  });
}

/** The `i`th endpoint to try for `c`. */
const targetAt = (c: Connection, i: number): GatewayTarget | undefined => (c.ordered ? c.ordered[i] : c.targets[(c.start + i) % c.targets.length]);

/** The endpoint tried last, as address:port, for logs. */
function triedLast(c: Connection): string {
  const target = targetAt(c, c.tried - 1);
  return target === undefined ? '?' : `${target.address}:${String(target.port)}`;
}

const endpointKey = (t: GatewayTarget): string => `${t.address}|${String(t.port)}`;

class Gateway {
  readonly routes: RouteSource;
  readonly logger: Logger;
  readonly metrics: GatewayMetrics | undefined;
  readonly maxConnections: number;
  readonly connectAttempts: number;
  readonly maxHelloBytes: number;
  readonly leastConnections: boolean;
  readonly idleTimeoutMs: number;
  readonly hellos: DeadlineQueue;
  readonly connects: DeadlineQueue;
  /** client connections open now */
  readonly connections = new Set<Connection>();
  /** per cluster: the next round-robin position */
  readonly cursors = new Map<string, number>();
  /** per endpoint (address|port), for least-connections: connections spliced to it now */
  readonly active = new Map<string, number>();
  readonly sweeper: NodeJS.Timeout;
  draining = false;
  drained: (() => void) | undefined = undefined;
  /** a drill's partition: no byte moves between the gateway and its clients */
  partitioned = false;
  /** connections accepted while partitioned, unread until it heals, with their 'close' listener */
  readonly held = new Map<Socket, () => void>();

  constructor(options: GatewayOptions) {
    this.routes = options.routes;
    this.logger = options.logger ?? SILENT_LOGGER;
    this.metrics = options.metrics;
    this.maxConnections = options.maxConnections ?? 10_000;
    this.connectAttempts = options.connectAttempts ?? 3;
    this.maxHelloBytes = options.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES;
    this.leastConnections = options.balance === 'least-connections';
    this.idleTimeoutMs = options.idleTimeoutMs ?? 3_600_000;
    this.hellos = new DeadlineQueue(options.helloTimeoutMs ?? 10_000, (c) => {
      this.refuse(c, 'hello-timeout');
    });
    this.connects = new DeadlineQueue(options.connectTimeoutMs ?? 5_000, (c) => {
      c.upstream?.destroy(new Error('connect timeout'));
    });
    // the idle timeout, for every spliced connection at once: a connection that moved no byte either way through
    // one sweep and then for idleTimeoutMs is closed (so within idleTimeoutMs plus two sweep periods, ≤ 1 s each)
    this.sweeper = setInterval(
      () => {
        this.sweep();
      },
      Math.min(Math.max(Math.floor(this.idleTimeoutMs / 10), 5), 1_000),
    );
    this.sweeper.unref();
  }

  /** whether a line at `level` would be written: a silent logger, or pino below that level, costs nothing */
  logs(level: 'debug' | 'info'): boolean {
    if (this.logger === SILENT_LOGGER) return false;
    const check = (this.logger as Partial<{ isLevelEnabled: (level: string) => boolean }>).isLevelEnabled;
    return typeof check === 'function' ? check.call(this.logger, level) : true;
  }

  accept(socket: Socket): void {
    if (this.partitioned) {
      this.hold(socket);
      return;
    }
    const client = socket as Tagged;
    const now = performance.now();
    const c = new Connection(this, client, now);
    client[CONNECTION] = c;
    this.connections.add(c);
    this.metrics?.opened();
    client.on('close', onClientClose);
    client.on('error', ignore);
    if (this.draining) {
      this.refuse(c, 'draining');
      return;
    }
    if (this.connections.size > this.maxConnections) {
      this.refuse(c, 'over-limit');
      return;
    }
    client.on('data', onClientData);
    client.on('end', onClientEnd);
    this.hellos.add(c, now);
  }

  helloData(c: Connection, chunk: Buffer): void {
    let data: Buffer;
    if (c.first === undefined) {
      c.first = chunk;
      data = chunk;
    } else {
      (c.chunks ??= [c.first]).push(chunk);
      data = Buffer.concat(c.chunks, c.received + chunk.length);
    }
    c.received += chunk.length;
    const read = readClientHello(data, this.maxHelloBytes);
    if (read.kind === 'incomplete') return;
    this.hellos.remove(c);
    c.first = undefined;
    c.chunks = undefined;
    this.metrics?.helloRead((performance.now() - c.started) / 1000);
    if (read.kind === 'rejected') {
      this.refuse(c, read.reason);
      return;
    }
    const resolution = this.routes.current().resolve(read.serverName);
    if (resolution.kind === 'refused') {
      this.refuse(c, resolution.reason, read.serverName, ALERT_UNRECOGNIZED_NAME);
      return;
    }
    const { route } = resolution;
    c.phase = CONNECTING;
    c.hello = data;
    c.serverName = route.serverName;
    c.targets = route.targets;
    c.limit = Math.min(route.targets.length, this.connectAttempts);
    if (this.leastConnections) {
      c.ordered = this.byLeastConnections(route.cluster, route.targets);
    } else {
      const start = this.cursors.get(route.cluster) ?? 0;
      this.cursors.set(route.cluster, (start + 1) % route.targets.length);
      c.start = start;
    }
    this.attempt(c);
  }

  /** least connections first, ties broken by rotation so that equal endpoints still share the load */
  byLeastConnections(cluster: string, targets: readonly GatewayTarget[]): GatewayTarget[] {
    const start = this.cursors.get(cluster) ?? 0;
    this.cursors.set(cluster, start + 1);
    return targets
      .map((t, i) => ({ t, i: (i - start + targets.length * 1_000_000) % targets.length }))
      .sort((a, b) => (this.active.get(endpointKey(a.t)) ?? 0) - (this.active.get(endpointKey(b.t)) ?? 0) || a.i - b.i)
      .map((x) => x.t);
  }

  /** connects to the next endpoint to try, or refuses the client when none is left */
  attempt(c: Connection): void {
    const target = c.tried < c.limit ? targetAt(c, c.tried) : undefined;
    c.tried += 1;
    if (target === undefined) {
      this.refuse(c, 'connect-failed', c.serverName, ALERT_INTERNAL_ERROR);
      return;
    }
    const upstream: Tagged = connect({ host: target.address, port: target.port, noDelay: true, allowHalfOpen: true });
    upstream[CONNECTION] = c;
    c.upstream = upstream;
    upstream.on('connect', onUpstreamConnect);
    upstream.on('error', onUpstreamError);
    upstream.on('close', onUpstreamClose);
    this.connects.add(c, performance.now());
  }

  connectFailed(c: Connection, upstream: Tagged, err: Error): void {
    this.connects.remove(c);
    c.upstream = undefined;
    upstream[CONNECTION] = undefined;
    if (this.logs('info')) {
      this.logger.info(withPeer(c.client, { serverName: c.serverName, to: triedLast(c), err: err.message }), 'gateway: endpoint refused; trying the next');
    }
    this.attempt(c);
  }

  connected(c: Connection, upstream: Tagged): void {
    this.connects.remove(c);
    const { client } = c;
    c.phase = SPLICED;
    upstream.on('data', onUpstreamData);
    upstream.on('end', onUpstreamEnd);
    upstream.on('drain', onUpstreamDrain);
    client.on('drain', onClientDrain);
    if (c.hello !== undefined) upstream.write(c.hello);
    c.hello = undefined;
    if (c.pending !== undefined) {
      for (const chunk of c.pending) upstream.write(chunk);
      c.pending = undefined;
      if (c.pendingBytes > MAX_PENDING_BYTES && !this.partitioned) client.resume();
    }
    if (this.partitioned) upstream.pause();
    if (c.clientEnded) upstream.end();
    if (this.leastConnections) {
      const target = targetAt(c, c.tried - 1);
      if (target !== undefined) {
        c.endpointKey = endpointKey(target);
        this.active.set(c.endpointKey, (this.active.get(c.endpointKey) ?? 0) + 1);
      }
    }
    this.metrics?.connection('forwarded', c.serverName);
    if (this.logs('debug')) {
      this.logger.debug(withPeer(client, { serverName: c.serverName, to: triedLast(c) }), 'gateway: forwarding');
    }
  }

  /** the client is gone: so is its endpoint connection (or the attempt at one) */
  clientClosed(c: Connection): void {
    if (c.queue !== undefined) c.queue.remove(c);
    if (c.phase !== SPLICED) c.phase = DONE;
    c.upstream?.destroy();
    this.forget(c);
  }

  upstreamClosed(c: Connection): void {
    const { client } = c;
    client.destroy();
    if (c.phase !== SPLICED) return;
    c.phase = DONE;
    if (c.endpointKey !== undefined) this.active.set(c.endpointKey, Math.max((this.active.get(c.endpointKey) ?? 1) - 1, 0));
    // the client's own counters: every byte it sent (the ClientHello included) went up, every byte it got came down
    this.metrics?.bytes(client.bytesRead, client.bytesWritten);
    if (this.logs('debug')) {
      this.logger.debug(withPeer(client, { serverName: c.serverName, bytesUp: client.bytesRead, bytesDown: client.bytesWritten }), 'gateway: connection closed');
    }
  }

  forget(c: Connection): void {
    if (!this.connections.delete(c)) return;
    this.metrics?.closed();
    if (this.draining && this.connections.size === 0) this.drained?.();
  }

  refuse(c: Connection, outcome: Outcome, serverName?: string, alertCode?: number): void {
    if (c.queue !== undefined) c.queue.remove(c);
    c.phase = DONE;
    c.first = undefined;
    c.chunks = undefined;
    c.hello = undefined;
    c.pending = undefined;
    this.metrics?.connection(outcome, undefined);
    if (this.logs('info')) this.logger.info(withPeer(c.client, { serverName, outcome }), 'gateway: connection refused');
    const { client } = c;
    if (alertCode !== undefined && client.writable) {
      client.end(alert(alertCode));
      setTimeout(destroyLater, 1_000, client).unref();
    } else {
      client.destroy();
    }
  }

  sweep(): void {
    const now = performance.now();
    for (const c of this.connections) {
      if (c.phase !== SPLICED) continue;
      if (c.moved) {
        c.moved = false;
        c.lastMoved = now;
      } else if (now - c.lastMoved >= this.idleTimeoutMs) {
        c.client.destroy();
        c.upstream?.destroy();
      }
    }
  }

  closeAll(): void {
    for (const c of this.connections) {
      c.client.destroy();
      c.upstream?.destroy();
    }
    for (const socket of this.held.keys()) socket.destroy();
  }

  /** a connection that arrived during a partition: unread, unanswered, until it heals or the client gives up */
  hold(socket: Socket): void {
    socket.pause();
    socket.on('error', ignore);
    const forget = (): void => {
      this.held.delete(socket);
    };
    socket.once('close', forget);
    this.held.set(socket, forget);
  }

  setPartitioned(partitioned: boolean): void {
    if (partitioned === this.partitioned) return;
    this.partitioned = partitioned;
    for (const c of this.connections) {
      if (partitioned) {
        c.client.pause();
        c.upstream?.pause();
      } else {
        c.client.resume();
        c.upstream?.resume();
      }
    }
    if (partitioned) return;
    const held = [...this.held];
    this.held.clear();
    for (const [socket, forget] of held) {
      socket.removeListener('close', forget);
      socket.removeListener('error', ignore);
      if (socket.destroyed) continue;
      this.accept(socket);
      socket.resume();
    }
  }

  stopTimers(): void {
    clearInterval(this.sweeper);
    this.hellos.close();
    this.connects.close();
  }
}

/** A listening gateway: the Gateway and its server. */
async function listen(options: GatewayOptions, port: number): Promise<{ gateway: Gateway; server: Server; port: number }> {
  const gateway = new Gateway(options);
  const { logger } = gateway;
  // half-open on both sides: a client may close its sending side (TLS close_notify, then FIN) and still read the
  // answer; each side's FIN is passed on (the other side's writing ends), and the pair closes when both ended
  const server: Server = createServer({ pauseOnConnect: false, noDelay: true, allowHalfOpen: true }, (socket) => {
    gateway.accept(socket);
  });
  server.on('error', (err) => {
    logger.error({ err }, 'gateway: listener error');
  });
  try {
    await new Promise<void>((resolve, reject) => {
      server.once('error', reject);
      server.listen(port, options.host, () => {
        server.off('error', reject);
        resolve();
      });
    });
  } catch (error) {
    gateway.stopTimers();
    throw error;
  }
  const address = server.address();
  const bound = typeof address === 'object' && address !== null ? address.port : port;
  logger.info({ host: options.host, port: bound }, 'gateway listening');
  return { gateway, server, port: bound };
}

export async function startGateway(options: GatewayOptions): Promise<GatewayHandle> {
  let { gateway, server, port } = await listen(options, options.port);
  const { logger } = gateway;
  let closed = false;

  return {
    host: options.host,
    port,
    connections: () => gateway.connections.size,
    draining: () => gateway.draining,
    drain: (deadlineMs) =>
      new Promise<void>((resolve) => {
        gateway.draining = true;
        server.close();
        if (gateway.connections.size === 0) {
          gateway.stopTimers();
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          logger.warn({ left: gateway.connections.size }, 'gateway: drain deadline reached; closing the connections left');
          gateway.closeAll();
          gateway.stopTimers();
          resolve();
        }, deadlineMs);
        gateway.drained = () => {
          clearTimeout(timer);
          gateway.stopTimers();
          resolve();
        };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        closed = true;
        gateway.draining = true;
        gateway.closeAll();
        gateway.stopTimers();
        server.close(() => {
          resolve();
        });
      }),
    reopen: async () => {
      if (!closed) return;
      ({ gateway, server, port } = await listen(options, port));
      closed = false;
    },
    partition: (partitioned) => {
      if (partitioned === gateway.partitioned) return;
      gateway.setPartitioned(partitioned);
      logger.warn({ host: options.host, port }, partitioned ? 'gateway: partitioned from its clients (drill)' : 'gateway: partition healed (drill)');
    },
    partitioned: () => gateway.partitioned,
  };
}
