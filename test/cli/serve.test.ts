import { spawn, spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'meshfed-serve-'));

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

async function waitFor(condition: () => boolean, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((done) => setTimeout(done, 100));
  }
}

describe('meshfed serve --demo (what npm start runs)', () => {
  it('brings up the trust domain and CA service, proves a cross-cluster mTLS handshake, and stops cleanly on SIGINT', async () => {
    const child = spawn(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/main.ts'), 'serve', '--demo', '--state-dir', join(work, 'demo'), '--ca-listen', '127.0.0.1:0', '--sync-every', '1s'], {
      cwd: work,
      env: { ...process.env, MESHFED_LOG_LEVEL: 'info' },
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

    // a rotation started from another shell reaches the running server: it reloads the state dir and renews its own certificate
    const rotate = spawnSync(process.execPath, [join(ROOT, 'node_modules/tsx/dist/cli.mjs'), join(ROOT, 'src/cli/main.ts'), 'ca', 'rotate', 'start', '--state-dir', join(work, 'demo')], { encoding: 'utf8' });
    expect(rotate.status).toBe(0);
    await waitFor(() => stderr.includes('CA service certificate renewed'), 20_000);
    expect(stderr).toContain('picked up changes to the state dir');
    const renewedLine = stderr.split('\n').find((line) => line.includes('CA service certificate renewed')) ?? '';
    expect((JSON.parse(renewedLine) as { bundleSequence: number }).bundleSequence).toBe(2);
    const exited = new Promise<number | null>((done) => child.once('exit', (code) => {
      done(code);
    }));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
  });
});
