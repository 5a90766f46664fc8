/**
 * A simulated Envoy sidecar for the embedded federation: what stands between an application of a simulated cluster
 * and the mesh when the application calls a virtual destination by the VIP meshfed's DNS gave it.
 *
 * In a real mesh the application connects to VIP:PORT and iptables hands the connection to the pod's Envoy. Loopback
 * cannot capture traffic without privileges, so this sidecar is an explicit HTTP forward proxy instead (the one thing
 * that differs from production): the application sends `GET http://VIP:PORT/path` in absolute form (as with
 * `http_proxy`), `Host: HOSTNAME:PORT`. From there it does what the sidecar does:
 *
 * - configuration: a real xDS client of meshfed (sidecar-xds.ts), an Envoy sidecar node of its cluster, network and
 *   locality, given CDS (`outbound|PORT||HOST`, ISTIO_MUTUAL: SNI, SANs, connect timeout) and split-horizon EDS;
 * - VIPs: what an Istio sidecar knows as a ServiceEntry's addresses. meshfed sends sidecars no VIP listeners, so the
 *   sidecar asks meshfed's DNS (real queries, A and AAAA) for the host of every CDS cluster and keeps the answers for
 *   their TTL: it needs nothing but meshfed's xDS and DNS addresses, as a sidecar outside meshfed's process would;
 * - routing: the request's VIP:PORT (or a hostname CDS names) → cluster → endpoints;
 * - endpoint choice, as Envoy: the lowest priority with healthy endpoints (HEALTHY, or UNKNOWN), weighted random by
 *   the endpoint's load_balancing_weight among them; UNHEALTHY and DRAINING endpoints are skipped;
 * - retries: on a connect failure (refused, reset or timed out before the TLS handshake completed, handshake
 *   refused) another endpoint is tried, not one tried before (Envoy's `connect-failure` retry with the
 *   previous_hosts predicate), falling to the next priority when the current one has none left, at most
 *   `connectRetries` times (Istio's default: 2);
 * - upstream: mTLS with the workload's SVID, SNI `outbound_.PORT_._.HOST` from CDS, the server's certificate checked
 *   against the trust bundle and its SPIFFE ID against the cluster's SANs (anyone of the trust domain when CDS names
 *   none), straight to the endpoint (same network) or to the remote network's east-west gateway, which passes the
 *   connection through by SNI. ALPN: CDS's (Istio's) protocols, then `http/1.1`, because the demo workloads end TLS
 *   themselves (no sidecar on the server side to strip Istio's ALPN). Connections are pooled per endpoint and SNI.
 *
 * Answers of its own, each with a plain-text body saying why: 400 for a request not in absolute form or not
 * `http:`; 405 for CONNECT (this proxy does not tunnel); 404 for a VIP:PORT no cluster has (Envoy's "no route");
 * 503 `no healthy upstream` when the cluster has no healthy endpoint, and `upstream connect error or
 * disconnect/reset before headers` when every attempt failed or the connection broke before the answer (Envoy's
 * words); 413 for a request body over 1 MiB (bodies are held so that a retry can send them again).
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, statSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { createServer, type IncomingHttpHeaders, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { Agent, request as httpsRequest, type RequestOptions } from 'node:https';
import { isIP, type AddressInfo, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { TLSSocket, type ConnectionOptions, type PeerCertificate } from 'node:tls';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { HEALTH_STATUS } from '../xds/envoy-protos.js';
import type { ClusterLoadAssignmentObject } from '../xds/resources/endpoints.js';
import type { IdentityFiles, TlsMaterial } from './identities.js';
import { sidecarNodeId, startSidecarXds, type SidecarClusterConfig, type SidecarXdsClient, type SidecarXdsCounts } from './sidecar-xds.js';
import { peerUri } from './trust-demo.js';

export interface SidecarOptions {
  cluster: string;
  network: string;
  locality: { region: string; zone: string; subzone: string };
  /** HOST:PORT of meshfed's xDS server */
  xds: string;
  /** meshfed's DNS server */
  dns: { host: string; port: number };
  /** the workload's SVID, asked for at every new upstream connection (so a renewed one is used) */
  identity: () => TlsMaterial;
  /** the pod it stands in (its node id); default `sim-sidecar` in `default` */
  pod?: string;
  namespace?: string;
  /** where the proxy listens (default 127.0.0.1, a free port) */
  listen?: { host: string; port: number };
  /** retries on connect failure (default 2) */
  connectRetries?: number;
  logger?: Logger;
}

export interface Sidecar {
  readonly host: string;
  readonly port: number;
  /** VIP|PORT → cluster name, as learned from meshfed's DNS */
  vips(): ReadonlyMap<string, string>;
  xdsCounts(): SidecarXdsCounts;
  /** resolves once CDS, EDS and a VIP for `hostname` (when given) are known; rejects after `timeoutMs` saying what is missing */
  ready(hostname?: string, timeoutMs?: number): Promise<void>;
  close(): Promise<void>;
}

/** on every forwarded answer: the address the sidecar connected to (an endpoint, or a remote network's gateway) */
export const UPSTREAM_HOST_HEADER = 'x-meshfed-upstream-host';
/** on every forwarded answer: the SPIFFE ID the upstream's certificate carried (checked against the cluster's SANs) */
export const UPSTREAM_PEER_HEADER = 'x-meshfed-upstream-peer';
const MAX_BODY_BYTES = 1024 * 1024;
const DEFAULT_CONNECT_RETRIES = 2;
/** re-resolve VIPs at least this often, and not more often than the floor, whatever the TTL says */
const VIP_REFRESH_MAX_MS = 30_000;
const VIP_REFRESH_MIN_MS = 1_000;
const DNS_TIMEOUT_MS = 2_000;
/** hop-by-hop headers, never forwarded (RFC 9110 7.6.1, and the proxy's own) */
const HOP_BY_HOP = new Set(['connection', 'proxy-connection', 'keep-alive', 'proxy-authorization', 'proxy-authenticate', 'te', 'trailer', 'transfer-encoding', 'upgrade']);

const vipKey = (address: string, port: number): string => `${address}|${String(port)}`;
/** a vipKey as people write it: `240.240.0.1:9080`, `[fd6d::1]:9080` */
const shownVip = (key: string): string => {
  const [address = '', port = ''] = key.split('|');
  return isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`;
};

/** The SVID from the files the embedded federation writes (and rewrites on renewal), re-read when they change. */
export function identityFromFiles(files: IdentityFiles): () => TlsMaterial {
  let stamp = '';
  let material: TlsMaterial | undefined;
  return () => {
    const now = [files.certificate, files.privateKey, files.ca].map((f) => String(statSync(f).mtimeMs)).join('|');
    if (material === undefined || now !== stamp) {
      material = { cert: readFileSync(files.certificate, 'utf8'), key: readFileSync(files.privateKey, 'utf8'), ca: readFileSync(files.ca, 'utf8') };
      stamp = now;
    }
    return material;
  };
}

interface Candidate {
  address: string;
  port: number;
  weight: number;
  priority: number;
}

/** Healthy endpoints of an assignment (HEALTHY or UNKNOWN), with their priority and weight. */
function healthyEndpoints(cla: ClusterLoadAssignmentObject | undefined): Candidate[] {
  const out: Candidate[] = [];
  for (const group of cla?.endpoints ?? []) {
    for (const lb of group.lb_endpoints) {
      const health = lb.health_status as number | undefined;
      if (health !== undefined && health !== 0 && health !== HEALTH_STATUS.HEALTHY) continue;
      const socket = lb.endpoint.address.socket_address;
      out.push({ address: socket.address, port: socket.port_value ?? 0, weight: lb.load_balancing_weight.value || 1, priority: group.priority ?? 0 });
    }
  }
  return out;
}

/** The next endpoint: weighted random within the lowest priority that has one not yet tried. */
export function pickEndpoint(candidates: readonly Candidate[], tried: ReadonlySet<string>, random: () => number = Math.random): Candidate | undefined {
  const left = candidates.filter((c) => !tried.has(`${c.address}:${String(c.port)}`));
  if (left.length === 0) return undefined;
  const best = Math.min(...left.map((c) => c.priority));
  const tier = left.filter((c) => c.priority === best);
  let roll = random() * tier.reduce((sum, c) => sum + c.weight, 0);
  for (const c of tier) {
    roll -= c.weight;
    if (roll < 0) return c;
  }
  return tier[tier.length - 1];
}

function plain(res: ServerResponse, status: number, body: string, headers: Record<string, string> = {}): void {
  if (res.headersSent) {
    res.destroy();
    return;
  }
  res.writeHead(status, { 'content-type': 'text/plain; charset=utf-8', ...headers });
  res.end(`${body}\n`);
}

function forwardHeaders(headers: IncomingHttpHeaders): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  const connectionTokens = new Set((headers.connection ?? '').toLowerCase().split(',').map((t) => t.trim()));
  for (const [name, value] of Object.entries(headers)) {
    if (value === undefined || HOP_BY_HOP.has(name) || connectionTokens.has(name)) continue;
    out[name] = value;
  }
  return out;
}

/** Why an attempt failed, and whether it failed before a connection was made (Envoy: connect-failure). */
class AttemptFailure extends Error {
  constructor(
    readonly connectFailure: boolean,
    readonly reason: string,
  ) {
    super(reason);
  }
}

export async function startSidecar(options: SidecarOptions): Promise<Sidecar> {
  const log = options.logger ?? SILENT_LOGGER;
  const namespace = options.namespace ?? 'default';
  const pod = options.pod ?? 'sim-sidecar';
  const retries = options.connectRetries ?? DEFAULT_CONNECT_RETRIES;
  const listen = options.listen ?? { host: '127.0.0.1', port: 0 };
  const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
  resolver.setServers([isIP(options.dns.host) === 6 ? `[${options.dns.host}]:${String(options.dns.port)}` : `${options.dns.host}:${String(options.dns.port)}`]);
  const agent = new Agent({ keepAlive: true, timeout: 60_000 });
  let vips = new Map<string, string>();
  /** hostname → its addresses, as last resolved */
  let resolvedHosts = new Map<string, string[]>();
  let vipTimer: NodeJS.Timeout | undefined;
  /** an object, so that a check after an await is not narrowed away */
  const life = { closed: false, resolveAgain: false };
  let resolving: Promise<void> | undefined;
  /** a change arrived while resolving: resolve once more */
  const wantsAgain = (): boolean => life.resolveAgain && !life.closed;

  const xds: SidecarXdsClient = startSidecarXds({
    target: options.xds,
    node: {
      id: sidecarNodeId(listen.host, pod, namespace),
      cluster: options.cluster,
      network: options.network,
      locality: options.locality,
    },
    logger: log,
    onChange: (state) => {
      const hosts = new Set([...state.clusters.values()].map((c) => c.host));
      if ([...hosts].some((h) => !resolvedHosts.has(h)) || [...resolvedHosts.keys()].some((h) => !hosts.has(h))) void refreshVips();
    },
  });

  async function lookup(host: string): Promise<{ addresses: string[]; ttl: number }> {
    const answers = await Promise.allSettled([resolver.resolve4(host, { ttl: true }), resolver.resolve6(host, { ttl: true })]);
    const records = answers.flatMap((a) => (a.status === 'fulfilled' ? a.value : []));
    return { addresses: records.map((r) => r.address), ttl: Math.min(...records.map((r) => r.ttl)) };
  }

  /** Resolves every CDS host through meshfed's DNS (hosts it does not answer have no VIP) and schedules the next round. */
  function refreshVips(): Promise<void> {
    if (resolving) {
      life.resolveAgain = true;
      return resolving;
    }
    resolving = (async () => {
      do {
        life.resolveAgain = false;
        clearTimeout(vipTimer);
        const clusters = [...xds.state().clusters.values()];
        const hosts = [...new Set(clusters.map((c) => c.host))];
        const results = await Promise.all(hosts.map(async (host) => ({ host, ...(await lookup(host)) })));
        const nextHosts = new Map(results.map((r) => [r.host, r.addresses]));
        const next = new Map<string, string>();
        for (const c of clusters) for (const address of nextHosts.get(c.host) ?? []) next.set(vipKey(address, c.port), c.name);
        vips = next;
        resolvedHosts = nextHosts;
        const ttlMs = Math.min(VIP_REFRESH_MAX_MS, ...results.filter((r) => r.addresses.length > 0).map((r) => r.ttl * 1000));
        if (!life.closed) {
          vipTimer = setTimeout(() => void refreshVips(), Math.max(VIP_REFRESH_MIN_MS, ttlMs));
          vipTimer.unref();
        }
      } while (wantsAgain());
    })()
      .catch((error: unknown) => {
        log.warn({ err: { message: (error as Error).message } }, 'sidecar: VIPs could not be resolved; keeping the last ones');
      })
      .finally(() => {
        resolving = undefined;
      });
    return resolving;
  }

  function routeOf(url: URL): SidecarClusterConfig | undefined {
    const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
    const port = url.port === '' ? 80 : Number(url.port);
    const clusters = xds.state().clusters;
    if (isIP(host) !== 0) {
      const name = vips.get(vipKey(host, port));
      return name === undefined ? undefined : clusters.get(name);
    }
    return clusters.get(`outbound|${String(port)}||${host.toLowerCase()}`);
  }

  function checkServer(cluster: SidecarClusterConfig, trustDomain: string): (host: string, cert: PeerCertificate) => Error | undefined {
    return (_host, cert) => {
      const id = peerUri(cert);
      if (cluster.subjectAltNames.length > 0 ? cluster.subjectAltNames.includes(id) : id.startsWith(`spiffe://${trustDomain}/`)) return undefined;
      return new Error(`the server presented ${id}, not ${cluster.subjectAltNames.length > 0 ? cluster.subjectAltNames.join(' or ') : `an identity of ${trustDomain}`}`);
    };
  }

  /** One attempt to one endpoint: resolves when the answer is passed on, rejects with an AttemptFailure before it was. */
  function attempt(req: IncomingMessage, res: ServerResponse, url: URL, body: Buffer, cluster: SidecarClusterConfig, endpoint: Candidate): Promise<void> {
    const tls = options.identity();
    const trustDomain = trustDomainOf(tls);
    return new Promise<void>((resolve, reject) => {
      let connected = false;
      let settled = false;
      const fail = (failure: AttemptFailure): void => {
        if (settled) return;
        settled = true;
        clearTimeout(connectTimer);
        reject(failure);
      };
      const requestOptions: RequestOptions & Pick<ConnectionOptions, 'ALPNProtocols'> = {
        host: endpoint.address,
        port: endpoint.port,
        method: req.method ?? 'GET',
        path: `${url.pathname}${url.search}`,
        headers: { ...forwardHeaders(req.headers), 'content-length': String(body.length) },
        agent,
        servername: cluster.sni,
        ALPNProtocols: [...cluster.alpn, 'http/1.1'],
        key: tls.key,
        cert: tls.cert,
        ca: tls.ca,
        rejectUnauthorized: true,
        checkServerIdentity: checkServer(cluster, trustDomain),
      };
      const upstream = httpsRequest(requestOptions);
      const connectTimer = setTimeout(() => {
        upstream.destroy(Object.assign(new Error(`connect timeout after ${String(cluster.connectTimeoutMs)} ms`), { code: 'ETIMEDOUT' }));
      }, cluster.connectTimeoutMs);
      upstream.on('socket', (socket: Socket) => {
        if (upstream.reusedSocket) {
          clearTimeout(connectTimer);
          connected = true;
          return;
        }
        socket.once('secureConnect', () => {
          clearTimeout(connectTimer);
          connected = true;
        });
      });
      upstream.on('response', (answer) => {
        settled = true;
        clearTimeout(connectTimer);
        const headers = forwardHeaders(answer.headers);
        headers[UPSTREAM_HOST_HEADER] = `${endpoint.address}:${String(endpoint.port)}`;
        if (answer.socket instanceof TLSSocket) headers[UPSTREAM_PEER_HEADER] = peerUri(answer.socket.getPeerCertificate());
        res.writeHead(answer.statusCode ?? 502, headers);
        answer.pipe(res);
        answer.on('error', () => res.destroy());
        answer.on('end', () => {
          resolve();
        });
        res.on('close', () => {
          if (!answer.complete) answer.destroy();
          resolve();
        });
      });
      upstream.on('error', (error: NodeJS.ErrnoException) => {
        const reason = `${error.code ?? 'error'}: ${error.message}`;
        // a pooled connection the endpoint closed meanwhile failed before anything was sent on it: as good as a refused connect
        const staleReuse = upstream.reusedSocket && error.code === 'ECONNRESET';
        fail(new AttemptFailure(!connected || staleReuse, reason));
      });
      res.on('close', () => {
        if (!settled) {
          settled = true;
          clearTimeout(connectTimer);
          upstream.destroy();
          resolve();
        }
      });
      upstream.end(body);
    });
  }

  async function forward(req: IncomingMessage, res: ServerResponse, url: URL, cluster: SidecarClusterConfig): Promise<void> {
    const body = await readBody(req);
    if (body === undefined) {
      plain(res, 413, `request body larger than ${String(MAX_BODY_BYTES)} bytes`);
      return;
    }
    const candidates = healthyEndpoints(xds.state().assignments.get(cluster.name));
    if (candidates.length === 0) {
      plain(res, 503, 'no healthy upstream', { 'x-meshfed-sidecar': `no healthy endpoint of ${cluster.name}` });
      return;
    }
    const tried = new Set<string>();
    const reasons: string[] = [];
    for (let n = 0; n <= retries; n++) {
      const endpoint = pickEndpoint(candidates, tried);
      if (!endpoint || res.destroyed) break;
      tried.add(`${endpoint.address}:${String(endpoint.port)}`);
      try {
        await attempt(req, res, url, body, cluster, endpoint);
        return;
      } catch (error) {
        if (!(error instanceof AttemptFailure)) throw error;
        const failure = error;
        reasons.push(`${endpoint.address}:${String(endpoint.port)} ${failure.reason}`);
        if (!failure.connectFailure) {
          plain(res, 503, `upstream connect error or disconnect/reset before headers. reset reason: connection termination (${failure.reason})`);
          return;
        }
      }
    }
    log.debug({ cluster: cluster.name, reasons }, 'sidecar: no endpoint could be reached');
    plain(res, 503, `upstream connect error or disconnect/reset before headers. reset reason: connection failure (${reasons.join('; ')})`);
  }

  function readBody(req: IncomingMessage): Promise<Buffer | undefined> {
    return new Promise((resolve) => {
      const chunks: Buffer[] = [];
      let size = 0;
      req.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size > MAX_BODY_BYTES) {
          req.removeAllListeners('data');
          req.resume();
          resolve(undefined);
          return;
        }
        chunks.push(chunk);
      });
      req.on('end', () => {
        resolve(size > MAX_BODY_BYTES ? undefined : Buffer.concat(chunks));
      });
      req.on('error', () => {
        resolve(undefined);
      });
    });
  }

  const server: Server = createServer((req, res) => {
    const target = req.url ?? '';
    let url: URL | undefined;
    if (/^[a-z][a-z0-9+.-]*:\/\//i.test(target)) {
      try {
        url = new URL(target);
      } catch {
        url = undefined;
      }
    }
    if (!url) {
      req.resume();
      plain(res, 400, `this is a forward proxy: send the request in absolute form (${req.method ?? 'GET'} http://VIP:PORT/path), as a client with http_proxy does, not ${JSON.stringify(target.slice(0, 200))}`);
      return;
    }
    if (url.protocol !== 'http:') {
      req.resume();
      plain(res, 400, `only http: URLs are proxied (the sidecar adds the mTLS), not ${url.protocol}`);
      return;
    }
    const cluster = routeOf(url);
    if (!cluster) {
      req.resume();
      plain(res, 404, `no route: ${url.host.slice(0, 300)} is not the address of any service or virtual destination this sidecar knows (VIPs: ${[...vips.keys()].map(shownVip).sort().join(', ') || 'none'})`);
      return;
    }
    forward(req, res, url, cluster).catch((error: unknown) => {
      log.error({ err: { message: (error as Error).message } }, 'sidecar: forwarding failed');
      plain(res, 500, 'the sidecar failed to forward the request');
    });
  });
  server.on('connect', (req: IncomingMessage, socket: Duplex) => {
    const body = `CONNECT ${String(req.url).slice(0, 200)}: this sidecar does not tunnel; send plain HTTP in absolute form (GET http://VIP:PORT/path) and it adds the mTLS\n`;
    socket.on('error', () => undefined);
    socket.end(`HTTP/1.1 405 Method Not Allowed\r\ncontent-type: text/plain; charset=utf-8\r\nallow: GET, HEAD, POST, PUT, DELETE, PATCH, OPTIONS\r\ncontent-length: ${String(Buffer.byteLength(body))}\r\nconnection: close\r\n\r\n${body}`);
  });
  server.on('clientError', (_error, socket: Duplex) => {
    socket.on('error', () => undefined);
    if (socket.writable) socket.end('HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\nconnection: close\r\n\r\n');
    else socket.destroy();
  });

  try {
    server.listen(listen.port, listen.host);
    await once(server, 'listening');
  } catch (error) {
    xds.close();
    agent.destroy();
    throw new Error(`sidecar of ${options.cluster} cannot listen on ${listen.host}:${String(listen.port)}: ${(error as Error).message}`, { cause: error });
  }
  const address = server.address() as AddressInfo;

  return {
    host: address.address,
    port: address.port,
    vips: () => vips,
    xdsCounts: () => xds.counts(),
    async ready(hostname, timeoutMs = 30_000) {
      const deadline = Date.now() + timeoutMs;
      const missing = (): string | undefined => {
        if (!xds.ready()) return 'CDS and EDS from meshfed';
        if (hostname === undefined) return undefined;
        const names = new Set([...xds.state().clusters.values()].filter((c) => c.host === hostname).map((c) => c.name));
        if (names.size === 0) return `a cluster for ${hostname} in CDS`;
        if (![...vips.values()].some((name) => names.has(name))) {
          void refreshVips();
          return `a VIP for ${hostname} from meshfed's DNS`;
        }
        return undefined;
      };
      for (let what = missing(); what !== undefined; what = missing()) {
        if (Date.now() > deadline) throw new Error(`sidecar of ${options.cluster}: no ${what} within ${String(timeoutMs)} ms`);
        await new Promise((done) => setTimeout(done, 50));
      }
    },
    async close() {
      life.closed = true;
      clearTimeout(vipTimer);
      xds.close();
      server.closeAllConnections();
      await new Promise<void>((done) => server.close(() => { done(); }));
      agent.destroy();
    },
  };
}

const trustDomains = new WeakMap<TlsMaterial, string>();

/** The trust domain of the SVID's SPIFFE ID (its leaf certificate's URI SAN). */
function trustDomainOf(tls: TlsMaterial): string {
  let domain = trustDomains.get(tls);
  if (domain === undefined) {
    domain = /URI:spiffe:\/\/([^/,]+)\//.exec(new X509Certificate(tls.cert).subjectAltName ?? '')?.[1] ?? '';
    trustDomains.set(tls, domain);
  }
  return domain;
}
