/**
 * Istio's reference topology for split horizon (istio/istio pilot/pkg/xds/endpoints/ep_filters_test.go, the same
 * one test/topology/split-horizon.test.ts checks weight by weight), run with real @grpc/grpc-js-xds clients: every
 * endpoint is an echo server on loopback, every gateway a TCP forwarder to the mTLS endpoints of its network, and
 * the traffic each network receives is counted from the replies.
 *
 *   network1  cluster1a: gateway 1.1.1.1, endpoints 10.0.0.1 and 10.0.0.3 (plaintext: never through a gateway)
 *             cluster1b: no gateway of its own (falls back to its network's), endpoint 10.0.0.2
 *   network2  cluster2a: gateway 2.2.2.2, endpoint 20.0.0.1
 *             cluster2b: gateways 2.2.2.20 and 2.2.2.21, endpoints 20.0.0.2 and 20.0.0.3
 *   network3  cluster3: gateway 3.3.3.3, no endpoints
 *   network4  cluster4: no gateway (so its endpoints are direct for everyone), endpoint 40.0.0.1
 *
 * Addresses move to loopback (A.B.C.D → 127.A.C.D, e.g. 10.0.0.1 → 127.10.0.1). Istio gives every endpoint a
 * proxy can reach the same share; so the share a network receives is its reachable endpoints over all reachable
 * endpoints, which is what Istio's weights (test/topology) work out to.
 */
import { register } from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { startEchoServer, type EchoClient, type EchoServerHandle } from '../../src/sim/echo.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { startTcpForwarder, type TcpForwarder } from './tcp-forwarder.js';
import { calls, sharesBy, warmUp, xdsEchoClient } from './xds-clients.js';

const TARGET = 'xds:///echo.demo.svc.cluster.local:9080';
const CALLS = 600;
/** more than four standard deviations of a 600-call binomial at any share */
const TOLERANCE = 0.085;

interface RefEndpoint {
  address: string;
  plaintext?: boolean;
}

interface RefCluster {
  name: string;
  network: string;
  gateways: string[];
  endpoints: RefEndpoint[];
}

const REFERENCE: RefCluster[] = [
  { name: 'cluster1a', network: 'network1', gateways: ['1.1.1.1'], endpoints: [{ address: '10.0.0.1' }, { address: '10.0.0.3', plaintext: true }] },
  { name: 'cluster1b', network: 'network1', gateways: [], endpoints: [{ address: '10.0.0.2' }] },
  { name: 'cluster2a', network: 'network2', gateways: ['2.2.2.2'], endpoints: [{ address: '20.0.0.1' }] },
  { name: 'cluster2b', network: 'network2', gateways: ['2.2.2.20', '2.2.2.21'], endpoints: [{ address: '20.0.0.2' }, { address: '20.0.0.3' }] },
  { name: 'cluster3', network: 'network3', gateways: ['3.3.3.3'], endpoints: [] },
  { name: 'cluster4', network: 'network4', gateways: [], endpoints: [{ address: '40.0.0.1' }] },
];

/** Istio's reachable endpoints per proxy network (ep_filters_test.go), counted per network they live on. */
const EXPECTED: { from: string; reachable: Record<string, number> }[] = [
  { from: 'network1', reachable: { network1: 3, network2: 3, network4: 1 } },
  { from: 'network2', reachable: { network1: 2, network2: 3, network4: 1 } },
  { from: 'network3', reachable: { network1: 2, network2: 3, network4: 1 } },
  { from: 'network4', reachable: { network1: 2, network2: 3, network4: 1 } },
];

const loopback = (address: string): string => {
  const [a, , c, d] = address.split('.');
  return `127.${a ?? '0'}.${c ?? '0'}.${d ?? '0'}`;
};

const servers = new Map<string, EchoServerHandle>();
const forwarders: TcpForwarder[] = [];
const clients: EchoClient[] = [];
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;

beforeAll(async () => {
  register();
  for (const c of REFERENCE) {
    for (const e of c.endpoints) servers.set(e.address, await startEchoServer({ host: loopback(e.address), port: 0, cluster: c.name }));
  }
  registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
  for (const c of REFERENCE) {
    // a gateway reaches every mTLS endpoint of its network (the network is flat inside)
    const behind = REFERENCE.filter((o) => o.network === c.network).flatMap((o) => o.endpoints.filter((e) => !e.plaintext));
    const gateways = [];
    for (const g of c.gateways) {
      const targets = behind.flatMap((e) => {
        const s = servers.get(e.address);
        return s ? [{ host: s.host, port: s.port }] : [];
      });
      const forwarder = await startTcpForwarder(loopback(g), () => targets);
      forwarders.push(forwarder);
      gateways.push({ address: forwarder.address, port: forwarder.port });
    }
    const service = staticServiceSchema.parse({
      namespace: 'demo',
      name: 'echo',
      ports: [{ name: 'grpc', port: 9080 }],
      endpoints: c.endpoints.map((e) => {
        const s = servers.get(e.address);
        return { address: s?.host, ports: [{ name: 'grpc', port: s?.port }], tlsMode: e.plaintext ? 'plaintext' : 'mtls' };
      }),
    });
    registry.add(clusterSchema.parse({ name: c.name, network: c.network, gateways }), new StaticSource(c.name, [service]));
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
  for (const f of forwarders) await f.close();
  for (const s of servers.values()) await s.close();
});

const networkOf = (cluster: string): string => REFERENCE.find((c) => c.name === cluster)?.network ?? '?';

describe("Istio's reference topology with real proxyless clients", () => {
  it.each(EXPECTED)('from $from: every network gets the share of the endpoints it holds that Istio lets the proxy reach', async ({ from, reachable }) => {
    const client = xdsEchoClient(TARGET, ads.port, { id: `proxyless~${from}`, cluster: `${from}-proxy`, network: from, region: '', zone: '' });
    clients.push(client);
    await warmUp(client, (r) => networkOf(r.cluster), Object.keys(reachable));
    const replies = await calls(client, CALLS);
    const shares = sharesBy(replies, (r) => networkOf(r.cluster));
    const total = Object.values(reachable).reduce((a, b) => a + b, 0);
    expect([...shares.keys()].sort()).toEqual(Object.keys(reachable).sort());
    for (const [network, count] of Object.entries(reachable)) {
      expect(Math.abs((shares.get(network) ?? 0) - count / total)).toBeLessThan(TOLERANCE);
    }
    // the plaintext endpoint is reached only from its own network
    const plaintext = replies.some((r) => r.endpoint.startsWith(`${loopback('10.0.0.3')}:`));
    if (from !== 'network1') expect(plaintext).toBe(false);
  }, 60_000);
});
