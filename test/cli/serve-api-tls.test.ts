import { spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, describe, expect, it } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import { httpsCall } from '../api/https-client.js';
import { tempDir } from '../api/helpers.js';
import { makeWorkload } from '../trust/helpers.js';
import { cleanEnv, MESHFED_CLI, startServe } from './meshfed-bin.js';

const work = tempDir('meshfed-serve-tls-');
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const TD = 'tls.test';
const ports = ['--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--api', '127.0.0.1:0'];

describe('meshfed serve --api-tls', () => {
  it('serves the API over HTTPS with a certificate of its CA, maps client certificates to roles, and keeps taking the token', async () => {
    const stateDir = join(work, 'state');
    const identities = join(work, 'identities.yaml');
    writeFileSync(identities, `spiffe://${TD}/ns/platform/sa/dashboard: viewer\n`);
    const serve = await startServe(['--state-dir', stateDir, '--trust-domain', TD, '--cluster', 'c1', '--api-tls', '--api-identities', identities, ...ports], { cwd: work, children });
    try {
      const url = /API {12}(https:\/\/127\.0\.0\.1:\d+)/.exec(serve.stdout)?.[1];
      expect(url, serve.stdout).toBeDefined();
      const authority = TrustAuthority.open(join(stateDir, 'ca'));
      const options = { ca: authority.bundlePem(), serverId: `spiffe://${TD}/ns/meshfed-system/sa/meshfed-api` };
      const dashboard = makeWorkload(authority, { cluster: 'c1', spiffeId: `spiffe://${TD}/ns/platform/sa/dashboard` });
      const base = url ?? '';
      expect((await httpsCall(base, 'GET', '/api/v1/clusters', { ...options, client: dashboard })).status).toBe(200);
      expect((await httpsCall(base, 'DELETE', '/api/v1/clusters/c1', { ...options, client: dashboard })).status).toBe(403);
      const token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
      expect((await httpsCall(base, 'GET', '/api/v1/audit', { ...options, token })).status).toBe(200);
      expect((await httpsCall(base, 'GET', '/api/v1/clusters', options)).status).toBe(401);
    } finally {
      expect(await serve.stop()).toBe(0);
    }
  });

  it('refuses --api-identities without --api-tls, and a bad identities file, before serving', () => {
    const alone = spawnSync(process.execPath, [...MESHFED_CLI, 'serve', '--state-dir', join(work, 'alone'), '--trust-domain', TD, '--cluster', 'c1', '--api-identities', 'x.yaml', ...ports], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    expect(alone.status).toBe(2);
    expect(alone.stderr).toContain('--api-identities maps client certificates to roles: it needs --api-tls');
    // a usage mistake is found before the state dir is touched
    expect(existsSync(join(work, 'alone'))).toBe(false);
    const bad = join(work, 'bad.yaml');
    writeFileSync(bad, 'spiffe://elsewhere.test/ns/a/sa/b: admin\n');
    const refused = spawnSync(process.execPath, [...MESHFED_CLI, 'serve', '--state-dir', join(work, 'bad'), '--trust-domain', TD, '--cluster', 'c1', '--api-tls', '--api-identities', bad, ...ports], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    expect(refused.status).toBe(1);
    expect(refused.stderr).toContain(`${bad}: spiffe://elsewhere.test/ns/a/sa/b is outside trust domain ${TD}`);
  });
});
