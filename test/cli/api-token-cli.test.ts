import { execFile } from 'node:child_process';
import { readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { API_TOKENS_FILE } from '../../src/store/api-tokens.js';
import { CapturingLogger, request, startTestManager, tempDir } from '../api/helpers.js';
import { cleanEnv, MESHFED_CLI } from './meshfed-bin.js';

const work = tempDir('meshfed-api-token-cli-');

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function meshfed(args: string[]): Promise<Run> {
  return new Promise((resolve) => {
    execFile(process.execPath, [...MESHFED_CLI, ...args], { env: cleanEnv(), timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
      resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
    });
  });
}

describe('meshfed api token', () => {
  it('creates a token printed once, lists names and roles only, and revokes it; a running manager follows without a restart', async () => {
    const stateDir = join(work, 'state');
    const manager = await startTestManager(stateDir, new CapturingLogger());
    try {
      const created = await meshfed(['api', 'token', 'create', '--name', 'ci', '--role', 'operator', '--state-dir', stateDir]);
      expect(created.code, created.stderr).toBe(0);
      const token = created.stdout.trim();
      expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
      expect(created.stderr).toContain('not shown again');

      const file = join(stateDir, API_TOKENS_FILE);
      expect(statSync(file).mode & 0o777).toBe(0o600);
      expect(readFileSync(file, 'utf8')).not.toContain(token);

      const list = await meshfed(['api', 'token', 'list', '--state-dir', stateDir]);
      expect(list.code).toBe(0);
      expect(list.stdout).toMatch(/^NAME\s+ROLE\s+CREATED\nci\s+operator\s+\d{4}-\d\d-\d\dT/);
      expect(list.stdout).not.toContain(token);
      const json = await meshfed(['api', 'token', 'list', '--state-dir', stateDir, '-o', 'json']);
      expect(JSON.parse(json.stdout)).toEqual({ tokens: [{ name: 'ci', role: 'operator', createdAt: expect.any(String) as string }] });

      // the running manager takes the new token with its role
      expect((await request(manager.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(200);
      expect((await request(manager.api.url, 'DELETE', '/api/v1/clusters/x', { token })).status).toBe(403);

      const again = await meshfed(['api', 'token', 'create', '--name', 'ci', '--role', 'admin', '--state-dir', stateDir]);
      expect(again.code).toBe(1);
      expect(again.stderr).toContain('a token named ci exists');
      const badRole = await meshfed(['api', 'token', 'create', '--name', 'x', '--role', 'root', '--state-dir', stateDir]);
      expect(badRole.code).toBe(2);

      const revoked = await meshfed(['api', 'token', 'revoke', 'ci', '--state-dir', stateDir]);
      expect(revoked.code).toBe(0);
      expect((await request(manager.api.url, 'GET', '/api/v1/clusters', { token })).status).toBe(401);
      const missing = await meshfed(['api', 'token', 'revoke', 'ci', '--state-dir', stateDir]);
      expect(missing.code).toBe(2);
      expect(missing.stderr).toContain('no token named ci');
    } finally {
      await manager.close();
    }
  });

  it('the CLI says which role a refused call needed', async () => {
    const stateDir = join(work, 'cli-403');
    const manager = await startTestManager(stateDir, new CapturingLogger());
    try {
      const created = await meshfed(['api', 'token', 'create', '--name', 'reader', '--role', 'viewer', '--state-dir', stateDir]);
      const token = created.stdout.trim();
      const run = await new Promise<Run>((resolve) => {
        execFile(process.execPath, [...MESHFED_CLI, 'cluster', 'remove', 'nothing', '--server', manager.api.url], { env: cleanEnv({ MESHFED_API_TOKEN: token }), timeout: 60_000, encoding: 'utf8' }, (error, stdout, stderr) => {
          resolve({ code: error ? (typeof error.code === 'number' ? error.code : -1) : 0, stdout, stderr });
        });
      });
      expect(run.code).toBe(1);
      expect(run.stderr).toContain('needs role admin');
      expect(run.stderr).toContain('meshfed api token create --role ROLE');
    } finally {
      await manager.close();
    }
  });
});
