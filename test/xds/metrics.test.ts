/**
 * The xDS metrics (src/xds/metrics.ts) as Prometheus shows them, driven by a real @grpc/grpc-js-xds client and a
 * raw ADS client that NACKs: connected proxies by cluster and kind, pushes, ACK latency, NACKs, convergence.
 */
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc/grpc-js-xds';
import { Registry as PromRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { startEchoServer, type EchoClient, type EchoServerHandle } from '../../src/sim/echo.js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject } from '../../src/xds/ads-protocol.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { XdsMetrics } from '../../src/xds/metrics.js';
import { calls, until, WAIT_MS, xdsEchoClient } from './xds-clients.js';

const TARGET = 'xds:///echo.demo.svc.cluster.local:9080';
const CLA = 'outbound|9080||echo.demo.svc.cluster.local';

let servers: EchoServerHandle[] = [];
let source: StaticSource;
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;
let prom: PromRegistry;
let client: EchoClient;

const service = (list: EchoServerHandle[]) =>
  staticServiceSchema.parse({ namespace: 'demo', name: 'echo', ports: [{ name: 'grpc', port: 9080 }], endpoints: list.map((s) => ({ address: s.host, ports: [{ name: 'grpc', port: s.port }] })) });

/** The value of one sample line (`name{labels} value`), 0 when absent. */
async function sample(prefix: string): Promise<number> {
  const text = await prom.metrics();
  const line = text.split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

async function eventually(what: string, check: () => Promise<boolean>): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 20));
  }
}

beforeAll(async () => {
  register();
  servers = [await startEchoServer({ host: '127.0.4.1', port: 0, cluster: 'c1' }), await startEchoServer({ host: '127.0.4.2', port: 0, cluster: 'c1' })];
  source = new StaticSource('c1', [service(servers.slice(0, 1))]);
  registry = new Registry({ debounceMs: 5, maxDelayMs: 50 });
  registry.add(clusterSchema.parse({ name: 'c1', network: 'n1' }), source);
  registry.flush();
  provider = new FederationXds(registry, { debounceMs: 5, maxDelayMs: 50 });
  prom = new PromRegistry();
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider, observer: new XdsMetrics(prom).observer(provider) });
  client = xdsEchoClient(TARGET, ads.port, { id: 'proxyless~c1~metrics', cluster: 'c1', network: 'n1', region: '', zone: '' });
}, 60_000);

afterAll(async () => {
  client.close();
  await ads.close();
  provider.close();
  await registry.close();
  for (const s of servers) await s.close();
});

describe('xDS metrics', () => {
  it('count the connected proxy, the pushes of a change, their ACKs and the convergence of the change', async () => {
    await until(client, () => true, 'the client to resolve');
    expect(await sample('meshfed_xds_connected_proxies{cluster="c1",kind="proxyless"}')).toBe(1);
    expect(await sample('meshfed_xds_acks_total{type="ClusterLoadAssignment"}')).toBeGreaterThanOrEqual(1);
    const pushesBefore = await sample('meshfed_xds_pushes_total{type="ClusterLoadAssignment"}');
    const convergedBefore = await sample('meshfed_xds_convergence_seconds_count');

    source.update([service(servers)]);
    await until(client, (r) => r.endpoint === servers[1]?.endpoint, 'the new endpoint to answer');
    await eventually('the change to converge', async () => (await sample('meshfed_xds_convergence_seconds_count')) > convergedBefore);
    expect(await sample('meshfed_xds_pushes_total{type="ClusterLoadAssignment"}')).toBe(pushesBefore + 1);
    expect(await sample('meshfed_xds_push_latency_seconds_count')).toBeGreaterThanOrEqual(1);
    expect(await sample('meshfed_xds_ack_latency_seconds_count{type="ClusterLoadAssignment"}')).toBeGreaterThanOrEqual(2);
    expect((await calls(client, 10)).every((r) => r.cluster === 'c1')).toBe(true);
  });

  it('count a NACK, and a NACKing proxy does not hold a change unconverged; a closed stream leaves the gauge', async () => {
    const Client = grpc.makeGenericClientConstructor({}, 'Ads');
    const raw = new Client(`127.0.0.1:${String(ads.port)}`, grpc.credentials.createInsecure());
    const { method } = adsServiceDefinition();
    const call = raw.makeBidiStreamRequest<DiscoveryRequestObject, DiscoveryResponseObject>(ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
    const responses: DiscoveryResponseObject[] = [];
    call.on('data', (r: DiscoveryResponseObject) => responses.push(r));
    call.on('error', () => undefined);
    call.write({ node: { id: 'raw~nacker', metadata: { fields: { CLUSTER_ID: { kind: 'stringValue', stringValue: 'c9' } } } }, type_url: TYPE_URL.clusterLoadAssignment, resource_names: [CLA] });
    await eventually('the first response', () => Promise.resolve(responses.length >= 1));
    expect(await sample('meshfed_xds_connected_proxies{cluster="c9",kind="proxyless"}')).toBe(1);
    const nacksBefore = await sample('meshfed_xds_nacks_total{type="ClusterLoadAssignment"}');
    const first = responses[0];
    call.write({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: [CLA], response_nonce: first?.nonce, version_info: '', error_detail: { code: 3, message: 'rejected by test' } });
    await eventually('the NACK to be counted', async () => (await sample('meshfed_xds_nacks_total{type="ClusterLoadAssignment"}')) === nacksBefore + 1);

    // a change pushed to both proxies: the grpc client ACKs, the raw one NACKs; the change still converges
    const convergedBefore = await sample('meshfed_xds_convergence_seconds_count');
    source.update([service(servers.slice(1))]);
    await eventually('the push to the raw client', () => Promise.resolve(responses.length >= 2));
    call.write({ type_url: TYPE_URL.clusterLoadAssignment, resource_names: [CLA], response_nonce: responses[1]?.nonce, version_info: '', error_detail: { code: 3, message: 'rejected by test' } });
    await eventually('the change to converge', async () => (await sample('meshfed_xds_convergence_seconds_count')) > convergedBefore);

    call.end();
    raw.close();
    await eventually('the gauge to drop', async () => (await sample('meshfed_xds_connected_proxies{cluster="c9",kind="proxyless"}')) === 0);
  });
});
