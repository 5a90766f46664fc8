import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'meshfed-serve-'));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

describe('meshfed serve --demo (what npm start runs)', () => {
  it('brings up the trust domain and CA service, proves a cross-cluster mTLS handshake, and stops cleanly on SIGINT', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/main.ts'), 'serve', '--demo', '--state-dir', join(work, 'demo'), '--ca-listen', '127.0.0.1:0'], {
      cwd: work,
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stdout = '';
    let stderr = '';
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const ready = new Promise<void>((done, fail) => {
      child.stdout.on('data', (chunk: Buffer) => {
        stdout += chunk.toString();
        if (stdout.includes('Ctrl-C stops')) done();
      });
      child.once('exit', (code) => {
        fail(new Error(`serve exited early with ${String(code)}: ${stderr}`));
      });
    });
    await ready;
    expect(stdout).toContain('trust domain   meshfed.local');
    expect(stdout).toMatch(/intermediates {2}east-1 .*east-2 .*west-1 /);
    expect(stdout).toMatch(/CA service {5}127\.0\.0\.1:\d+ istio\.v1\.auth\.IstioCertificateService/);
    expect(stdout).toContain('west-1 saw spiffe://meshfed.local/ns/default/sa/reviews');
    expect(stdout).toContain('east-1 saw spiffe://meshfed.local/ns/default/sa/productpage');
    expect(stdout).toContain('not built yet');
    expect(stdout + stderr).not.toContain('PRIVATE KEY');
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => {
      done(code);
    }));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
