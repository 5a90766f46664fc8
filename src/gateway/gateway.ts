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
  /** default 1 h, as Envoy's tcp_proxy */
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
}

/** Adds `from` (the client's address) to a log object, read only if the line is written (getpeername is a syscall). */
type LogWithPeer = (fields: object) => object;

function lazyPeer(socket: Socket): LogWithPeer {
  let peer: string | undefined;
  return (fields) =>
    Object.defineProperty({ ...fields }, 'from', {
      enumerable: true,
      get: () => (peer ??= `${socket.remoteAddress ?? '?'}:${String(socket.remotePort ?? 0)}`),
    });
}

const ALERT_UNRECOGNIZED_NAME = 112;
const ALERT_INTERNAL_ERROR = 80;
/** A fatal TLS alert record (TLS 1.2 record version, which every TLS client accepts in an alert). */
const alert = (description: number): Buffer => Buffer.from([21, 3, 3, 0, 2, 2, description]);

export async function startGateway(options: GatewayOptions): Promise<GatewayHandle> {
  const logger = options.logger ?? SILENT_LOGGER;
  const { metrics } = options;
  const helloTimeoutMs = options.helloTimeoutMs ?? 10_000;
  const connectTimeoutMs = options.connectTimeoutMs ?? 5_000;
  const idleTimeoutMs = options.idleTimeoutMs ?? 3_600_000;
  const maxConnections = options.maxConnections ?? 10_000;
  const connectAttempts = options.connectAttempts ?? 3;
  const maxHelloBytes = options.maxHelloBytes ?? DEFAULT_MAX_HELLO_BYTES;
  const balance = options.balance ?? 'round-robin';
  /** client connections open now */
  const clients = new Set<Socket>();
  /** connections to endpoints open now */
  const upstreams = new Set<Socket>();
  /** per cluster: the next round-robin position */
  const cursors = new Map<string, number>();
  /** per endpoint (address|port): connections spliced to it now */
  const active = new Map<string, number>();
  let draining = false;
  let drained: (() => void) | undefined;

  const key = (t: GatewayTarget): string => `${t.address}|${String(t.port)}`;

  /** The endpoints to try, in order, for a connection to `cluster`. */
  function order(cluster: string, targets: readonly GatewayTarget[]): GatewayTarget[] {
    if (balance === 'least-connections') {
      const start = cursors.get(cluster) ?? 0;
      cursors.set(cluster, start + 1);
      // ties broken by rotation, so equal endpoints still share the load
      return targets
        .map((t, i) => ({ t, i: (i - start + targets.length * 1_000_000) % targets.length }))
        .sort((a, b) => (active.get(key(a.t)) ?? 0) - (active.get(key(b.t)) ?? 0) || a.i - b.i)
        .map((x) => x.t);
    }
    const start = cursors.get(cluster) ?? 0;
    cursors.set(cluster, (start + 1) % targets.length);
    return targets.map((_, i) => targets[(start + i) % targets.length]).filter((t): t is GatewayTarget => t !== undefined);
  }

  function forget(client: Socket): void {
    if (!clients.delete(client)) return;
    metrics?.setActive(clients.size);
    if (draining && clients.size === 0) drained?.();
  }

  function handle(client: Socket): void {
    const started = performance.now();
    const from = lazyPeer(client);
    clients.add(client);
    metrics?.setActive(clients.size);
    client.on('close', () => {
      forget(client);
    });
    client.on('error', () => undefined);
    let settled = false;
    const refuse = (outcome: Outcome, serverName?: string, alertCode?: number): void => {
      settled = true;
      metrics?.connection(outcome, undefined);
      logger.info(from({ serverName, outcome }), 'gateway: connection refused');
      if (alertCode !== undefined && client.writable) {
        client.end(alert(alertCode));
        setTimeout(() => client.destroy(), 1_000).unref();
      } else {
        client.destroy();
      }
    };
    if (draining) {
      refuse('draining');
      return;
    }
    if (clients.size > maxConnections) {
      refuse('over-limit');
      return;
    }
    const chunks: Buffer[] = [];
    let received = 0;
    const helloTimer = setTimeout(() => {
      if (!settled) refuse('hello-timeout');
    }, helloTimeoutMs);
    const onData = (chunk: Buffer): void => {
      chunks.push(chunk);
      received += chunk.length;
      const data = chunks.length === 1 ? chunk : Buffer.concat(chunks, received);
      const read = readClientHello(data, maxHelloBytes);
      if (read.kind === 'incomplete') return;
      clearTimeout(helloTimer);
      client.off('data', onData);
      client.pause();
      metrics?.helloRead((performance.now() - started) / 1000);
      if (read.kind === 'rejected') {
        refuse(read.reason);
        return;
      }
      const resolution = options.routes.current().resolve(read.serverName);
      if (resolution.kind === 'refused') {
        refuse(resolution.reason, read.serverName, ALERT_UNRECOGNIZED_NAME);
        return;
      }
      settled = true;
      splice(client, data, resolution.route.serverName, order(resolution.route.cluster, resolution.route.targets).slice(0, connectAttempts), from, refuse);
    };
    client.on('data', onData);
    client.once('end', () => {
      if (settled) return;
      clearTimeout(helloTimer);
      refuse('client-closed');
    });
  }

  function splice(client: Socket, hello: Buffer, serverName: string, targets: GatewayTarget[], from: LogWithPeer, refuse: (o: Outcome, sni?: string, alertCode?: number) => void): void {
    const attempt = (i: number): void => {
      if (client.destroyed) return;
      const target = targets[i];
      if (target === undefined) {
        refuse('connect-failed', serverName, ALERT_INTERNAL_ERROR);
        return;
      }
      const to = `${target.address}:${String(target.port)}`;
      const upstream = connect({ host: target.address, port: target.port, noDelay: true, allowHalfOpen: true });
      upstreams.add(upstream);
      const timer = setTimeout(() => {
        upstream.destroy(new Error('connect timeout'));
      }, connectTimeoutMs);
      const onConnectError = (err: Error): void => {
        clearTimeout(timer);
        upstreams.delete(upstream);
        logger.info(from({ serverName, to, err: err.message }), 'gateway: endpoint refused; trying the next');
        attempt(i + 1);
      };
      upstream.once('error', onConnectError);
      upstream.once('connect', () => {
        clearTimeout(timer);
        upstream.off('error', onConnectError);
        if (client.destroyed) {
          upstream.destroy();
          return;
        }
        const k = key(target);
        active.set(k, (active.get(k) ?? 0) + 1);
        metrics?.connection('forwarded', serverName);
        logger.debug(from({ serverName, to }), 'gateway: forwarding');
        upstream.write(hello);
        client.pipe(upstream);
        upstream.pipe(client);
        client.resume();
        for (const socket of [client, upstream]) {
          socket.setTimeout(idleTimeoutMs, () => {
            client.destroy();
            upstream.destroy();
          });
        }
        upstream.on('error', () => client.destroy());
        client.on('error', () => upstream.destroy());
        client.on('close', () => upstream.destroy());
        upstream.on('close', () => {
          client.destroy();
          upstreams.delete(upstream);
          active.set(k, Math.max((active.get(k) ?? 1) - 1, 0));
          // the client's own counters: every byte it sent (the ClientHello included) went up, every byte it got came down
          metrics?.bytes(client.bytesRead, client.bytesWritten);
          logger.debug(from({ serverName, bytesUp: client.bytesRead, bytesDown: client.bytesWritten }), 'gateway: connection closed');
        });
      });
    };
    attempt(0);
  }

  // half-open on both sides: a client may close its sending side (TLS close_notify, then FIN) and still read the
  // answer; each side's FIN is passed on (pipe ends the other side's writing), and the pair closes when both ended
  const server: Server = createServer({ pauseOnConnect: false, noDelay: true, allowHalfOpen: true }, handle);
  server.on('error', (err) => {
    logger.error({ err }, 'gateway: listener error');
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port, options.host, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  const port = typeof address === 'object' && address !== null ? address.port : options.port;
  logger.info({ host: options.host, port }, 'gateway listening');

  const closeAll = (): void => {
    for (const socket of [...clients, ...upstreams]) socket.destroy();
  };

  return {
    host: options.host,
    port,
    connections: () => clients.size,
    draining: () => draining,
    drain: (deadlineMs) =>
      new Promise<void>((resolve) => {
        draining = true;
        server.close();
        if (clients.size === 0) {
          resolve();
          return;
        }
        const timer = setTimeout(() => {
          logger.warn({ left: clients.size }, 'gateway: drain deadline reached; closing the connections left');
          closeAll();
          resolve();
        }, deadlineMs);
        drained = () => {
          clearTimeout(timer);
          resolve();
        };
      }),
    close: () =>
      new Promise<void>((resolve) => {
        draining = true;
        closeAll();
        server.close(() => {
          resolve();
        });
      }),
  };
}
