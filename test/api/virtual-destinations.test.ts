/**
 * /api/v1/virtualdestinations through real HTTP to a running manager, with its xDS server: a VD applied through the
 * API is persisted, survives a restart, and is served at once to a real @grpc/grpc-js-xds client; bad bodies are
 * refused naming the field and change nothing; the federation file's VDs are read-only here.
 */
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { register } from '@grpc/grpc-js-xds';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { virtualDestinationSchema } from '../../src/model/virtual-destination.js';
import { startEchoServer, type EchoClient, type EchoServerHandle } from '../../src/sim/echo.js';
import type { LoadedFederation } from '../../src/store/federation.js';
import { VIRTUAL_DESTINATIONS_FILE, VirtualDestinationStoreError } from '../../src/store/virtual-destinations.js';
import { until, xdsEchoClient } from '../xds/xds-clients.js';
import { CapturingLogger, request, startTestManager, tempDir } from './helpers.js';

const CLUSTERS = [
  { name: 'east-1', region: 'us-east', zone: 'us-east-1a', subnet: 41 },
  { name: 'west-1', region: 'us-west', zone: 'us-west-1a', subnet: 42 },
];

const servers = new Map<string, EchoServerHandle>();
const clients: EchoClient[] = [];
const managers: Manager[] = [];
const stateDir = tempDir('meshfed-vd-api-');

function federation(): LoadedFederation {
  return {
    path: '/test/federation.yaml',
    clusters: CLUSTERS.map((c) => {
      const s = servers.get(c.name);
      return {
        cluster: clusterSchema.parse({ name: c.name, network: 'net-1', region: c.region, zone: c.zone, source: { type: 'static' } }),
        services: [
          staticServiceSchema.parse({
            namespace: 'shop',
            name: 'cart',
            labels: { app: 'cart' },
            ports: [{ name: 'grpc', port: 7070 }],
            endpoints: s ? [{ address: s.host, ports: [{ name: 'grpc', port: s.port }], serviceAccount: 'cart' }] : [],
          }),
        ],
      };
    }),
    virtualDestinations: [{ name: 'cart', spec: virtualDestinationSchema.parse({ hostname: 'cart.global', ports: [{ number: 7070, protocol: 'GRPC' }], backends: [{ name: 'cart', namespace: 'shop' }] }) }],
  };
}

async function start(): Promise<Manager> {
  const m = await startTestManager(stateDir, new CapturingLogger(), { federation: federation(), xds: { host: '127.0.0.1', port: 0, debounceMs: 10, maxDelayMs: 100 } });
  managers.push(m);
  return m;
}

const doc = (name: string, spec: Record<string, unknown>): Record<string, unknown> => ({ apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestination', metadata: { name }, spec });

const westFirst = {
  hostname: 'cart-west.global',
  ports: [{ number: 7070, protocol: 'GRPC', name: 'grpc' }],
  backends: [{ labels: { app: 'cart' } }],
  failover: { policy: 'priority', order: [{ cluster: 'west-1' }, { cluster: 'east-1' }] },
};

interface VdJson {
  metadata: { name: string; creationTimestamp?: string };
  spec: { hostname: string; failover: { policy: string } };
  status: { source: string; endpoints: number; healthy: number; clusters: { cluster: string; services: string[]; endpoints: number; healthy: number }[]; message?: string };
}

let manager: Manager;

beforeAll(async () => {
  register();
  for (const c of CLUSTERS) servers.set(c.name, await startEchoServer({ host: `127.0.${String(c.subnet)}.1`, port: 0, cluster: c.name }));
  manager = await start();
});

afterAll(async () => {
  for (const c of clients) c.close();
  for (const m of managers) await m.close();
  for (const s of servers.values()) await s.close();
});

describe('/api/v1/virtualdestinations', () => {
  it("lists the federation file's VD with where its backends are", async () => {
    const answer = await request(manager.api.url, 'GET', '/api/v1/virtualdestinations');
    expect(answer.status).toBe(200);
    const { virtualDestinations } = answer.json as { virtualDestinations: VdJson[] };
    expect(virtualDestinations.map((vd) => [vd.metadata.name, vd.spec.hostname, vd.status.source])).toEqual([['cart', 'cart.global', 'file']]);
    expect(virtualDestinations[0]?.status).toMatchObject({
      endpoints: 2,
      healthy: 2,
      clusters: [
        { cluster: 'east-1', services: ['shop/cart'], endpoints: 1, healthy: 1 },
        { cluster: 'west-1', services: ['shop/cart'], endpoints: 1, healthy: 1 },
      ],
    });
  });

  it('creates a VD that a real grpc client in east-1 reaches at once, in its failover order, and persists it 0600', async () => {
    const created = await request(manager.api.url, 'POST', '/api/v1/virtualdestinations', { body: doc('cart-west', westFirst) });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/v1/virtualdestinations/cart-west');
    expect((created.json as VdJson).status).toMatchObject({ source: 'api', endpoints: 2, healthy: 2 });
    expect((created.json as VdJson).metadata.creationTimestamp).toMatch(/^\d{4}-\d\d-\d\dT/);

    const client = xdsEchoClient('xds:///cart-west.global', manager.xds?.server.port ?? 0, { id: 'proxyless~east-1~cart', cluster: 'east-1', network: 'net-1', region: 'us-east', zone: 'us-east-1a' });
    clients.push(client);
    // the explicit order puts west-1 first, although the client stands in east-1
    await until(client, (reply) => reply.cluster === 'west-1', 'cart-west.global served from west-1');

    const file = join(stateDir, VIRTUAL_DESTINATIONS_FILE);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    expect(readFileSync(file, 'utf8')).toContain('cart-west.global');
    expect((await request(manager.api.url, 'POST', '/api/v1/virtualdestinations', { body: doc('cart-west', westFirst) })).status).toBe(409);
  });

  it('replaces a VD with PUT: the client follows the new order', async () => {
    const replaced = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/cart-west', {
      body: doc('cart-west', { ...westFirst, failover: { policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'west-1' }] } }),
    });
    expect(replaced.status).toBe(200);
    const client = clients[0];
    if (!client) throw new Error('the previous test made no client');
    await until(client, (reply) => reply.cluster === 'east-1', 'cart-west.global served from east-1 after the PUT');
  });

  it('refuses bad bodies with a 400 naming the field, and changes nothing', async () => {
    const before = readFileSync(join(stateDir, VIRTUAL_DESTINATIONS_FILE), 'utf8');
    const cases: [unknown, string][] = [
      [doc('bad', { ...westFirst, hostname: '*.global' }), 'spec.hostname'],
      [doc('bad', { ...westFirst, failover: { policy: 'priority' } }), 'spec.failover.order'],
      [doc('bad', { ...westFirst, ports: [{ number: 70000, protocol: 'GRPC' }] }), 'spec.ports[0].number'],
      [doc('bad', { ...westFirst, failover: { policy: 'locality', weights: [{ cluster: 'east-1', weight: 0 }] } }), 'spec.failover.weights'],
      [doc('Bad_Name', westFirst), 'metadata.name'],
      [{ ...doc('bad', westFirst), kind: 'Cluster' }, 'kind'],
      [{ ...doc('bad', westFirst), extra: true }, 'extra'],
    ];
    for (const [body, field] of cases) {
      const answer = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/bad', { body });
      expect(answer.status, JSON.stringify(body)).toBe(400);
      expect((answer.json as { error: { field?: string } }).error.field).toBe(field);
    }
    const mismatch = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/other', { body: doc('bad', westFirst) });
    expect(mismatch.status).toBe(400);
    expect((await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/bad', { raw: '{"metadata":' })).status).toBe(400);
    expect((await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/bad', { raw: 'name: x', contentType: 'application/yaml' })).status).toBe(415);
    expect(readFileSync(join(stateDir, VIRTUAL_DESTINATIONS_FILE), 'utf8')).toBe(before);
    expect((await request(manager.api.url, 'GET', '/api/v1/virtualdestinations/bad')).status).toBe(404);
  });

  it("keeps names and hostnames unique, and leaves the federation file's VD to the file", async () => {
    const sameHost = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/cart-2', { body: doc('cart-2', { ...westFirst, hostname: 'cart.global' }) });
    expect(sameHost.status).toBe(409);
    expect((sameHost.json as { error: { field?: string; message: string } }).error).toMatchObject({ field: 'spec.hostname' });
    const otherApiHost = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/cart-3', { body: doc('cart-3', westFirst) });
    expect(otherApiHost.status).toBe(409);
    expect((otherApiHost.json as { error: { message: string } }).error.message).toContain('cart-west');
    const fileName = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/cart', { body: doc('cart', { ...westFirst, hostname: 'cart-new.global' }) });
    expect(fileName.status).toBe(409);
    expect((fileName.json as { error: { message: string } }).error.message).toContain('federation file');
    const deleteFile = await request(manager.api.url, 'DELETE', '/api/v1/virtualdestinations/cart');
    expect(deleteFile.status).toBe(409);
  });

  it('accepts a VD whose backends select nothing, and says it has no endpoints', async () => {
    const answer = await request(manager.api.url, 'PUT', '/api/v1/virtualdestinations/ghost', { body: doc('ghost', { hostname: 'ghost.global', ports: [{ number: 80, protocol: 'HTTP' }], backends: [{ name: 'nothing-here' }] }) });
    expect(answer.status).toBe(201);
    expect((answer.json as VdJson).status).toMatchObject({ endpoints: 0, healthy: 0, clusters: [] });
    expect((answer.json as VdJson).status.message).toMatch(/no endpoints/);
  });

  it('keeps applied VDs across a restart; deleting one takes it out of the answers', async () => {
    await manager.close();
    managers.splice(managers.indexOf(manager), 1);
    manager = await start();
    const listed = await request(manager.api.url, 'GET', '/api/v1/virtualdestinations');
    expect((listed.json as { virtualDestinations: VdJson[] }).virtualDestinations.map((vd) => `${vd.metadata.name}:${vd.status.source}`)).toEqual(['cart:file', 'cart-west:api', 'ghost:api']);
    const ordered = await request(manager.api.url, 'GET', '/api/v1/virtualdestinations/cart-west');
    expect((ordered.json as VdJson).spec.failover).toMatchObject({ policy: 'priority', order: [{ cluster: 'east-1' }, { cluster: 'west-1' }] });

    expect((await request(manager.api.url, 'DELETE', '/api/v1/virtualdestinations/ghost')).status).toBe(204);
    expect((await request(manager.api.url, 'DELETE', '/api/v1/virtualdestinations/ghost')).status).toBe(404);
    expect((await request(manager.api.url, 'GET', '/api/v1/virtualdestinations/ghost')).status).toBe(404);
    expect(readFileSync(join(stateDir, VIRTUAL_DESTINATIONS_FILE), 'utf8')).not.toContain('ghost.global');
    expect((await request(manager.api.url, 'PATCH', '/api/v1/virtualdestinations/cart-west')).status).toBe(405);
  });

  it('exports the Istio resources that give a stock Istio mesh in a cluster the same behaviour', async () => {
    const answer = await request(manager.api.url, 'GET', '/api/v1/export/istio?cluster=east-1&name=cart-west');
    expect(answer.status).toBe(200);
    const { resources, warnings } = answer.json as { resources: { kind: string; metadata: { name: string }; spec: { hosts?: string[]; host?: string; endpoints?: { address: string; locality?: string }[] } }[]; warnings: string[] };
    expect(resources.map((r) => r.kind)).toEqual(['ServiceEntry', 'DestinationRule']);
    expect(resources[0]?.spec.hosts).toEqual(['cart-west.global']);
    // one network: both clusters' pods directly, each with its locality
    expect(resources[0]?.spec.endpoints?.map((e) => [e.address, e.locality])).toEqual([
      ['127.0.41.1', 'us-east/us-east-1a'],
      ['127.0.42.1', 'us-west/us-west-1a'],
    ]);
    expect(resources[1]?.spec.host).toBe('cart-west.global');
    // this manager runs no DNS server, so the hostname has no VIP yet: said, not hidden
    expect(warnings.join('\n')).toMatch(/VIP/);

    const all = await request(manager.api.url, 'GET', '/api/v1/export/istio?cluster=west-1');
    expect((all.json as { resources: { spec: { host?: string } }[] }).resources.flatMap((r) => r.spec.host ?? [])).toEqual(['cart.global', 'cart-west.global']);
    const unknown = await request(manager.api.url, 'GET', '/api/v1/export/istio?cluster=nowhere');
    expect(unknown.status).toBe(404);
    expect((unknown.json as { error: { field?: string } }).error.field).toBe('cluster');
    expect((await request(manager.api.url, 'GET', '/api/v1/export/istio?cluster=east-1&name=nothing')).status).toBe(404);
    expect((await request(manager.api.url, 'GET', '/api/v1/export/istio?cluster=east-1&vd=cart')).status).toBe(400);
    expect((await request(manager.api.url, 'GET', '/api/v1/export/istio')).status).toBe(400);
  });

  it('refuses to start on a damaged VD file, saying which file and what, and leaves it as it was', async () => {
    const dir = tempDir('meshfed-vd-damaged-');
    const file = join(dir, VIRTUAL_DESTINATIONS_FILE);
    writeFileSync(file, JSON.stringify({ apiVersion: 'meshfed.io/v1alpha1', kind: 'VirtualDestinations', items: [{ name: 'x', spec: { hostname: 'x' }, createdAt: 'now', updatedAt: 'now' }] }), { mode: 0o600 });
    const before = readFileSync(file, 'utf8');
    const failed = startTestManager(dir, new CapturingLogger(), { federation: federation() });
    await expect(failed).rejects.toThrow(VirtualDestinationStoreError);
    await expect(failed).rejects.toThrow(/virtual-destinations\.json is damaged: items\[0\]\.spec/);
    expect(readFileSync(file, 'utf8')).toBe(before);
  });
});
