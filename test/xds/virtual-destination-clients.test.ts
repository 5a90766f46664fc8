/**
 * Virtual destinations through xDS with the real client: @grpc/grpc-js-xds channels to `xds:///reviews.global`
 * (locality failover) and `xds:///reviews-west.global` (an explicit priority order) in clusters on two networks. The
 * backends are the `reviews` echo servers of every cluster; each cluster's gateway is a TCP forwarder.
 *
 *   east-1  net-east  us-east/us-east-1a  127.0.11.x
 *   east-2  net-east  us-east/us-east-1b  127.0.12.x
 *   west-1  net-west  us-west/us-west-1a  127.0.13.x
 */
import { register } from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import type { EndpointHealth } from '../../src/model/service.js';
import { virtualDestinationSchema } from '../../src/model/virtual-destination.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { startEchoServer, type EchoClient, type EchoServerHandle } from '../../src/sim/echo.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { startTcpForwarder, type TcpForwarder } from './tcp-forwarder.js';
import { calls, until, xdsEchoClient } from './xds-clients.js';

const CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', subnet: 11 },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', subnet: 12 },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', subnet: 13 },
];

const servers = new Map<string, EchoServerHandle>();
const gateways: TcpForwarder[] = [];
const sources = new Map<string, StaticSource>();
const health = new Map<string, EndpointHealth>();
const clients: EchoClient[] = [];
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;

function reviews(cluster: string) {
  const s = servers.get(cluster);
  return staticServiceSchema.parse({
    namespace: 'demo',
    name: 'reviews',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: s ? [{ address: s.host, ports: [{ name: 'grpc', port: s.port }], serviceAccount: 'reviews', health: health.get(cluster) ?? 'ready' }] : [],
  });
}

function setHealth(cluster: string, to: EndpointHealth): void {
  health.set(cluster, to);
  sources.get(cluster)?.update([reviews(cluster)]);
}

function clientIn(cluster: (typeof CLUSTERS)[number], target: string): EchoClient {
  const c = xdsEchoClient(target, ads.port, { id: `proxyless~${cluster.name}~vd${String(clients.length)}`, cluster: cluster.name, network: cluster.network, region: cluster.region, zone: cluster.zone });
  clients.push(c);
  return c;
}

beforeAll(async () => {
  register();
  registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
  for (const c of CLUSTERS) {
    const server = await startEchoServer({ host: `127.0.${String(c.subnet)}.1`, port: 0, cluster: c.name });
    servers.set(c.name, server);
    const gw = await startTcpForwarder(`127.0.${String(c.subnet)}.254`, () => [{ host: server.host, port: server.port }]);
    gateways.push(gw);
    const source = new StaticSource(c.name, [reviews(c.name)]);
    sources.set(c.name, source);
    registry.add(clusterSchema.parse({ name: c.name, network: c.network, region: c.region, zone: c.zone, gateways: [{ address: gw.address, port: gw.port }] }), source);
  }
  registry.flush();
  const backends = [{ namespace: 'demo', name: 'reviews' }];
  provider = new FederationXds(registry, {
    debounceMs: 10,
    maxDelayMs: 100,
    virtualDestinations: [
      { name: 'reviews', spec: virtualDestinationSchema.parse({ hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends }) },
      {
        name: 'reviews-west',
        spec: virtualDestinationSchema.parse({
          hostname: 'reviews-west.global',
          ports: [{ number: 9080, protocol: 'GRPC' }],
          backends,
          failover: { policy: 'priority', order: [{ cluster: 'west-1' }, { cluster: 'east-2' }, { cluster: 'east-1' }] },
        }),
      },
    ],
  });
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await ads.close();
  provider.close();
  await registry.close();
  for (const g of gateways) await g.close();
  for (const s of servers.values()) await s.close();
});

describe('virtual destinations through xDS (@grpc/grpc-js-xds)', () => {
  it('xds:///reviews.global: nearest first, then the same region, then the other network through its gateway', async () => {
    const east1 = CLUSTERS[0];
    if (!east1) throw new Error('no east-1');
    const client = clientIn(east1, 'xds:///reviews.global:9080');
    await until(client, (r) => r.cluster === 'east-1', 'east-1 to answer');
    expect(new Set((await calls(client, 20)).map((r) => r.cluster))).toEqual(new Set(['east-1']));
    setHealth('east-1', 'unready');
    await until(client, (r) => r.cluster === 'east-2', 'traffic to move to east-2');
    setHealth('east-2', 'unready');
    const before = gateways[2]?.connections() ?? 0;
    await until(client, (r) => r.cluster === 'west-1', 'traffic to move to west-1');
    expect(gateways[2]?.connections() ?? 0).toBeGreaterThan(before);
    setHealth('east-1', 'ready');
    setHealth('east-2', 'ready');
    await until(client, (r) => r.cluster === 'east-1', 'traffic to come back to east-1');
  }, 90_000);

  it('xds:///reviews-west.global: the explicit order wins over nearness (west-1 first, from east-1)', async () => {
    const east1 = CLUSTERS[0];
    if (!east1) throw new Error('no east-1');
    const client = clientIn(east1, 'xds:///reviews-west.global');
    await until(client, () => true, 'the client to resolve');
    expect(new Set((await calls(client, 20)).map((r) => r.cluster))).toEqual(new Set(['west-1']));
    setHealth('west-1', 'unready');
    await until(client, (r) => r.cluster === 'east-2', 'traffic to move to east-2, next in the order');
    setHealth('west-1', 'ready');
    await until(client, (r) => r.cluster === 'west-1', 'traffic to come back to west-1');
  }, 90_000);
});
