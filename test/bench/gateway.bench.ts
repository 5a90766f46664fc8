/**
 * The east-west gateway's cost (issue 5): meshfed's gateway (src/gateway/gateway.ts, run in this process as
 * `meshfed gateway` runs it: round robin, Prometheus metrics on, logger silent as the forwarding path logs only at
 * debug) against HAProxy doing the same job, and against no proxy at all.
 *
 * Same endpoints for all three: 2 TLS echo servers on 127.0.0.1 (node's tls, TLS 1.3, an ECDSA P-256 SPIFFE
 * certificate issued by a meshfed CA for this run) in a process of their own (test/bench/gateway-endpoints.ts). The
 * clients are node's tls.connect in another process (test/bench/gateway-clients.ts), with SNI
 * `outbound_.9080_._.echo.bench.svc.cluster.local`, verifying the chain and the SPIFFE ID; every handshake is a full
 * one (no session reuse). The gateways never terminate TLS: they read the ClientHello, route by SNI and splice.
 *
 *   meshfed   startGateway with a RouteTable built directly (one chain: that SNI → its cluster; that cluster's
 *             ClusterLoadAssignment: the 2 endpoints, healthy).
 *   HAProxy   /usr/sbin/haproxy (Debian's package), a child process with a config generated in a temp dir: mode tcp,
 *             `tcp-request inspect-delay 5s`, `tcp-request content accept if { req_ssl_hello_type 1 }`,
 *             `use_backend echo if { req_ssl_sni -i <SNI> }`, backend with the same 2 endpoints, `balance roundrobin`,
 *             `nbthread 1` (one thread, as meshfed's gateway is one Node event loop), otherwise HAProxy's defaults
 *             (so no kernel splicing). Without HAProxy the bench says so and measures meshfed and direct only.
 *   direct    the clients connect to the 2 endpoints themselves, in turn: the baseline.
 *
 *   rate      new TLS connections per second: RATE_COUNT connections per round, CONCURRENCY in flight; each one is
 *             tls.connect → full handshake (through the proxy) → 64-byte ping → its echo → end → closed (both sides).
 *             Rate = RATE_COUNT / wall time of the round, measured in the client process. Also the proxy's CPU time
 *             (user+system) during the round, per connection: process.cpuUsage() of this process for meshfed,
 *             /proc/<pid>/stat for HAProxy. Median over ROUNDS rounds after WARMUP_ROUNDS; the three targets
 *             interleaved, their order rotated each round.
 *   latency   added latency, one connection at a time: per connection, the time from the tls.connect call to the
 *             first echoed byte (TCP connect, full TLS handshake, the ping and its echo); LATENCY_COUNT connections
 *             per target after LATENCY_WARMUP, interleaved connection by connection (direct, meshfed, HAProxy, then
 *             meshfed, HAProxy, direct, ...), so that noise falls on all three alike. Added p50 = p50(through the
 *             proxy) − p50(direct); the same for p99 (differences of percentiles, not percentiles of differences).
 *   bulk      throughput: BULK_CONNECTIONS long-lived connections (opened before the clock starts) each write
 *             BULK_BYTES in 64 KiB chunks, with backpressure, and read the echo back; MiB/s = BULK_CONNECTIONS ×
 *             BULK_BYTES / the time until the last echoed byte is back, so each counted byte crossed the proxy
 *             twice (up and back). Also the proxy's CPU time per MiB. Median over ROUNDS after WARMUP_ROUNDS,
 *             interleaved and rotated as for rate.
 *
 * The endpoints, the clients and the proxy share 2 cores here, so a round is bounded by whichever saturates first;
 * the proxy's CPU per connection or per MiB says what the proxy itself costs. For rate and bulk each target also
 * gets a line of CPU shares (CPU seconds / wall seconds of the round, medians): the proxy's (meshfed: this process,
 * which does nothing else during a round but wait for the client process's answer), the client process's
 * (process.cpuUsage() there) and the endpoints process's (/proc/<pid>/stat). TLS's AEAD protects every byte end to
 * end, so a proxy that lost or changed a byte would fail the connection, which fails the bench. Every wait is
 * bounded (WAIT_LIMIT_MS, and per connection in the client process); the numbers are printed, never judged.
 *
 * MESHFED_GATEWAY_BENCH=rate,latency (any of rate, latency, bulk; default all three) runs only those sections, each
 * as in a full run, and prints the others as skipped. A section run alone starts colder (no earlier section has run
 * connections through the proxies), so compare its numbers only with runs of the same selection.
 */
import { execFileSync, fork, spawn, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { accessSync, constants, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect as netConnect, createServer as netCreateServer } from 'node:net';
import { availableParallelism, loadavg, tmpdir } from 'node:os';
import { delimiter, join } from 'node:path';
import { startGateway, type GatewayHandle } from '../../src/gateway/gateway.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';
import type { RouteSource } from '../../src/gateway/route-sources.js';
import { RouteTable } from '../../src/gateway/route-table.js';
import { workloadIdentity } from '../../src/sim/trust-demo.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { HEALTH_STATUS } from '../../src/xds/envoy-protos.js';
import type { ClusterLoadAssignmentObject } from '../../src/xds/resources/endpoints.js';
import type { ClientsReply, ClientsRequest } from './gateway-clients.js';
import type { EndpointsReply, EndpointsRequest } from './gateway-endpoints.js';
import { median } from './measure.js';

const SNI = 'outbound_.9080_._.echo.bench.svc.cluster.local';
const CLUSTER = SNI;
const ENDPOINTS = 2;
const WARMUP_ROUNDS = 1;
const ROUNDS = 5;
const RATE_COUNT = 1000;
const CONCURRENCY = 32;
const LATENCY_WARMUP = 50;
const LATENCY_COUNT = 500;
const BULK_CONNECTIONS = 4;
const MIB = 1024 * 1024;
const BULK_BYTES = 64 * MIB;
const TARGET_RATE_RATIO = 0.95;
const TARGET_ADDED_P50_MS = 0.3;
const TARGET_BULK_RATIO = 0.8;
/** every wait below is bounded: a stuck run fails instead of hanging */
const WAIT_LIMIT_MS = 180_000;
const SECTIONS = new Set((process.env.MESHFED_GATEWAY_BENCH ?? 'rate,latency,bulk').split(',').map((s) => s.trim()));
const HAPROXY_PATHS = ['/usr/sbin/haproxy', ...(process.env.PATH ?? '').split(delimiter).map((dir) => join(dir, 'haproxy'))];

type Name = 'direct' | 'meshfed' | 'HAProxy';

interface Target {
  name: Name;
  /** where the clients connect: the proxy's port, or the endpoints' ports in turn */
  ports: number[];
  /** the proxy's CPU time so far, in seconds (none for direct) */
  cpuSeconds?: () => number;
}

/**
 * Sends `message` to `child` and resolves with the first reply `pick` accepts (a reply is the child's own message
 * type, which pick casts it to); rejects when pick throws, after WAIT_LIMIT_MS, or when the child exits.
 */
function ask<R>(child: ChildProcess, message: object, pick: (reply: unknown) => R | undefined, what: string): Promise<R> {
  return new Promise<R>((resolve, reject) => {
    const done = (): void => {
      clearTimeout(timer);
      child.off('message', onMessage);
      child.off('exit', onExit);
    };
    const timer = setTimeout(() => {
      done();
      reject(new Error(`${what}: no answer within ${WAIT_LIMIT_MS} ms`));
    }, WAIT_LIMIT_MS);
    const onMessage = (reply: unknown): void => {
      let picked: R | undefined;
      try {
        picked = pick(reply);
      } catch (error) {
        done();
        reject(error instanceof Error ? error : new Error(String(error)));
        return;
      }
      if (picked === undefined) return;
      done();
      resolve(picked);
    };
    const onExit = (code: number | null): void => {
      done();
      reject(new Error(`${what}: the process exited (code ${String(code)})`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
    child.send(message);
  });
}

type WithoutId<T> = T extends unknown ? Omit<T, 'id'> : never;
type Timed = Extract<ClientsReply, { op: 'timed' }>;

/** The client process. */
class Clients {
  readonly child = fork(new URL('./gateway-clients.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  #id = 0;

  #ask<Op extends 'timed' | 'latency'>(message: WithoutId<Extract<ClientsRequest, { id: number }>>, op: Op): Promise<Extract<ClientsReply, { op: Op }>> {
    const id = ++this.#id;
    return ask(
      this.child,
      { ...message, id },
      (answer: unknown) => {
        const reply = answer as ClientsReply;
        if (reply.id !== id) return undefined;
        if (reply.op === 'failed') throw new Error(`client process, ${message.op}: ${reply.message}`);
        if (reply.op !== op) throw new Error(`client process answered ${reply.op} to ${message.op}`);
        return reply as Extract<ClientsReply, { op: Op }>;
      },
      `client process, ${message.op}`,
    );
  }

  setup(ca: string, peer: string): void {
    this.child.send({ op: 'setup', ca, servername: SNI, peer } satisfies ClientsRequest);
  }

  rate(ports: number[]): Promise<Timed> {
    return this.#ask({ op: 'rate', ports, count: RATE_COUNT, concurrency: CONCURRENCY }, 'timed');
  }

  bulk(ports: number[]): Promise<Timed> {
    return this.#ask({ op: 'bulk', ports, connections: BULK_CONNECTIONS, bytes: BULK_BYTES }, 'timed');
  }

  async latency(targets: number[][], count: number): Promise<number[][]> {
    const reply = await this.#ask({ op: 'latency', targets, count }, 'latency');
    return reply.ms;
  }

  async stop(): Promise<void> {
    await stopChild(this.child, { op: 'stop' } satisfies ClientsRequest);
  }
}

async function stopChild(child: ChildProcess, stop: object): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = once(child, 'exit');
  if (child.connected) child.send(stop);
  await Promise.race([exited, new Promise((done) => setTimeout(done, 5000))]);
  child.kill('SIGKILL');
}

/** The echo endpoints' process; resolves with it and its servers' ports. */
async function startEndpoints(key: string, cert: string): Promise<{ child: ChildProcess; ports: number[] }> {
  const child = fork(new URL('./gateway-endpoints.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
  try {
    const ports = await ask(
      child,
      { op: 'start', servers: ENDPOINTS, key, cert } satisfies EndpointsRequest,
      (answer: unknown) => {
        const reply = answer as EndpointsReply;
        if (reply.op === 'failed') throw new Error(`endpoints process: ${reply.message}`);
        return reply.ports;
      },
      'endpoints process, start',
    );
    return { child, ports };
  } catch (error) {
    child.kill('SIGKILL');
    throw error;
  }
}

/** A RouteSource that always has the same table. */
function staticRoutes(ports: number[]): RouteSource {
  const assignment: ClusterLoadAssignmentObject = {
    cluster_name: CLUSTER,
    endpoints: [
      {
        locality: {},
        lb_endpoints: ports.map((port) => ({
          endpoint: { address: { socket_address: { address: '127.0.0.1', port_value: port } } },
          health_status: HEALTH_STATUS.HEALTHY,
          load_balancing_weight: { value: 1 },
        })),
        load_balancing_weight: { value: ports.length },
      },
    ],
  };
  const table = new RouteTable([{ serverNames: [SNI], cluster: CLUSTER }], new Map([[CLUSTER, assignment]]));
  const resolved = table.resolve(SNI);
  if (resolved.kind !== 'route' || resolved.route.targets.length !== ports.length) throw new Error(`the route table does not lead ${SNI} to the ${ports.length} endpoints`);
  return { current: () => table, ready: () => true, close: () => undefined };
}

function findHaproxy(): string | undefined {
  return HAPROXY_PATHS.find((path) => {
    try {
      accessSync(path, constants.X_OK);
      return true;
    } catch {
      return false;
    }
  });
}

async function freePort(): Promise<number> {
  const server = netCreateServer();
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', resolve);
  });
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => { resolve(); }));
  if (typeof address !== 'object' || address === null) throw new Error('no free port');
  return address.port;
}

/** Resolves once something accepts TCP on 127.0.0.1:`port`; rejects if `alive` turns false or after 10 s. */
async function accepting(port: number, alive: () => boolean, what: () => string): Promise<void> {
  const deadline = Date.now() + 10_000;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const probe = netConnect(port, '127.0.0.1');
      probe.once('connect', () => {
        probe.destroy();
        resolve(true);
      });
      probe.once('error', () => {
        resolve(false);
      });
    });
    if (ok) return;
    if (!alive() || Date.now() > deadline) throw new Error(what());
    await new Promise((done) => setTimeout(done, 20));
  }
}

const haproxyConfig = (port: number, endpoints: number[]): string =>
  [
    'global',
    '  nbthread 1',
    '  maxconn 4096',
    'defaults',
    '  mode tcp',
    '  maxconn 4096',
    '  timeout connect 5s',
    '  timeout client 60s',
    '  timeout server 60s',
    'frontend gateway',
    `  bind 127.0.0.1:${port}`,
    '  tcp-request inspect-delay 5s',
    '  tcp-request content accept if { req_ssl_hello_type 1 }',
    `  use_backend echo if { req_ssl_sni -i ${SNI} }`,
    'backend echo',
    '  balance roundrobin',
    ...endpoints.map((p, i) => `  server e${i + 1} 127.0.0.1:${p}`),
    '',
  ].join('\n');

interface Haproxy {
  version: string;
  port: number;
  cpuSeconds: () => number;
  stop: () => Promise<void>;
}

/** HAProxy as a child process on a free port, killed when this process exits if stop() was not reached. */
async function startHaproxy(bin: string, dir: string, endpoints: number[]): Promise<Haproxy> {
  const version = /HAProxy version (\S+)/.exec(execFileSync(bin, ['-v']).toString())?.[1] ?? 'unknown';
  const port = await freePort();
  const config = join(dir, 'haproxy.cfg');
  writeFileSync(config, haproxyConfig(port, endpoints));
  const child = spawn(bin, ['-db', '-f', config], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr.on('data', (d: Buffer) => {
    if (stderr.length < 4000) stderr += d.toString();
  });
  const kill = (): void => {
    child.kill('SIGKILL');
  };
  process.once('exit', kill);
  const stop = async (): Promise<void> => {
    process.off('exit', kill);
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = once(child, 'exit');
    child.kill('SIGTERM');
    await Promise.race([exited, new Promise((done) => setTimeout(done, 5000))]);
    kill();
  };
  try {
    await accepting(
      port,
      () => child.exitCode === null,
      () => `HAProxy did not start listening on 127.0.0.1:${port}: ${stderr.trim() || '(no output)'}`,
    );
  } catch (error) {
    await stop();
    throw error;
  }
  const pid = child.pid ?? 0;
  return { version, port, cpuSeconds: () => processCpuSeconds(pid), stop };
}

let ticksPerSecond: number | undefined;

/** The CPU time (user+system) of process `pid` so far, from fields 14 and 15 of /proc/PID/stat (Linux). */
function processCpuSeconds(pid: number): number {
  ticksPerSecond ??= Number(execFileSync('getconf', ['CLK_TCK']).toString().trim());
  const stat = readFileSync(`/proc/${String(pid)}/stat`, 'utf8');
  // the fields after the parenthesised command name, which may hold spaces, start with field 3
  const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return (Number(fields[11]) + Number(fields[12])) / ticksPerSecond;
}

const cpuOfThisProcess = (): number => {
  const usage = process.cpuUsage();
  return (usage.user + usage.system) / 1e6;
};

/** nearest rank */
const percentile = (values: number[], p: number): number => [...values].sort((a, b) => a - b)[Math.max(Math.ceil(p * values.length) - 1, 0)] ?? 0;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

interface RoundSample {
  /** per second (rate) or MiB/s (bulk) */
  value: number;
  /** the round's wall seconds */
  seconds: number;
  /** the proxy's CPU seconds during the round */
  proxyCpu?: number;
  /** the client process's CPU seconds during the round */
  clientsCpu: number;
  /** the endpoints process's CPU seconds during the round */
  endpointsCpu: number;
}

/** Runs `measure` for every target in interleaved rounds (order rotated each round); the samples after warm-up. */
async function rounds(targets: Target[], endpointsCpu: () => number, measure: (t: Target) => Promise<Timed>, value: (t: Timed) => number): Promise<Map<Name, RoundSample[]>> {
  const samples = new Map<Name, RoundSample[]>(targets.map((t) => [t.name, []]));
  for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
    for (let j = 0; j < targets.length; j++) {
      const target = targets[(round + j) % targets.length];
      if (!target) continue;
      const cpu0 = target.cpuSeconds?.();
      const endpoints0 = endpointsCpu();
      const timed = await measure(target);
      const cpu1 = target.cpuSeconds?.();
      const endpoints = endpointsCpu() - endpoints0;
      if (round < WARMUP_ROUNDS) continue;
      const proxy = cpu0 !== undefined && cpu1 !== undefined ? { proxyCpu: cpu1 - cpu0 } : {};
      samples.get(target.name)?.push({ value: value(timed), seconds: timed.seconds, clientsCpu: timed.cpuSeconds, endpointsCpu: endpoints, ...proxy });
    }
  }
  return samples;
}

const PAD = 9;

/** One line per target: the medians and every round; for a proxy also its CPU per unit of work and its busy share. */
function printRounds(samples: Map<Name, RoundSample[]>, unit: string, cpuPer: { unit: string; of: (s: RoundSample) => number }): void {
  for (const [name, list] of samples) {
    const values = list.map((s) => s.value);
    const proxied = list.filter((s) => s.proxyCpu !== undefined);
    const busy = (cpu: (s: RoundSample) => number): string => `${(median(list.map((s) => cpu(s) / s.seconds)) * 100).toFixed(0)}%`;
    const proxyText = proxied.length === 0 ? '' : `proxy ${busy((s) => s.proxyCpu ?? 0)} (${fmt(median(proxied.map(cpuPer.of)))} ${cpuPer.unit}), `;
    console.log(`  ${`${name}:`.padEnd(PAD)} median ${fmt(median(values))} ${unit} (rounds ${values.map(fmt).join(' / ')})`);
    console.log(`  ${''.padEnd(PAD)} CPU, share of a core: ${proxyText}clients ${busy((s) => s.clientsCpu)}, endpoints ${busy((s) => s.endpointsCpu)}`);
  }
}

export async function run(): Promise<void> {
  const load = loadavg();
  console.log(`machine: ${availableParallelism()} cores, node ${process.version}, load average at start ${load.map((l) => l.toFixed(2)).join(' / ')} (1 / 5 / 15 min)`);
  const haproxyBin = findHaproxy();
  const dir = mkdtempSync(join(tmpdir(), 'meshfed-gateway-bench-'));
  const cleanups: (() => Promise<void> | void)[] = [
    () => {
      rmSync(dir, { recursive: true, force: true });
    },
  ];
  try {
    const { authority } = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'bench.meshfed' }, {});
    authority.issueIntermediate('bench');
    const identity = workloadIdentity(authority, 'bench', 'echo', 'bench');
    const endpoints = await startEndpoints(identity.tls.key, identity.tls.cert);
    cleanups.push(() => stopChild(endpoints.child, { op: 'stop' } satisfies EndpointsRequest));
    const clients = new Clients();
    cleanups.push(() => clients.stop());
    clients.setup(identity.tls.ca, identity.spiffeId);

    const gateway: GatewayHandle = await startGateway({ host: '127.0.0.1', port: 0, routes: staticRoutes(endpoints.ports), metrics: new GatewayMetrics() });
    cleanups.push(() => gateway.close());
    const targets: Target[] = [
      { name: 'direct', ports: endpoints.ports },
      { name: 'meshfed', ports: [gateway.port], cpuSeconds: cpuOfThisProcess },
    ];
    let haproxy: Haproxy | undefined;
    if (haproxyBin === undefined) {
      console.log('haproxy: NOT FOUND (looked for /usr/sbin/haproxy and haproxy on PATH): the HAProxy comparison is skipped. Install it with `apt-get install haproxy` (Debian/Ubuntu).');
    } else {
      haproxy = await startHaproxy(haproxyBin, dir, endpoints.ports);
      cleanups.push(haproxy.stop);
      targets.push({ name: 'HAProxy', ports: [haproxy.port], cpuSeconds: haproxy.cpuSeconds });
      console.log(`haproxy: ${haproxy.version} (${haproxyBin}), nbthread 1: one thread, as meshfed's gateway is one Node event loop; mode tcp, SNI read by req_ssl_sni, defaults otherwise`);
    }
    console.log(
      `endpoints: ${ENDPOINTS} TLS 1.3 echo servers (node tls, ECDSA P-256 SPIFFE certificate from a meshfed CA) in one process; clients (node tls.connect, full handshakes, SNI ${SNI}) in another; meshfed's gateway in this one`,
    );
    console.log(`rounds: the targets interleaved, their order rotated each round; medians of ${ROUNDS} rounds after ${WARMUP_ROUNDS} warm-up`);

    // ---- new connections per second ----
    const endpointsCpu = (): number => processCpuSeconds(endpoints.child.pid ?? 0);
    const rate = SECTIONS.has('rate')
      ? await rounds(
          targets,
          endpointsCpu,
          (t) => clients.rate(t.ports),
          (timed) => RATE_COUNT / timed.seconds,
        )
      : undefined;
    // ---- added latency ----
    let latencyMs: number[][] | undefined;
    if (SECTIONS.has('latency')) {
      await clients.latency(
        targets.map((t) => t.ports),
        LATENCY_WARMUP,
      );
      latencyMs = await clients.latency(
        targets.map((t) => t.ports),
        LATENCY_COUNT,
      );
    }
    // ---- bulk ----
    const bulk = SECTIONS.has('bulk')
      ? await rounds(
          targets,
          endpointsCpu,
          (t) => clients.bulk(t.ports),
          (timed) => (BULK_CONNECTIONS * BULK_BYTES) / MIB / timed.seconds,
        )
      : undefined;

    console.log('');
    if (rate === undefined) console.log('new TLS connections per second: skipped (MESHFED_GATEWAY_BENCH)');
    else {
      console.log(`new TLS connections per second (full handshake + 64-byte echo + close; ${CONCURRENCY} in flight; ${fmt(RATE_COUNT)} connections per round):`);
      printRounds(rate, 'conn/s', { unit: 'µs per connection', of: (s) => ((s.proxyCpu ?? 0) * 1e6) / RATE_COUNT });
      const rateOf = (name: Name): number => median(rate.get(name)?.map((s) => s.value) ?? []);
      const cpuPerConn = (name: Name): number => median(rate.get(name)?.map((s) => ((s.proxyCpu ?? 0) * 1e6) / RATE_COUNT) ?? []);
      console.log(`  meshfed/direct ${(rateOf('meshfed') / rateOf('direct')).toFixed(2)}`);
      if (haproxy) {
        const ratio = rateOf('meshfed') / rateOf('HAProxy');
        console.log(`  HAProxy/direct ${(rateOf('HAProxy') / rateOf('direct')).toFixed(2)}`);
        console.log(`  meshfed/HAProxy ${ratio.toFixed(2)} (target >= ${TARGET_RATE_RATIO}: ${ratio >= TARGET_RATE_RATIO ? 'met' : 'NOT met'}); proxy CPU per connection meshfed/HAProxy ${(cpuPerConn('meshfed') / cpuPerConn('HAProxy')).toFixed(2)}×`);
      }

    }
    if (latencyMs === undefined) console.log('added latency: skipped (MESHFED_GATEWAY_BENCH)');
    else {
      console.log(`added latency (tls.connect to first echoed byte, one connection at a time, ${LATENCY_COUNT} per target after ${LATENCY_WARMUP}, interleaved connection by connection):`);
      const direct = latencyMs[targets.findIndex((t) => t.name === 'direct')] ?? [];
      const p = (values: number[], q: number): string => `${percentile(values, q).toFixed(3)} ms`;
      const added: Partial<Record<Name, { p50: number; p99: number }>> = {};
      for (const [i, target] of targets.entries()) {
        const values = latencyMs[i] ?? [];
        let extra = '';
        if (target.name !== 'direct') {
          const a = { p50: percentile(values, 0.5) - percentile(direct, 0.5), p99: percentile(values, 0.99) - percentile(direct, 0.99) };
          added[target.name] = a;
          extra = `; added p50 ${a.p50.toFixed(3)} ms, added p99 ${a.p99.toFixed(3)} ms`;
        }
        console.log(`  ${`${target.name}:`.padEnd(PAD)} p50 ${p(values, 0.5)}, p90 ${p(values, 0.9)}, p99 ${p(values, 0.99)}${extra}`);
      }
      const meshfedAdded = added.meshfed;
      const haproxyAdded = added.HAProxy;
      if (meshfedAdded && haproxyAdded) {
        const gap = meshfedAdded.p50 - haproxyAdded.p50;
        console.log(
          `  meshfed's added p50 − HAProxy's: ${gap.toFixed(3)} ms (target <= ${TARGET_ADDED_P50_MS} ms: ${gap <= TARGET_ADDED_P50_MS ? 'met' : 'NOT met'}); added p99 − HAProxy's: ${(meshfedAdded.p99 - haproxyAdded.p99).toFixed(3)} ms`,
        );
      }

    }
    if (bulk === undefined) console.log('bulk throughput: skipped (MESHFED_GATEWAY_BENCH)');
    else {
      console.log(`bulk throughput (${BULK_CONNECTIONS} connections × ${BULK_BYTES / MIB} MiB written and echoed back; MiB/s of payload, each byte crossing the proxy up and back):`);
      printRounds(bulk, 'MiB/s', { unit: 'µs per MiB', of: (s) => ((s.proxyCpu ?? 0) * 1e6 * MIB) / (BULK_CONNECTIONS * BULK_BYTES) });
      const bulkOf = (name: Name): number => median(bulk.get(name)?.map((s) => s.value) ?? []);
      console.log(`  meshfed/direct ${(bulkOf('meshfed') / bulkOf('direct')).toFixed(2)}`);
      if (haproxy) {
        const ratio = bulkOf('meshfed') / bulkOf('HAProxy');
        console.log(`  HAProxy/direct ${(bulkOf('HAProxy') / bulkOf('direct')).toFixed(2)}`);
        console.log(`  meshfed/HAProxy ${ratio.toFixed(2)} (target >= ${TARGET_BULK_RATIO}: ${ratio >= TARGET_BULK_RATIO ? 'met' : 'NOT met'})`);
      }
    }
    console.log(`load average at end ${loadavg().map((l) => l.toFixed(2)).join(' / ')}`);
  } finally {
    for (const cleanup of cleanups.reverse()) await cleanup();
  }
}
