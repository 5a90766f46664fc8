/**
 * grpc.health.v1.Health (proto/grpc/health/v1/health.proto): the service every simulated gRPC workload serves, and the
 * one-call client the readiness prober uses, as kubelet's gRPC probe does (Check, status SERVING or not ready).
 */
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';
import * as protoLoader from '@grpc/proto-loader';

export const HEALTH_PROTO_PATH = fileURLToPath(new URL('../../proto/grpc/health/v1/health.proto', import.meta.url));

export type ServingStatus = 'UNKNOWN' | 'SERVING' | 'NOT_SERVING' | 'SERVICE_UNKNOWN';

interface HealthCheckRequest {
  service?: string;
}

interface HealthCheckResponse {
  status: ServingStatus;
}

type CheckCallback = (error: grpc.ServiceError | null, response?: HealthCheckResponse) => void;

interface HealthClient extends grpc.Client {
  Check(request: HealthCheckRequest, options: grpc.CallOptions, callback: CheckCallback): grpc.ClientUnaryCall;
}

let loaded: grpc.ServiceClientConstructor | undefined;

function healthConstructor(): grpc.ServiceClientConstructor {
  if (loaded) return loaded;
  const pkg = grpc.loadPackageDefinition(protoLoader.loadSync(HEALTH_PROTO_PATH, { keepCase: true, enums: String, defaults: true }));
  const v1 = ((pkg.grpc as grpc.GrpcObject).health as grpc.GrpcObject).v1 as grpc.GrpcObject;
  loaded = v1.Health as grpc.ServiceClientConstructor;
  return loaded;
}

/** The health of one server: a status per service name ('' is the server as a whole), Check and Watch. */
export class HealthService {
  readonly #statuses = new Map<string, ServingStatus>();
  readonly #watchers = new Map<string, Set<grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>>>();

  constructor(statuses: Record<string, ServingStatus> = {}) {
    for (const [service, status] of Object.entries(statuses)) this.#statuses.set(service, status);
  }

  setStatus(service: string, status: ServingStatus): void {
    this.#statuses.set(service, status);
    for (const call of this.#watchers.get(service) ?? []) call.write({ status });
  }

  addTo(server: grpc.Server): void {
    server.addService(healthConstructor().service, {
      Check: (call: grpc.ServerUnaryCall<HealthCheckRequest, HealthCheckResponse>, callback: grpc.sendUnaryData<HealthCheckResponse>) => {
        const status = this.#statuses.get(call.request.service ?? '');
        if (status === undefined) callback({ code: grpc.status.NOT_FOUND, details: `unknown service ${JSON.stringify((call.request.service ?? '').slice(0, 200))}` });
        else callback(null, { status });
      },
      Watch: (call: grpc.ServerWritableStream<HealthCheckRequest, HealthCheckResponse>) => {
        const service = call.request.service ?? '';
        let watchers = this.#watchers.get(service);
        if (!watchers) this.#watchers.set(service, (watchers = new Set()));
        watchers.add(call);
        call.on('cancelled', () => watchers.delete(call));
        call.on('close', () => watchers.delete(call));
        call.write({ status: this.#statuses.get(service) ?? 'SERVICE_UNKNOWN' });
      },
    });
  }
}

export interface HealthCheckOptions {
  /** the service to ask about; '' (default) is the server as a whole */
  service?: string;
  timeoutMs: number;
  channelOptions?: grpc.ChannelOptions;
}

/**
 * One Check on a fresh channel (a new connection, as each kubelet probe makes), closed after: the status, or the
 * error's message (unreachable, refused TLS, deadline, NOT_FOUND).
 */
export function checkHealth(target: string, credentials: grpc.ChannelCredentials, options: HealthCheckOptions): Promise<ServingStatus | Error> {
  const Client = healthConstructor() as unknown as new (target: string, credentials: grpc.ChannelCredentials, options: grpc.ChannelOptions) => HealthClient;
  // a local subchannel pool: no connection is shared with (or kept for) another probe
  const client = new Client(target, credentials, { ...options.channelOptions, 'grpc.use_local_subchannel_pool': 1 });
  return new Promise((resolve) => {
    client.Check({ service: options.service ?? '' }, { deadline: Date.now() + options.timeoutMs }, (error, response) => {
      client.close();
      resolve(error ? new Error(error.details || error.message) : (response?.status ?? 'UNKNOWN'));
    });
  });
}
