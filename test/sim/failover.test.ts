/**
 * The embedded federation, as serve assembles it (the manager with its xDS server and API, the built-in east-west
 * gateways, the simulated workloads and their probers), on addresses of its own so it can run beside `npm start`:
 *
 *   east-1  net-east  us-east/us-east-1a  127.0.71.x   gateway 127.0.74.1
 *   east-2  net-east  us-east/us-east-1b  127.0.72.x   gateway 127.0.74.2
 *   west-1  net-west  us-west/us-west-1a  127.0.73.x   gateway 127.0.74.3
 *
 * A real @grpc/grpc-js-xds client, bootstrapped into east-1 from the bootstrap file the embedded federation wrote
 * (mTLS through a file_watcher certificate provider), calls xds:///reviews.global. Workloads are killed as a drill
 * would; meshfed learns of it only through the prober, and the client follows the locality failover.
 */
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { Registry as PromRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { echo, echoClient, type EchoClient, type EchoReply } from '../../src/sim/echo.js';
import type { EmbeddedFederation } from '../../src/sim/embedded-federation.js';
import { eventually, IN_PROCESS_TOKEN, startInProcessFederation, WAIT_MS } from './helpers.js';

const CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', subnet: 71, gateway: '127.0.74.1' },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', subnet: 72, gateway: '127.0.74.2' },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', subnet: 73, gateway: '127.0.74.3' },
];
const DEMO_CLIENT = 'spiffe://failover.test/ns/default/sa/demo-client';

const work = mkdtempSync(join(tmpdir(), 'meshfed-sim-failover-'));
const gatewayMetrics = new PromRegistry();
let manager: Manager;
let federation: EmbeddedFederation;
let client: EchoClient;
let close: () => Promise<void>;

beforeAll(async () => {
  register();
  ({ manager, federation, close } = await startInProcessFederation({ dir: work, name: 'failover', trustDomain: 'failover.test', clusters: CLUSTERS, gatewayMetrics }));
  const bootstrap = federation.client('east-1')?.bootstrap ?? '';
  client = echoClient('xds:///reviews.global', new XdsChannelCredentials(grpc.credentials.createInsecure()), {
    'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': readFileSync(bootstrap, 'utf8'),
  });
}, 60_000);

afterAll(async () => {
  client.close();
  await close();
  rmSync(work, { recursive: true, force: true });
});

/** Calls until a reply comes from `cluster` (bounded), then returns a batch of replies. */
async function answeredBy(cluster: string): Promise<EchoReply[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      if ((await echo(client, 'probe', 3_000)).cluster === cluster) break;
    } catch {
      // a connection being replaced, or the config not there yet: try again
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${cluster} to answer`);
    await new Promise((done) => setTimeout(done, 100));
  }
  return Promise.all(Array.from({ length: 20 }, (_, i) => echo(client, `call ${String(i)}`)));
}

interface Explained {
  groups: { priority: number; endpoints: { address: string; health: string; via: string }[] }[];
}

/** What meshfed tells a client in east-1 about reviews.global: address → health and route. */
async function explained(): Promise<Map<string, { health: string; via: string; priority: number }>> {
  const response = await fetch(`${manager.api.url}/api/v1/explain?from=east-1&host=reviews.global`, { headers: { authorization: `Bearer ${IN_PROCESS_TOKEN}` } });
  const body = (await response.json()) as Explained;
  return new Map(body.groups.flatMap((g) => g.endpoints.map((e) => [e.address, { health: e.health, via: e.via, priority: g.priority }] as const)));
}

const reviewsOf = (cluster: string): string[] =>
  federation
    .workloads()
    .filter((w) => w.cluster === cluster && w.service === 'reviews')
    .map((w) => w.id);

async function forwardedThroughGateways(): Promise<number> {
  const line = (await gatewayMetrics.metrics()).split('\n').find((l) => l.startsWith('meshfed_gateway_connections_total{outcome="forwarded",sni="reviews.global"}'));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('the embedded federation: kill workloads, follow the failover', () => {
  it('every workload runs and is ready; the demo client in east-1 is answered by east-1 over mTLS', async () => {
    expect(federation.clusters).toEqual(['east-1', 'east-2', 'west-1']);
    expect(federation.workloads().map((w) => [w.id, w.running, w.ready, w.spiffeId])).toEqual(
      CLUSTERS.flatMap((c) => [1, 2].map((i) => [`${c.name}/default/reviews/127.0.${String(c.subnet)}.${String(i)}`, true, true, 'spiffe://failover.test/ns/default/sa/reviews'])),
    );
    const replies = await answeredBy('east-1');
    expect(new Set(replies.map((r) => r.cluster))).toEqual(new Set(['east-1']));
    expect(new Set(replies.map((r) => r.peer))).toEqual(new Set([DEMO_CLIENT]));
  });

  it("east-1's reviews killed: once the prober marks them unready, east-2 answers (same network, direct)", async () => {
    for (const id of reviewsOf('east-1')) await federation.kill(id);
    await eventually(async () => {
      const view = await explained();
      return ['127.0.71.1', '127.0.71.2'].every((a) => view.get(a)?.health === 'UNHEALTHY');
    }, "meshfed to see east-1's reviews unready");
    expect(federation.workloads().filter((w) => w.cluster === 'east-1').map((w) => [w.running, w.ready])).toEqual([
      [false, false],
      [false, false],
    ]);
    const replies = await answeredBy('east-2');
    expect(new Set(replies.map((r) => r.cluster))).toEqual(new Set(['east-2']));
    expect((await explained()).get('127.0.72.1')?.via).toBe('direct');
  });

  it("east-2's killed too: west-1 answers through the net-west gateway, and sees the east-1 client's SPIFFE ID", async () => {
    const before = await forwardedThroughGateways();
    for (const id of reviewsOf('east-2')) await federation.kill(id);
    await eventually(async () => {
      const view = await explained();
      return ['127.0.72.1', '127.0.72.2'].every((a) => view.get(a)?.health === 'UNHEALTHY');
    }, "meshfed to see east-2's reviews unready");
    const replies = await answeredBy('west-1');
    expect(new Set(replies.map((r) => r.cluster))).toEqual(new Set(['west-1']));
    expect(new Set(replies.map((r) => r.peer))).toEqual(new Set([DEMO_CLIENT]));
    // the client has no west-1 address but the gateway's, and the gateway forwarded by the SNI grpc sent
    const gatewayRoute = [...(await explained()).values()].filter((e) => e.via.startsWith('gateway of west-1 (net-west)'));
    expect(gatewayRoute).toHaveLength(1);
    expect(await forwardedThroughGateways()).toBeGreaterThan(before);
  });

  it('started again, the workloads are probed ready and east-1 answers again', async () => {
    for (const c of ['east-1', 'east-2']) for (const id of reviewsOf(c)) await federation.start(id);
    await eventually(() => federation.workloads().every((w) => w.running && w.ready), 'every workload to be ready again');
    const replies = await answeredBy('east-1');
    expect(new Set(replies.map((r) => r.cluster))).toEqual(new Set(['east-1']));
  });

  it('an unknown workload id is an error naming the form of ids', async () => {
    await expect(federation.kill('east-1/default/nothing/127.0.71.9')).rejects.toThrow('(ids are CLUSTER/NAMESPACE/SERVICE/ADDRESS)');
  });
});
