/**
 * meshfed's gateway health probes (src/registry/gateway-probe.ts), against real sockets on loopback: meshfed's own
 * east-west gateway (answering, partitioned, killed), a listener that never answers, a closed port. The prober runs
 * with a real Registry; what it finds reaches the snapshot, and through it what the topology offers other networks.
 */
import { createServer, type Server, type Socket } from 'node:net';
import { Registry as PromRegistry } from 'prom-client';
import { afterEach, describe, expect, it } from 'vitest';
import { startGateway, type GatewayHandle } from '../../src/gateway/gateway.js';
import { RouteTable } from '../../src/gateway/route-table.js';
import type { RouteSource } from '../../src/gateway/route-sources.js';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { GatewayProber, probeGateway } from '../../src/registry/gateway-probe.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { loadAssignment } from '../../src/topology/index.js';
import { eventually, freePort } from '../sim/helpers.js';

const HOST = '127.0.79.1';
const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

const NO_ROUTES: RouteSource = { current: () => RouteTable.EMPTY, ready: () => true, close: () => undefined };

async function gateway(): Promise<GatewayHandle> {
  const gw = await startGateway({ host: HOST, port: 0, routes: NO_ROUTES });
  cleanups.push(() => gw.close());
  return gw;
}

/** A listener that accepts connections and never reads or answers them (a black hole past the TCP handshake). */
async function silentListener(): Promise<number> {
  const sockets = new Set<Socket>();
  const server: Server = createServer((socket) => {
    socket.pause();
    sockets.add(socket);
  });
  await new Promise<void>((done) => server.listen(0, HOST, done));
  cleanups.push(
    () =>
      new Promise<void>((done) => {
        for (const socket of sockets) socket.destroy();
        server.close(() => {
          done();
        });
      }),
  );
  const address = server.address();
  return typeof address === 'object' && address !== null ? address.port : 0;
}

describe('probeGateway: one ClientHello round trip', () => {
  it('finds a gateway that answers reachable, and one that is partitioned, silent or gone unreachable, saying why', async () => {
    const gw = await gateway();
    expect(await probeGateway(HOST, gw.port, 2_000)).toEqual({ ok: true });

    gw.partition(true);
    expect(await probeGateway(HOST, gw.port, 300)).toEqual({ ok: false, reason: 'no answer to a ClientHello within 0.3 s' });
    gw.partition(false);
    expect(await probeGateway(HOST, gw.port, 2_000)).toEqual({ ok: true });

    expect(await probeGateway(HOST, await silentListener(), 300)).toEqual({ ok: false, reason: 'no answer to a ClientHello within 0.3 s' });

    await gw.close();
    expect(await probeGateway(HOST, gw.port, 2_000)).toEqual({ ok: false, reason: 'connect ECONNREFUSED' });
    expect(await probeGateway(HOST, await freePort(HOST), 2_000)).toEqual({ ok: false, reason: 'connect ECONNREFUSED' });
  });
});

describe('GatewayProber', () => {
  it('withholds the endpoints behind a partitioned gateway from other networks after the failure threshold, and offers them again once it answers', async () => {
    const gw = await gateway();
    const registry = new Registry({ debounceMs: 10, maxDelayMs: 100 });
    cleanups.push(() => registry.close());
    const reviews = staticServiceSchema.parse({ name: 'reviews', ports: [{ name: 'grpc', port: 9080 }], endpoints: [{ address: '127.0.79.10', serviceAccount: 'reviews' }] });
    registry.add(clusterSchema.parse({ name: 'east-1', network: 'net-east', gateways: [{ address: HOST, port: gw.port }] }), new StaticSource('east-1', [reviews]));
    registry.add(clusterSchema.parse({ name: 'west-1', network: 'net-west' }), new StaticSource('west-1', []));
    registry.flush();
    const metrics = new PromRegistry();
    const lines: { msg: string; obj: object }[] = [];
    const record = (obj: object, msg?: string): void => {
      lines.push({ obj, msg: msg ?? '' });
    };
    const prober = new GatewayProber(registry, { periodMs: 100, timeoutMs: 300, failureThreshold: 3, successThreshold: 2, metrics, logger: { debug: record, info: record, warn: record, error: record } });
    cleanups.push(() => prober.stop());
    prober.start();

    const fromWest = (): string[] => loadAssignment(registry.snapshot(), { network: 'net-west', locality: {} }, 'default/reviews', 9080).groups.flatMap((g) => g.endpoints.map((e) => `${e.address}:${String(e.port)}`));
    const fromEast = (): string[] => loadAssignment(registry.snapshot(), { network: 'net-east', locality: {} }, 'default/reviews', 9080).groups.flatMap((g) => g.endpoints.map((e) => e.address));
    await eventually(async () => (await metrics.getSingleMetricAsString('meshfed_gateway_probe_total')).includes('result="success"'), 'a first successful probe');
    expect(fromWest()).toEqual([`${HOST}:${String(gw.port)}`]);
    expect(registry.snapshot().clusters.get('east-1')?.unreachableGateways).toBeUndefined();

    gw.partition(true);
    await eventually(() => registry.snapshot().clusters.get('east-1')?.unreachableGateways !== undefined, 'the partitioned gateway to be found down');
    expect(registry.snapshot().clusters.get('east-1')?.unreachableGateways).toEqual([{ address: HOST, port: gw.port, reason: 'no answer to a ClientHello within 0.3 s', since: expect.any(String) as string }]);
    expect(registry.status('east-1')?.unreachableGateways?.length).toBe(1);
    expect(fromWest()).toEqual([]);
    // the gateway's own network is not concerned
    expect(fromEast()).toEqual(['127.0.79.10']);
    const down = lines.find((l) => l.msg.startsWith('gateway unreachable'));
    expect(down?.obj).toMatchObject({ cluster: 'east-1', gateway: `${HOST}:${String(gw.port)}`, failures: 3 });
    const text = await metrics.metrics();
    expect(text).toMatch(/meshfed_gateway_probe_total\{cluster="east-1",gateway="[^"]+",result="failure"\} [3-9]/);
    expect(text).toMatch(/meshfed_gateway_probe_reachable\{cluster="east-1",gateway="[^"]+"\} 0/);
    expect(text).toMatch(/meshfed_gateway_probe_transitions_total\{cluster="east-1",gateway="[^"]+",to="unreachable"\} 1/);

    gw.partition(false);
    await eventually(() => registry.snapshot().clusters.get('east-1')?.unreachableGateways === undefined, 'the healed gateway to be found reachable');
    expect(fromWest()).toEqual([`${HOST}:${String(gw.port)}`]);
    expect(lines.find((l) => l.msg.startsWith('gateway reachable again'))?.obj).toMatchObject({ cluster: 'east-1', successes: 2 });
    expect(await metrics.getSingleMetricAsString('meshfed_gateway_probe_reachable')).toMatch(/\} 1/);

    // a killed gateway refuses connections: found down the same way; stopping the prober takes back what it claimed
    await gw.close();
    await eventually(() => registry.snapshot().clusters.get('east-1')?.unreachableGateways?.[0]?.reason === 'connect ECONNREFUSED', 'the killed gateway to be found down');
    await prober.stop();
    registry.flush();
    expect(registry.snapshot().clusters.get('east-1')?.unreachableGateways).toBeUndefined();
  });

  it('refuses settings that make no sense', () => {
    const registry = new Registry();
    cleanups.push(() => registry.close());
    expect(() => new GatewayProber(registry, { periodMs: 0 })).toThrow('gateway probe periodMs must be a whole number of at least 1, not 0');
    expect(() => new GatewayProber(registry, { failureThreshold: 1.5 })).toThrow('gateway probe failureThreshold must be a whole number of at least 1, not 1.5');
  });
});
