import { afterEach, describe, expect, it } from 'vitest';
import { clusterSchema, type ClusterInput } from '../../src/model/cluster.js';
import { staticServiceSchema, type StaticService } from '../../src/model/federation-file.js';
import { Registry } from '../../src/registry/registry.js';
import type { FederatedSnapshot, SnapshotChange } from '../../src/registry/snapshot.js';
import { serviceAcrossClusters } from '../../src/registry/snapshot.js';
import { StaticSource } from '../../src/registry/static-source.js';

const registries: Registry[] = [];
afterEach(async () => {
  for (const registry of registries.splice(0)) await registry.close();
});

function newRegistry(options: ConstructorParameters<typeof Registry>[0] = {}): Registry {
  const registry = new Registry({ debounceMs: 20, maxDelayMs: 200, ...options });
  registries.push(registry);
  return registry;
}

const cluster = (input: ClusterInput) => clusterSchema.parse(input);

function service(name: string, addresses: string[], extra: Partial<StaticService> = {}): StaticService {
  return staticServiceSchema.parse({ name, ports: [{ name: 'grpc', port: 9080 }], endpoints: addresses.map((address) => ({ address, serviceAccount: name })), ...extra });
}

/** Resolves with the next snapshot published, or fails after `ms`. */
function nextSnapshot(registry: Registry, ms = 5000): Promise<{ snapshot: FederatedSnapshot; change: SnapshotChange }> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      unsubscribe();
      reject(new Error(`no snapshot within ${ms} ms`));
    }, ms);
    const unsubscribe = registry.subscribe((snapshot, change) => {
      clearTimeout(timer);
      unsubscribe();
      resolve({ snapshot, change });
    });
  });
}

describe('registry snapshots', () => {
  it('publishes every static cluster with its network, services and endpoints', async () => {
    const registry = newRegistry();
    const published = nextSnapshot(registry);
    registry.add(cluster({ name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a' }), new StaticSource('east-1', [service('reviews', ['127.0.1.10', '127.0.1.11'])]));
    registry.add(cluster({ name: 'west-1', network: 'net-west', region: 'us-west', gateways: [{ address: '127.0.0.1', port: 15445 }] }), new StaticSource('west-1', [service('reviews', ['127.0.3.10'])]));
    const { snapshot, change } = await published;
    expect(snapshot.version).toBe(1);
    expect(change.clusters).toEqual(['east-1', 'west-1']);
    expect(change.services).toEqual(['default/reviews']);
    const reviews = serviceAcrossClusters(snapshot, 'default/reviews');
    expect(reviews.map((r) => [r.cluster.cluster.name, r.cluster.cluster.network, r.cluster.state, r.view.endpoints.map((e) => e.address)])).toEqual([
      ['east-1', 'net-east', 'ready', ['127.0.1.10', '127.0.1.11']],
      ['west-1', 'net-west', 'ready', ['127.0.3.10']],
    ]);
    expect(snapshot.clusters.get('west-1')?.gateways).toEqual([{ address: '127.0.0.1', port: 15445 }]);
    expect(Object.isFrozen(snapshot)).toBe(true);
    expect(registry.status('east-1')).toMatchObject({ state: 'ready', services: 1, endpoints: 2, gatewaysFrom: 'none' });
  });

  it('coalesces a burst of changes into one new version that names only what changed, sharing the rest', async () => {
    const registry = newRegistry();
    const east = new StaticSource('east-1', [service('reviews', ['127.0.1.10']), service('ratings', ['127.0.1.20'])]);
    registry.add(cluster({ name: 'east-1', network: 'net-east' }), east);
    registry.add(cluster({ name: 'west-1', network: 'net-west' }), new StaticSource('west-1', [service('ratings', ['127.0.3.20'])]));
    const first = registry.flush();

    const next = nextSnapshot(registry);
    for (let n = 2; n <= 6; n++) {
      east.update([service('reviews', Array.from({ length: n }, (_, i) => `127.0.1.${10 + i}`)), service('ratings', ['127.0.1.20'])]);
    }
    const { snapshot, change } = await next;
    expect(snapshot.version).toBe(first.version + 1);
    expect(change.services).toEqual(['default/reviews']);
    expect(change.clusters).toEqual(['east-1']);
    expect(snapshot.clusters.get('east-1')?.services.get('default/reviews')?.endpoints).toHaveLength(6);
    // untouched cluster and untouched service are the very same objects as before
    expect(snapshot.clusters.get('west-1')).toBe(first.clusters.get('west-1'));
    expect(snapshot.clusters.get('east-1')?.services.get('default/ratings')).toBe(first.clusters.get('east-1')?.services.get('default/ratings'));
    // the older snapshot did not change under its holder
    expect(first.clusters.get('east-1')?.services.get('default/reviews')?.endpoints).toHaveLength(1);
  });

  it('publishes during continuous churn no later than the max delay allows', async () => {
    const registry = newRegistry({ debounceMs: 100, maxDelayMs: 250 });
    const east = new StaticSource('east-1', [service('reviews', ['127.0.1.10'])]);
    registry.add(cluster({ name: 'east-1', network: 'net-east' }), east);
    registry.flush();
    const versions: number[] = [];
    registry.subscribe((snapshot) => versions.push(snapshot.version));
    // a change every 20 ms, always inside the 100 ms debounce window, until a snapshot arrives (at most 1.5 s):
    // only the max delay can publish while the churn goes on
    const deadline = Date.now() + 1500;
    for (let i = 0; Date.now() < deadline && versions.length === 0; i++) {
      east.update([service('reviews', [`127.0.1.${10 + (i % 200)}`])]);
      await new Promise((done) => setTimeout(done, 20));
    }
    expect(versions).toHaveLength(1);
    expect(registry.snapshot().clusters.get('east-1')?.services.get('default/reviews')?.endpoints).toHaveLength(1);
  });

  it('drops a removed cluster and names its services in the change', async () => {
    const registry = newRegistry();
    registry.add(cluster({ name: 'east-1', network: 'net-east' }), new StaticSource('east-1', [service('reviews', ['127.0.1.10'])]));
    registry.add(cluster({ name: 'west-1', network: 'net-west' }), new StaticSource('west-1', [service('ratings', ['127.0.3.10'])]));
    registry.flush();
    const next = nextSnapshot(registry);
    expect(await registry.remove('east-1')).toBe(true);
    const { snapshot, change } = await next;
    expect([...snapshot.clusters.keys()]).toEqual(['west-1']);
    expect(change).toMatchObject({ clusters: ['east-1'], services: ['default/reviews'] });
    expect(registry.status('east-1')).toBeUndefined();
    expect(await registry.remove('east-1')).toBe(false);
    expect(() => {
      registry.add(cluster({ name: 'west-1', network: 'net-west' }), new StaticSource('west-1', []));
    }).toThrow(/already registered/);
  });

  it('keeps publishing to other subscribers when one throws', async () => {
    const registry = newRegistry();
    registry.subscribe(() => {
      throw new Error('broken consumer');
    });
    const next = nextSnapshot(registry);
    registry.add(cluster({ name: 'east-1', network: 'net-east' }), new StaticSource('east-1', [service('reviews', ['127.0.1.10'])]));
    expect((await next).snapshot.version).toBe(1);
  });

  it('counts state and snapshot metrics', async () => {
    const registry = newRegistry();
    registry.add(cluster({ name: 'east-1', network: 'net-east' }), new StaticSource('east-1', [service('reviews', ['127.0.1.10', '127.0.1.11'])]));
    registry.flush();
    const text = await registry.metrics.registry.metrics();
    expect(text).toContain('meshfed_cluster_state{cluster="east-1",state="ready"} 1');
    expect(text).toContain('meshfed_cluster_state{cluster="east-1",state="syncing"} 0');
    expect(text).toContain('meshfed_cluster_state_transitions_total{cluster="east-1",from="syncing",to="ready"} 1');
    expect(text).toContain('meshfed_cluster_endpoints{cluster="east-1"} 2');
    expect(text).toMatch(/meshfed_registry_snapshot_version 1/);
    expect(text).toMatch(/meshfed_cluster_last_sync_age_seconds\{cluster="east-1"\} \d/);
  });
});
