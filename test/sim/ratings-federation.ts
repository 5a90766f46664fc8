/**
 * An in-process federation of HTTP ratings workloads behind the virtual destination ratings.global, with everything
 * a sidecar needs from meshfed: the manager with its xDS server, the built-in gateways, the embedded workloads and
 * meshfed's DNS server (on a free port, with the manager's VIPs):
 *
 *   east-1  net-east  us-east/us-east-1a  ratings 127.0.90.11, .12    gateway 127.0.93.1
 *   east-2  net-east  us-east/us-east-1b  ratings 127.0.91.11              gateway 127.0.93.2
 *   west-1  net-west  us-west/us-west-1a  ratings 127.0.92.11              gateway 127.0.93.3
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { startManager, type Manager } from '../../src/api/manager.js';
import { startDnsServer, type DnsServer } from '../../src/dns/server.js';
import { StaticZoneSource } from '../../src/dns/source.js';
import { closeEmbeddedGateways, startEmbeddedGateways, type EmbeddedGateway } from '../../src/gateway/embedded.js';
import { SILENT_LOGGER } from '../../src/logging.js';
import { startEmbeddedFederation, type EmbeddedFederation } from '../../src/sim/embedded-federation.js';
import type { ProbeSettings } from '../../src/sim/prober.js';
import { loadFederationFile } from '../../src/store/federation.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { freePort } from './helpers.js';

export const RATINGS_CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', ratings: ['127.0.90.11', '127.0.90.12'], gateway: '127.0.93.1' },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', ratings: ['127.0.91.11'], gateway: '127.0.93.2' },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', ratings: ['127.0.92.11'], gateway: '127.0.93.3' },
] as const;

export const RATINGS_TRUST_DOMAIN = 'ratings.test';

export interface RatingsFederation {
  manager: Manager;
  gateways: EmbeddedGateway[];
  federation: EmbeddedFederation;
  dns: DnsServer;
  xds: { host: string; port: number };
  close(): Promise<void>;
}

async function federationFile(dir: string): Promise<string> {
  const docs = [`apiVersion: meshfed.io/v1alpha1\nkind: Federation\nmetadata: { name: ratings }\nspec: { trustDomain: ${RATINGS_TRUST_DOMAIN} }`];
  for (const c of RATINGS_CLUSTERS) {
    const endpoints = await Promise.all(c.ratings.map(async (address) => `        - { address: ${address}, ports: [{ name: http, port: ${String(await freePort(address))} }], serviceAccount: ratings }`));
    docs.push(
      [
        'apiVersion: meshfed.io/v1alpha1',
        'kind: Cluster',
        `metadata: { name: ${c.name} }`,
        'spec:',
        `  network: ${c.network}`,
        `  region: ${c.region}`,
        `  zone: ${c.zone}`,
        `  gateways: [{ address: ${c.gateway}, port: ${String(await freePort(c.gateway))} }]`,
        '  services:',
        '    - name: ratings',
        '      ports: [{ name: http, port: 9080, appProtocol: http }]',
        '      endpoints:',
        ...endpoints,
      ].join('\n'),
    );
  }
  docs.push(
    [
      'apiVersion: meshfed.io/v1alpha1',
      'kind: VirtualDestination',
      'metadata: { name: ratings }',
      'spec:',
      '  hostname: ratings.global',
      '  ports: [{ number: 9080, protocol: HTTP, name: http }]',
      '  backends: [{ name: ratings }]',
      '  failover: { policy: locality }',
    ].join('\n'),
  );
  const path = join(dir, 'federation.yaml');
  writeFileSync(path, `${docs.join('\n---\n')}\n`);
  return path;
}

/** Starts it all in `dir`; `probe`: the readiness probes' settings. */
export async function startRatingsFederation(dir: string, probe?: Partial<ProbeSettings>): Promise<RatingsFederation> {
  const loaded = loadFederationFile(await federationFile(dir));
  const stateDir = join(dir, 'state');
  const authority = TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: RATINGS_TRUST_DOMAIN }, {}).authority;
  for (const c of RATINGS_CLUSTERS) authority.issueIntermediate(c.name);
  const manager = await startManager({
    stateDir,
    token: 'ratings-federation-token-0123456789',
    logger: SILENT_LOGGER,
    api: { host: '127.0.0.1', port: 0 },
    federation: loaded,
    xds: { host: '127.0.0.1', port: 0, trustDomain: authority.trustDomain },
  });
  const running = manager.xds;
  if (!running) throw new Error('the manager runs no xDS server');
  const xds = { host: '127.0.0.1', port: running.server.port };
  const gateways = await startEmbeddedGateways(
    loaded.clusters.map((c) => c.cluster),
    running.provider,
    SILENT_LOGGER,
  );
  const zone = new StaticZoneSource(manager.virtualDestinations.list().map(({ spec }) => ({ hostname: spec.hostname, ports: spec.ports.map((p) => ({ number: p.number, protocol: p.protocol })) })));
  const dns = await startDnsServer({ source: zone, allocator: manager.vips, addresses: ['127.0.0.1'], port: 0 });
  const federation = await startEmbeddedFederation({
    clusters: loaded.clusters,
    sources: manager.staticSources,
    authority,
    dir: join(stateDir, 'sim'),
    xds,
    ...(probe ? { probe } : {}),
  });
  return {
    manager,
    gateways,
    federation,
    dns,
    xds,
    close: async () => {
      await federation.close();
      await dns.close();
      await closeEmbeddedGateways(gateways);
      await manager.close();
    },
  };
}
