import { MESHFED_CLI } from './meshfed-bin.js';
import { execFileSync, spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, readdirSync, rmSync, statSync, writeFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';

const CLI = MESHFED_CLI;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

function meshfed(args: string[], env: NodeJS.ProcessEnv = {}): Run {
  const result = spawnSync(process.execPath, [...CLI, ...args], { encoding: 'utf8', env: { ...process.env, MESHFED_STATE_DIR: '', ...env }, timeout: 60_000 });
  return { code: result.status ?? -1, stdout: result.stdout, stderr: result.stderr };
}

function openssl(args: string[]): { ok: boolean; output: string } {
  const result = spawnSync('openssl', args, { encoding: 'utf8' });
  return { ok: result.status === 0, output: result.stdout + result.stderr };
}

function snapshot(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  const walk = (d: string): void => {
    for (const entry of readdirSync(d, { withFileTypes: true })) {
      const full = join(d, entry.name);
      if (entry.isDirectory()) walk(full);
      else out[full] = readFileSync(full, 'utf8');
    }
  };
  walk(dir);
  return out;
}

let work: string;
let state: string;

beforeAll(() => {
  work = mkdtempSync(join(tmpdir(), 'meshfed-cli-'));
  state = join(work, 'state');
});

afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

function workloadCsr(name: string, subject = '/CN=ignored', extra: string[] = []): string {
  const key = join(work, `${name}.key`);
  const csr = join(work, `${name}.csr`);
  execFileSync('openssl', ['req', '-new', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', csr, '-subj', subject, ...extra], { stdio: 'ignore' });
  return csr;
}

describe('meshfed CLI: usage and exit codes', () => {
  it('prints readable help and exits 0', () => {
    const top = meshfed(['--help']);
    expect(top.code).toBe(0);
    expect(top.stdout).toContain('Usage: meshfed');
    expect(top.stdout).toMatch(/ca \[options\]\s+the federation trust domain/);
    expect(top.stdout).toMatch(/serve \[options\]\s+run the manager/);
    const ca = meshfed(['ca', '--help']);
    expect(ca.code).toBe(0);
    for (const sub of ['init', 'intermediate', 'csr', 'sign-intermediate', 'import-intermediate', 'sign', 'bundle', 'rotate', 'renew', 'status']) {
      expect(ca.stdout).toMatch(new RegExp(`\\n  ${sub}\\b`));
    }
  });

  it('exits 2 on usage errors: unknown command, missing option, bad output format, bad choice', () => {
    expect(meshfed(['nonsense']).code).toBe(2);
    const missing = meshfed(['ca', 'init']);
    expect(missing.code).toBe(2);
    expect(missing.stderr).toContain('--trust-domain');
    const badChoice = meshfed(['ca', 'init', '--trust-domain', 'x.test', '--key-type', 'dsa-1024', '--state-dir', join(work, 'never')]);
    expect(badChoice.code).toBe(2);
    expect(existsSync(join(work, 'never'))).toBe(false);
    const badFormat = meshfed(['ca', 'status', '--state-dir', join(work, 'never'), '-o', 'xml']);
    expect(badFormat.code).toBe(2);
    expect(badFormat.stderr).toContain('unknown output format "xml"');
  });

  it('exits 1 with a clear message when the state dir holds no CA', () => {
    const result = meshfed(['ca', 'status', '--state-dir', join(work, 'empty')]);
    expect(result.code).toBe(1);
    expect(result.stderr).toContain('meshfed ca init');
  });
});

describe('meshfed ca: a trust domain end to end', () => {
  beforeAll(() => {
    const init = meshfed(['ca', 'init', '--trust-domain', 'cli.test', '--state-dir', state, '-o', 'json']);
    expect(init.stderr).toBe('');
    expect(init.code).toBe(0);
  });

  it('init reports the root as data and refuses to overwrite an existing CA', () => {
    const again = meshfed(['ca', 'init', '--trust-domain', 'cli.test', '--state-dir', state]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('already holds a meshfed CA');
    const status = meshfed(['ca', 'status', '--state-dir', state, '-o', 'json']);
    expect(status.code).toBe(0);
    const data = JSON.parse(status.stdout) as { trustDomain: string; roots: unknown[]; bundleSequence: number };
    expect(data.trustDomain).toBe('cli.test');
    expect(data.roots).toHaveLength(1);
    expect(data.bundleSequence).toBe(1);
  });

  it('writes the Istio plug-in CA layout that openssl verifies, key 0600', () => {
    const out = join(work, 'east-1');
    const result = meshfed(['ca', 'intermediate', 'east-1', '--out', out, '--state-dir', state]);
    expect(result.code).toBe(0);
    expect(result.stdout).not.toContain('PRIVATE KEY');
    expect(readdirSync(out).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    expect(statSync(join(out, 'ca-key.pem')).mode & 0o777).toBe(0o600);
    expect(openssl(['verify', '-x509_strict', '-CAfile', join(out, 'root-cert.pem'), join(out, 'ca-cert.pem')]).ok).toBe(true);
    const chain = readFileSync(join(out, 'cert-chain.pem'), 'utf8');
    expect(chain.startsWith(readFileSync(join(out, 'ca-cert.pem'), 'utf8'))).toBe(true);
    expect(chain.endsWith(readFileSync(join(out, 'root-cert.pem'), 'utf8'))).toBe(true);
  });

  it('prints a cacerts Secret for istio-system with -o secret', () => {
    const result = meshfed(['ca', 'intermediate', 'west-1', '-o', 'secret', '--state-dir', state]);
    expect(result.code).toBe(0);
    const secret = parseYaml(result.stdout) as { kind: string; metadata: { name: string; namespace: string }; data: Record<string, string> };
    expect(secret.kind).toBe('Secret');
    expect(secret.metadata).toMatchObject({ name: 'cacerts', namespace: 'istio-system' });
    expect(Object.keys(secret.data).sort()).toEqual(['ca-cert.pem', 'ca-key.pem', 'cert-chain.pem', 'root-cert.pem']);
    expect(Buffer.from(secret.data['ca-key.pem'] ?? '', 'base64').toString()).toContain('PRIVATE KEY');
  });

  it('signs a workload CSR with the SPIFFE ID it is told, never the one the CSR asks for', () => {
    const csr = workloadCsr('reviews', '/CN=spiffe-impostor', ['-addext', 'subjectAltName=URI:spiffe://evil.test/ns/x/sa/admin']);
    const chainFile = join(work, 'reviews-chain.pem');
    const result = meshfed(['ca', 'sign', '--cluster', 'east-1', '--csr', csr, '--spiffe-id', 'spiffe://cli.test/ns/default/sa/reviews', '--out', chainFile, '--state-dir', state]);
    expect(result.code).toBe(0);
    expect(result.stderr).toContain('ignored SAN requested by the CSR: URI:spiffe://evil.test/ns/x/sa/admin');
    const leaf = readFileSync(chainFile, 'utf8').split(/(?<=-----END CERTIFICATE-----\n)/)[0] ?? '';
    writeFileSync(join(work, 'reviews-leaf.pem'), leaf);
    const text = openssl(['x509', '-in', join(work, 'reviews-leaf.pem'), '-noout', '-ext', 'subjectAltName']).output;
    expect(text).toContain('URI:spiffe://cli.test/ns/default/sa/reviews');
    expect(text).not.toContain('evil');
    const verify = openssl(['verify', '-x509_strict', '-CAfile', join(work, 'east-1', 'root-cert.pem'), '-untrusted', join(work, 'east-1', 'ca-cert.pem'), join(work, 'reviews-leaf.pem')]);
    expect(verify.output).toContain('OK');
  });

  it('refuses a garbage CSR and a foreign SPIFFE ID with exit 1, writing nothing', () => {
    const garbage = join(work, 'garbage.csr');
    writeFileSync(garbage, '-----BEGIN CERTIFICATE REQUEST-----\nbm90IGEgY3Ny\n-----END CERTIFICATE REQUEST-----\n');
    const before = snapshot(state);
    const bad = meshfed(['ca', 'sign', '--cluster', 'east-1', '--csr', garbage, '--spiffe-id', 'spiffe://cli.test/ns/a/sa/b', '--out', join(work, 'nope.pem'), '--state-dir', state]);
    expect(bad.code).toBe(1);
    expect(bad.stderr).toMatch(/malformed CSR|CSR/);
    const foreign = meshfed(['ca', 'sign', '--cluster', 'east-1', '--csr', workloadCsr('x'), '--spiffe-id', 'spiffe://other.test/ns/a/sa/b', '--state-dir', state]);
    expect(foreign.code).toBe(1);
    expect(foreign.stderr).toContain('outside trust domain cli.test');
    expect(existsSync(join(work, 'nope.pem'))).toBe(false);
    expect(snapshot(state)).toEqual(before);
  });

  it('prints the bundle as PEM and as a SPIFFE JWKS', () => {
    const pem = meshfed(['ca', 'bundle', '--state-dir', state]);
    expect(pem.stdout.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    const jwks = JSON.parse(meshfed(['ca', 'bundle', '--format', 'spiffe', '--state-dir', state]).stdout) as { keys: { use: string; x5c: string[] }[]; spiffe_sequence: number; spiffe_refresh_hint: number };
    expect(jwks.keys).toHaveLength(1);
    expect(jwks.keys[0]?.use).toBe('x509-svid');
    expect(jwks.spiffe_sequence).toBe(1);
    expect(jwks.spiffe_refresh_hint).toBe(300);
  });

  it('walks a root rotation, refusing to advance until every cluster has the previous step', () => {
    const start = meshfed(['ca', 'rotate', 'start', '--state-dir', state, '-o', 'yaml']);
    expect(start.code).toBe(0);
    expect((parseYaml(start.stdout) as { phase: string }).phase).toBe('bundle-added');
    const early = meshfed(['ca', 'rotate', 'advance', '--state-dir', state]);
    expect(early.code).toBe(1);
    expect(early.stderr).toMatch(/not done for east-1, west-1/);
    for (const cluster of ['east-1', 'west-1']) expect(meshfed(['ca', 'intermediate', cluster, '-o', 'secret', '--state-dir', state]).code).toBe(0);
    const second = meshfed(['ca', 'rotate', 'advance', '--state-dir', state, '-o', 'json']);
    expect(second.code).toBe(0);
    expect((JSON.parse(second.stdout) as { phase: string }).phase).toBe('intermediates-reissued');
    expect(meshfed(['ca', 'rotate', 'advance', '--state-dir', state]).code).toBe(1);
    for (const cluster of ['east-1', 'west-1']) expect(meshfed(['ca', 'intermediate', cluster, '--out', join(work, `${cluster}-new`), '--state-dir', state]).code).toBe(0);
    const done = meshfed(['ca', 'rotate', 'advance', '--state-dir', state]);
    expect(done.code).toBe(0);
    expect(done.stdout).toContain('phase: none');
    expect(meshfed(['ca', 'bundle', '--state-dir', state]).stdout.match(/BEGIN CERTIFICATE/g)).toHaveLength(1);
    const final = join(work, 'east-1-final');
    expect(meshfed(['ca', 'intermediate', 'east-1', '--out', final, '--state-dir', state]).code).toBe(0);
    const oldLeaf = openssl(['verify', '-CAfile', join(final, 'root-cert.pem'), '-untrusted', join(work, 'east-1', 'ca-cert.pem'), join(work, 'reviews-leaf.pem')]);
    expect(oldLeaf.ok).toBe(false);
    expect(oldLeaf.output).toContain('unable to get local issuer certificate');
  });
});

describe('meshfed ca: offline root', () => {
  it('keeps the root key out of the state dir and issues intermediates through CSRs', () => {
    const dir = join(work, 'offline-state');
    const keyOut = join(work, 'usb', 'root-key.pem');
    const inside = meshfed(['ca', 'init', '--trust-domain', 'off.test', '--offline-root', '--root-key-out', join(dir, 'root.pem'), '--state-dir', dir]);
    expect(inside.code).toBe(2);
    expect(inside.stderr).toContain('inside the state dir');
    const init = meshfed(['ca', 'init', '--trust-domain', 'off.test', '--offline-root', '--root-key-out', keyOut, '--state-dir', dir]);
    expect(init.code).toBe(0);
    expect(statSync(keyOut).mode & 0o777).toBe(0o600);
    const rootKey = readFileSync(keyOut, 'utf8');
    for (const content of Object.values(snapshot(dir))) expect(content).not.toContain(rootKey.split('\n')[1]);

    const online = meshfed(['ca', 'intermediate', 'east-1', '--state-dir', dir]);
    expect(online.code).toBe(1);
    expect(online.stderr).toContain('offline');

    const rootCert = join(work, 'off-root.pem');
    writeFileSync(rootCert, meshfed(['ca', 'bundle', '--state-dir', dir]).stdout);
    const csr = join(work, 'east-1-intermediate.csr');
    expect(meshfed(['ca', 'csr', 'east-1', '--out', csr, '--state-dir', dir]).code).toBe(0);
    const signed = join(work, 'east-1-intermediate.pem');
    const sign = meshfed(['ca', 'sign-intermediate', '--root-cert', rootCert, '--root-key', keyOut, '--csr', csr, '--cluster', 'east-1', '--trust-domain', 'off.test', '--out', signed]);
    expect(sign.code).toBe(0);
    expect(meshfed(['ca', 'import-intermediate', 'east-1', '--cert', signed, '--state-dir', dir]).code).toBe(0);
    const out = join(work, 'off-east-1');
    expect(meshfed(['ca', 'intermediate', 'east-1', '--out', out, '--state-dir', dir]).code).toBe(0);
    expect(openssl(['verify', '-x509_strict', '-CAfile', rootCert, join(out, 'ca-cert.pem')]).ok).toBe(true);
    const again = meshfed(['ca', 'import-intermediate', 'east-1', '--cert', signed, '--state-dir', dir]);
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('no pending CSR');
  });
});
