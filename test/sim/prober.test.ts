/**
 * Kubelet-like readiness: the prober checks each real workload (gRPC Health over mTLS, HTTPS GET /healthz) and reports
 * into the cluster's StaticSource, so the registry (and from it xDS) sees a killed workload only after
 * `failureThreshold` failed probes, and a restarted one after `successThreshold` good ones. Rounds are driven one at a
 * time with tick(), so the counts are exact.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createServer as createTlsServer } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema, type StaticService } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { echo, echoClient } from '../../src/sim/echo.js';
import { SimIdentities } from '../../src/sim/identities.js';
import { probeSettings, ReadinessProber } from '../../src/sim/prober.js';
import { Workload, workloadSpecs } from '../../src/sim/workloads.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { eventually, freePort, mtlsCredentials, SNI_OPTION } from './helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'meshfed-sim-prober-'));
const cluster = clusterSchema.parse({ name: 'lab-1', network: 'net-lab', region: 'eu-west', zone: 'eu-west-1a' });
let identities: SimIdentities;
let registry: Registry;
let source: StaticSource;
let services: StaticService[];
const workloads = new Map<string, Workload>();
const probers: ReadinessProber[] = [];

beforeAll(async () => {
  const authority = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'sim.test' }, {}).authority;
  authority.issueIntermediate('lab-1');
  identities = new SimIdentities(authority, join(dir, 'sim'));
  const [grpcPort, httpPort] = await Promise.all([freePort('127.0.62.1'), freePort('127.0.62.2')]);
  services = [
    staticServiceSchema.parse({
      name: 'reviews',
      ports: [{ name: 'grpc', port: grpcPort }],
      endpoints: [{ address: '127.0.62.1', serviceAccount: 'reviews' }],
    }),
    staticServiceSchema.parse({
      name: 'ratings',
      ports: [{ name: 'http', port: httpPort }],
      endpoints: [{ address: '127.0.62.2', serviceAccount: 'ratings' }],
    }),
  ];
  for (const spec of workloadSpecs(cluster, services)) {
    const w = new Workload(spec, identities.get(spec.cluster, spec.namespace, spec.serviceAccount));
    await w.start();
    workloads.set(spec.service, w);
  }
  registry = new Registry({ debounceMs: 5, maxDelayMs: 20 });
  source = new StaticSource('lab-1', services);
  registry.add(cluster, source);
  registry.flush();
}, 60_000);

afterAll(async () => {
  await Promise.all(probers.map((p) => p.stop()));
  await Promise.all([...workloads.values()].map((w) => w.kill()));
  await registry.close();
  identities.close();
  rmSync(dir, { recursive: true, force: true });
});

function prober(settings: Parameters<typeof probeSettings>[0] = {}): ReadinessProber {
  const p = new ReadinessProber({
    cluster: 'lab-1',
    services,
    source,
    workloads: [...workloads.values()],
    identity: identities.inMemory('lab-1', 'kube-system', 'kubelet'),
    settings,
  });
  probers.push(p);
  return p;
}

function w(service: string): Workload {
  const found = workloads.get(service);
  if (!found) throw new Error(`no ${service}`);
  return found;
}

/** The endpoint's health as the registry serves it. */
function health(service: string): string | undefined {
  return registry.flush().clusters.get('lab-1')?.services.get(`default/${service}`)?.endpoints[0]?.health;
}

describe('readiness prober', () => {
  it('Kubernetes defaults, with a 1 s period; invalid settings are refused', () => {
    expect(probeSettings()).toEqual({ periodMs: 1000, timeoutMs: 1000, failureThreshold: 3, successThreshold: 1 });
    expect(() => probeSettings({ periodMs: 0 })).toThrow('probe periodMs must be positive');
    expect(() => probeSettings({ failureThreshold: 0 })).toThrow('probe failureThreshold must be an integer of at least 1');
    expect(() => probeSettings({ successThreshold: 1.5 })).toThrow('probe successThreshold must be an integer of at least 1');
  });

  it('a killed workload turns unready after failureThreshold (3) failed probes and ready again after one good one', async () => {
    const p = prober();
    expect(await p.tick()).toEqual([
      { workload: 'lab-1/default/reviews/127.0.62.1', ready: true },
      { workload: 'lab-1/default/ratings/127.0.62.2', ready: true },
    ]);
    expect([health('reviews'), health('ratings')]).toEqual(['ready', 'ready']);

    await w('reviews').kill();
    expect(await p.tick()).toEqual([]);
    expect(await p.tick()).toEqual([]);
    expect(health('reviews')).toBe('ready');
    const third = await p.tick();
    expect(third).toEqual([{ workload: 'lab-1/default/reviews/127.0.62.1', ready: false, reason: expect.stringContaining('127.0.62.1:') as string }]);
    expect([health('reviews'), health('ratings')]).toEqual(['unready', 'ready']);

    await w('reviews').start();
    expect(await p.tick()).toEqual([{ workload: 'lab-1/default/reviews/127.0.62.1', ready: true }]);
    expect(health('reviews')).toBe('ready');
  });

  it('honours other thresholds: one failure is enough, two successes are needed (HTTP probe)', async () => {
    const p = prober({ failureThreshold: 1, successThreshold: 2 });
    await p.tick();
    await p.tick();
    await w('ratings').kill();
    expect((await p.tick()).map((c) => [c.workload, c.ready])).toEqual([['lab-1/default/ratings/127.0.62.2', false]]);
    expect(health('ratings')).toBe('unready');
    await w('ratings').start();
    expect(await p.tick()).toEqual([]);
    expect(health('ratings')).toBe('unready');
    expect(await p.tick()).toEqual([{ workload: 'lab-1/default/ratings/127.0.62.2', ready: true }]);
    expect(health('ratings')).toBe('ready');
  });

  it('a server that took the port but is not the workload (another SPIFFE ID) fails the probe', async () => {
    const p = prober({ failureThreshold: 1 });
    await p.tick();
    const ratings = w('ratings');
    await ratings.kill();
    const port = ratings.spec.ports[0]?.port ?? 0;
    const impostor = identities.get('lab-1', 'default', 'impostor');
    const squatter = createTlsServer({ ...impostor.tls, requestCert: true }, (socket) => socket.end());
    await new Promise<void>((resolve) => squatter.listen(port, '127.0.62.2', resolve));
    try {
      const [change] = await p.tick();
      expect(change?.ready).toBe(false);
      expect(change?.reason).toContain('presented spiffe://sim.test/ns/default/sa/impostor, not spiffe://sim.test/ns/default/sa/ratings');
      expect(health('ratings')).toBe('unready');
    } finally {
      await new Promise<void>((resolve) => squatter.close(() => { resolve(); }));
    }
    await ratings.start();
    await p.tick();
    expect(health('ratings')).toBe('ready');
  });

  it('a workload whose health check fails (NOT_SERVING, /healthz 503) turns unready while it still answers calls', async () => {
    const p = prober({ failureThreshold: 1 });
    await p.tick();
    w('reviews').setServing(false);
    w('ratings').setServing(false);
    expect((await p.tick()).map((c) => [c.workload, c.ready, c.reason])).toEqual([
      ['lab-1/default/reviews/127.0.62.1', false, expect.stringContaining('health status NOT_SERVING') as string],
      ['lab-1/default/ratings/127.0.62.2', false, expect.stringContaining('HTTP 503') as string],
    ]);
    expect([health('reviews'), health('ratings')]).toEqual(['unready', 'unready']);
    const caller = identities.get('lab-1', 'default', 'frontend');
    const port = w('reviews').spec.ports[0]?.port ?? 0;
    const client = echoClient(`127.0.62.1:${String(port)}`, mtlsCredentials(caller.tls), SNI_OPTION);
    try {
      expect((await echo(client, 'still here')).cluster).toBe('lab-1');
    } finally {
      client.close();
    }
    w('reviews').setServing(true);
    w('ratings').setServing(true);
    await p.tick();
    expect([health('reviews'), health('ratings')]).toEqual(['ready', 'ready']);
  });

  it('started, it probes every period on its own', async () => {
    const p = prober({ periodMs: 100 });
    p.start();
    await eventually(() => p.ready('lab-1/default/reviews/127.0.62.1') === true, 'the first round');
    await w('reviews').kill();
    await eventually(() => health('reviews') === 'unready', 'reviews to turn unready');
    await w('reviews').start();
    await eventually(() => health('reviews') === 'ready', 'reviews to turn ready again');
    await p.stop();
  });
});
