/**
 * serve --remote-workloads: the readiness of workloads that run in another process, probed from the manager's side and
 * reported through the cluster's source. Here the workloads run in this process (the embedded federation, reporting to
 * a source of its own, as `meshfed sim-cluster` does); the manager's source only hears what the remote probes find.
 */
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { EndpointHealth } from '../../src/model/service.js';
import { StaticSource } from '../../src/registry/static-source.js';
import type { ServiceView } from '../../src/registry/source.js';
import { startEmbeddedFederation, type EmbeddedFederation } from '../../src/sim/embedded-federation.js';
import { startRemoteReadiness, type RemoteReadiness } from '../../src/sim/remote-readiness.js';
import { loadFederationFile, type LoadedFederation } from '../../src/store/federation.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { eventually, freePort } from './helpers.js';

const REVIEWS = ['127.0.117.1', '127.0.117.2'];
const PROBED_ELSEWHERE = '127.0.117.3';

const work = mkdtempSync(join(tmpdir(), 'meshfed-remote-readiness-'));
let federation: LoadedFederation;
let workloads: EmbeddedFederation;
let remote: RemoteReadiness;
/** what the manager's source last reported: endpoint address → health */
let reported = new Map<string, EndpointHealth | undefined>();

beforeAll(async () => {
  const [p1, p2] = await Promise.all(REVIEWS.map((a) => freePort(a)));
  const path = join(work, 'federation.yaml');
  writeFileSync(
    path,
    [
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Cluster',
      'metadata: { name: far-1 }',
      'spec:',
      '  network: net-far',
      '  services:',
      '    - name: reviews',
      '      ports: [{ name: grpc, port: 9080, appProtocol: grpc }]',
      '      endpoints:',
      `        - { address: ${REVIEWS[0] ?? ''}, ports: [{ name: grpc, port: ${String(p1)} }], serviceAccount: reviews, health: unready }`,
      `        - { address: ${REVIEWS[1] ?? ''}, ports: [{ name: grpc, port: ${String(p2)} }], serviceAccount: reviews, health: unready }`,
      `        - { address: ${PROBED_ELSEWHERE}, ports: [{ name: grpc, port: 9080 }], serviceAccount: reviews, health: ready }`,
      '',
    ].join('\n'),
  );
  federation = loadFederationFile(path);
  const authority = TrustAuthority.init(join(work, 'ca'), { trustDomain: 'remote.test' }, {}).authority;
  authority.issueIntermediate('far-1');
  const services = federation.clusters[0]?.services ?? [];
  // the cluster's side: its workloads (not the third endpoint), with a source of their own
  workloads = await startEmbeddedFederation({
    clusters: federation.clusters,
    sources: new Map([['far-1', new StaticSource('far-1', services)]]),
    authority,
    dir: join(work, 'sim'),
    runsHere: (address) => REVIEWS.includes(address),
  });
  // the manager's side
  const managerSource = new StaticSource('far-1', services);
  const record = (views: ReadonlyMap<string, ServiceView>): void => {
    reported = new Map([...views.values()].flatMap((v) => v.endpoints.map((e) => [e.address, e.health] as const)));
  };
  managerSource.start({
    serviceChanged: () => undefined,
    resync: record,
    gatewaysDiscovered: () => undefined,
    synced: () => undefined,
    failed: () => undefined,
    watchRestarted: () => undefined,
    eventsReceived: () => undefined,
  });
  remote = startRemoteReadiness({
    clusters: federation.clusters,
    sources: new Map([['far-1', managerSource]]),
    authority,
    probes: (address) => REVIEWS.includes(address),
    probe: { periodMs: 200 },
  });
});

afterAll(async () => {
  await remote.close();
  await workloads.close();
  rmSync(work, { recursive: true, force: true });
});

describe('the readiness of workloads run elsewhere', () => {
  it('probes only the endpoints it is given, and reports them ready once they answer with their own SVIDs', async () => {
    expect(remote.workloads).toBe(2);
    expect(remote.clusters).toEqual(['far-1']);
    await eventually(() => REVIEWS.every((a) => reported.get(a) === 'ready'), 'both reviews workloads reported ready');
    // an endpoint it does not probe keeps the health the file gave it
    expect(reported.get(PROBED_ELSEWHERE)).toBe('ready');
  });

  it('a workload killed in its own process is reported unready, the other staying ready; started again, it is ready again', async () => {
    await workloads.kill(`far-1/default/reviews/${REVIEWS[0] ?? ''}`);
    await eventually(() => reported.get(REVIEWS[0] ?? '') === 'unready', 'the killed workload reported unready');
    expect(reported.get(REVIEWS[1] ?? '')).toBe('ready');
    await workloads.start(`far-1/default/reviews/${REVIEWS[0] ?? ''}`);
    await eventually(() => reported.get(REVIEWS[0] ?? '') === 'ready', 'the restarted workload reported ready again');
  });
});
