/**
 * Leader election on a coordination.k8s.io/v1 Lease, through the real client-node against the list/watch fixture:
 * several candidates, exactly one leader; a leader that vanishes without releasing is replaced after the lease
 * expires; a released lease is taken at once; a deposed leader's write is refused.
 */
import { ApiException, CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { LeaseElector } from '../../src/store/kubernetes/lease-elector.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { eventually } from '../sim/helpers.js';

const NAMESPACE = 'meshfed';
const LEASE = 'meshfed-leader';
/** short timings so a test waits seconds, not minutes; the bounds below are generous multiples of them */
const TIMING = { leaseDurationMs: 2_000, renewDeadlineMs: 1_500, retryPeriodMs: 200 };

const fixtures: KubeApiFixture[] = [];
const electors: LeaseElector[] = [];

afterEach(async () => {
  await Promise.all(electors.splice(0).map((e) => e.stop({ release: false })));
  await Promise.all(fixtures.splice(0).map((f) => f.close()));
});

async function setup(count: number): Promise<{ f: KubeApiFixture; api: CoordinationV1Api; candidates: LeaseElector[]; events: string[] }> {
  const f = await startKubeApiFixture();
  fixtures.push(f);
  const kc = new KubeConfig();
  kc.loadFromString(f.kubeconfig());
  const api = kc.makeApiClient(CoordinationV1Api);
  const events: string[] = [];
  const candidates = Array.from({ length: count }, (_, i) => {
    const identity = `meshfed-${String(i)}`;
    const elector = new LeaseElector({
      api,
      namespace: NAMESPACE,
      name: LEASE,
      identity,
      ...TIMING,
      onStartedLeading: () => events.push(`start ${identity}`),
      onStoppedLeading: () => events.push(`stop ${identity}`),
    });
    electors.push(elector);
    return elector;
  });
  for (const c of candidates) c.start();
  return { f, api, candidates, events };
}

const leaders = (candidates: LeaseElector[]): LeaseElector[] => candidates.filter((c) => c.isLeader());
const holder = (f: KubeApiFixture): unknown => (f.get('coordination.k8s.io/v1', 'Lease', LEASE, NAMESPACE)?.['spec'] as Record<string, unknown> | undefined)?.['holderIdentity'];

describe('LeaseElector', () => {
  it('elects exactly one leader among three candidates, and the Lease names it', async () => {
    const { f, candidates } = await setup(3);
    await eventually(() => leaders(candidates).length === 1, 'a leader');
    // several retry periods later, still exactly one, and everyone agrees who it is
    await new Promise((done) => setTimeout(done, 5 * TIMING.retryPeriodMs));
    const [leader] = leaders(candidates);
    expect(leaders(candidates)).toHaveLength(1);
    expect(holder(f)).toBe(leader?.identity);
    await eventually(() => candidates.every((c) => c.leader() === leader?.identity), 'every candidate to see the leader');
  });

  it('replaces a leader that stopped without releasing once its lease has expired, counting the transition', async () => {
    const { f, candidates, events } = await setup(2);
    await eventually(() => leaders(candidates).length === 1, 'a leader');
    const [first] = leaders(candidates);
    if (!first) throw new Error('no leader');
    await first.stop({ release: false });
    expect(holder(f)).toBe(first.identity);
    const other = candidates.find((c) => c !== first);
    await eventually(() => other?.isLeader() === true, 'the successor', 20_000);
    const spec = f.get('coordination.k8s.io/v1', 'Lease', LEASE, NAMESPACE)?.['spec'] as Record<string, unknown>;
    expect(spec['holderIdentity']).toBe(other?.identity);
    expect(spec['leaseTransitions']).toBe(1);
    expect(events).toEqual([`start ${first.identity}`, `stop ${first.identity}`, `start ${other?.identity ?? ''}`]);
  });

  it('hands a released lease over at the next retry, without waiting for it to expire', async () => {
    const slow = { leaseDurationMs: 60_000, renewDeadlineMs: 40_000, retryPeriodMs: 200 };
    const f = await startKubeApiFixture();
    fixtures.push(f);
    const kc = new KubeConfig();
    kc.loadFromString(f.kubeconfig());
    const api = kc.makeApiClient(CoordinationV1Api);
    const [a, b] = ['a', 'b'].map((identity) => {
      const elector = new LeaseElector({ api, namespace: NAMESPACE, name: LEASE, identity, ...slow });
      electors.push(elector);
      return elector;
    });
    if (!a || !b) throw new Error('two candidates');
    a.start();
    await eventually(() => a.isLeader(), 'a to lead');
    b.start();
    await eventually(() => b.leader() === 'a', 'b to see a lead');
    await a.stop();
    expect(holder(f)).toBe('');
    // far sooner than the 60 s lease: only a release explains it
    await eventually(() => b.isLeader(), 'b to take the released lease', 20_000);
    expect(holder(f)).toBe('b');
  });

  it('fences a deposed leader: its write with the old resourceVersion is refused with a 409', async () => {
    const { f, api, candidates } = await setup(2);
    await eventually(() => leaders(candidates).length === 1, 'a leader');
    const [deposed] = leaders(candidates);
    if (!deposed) throw new Error('no leader');
    await deposed.stop({ release: false });
    const stale = deposed.lease();
    if (!stale) throw new Error('the leader wrote no lease');
    await eventually(() => candidates.some((c) => c !== deposed && c.isLeader()), 'a successor', 20_000);
    const write = api.replaceNamespacedLease({ name: LEASE, namespace: NAMESPACE, body: stale });
    await expect(write).rejects.toSatisfy((error: unknown) => error instanceof ApiException && error.code === 409);
    expect(holder(f)).not.toBe(deposed.identity);
    expect(f.requests.some((r) => r.method === 'PUT' && r.status === 409)).toBe(true);
  });

  it('refuses timings where the leader could not step down before its lease expires', async () => {
    const f = await startKubeApiFixture();
    fixtures.push(f);
    const kc = new KubeConfig();
    kc.loadFromString(f.kubeconfig());
    const api = kc.makeApiClient(CoordinationV1Api);
    expect(() => new LeaseElector({ api, namespace: NAMESPACE, name: LEASE, identity: 'x', leaseDurationMs: 2_000, renewDeadlineMs: 3_000, retryPeriodMs: 200 })).toThrow(/renew deadline/);
  });
});
