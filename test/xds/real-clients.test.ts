/**
 * Split-horizon EDS end to end with the real client: @grpc/grpc-js-xds channels bootstrapped as proxies in three
 * clusters on two networks, each with its own node identity (per-channel bootstrap), resolving
 * `xds:///echo.demo.svc.cluster.local:9080` through meshfed's ADS server fed by a live registry. The endpoints are
 * real gRPC echo servers on loopback (they answer with their cluster and address), and each cluster's east-west
 * gateway is a TCP forwarder to that cluster's endpoints (the stand-in until meshfed's gateway lands).
 *
 *   east-1  net-east  us-east/us-east-1a  2 endpoints  127.0.1.x
 *   east-2  net-east  us-east/us-east-1b  1 endpoint   127.0.2.x
 *   west-1  net-west  us-west/us-west-1a  3 endpoints  127.0.3.x
 */
import { register } from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema, type StaticService } from '../../src/model/federation-file.js';
import type { EndpointHealth } from '../../src/model/service.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { startEchoServer, type EchoClient, type EchoReply, type EchoServerHandle } from '../../src/sim/echo.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { startTcpForwarder, type TcpForwarder } from './tcp-forwarder.js';
import { calls, sharesBy, until, warmUp, xdsEchoClient } from './xds-clients.js';

const TARGET = 'xds:///echo.demo.svc.cluster.local:9080';

interface SimCluster {
  name: string;
  network: string;
  region: string;
  zone: string;
  subnet: number;
  size: number;
}

const CLUSTERS: SimCluster[] = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', subnet: 1, size: 2 },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', subnet: 2, size: 1 },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', subnet: 3, size: 3 },
];

const servers = new Map<string, EchoServerHandle[]>();
const gateways = new Map<string, TcpForwarder>();
const sources = new Map<string, StaticSource>();
const health = new Map<string, EndpointHealth>();
const clients: EchoClient[] = [];
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;

function echoService(cluster: SimCluster): StaticService {
  return staticServiceSchema.parse({
    namespace: 'demo',
    name: 'echo',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: (servers.get(cluster.name) ?? []).map((s) => ({ address: s.host, ports: [{ name: 'grpc', port: s.port }], serviceAccount: 'echo', health: health.get(cluster.name) ?? 'ready' })),
  });
}

function setHealth(cluster: string, to: EndpointHealth): void {
  health.set(cluster, to);
  const sim = CLUSTERS.find((c) => c.name === cluster);
  if (sim) sources.get(cluster)?.update([echoService(sim)]);
}

/** A proxyless client standing in `cluster` (its node says its cluster, network and locality), or nowhere in particular. */
function clientIn(cluster: { name: string; network: string; region: string; zone: string }): EchoClient {
  const client = xdsEchoClient(TARGET, ads.port, {
    id: `proxyless~${cluster.name}~${String(clients.length)}`,
    cluster: cluster.name,
    network: cluster.network,
    region: cluster.region,
    zone: cluster.zone,
  });
  clients.push(client);
  return client;
}

beforeAll(async () => {
  register();
  for (const c of CLUSTERS) {
    const list: EchoServerHandle[] = [];
    for (let i = 1; i <= c.size; i++) list.push(await startEchoServer({ host: `127.0.${String(c.subnet)}.${String(i)}`, port: 0, cluster: c.name, locality: `${c.region}/${c.zone}` }));
    servers.set(c.name, list);
    gateways.set(c.name, await startTcpForwarder(`127.0.${String(c.subnet)}.254`, () => list.map((s) => ({ host: s.host, port: s.port }))));
  }
  registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
  for (const c of CLUSTERS) {
    const gw = gateways.get(c.name);
    const source = new StaticSource(c.name, [echoService(c)]);
    sources.set(c.name, source);
    registry.add(clusterSchema.parse({ name: c.name, network: c.network, region: c.region, zone: c.zone, gateways: gw ? [{ address: gw.address, port: gw.port }] : [] }), source);
  }
  registry.flush();
  provider = new FederationXds(registry, { debounceMs: 10, maxDelayMs: 100 });
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await ads.close();
  provider.close();
  await registry.close();
  for (const g of gateways.values()) await g.close();
  for (const list of servers.values()) for (const s of list) await s.close();
});

describe('proxyless gRPC clients through meshfed xDS (@grpc/grpc-js-xds)', () => {
  it('a client in each cluster lands on its own cluster, spread over every local endpoint', async () => {
    for (const c of CLUSTERS) {
      const client = clientIn(c);
      const local = new Set(servers.get(c.name)?.map((s) => s.endpoint));
      const replies: EchoReply[] = [];
      // round robin reaches every endpoint once its connections are up; 200 calls is far more than that takes
      while (replies.length < 200 && new Set(replies.map((r) => r.endpoint)).size < local.size) replies.push(...(await calls(client, 5)));
      expect(new Set(replies.map((r) => r.cluster))).toEqual(new Set([c.name]));
      expect(new Set(replies.map((r) => r.endpoint))).toEqual(local);
    }
  });

  it('local endpoints unready: the same network next (direct), then the other network through its gateway, then back', async () => {
    const east1 = CLUSTERS[0];
    if (!east1) throw new Error('no east-1');
    const client = clientIn(east1);
    await until(client, (r) => r.cluster === 'east-1', 'east-1 to answer');

    setHealth('east-1', 'unready');
    await until(client, (r) => r.cluster !== 'east-1', 'traffic to leave east-1');
    const sameNetwork = await calls(client, 10);
    expect(new Set(sameNetwork.map((r) => r.cluster))).toEqual(new Set(['east-2']));

    const westGateway = gateways.get('west-1');
    const before = westGateway?.connections() ?? 0;
    setHealth('east-2', 'unready');
    await until(client, (r) => r.cluster === 'west-1', 'traffic to reach west-1');
    const otherNetwork = await calls(client, 10);
    expect(new Set(otherNetwork.map((r) => r.cluster))).toEqual(new Set(['west-1']));
    // west-1's endpoints (127.0.3.x) are not in any assignment an east proxy gets: only the gateway leads there
    expect(westGateway?.connections() ?? 0).toBeGreaterThan(before);

    setHealth('east-1', 'ready');
    setHealth('east-2', 'ready');
    await until(client, (r) => r.cluster === 'east-1', 'traffic to come back to east-1');
    const back = await calls(client, 10);
    expect(new Set(back.map((r) => r.cluster))).toEqual(new Set(['east-1']));
  }, 90_000);

  it('with no locality preference, traffic across networks follows the endpoint counts (3 : 2 : 1)', async () => {
    // a proxy on net-west that does not know its region: every endpoint is priority 0, west-1 direct and each east
    // cluster through its own gateway, which must weigh as many endpoints as it stands for
    const client = clientIn({ name: 'west-1', network: 'net-west', region: '', zone: '' });
    await warmUp(client, (r) => r.cluster, ['west-1', 'east-1', 'east-2']);
    const replies = await calls(client, 600);
    const byCluster = sharesBy(replies, (r) => r.cluster);
    const shares = { west1: byCluster.get('west-1') ?? 0, east1: byCluster.get('east-1') ?? 0, east2: byCluster.get('east-2') ?? 0 };
    // expected 3/6, 2/6, 1/6; ±0.07 is more than four standard deviations of a 600-call binomial
    expect(shares.west1).toBeGreaterThan(0.5 - 0.07);
    expect(shares.west1).toBeLessThan(0.5 + 0.07);
    expect(shares.east1).toBeGreaterThan(1 / 3 - 0.07);
    expect(shares.east1).toBeLessThan(1 / 3 + 0.07);
    expect(shares.east2).toBeGreaterThan(1 / 6 - 0.07);
    expect(shares.east2).toBeLessThan(1 / 6 + 0.07);
  }, 90_000);
});
