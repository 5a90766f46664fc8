/**
 * The demo echo service (proto/meshfed/demo/v1/echo.proto): a real gRPC server that answers every call with the
 * name of the cluster and the endpoint that served it. The embedded federation runs one per demo workload, and
 * tests use it to see where traffic went.
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const ECHO_PROTO_PATH = fileURLToPath(new URL('../../proto/meshfed/demo/v1/echo.proto', import.meta.url));
export const ECHO_SERVICE_NAME = 'meshfed.demo.v1.Echo';

export interface EchoRequest {
  message?: string;
}

export interface EchoReply {
  message: string;
  cluster: string;
  endpoint: string;
  locality: string;
  peer: string;
}

export interface EchoServerOptions {
  /** an IP literal */
  host: string;
  /** 0: any free port */
  port: number;
  cluster: string;
  /** region/zone/subzone, for the reply */
  locality?: string;
  /** default: plaintext */
  credentials?: grpc.ServerCredentials;
}

export interface EchoServerHandle {
  host: string;
  port: number;
  /** IP:PORT as the reply says it */
  endpoint: string;
  /** calls answered */
  calls(): number;
  close(): Promise<void>;
}

type EchoClientConstructor = new (address: string, credentials: grpc.ChannelCredentials, options?: grpc.ChannelOptions) => EchoClient;

/** A client of the echo service (grpc-js generic client with one typed method). */
export interface EchoClient extends grpc.Client {
  Echo(request: EchoRequest, callback: (error: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
  Echo(request: EchoRequest, options: grpc.CallOptions, callback: (error: grpc.ServiceError | null, reply?: EchoReply) => void): grpc.ClientUnaryCall;
}

let loaded: { service: grpc.ServiceDefinition; Client: EchoClientConstructor } | undefined;

function echoDefinition(): { service: grpc.ServiceDefinition; Client: EchoClientConstructor } {
  if (loaded) return loaded;
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(ECHO_PROTO_PATH, { keepCase: true, defaults: true }));
  const Client = (pkg.meshfed as grpc.GrpcObject).demo as grpc.GrpcObject;
  const ctor = (Client.v1 as grpc.GrpcObject).Echo as grpc.ServiceClientConstructor;
  loaded = { service: ctor.service, Client: ctor as unknown as EchoClientConstructor };
  return loaded;
}

const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** A client for `target` (`host:port`, or `xds:///name` with @grpc/grpc-js-xds registered). */
export function echoClient(target: string, credentials = grpc.credentials.createInsecure(), options: grpc.ChannelOptions = {}): EchoClient {
  const { Client } = echoDefinition();
  return new Client(target, credentials, options);
}

/** One call, as a promise. */
export function echo(client: EchoClient, message: string, deadlineMs = 5_000): Promise<EchoReply> {
  return new Promise((resolve, reject) => {
    client.Echo({ message }, { deadline: Date.now() + deadlineMs }, (error, reply) => {
      if (error) reject(error);
      else if (!reply) reject(new Error('echo: empty reply'));
      else resolve(reply);
    });
  });
}

/** Starts an echo server; resolves once it listens. */
export async function startEchoServer(options: EchoServerOptions): Promise<EchoServerHandle> {
  const { service } = echoDefinition();
  const server = new grpc.Server();
  let calls = 0;
  let endpoint = '';
  server.addService(service, {
    Echo: (call: grpc.ServerUnaryCall<EchoRequest, EchoReply>, callback: grpc.sendUnaryData<EchoReply>) => {
      calls++;
      const san = call.getAuthContext().sslPeerCertificate?.subjectaltname ?? '';
      const peer = /URI:([^,]+)/.exec(san)?.[1] ?? '';
      callback(null, { message: call.request.message ?? '', cluster: options.cluster, endpoint, locality: options.locality ?? '', peer });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(hostPort(options.host, options.port), options.credentials ?? grpc.ServerCredentials.createInsecure(), (error, boundPort) => {
      if (error) reject(error);
      else resolve(boundPort);
    });
  });
  endpoint = hostPort(options.host, port);
  return {
    host: options.host,
    port,
    endpoint,
    calls: () => calls,
    close: () =>
      new Promise<void>((resolve) => {
        const timer = setTimeout(() => {
          server.forceShutdown();
          resolve();
        }, 1000);
        server.tryShutdown(() => {
          clearTimeout(timer);
          resolve();
        });
      }),
  };
}
