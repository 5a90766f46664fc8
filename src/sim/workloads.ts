/**
 * The simulated workloads of the embedded federation: one per endpoint of a static cluster's service whose address is
 * loopback, a real server on each of the endpoint's ports. A gRPC port (appProtocol grpc, or a port named grpc or
 * grpc-*) serves meshfed.demo.v1.Echo and grpc.health.v1.Health; any other TCP port serves HTTP/1.1 and answers
 * JSON saying which cluster, service and endpoint answered. An mTLS endpoint (the default) serves mTLS with the
 * SVID of its service account and requires the caller's; a plaintext one serves plaintext.
 *
 * Killing a workload stands for its process dying, as the wire shows it: every live TCP connection is reset (RST; no
 * TLS close_notify, no HTTP/2 GOAWAY or RST_STREAM, so a gRPC client's calls in flight fail UNAVAILABLE, never
 * CANCELLED) and the listening socket closes (new connections are refused). To hold the raw TCP sockets, the workload
 * accepts its connections itself: a gRPC port's listener hands them to grpc-js through a connection injector (mTLS still
 * ends in grpc-js, and the peer address is the caller's); an HTTP server's own `connection` event gives the raw socket
 * under TLS. Starting it again binds the same address and port.
 */
import { once } from 'node:events';
import { createServer as createHttpServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import { createServer as createNetServer, isIP, type Server as NetServer, type Socket } from 'node:net';
import { TLSSocket } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';
import type { Cluster } from '../model/cluster.js';
import type { StaticService } from '../model/federation-file.js';
import { formatLocality } from '../model/locality.js';
import type { ServicePort } from '../model/service.js';
import { endpointLocality, endpointPort } from '../topology/index.js';
import { ECHO_PROTO_PATH, ECHO_SERVICE_NAME, type EchoReply, type EchoRequest } from './echo.js';
import { HealthService } from './health.js';
import type { SimIdentity, TlsMaterial } from './identities.js';
import { peerUri } from './trust-demo.js';

export type WorkloadProtocol = 'grpc' | 'http';

export interface WorkloadPort {
  /** the service port's name */
  name: string;
  port: number;
  protocol: WorkloadProtocol;
}

export interface WorkloadSpec {
  /** CLUSTER/NAMESPACE/SERVICE/ADDRESS */
  id: string;
  cluster: string;
  namespace: string;
  service: string;
  address: string;
  ports: WorkloadPort[];
  serviceAccount: string;
  tlsMode: 'mtls' | 'plaintext';
  /** region/zone/subzone, trailing empty parts left out */
  locality: string;
}

/** Loopback addresses only: any other address of a static cluster belongs to a real machine. */
export const isLoopback = (address: string): boolean => (isIP(address) === 4 && address.startsWith('127.')) || address === '::1';

const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

const isGrpcPort = (port: ServicePort): boolean => port.appProtocol === 'grpc' || port.name === 'grpc' || port.name.startsWith('grpc-');

/**
 * The workloads behind a static cluster's endpoints whose address `runsHere` accepts (default: loopback), on the ports
 * clients are sent to (as EDS computes them).
 */
export function workloadSpecs(cluster: Cluster, services: readonly StaticService[], runsHere: (address: string) => boolean = isLoopback): WorkloadSpec[] {
  const specs = new Map<string, WorkloadSpec>();
  for (const service of services) {
    const tcpPorts = service.ports.filter((p) => p.protocol === 'TCP');
    for (const endpoint of service.endpoints) {
      if (!runsHere(endpoint.address)) continue;
      const ports = new Map<number, WorkloadPort>();
      for (const servicePort of tcpPorts) {
        const port = endpointPort(servicePort, endpoint);
        if (!ports.has(port)) ports.set(port, { name: servicePort.name, port, protocol: isGrpcPort(servicePort) ? 'grpc' : 'http' });
      }
      const id = `${cluster.name}/${service.namespace}/${service.name}/${endpoint.address}`;
      if (ports.size === 0 || specs.has(id)) continue;
      specs.set(id, {
        id,
        cluster: cluster.name,
        namespace: service.namespace,
        service: service.name,
        address: endpoint.address,
        ports: [...ports.values()],
        serviceAccount: endpoint.serviceAccount,
        tlsMode: endpoint.tlsMode,
        locality: formatLocality(endpointLocality(cluster, endpoint)),
      });
    }
  }
  return [...specs.values()];
}

let echoLoaded: grpc.ServiceDefinition | undefined;

function echoDefinition(): grpc.ServiceDefinition {
  if (echoLoaded) return echoLoaded;
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO_PATH, { keepCase: true, defaults: true }));
  const v1 = ((pkg.meshfed as grpc.GrpcObject).demo as grpc.GrpcObject).v1 as grpc.GrpcObject;
  echoLoaded = (v1.Echo as grpc.ServiceClientConstructor).service;
  return echoLoaded;
}

interface RunningServer {
  /** what its health check says from now on (gRPC Health status, HTTP /healthz) */
  setServing(serving: boolean): void;
  /** abrupt: live connections reset, listener closed */
  kill(): Promise<void>;
}

/** The TCP connections a listener accepted, held as the kernel holds a process's sockets. */
class Connections {
  readonly #sockets = new Set<Socket>();

  add(socket: Socket): void {
    this.#sockets.add(socket);
    socket.once('close', () => this.#sockets.delete(socket));
  }

  /** Resets every connection now (before anything could say goodbye on it); resolves once all are closed. */
  reset(): Promise<void> {
    const closed = [...this.#sockets].map((socket) => new Promise<void>((resolve) => socket.once('close', () => { resolve(); })));
    for (const socket of this.#sockets) if (!socket.destroyed) socket.resetAndDestroy();
    return Promise.all(closed).then(() => undefined);
  }
}

function listen(server: NetServer, port: number, address: string): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(port, address, () => {
      server.off('error', reject);
      resolve();
    });
  });
}

/** The process dies: its connections reset first, then its listening socket closed. */
async function die(server: NetServer, connections: Connections): Promise<void> {
  const reset = connections.reset();
  const closed = once(server, 'close');
  server.close();
  await Promise.all([reset, closed]);
}

async function startGrpcServer(spec: WorkloadSpec, port: number, identity: SimIdentity | undefined): Promise<RunningServer> {
  const server = new grpc.Server();
  const endpoint = hostPort(spec.address, port);
  server.addService(echoDefinition(), {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      const peer = /URI:([^,]+)/.exec(call.getAuthContext().sslPeerCertificate?.subjectaltname ?? '')?.[1] ?? '';
      callback(null, { message: call.request.message ?? '', cluster: spec.cluster, endpoint, locality: spec.locality, peer });
    },
  });
  const health = new HealthService({ '': 'SERVING', [ECHO_SERVICE_NAME]: 'SERVING' });
  health.addTo(server);
  // the same identity as CA and certificate provider: a renewed SVID or bundle reaches the server without a restart
  const credentials = identity ? grpc.experimental.createCertificateProviderServerCredentials(identity, identity, true) : grpc.ServerCredentials.createInsecure();
  const injector = server.createConnectionInjector(credentials);
  const connections = new Connections();
  const listener = createNetServer((socket) => {
    connections.add(socket);
    injector.injectConnection(socket);
  });
  try {
    await listen(listener, port, spec.address);
  } catch (error) {
    server.forceShutdown();
    throw error;
  }
  return {
    setServing: (serving) => {
      for (const name of ['', ECHO_SERVICE_NAME]) health.setStatus(name, serving ? 'SERVING' : 'NOT_SERVING');
    },
    kill: async () => {
      await die(listener, connections);
      // nothing left to say anything to: this only releases grpc-js's server (and its certificate watchers)
      server.forceShutdown();
    },
  };
}

const MAX_ECHOED_PATH = 1024;

async function startHttpServer(spec: WorkloadSpec, port: number, identity: SimIdentity | undefined): Promise<RunningServer> {
  const endpoint = hostPort(spec.address, port);
  let serving = true;
  const handler = (req: IncomingMessage, res: ServerResponse): void => {
    req.resume();
    const path = (req.url ?? '/').slice(0, MAX_ECHOED_PATH);
    const peer = req.socket instanceof TLSSocket ? peerUri(req.socket.getPeerCertificate()) : '';
    if (path === '/healthz') {
      res.writeHead(serving ? 200 : 503, { 'content-type': 'application/json' });
      res.end(`${JSON.stringify({ status: serving ? 'ok' : 'not serving' })}\n`);
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' });
    res.end(`${JSON.stringify({ cluster: spec.cluster, namespace: spec.namespace, service: spec.service, endpoint, locality: spec.locality, peer, method: req.method ?? '', path })}\n`);
  };
  const tlsOptions = (tls: TlsMaterial) => ({ key: tls.key, cert: tls.cert, ca: tls.ca });
  let server: HttpServer;
  let unsubscribe: () => void = () => undefined;
  if (identity) {
    const https = createHttpsServer({ ...tlsOptions(identity.tls), requestCert: true, rejectUnauthorized: true }, handler);
    unsubscribe = identity.onRenewed((tls) => {
      https.setSecureContext(tlsOptions(tls));
    });
    server = https;
  } else {
    server = createHttpServer(handler);
  }
  const connections = new Connections();
  server.on('connection', (socket: Socket) => {
    connections.add(socket);
  });
  try {
    await listen(server, port, spec.address);
  } catch (error) {
    unsubscribe();
    throw error;
  }
  return {
    setServing: (to) => {
      serving = to;
    },
    kill: async () => {
      unsubscribe();
      await die(server, connections);
    },
  };
}

export interface WorkloadStatus extends WorkloadSpec {
  running: boolean;
  /** the SPIFFE ID it serves with; '' for a plaintext workload */
  spiffeId: string;
}

export class Workload {
  #servers: RunningServer[] | undefined;

  /** `identity`: its SVID (required for an mTLS workload) */
  constructor(
    readonly spec: WorkloadSpec,
    readonly identity: SimIdentity | undefined,
  ) {
    if (spec.tlsMode === 'mtls' && !identity) throw new Error(`workload ${spec.id}: an mTLS workload needs an identity`);
  }

  get running(): boolean {
    return this.#servers !== undefined;
  }

  status(): WorkloadStatus {
    return { ...this.spec, ports: [...this.spec.ports], running: this.running, spiffeId: this.spec.tlsMode === 'mtls' ? (this.identity?.spiffeId ?? '') : '' };
  }

  /** Binds every port; if one cannot listen, the others are closed again and the error names the address. */
  async start(): Promise<void> {
    if (this.#servers) return;
    const identity = this.spec.tlsMode === 'mtls' ? this.identity : undefined;
    const servers: RunningServer[] = [];
    try {
      for (const p of this.spec.ports) servers.push(await (p.protocol === 'grpc' ? startGrpcServer : startHttpServer)(this.spec, p.port, identity));
    } catch (error) {
      await Promise.all(servers.map((s) => s.kill()));
      throw new Error(`workload ${this.spec.id} cannot listen on ${hostPort(this.spec.address, this.spec.ports[servers.length]?.port ?? 0)}: ${(error as Error).message}`, { cause: error });
    }
    this.#servers = servers;
  }

  /**
   * What the workload's health checks answer (gRPC Health SERVING / NOT_SERVING, HTTP /healthz 200 / 503) while it
   * keeps serving calls: a pod failing its readiness gently. A restart serves again.
   */
  setServing(serving: boolean): void {
    for (const s of this.#servers ?? []) s.setServing(serving);
  }

  /** The process dies: live connections reset, listeners closed. */
  async kill(): Promise<void> {
    const servers = this.#servers;
    this.#servers = undefined;
    await Promise.all((servers ?? []).map((s) => s.kill()));
  }
}
