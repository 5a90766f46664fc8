/**
 * The Kubernetes-mode pieces in one process, as `serve --store kubernetes` builds them, against the kube-api fixture:
 * the hook other Kubernetes-backed stores plug into (isLeader, onLeading), followers picking up the leader's CA
 * changes, a clean close handing the lead over, and the sync state /readyz reports.
 */
import { writeFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { startKubernetesMode, type KubernetesMode } from '../../src/store/kubernetes/mode.js';
import { SILENT_LOGGER } from '../../src/logging.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { eventually } from '../sim/helpers.js';

const dir = mkdtempSync(join(tmpdir(), 'meshfed-kube-mode-'));
const modes: KubernetesMode[] = [];
let fixture: KubeApiFixture | undefined;

afterAll(async () => {
  await Promise.all(modes.map((m) => m.close()));
  await fixture?.close();
  rmSync(dir, { recursive: true, force: true });
});

describe('Kubernetes mode', () => {
  it('one leader among replicas; followers follow its CA changes; a closed leader hands over; sync failures are reported', async () => {
    const f = await startKubeApiFixture();
    fixture = f;
    const kubeconfig = join(dir, 'kubeconfig.yaml');
    writeFileSync(kubeconfig, f.kubeconfig(), { mode: 0o600 });
    const leading: string[] = [];
    const start = async (identity: string): Promise<KubernetesMode> => {
      const mode = await startKubernetesMode({
        namespace: 'meshfed',
        kubeconfig,
        leaseName: 'meshfed-leader',
        leaseDurationMs: 2_000,
        identity,
        caSecret: 'meshfed-ca',
        trustDomain: 'example.org',
        clusters: ['east-1'],
        syncEveryMs: 200,
        logger: SILENT_LOGGER,
      });
      mode.onLeading((on) => leading.push(`${identity} ${on ? 'leads' : 'stops'}`));
      modes.push(mode);
      return mode;
    };
    const [a, b] = await Promise.all([start('a'), start('b')]);
    await eventually(() => [a, b].filter((m) => m.isLeader()).length === 1, 'one leader');
    const leader = a.isLeader() ? a : b;
    const follower = leader === a ? b : a;
    expect(follower.leader()).toBe(leader.identity);
    expect(follower.authority.trustDomain).toBe('example.org');
    expect(follower.authority.intermediateCertificate('east-1')?.serialNumber).toBe(leader.authority.intermediateCertificate('east-1')?.serialNumber);

    let changes = 0;
    follower.onTrustChange(() => changes++);
    await leader.trust.change('start rotation', (ca) => ca.startRotation());
    await eventually(() => follower.authority.rotationStatus().phase === 'bundle-added', 'the follower to see the rotation');
    expect(changes).toBeGreaterThan(0);
    expect(follower.authority.roots()).toHaveLength(2);

    expect(follower.notSynced()).toBeUndefined();
    f.failWith(503);
    await eventually(() => follower.notSynced() !== undefined, 'the follower to report the Secret unreadable');
    expect(follower.notSynced()).toContain('meshfed/meshfed-ca');
    f.failWith(null);
    await eventually(() => follower.notSynced() === undefined, 'the follower to sync again');

    await leader.close();
    await eventually(() => follower.isLeader(), 'the follower to take the released lease');
    expect(leading).toContain(`${follower.identity} leads`);
  });
});
