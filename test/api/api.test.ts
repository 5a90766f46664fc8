import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Manager } from '../../src/api/manager.js';
import { createApiServer } from '../../src/api/server.js';
import { Registry } from '../../src/registry/registry.js';
import { loadFederationFile } from '../../src/store/federation.js';
import { RegistrationStore, RegistrationStoreError } from '../../src/store/registrations.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import {
  answers,
  CapturingLogger,
  clusterNamed,
  eventually,
  EXEC_KUBECONFIG,
  remoteSecret,
  request,
  serviceObjects,
  startTestManager,
  tempDir,
  TOKEN,
  type ClusterJson,
  type ErrorJson,
} from './helpers.js';

const ROOT = join(import.meta.dirname, '../..');
const work = tempDir('meshfed-api-');
const logger = new CapturingLogger();
const fixtures: KubeApiFixture[] = [];
const managers: Manager[] = [];
const kubeconfigs: string[] = [];

afterAll(async () => {
  for (const manager of managers) await manager.close();
  for (const fixture of fixtures) await fixture.close();
  rmSync(work, { recursive: true, force: true });
});

async function fixture(): Promise<KubeApiFixture> {
  const f = await startKubeApiFixture();
  fixtures.push(f);
  return f;
}

async function manager(stateDir: string, extra: Parameters<typeof startTestManager>[2] = {}): Promise<Manager> {
  const m = await startTestManager(stateDir, logger, extra);
  managers.push(m);
  return m;
}

async function closeManager(m: Manager): Promise<void> {
  await m.close();
  managers.splice(managers.indexOf(m), 1);
}

/** A port nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((done) => server.listen(0, '127.0.0.1', done));
  const { port } = server.address() as { port: number };
  await new Promise<void>((done) => server.close(() => { done(); }));
  return port;
}

describe('API: auth and open endpoints', () => {
  let m: Manager;
  beforeAll(async () => {
    m = await manager(join(work, 'auth'));
  });

  it('refuses /api/v1 without a token, with a wrong token, and with another scheme: 401 JSON with WWW-Authenticate: Bearer', async () => {
    const none = await request(m.api.url, 'GET', '/api/v1/clusters', { token: null });
    expect(none.status).toBe(401);
    expect(none.headers.get('www-authenticate')).toMatch(/^Bearer realm="meshfed"$/);
    expect((none.json as ErrorJson).error.code).toBe('unauthorized');
    const wrong = await request(m.api.url, 'GET', '/api/v1/clusters', { token: 'not-the-token-at-all-0000' });
    expect(wrong.status).toBe(401);
    expect(wrong.headers.get('www-authenticate')).toContain('error="invalid_token"');
    const prefix = await request(m.api.url, 'GET', '/api/v1/clusters', { token: TOKEN.slice(0, -1) });
    expect(prefix.status).toBe(401);
    const basic = await fetch(new URL('/api/v1/clusters', m.api.url), { headers: { authorization: `Basic ${Buffer.from(`x:${TOKEN}`).toString('base64')}` } });
    expect(basic.status).toBe(401);
    // unknown paths under /api/v1 are not revealed without a token either, and a POST is refused before its body is read
    expect((await request(m.api.url, 'GET', '/api/v1/nothing-here', { token: null })).status).toBe(401);
    expect((await request(m.api.url, 'POST', '/api/v1/clusters', { token: null, body: { name: 'x' } })).status).toBe(401);
    expect((await request(m.api.url, 'DELETE', '/api/v1/clusters/x', { token: 'wrong-token-wrong-token-wrong' })).status).toBe(401);
  });

  it('serves /healthz, /readyz and /metrics without a token', async () => {
    const health = await request(m.api.url, 'GET', '/healthz', { token: null });
    expect(health.status).toBe(200);
    expect(health.json).toEqual({ status: 'ok' });
    const ready = await request(m.api.url, 'GET', '/readyz', { token: null });
    expect(ready.status).toBe(200);
    expect(ready.json).toEqual({ status: 'ready' });
    const metrics = await request(m.api.url, 'GET', '/metrics', { token: null });
    expect(metrics.status).toBe(200);
    expect(metrics.headers.get('content-type')).toContain('text/plain');
    expect(metrics.text).toContain('meshfed_registry_snapshot_version');
  });

  it('answers unknown routes and methods with JSON errors', async () => {
    const unknown = await request(m.api.url, 'GET', '/nowhere', { token: null });
    expect(unknown.status).toBe(404);
    expect((unknown.json as ErrorJson).error.code).toBe('not_found');
    const unknownV1 = await request(m.api.url, 'GET', '/api/v1/nothing-here');
    expect(unknownV1.status).toBe(404);
    expect((unknownV1.json as ErrorJson).error.code).toBe('not_found');
    const put = await request(m.api.url, 'PUT', '/api/v1/clusters', { body: {} });
    expect(put.status).toBe(405);
    expect(put.headers.get('allow')).toBe('GET, POST');
    const missing = await request(m.api.url, 'GET', '/api/v1/clusters/nope');
    expect(missing.status).toBe(404);
    expect((missing.json as ErrorJson).error.message).toContain('no cluster named nope');
    expect((await request(m.api.url, 'DELETE', '/api/v1/clusters/nope')).status).toBe(404);
    expect(await request(m.api.url, 'GET', '/api/v1/clusters')).toMatchObject({ status: 200, json: { clusters: [] } });
  });

  it('says 503 on /readyz until the initial configuration is loaded', async () => {
    const registry = new Registry();
    const server = createApiServer({ registry, store: RegistrationStore.open(join(work, 'readyz')), token: TOKEN, logger });
    const running = await server.startApi({ host: '127.0.0.1', port: 0 });
    try {
      const before = await request(running.url, 'GET', '/readyz', { token: null });
      expect(before.status).toBe(503);
      expect((await request(running.url, 'GET', '/healthz', { token: null })).status).toBe(200);
      server.markReady();
      expect((await request(running.url, 'GET', '/readyz', { token: null })).status).toBe(200);
    } finally {
      await running.close();
      await registry.close();
    }
  });
});

describe('API: registering clusters', () => {
  let m: Manager;
  let kube: KubeApiFixture;
  const stateDir = join(work, 'register');

  beforeAll(async () => {
    kube = await fixture();
    for (const object of serviceObjects('reviews', ['10.1.0.1', '10.1.0.2'])) kube.apply(object);
    m = await manager(stateDir);
  });

  it('registers a Kubernetes cluster by kubeconfig: 201 at once, then ready with its services', async () => {
    const kubeconfig = kube.kubeconfig();
    kubeconfigs.push(kubeconfig);
    const created = await request(m.api.url, 'POST', '/api/v1/clusters', {
      body: { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', gateways: [{ address: '192.0.2.10' }], kubeconfig },
    });
    expect(created.status).toBe(201);
    expect(created.headers.get('location')).toBe('/api/v1/clusters/east-1');
    const body = created.json as ClusterJson;
    expect(body).toMatchObject({ name: 'east-1', network: 'net-east', source: 'kubernetes', origin: 'api', gateways: [{ address: '192.0.2.10', port: 15443 }] });
    expect(['syncing', 'ready']).toContain(body.state);
    expect(body.registeredAt).toMatch(/^\d{4}-/);

    const ready = await eventually('east-1 ready', async () => {
      const c = await clusterNamed(m.api.url, 'east-1');
      return c?.state === 'ready' && c.services === 1 ? c : undefined;
    });
    expect(ready).toMatchObject({ endpoints: 2, region: 'us-east', zone: 'us-east-1a' });
    expect(m.registry.snapshot().clusters.get('east-1')?.services.get('default/reviews')?.endpoints.map((e) => e.address).sort()).toEqual(['10.1.0.1', '10.1.0.2']);
    // a change in the cluster reaches the API's view
    for (const object of serviceObjects('ratings', ['10.1.0.3'])) kube.apply(object);
    await eventually('ratings seen', async () => ((await clusterNamed(m.api.url, 'east-1'))?.services === 2 ? true : undefined));

    const one = await request(m.api.url, 'GET', '/api/v1/clusters/east-1');
    expect(one.status).toBe(200);
    expect((one.json as ClusterJson).name).toBe('east-1');
  });

  it('registers a cluster from an Istio remote secret', async () => {
    const kubeconfig = kube.kubeconfig({ cluster: 'east-2' });
    kubeconfigs.push(kubeconfig);
    const created = await request(m.api.url, 'POST', '/api/v1/clusters', { body: { name: 'east-2', network: 'net-east', remoteSecret: remoteSecret('east-2', kubeconfig) } });
    expect(created.status).toBe(201);
    await eventually('east-2 ready', async () => ((await clusterNamed(m.api.url, 'east-2'))?.state === 'ready' ? true : undefined));
  });

  it('registers a cluster whose API server cannot be reached, and shows it not ready with the reason', async () => {
    const port = await closedPort();
    const kubeconfig = kube.kubeconfig({ cluster: 'far-away' }).replace(kube.url, `https://127.0.0.1:${port}`);
    const created = await request(m.api.url, 'POST', '/api/v1/clusters', { body: { name: 'far-away', network: 'net-far', kubeconfig } });
    expect(created.status).toBe(201);
    expect((created.json as ClusterJson).state).toBe('syncing');
    const shown = await eventually('far-away reason', async () => {
      const c = await clusterNamed(m.api.url, 'far-away');
      return c?.reason && /unreachable|ECONNREFUSED/.test(c.reason) ? c : undefined;
    });
    expect(shown.state).toBe('syncing');
    expect(shown.reason).toContain(`127.0.0.1:${port}`);
    // it is registered all the same: persisted, listed, and the others are fine
    expect(RegistrationStore.open(stateDir).has('far-away')).toBe(true);
    expect((await clusterNamed(m.api.url, 'east-1'))?.state).toBe('ready');
  });

  it('refuses bad registrations with a 4xx that names the field, and changes nothing', async () => {
    const file = join(stateDir, 'clusters.json');
    const before = readFileSync(file, 'utf8');
    const listBefore = (await request(m.api.url, 'GET', '/api/v1/clusters')).json as { clusters: ClusterJson[] };
    const good = kube.kubeconfig({ cluster: 'good' });
    kubeconfigs.push(good);
    const cases: { what: string; body?: unknown; raw?: string; contentType?: string; status: number; code: string; field?: string; message?: RegExp }[] = [
      { what: 'bad name', body: { name: 'East_1', network: 'n1', kubeconfig: good }, status: 400, code: 'invalid', field: 'name', message: /DNS-1123/ },
      { what: 'missing network', body: { name: 'ok-name', kubeconfig: good }, status: 400, code: 'invalid', field: 'network' },
      { what: 'exec plugin in the kubeconfig', body: { name: 'evil', network: 'n1', kubeconfig: EXEC_KUBECONFIG }, status: 400, code: 'invalid', field: 'kubeconfig.users[0].user.exec', message: /exec credential plugins are not allowed/ },
      {
        what: 'a file path in the kubeconfig',
        body: { name: 'files', network: 'n1', kubeconfig: good.replace(/client-key-data:.*|token:.*/, 'client-key: /etc/shadow') },
        status: 400,
        code: 'invalid',
        field: 'kubeconfig.users[0].user.client-key',
      },
      { what: 'malformed YAML', body: { name: 'broken', network: 'n1', kubeconfig: 'apiVersion: v1\nclusters:\n  - name: a\n   cluster: {server: "https://x' }, status: 400, code: 'invalid', field: 'kubeconfig', message: /not valid YAML/ },
      { what: 'a context the kubeconfig lacks', body: { name: 'ctx', network: 'n1', kubeconfig: good, context: 'nope' }, status: 400, code: 'invalid', field: 'context', message: /no context named "nope"/ },
      { what: 'duplicate name', body: { name: 'east-1', network: 'net-east', kubeconfig: good }, status: 409, code: 'conflict', field: 'name', message: /already registered/ },
      { what: 'both kubeconfig and remoteSecret', body: { name: 'both', network: 'n1', kubeconfig: good, remoteSecret: remoteSecret('both', good) }, status: 400, code: 'invalid', field: 'remoteSecret', message: /not both/ },
      { what: 'neither kubeconfig nor remoteSecret', body: { name: 'neither', network: 'n1' }, status: 400, code: 'invalid', field: 'kubeconfig' },
      { what: 'bad gateway port', body: { name: 'gw', network: 'n1', kubeconfig: good, gateways: [{ address: '192.0.2.1', port: 70000 }] }, status: 400, code: 'invalid', field: 'gateways[0].port', message: /1-65535/ },
      { what: 'bad gateway address', body: { name: 'gw', network: 'n1', kubeconfig: good, gateways: [{ address: 'not an address!' }] }, status: 400, code: 'invalid', field: 'gateways[0].address' },
      { what: 'unknown field', body: { name: 'extra', network: 'n1', kubeconfig: good, colour: 'blue' }, status: 400, code: 'invalid', field: 'colour' },
      { what: 'remote secret without the istio/multiCluster label', body: { name: 'rs', network: 'n1', remoteSecret: remoteSecret('rs', good, false) }, status: 400, code: 'invalid', field: 'remoteSecret.metadata.labels' },
      { what: "remote secret for another cluster", body: { name: 'rs', network: 'n1', remoteSecret: remoteSecret('other', good) }, status: 400, code: 'invalid', field: 'remoteSecret', message: /for other, not for rs/ },
      { what: 'remote secret carrying an exec plugin', body: { name: 'rs', network: 'n1', remoteSecret: remoteSecret('rs', EXEC_KUBECONFIG) }, status: 400, code: 'invalid', field: 'remoteSecret', message: /exec credential plugins/ },
      { what: 'oversized body', body: { name: 'big', network: 'n1', kubeconfig: 'x'.repeat(600 * 1024) }, status: 413, code: 'too_large' },
      { what: 'malformed JSON', raw: '{"name": "bad", "kubeconfig": "token: s3cr3t-in-json', status: 400, code: 'invalid', message: /not valid JSON/ },
      { what: 'a JSON array', raw: '[1,2]', status: 400, code: 'invalid' },
      { what: 'not JSON at all', raw: 'name=x', contentType: 'application/x-www-form-urlencoded', status: 415, code: 'unsupported_media_type' },
    ];
    for (const c of cases) {
      const answer = await request(m.api.url, 'POST', '/api/v1/clusters', { ...(c.body !== undefined ? { body: c.body } : {}), ...(c.raw !== undefined ? { raw: c.raw } : {}), ...(c.contentType ? { contentType: c.contentType } : {}) });
      expect(answer.status, c.what).toBe(c.status);
      expect(answer.headers.get('content-type'), c.what).toContain('application/json');
      const error = (answer.json as ErrorJson).error;
      expect(error.code, c.what).toBe(c.code);
      if (c.field !== undefined) expect(error.field, c.what).toBe(c.field);
      if (c.message) expect(error.message, c.what).toMatch(c.message);
      expect(answer.text, c.what).not.toMatch(/\n\s+at |node_modules|\.ts:\d+/);
    }
    expect(readFileSync(file, 'utf8')).toBe(before);
    expect((await request(m.api.url, 'GET', '/api/v1/clusters')).json).toEqual({
      clusters: listBefore.clusters.map((c) => expect.objectContaining({ name: c.name, origin: c.origin, registeredAt: c.registeredAt }) as unknown),
    });
    expect(m.registry.list().map((c) => c.name)).toEqual(['east-1', 'east-2', 'far-away']);
  });

  it('removes a registered cluster: 204, its endpoints leave the snapshot, the registration is gone', async () => {
    const removed = await request(m.api.url, 'DELETE', '/api/v1/clusters/east-2');
    expect(removed.status).toBe(204);
    expect(removed.text).toBe('');
    expect((await request(m.api.url, 'GET', '/api/v1/clusters/east-2')).status).toBe(404);
    expect((await request(m.api.url, 'DELETE', '/api/v1/clusters/east-2')).status).toBe(404);
    expect(m.registry.has('east-2')).toBe(false);
    expect(RegistrationStore.open(stateDir).has('east-2')).toBe(false);
    await eventually('east-2 out of the snapshot', () => Promise.resolve(m.registry.snapshot().clusters.has('east-2') ? undefined : true));
  });

  it('persists registrations 0600 and brings them back after a restart', async () => {
    const file = join(stateDir, 'clusters.json');
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const before = (await request(m.api.url, 'GET', '/api/v1/clusters')).json as { clusters: ClusterJson[] };
    await closeManager(m);
    m = await manager(stateDir);
    const after = (await request(m.api.url, 'GET', '/api/v1/clusters')).json as { clusters: ClusterJson[] };
    expect(after.clusters.map((c) => [c.name, c.origin, c.registeredAt, c.network])).toEqual(before.clusters.map((c) => [c.name, c.origin, c.registeredAt, c.network]));
    await eventually('east-1 ready again', async () => ((await clusterNamed(m.api.url, 'east-1'))?.state === 'ready' ? true : undefined));
    expect(statSync(file).mode & 0o777).toBe(0o600);
    // the state dir's CA directory is never written by the registry
    expect(existsSync(join(stateDir, 'ca'))).toBe(false);
  });

  it('never answers or logs a kubeconfig, a cluster token or the API token', () => {
    const everything = answers.join('\n') + '\n' + logger.text();
    expect(everything).not.toContain(kube.token);
    expect(everything).not.toContain(TOKEN);
    expect(everything).not.toContain(Buffer.from(kube.caPem).toString('base64').slice(0, 40));
    expect(everything).not.toContain('s3cr3t-in-json');
    expect(everything).not.toContain('cat /etc/passwd');
    for (const kubeconfig of kubeconfigs) expect(everything).not.toContain(kubeconfig.slice(0, 60));
    // but the registration file does hold the credentials, for the manager alone
    expect(readFileSync(join(stateDir, 'clusters.json'), 'utf8')).toContain(kube.token);
  });
});

describe('API: clusters from the federation file', () => {
  it('lists file clusters as origin file, refuses to register or remove them, and lets the file win over a registration of the same name', async () => {
    const stateDir = join(work, 'file');
    const kube = await fixture();
    // a registration named like a file cluster, made before the file defined it
    const first = await manager(stateDir);
    expect((await request(first.api.url, 'POST', '/api/v1/clusters', { body: { name: 'west-1', network: 'net-x', kubeconfig: kube.kubeconfig() } })).status).toBe(201);
    await closeManager(first);

    const federation = loadFederationFile(join(ROOT, 'federation/demo.yaml'));
    const m = await manager(stateDir, { federation });
    expect(m.shadowed).toEqual(['west-1']);
    expect(logger.text()).toContain('the file wins for this run');
    const list = (await request(m.api.url, 'GET', '/api/v1/clusters')).json as { clusters: ClusterJson[] };
    expect(list.clusters.map((c) => [c.name, c.origin, c.network, c.state, c.services, c.endpoints])).toEqual([
      ['east-1', 'file', 'net-east', 'ready', 3, 4],
      ['east-2', 'file', 'net-east', 'ready', 3, 4],
      ['west-1', 'file', 'net-west', 'ready', 3, 4],
    ]);
    const again = await request(m.api.url, 'POST', '/api/v1/clusters', { body: { name: 'east-1', network: 'net-east', kubeconfig: kube.kubeconfig() } });
    expect(again.status).toBe(409);
    expect((again.json as ErrorJson).error).toMatchObject({ code: 'conflict', field: 'name' });
    expect((again.json as ErrorJson).error.message).toContain('defined in the federation file');
    const remove = await request(m.api.url, 'DELETE', '/api/v1/clusters/east-1');
    expect(remove.status).toBe(409);
    expect(m.registry.has('east-1')).toBe(true);
    // removing the shadowed registration drops the registration only; the file's west-1 keeps running
    expect((await request(m.api.url, 'DELETE', '/api/v1/clusters/west-1')).status).toBe(204);
    expect(m.store.has('west-1')).toBe(false);
    expect((await clusterNamed(m.api.url, 'west-1'))?.state).toBe('ready');
  });
});

describe('API: Kubernetes clusters of the federation file', () => {
  it('watches a kubeconfigFile cluster, and refuses to start on an unsafe one, naming file, cluster and field', async () => {
    const kube = await fixture();
    for (const object of serviceObjects('echo', ['10.7.0.1'])) kube.apply(object);
    const dir = join(work, 'fed-kube');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'west.kubeconfig'), kube.kubeconfig({ cluster: 'west-7' }));
    writeFileSync(join(dir, 'evil.kubeconfig'), EXEC_KUBECONFIG);
    const doc = (name: string, file: string): string => `---\napiVersion: meshfed.io/v1alpha1\nkind: Cluster\nmetadata: { name: ${name} }\nspec: { network: n7, kubeconfigFile: ${file} }\n`;
    writeFileSync(join(dir, 'good.yaml'), doc('west-7', 'west.kubeconfig'));
    writeFileSync(join(dir, 'evil.yaml'), doc('evil-7', 'evil.kubeconfig'));

    const m = await manager(join(dir, 'state'), { federation: loadFederationFile(join(dir, 'good.yaml')) });
    const ready = await eventually('west-7 ready', async () => {
      const c = await clusterNamed(m.api.url, 'west-7');
      return c?.state === 'ready' && c.endpoints === 1 ? c : undefined;
    });
    expect(ready).toMatchObject({ origin: 'file', source: 'kubernetes' });

    await expect(startTestManager(join(dir, 'state-evil'), logger, { federation: loadFederationFile(join(dir, 'evil.yaml')) })).rejects.toThrow(
      `${join(dir, 'evil.yaml')} (Cluster evil-7): spec.kubeconfigFile ${join(dir, 'evil.kubeconfig')}: users[0].user.exec: exec credential plugins are not allowed`,
    );
    expect(existsSync(join(dir, 'state-evil'))).toBe(false);
  });
});

describe('API: a damaged registrations file', () => {
  it('is reported with a clear error and left as it was, never silently dropped', async () => {
    const stateDir = join(work, 'damaged');
    const m = await manager(stateDir);
    const kube = await fixture();
    expect((await request(m.api.url, 'POST', '/api/v1/clusters', { body: { name: 'keep-me', network: 'n1', kubeconfig: kube.kubeconfig() } })).status).toBe(201);
    await closeManager(m);
    const file = join(stateDir, 'clusters.json');

    writeFileSync(file, readFileSync(file, 'utf8').slice(0, 200), { mode: 0o600 });
    const truncated = readFileSync(file, 'utf8');
    await expect(startTestManager(stateDir, logger)).rejects.toThrow(RegistrationStoreError);
    await expect(startTestManager(stateDir, logger)).rejects.toThrow(/clusters\.json is damaged: not valid JSON/);
    expect(readFileSync(file, 'utf8')).toBe(truncated);

    writeFileSync(file, JSON.stringify({ apiVersion: 'meshfed.io/v1alpha1', kind: 'ClusterRegistrations', registrations: [{ cluster: { name: 'Bad_Name', network: 'n' }, registeredAt: new Date().toISOString() }] }));
    await expect(startTestManager(stateDir, logger)).rejects.toThrow(/is damaged: registrations\[0\]\.cluster\.name: cluster name must be a DNS-1123 label/);
  });
});
