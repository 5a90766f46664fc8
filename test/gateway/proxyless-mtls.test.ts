/**
 * Proxyless gRPC over mTLS across networks: a @grpc/grpc-js-xds client in cluster-a, with XdsChannelCredentials and
 * a file_watcher certificate provider holding its cluster-a SVID, calls `echo` in cluster-b. meshfed's xDS tells it
 * to use mTLS (the Cluster's UpstreamTlsContext names the provider instance and the service's SPIFFE IDs) and sends
 * it, as the only address for cluster-b's endpoints, cluster-b's gateway; the gateway passes the TLS through by the
 * bare-host SNI grpc sends; the cluster-b server (its own SVID) sees the client's SPIFFE ID and the client checked
 * the server's.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as grpc from '@grpc/grpc-js';
import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { Registry as PromRegistry } from 'prom-client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startGateway, type GatewayHandle } from '../../src/gateway/gateway.js';
import { GatewayMetrics } from '../../src/gateway/metrics.js';
import { gatewayNode, providerRouteSource } from '../../src/gateway/route-sources.js';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { echo, echoClient, startEchoServer, type EchoClient, type EchoServerHandle } from '../../src/sim/echo.js';
import { workloadIdentity } from '../../src/sim/trust-demo.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { FederationXds } from '../../src/xds/federation-provider.js';

const TARGET = 'xds:///echo.demo.svc.cluster.local:9080';
let dir: string;
let authority: TrustAuthority;
let server: EchoServerHandle;
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;
let gateway: GatewayHandle;
let gatewayMetrics: PromRegistry;
const clients: EchoClient[] = [];

beforeAll(async () => {
  register();
  dir = mkdtempSync(join(tmpdir(), 'meshfed-proxyless-mtls-'));
  authority = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'meshfed.test' }, {}).authority;
  authority.issueIntermediate('cluster-a');
  authority.issueIntermediate('cluster-b');
  const serverId = workloadIdentity(authority, 'cluster-b', 'echo', 'demo');
  server = await startEchoServer({
    host: '127.0.9.1',
    port: 0,
    cluster: 'cluster-b',
    credentials: grpc.ServerCredentials.createSsl(Buffer.from(serverId.tls.ca), [{ cert_chain: Buffer.from(serverId.tls.cert), private_key: Buffer.from(serverId.tls.key) }], true),
  });
  const clientId = workloadIdentity(authority, 'cluster-a', 'frontend', 'demo');
  writeFileSync(join(dir, 'cert.pem'), clientId.tls.cert);
  writeFileSync(join(dir, 'key.pem'), clientId.tls.key, { mode: 0o600 });
  writeFileSync(join(dir, 'ca.pem'), clientId.tls.ca);

  registry = new Registry({ debounceMs: 5, maxDelayMs: 50 });
  const echoService = staticServiceSchema.parse({
    namespace: 'demo',
    name: 'echo',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: [{ address: server.host, ports: [{ name: 'grpc', port: server.port }], serviceAccount: 'echo' }],
  });
  registry.add(clusterSchema.parse({ name: 'cluster-a', network: 'net-a' }), new StaticSource('cluster-a', []));
  provider = new FederationXds(registry, { debounceMs: 5, maxDelayMs: 50, trustDomain: authority.trustDomain, proxylessMtls: { certificateProvider: 'default' } });
  gatewayMetrics = new PromRegistry();
  gateway = await startGateway({
    host: '127.0.9.254',
    port: 0,
    routes: providerRouteSource(provider, gatewayNode('gw-b', 'cluster-b', 'net-b')),
    metrics: new GatewayMetrics(gatewayMetrics),
  });
  registry.add(clusterSchema.parse({ name: 'cluster-b', network: 'net-b', gateways: [{ address: gateway.host, port: gateway.port }] }), new StaticSource('cluster-b', [echoService]));
  registry.flush();
  provider.flush();
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
}, 60_000);

afterAll(async () => {
  for (const c of clients) c.close();
  await gateway.close();
  await ads.close();
  provider.close();
  await registry.close();
  await server.close();
  rmSync(dir, { recursive: true, force: true });
});

function client(certificateProviders: Record<string, unknown>): EchoClient {
  const bootstrap = {
    xds_servers: [{ server_uri: `127.0.0.1:${String(ads.port)}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: { id: `proxyless~cluster-a~${String(clients.length)}`, locality: {}, metadata: { CLUSTER_ID: 'cluster-a', NETWORK: 'net-a', GENERATOR: 'grpc' } },
    certificate_providers: certificateProviders,
  };
  const c = echoClient(TARGET, new XdsChannelCredentials(grpc.credentials.createInsecure()), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': JSON.stringify(bootstrap) });
  clients.push(c);
  return c;
}

const fileWatcher = (): Record<string, unknown> => ({
  default: {
    plugin_name: 'file_watcher',
    config: { certificate_file: join(dir, 'cert.pem'), private_key_file: join(dir, 'key.pem'), ca_certificate_file: join(dir, 'ca.pem'), refresh_interval: '600s' },
  },
});

async function sample(prefix: string): Promise<number> {
  const line = (await gatewayMetrics.metrics()).split('\n').find((l) => l.startsWith(prefix));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

describe('proxyless gRPC with xDS credentials through the east-west gateway', () => {
  it("calls cluster-b over mTLS through its gateway: the server sees the client's SPIFFE ID", async () => {
    const c = client(fileWatcher());
    let reply: Awaited<ReturnType<typeof echo>> | undefined;
    const deadline = Date.now() + 20_000;
    while (!reply) {
      try {
        reply = await echo(c, 'across networks', 3_000);
      } catch (error) {
        if (Date.now() > deadline) throw error;
        await new Promise((done) => setTimeout(done, 100));
      }
    }
    expect(reply.cluster).toBe('cluster-b');
    expect(reply.peer).toBe('spiffe://meshfed.test/ns/demo/sa/frontend');
    // the only way there: the gateway, by the bare host grpc sends as SNI
    expect(await sample('meshfed_gateway_connections_total{outcome="forwarded",sni="echo.demo.svc.cluster.local"}')).toBeGreaterThanOrEqual(1);
  }, 60_000);

  it('a client without the certificate provider named by meshfed rejects the configuration and cannot call', async () => {
    const c = client({});
    await expect(echo(c, 'no credentials', 5_000)).rejects.toThrow();
  }, 30_000);
});
