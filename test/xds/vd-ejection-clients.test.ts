/**
 * A virtual destination's outlierDetection as proxyless gRPC clients live it: @grpc/grpc-js-xds channels to virtual
 * destinations backed by the three `reviews` endpoints of one cluster, two echo servers and one plain gRPC server
 * that answers every call UNAVAILABLE. With failurePercentage the failing endpoint is ejected after an interval;
 * without it (consecutive counts only, which grpc ignores), or with fewer endpoints than its minimumHosts, the
 * client keeps sending it its round-robin share. (The last holds only because meshfed writes minimumHosts' default
 * out: grpc-js takes a field left out of the Cluster as no gate at all; see src/xds/resources/cluster.ts.)
 *
 *   east-1  net-east  us-east/us-east-1a  127.0.31.1, 127.0.31.2 (echo), 127.0.31.3 (failing)
 */
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc/grpc-js-xds';
import * as protoLoader from '@grpc/proto-loader';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { parseDuration } from '../../src/model/duration.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { virtualDestinationSchema, type NamedVirtualDestination, type OutlierDetection } from '../../src/model/virtual-destination.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { echo, ECHO_PROTO_PATH, ECHO_SERVICE_NAME, startEchoServer, type EchoClient, type EchoReply, type EchoServerHandle } from '../../src/sim/echo.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { WAIT_MS, until, xdsEchoClient } from './xds-clients.js';

const PLACE = { cluster: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a' };
const SUBNET = '127.0.31';
const INTERVAL = '1s';
/** calls per batch: 20 for each endpoint in rotation, at least the requestVolume of EJECTING */
const BATCH = 60;
/** how long the clients that must not eject are watched, in intervals */
const WATCHED_INTERVALS = 4;

/** Consecutive counts (Envoy only) and the ejection limits, shared by every virtual destination below. */
const COMMON: OutlierDetection = { consecutive5xx: 1, consecutiveGatewayErrors: 1, interval: INTERVAL, baseEjectionTime: '30s', maxEjectionPercent: 50 };
const EJECTING: OutlierDetection = { ...COMMON, failurePercentage: { threshold: 50, minimumHosts: 2, requestVolume: 10 } };
/** minimumHosts left out: Envoy's default 5, more endpoints than the cluster has */
const DEFAULT_HOSTS: OutlierDetection = { ...COMMON, failurePercentage: { threshold: 50 } };

const vd = (name: string, outlierDetection: OutlierDetection): NamedVirtualDestination => ({
  name,
  spec: virtualDestinationSchema.parse({ hostname: `${name}.global`, ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ namespace: 'demo', name: 'reviews' }], outlierDetection }),
});

interface FailingServer {
  host: string;
  port: number;
  /** IP:PORT, as its errors say it */
  endpoint: string;
  calls(): number;
  close(): void;
}

/** A plain gRPC server of the echo service on `host` that answers every call UNAVAILABLE, naming itself. */
async function startFailingServer(host: string): Promise<FailingServer> {
  const service = protoLoader.loadSync(ECHO_PROTO_PATH, { keepCase: true, defaults: true })[ECHO_SERVICE_NAME] as grpc.ServiceDefinition;
  const server = new grpc.Server();
  let calls = 0;
  let endpoint = '';
  server.addService(service, {
    Echo: (_call: grpc.ServerUnaryCall<unknown, unknown>, callback: grpc.sendUnaryData<unknown>) => {
      calls++;
      callback({ code: grpc.status.UNAVAILABLE, details: `failing endpoint ${endpoint}` });
    },
  });
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${host}:0`, grpc.ServerCredentials.createInsecure(), (error, bound) => {
      if (error) reject(error);
      else resolve(bound);
    });
  });
  endpoint = `${host}:${String(port)}`;
  return {
    host,
    port,
    endpoint,
    calls: () => calls,
    close: () => {
      server.forceShutdown();
    },
  };
}

let good: EchoServerHandle[] = [];
let bad: FailingServer;
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;
const clients: EchoClient[] = [];

beforeAll(async () => {
  register();
  good = [await startEchoServer({ host: `${SUBNET}.1`, port: 0, cluster: PLACE.cluster }), await startEchoServer({ host: `${SUBNET}.2`, port: 0, cluster: PLACE.cluster })];
  bad = await startFailingServer(`${SUBNET}.3`);
  const endpoint = (address: string, port: number) => ({ address, ports: [{ name: 'grpc', port }], serviceAccount: 'reviews' });
  const reviews = staticServiceSchema.parse({
    namespace: 'demo',
    name: 'reviews',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: [...good, bad].map((s) => endpoint(s.host, s.port)),
  });
  registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
  registry.add(clusterSchema.parse({ name: PLACE.cluster, network: PLACE.network, region: PLACE.region, zone: PLACE.zone }), new StaticSource(PLACE.cluster, [reviews]));
  registry.flush();
  provider = new FederationXds(registry, {
    debounceMs: 10,
    maxDelayMs: 100,
    virtualDestinations: [vd('reviews-ejecting', EJECTING), vd('reviews-counts', COMMON), vd('reviews-default-hosts', DEFAULT_HOSTS)],
  });
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await ads.close();
  provider.close();
  await registry.close();
  for (const s of good) await s.close();
  bad.close();
});

interface Batch {
  replies: EchoReply[];
  failures: grpc.ServiceError[];
}

const isServiceError = (e: unknown): e is grpc.ServiceError => e instanceof Error && 'code' in e && 'details' in e;

/** `n` calls, at most 20 in flight, each either a reply or the error it ended with. */
async function batch(client: EchoClient, n = BATCH): Promise<Batch> {
  const out: Batch = { replies: [], failures: [] };
  for (let i = 0; i < n; i += 20) {
    const settled = await Promise.allSettled(Array.from({ length: Math.min(20, n - i) }, (_, j) => echo(client, `call ${String(i + j)}`)));
    for (const s of settled) {
      if (s.status === 'fulfilled') out.replies.push(s.value);
      else if (isServiceError(s.reason)) out.failures.push(s.reason);
      else throw s.reason;
    }
  }
  return out;
}

/** A client of `xds:///NAME.global:9080` that has reached all three endpoints (bounded). */
async function clientOf(name: string): Promise<EchoClient> {
  const client = xdsEchoClient(`xds:///${name}.global:9080`, ads.port, { id: `proxyless~east-1~${name}`, ...PLACE });
  clients.push(client);
  await until(client, () => true, `${name}.global to resolve`);
  const seen = new Set<string>();
  const deadline = Date.now() + WAIT_MS;
  while (seen.size < 3) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for every endpoint of ${name}.global: only ${[...seen].join(', ')}`);
    try {
      seen.add((await echo(client, 'warm-up')).endpoint);
    } catch (e) {
      if (!isServiceError(e) || !e.details.includes(bad.endpoint)) throw e;
      seen.add(bad.endpoint);
    }
  }
  return client;
}

/** Every failure is the failing endpoint's own UNAVAILABLE, not the channel's. */
function expectOnlyBadEndpointFailures(failures: readonly grpc.ServiceError[]): void {
  expect(failures.filter((f) => f.code !== grpc.status.UNAVAILABLE || f.details !== `failing endpoint ${bad.endpoint}`).map((f) => `${String(f.code)} ${f.details}`)).toEqual([]);
}

const pause = (ms: number) => new Promise((done) => setTimeout(done, ms));

describe("a virtual destination's outlier detection, as proxyless gRPC clients see it", () => {
  it('failurePercentage: the failing endpoint gets its share until an interval judges it, then none', async () => {
    const client = await clientOf('reviews-ejecting');
    const goodEndpoints = good.map((s) => s.endpoint).sort();
    const batches: Batch[] = [];
    const deadline = Date.now() + WAIT_MS;
    while (batches.at(-1)?.failures.length !== 0) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for the failing endpoint to be ejected: ${String(batches.length)} batches all had failures`);
      batches.push(await batch(client));
      await pause(50);
    }
    // before the ejection: the failing endpoint was called, at least requestVolume times, and all failures were its own
    const failures = batches.flatMap((b) => b.failures);
    expect(batches[0]?.failures.length).toBeGreaterThan(0);
    expect(failures.length).toBeGreaterThanOrEqual(10);
    expectOnlyBadEndpointFailures(failures);

    // after it: whole batches succeed, served by the two good endpoints in turn, and the failing one hears nothing
    const calledBefore = bad.calls();
    const clean = [batches.at(-1), await batch(client), await batch(client)];
    for (const b of clean) {
      expect(b?.failures).toEqual([]);
      expect(b?.replies).toHaveLength(BATCH);
      expect([...new Set(b?.replies.map((r) => r.endpoint))].sort()).toEqual(goodEndpoints);
    }
    expect(bad.calls()).toBe(calledBefore);
  }, 60_000);

  it.each([
    ['without failurePercentage (consecutive counts, which grpc ignores)', 'reviews-counts'],
    ['with failurePercentage but minimumHosts left out (5, more than the 3 endpoints)', 'reviews-default-hosts'],
  ])('%s: the failing endpoint keeps its third of the calls, interval after interval', async (_, name) => {
    const client = await clientOf(name);
    const batches: Batch[] = [];
    const end = Date.now() + WATCHED_INTERVALS * parseDuration(INTERVAL);
    while (Date.now() < end) {
      batches.push(await batch(client));
      await pause(50);
    }
    const failures = batches.flatMap((b) => b.failures);
    expectOnlyBadEndpointFailures(failures);
    expect(batches.filter((b) => b.failures.length === 0)).toHaveLength(0);
    const share = failures.length / (batches.length * BATCH);
    expect(share).toBeGreaterThan(0.3);
    expect(share).toBeLessThan(0.37);
  }, 60_000);
});
