/** Helpers of the embedded-federation tests: free loopback ports, mTLS clients, bounded waits, an in-process federation. */
import { writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import type { PeerCertificate } from 'node:tls';
import * as grpc from '@grpc/grpc-js';
import type { Registry as PromRegistry } from 'prom-client';
import { startManager, type Manager } from '../../src/api/manager.js';
import { closeEmbeddedGateways, startEmbeddedGateways, type EmbeddedGateway } from '../../src/gateway/embedded.js';
import { SILENT_LOGGER } from '../../src/logging.js';
import { startEmbeddedFederation, type EmbeddedFederation } from '../../src/sim/embedded-federation.js';
import { loadFederationFile } from '../../src/store/federation.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { peerUri } from '../../src/sim/trust-demo.js';
import type { TlsMaterial } from '../../src/sim/identities.js';

/** every wait is bounded, generously */
export const WAIT_MS = 60_000;

/** A port free on `host` now (the test's federation file names it before anything listens). */
export async function freePort(host: string): Promise<number> {
  const probe = createServer();
  await new Promise<void>((resolve, reject) => {
    probe.once('error', reject);
    probe.listen(0, host, resolve);
  });
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => { resolve(); }));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

/** Channel options for a gRPC client that targets an IP literal: a name to send as SNI instead (RFC 6066 forbids IPs there). */
export const SNI_OPTION = { 'grpc.ssl_target_name_override': 'workload.sim.test' } as const;

/** gRPC channel credentials presenting `tls`; the server's SPIFFE ID is recorded in `seen`. */
export function mtlsCredentials(tls: TlsMaterial, seen: string[] = []): grpc.ChannelCredentials {
  return grpc.credentials.createSsl(Buffer.from(tls.ca), Buffer.from(tls.key), Buffer.from(tls.cert), {
    checkServerIdentity: (_host: string, cert: PeerCertificate) => {
      seen.push(peerUri(cert));
      return undefined;
    },
  });
}

/** Polls `condition` until it holds; fails naming `what` after WAIT_MS. */
export async function eventually(condition: () => boolean | Promise<boolean>, what: string, limitMs = WAIT_MS): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!(await condition())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

export interface SimCluster {
  name: string;
  network: string;
  region: string;
  zone: string;
  /** its reviews workloads listen on 127.0.SUBNET.1 and .2 */
  subnet: number;
  /** its gateway's loopback address */
  gateway: string;
}

/** The API token of startInProcessFederation's manager. */
export const IN_PROCESS_TOKEN = 'in-process-federation-token-0123456789';

export interface InProcessFederation {
  manager: Manager;
  gateways: EmbeddedGateway[];
  federation: EmbeddedFederation;
  close: () => Promise<void>;
}

/** A federation file: each cluster with two reviews workloads and a gateway on free ports, and VD reviews → reviews.global. */
async function reviewsFederationFile(dir: string, name: string, trustDomain: string, clusters: readonly SimCluster[]): Promise<string> {
  const docs = [`apiVersion: meshfed.io/v1alpha1\nkind: Federation\nmetadata: { name: ${name} }\nspec: { trustDomain: ${trustDomain} }`];
  for (const c of clusters) {
    const reviews = [1, 2].map((i) => `127.0.${String(c.subnet)}.${String(i)}`);
    const [p1, p2, gw] = await Promise.all([freePort(reviews[0] ?? ''), freePort(reviews[1] ?? ''), freePort(c.gateway)]);
    docs.push(
      [
        'apiVersion: meshfed.io/v1alpha1',
        'kind: Cluster',
        `metadata: { name: ${c.name} }`,
        'spec:',
        `  network: ${c.network}`,
        `  region: ${c.region}`,
        `  zone: ${c.zone}`,
        `  gateways: [{ address: ${c.gateway}, port: ${String(gw)} }]`,
        '  services:',
        '    - name: reviews',
        '      ports: [{ name: grpc, port: 9080, appProtocol: grpc }]',
        '      endpoints:',
        `        - { address: ${reviews[0] ?? ''}, ports: [{ name: grpc, port: ${String(p1)} }], serviceAccount: reviews }`,
        `        - { address: ${reviews[1] ?? ''}, ports: [{ name: grpc, port: ${String(p2)} }], serviceAccount: reviews }`,
      ].join('\n'),
    );
  }
  docs.push(
    [
      'apiVersion: meshfed.io/v1alpha1',
      'kind: VirtualDestination',
      'metadata: { name: reviews }',
      'spec:',
      '  hostname: reviews.global',
      '  ports: [{ number: 9080, protocol: GRPC, name: grpc }]',
      '  backends: [{ name: reviews }]',
    ].join('\n'),
  );
  const path = join(dir, 'federation.yaml');
  writeFileSync(path, `${docs.join('\n---\n')}\n`);
  return path;
}

/**
 * What `meshfed serve --workloads` runs, in this process: the manager with xDS (proxyless mTLS, instance `default`),
 * the built-in gateways and the embedded federation of a reviews federation (reviewsFederationFile) in `dir`.
 */
export async function startInProcessFederation(options: { dir: string; name: string; trustDomain: string; clusters: readonly SimCluster[]; graceMs?: number; gatewayMetrics?: PromRegistry }): Promise<InProcessFederation> {
  const loaded = loadFederationFile(await reviewsFederationFile(options.dir, options.name, options.trustDomain, options.clusters));
  const stateDir = join(options.dir, 'state');
  const authority = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: options.trustDomain }, {}).authority;
  for (const c of options.clusters) authority.issueIntermediate(c.name);
  const manager = await startManager({
    stateDir,
    token: IN_PROCESS_TOKEN,
    trust: authority,
    logger: SILENT_LOGGER,
    api: { host: '127.0.0.1', port: 0 },
    federation: loaded,
    ...(options.graceMs !== undefined ? { graceMs: options.graceMs } : {}),
    xds: { host: '127.0.0.1', port: 0, trustDomain: authority.trustDomain, proxylessMtls: 'default' },
  });
  const xds = manager.xds;
  if (!xds) throw new Error('the manager runs no xDS server');
  const gateways = await startEmbeddedGateways(
    loaded.clusters.map((c) => c.cluster),
    xds.provider,
    SILENT_LOGGER,
    options.gatewayMetrics,
  );
  const federation = await startEmbeddedFederation({
    clusters: loaded.clusters,
    sources: manager.staticSources,
    authority,
    dir: join(stateDir, 'sim'),
    xds: { host: '127.0.0.1', port: xds.server.port },
  });
  return {
    manager,
    gateways,
    federation,
    close: async () => {
      await federation.close();
      await closeEmbeddedGateways(gateways);
      await manager.close();
    },
  };
}
