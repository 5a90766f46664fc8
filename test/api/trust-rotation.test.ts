/**
 * POST /api/v1/trust/rotation through real HTTP: a root rotation step on the CA's state dir (file mode), refused
 * with a clear error for bad input or a step that is not due (nothing changes); and, with the CA in a Kubernetes
 * Secret, a replica that is not the leader answers 503 naming the leader and writes nothing.
 */
import { join } from 'node:path';
import { CoreV1Api, KubeConfig } from '@kubernetes/client-node';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { KubernetesTrust } from '../../src/store/kubernetes/secret-trust.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { CapturingLogger, request, startTestManager, tempDir } from './helpers.js';

const stateDir = tempDir('meshfed-rotation-api-');
const caDir = join(stateDir, 'ca');
let manager: Manager;
let base: string;

beforeAll(async () => {
  const authority = TrustAuthority.init(caDir, { trustDomain: 'trust.test' }, {}).authority;
  authority.issueIntermediate('east-1');
  manager = await startTestManager(stateDir, new CapturingLogger(), { trust: authority });
  base = manager.api.url;
});

afterAll(async () => {
  await manager.close();
});

const onDisk = (): TrustAuthority => TrustAuthority.open(caDir, {});

describe('POST /api/v1/trust/rotation (state dir)', () => {
  it('refuses bad input and a missing token, changing nothing', async () => {
    expect((await request(base, 'POST', '/api/v1/trust/rotation', { body: { action: 'start' }, token: null })).status).toBe(401);
    const bad = await request(base, 'POST', '/api/v1/trust/rotation', { body: { action: 'rotate-everything' } });
    expect(bad.status).toBe(400);
    expect(bad.json).toMatchObject({ error: { code: 'invalid', field: 'action' } });
    expect((await request(base, 'POST', '/api/v1/trust/rotation', { raw: 'action=start', contentType: 'text/plain' })).status).toBe(415);
    const get = await request(base, 'GET', '/api/v1/trust/rotation');
    expect(get.status).toBe(405);
    expect(get.headers.get('allow')).toBe('POST');
    expect(onDisk().rotationStatus().phase).toBe('none');
  });

  it('starts a rotation in the state dir, and refuses to advance while a cluster lacks the two-root bundle (409)', async () => {
    const started = await request(base, 'POST', '/api/v1/trust/rotation', { body: { action: 'start' } });
    expect(started.status).toBe(200);
    expect(started.json).toMatchObject({ phase: 'bundle-added' });
    expect(onDisk().roots()).toHaveLength(2);
    const early = await request(base, 'POST', '/api/v1/trust/rotation', { body: { action: 'advance' } });
    expect(early.status).toBe(409);
    expect(early.json).toMatchObject({ error: { code: 'conflict', message: expect.stringContaining('east-1') as unknown } });
    expect(onDisk().rotationStatus().phase).toBe('bundle-added');
    const aborted = await request(base, 'POST', '/api/v1/trust/rotation', { body: { action: 'abort' } });
    expect(aborted.status).toBe(200);
    expect(onDisk().roots()).toHaveLength(1);
  });
});

describe('POST /api/v1/trust/rotation (CA in a Kubernetes Secret, on a follower)', () => {
  let fixture: KubeApiFixture;
  let follower: Manager;

  beforeAll(async () => {
    fixture = await startKubeApiFixture();
    const kc = new KubeConfig();
    kc.loadFromString(fixture.kubeconfig());
    const core = kc.makeApiClient(CoreV1Api);
    const replica = (leader: boolean): KubernetesTrust => new KubernetesTrust({ core, namespace: 'meshfed', secretName: 'meshfed-ca', isLeader: () => leader, leader: () => 'meshfed-7', env: {} });
    await replica(true).initialize('trust.test', ['east-1']);
    const trust = replica(false);
    await trust.refresh();
    if (!trust.authority) throw new Error('no CA in the Secret');
    follower = await startTestManager(tempDir('meshfed-rotation-follower-'), new CapturingLogger(), { trust: trust.authority, trustWriter: trust });
  });

  afterAll(async () => {
    await follower.close();
    await fixture.close();
  });

  it('answers 503 naming the leader, and writes nothing', async () => {
    const writes = fixture.requests.filter((r) => r.method !== 'GET').length;
    const answer = await request(follower.api.url, 'POST', '/api/v1/trust/rotation', { body: { action: 'start' } });
    expect(answer.status).toBe(503);
    expect(answer.headers.get('meshfed-leader')).toBe('meshfed-7');
    expect(answer.json).toMatchObject({ error: { code: 'unavailable', message: expect.stringContaining('meshfed-7') as unknown } });
    expect(fixture.requests.filter((r) => r.method !== 'GET')).toHaveLength(writes);
  });
});
