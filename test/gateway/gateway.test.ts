/**
 * meshfed's east-west gateway (src/gateway) with real TLS on loopback. Two clusters of one trust domain: a workload
 * of cluster-a (an SVID from cluster-a's intermediate) reaches `reviews` in cluster-b through cluster-b's gateway,
 * which reads only the ClientHello; both ends verify each other against the shared root and see each other's
 * SPIFFE ID. The gateway's routes come from meshfed's xDS provider, in process and over a real ADS stream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { connect as netConnect, createServer as netCreateServer, type Server as NetServer, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, createServer as tlsCreateServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { Registry as PromRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayHandle, type GatewayOptions } from '../../src/gateway/gateway.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';
import { adsRouteSource, gatewayNode, providerRouteSource, type RouteSource } from '../../src/gateway/route-sources.js';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import type { EndpointHealth } from '../../src/model/service.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { peerUri, workloadIdentity, type WorkloadIdentity } from '../../src/sim/trust-demo.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { Prng } from '../prng.js';
import { clientHello } from './hello-bytes.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';

const SNI = 'outbound_.9080_._.reviews.default.svc.cluster.local';
const HOST = 'reviews.default.svc.cluster.local';
const WAIT_MS = 10_000;

let dir: string;
let authority: TrustAuthority;
let clientIdentity: WorkloadIdentity;
let serverIdentity: WorkloadIdentity;
const backends: { server: TlsServer; port: number; host: string; accepted: number }[] = [];
let deadPort: number;
let registry: Registry;
let sourceB: StaticSource;
let provider: FederationXds;
let ads: AdsServerHandle;
const cleanups: (() => Promise<void> | void)[] = [];

/** A cluster-b workload: mTLS required, answers `PEER <client SPIFFE ID> FROM <its address>` then echoes. */
async function startBackend(host: string): Promise<void> {
  const entry = { server: tlsCreateServer({ ...serverIdentity.tls, requestCert: true, rejectUnauthorized: true }), port: 0, host, accepted: 0 };
  entry.server.on('secureConnection', (socket: TLSSocket) => {
    entry.accepted++;
    socket.write(`PEER ${peerUri(socket.getPeerCertificate())} FROM ${host}\n`);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => entry.server.listen(0, host, resolve));
  const address = entry.server.address();
  entry.port = typeof address === 'object' && address !== null ? address.port : 0;
  backends.push(entry);
}

function reviews(health: EndpointHealth = 'ready', extraDead = false) {
  const endpoints = backends.map((b) => ({ address: b.host, ports: [{ name: 'tls', port: b.port }], serviceAccount: 'reviews', health }));
  if (extraDead) endpoints.unshift({ address: '127.0.6.9', ports: [{ name: 'tls', port: deadPort }], serviceAccount: 'reviews', health: 'ready' });
  return staticServiceSchema.parse({ namespace: 'default', name: 'reviews', ports: [{ name: 'tls', port: 9080 }], endpoints });
}

async function setReviews(health: EndpointHealth, extraDead = false): Promise<void> {
  sourceB.update([reviews(health, extraDead)]);
  registry.flush();
  provider.flush();
  await new Promise((done) => setTimeout(done, 20));
}

async function gateway(routes: RouteSource, options: Partial<GatewayOptions> = {}): Promise<{ gw: GatewayHandle; metrics: PromRegistry }> {
  const metrics = new PromRegistry();
  const gw = await startGateway({ host: '127.0.6.254', port: 0, routes, metrics: new GatewayMetrics(metrics), helloTimeoutMs: 300, ...options });
  cleanups.push(() => gw.close());
  return { gw, metrics };
}

/** An mTLS client of cluster-a through the gateway; resolves with the first line the backend sent, and the socket. */
async function through(gw: GatewayHandle, servername: string | undefined): Promise<{ line: string; socket: TLSSocket; serverId: string }> {
  const socket = tlsConnect({
    ...clientIdentity.tls,
    host: gw.host,
    port: gw.port,
    ...(servername !== undefined ? { servername } : {}),
    // the peer is checked by its SPIFFE ID, not a DNS name
    checkServerIdentity: (_host, cert) => (peerUri(cert) === serverIdentity.spiffeId ? undefined : new Error(`unexpected peer ${peerUri(cert)}`)),
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no answer through the gateway')); }, WAIT_MS);
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    let buffered = '';
    socket.on('data', (d: Buffer) => {
      buffered += d.toString();
      const nl = buffered.indexOf('\n');
      if (nl < 0) return;
      clearTimeout(timer);
      socket.removeAllListeners('data');
      resolve({ line: buffered.slice(0, nl), socket, serverId: peerUri(socket.getPeerCertificate()) });
    });
  });
}

/** Sends raw bytes, resolves with what came back before the gateway closed the connection. */
async function raw(gw: GatewayHandle, bytes: Buffer | undefined, waitMs = WAIT_MS): Promise<Buffer> {
  const socket: Socket = netConnect(gw.port, gw.host);
  const got: Buffer[] = [];
  socket.on('data', (d: Buffer) => got.push(d));
  socket.on('error', () => undefined);
  if (bytes) socket.write(bytes);
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('the gateway kept the connection open'));
    }, waitMs);
    socket.once('close', () => {
      clearTimeout(timer);
      resolve();
    });
  });
  return Buffer.concat(got);
}

async function sample(metrics: PromRegistry, prefix: string): Promise<number> {
  const line = (await metrics.metrics()).split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function until(what: string, check: () => boolean): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!check()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 10));
  }
}

beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'meshfed-gateway-'));
  authority = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'meshfed.test' }, {}).authority;
  authority.issueIntermediate('cluster-a');
  authority.issueIntermediate('cluster-b');
  clientIdentity = workloadIdentity(authority, 'cluster-a', 'productpage');
  serverIdentity = workloadIdentity(authority, 'cluster-b', 'reviews');
  await startBackend('127.0.6.1');
  await startBackend('127.0.6.2');
  const dead: NetServer = netCreateServer();
  await new Promise<void>((resolve) => dead.listen(0, '127.0.6.9', resolve));
  const deadAddress = dead.address();
  deadPort = typeof deadAddress === 'object' && deadAddress !== null ? deadAddress.port : 0;
  await new Promise<void>((resolve) => dead.close(() => { resolve(); })); // nothing listens there now: connects are refused

  registry = new Registry({ debounceMs: 5, maxDelayMs: 50 });
  sourceB = new StaticSource('cluster-b', [reviews()]);
  registry.add(clusterSchema.parse({ name: 'cluster-a', network: 'net-a', gateways: [{ address: '127.0.7.254' }] }), new StaticSource('cluster-a', []));
  registry.add(clusterSchema.parse({ name: 'cluster-b', network: 'net-b', gateways: [{ address: '127.0.6.254' }] }), sourceB);
  registry.flush();
  provider = new FederationXds(registry, { debounceMs: 5, maxDelayMs: 50, trustDomain: authority.trustDomain });
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
}, 60_000);

afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
  await ads.close();
  provider.close();
  await registry.close();
  for (const b of backends) b.server.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('mTLS end to end through the gateway', () => {
  it("a cluster-a workload reaches cluster-b's reviews by Istio's SNI; each side sees the other's SPIFFE ID", async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    const { line, socket, serverId } = await through(gw, SNI);
    expect(line).toMatch(new RegExp(`^PEER ${clientIdentity.spiffeId} FROM 127\\.0\\.6\\.[12]$`));
    expect(serverId).toBe(serverIdentity.spiffeId);
    // the bytes after the handshake flow both ways, still encrypted end to end
    socket.write('ping\n');
    await new Promise<void>((resolve) => socket.once('data', () => { resolve(); }));
    socket.end();
    await until('the connection to close', () => gw.connections() === 0);
    expect(await sample(metrics, `meshfed_gateway_connections_total{outcome="forwarded",sni="${SNI}"}`)).toBe(1);
    expect(await sample(metrics, 'meshfed_gateway_bytes_total{direction="up"}')).toBeGreaterThan(0);
  });

  it('accepts the bare hostname a proxyless gRPC client sends, for a one-port service', async () => {
    const { gw } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    const { line, socket } = await through(gw, HOST);
    expect(line).toContain(`PEER ${clientIdentity.spiffeId}`);
    socket.destroy();
  });

  it('gets the same routes over a real ADS stream from meshfed', async () => {
    const routes = adsRouteSource({ target: `127.0.0.1:${String(ads.port)}`, node: gatewayNode('gw-b-remote', 'cluster-b', 'net-b') });
    cleanups.push(() => { routes.close(); });
    await until('routes and endpoints over xDS', () => routes.current().resolve(SNI).kind === 'route');
    const { gw } = await gateway(routes);
    const { line, socket } = await through(gw, SNI);
    expect(line).toContain(`PEER ${clientIdentity.spiffeId}`);
    socket.destroy();
  });

  it('a client that closes its sending side still gets the whole answer (half-close passes through)', async () => {
    const { gw } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    const { socket } = await through(gw, SNI);
    const payload = Buffer.alloc(200_000, 7);
    const received: Buffer[] = [];
    socket.on('data', (d: Buffer) => received.push(d));
    const ended = new Promise<void>((resolve) => socket.once('end', () => { resolve(); }));
    socket.end(payload);
    await ended;
    expect(Buffer.concat(received).equals(payload)).toBe(true);
  });

  it('spreads connections over the endpoints (round robin) and skips one that refuses', async () => {
    const { gw } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    await setReviews('ready', true);
    const from = new Set<string>();
    for (let i = 0; i < 6; i++) {
      const { line, socket } = await through(gw, SNI);
      from.add(line.slice(line.lastIndexOf(' ') + 1));
      socket.destroy();
    }
    expect(from).toEqual(new Set(['127.0.6.1', '127.0.6.2']));
    await setReviews('ready');
  });
});

describe('refusals', () => {
  it('an SNI that names nothing here: a TLS alert (unrecognized_name), counted, never a connection elsewhere', async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    const accepted = backends.reduce((n, b) => n + b.accepted, 0);
    await expect(through(gw, 'outbound_.9080_._.ratings.default.svc.cluster.local')).rejects.toThrow(/unrecognized name|alert number 112/i);
    await expect(through(gw, 'outbound_.9999_._.reviews.default.svc.cluster.local')).rejects.toThrow(/unrecognized name|alert number 112/i);
    expect(backends.reduce((n, b) => n + b.accepted, 0)).toBe(accepted);
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="unknown-sni",sni=""}')).toBe(2);
  });

  it('no SNI, plain HTTP, a ClientHello that never completes: refused with their reasons', async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    await expect(through(gw, undefined)).rejects.toThrow();
    expect(await raw(gw, Buffer.from('GET / HTTP/1.1\r\nHost: reviews\r\n\r\n'))).toHaveLength(0);
    expect(await raw(gw, Buffer.from([22, 3, 1, 0, 200, 1]))).toHaveLength(0);
    expect(await raw(gw, undefined)).toHaveLength(0);
    await until('every connection to be gone', () => gw.connections() === 0);
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="no-sni",sni=""}')).toBe(1);
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="not-tls",sni=""}')).toBe(1);
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="hello-timeout",sni=""}')).toBe(2);
  });

  it('a service whose endpoints are all unhealthy is refused (no-endpoints); healthy again, it is reached', async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    await setReviews('unready');
    await expect(through(gw, SNI)).rejects.toThrow();
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="no-endpoints",sni=""}')).toBe(1);
    await setReviews('ready');
    const { socket } = await through(gw, SNI);
    socket.destroy();
  });

  it('at most maxConnections at once', async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')), { maxConnections: 2 });
    const a = await through(gw, SNI);
    const b = await through(gw, SNI);
    await expect(through(gw, SNI)).rejects.toThrow();
    expect(await sample(metrics, 'meshfed_gateway_connections_total{outcome="over-limit",sni=""}')).toBe(1);
    a.socket.destroy();
    b.socket.destroy();
  });
});

describe('timeouts', () => {
  it('a spliced connection that moves no byte either way for idleTimeoutMs is closed, both sides', async () => {
    const { gw } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')), { idleTimeoutMs: 150 });
    const { socket } = await through(gw, SNI);
    // still spliced while bytes move
    socket.write('ping\n');
    await new Promise<void>((resolve) => socket.once('data', () => { resolve(); }));
    await new Promise<void>((resolve) => socket.once('close', () => { resolve(); }));
    await until('the connection to be gone', () => gw.connections() === 0);
  });
});

describe('drain', () => {
  it('connections in flight finish; new ones are refused; the drain ends when the last one does', async () => {
    const { gw } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')));
    const inFlight = await through(gw, SNI);
    let drained = false;
    const draining = gw.drain(WAIT_MS).then(() => {
      drained = true;
    });
    await expect(through(gw, SNI)).rejects.toThrow(/ECONNREFUSED/);
    inFlight.socket.write('still here\n');
    const echoed = await new Promise<string>((resolve) => inFlight.socket.once('data', (d: Buffer) => { resolve(d.toString()); }));
    expect(echoed).toBe('still here\n');
    expect(drained).toBe(false);
    inFlight.socket.end();
    await draining;
    expect(gw.connections()).toBe(0);
  });
});

describe('hostile input over real sockets', () => {
  it('600 random and mutated ClientHellos, sent whole or in pieces: no crash, every connection closed, nothing leaked', async () => {
    const { gw, metrics } = await gateway(providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')), { helloTimeoutMs: 200 });
    const seed = Number(process.env.MESHFED_GATEWAY_FUZZ_SEED ?? Date.now() % 2 ** 31);
    const prng = new Prng(seed);
    const base = clientHello(); // SNI: DEFAULT_SERVER_NAME, the reviews route's
    const input = (): Uint8Array => {
      if (prng.chance(0.3)) return Uint8Array.from({ length: prng.int(0, 600) }, () => prng.int(0, 255));
      const bytes = Uint8Array.from(prng.chance(0.3) ? base.subarray(0, prng.int(1, base.length)) : base);
      for (let flips = prng.int(1, 4); flips > 0; flips--) {
        const at = prng.int(0, bytes.length - 1);
        bytes[at] = (bytes[at] ?? 0) ^ (1 << prng.int(0, 7));
      }
      return bytes;
    };
    const send = async (bytes: Uint8Array): Promise<void> => {
      const socket = netConnect(gw.port, gw.host);
      socket.on('error', () => undefined);
      socket.on('data', () => undefined);
      await new Promise<void>((resolve) => socket.once('connect', () => { resolve(); }));
      for (let i = 0; i < bytes.length; ) {
        const n = prng.chance(0.5) ? bytes.length : prng.int(1, 64);
        socket.write(bytes.subarray(i, i + n));
        i += n;
      }
      await new Promise<void>((resolve) => {
        // every connection ends on its own: refused at once, on the hello timeout, or (a mutation that kept the hello
        // valid) by the backend's TLS failing; bounded regardless
        const timer = setTimeout(() => {
          socket.destroy();
          resolve();
        }, 5_000);
        socket.once('close', () => {
          clearTimeout(timer);
          resolve();
        });
      });
    };
    for (let batch = 0; batch < 30; batch++) await Promise.all(Array.from({ length: 20 }, () => send(input())));
    await until('every connection to be gone', () => gw.connections() === 0);
    const text = await metrics.metrics();
    const counted = text
      .split('\n')
      .filter((l) => l.startsWith('meshfed_gateway_connections_total{'))
      .reduce((sum, l) => sum + Number(l.slice(l.lastIndexOf(' ') + 1)), 0);
    expect(counted, `seed ${String(seed)}`).toBe(600);
    // the gateway still serves
    const { socket } = await through(gw, SNI);
    socket.destroy();
  }, 120_000);
});
