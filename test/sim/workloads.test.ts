/**
 * The simulated workloads as a client sees them: real gRPC (Echo + grpc.health.v1.Health) and HTTP servers on the
 * loopback addresses of a static cluster's endpoints, serving mTLS with SVIDs from their cluster's intermediate and
 * refusing callers without one; killed like a dying process (live connections reset, port closed) and started again.
 */
import { X509Certificate } from 'node:crypto';
import { readFileSync, mkdtempSync, rmSync, statSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { connect as netConnect, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { echo, echoClient, ECHO_SERVICE_NAME } from '../../src/sim/echo.js';
import { checkHealth, HEALTH_PROTO_PATH } from '../../src/sim/health.js';
import { SimIdentities, type StoredIdentity } from '../../src/sim/identities.js';
import { peerUri } from '../../src/sim/trust-demo.js';
import { Workload, workloadSpecs } from '../../src/sim/workloads.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { freePort, mtlsCredentials, SNI_OPTION } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'meshfed-sim-workloads-'));
let identities: SimIdentities;
let caller: StoredIdentity;
let grpcPort: number;
let httpPort: number;
let plainPort: number;
let plainGrpcPort: number;
const workloads = new Map<string, Workload>();
const clients: grpc.Client[] = [];

const cluster = clusterSchema.parse({ name: 'lab-1', network: 'net-lab', region: 'eu-west', zone: 'eu-west-1a' });

beforeAll(async () => {
  const authority = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'sim.test' }, {}).authority;
  authority.issueIntermediate('lab-1');
  authority.issueIntermediate('lab-2');
  identities = new SimIdentities(authority, join(dir, 'sim'));
  caller = identities.get('lab-2', 'shop', 'frontend');
  [grpcPort, httpPort, plainPort] = await Promise.all([freePort('127.0.61.1'), freePort('127.0.61.2'), freePort('127.0.61.3')]);
  do plainGrpcPort = await freePort('127.0.61.3');
  while (plainGrpcPort === plainPort);
  const services = [
    staticServiceSchema.parse({
      namespace: 'shop',
      name: 'reviews',
      ports: [{ name: 'grpc-api', port: 9080 }],
      endpoints: [
        { address: '127.0.61.1', ports: [{ name: 'grpc-api', port: grpcPort }], serviceAccount: 'reviews', locality: { subzone: 'rack-1' } },
        { address: '192.0.2.10', ports: [{ name: 'grpc-api', port: 9080 }], serviceAccount: 'reviews' },
      ],
    }),
    staticServiceSchema.parse({
      namespace: 'shop',
      name: 'ratings',
      ports: [{ name: 'web', port: 80, targetPort: httpPort, appProtocol: 'http' }],
      endpoints: [{ address: '127.0.61.2', serviceAccount: 'ratings' }],
    }),
    staticServiceSchema.parse({
      namespace: 'shop',
      name: 'legacy',
      ports: [{ name: 'http', port: plainPort }, { name: 'syslog', port: 514, protocol: 'UDP' }, { name: 'grpc', port: plainGrpcPort }],
      endpoints: [{ address: '127.0.61.3', tlsMode: 'plaintext' }],
    }),
  ];
  for (const spec of workloadSpecs(cluster, services)) {
    const w = new Workload(spec, spec.tlsMode === 'mtls' ? identities.get(spec.cluster, spec.namespace, spec.serviceAccount) : undefined);
    await w.start();
    workloads.set(spec.id, w);
  }
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await Promise.all([...workloads.values()].map((w) => w.kill()));
  identities.close();
  rmSync(dir, { recursive: true, force: true });
});

function reviewsClient(credentials: grpc.ChannelCredentials) {
  // a local subchannel pool: each client its own connection, as separate processes would have
  const c = echoClient(`127.0.61.1:${String(grpcPort)}`, credentials, { ...SNI_OPTION, 'grpc.use_local_subchannel_pool': 1 });
  clients.push(c);
  return c;
}

/** A grpc.health.v1.Health Watch of the Echo service on its own connection, and its first answer. */
async function watchHealth(target: string, credentials = mtlsCredentials(caller.tls)): Promise<{ stream: grpc.ClientReadableStream<{ status: string }>; first: { status: string } }> {
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO_PATH, { keepCase: true, enums: String }));
  const Health = (((pkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject).Health as grpc.ServiceClientConstructor;
  const health = new Health(target, credentials, { ...SNI_OPTION, 'grpc.use_local_subchannel_pool': 1 });
  clients.push(health);
  const stream = (health as unknown as { Watch(request: { service: string }): grpc.ClientReadableStream<{ status: string }> }).Watch({ service: ECHO_SERVICE_NAME });
  const first = await new Promise<{ status: string }>((resolve, reject) => {
    stream.once('data', resolve);
    stream.once('error', reject);
  });
  return { stream, first };
}

/**
 * An mTLS connection to a workload that the workload has answered on, so both ends are past the handshake: for a gRPC
 * port (ALPN h2) its HTTP/2 SETTINGS, for an HTTP port the answer to `GET /healthz` on a kept-alive connection.
 */
async function answeredTls(port: number, host: string, protocol: 'h2' | 'http/1.1'): Promise<TLSSocket> {
  const socket = tlsConnect({ host, port, servername: 'workload.sim.test', ALPNProtocols: [protocol], ...caller.tls, checkServerIdentity: () => undefined });
  await new Promise<void>((resolve, reject) => {
    socket.once('data', () => { resolve(); });
    socket.once('error', reject);
    if (protocol === 'http/1.1') socket.write('GET /healthz HTTP/1.1\r\nhost: workload.sim.test\r\n\r\n');
  });
  return socket;
}

/** How the server ends a connection: 'end' for an orderly close (TLS close_notify or FIN), else the error's code (ECONNRESET for an RST). */
function howItEnds(socket: TLSSocket): Promise<string> {
  return new Promise((resolve) => {
    socket.once('end', () => { resolve('end'); });
    socket.once('error', (error: NodeJS.ErrnoException) => { resolve(error.code ?? error.message); });
  });
}

/** A plain TCP connection attempt. */
function tcpConnect(host: string, port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = netConnect({ host, port }, () => { resolve(socket); });
    socket.once('error', reject);
  });
}

function workload(id: string): Workload {
  const w = workloads.get(id);
  if (!w) throw new Error(`no workload ${id}`);
  return w;
}

interface HttpAnswer {
  status: number;
  body: Record<string, string>;
}

function get(options: RequestOptions, secure = true): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = (secure ? httpsRequest : httpRequest)({ agent: false, ...options }, (res) => {
      let text = '';
      res.on('data', (chunk: Buffer) => (text += chunk.toString()));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as Record<string, string> });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

const ratings = (path = '/reviews/1'): RequestOptions => ({ host: '127.0.61.2', port: httpPort, path, ...caller.tls, checkServerIdentity: () => undefined });

describe('simulated workloads', () => {
  it("one per loopback endpoint, on the port EDS sends clients to, gRPC by appProtocol or a grpc port name, in the endpoint's locality", () => {
    expect([...workloads.values()].map((w) => w.status())).toEqual([
      {
        id: 'lab-1/shop/reviews/127.0.61.1',
        cluster: 'lab-1',
        namespace: 'shop',
        service: 'reviews',
        address: '127.0.61.1',
        ports: [{ name: 'grpc-api', port: grpcPort, protocol: 'grpc' }],
        serviceAccount: 'reviews',
        tlsMode: 'mtls',
        locality: 'eu-west/eu-west-1a/rack-1',
        running: true,
        spiffeId: 'spiffe://sim.test/ns/shop/sa/reviews',
      },
      expect.objectContaining({ id: 'lab-1/shop/ratings/127.0.61.2', ports: [{ name: 'web', port: httpPort, protocol: 'http' }], spiffeId: 'spiffe://sim.test/ns/shop/sa/ratings' }),
      // a UDP port gets no server; a plaintext endpoint serves without TLS
      expect.objectContaining({
        id: 'lab-1/shop/legacy/127.0.61.3',
        ports: [{ name: 'http', port: plainPort, protocol: 'http' }, { name: 'grpc', port: plainGrpcPort, protocol: 'grpc' }],
        tlsMode: 'plaintext',
        spiffeId: '',
      }),
    ]);
  });

  it("gRPC: Echo says cluster, endpoint, locality and the caller's SPIFFE ID; the caller sees the workload's; Health answers Check and Watch", async () => {
    const seen: string[] = [];
    const reply = await echo(reviewsClient(mtlsCredentials(caller.tls, seen)), 'hello');
    expect(reply).toEqual({ message: 'hello', cluster: 'lab-1', endpoint: `127.0.61.1:${String(grpcPort)}`, locality: 'eu-west/eu-west-1a/rack-1', peer: 'spiffe://sim.test/ns/shop/sa/frontend' });
    expect(seen).toContain('spiffe://sim.test/ns/shop/sa/reviews');

    const target = `127.0.61.1:${String(grpcPort)}`;
    expect(await checkHealth(target, mtlsCredentials(caller.tls), { timeoutMs: 5_000, channelOptions: SNI_OPTION })).toBe('SERVING');
    expect(await checkHealth(target, mtlsCredentials(caller.tls), { service: ECHO_SERVICE_NAME, timeoutMs: 5_000, channelOptions: SNI_OPTION })).toBe('SERVING');
    const unknown = await checkHealth(target, mtlsCredentials(caller.tls), { service: 'no.such.Service', timeoutMs: 5_000, channelOptions: SNI_OPTION });
    expect(unknown).toBeInstanceOf(Error);
    expect(String(unknown)).toContain('unknown service "no.such.Service"');

    // Watch: the current status at once, as grpc clients' health checking expects
    const { stream, first } = await watchHealth(target);
    stream.cancel();
    expect(first.status).toBe('SERVING');
  });

  it('refuses callers without an SVID of the trust domain', async () => {
    await expect(echo(reviewsClient(grpc.credentials.createSsl(Buffer.from(caller.tls.ca), null, null, { checkServerIdentity: () => undefined })), 'no cert', 5_000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    const stranger = TrustAuthority.init(join(dir, 'other-ca'), { trustDomain: 'other.test' }, {}).authority;
    stranger.issueIntermediate('x');
    const foreign = new SimIdentities(stranger, join(dir, 'other-sim')).get('x', 'default', 'intruder');
    await expect(echo(reviewsClient(mtlsCredentials({ ...foreign.tls, ca: caller.tls.ca })), 'foreign', 5_000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });
    await expect(get({ ...ratings(), key: undefined, cert: undefined })).rejects.toThrow();
  });

  it('HTTP: JSON with cluster, service and endpoint, over mTLS (or plaintext for a plaintext endpoint)', async () => {
    const answer = await get(ratings());
    expect(answer).toEqual({
      status: 200,
      body: { cluster: 'lab-1', namespace: 'shop', service: 'ratings', endpoint: `127.0.61.2:${String(httpPort)}`, locality: 'eu-west/eu-west-1a', peer: 'spiffe://sim.test/ns/shop/sa/frontend', method: 'GET', path: '/reviews/1' },
    });
    expect(await get(ratings('/healthz'))).toEqual({ status: 200, body: { status: 'ok' } });
    const plain = await get({ host: '127.0.61.3', port: plainPort, path: '/' }, false);
    expect(plain.body).toMatchObject({ cluster: 'lab-1', service: 'legacy', peer: '' });
  });

  it('kill: live connections are reset (no TLS close_notify) and the port refuses; start: the same address answers again', async () => {
    const ratingsWorkload = workload('lab-1/shop/ratings/127.0.61.2');
    const client = reviewsClient(mtlsCredentials(caller.tls));
    await echo(client, 'before');
    const cut = howItEnds(await answeredTls(httpPort, '127.0.61.2', 'http/1.1'));

    await ratingsWorkload.kill();
    await workload('lab-1/shop/reviews/127.0.61.1').kill();
    expect(await cut).toBe('ECONNRESET');
    expect(ratingsWorkload.running).toBe(false);
    await expect(get(ratings())).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(echo(client, 'while dead', 5_000)).rejects.toMatchObject({ code: grpc.status.UNAVAILABLE });

    await ratingsWorkload.start();
    await workload('lab-1/shop/reviews/127.0.61.1').start();
    expect((await get(ratings())).body.service).toBe('ratings');
    expect((await echo(reviewsClient(mtlsCredentials(caller.tls)), 'after')).cluster).toBe('lab-1');
  });

  it('kill, as a dying process looks on the wire: gRPC calls in flight fail UNAVAILABLE, never CANCELLED (mTLS or plaintext); the connection is reset (no GOAWAY, no close_notify); a new connection is refused; start serves again', async () => {
    const reviews = workload('lab-1/shop/reviews/127.0.61.1');
    const legacy = workload('lab-1/shop/legacy/127.0.61.3');
    const target = `127.0.61.1:${String(grpcPort)}`;
    const plainTarget = `127.0.61.3:${String(plainGrpcPort)}`;
    // calls in flight: Health Watches that have had their first answer and wait for the next
    const watches = await Promise.all([watchHealth(target), watchHealth(plainTarget, grpc.credentials.createInsecure())]);
    const failed = watches.map(({ stream, first }) => {
      expect(first.status).toBe('SERVING');
      return new Promise<grpc.ServiceError>((resolve) => stream.once('error', resolve));
    });
    // an HTTP/2 connection the server has sent its SETTINGS on: what arrives next is whatever the kill sends
    const cut = howItEnds(await answeredTls(grpcPort, '127.0.61.1', 'h2'));

    await Promise.all([reviews.kill(), legacy.kill()]);
    const errors = await Promise.all(failed);
    expect(errors.map((e) => e.code)).toEqual([grpc.status.UNAVAILABLE, grpc.status.UNAVAILABLE]);
    expect(await cut).toBe('ECONNRESET');
    await expect(tcpConnect('127.0.61.1', grpcPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });
    await expect(tcpConnect('127.0.61.3', plainGrpcPort)).rejects.toMatchObject({ code: 'ECONNREFUSED' });

    await Promise.all([reviews.start(), legacy.start()]);
    expect([reviews.running, legacy.running]).toEqual([true, true]);
    expect(await echo(reviewsClient(mtlsCredentials(caller.tls)), 'again')).toMatchObject({ endpoint: target, peer: 'spiffe://sim.test/ns/shop/sa/frontend' });
    const plainClient = echoClient(plainTarget, grpc.credentials.createInsecure());
    clients.push(plainClient);
    expect(await echo(plainClient, 'plain again')).toMatchObject({ cluster: 'lab-1', endpoint: plainTarget, peer: '' });
  });

  it('writes each SVID owner-only where a file_watcher reads it, and a renewal reaches the running servers without a restart', async () => {
    const reviews = identities.get('lab-1', 'shop', 'reviews');
    const files = reviews.files;
    expect(files.certificate).toBe(join(dir, 'sim', 'lab-1', 'shop', 'reviews', 'cert.pem'));
    for (const path of [files.certificate, files.privateKey, files.ca]) expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(statSync(join(dir, 'sim', 'lab-1')).mode & 0o777).toBe(0o700);
    const leaf = new X509Certificate(readFileSync(files.certificate));
    expect(leaf.subjectAltName).toBe('URI:spiffe://sim.test/ns/shop/sa/reviews');
    expect(readFileSync(files.privateKey, 'utf8')).toContain('PRIVATE KEY');
    expect(readFileSync(files.ca, 'utf8')).toBe(caller.tls.ca);

    const servedSerial = async (): Promise<string> => {
      const socket = tlsConnect({ host: '127.0.61.2', port: httpPort, ...caller.tls, checkServerIdentity: () => undefined });
      await new Promise<void>((resolve, reject) => {
        socket.once('secureConnect', resolve);
        socket.once('error', reject);
      });
      const serial = socket.getPeerCertificate().serialNumber;
      expect(peerUri(socket.getPeerCertificate())).toBe('spiffe://sim.test/ns/shop/sa/ratings');
      socket.destroy();
      return serial;
    };
    const ratingsIdentity = identities.get('lab-1', 'shop', 'ratings');
    const before = await servedSerial();
    const grpcBefore = leaf.serialNumber;
    ratingsIdentity.renew();
    reviews.renew();
    expect(await servedSerial()).not.toBe(before);
    expect(new X509Certificate(readFileSync(files.certificate)).serialNumber).not.toBe(grpcBefore);
    // the gRPC server took the renewed certificate too: a new connection is served with the serial now in the file
    const seen: X509Certificate[] = [];
    const credentials = grpc.credentials.createSsl(Buffer.from(caller.tls.ca), Buffer.from(caller.tls.key), Buffer.from(caller.tls.cert), {
      checkServerIdentity: (_host, cert) => {
        seen.push(new X509Certificate(cert.raw));
        return undefined;
      },
    });
    await echo(reviewsClient(credentials), 'renewed');
    expect(seen.at(-1)?.serialNumber).toBe(new X509Certificate(readFileSync(files.certificate)).serialNumber);
  });
});
