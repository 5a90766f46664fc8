/**
 * Readiness, the way a kubelet reports it: every period, each workload of a simulated cluster is probed (a gRPC
 * workload with grpc.health.v1.Health/Check, ready when SERVING; an HTTP one with GET /healthz, ready on 200-399),
 * over a new connection each time and with the workload's mTLS. A ready workload turns unready after
 * `failureThreshold` failed probes in a row, an unready one ready after `successThreshold` successes; before its first
 * success a workload is unready, as a pod is. Each change goes to the cluster's StaticSource as the endpoint's health
 * (ready / unready), so meshfed learns of a dead workload only the way it would from an EndpointSlice.
 */
import { request as httpRequest, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { StaticService } from '../model/federation-file.js';
import type { EndpointHealth } from '../model/service.js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { StaticSource } from '../registry/static-source.js';
import { checkHealth } from './health.js';
import type { SimIdentity } from './identities.js';
import { peerUri } from './trust-demo.js';
import type { Workload, WorkloadPort } from './workloads.js';

export interface ProbeSettings {
  /** how often each workload is probed */
  periodMs: number;
  /** how long one probe may take */
  timeoutMs: number;
  /** failed probes in a row that make a ready workload unready */
  failureThreshold: number;
  /** successful probes in a row that make an unready workload ready */
  successThreshold: number;
}

/** Kubernetes' defaults (timeoutSeconds 1, failureThreshold 3, successThreshold 1), with a 1 s period instead of 10 s. */
export const DEFAULT_PROBE_SETTINGS: Readonly<ProbeSettings> = Object.freeze({ periodMs: 1_000, timeoutMs: 1_000, failureThreshold: 3, successThreshold: 1 });

/** Checks settings as Kubernetes validates a probe: positive period and timeout, thresholds of at least 1. */
export function probeSettings(partial: Partial<ProbeSettings> = {}): ProbeSettings {
  const settings = { ...DEFAULT_PROBE_SETTINGS, ...partial };
  for (const key of ['periodMs', 'timeoutMs'] as const) {
    if (!Number.isFinite(settings[key]) || settings[key] <= 0) throw new Error(`probe ${key} must be positive, not ${String(settings[key])}`);
  }
  for (const key of ['failureThreshold', 'successThreshold'] as const) {
    if (!Number.isInteger(settings[key]) || settings[key] < 1) throw new Error(`probe ${key} must be an integer of at least 1, not ${String(settings[key])}`);
  }
  return settings;
}

const hostPort = (host: string, port: number): string => (host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`);

/** The workload must present its own SPIFFE ID: the probe reaches that workload, not whatever took its port. */
const expectPeer = (spiffeId: string) => (_host: string, cert: PeerCertificate): Error | undefined =>
  peerUri(cert) === spiffeId ? undefined : new Error(`the server presented ${peerUri(cert)}, not ${spiffeId}`);

async function probeGrpc(workload: Workload, port: WorkloadPort, prober: SimIdentity | undefined, timeoutMs: number): Promise<string | undefined> {
  const { address, tlsMode, service, namespace } = workload.spec;
  const serverId = workload.identity?.spiffeId ?? '';
  // grpc would send the IP literal as SNI, which RFC 6066 forbids (and Node warns about): send the service's name
  const channelOptions = { 'grpc.ssl_target_name_override': `${service}.${namespace}.svc.cluster.local` };
  let credentials = grpc.credentials.createInsecure();
  if (tlsMode === 'mtls') {
    if (!prober) return 'no prober identity for an mTLS workload';
    const tls = prober.tls;
    credentials = grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert), { checkServerIdentity: expectPeer(serverId) });
  }
  const status = await checkHealth(hostPort(address, port.port), credentials, { timeoutMs, channelOptions });
  if (status instanceof Error) return status.message;
  return status === 'SERVING' ? undefined : `health status ${status}`;
}

function probeHttp(workload: Workload, port: WorkloadPort, prober: SimIdentity | undefined, timeoutMs: number): Promise<string | undefined> {
  const { address, tlsMode } = workload.spec;
  if (tlsMode === 'mtls' && !prober) return Promise.resolve('no prober identity for an mTLS workload');
  const common = { host: address, port: port.port, path: '/healthz', method: 'GET', agent: false, signal: AbortSignal.timeout(timeoutMs) } as const;
  return new Promise((resolve) => {
    const onResponse = (res: IncomingMessage): void => {
      res.resume();
      const code = res.statusCode ?? 0;
      resolve(code >= 200 && code < 400 ? undefined : `HTTP ${String(code)}`);
    };
    const req =
      tlsMode === 'mtls' && prober
        ? httpsRequest({ ...common, ...prober.tls, checkServerIdentity: expectPeer(workload.identity?.spiffeId ?? '') }, onResponse)
        : httpRequest(common, onResponse);
    req.on('error', (error: Error) => {
      resolve(error.message);
    });
    req.end();
  });
}

/** One probe of every port of the workload: undefined when it passed, else why not. */
export async function probeWorkload(workload: Workload, prober: SimIdentity | undefined, timeoutMs: number): Promise<string | undefined> {
  for (const port of workload.spec.ports) {
    const failure = await (port.protocol === 'grpc' ? probeGrpc : probeHttp)(workload, port, prober, timeoutMs);
    if (failure !== undefined) return `${hostPort(workload.spec.address, port.port)}: ${failure}`;
  }
  return undefined;
}

interface ProbeState {
  ready: boolean;
  successes: number;
  failures: number;
  reason?: string;
}

export interface ReadinessChange {
  workload: string;
  ready: boolean;
  /** why the last probe failed */
  reason?: string;
}

export interface ReadinessProberOptions {
  cluster: string;
  /** the cluster's services as the federation file lists them: what the source is updated from */
  services: readonly StaticService[];
  source: StaticSource;
  workloads: readonly Workload[];
  /** the prober's client certificate, for mTLS workloads */
  identity?: SimIdentity;
  settings?: Partial<ProbeSettings>;
  logger?: Logger;
}

/** A kubelet's readiness probes for one simulated cluster. */
export class ReadinessProber {
  readonly settings: ProbeSettings;
  readonly cluster: string;
  readonly #options: ReadinessProberOptions;
  readonly #log: Logger;
  readonly #states = new Map<string, ProbeState>();
  #reported = false;
  #timer: NodeJS.Timeout | undefined;
  #round: Promise<unknown> = Promise.resolve();
  #stopped = false;

  constructor(options: ReadinessProberOptions) {
    this.settings = probeSettings(options.settings);
    this.cluster = options.cluster;
    this.#options = options;
    this.#log = options.logger ?? SILENT_LOGGER;
    for (const w of options.workloads) this.#states.set(w.spec.id, { ready: false, successes: 0, failures: 0 });
  }

  /** Whether the workload counts as ready now (undefined: not one of this prober's). */
  ready(workloadId: string): boolean | undefined {
    return this.#states.get(workloadId)?.ready;
  }

  /**
   * One probe of every workload, then the source is updated if any readiness changed (and always after the first
   * round, which replaces the file's health). Returns the changes.
   */
  async tick(): Promise<ReadinessChange[]> {
    const { workloads, identity } = this.#options;
    const results = await Promise.all(workloads.map(async (w) => [w.spec.id, await probeWorkload(w, identity, this.settings.timeoutMs)] as const));
    const changes: ReadinessChange[] = [];
    for (const [id, failure] of results) {
      const state = this.#states.get(id);
      if (!state) continue;
      if (failure === undefined) {
        state.successes++;
        state.failures = 0;
        delete state.reason;
      } else {
        state.failures++;
        state.successes = 0;
        state.reason = failure;
      }
      const ready = state.ready ? state.failures < this.settings.failureThreshold : state.successes >= this.settings.successThreshold;
      if (ready === state.ready) continue;
      state.ready = ready;
      changes.push({ workload: id, ready, ...(state.reason !== undefined ? { reason: state.reason } : {}) });
    }
    if (changes.length > 0 || !this.#reported) {
      this.#report();
      for (const change of changes) this.#log.info({ cluster: this.cluster, ...change }, change.ready ? 'workload ready' : 'workload not ready');
    }
    return changes;
  }

  /** Probes every period from now on (a round that takes longer delays the next one; rounds never overlap). */
  start(): void {
    const loop = (): void => {
      const started = Date.now();
      this.#round = this.tick()
        .catch((error: unknown) => {
          this.#log.error({ cluster: this.cluster, err: { message: (error as Error).message } }, 'readiness probe round failed');
        })
        .finally(() => {
          if (!this.#stopped) this.#timer = setTimeout(loop, Math.max(0, this.settings.periodMs - (Date.now() - started)));
        });
    };
    this.#stopped = false;
    loop();
  }

  /** Stops probing; resolves once a round in flight has finished. */
  async stop(): Promise<void> {
    this.#stopped = true;
    clearTimeout(this.#timer);
    await this.#round;
  }

  #report(): void {
    this.#reported = true;
    const byEndpoint = new Map<string, EndpointHealth>();
    for (const w of this.#options.workloads) {
      const { namespace, service, address } = w.spec;
      byEndpoint.set(`${namespace}/${service}/${address}`, this.#states.get(w.spec.id)?.ready ? 'ready' : 'unready');
    }
    this.#options.source.update(
      this.#options.services.map((s) => ({
        ...s,
        endpoints: s.endpoints.map((e) => {
          const health = byEndpoint.get(`${s.namespace}/${s.name}/${e.address}`);
          return health === undefined ? e : { ...e, health };
        }),
      })),
    );
  }
}
