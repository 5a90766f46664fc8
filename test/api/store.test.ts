import { chmodSync, mkdirSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { ApiTokenError, loadOrCreateApiToken } from '../../src/store/api-token.js';
import { writeFileAtomic } from '../../src/store/atomic.js';
import { RegistrationStore, RegistrationStoreError } from '../../src/store/registrations.js';
import { tempDir } from './helpers.js';

const work = tempDir('meshfed-store-');
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const kubeCluster = (name: string) => clusterSchema.parse({ name, network: 'n1', source: { type: 'kubernetes', kubeconfig: 'apiVersion: v1\nkind: Config\n# secret-marker\n' } });

describe('writeFileAtomic', () => {
  it('writes 0600 by default, replaces whole files, and leaves no temp files behind', () => {
    const path = join(work, 'atomic', 'f.txt');
    writeFileAtomic(path, 'one');
    writeFileAtomic(path, 'two');
    expect(readFileSync(path, 'utf8')).toBe('two');
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(join(work, 'atomic'))).toEqual(['f.txt']);
    writeFileAtomic(path, 'three', 0o644);
    expect(statSync(path).mode & 0o777).toBe(0o644);
  });
});

describe('RegistrationStore', () => {
  it('adds, gets, lists and removes, persisting each change 0600', () => {
    const dir = join(work, 'reg');
    const store = RegistrationStore.open(dir);
    expect(store.list()).toEqual([]);
    store.add(kubeCluster('b-one'));
    store.add(kubeCluster('a-one'));
    expect(() => store.add(kubeCluster('a-one'))).toThrow(/already registered/);
    expect(store.list().map((r) => r.cluster.name)).toEqual(['a-one', 'b-one']);
    expect(statSync(join(dir, 'clusters.json')).mode & 0o777).toBe(0o600);
    const reopened = RegistrationStore.open(dir);
    expect(reopened.get('a-one')?.cluster.source).toMatchObject({ type: 'kubernetes' });
    expect(reopened.remove('a-one')).toBe(true);
    expect(reopened.remove('a-one')).toBe(false);
    expect(RegistrationStore.open(dir).list().map((r) => r.cluster.name)).toEqual(['b-one']);
  });

  it('picks up a change another process made before applying its own', () => {
    const dir = join(work, 'two-writers');
    const a = RegistrationStore.open(dir);
    const b = RegistrationStore.open(dir);
    a.add(kubeCluster('from-a'));
    b.add(kubeCluster('from-b'));
    expect(RegistrationStore.open(dir).list().map((r) => r.cluster.name)).toEqual(['from-a', 'from-b']);
    expect(() => a.add(kubeCluster('from-b'))).toThrow(/already registered/);
  });

  it('tightens a registrations file readable by others to 0600', () => {
    const dir = join(work, 'loose');
    RegistrationStore.open(dir).add(kubeCluster('x'));
    chmodSync(join(dir, 'clusters.json'), 0o644);
    RegistrationStore.open(dir);
    expect(statSync(join(dir, 'clusters.json')).mode & 0o777).toBe(0o600);
  });

  it('reports a damaged file by path without quoting its content (it holds credentials)', () => {
    const dir = join(work, 'damaged');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'clusters.json'), '{"registrations": [ {"token": "secret-marker" ');
    let message = '';
    try {
      RegistrationStore.open(dir);
    } catch (error) {
      expect(error).toBeInstanceOf(RegistrationStoreError);
      message = (error as Error).message;
    }
    expect(message).toContain(join(dir, 'clusters.json'));
    expect(message).toContain('not valid JSON');
    expect(message).not.toContain('secret-marker');
    writeFileSync(join(dir, 'clusters.json'), JSON.stringify({ apiVersion: 'meshfed.io/v1alpha1', kind: 'ClusterRegistrations', registrations: [{ cluster: kubeCluster('d'), registeredAt: 'x' }, { cluster: kubeCluster('d'), registeredAt: new Date().toISOString() }] }));
    expect(() => RegistrationStore.open(dir)).toThrow(/registrations\[0\]\.registeredAt/);
  });
});

describe('the API token', () => {
  it('is generated once (32 random bytes, base64url), stored 0600, then read back', () => {
    const dir = join(work, 'token');
    const first = loadOrCreateApiToken(dir, {});
    expect(first.from).toBe('generated');
    expect(first.token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(statSync(join(dir, 'api-token')).mode & 0o777).toBe(0o600);
    const second = loadOrCreateApiToken(dir, {});
    expect(second).toEqual({ token: first.token, from: 'file', path: join(dir, 'api-token') });
  });

  it('comes from MESHFED_API_TOKEN when set, and is never written then', () => {
    const dir = join(work, 'token-env');
    const token = loadOrCreateApiToken(dir, { MESHFED_API_TOKEN: 'an-operator-chosen-token-123' });
    expect(token).toEqual({ token: 'an-operator-chosen-token-123', from: 'env' });
    expect(() => readdirSync(dir)).toThrow();
    expect(() => loadOrCreateApiToken(dir, { MESHFED_API_TOKEN: 'short' })).toThrow(ApiTokenError);
    expect(() => loadOrCreateApiToken(dir, { MESHFED_API_TOKEN: 'short' })).not.toThrow(/short/);
  });
});
