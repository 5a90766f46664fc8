/**
 * The ADS server's cost (issue 4): meshfed's SotW ADS server (src/xds/ads-server.ts) serving the federation provider
 * (src/xds/federation-provider.ts) over a registry of 3 clusters (3 networks, each with an east-west gateway and
 * endpoints in 2 zones) × 100 services × 8 endpoints per cluster. Proxyless clients (GENERATOR=grpc) stand in 6 views
 * (3 clusters × 2 zones), so EDS really is built per view. The clients are raw ADS streams in a separate process
 * (test/bench/xds-clients-host.ts) that ACK every response at once, over 100 HTTP/2 connections.
 *
 *   fan-out   one endpoint change (an endpoint of svc-0 in c1 flips ready/unready, which changes svc-0's assignment
 *             in every view) pushed to N streams all subscribed to svc-0's EDS: the time from the change (source
 *             event, registry.flush(), provider.flush()) until the client process has had the new version on every
 *             stream and sent every ACK (its report arriving here ends the clock; the server's ACK counter is then
 *             checked to reach N as well).
 *   ceiling   the same N streams (same client process, same ACKing) on a bare @grpc/grpc-js server in this process
 *             with the same ADS method definition, whose response serializer passes through bytes: on trigger it
 *             writes one pre-encoded DiscoveryResponse per view (the very resource bytes meshfed sends to that view,
 *             encoded once) to every open stream. Same timing. The ratio is fan-out / ceiling.
 *   cpu       1,000 streams, each proxy subscribed to the EDS of 10 of the 100 services; then 1,000 endpoint changes
 *             (each flips one endpoint of one service in one cluster, ready/unready), applied through the registry as
 *             a Kubernetes source reports them (one service event each), in 20 batches of 50 followed by
 *             registry.flush() + provider.flush(). That is what the provider's 100 ms debounce makes of ~500 changes
 *             per second: every batch is one push round, and a batch touches enough services that nearly every proxy
 *             gets a push each round (an EDS push carries the assignments that changed, about half of its 10). Each
 *             round waits until every push is ACKed. process.cpuUsage() (user+system, every thread of this process)
 *             from the first change to the last ACK.
 *   cpu ref   the same 1,000 streams on the bare grpc-js server, which writes every stream, in as many rounds, one
 *             pre-encoded response of its view holding 5 assignments (what a push carries on average here) and counts
 *             the ACKs: what grpc-js alone spends to push and hear back as much, next to meshfed's figure.
 *   memory    heap used (after a forced GC when node runs with --expose-gc) with the streams open minus before they
 *             were opened, per stream: the server's side of each stream (grpc-js call, HTTP/2 stream, meshfed's
 *             stream state), plus each connection's share.
 *
 * Every wait is bounded (WAIT_LIMIT_MS); the numbers are printed, never judged.
 */
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { availableParallelism } from 'node:os';
import * as grpc from '@grpc/grpc-js';
import { clusterSchema, type Cluster } from '../../src/model/cluster.js';
import { endpointSchema, serviceKey, type Endpoint, type Service } from '../../src/model/service.js';
import { Registry } from '../../src/registry/registry.js';
import type { ClusterSource, ServiceView, SourceEvents } from '../../src/registry/source.js';
import { adsServiceDefinition, type DiscoveryRequestObject, type NodeObject } from '../../src/xds/ads-protocol.js';
import { nodeIdentity, startAdsServer, type AdsServerHandle, type NodeIdentity } from '../../src/xds/ads-server.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import type { ClientsHostReply, ClientsHostRequest, StreamSpec } from './xds-clients-host.js';
import { heapMb, median, until as untilWithin } from './measure.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const SERVICES = 100;
const ENDPOINTS = 8;
const CONNECTIONS = 100;
const FANOUT_STREAMS = [1000, 5000];
const WARMUP_ROUNDS = 1;
const ROUNDS = 5;
const CPU_STREAMS = 1000;
const NAMES_PER_PROXY = 10;
const CHANGES = 1000;
const CHANGES_PER_FLUSH = 50;
/** what a push of the cpu measurement carries on average: about half of a proxy's 10 assignments changed per round */
const REFERENCE_NAMES_PER_PUSH = 5;
const TARGET_RATIO = 1.3;
const TARGET_CPU_SECONDS = 1;
/** every wait below is bounded: a stuck run fails instead of hanging */
const WAIT_LIMIT_MS = 120_000;
/** every wait below is bounded by WAIT_LIMIT_MS */
const until = (condition: () => boolean, what: string | (() => string)): Promise<void> => untilWithin(condition, what, WAIT_LIMIT_MS);

const CLUSTERS = [1, 2, 3].map((n) => ({ name: `c${n}`, network: `net-${n}`, region: `region-${n}`, zones: [`zone-${n}a`, `zone-${n}b`], gateway: `192.0.2.${n}` }));
const VIEWS = CLUSTERS.flatMap((c) => c.zones.map((zone) => ({ cluster: c.name, network: c.network, region: c.region, zone })));

const edsName = (service: number): string => `outbound|9080||svc-${service}.bench.svc.cluster.local`;

/** A cluster source that reports one service at a time, as the Kubernetes source does for an EndpointSlice event. */
class BenchSource implements ClusterSource {
  #events: SourceEvents | undefined;
  readonly #views = new Map<string, ServiceView>();

  constructor(index: number) {
    const c = CLUSTERS[index];
    if (!c) throw new Error(`no cluster ${index}`);
    for (let s = 0; s < SERVICES; s++) {
      const service: Service = { cluster: c.name, namespace: 'bench', name: `svc-${s}`, ports: [{ name: 'grpc', port: 9080, protocol: 'TCP' }], labels: {} };
      const endpoints = Array.from({ length: ENDPOINTS }, (_, e) =>
        endpointSchema.parse({ address: `10.${index + 1}.${s}.${e + 1}`, locality: { region: c.region, zone: c.zones[e % c.zones.length] }, serviceAccount: `svc-${s}` }),
      );
      this.#views.set(serviceKey('bench', service.name), Object.freeze({ service, endpoints: Object.freeze(endpoints) }));
    }
  }

  start(events: SourceEvents): void {
    this.#events = events;
    events.resync(this.#views);
    events.synced();
  }

  /** Flips endpoint `e` of service `s` between ready and unready and reports the service. */
  flip(s: number, e: number): void {
    const key = serviceKey('bench', `svc-${s}`);
    const view = this.#views.get(key);
    if (!view) throw new Error(`no service ${key}`);
    const endpoints: Endpoint[] = view.endpoints.map((endpoint, i) => (i === e ? { ...endpoint, health: endpoint.health === 'ready' ? 'unready' : 'ready' } : endpoint));
    const next = Object.freeze({ service: view.service, endpoints: Object.freeze(endpoints) });
    this.#views.set(key, next);
    this.#events?.serviceChanged(key, next);
  }

  stop(): Promise<void> {
    this.#events = undefined;
    return Promise.resolve();
  }
}

function nodeOf(view: (typeof VIEWS)[number], i: number): NodeObject {
  return {
    id: `proxyless~${view.cluster}-${view.zone}-${i}`,
    user_agent_name: 'gRPC Node',
    locality: { region: view.region, zone: view.zone, sub_zone: '' },
    metadata: { fields: { CLUSTER_ID: { stringValue: view.cluster }, NETWORK: { stringValue: view.network }, GENERATOR: { stringValue: 'grpc' } } },
  };
}

const NODES = VIEWS.map((view, i) => nodeOf(view, i));
const viewKey = (node: NodeIdentity): string => `${node.network ?? ''}|${node.locality.region}|${node.locality.zone}`;

/** The client process, with bounded request/reply and every failure it reports turned into a rejection. */
class ClientsHost {
  readonly #child: ChildProcess;
  readonly #waiters = new Set<{ op: ClientsHostReply['op']; set: string; resolve: () => void; reject: (error: Error) => void }>();

  constructor() {
    this.#child = fork(new URL('./xds-clients-host.ts', import.meta.url), { stdio: ['ignore', 'inherit', 'inherit', 'ipc'] });
    this.#child.on('message', (reply: ClientsHostReply) => {
      for (const waiter of [...this.#waiters]) {
        if (reply.op === 'failed') waiter.reject(new Error(`client process: ${reply.message}`));
        else if (reply.op === waiter.op && reply.set === waiter.set) waiter.resolve();
        else continue;
        this.#waiters.delete(waiter);
      }
    });
  }

  /** Resolves when the client process replies `op` for `set`; registers at once, so call it before the trigger. */
  expect(op: ClientsHostReply['op'], set: string): Promise<void> {
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters.delete(waiter);
        reject(new Error(`client process did not report ${op} for ${set} within ${WAIT_LIMIT_MS} ms`));
      }, WAIT_LIMIT_MS);
      const waiter = {
        op,
        set,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
        reject: (error: Error) => {
          clearTimeout(timer);
          reject(error);
        },
      };
      this.#waiters.add(waiter);
    });
  }

  request(message: ClientsHostRequest & { set: string }, reply: ClientsHostReply['op']): Promise<void> {
    const answered = this.expect(reply, message.set);
    this.#child.send(message);
    return answered;
  }

  async stop(): Promise<void> {
    if (this.#child.exitCode !== null) return;
    const exited = once(this.#child, 'exit');
    this.#child.send({ op: 'stop' } satisfies ClientsHostRequest);
    await Promise.race([exited, new Promise((done) => setTimeout(done, 5000))]);
    this.#child.kill();
  }
}

/** The ceiling: grpc-js alone, writing bytes encoded once per view to every stream. */
class BareServer {
  readonly #server = new grpc.Server({ 'grpc.max_concurrent_streams': 1000 });
  readonly #streams = new Set<{ call: grpc.ServerDuplexStream<DiscoveryRequestObject, Buffer>; response: Buffer }>();
  /** view key → the pre-encoded DiscoveryResponse */
  readonly responses = new Map<string, Buffer>();
  acks = 0;
  port = 0;

  async start(): Promise<void> {
    const { method } = adsServiceDefinition();
    const preEncoded: grpc.MethodDefinition<DiscoveryRequestObject, Buffer> = {
      path: method.path,
      requestStream: true,
      responseStream: true,
      requestSerialize: method.requestSerialize,
      requestDeserialize: method.requestDeserialize,
      responseSerialize: (bytes: Buffer) => bytes,
      responseDeserialize: (bytes: Buffer) => bytes,
    };
    this.#server.addService(
      { StreamAggregatedResources: preEncoded },
      {
        StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestObject, Buffer>) => {
          let stream: { call: typeof call; response: Buffer } | undefined;
          call.on('data', (req: DiscoveryRequestObject) => {
            if (stream) {
              this.acks++;
              return;
            }
            const node = nodeIdentity(req.node);
            const response = node && this.responses.get(viewKey(node));
            if (!response) {
              call.emit('error', { code: grpc.status.INVALID_ARGUMENT, details: 'unknown view' });
              return;
            }
            stream = { call, response };
            this.#streams.add(stream);
            call.write(response);
          });
          const forget = (): void => {
            if (stream) this.#streams.delete(stream);
          };
          call.on('cancelled', forget);
          call.on('close', forget);
          call.on('error', forget);
          call.on('end', () => {
            forget();
            call.end();
          });
        },
      },
    );
    this.port = await new Promise<number>((resolve, reject) => {
      this.#server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, bound) => {
        if (err) reject(err);
        else resolve(bound);
      });
    });
  }

  streams(): number {
    return this.#streams.size;
  }

  /** Writes every stream its view's response; returns how many streams it wrote to. */
  pushAll(): number {
    for (const { call, response } of this.#streams) call.write(response);
    return this.#streams.size;
  }

  close(): void {
    this.#server.forceShutdown();
  }
}

const ms = (values: number[]): string => `median ${median(values).toFixed(1)} ms, min ${Math.min(...values).toFixed(1)} ms`;
const fmt = (n: number): string => Math.round(n).toLocaleString('en-US');

interface Federation {
  registry: Registry;
  provider: FederationXds;
  sources: BenchSource[];
  ads: AdsServerHandle;
}

/** Streams of `count` proxies dealt round-robin over the views, each subscribed to `names(i)`. */
const streamSpecs = (count: number, names: (i: number) => string[]): StreamSpec[] => Array.from({ length: count }, (_, i) => ({ node: i % VIEWS.length, names: names(i) }));

interface FanoutResult {
  streams: number;
  meshfed: number[];
  bare: number[];
  responseBytes: number[];
  heapKbPerStream: number;
}

async function fanout(fed: Federation, bare: BareServer, clients: ClientsHost, streams: number): Promise<FanoutResult> {
  const { ads, provider, registry, sources } = fed;
  const name = edsName(0);
  const specs = streamSpecs(streams, () => [name]);
  const meshfedSet = `meshfed-${streams}`;
  const bareSet = `bare-${streams}`;
  const before = heapMb();
  const acks0 = ads.counters.acks;
  await clients.request({ op: 'open', set: meshfedSet, port: ads.port, connections: CONNECTIONS, nodes: NODES, streams: specs }, 'opened');
  await until(
    () => ads.counters.acks - acks0 >= streams,
    () => `meshfed to count the ${streams} first ACKs`,
  );
  const heapKbPerStream = ((heapMb() - before) * 1024) / streams;

  bare.responses.clear();
  const { method } = adsServiceDefinition();
  for (const node of NODES) {
    const identity = nodeIdentity(node);
    const set = identity && provider.resources(identity, EDS, [name]);
    if (!identity || !set) throw new Error('the provider has no EDS for a view');
    const resources = set.resources.map((r) => ({ type_url: r.typeUrl, value: r.value }));
    bare.responses.set(viewKey(identity), method.responseSerialize({ version_info: set.version, resources, type_url: EDS, nonce: String(streams) }));
  }
  await clients.request({ op: 'open', set: bareSet, port: bare.port, connections: CONNECTIONS, nodes: NODES, streams: specs }, 'opened');

  const meshfedRound = async (): Promise<number> => {
    await clients.request({ op: 'arm', set: meshfedSet }, 'armed');
    const acked = clients.expect('acked', meshfedSet);
    const acksBefore = ads.counters.acks;
    const pushesBefore = ads.counters.pushes;
    const t0 = performance.now();
    sources[0]?.flip(0, 0);
    registry.flush();
    provider.flush();
    await acked;
    const elapsed = performance.now() - t0;
    if (ads.counters.pushes - pushesBefore !== streams) throw new Error(`meshfed pushed to ${ads.counters.pushes - pushesBefore} of ${streams} streams`);
    await until(
      () => ads.counters.acks - acksBefore >= streams,
      () => `meshfed to count ${streams} ACKs (has ${ads.counters.acks - acksBefore})`,
    );
    return elapsed;
  };
  const bareRound = async (): Promise<number> => {
    await clients.request({ op: 'arm', set: bareSet }, 'armed');
    const acked = clients.expect('acked', bareSet);
    const acksBefore = bare.acks;
    const t0 = performance.now();
    const written = bare.pushAll();
    await acked;
    const elapsed = performance.now() - t0;
    if (written !== streams) throw new Error(`the bare server wrote to ${written} of ${streams} streams`);
    await until(
      () => bare.acks - acksBefore >= streams,
      () => `the bare server to count ${streams} ACKs (has ${bare.acks - acksBefore})`,
    );
    return elapsed;
  };

  const result: FanoutResult = { streams, meshfed: [], bare: [], responseBytes: [...bare.responses.values()].map((b) => b.length), heapKbPerStream };
  for (let round = 0; round < WARMUP_ROUNDS + ROUNDS; round++) {
    // alternate which goes first, so that neither always runs on a machine the other just warmed or loaded
    const [first, second] = round % 2 === 0 ? [meshfedRound, bareRound] : [bareRound, meshfedRound];
    const a = await first();
    const b = await second();
    if (round < WARMUP_ROUNDS) continue;
    result.meshfed.push(round % 2 === 0 ? a : b);
    result.bare.push(round % 2 === 0 ? b : a);
  }
  await clients.request({ op: 'close', set: meshfedSet }, 'closed');
  await clients.request({ op: 'close', set: bareSet }, 'closed');
  await until(
    () => ads.streams() === 0,
    () => `meshfed to see the ${meshfedSet} streams close (${ads.streams()} open)`,
  );
  return result;
}

/** The bare server's CPU for as many push rounds to the same streams (the reference for the cpu figure). */
async function cpuReference(fed: Federation, bare: BareServer, clients: ClientsHost, rounds: number): Promise<number> {
  const names = Array.from({ length: REFERENCE_NAMES_PER_PUSH }, (_, j) => edsName(j * 11));
  const specs = streamSpecs(CPU_STREAMS, () => names);
  const { method } = adsServiceDefinition();
  bare.responses.clear();
  for (const node of NODES) {
    const identity = nodeIdentity(node);
    const set = identity && fed.provider.resources(identity, EDS, names);
    if (!identity || !set) throw new Error('the provider has no EDS for a view');
    const resources = set.resources.map((r) => ({ type_url: r.typeUrl, value: r.value }));
    bare.responses.set(viewKey(identity), method.responseSerialize({ version_info: set.version, resources, type_url: EDS, nonce: 'ref' }));
  }
  const acks0 = bare.acks;
  await clients.request({ op: 'open', set: 'cpu-ref', port: bare.port, connections: CONNECTIONS, nodes: NODES, streams: specs }, 'opened');
  await until(
    () => bare.streams() >= CPU_STREAMS && bare.acks - acks0 >= CPU_STREAMS,
    () => `the bare server to hold and hear back from the ${CPU_STREAMS} reference streams (${bare.streams()} open, ${bare.acks - acks0} ACKs)`,
  );
  const cpu0 = process.cpuUsage();
  for (let round = 0; round < rounds; round++) {
    const before = bare.acks;
    const written = bare.pushAll();
    await until(
      () => bare.acks - before >= written,
      () => `the bare server to count ${written} ACKs of round ${round} (has ${bare.acks - before})`,
    );
  }
  const cpu = process.cpuUsage(cpu0);
  await clients.request({ op: 'close', set: 'cpu-ref' }, 'closed');
  return (cpu.user + cpu.system) / 1e6;
}

interface CpuResult {
  cpuSeconds: number;
  /** the synchronous part of the rounds: changes into the registry, snapshot, provider rebuilds, pushes encoded and written */
  syncSeconds: number;
  wallSeconds: number;
  pushes: number;
  responses: number;
  acks: number;
  heapKbPerStream: number;
}

async function cpuPerChanges(fed: Federation, clients: ClientsHost): Promise<CpuResult> {
  const { ads, provider, registry, sources } = fed;
  // proxy i watches 10 services spread over the 100 (11·j is distinct mod 100 for j < 10)
  const specs = streamSpecs(CPU_STREAMS, (i) => Array.from({ length: NAMES_PER_PROXY }, (_, j) => edsName((i * 37 + j * 11) % SERVICES)));
  const before = heapMb();
  const acks0 = ads.counters.acks;
  await clients.request({ op: 'open', set: 'cpu', port: ads.port, connections: CONNECTIONS, nodes: NODES, streams: specs }, 'opened');
  await until(
    () => ads.counters.acks - acks0 >= CPU_STREAMS,
    () => `meshfed to count the ${CPU_STREAMS} first ACKs`,
  );
  const heapKbPerStream = ((heapMb() - before) * 1024) / CPU_STREAMS;

  const start = { acks: ads.counters.acks, pushes: ads.counters.pushes, responses: ads.counters.responses };
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let syncMicros = 0;
  for (let k = 0; k < CHANGES; k += CHANGES_PER_FLUSH) {
    const sync0 = process.cpuUsage();
    for (let c = k; c < k + CHANGES_PER_FLUSH; c++) {
      // 50 consecutive changes touch 50 distinct services (13 is coprime with 100), in turn in each cluster
      sources[c % sources.length]?.flip((c * 13) % SERVICES, Math.floor(c / SERVICES) % ENDPOINTS);
    }
    registry.flush();
    provider.flush();
    const sync = process.cpuUsage(sync0);
    syncMicros += sync.user + sync.system;
    await until(
      () => ads.counters.acks - start.acks >= ads.counters.responses - start.responses,
      () => `every push of changes ${k}..${k + CHANGES_PER_FLUSH - 1} to be ACKed (${ads.counters.acks - start.acks} of ${ads.counters.responses - start.responses})`,
    );
  }
  const cpu = process.cpuUsage(cpu0);
  const result: CpuResult = {
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    syncSeconds: syncMicros / 1e6,
    wallSeconds: (performance.now() - t0) / 1000,
    pushes: ads.counters.pushes - start.pushes,
    responses: ads.counters.responses - start.responses,
    acks: ads.counters.acks - start.acks,
    heapKbPerStream,
  };
  await clients.request({ op: 'close', set: 'cpu' }, 'closed');
  return result;
}

export async function run(): Promise<void> {
  const registry = new Registry({ debounceMs: 100, maxDelayMs: 1000 });
  const sources = CLUSTERS.map((_, i) => new BenchSource(i));
  for (const [i, c] of CLUSTERS.entries()) {
    const cluster: Cluster = clusterSchema.parse({ name: c.name, network: c.network, region: c.region, zone: c.zones[0], gateways: [{ address: c.gateway }] });
    const source = sources[i];
    if (source) registry.add(cluster, source);
  }
  registry.flush();
  const provider = new FederationXds(registry);
  const bare = new BareServer();
  const clients = new ClientsHost();
  let ads: AdsServerHandle | undefined;
  try {
    ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
    await bare.start();
    const fed: Federation = { registry, provider, sources, ads };
    console.log(`machine: ${availableParallelism()} cores, node ${process.version}`);
    console.log(
      `federation: ${CLUSTERS.length} clusters (one network and east-west gateway each) × ${SERVICES} services × ${ENDPOINTS} endpoints in 2 zones; proxies in ${VIEWS.length} views; ${CONNECTIONS} HTTP/2 connections; clients in a separate process`,
    );
    console.log(`gc: ${'gc' in globalThis ? 'forced before each heap reading' : 'not exposed (run node with --expose-gc for steady memory figures)'}`);

    const fanouts: FanoutResult[] = [];
    for (const streams of FANOUT_STREAMS) fanouts.push(await fanout(fed, bare, clients, streams));
    const cpu = await cpuPerChanges(fed, clients);
    const cpuRef = await cpuReference(fed, bare, clients, CHANGES / CHANGES_PER_FLUSH);

    console.log('');
    for (const f of fanouts) {
      const ratio = median(f.meshfed) / median(f.bare);
      console.log(`fan-out of one endpoint change to ${fmt(f.streams)} streams (${f.streams / CONNECTIONS} per connection), until every stream has ACKed, ${ROUNDS} rounds after ${WARMUP_ROUNDS} warm-up:`);
      console.log(`  meshfed: ${ms(f.meshfed)} (rounds ${f.meshfed.map((t) => t.toFixed(0)).join(' / ')})`);
      console.log(
        `  ceiling (bare grpc-js, pre-encoded ${Math.min(...f.responseBytes)}-${Math.max(...f.responseBytes)}-byte responses): ${ms(f.bare)} (rounds ${f.bare.map((t) => t.toFixed(0)).join(' / ')})`,
      );
      const target = f.streams === Math.max(...FANOUT_STREAMS) ? ` (target <= ${TARGET_RATIO}×: ${ratio <= TARGET_RATIO ? 'met' : 'NOT met'})` : '';
      console.log(`  ratio: ${ratio.toFixed(2)}× the ceiling by medians, ${(Math.min(...f.meshfed) / Math.min(...f.bare)).toFixed(2)}× by minimums${target}`);
    }
    const perThousand = (cpu.cpuSeconds * 1000) / CHANGES;
    console.log(
      `cpu: ${fmt(CHANGES)} endpoint changes in ${CHANGES / CHANGES_PER_FLUSH} push rounds of ${CHANGES_PER_FLUSH} to ${fmt(CPU_STREAMS)} proxies (${NAMES_PER_PROXY} of ${SERVICES} services each): ${fmt(cpu.pushes)} pushes, ${fmt(cpu.acks)} ACKs, ${cpu.wallSeconds.toFixed(2)} s wall`,
    );
    console.log(`  ${perThousand.toFixed(2)} vCPU-s per 1,000 endpoint changes, ${((cpu.cpuSeconds * 1e6) / cpu.pushes).toFixed(0)} µs per push (target <= ${TARGET_CPU_SECONDS} vCPU-s: ${perThousand <= TARGET_CPU_SECONDS ? 'met' : 'NOT met'})`);
    console.log(
      `  of which ${cpu.syncSeconds.toFixed(2)} vCPU-s in the rounds' synchronous part (registry, provider rebuilds, pushes encoded and handed to grpc), ${(cpu.cpuSeconds - cpu.syncSeconds).toFixed(2)} vCPU-s after it (HTTP/2 writes, reading and handling ACKs, GC)`,
    );
    console.log(
      `  reference: the bare grpc-js server, ${CHANGES / CHANGES_PER_FLUSH} rounds of one pre-encoded ${REFERENCE_NAMES_PER_PUSH}-assignment response to each of the same ${fmt(CPU_STREAMS)} streams, ACKs read: ${cpuRef.toFixed(2)} vCPU-s; meshfed = ${(cpu.cpuSeconds / cpuRef).toFixed(2)}× that`,
    );
    if (cpu.responses !== cpu.pushes) console.log(`  (${fmt(cpu.responses - cpu.pushes)} responses were not pushes)`);
    console.log('memory per connected proxy (heap after GC, the server side of a stream and its share of a connection):');
    for (const f of fanouts) console.log(`  ${fmt(f.streams)} streams on 1 EDS name: ${f.heapKbPerStream.toFixed(1)} KB per stream`);
    console.log(`  ${fmt(CPU_STREAMS)} streams on ${NAMES_PER_PROXY} EDS names: ${cpu.heapKbPerStream.toFixed(1)} KB per stream`);
  } finally {
    await clients.stop();
    await ads?.close();
    bare.close();
    provider.close();
    await registry.close();
  }
}
