/**
 * meshfed's own health probes of the federation's east-west gateways, so that a gateway clients cannot reach (its
 * process gone, or a network partition dropping its packets) stops being offered to other networks within a few
 * seconds, instead of waiting for every client's outlier detection (Envoy's default interval is 10 s; proxyless gRPC
 * clients often run none) while calls into it time out.
 *
 * What is probed, and why: the gateway's data path itself, the address and port (15443) the clients use. A probe is a
 * TCP connect and a TLS ClientHello with a server name no service has (PROBE_SERVER_NAME); the gateway is reachable
 * when it answers in any way within the timeout: a TLS alert (meshfed's gateway: unrecognized_name), a ServerHello,
 * or closing the connection (Envoy with no filter chain for the name). It is unreachable when the connect fails or
 * nothing comes back in time, which is what a partition looks like: packets dropped, connections stalling. Istio's
 * status port (15021 /healthz/ready) says whether the gateway process is ready, but it is often not exposed through
 * the gateway's load balancer and tells nothing of the path on 15443; the ClientHello round trip needs no port or
 * setting beyond what a gateway already has. No byte of application data is sent and nothing is verified: the probe
 * only asks whether the gateway answers.
 *
 * Like a Kubernetes probe: every `periodMs` (the next probe of a gateway starts when the last ended, at least a
 * period after it began), each bounded by `timeoutMs`; `failureThreshold` failures in a row make a gateway
 * unreachable, `successThreshold` successes in a row reachable again. Every gateway is reachable until proven
 * otherwise. Results go to the registry (Registry.setGatewayReachability), so they reach the snapshot and the
 * topology decides what to withhold (src/topology/split-horizon.ts). Metrics meshfed_gateway_probe_*; a log line on
 * every change of state. Only IP-literal gateways are probed: the topology uses no other.
 *
 * It lives in the registry layer: it adds to what meshfed knows of each cluster (like its sources and the clusters'
 * health), and imports nothing above it.
 */
import { isIP, connect as tcpConnect, type Socket } from 'node:net';
import { connect as tlsConnect, type TLSSocket } from 'node:tls';
import { Counter, Gauge, Histogram, type Registry as PromRegistry } from 'prom-client';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import type { Registry } from './registry.js';
import type { FederatedSnapshot } from './snapshot.js';

/** a name under .invalid (RFC 6761): no service can have it, so no gateway forwards the probe anywhere */
export const PROBE_SERVER_NAME = 'meshfed-gateway-probe.invalid';

export interface GatewayProbeOptions {
  /** default 1 s */
  periodMs?: number;
  /** each probe, connect included; default 1 s */
  timeoutMs?: number;
  /** failures in a row that make a gateway unreachable; default 3 */
  failureThreshold?: number;
  /** successes in a row that make it reachable again; default 1 */
  successThreshold?: number;
  logger?: Logger;
  /** where the meshfed_gateway_probe_* metrics are registered; none when absent */
  metrics?: PromRegistry;
}

export interface GatewayProbeSettings {
  periodMs: number;
  timeoutMs: number;
  failureThreshold: number;
  successThreshold: number;
}

export const DEFAULT_GATEWAY_PROBE: Readonly<GatewayProbeSettings> = Object.freeze({ periodMs: 1_000, timeoutMs: 1_000, failureThreshold: 3, successThreshold: 1 });

export type ProbeResult = { ok: true } | { ok: false; reason: string };

const seconds = (ms: number): string => `${String(Math.round(ms) / 1000)} s`;

/** One probe of the gateway at `address`:`port`: does it answer a ClientHello within `timeoutMs`? */
export function probeGateway(address: string, port: number, timeoutMs: number): Promise<ProbeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let tls: TLSSocket | undefined;
    const socket: Socket = tcpConnect({ host: address, port });
    const finish = (result: ProbeResult): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      tls?.destroy();
      socket.destroy();
      resolve(result);
    };
    const timer = setTimeout(() => {
      finish({ ok: false, reason: tls ? `no answer to a ClientHello within ${seconds(timeoutMs)}` : `connect timed out (${seconds(timeoutMs)})` });
    }, timeoutMs);
    socket.once('error', (error: NodeJS.ErrnoException) => {
      if (!tls) finish({ ok: false, reason: `connect ${error.code ?? error.message}` });
    });
    socket.once('connect', () => {
      // any answer, even a refusal, is the gateway answering
      tls = tlsConnect({ socket, servername: PROBE_SERVER_NAME, rejectUnauthorized: false });
      const answered = (): void => {
        finish({ ok: true });
      };
      tls.once('secureConnect', answered);
      tls.once('error', answered);
      tls.once('end', answered);
      tls.once('close', answered);
    });
  });
}

interface ProbedGateway {
  cluster: string;
  address: string;
  port: number;
  label: string;
  down: boolean;
  failures: number;
  successes: number;
  timer?: NodeJS.Timeout;
  /** false once the gateway left the federation (or the prober stopped) */
  live: boolean;
  running?: Promise<void>;
}

class ProbeMetrics {
  readonly #probes: Counter<'cluster' | 'gateway' | 'result'>;
  readonly #duration: Histogram<'cluster' | 'gateway'>;
  readonly #reachable: Gauge<'cluster' | 'gateway'>;
  readonly #transitions: Counter<'cluster' | 'gateway' | 'to'>;

  constructor(registry: PromRegistry) {
    const registers = [registry];
    const labelNames = ['cluster', 'gateway'] as const;
    this.#probes = new Counter({ name: 'meshfed_gateway_probe_total', help: 'Health probes of east-west gateways, by result (success, failure)', labelNames: [...labelNames, 'result'], registers });
    this.#duration = new Histogram({ name: 'meshfed_gateway_probe_duration_seconds', help: 'Time until the gateway answered the probe, or the probe failed', labelNames, buckets: [0.001, 0.005, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5], registers });
    this.#reachable = new Gauge({ name: 'meshfed_gateway_probe_reachable', help: '1 while the probes find the gateway reachable, 0 while they find it down', labelNames, registers });
    this.#transitions = new Counter({ name: 'meshfed_gateway_probe_transitions_total', help: 'Gateways found down (to=unreachable) or back (to=reachable)', labelNames: [...labelNames, 'to'], registers });
  }

  probed(gw: ProbedGateway, ok: boolean, secondsTaken: number): void {
    const labels = { cluster: gw.cluster, gateway: gw.label };
    this.#probes.inc({ ...labels, result: ok ? 'success' : 'failure' });
    this.#duration.observe(labels, secondsTaken);
  }

  state(gw: ProbedGateway, changed: boolean): void {
    const labels = { cluster: gw.cluster, gateway: gw.label };
    this.#reachable.set(labels, gw.down ? 0 : 1);
    if (changed) this.#transitions.inc({ ...labels, to: gw.down ? 'unreachable' : 'reachable' });
  }

  forget(gw: ProbedGateway): void {
    const labels = { cluster: gw.cluster, gateway: gw.label };
    this.#reachable.remove(labels);
    this.#duration.remove(labels);
    for (const result of ['success', 'failure']) this.#probes.remove({ ...labels, result });
    for (const to of ['unreachable', 'reachable']) this.#transitions.remove({ ...labels, to });
  }
}

/** Checks the prober's numbers; throws naming the bad one. */
function settings(options: GatewayProbeOptions): GatewayProbeSettings {
  const chosen = {
    periodMs: options.periodMs ?? DEFAULT_GATEWAY_PROBE.periodMs,
    timeoutMs: options.timeoutMs ?? DEFAULT_GATEWAY_PROBE.timeoutMs,
    failureThreshold: options.failureThreshold ?? DEFAULT_GATEWAY_PROBE.failureThreshold,
    successThreshold: options.successThreshold ?? DEFAULT_GATEWAY_PROBE.successThreshold,
  };
  for (const [name, value] of Object.entries(chosen)) {
    if (!Number.isInteger(value) || value < 1) throw new Error(`gateway probe ${name} must be a whole number of at least 1, not ${String(value)}`);
  }
  return chosen;
}

/** Probes every gateway of the registry's snapshot until `stop()`, following the snapshot as gateways come and go. */
export class GatewayProber {
  readonly #registry: Pick<Registry, 'snapshot' | 'subscribe' | 'setGatewayReachability'>;
  readonly #settings: GatewayProbeSettings;
  readonly #log: Logger;
  readonly #metrics: ProbeMetrics | undefined;
  readonly #gateways = new Map<string, ProbedGateway>();
  #unsubscribe: (() => void) | undefined;

  constructor(registry: Pick<Registry, 'snapshot' | 'subscribe' | 'setGatewayReachability'>, options: GatewayProbeOptions = {}) {
    this.#registry = registry;
    this.#settings = settings(options);
    this.#log = options.logger ?? SILENT_LOGGER;
    this.#metrics = options.metrics ? new ProbeMetrics(options.metrics) : undefined;
  }

  get settings(): Readonly<GatewayProbeSettings> {
    return this.#settings;
  }

  start(): void {
    if (this.#unsubscribe) return;
    this.#unsubscribe = this.#registry.subscribe((snapshot) => {
      this.#follow(snapshot);
    });
    this.#follow(this.#registry.snapshot());
  }

  /** Stops probing; resolves when the probes under way have ended (each is bounded by the timeout). */
  async stop(): Promise<void> {
    this.#unsubscribe?.();
    this.#unsubscribe = undefined;
    const running = [...this.#gateways.values()].map((gw) => this.#drop(gw));
    this.#gateways.clear();
    await Promise.all(running);
  }

  /** Starts probing the snapshot's new gateways, stops probing those that left. */
  #follow(snapshot: FederatedSnapshot): void {
    const wanted = new Map<string, { cluster: string; address: string; port: number }>();
    for (const [cluster, view] of snapshot.clusters) {
      if (view.state === 'evicted') continue;
      for (const gw of view.gateways) {
        if (isIP(gw.address) === 0) continue;
        wanted.set(`${cluster}|${gw.address}|${String(gw.port)}`, { cluster, address: gw.address, port: gw.port });
      }
    }
    for (const [key, gw] of this.#gateways) {
      if (wanted.has(key)) continue;
      this.#gateways.delete(key);
      void this.#drop(gw);
    }
    for (const [key, { cluster, address, port }] of wanted) {
      if (this.#gateways.has(key)) continue;
      const label = `${isIP(address) === 6 ? `[${address}]` : address}:${String(port)}`;
      const gw: ProbedGateway = { cluster, address, port, label, down: false, failures: 0, successes: 0, live: true };
      this.#gateways.set(key, gw);
      this.#metrics?.state(gw, false);
      this.#schedule(gw, 0);
    }
  }

  /** Stops probing a gateway; what it found no longer holds (nothing probes it now), so a down one is cleared. */
  async #drop(gw: ProbedGateway): Promise<void> {
    gw.live = false;
    clearTimeout(gw.timer);
    this.#metrics?.forget(gw);
    if (gw.down) this.#registry.setGatewayReachability(gw.cluster, gw.address, gw.port, undefined);
    await gw.running;
  }

  #schedule(gw: ProbedGateway, delayMs: number): void {
    if (!gw.live) return;
    gw.timer = setTimeout(() => {
      gw.running = this.#probe(gw);
    }, delayMs);
    gw.timer.unref();
  }

  async #probe(gw: ProbedGateway): Promise<void> {
    const started = performance.now();
    const result = await probeGateway(gw.address, gw.port, this.#settings.timeoutMs);
    const tookMs = performance.now() - started;
    if (!gw.live) return;
    this.#metrics?.probed(gw, result.ok, tookMs / 1000);
    this.#record(gw, result);
    this.#schedule(gw, Math.max(0, this.#settings.periodMs - tookMs));
  }

  #record(gw: ProbedGateway, result: ProbeResult): void {
    const where = { cluster: gw.cluster, gateway: gw.label };
    if (result.ok) {
      gw.failures = 0;
      gw.successes++;
      if (!gw.down || gw.successes < this.#settings.successThreshold) return;
      gw.down = false;
      this.#log.info({ ...where, successes: gw.successes }, 'gateway reachable again: its endpoints are offered to other networks');
      this.#registry.setGatewayReachability(gw.cluster, gw.address, gw.port, undefined);
      this.#metrics?.state(gw, true);
      return;
    }
    gw.successes = 0;
    gw.failures++;
    if (gw.down || gw.failures < this.#settings.failureThreshold) return;
    gw.down = true;
    this.#log.warn({ ...where, failures: gw.failures, reason: result.reason }, 'gateway unreachable: its endpoints are withheld from other networks');
    this.#registry.setGatewayReachability(gw.cluster, gw.address, gw.port, { reason: result.reason });
    this.#metrics?.state(gw, true);
  }
}
