/**
 * Virtual destinations through xDS with the real client: @grpc/grpc-js-xds channels to `xds:///reviews.global`
 * (locality failover), `xds:///reviews-west.global` (an explicit priority order), `xds:///reviews-weighted.global`
 * (weights within ordered tiers) and `xds:///reviews-spill.global` (minHealthyPercent spill) in clusters on two
 * networks. The backends are the `reviews` echo servers of every cluster, four per cluster so that a quarter of a
 * cluster can be taken out; each cluster's gateway is a TCP forwarder to its ready endpoints.
 *
 *   east-1  net-east  us-east/us-east-1a  127.0.11.x
 *   east-2  net-east  us-east/us-east-1b  127.0.12.x
 *   west-1  net-west  us-west/us-west-1a  127.0.13.x
 *   west-2  net-west  us-west/us-west-1b  127.0.14.x
 *
 * Traffic shares are measured over hundreds of calls: grpc picks a locality at random by weight, so a measured share
 * is binomial and is held to within SDS standard deviations of the expected one.
 */
import { register } from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import type { EndpointHealth } from '../../src/model/service.js';
import { virtualDestinationSchema, type NamedVirtualDestination, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { startEchoServer, type EchoClient, type EchoReply, type EchoServerHandle } from '../../src/sim/echo.js';
import { virtualDestinationAssignment } from '../../src/topology/index.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { FederationXds, type AppliedChange } from '../../src/xds/federation-provider.js';
import { startTcpForwarder, type TcpForwarder } from './tcp-forwarder.js';
import { calls, settle, sharesBy, until, warmUp, xdsEchoClient } from './xds-clients.js';

const CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', subnet: 11 },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', subnet: 12 },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', subnet: 13 },
  { name: 'west-2', network: 'net-west', region: 'us-west', zone: 'us-west-1b', subnet: 14 },
];
type Place = (typeof CLUSTERS)[number];
/** reviews endpoints per cluster */
const ENDPOINTS = 4;
const ALL = Array.from({ length: ENDPOINTS }, (_, i) => i);
/** calls per measured share */
const MEASURED = 800;
/** tolerance of a measured share, in binomial standard deviations */
const SDS = 4.5;

const servers = new Map<string, EchoServerHandle[]>();
const gateways: TcpForwarder[] = [];
const sources = new Map<string, StaticSource>();
/** `CLUSTER#INDEX` → health (absent: ready) */
const health = new Map<string, EndpointHealth>();
const clients: EchoClient[] = [];
/** EDS responses pushed to each node id */
const edsPushes = new Map<string, number>();
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;

const ports = [{ number: 9080, protocol: 'GRPC' }];
const backends = [{ namespace: 'demo', name: 'reviews' }];
const vd = (name: string, input: Omit<VirtualDestinationInput, 'ports' | 'backends'>): NamedVirtualDestination => ({ name, spec: virtualDestinationSchema.parse({ ports, backends, ...input }) });

/** Two tiers by region, each split 3:1 between its clusters. */
const WEIGHTED = vd('reviews-weighted', {
  hostname: 'reviews-weighted.global',
  failover: {
    policy: 'priority',
    order: [{ region: 'us-east' }, { region: 'us-west' }],
    weights: [
      { cluster: 'east-1', weight: 3 },
      { cluster: 'east-2', weight: 1 },
      { cluster: 'west-1', weight: 1 },
      { cluster: 'west-2', weight: 3 },
    ],
  },
});
const MIN_HEALTHY = 0.8;
/** east-1, then east-2, spilling below 80 % healthy; the west clusters last, unordered. */
const SPILL = vd('reviews-spill', {
  hostname: 'reviews-spill.global',
  failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'east-2' }], minHealthyPercent: MIN_HEALTHY * 100 },
});

const healthOf = (cluster: string, i: number): EndpointHealth => health.get(`${cluster}#${String(i)}`) ?? 'ready';
const endpointOf = (cluster: string, i: number): string => servers.get(cluster)?.[i]?.endpoint ?? '';

function reviews(cluster: string) {
  return staticServiceSchema.parse({
    namespace: 'demo',
    name: 'reviews',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: (servers.get(cluster) ?? []).map((s, i) => ({ address: s.host, ports: [{ name: 'grpc', port: s.port }], serviceAccount: 'reviews', health: healthOf(cluster, i) })),
  });
}

/** Sets the health of endpoints `which` (default: all) of `cluster`, in one update of its source. */
function setHealth(cluster: string, to: EndpointHealth, which: readonly number[] = ALL): void {
  for (const i of which) health.set(`${cluster}#${String(i)}`, to);
  sources.get(cluster)?.update([reviews(cluster)]);
}

function place(name: string): Place {
  const found = CLUSTERS.find((c) => c.name === name);
  if (!found) throw new Error(`no cluster ${name}`);
  return found;
}

const nodeId = (cluster: Place): string => `proxyless~${cluster.name}~vd${String(clients.length)}`;

function clientIn(cluster: Place, target: string, id = nodeId(cluster)): EchoClient {
  const c = xdsEchoClient(target, ads.port, { id, cluster: cluster.name, network: cluster.network, region: cluster.region, zone: cluster.zone });
  clients.push(c);
  return c;
}

const byCluster = (r: EchoReply): string => r.cluster;
const clustersOf = (replies: readonly EchoReply[]): string[] => [...new Set(replies.map(byCluster))].sort();

/** `share`, measured over `n` calls, is `expected` within SDS binomial standard deviations. */
function expectShare(what: string, share: number, expected: number, n: number): void {
  const band = SDS * Math.sqrt((expected * (1 - expected)) / n);
  expect(share, `${what}: ${share.toFixed(3)} measured, ${expected.toFixed(3)} ± ${band.toFixed(3)} expected`).toBeGreaterThanOrEqual(expected - band - 1e-9);
  expect(share, `${what}: ${share.toFixed(3)} measured, ${expected.toFixed(3)} ± ${band.toFixed(3)} expected`).toBeLessThanOrEqual(expected + band + 1e-9);
}

beforeAll(async () => {
  register();
  registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
  for (const c of CLUSTERS) {
    const list: EchoServerHandle[] = [];
    for (let i = 1; i <= ENDPOINTS; i++) list.push(await startEchoServer({ host: `127.0.${String(c.subnet)}.${String(i)}`, port: 0, cluster: c.name }));
    servers.set(c.name, list);
    // like an east-west gateway, it forwards to the cluster's ready endpoints only
    const gw = await startTcpForwarder(`127.0.${String(c.subnet)}.254`, () => list.filter((_, i) => healthOf(c.name, i) === 'ready'));
    gateways.push(gw);
    const source = new StaticSource(c.name, [reviews(c.name)]);
    sources.set(c.name, source);
    registry.add(clusterSchema.parse({ name: c.name, network: c.network, region: c.region, zone: c.zone, gateways: [{ address: gw.address, port: gw.port }] }), source);
  }
  registry.flush();
  provider = new FederationXds(registry, {
    debounceMs: 10,
    maxDelayMs: 100,
    virtualDestinations: [
      vd('reviews', { hostname: 'reviews.global' }),
      vd('reviews-west', {
        hostname: 'reviews-west.global',
        failover: { policy: 'priority', order: [{ cluster: 'west-1' }, { cluster: 'east-2' }, { cluster: 'east-1' }] },
      }),
      WEIGHTED,
      SPILL,
    ],
  });
  ads = await startAdsServer({
    host: '127.0.0.1',
    port: 0,
    provider,
    observer: {
      sent: (stream, typeUrl, _nonce, push) => {
        if (push && typeUrl === TYPE_URL.clusterLoadAssignment) edsPushes.set(stream.node.id, (edsPushes.get(stream.node.id) ?? 0) + 1);
      },
    },
  });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await ads.close();
  provider.close();
  await registry.close();
  for (const g of gateways) await g.close();
  for (const list of servers.values()) for (const s of list) await s.close();
});

describe('virtual destinations through xDS (@grpc/grpc-js-xds)', () => {
  it('xds:///reviews.global: nearest first, then the same region, then the other network through its gateway', async () => {
    const client = clientIn(place('east-1'), 'xds:///reviews.global:9080');
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
    const client = clientIn(place('east-1'), 'xds:///reviews-west.global');
    await until(client, () => true, 'the client to resolve');
    expect(new Set((await calls(client, 20)).map((r) => r.cluster))).toEqual(new Set(['west-1']));
    setHealth('west-1', 'unready');
    await until(client, (r) => r.cluster === 'east-2', 'traffic to move to east-2, next in the order');
    setHealth('west-1', 'ready');
    await until(client, (r) => r.cluster === 'west-1', 'traffic to come back to west-1');
  }, 90_000);

  it('xds:///reviews-weighted.global: each tier split by the weights; when the first tier fails, the next takes all, split by its own', async () => {
    const client = clientIn(place('east-1'), 'xds:///reviews-weighted.global');
    await warmUp(client, byCluster, ['east-1', 'east-2']);
    const east = await calls(client, MEASURED);
    expect(clustersOf(east)).toEqual(['east-1', 'east-2']);
    expectShare('east-1 of the us-east tier (3:1)', sharesBy(east, byCluster).get('east-1') ?? 0, 3 / 4, MEASURED);

    setHealth('east-1', 'unready');
    setHealth('east-2', 'unready');
    // the west tier is reached only once both east clusters are out, through each west cluster's gateway
    await warmUp(client, byCluster, ['west-1', 'west-2']);
    const west = await calls(client, MEASURED);
    expect(clustersOf(west)).toEqual(['west-1', 'west-2']);
    expectShare('west-1 of the us-west tier (1:3)', sharesBy(west, byCluster).get('west-1') ?? 0, 1 / 4, MEASURED);

    setHealth('east-1', 'ready');
    setHealth('east-2', 'ready');
    await settle(client, (batch) => batch.every((r) => r.cluster.startsWith('east-')), 'traffic to come back to the us-east tier');
  }, 90_000);

  it('xds:///reviews-spill.global: a tier below minHealthyPercent keeps min(1, h/m) of its traffic and spills the rest to the next', async () => {
    const east1 = place('east-1');
    const client = clientIn(east1, 'xds:///reviews-spill.global');
    await settle(client, (batch) => clustersOf(batch).join() === 'east-1', 'every call on east-1 while it is healthy');
    const proxy = { cluster: east1.name, network: east1.network, locality: { region: east1.region, zone: east1.zone, subzone: '' } };
    for (const out of [[0], [0, 1, 2]]) {
      setHealth('east-1', 'unready', out);
      const h = (ENDPOINTS - out.length) / ENDPOINTS;
      const gone = new Set(out.map((i) => endpointOf('east-1', i)));
      await settle(client, (batch) => batch.some((r) => r.cluster === 'east-2') && batch.every((r) => !gone.has(r.endpoint)), `east-1 at ${String(h)} healthy to spill to east-2`);
      await warmUp(client, byCluster, ['east-1', 'east-2']);
      const { assignment, placements } = virtualDestinationAssignment(provider.snapshot(), SPILL.spec, 9080, proxy);
      const kept = placements.filter((p, i) => assignment.groups[i]?.priority === 0 && p.clusters.join() === 'east-1').reduce((sum, p) => sum + p.share, 0);
      expect(kept).toBeCloseTo(Math.min(1, h / MIN_HEALTHY), 9);
      const replies = await calls(client, MEASURED);
      expect(clustersOf(replies)).toEqual(['east-1', 'east-2']);
      expect(replies.filter((r) => gone.has(r.endpoint))).toEqual([]);
      expectShare(`east-1 at ${String(h)} healthy`, sharesBy(replies, byCluster).get('east-1') ?? 0, kept, MEASURED);
    }
    setHealth('east-1', 'ready');
    await settle(client, (batch) => clustersOf(batch).join() === 'east-1', 'every call back on east-1');
  }, 90_000);

  it('xds:///reviews-spill.global: the whole first tier failing moves all traffic to the next tier in one push', async () => {
    const east1 = place('east-1');
    const id = nodeId(east1);
    const client = clientIn(east1, 'xds:///reviews-spill.global', id);
    const everyEast1 = new Set(ALL.map((i) => endpointOf('east-1', i)));
    await settle(client, (batch) => clustersOf(batch).join() === 'east-1' && new Set(batch.map((r) => r.endpoint)).size === everyEast1.size, 'every call on east-1, all four endpoints');
    // nothing pending from earlier changes: every push counted below comes from the change below
    registry.flush();
    provider.flush();
    const applied: AppliedChange[] = [];
    const stop = provider.onApplied((change) => applied.push(change));
    const pushedBefore = edsPushes.get(id) ?? 0;
    try {
      setHealth('east-1', 'unready');
      await until(client, (r) => r.cluster === 'east-2', 'traffic to move to east-2');
      const after = await calls(client, 50);
      expect(clustersOf(after)).toEqual(['east-2']);
    } finally {
      stop();
    }
    expect(applied.map((c) => c.types)).toEqual([[TYPE_URL.clusterLoadAssignment]]);
    expect((edsPushes.get(id) ?? 0) - pushedBefore).toBe(1);
    setHealth('east-1', 'ready');
    await settle(client, (batch) => clustersOf(batch).join() === 'east-1', 'every call back on east-1');
  }, 90_000);
});
