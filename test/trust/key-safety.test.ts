// Key material at rest: file modes, encryption with MESHFED_CA_PASSPHRASE, tamper detection, no writes on refusals.
import { chmodSync, mkdirSync, readFileSync, rmSync, statSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, test } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';
import { createCsr } from '../../src/trust/csr.js';
import { listFiles, makeWorkload, must, snapshotDir, spiffeId, TempDirs, TRUST_DOMAIN, verifyChain, workloadKey } from './helpers.js';

const tmp = new TempDirs();
afterAll(() => {
  tmp.cleanup();
});

const PASSPHRASE_ENV = 'MESHFED_CA_PASSPHRASE';

/** A CA with two delivered clusters, a rotation under way and a pending CSR: every kind of file it writes. */
function busyCa(env: NodeJS.ProcessEnv = {}): { dir: string; work: string; authority: TrustAuthority } {
  const work = tmp.make();
  const dir = join(work, 'state', 'ca');
  const { authority } = TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN }, env);
  for (const cluster of ['east-1', 'west-1']) {
    authority.issueIntermediate(cluster);
    authority.deliver(cluster);
  }
  authority.intermediateCsr('south-1');
  authority.startRotation();
  authority.tokenSecret();
  return { dir, work, authority };
}

/** Every directory under `dir`, itself included. */
function listDirs(dir: string): string[] {
  const files = listFiles(dir);
  const dirs = new Set<string>(['.']);
  for (const file of files) {
    const parts = file.split('/');
    for (let i = 1; i < parts.length; i++) dirs.add(parts.slice(0, i).join('/'));
  }
  return [...dirs].sort();
}

const fileMatching = (dir: string, pattern: RegExp): string => must(listFiles(dir).find((name) => pattern.test(name)), `a file matching ${pattern} in ${dir}`);

describe('files at rest', () => {
  test('every file in the state dir is mode 0600 and every directory 0700; no temp files are left', () => {
    const { dir } = busyCa();
    const files = listFiles(dir);
    expect(files).toContain('manifest.json');
    expect(files.filter((name) => /\/ca-key\.[0-9a-f]+\.pem$/.test(name))).toHaveLength(2);
    expect(files.some((name) => name.includes('pending-key'))).toBe(true);
    for (const name of files) expect({ name, mode: (statSync(join(dir, name)).mode & 0o777).toString(8) }).toEqual({ name, mode: '600' });
    for (const name of listDirs(dir)) expect({ name, mode: (statSync(join(dir, name)).mode & 0o777).toString(8) }).toEqual({ name, mode: '700' });
    expect(files.filter((name) => name.includes('.tmp-'))).toEqual([]);
  });

  test('init into an existing empty directory makes it 0700', () => {
    const dir = tmp.make();
    chmodSync(dir, 0o755);
    TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN }, {});
    expect((statSync(dir).mode & 0o777).toString(8)).toBe('700');
  });

  test('init refuses a directory that already holds other files, and deletes none of them', () => {
    const dir = tmp.make();
    mkdirSync(join(dir, 'src'));
    writeFileSync(join(dir, 'notes.txt'), 'precious');
    writeFileSync(join(dir, 'src', 'main.ts'), 'code');
    const before = snapshotDir(dir);
    expect(() => TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN }, {})).toThrow(/is not empty/);
    expect(snapshotDir(dir)).toEqual(before);
    expect(listFiles(dir)).toEqual(['notes.txt', 'src/main.ts']);
  });

  test('manifest.json holds no private key', () => {
    const { dir, authority } = busyCa();
    const manifest = readFileSync(join(dir, 'manifest.json'), 'utf8');
    expect(manifest).not.toMatch(/PRIVATE KEY/);
    const keyBody = authority.deliver('east-1')['ca-key.pem'].replace(/-----[A-Z ]+-----/g, '').replace(/\s+/g, '');
    expect(manifest.replace(/\s+|\\n/g, '')).not.toContain(keyBody.slice(0, 40));
  });
});

describe('encryption at rest with MESHFED_CA_PASSPHRASE', () => {
  const passphrase = 'correct horse battery staple';
  let dir: string;
  let work: string;

  beforeAll(() => {
    ({ dir, work } = busyCa({ [PASSPHRASE_ENV]: passphrase }));
  });

  test('key files hold no plaintext private key', () => {
    const keyFiles = listFiles(dir).filter((name) => /(key|token-hmac)/.test(name));
    expect(keyFiles.length).toBeGreaterThanOrEqual(5); // 2 roots, 2 cluster keys, 1 pending key, the token secret
    for (const name of keyFiles) {
      const content = readFileSync(join(dir, name), 'utf8');
      expect(content, name).not.toMatch(/BEGIN (RSA |EC )?PRIVATE KEY/);
      expect(content, name).toMatch(/^-----BEGIN MESHFED ENCRYPTED PRIVATE KEY-----/);
    }
    expect(readFileSync(join(dir, 'manifest.json'), 'utf8')).toMatch(/"encryption": "scrypt-aes-256-gcm"/);
  });

  test('open() without the passphrase fails with a message naming MESHFED_CA_PASSPHRASE', () => {
    expect(() => TrustAuthority.open(dir, {})).toThrow(/encrypted at rest: set MESHFED_CA_PASSPHRASE/);
    expect(() => TrustAuthority.open(dir, { [PASSPHRASE_ENV]: '' })).toThrow(/MESHFED_CA_PASSPHRASE/);
  });

  test('open() with the wrong passphrase fails', () => {
    expect(() => TrustAuthority.open(dir, { [PASSPHRASE_ENV]: 'wrong horse' })).toThrow(/wrong MESHFED_CA_PASSPHRASE/);
  });

  test('open() with the right passphrase signs leaves openssl accepts', async () => {
    const authority = TrustAuthority.open(dir, { [PASSPHRASE_ENV]: passphrase });
    const material = authority.deliver('east-1');
    expect(material['ca-key.pem']).toMatch(/^-----BEGIN PRIVATE KEY-----/);
    const workload = makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web') });
    const result = await verifyChain(work, { roots: material['root-cert.pem'], intermediates: material['ca-cert.pem'], leaf: workload.leafPem });
    expect(result.ok).toBe(true);
  });
});

describe('tamper detection', () => {
  test('one modified byte in a certificate file: open() throws naming that file', () => {
    const { dir } = busyCa();
    const name = fileMatching(dir, /^clusters\/west-1\/ca-cert\./);
    const data = readFileSync(join(dir, name));
    const at = data.indexOf('\n') + 10; // inside the base64 body
    data[at] = must(data[at], 'a byte') === 0x41 ? 0x42 : 0x41;
    writeFileSync(join(dir, name), data);
    expect(() => TrustAuthority.open(dir, {})).toThrow(new RegExp(`${name.replace(/\./g, '\\.')} does not match its recorded SHA-256`));
  });

  test('one modified byte in a key file: open() throws naming that file', () => {
    const { dir } = busyCa();
    const name = fileMatching(dir, /^clusters\/east-1\/ca-key\./);
    const data = readFileSync(join(dir, name));
    data[40] = must(data[40], 'a byte') ^ 0x01;
    writeFileSync(join(dir, name), data);
    expect(() => TrustAuthority.open(dir, {})).toThrow(new RegExp(`${name.replace(/\./g, '\\.')} does not match`));
  });

  test('a deleted file: open() throws saying it is missing', () => {
    const { dir } = busyCa();
    const name = fileMatching(dir, /^roots\/[0-9a-f]+\/cert\./);
    rmSync(join(dir, name));
    expect(() => TrustAuthority.open(dir, {})).toThrow(new RegExp(`${name.replace(/\./g, '\\.')} is missing`));
  });

  test('a truncated manifest.json: open() throws a clear error', () => {
    const { dir } = busyCa();
    const manifest = join(dir, 'manifest.json');
    truncateSync(manifest, Math.floor(statSync(manifest).size / 2));
    expect(() => TrustAuthority.open(dir, {})).toThrow(/manifest\.json is not valid JSON .*the state dir is damaged/);
  });

  test('a manifest whose body was edited (an unknown field) is refused', () => {
    const { dir } = busyCa();
    const manifest = join(dir, 'manifest.json');
    const document = JSON.parse(readFileSync(manifest, 'utf8')) as { body: Record<string, unknown> };
    document.body.extra = true;
    writeFileSync(manifest, JSON.stringify(document));
    expect(() => TrustAuthority.open(dir, {})).toThrow(/not a valid meshfed CA manifest/);
  });

  test('a directory without a manifest is not a CA', () => {
    expect(() => TrustAuthority.open(tmp.make(), {})).toThrow(/holds no meshfed CA/);
  });

  test('init refuses to overwrite an existing CA', () => {
    const { dir } = busyCa();
    const before = snapshotDir(dir);
    expect(() => TrustAuthority.init(dir, { trustDomain: TRUST_DOMAIN }, {})).toThrow(/already holds a meshfed CA/);
    expect(snapshotDir(dir)).toEqual(before);
  });
});

describe('refused operations write nothing', () => {
  test('a refused signWorkload leaves the state dir exactly as it was', () => {
    const { dir, authority } = busyCa();
    const before = snapshotDir(dir);
    const csr = createCsr(workloadKey());
    expect(() => authority.signWorkload({ cluster: 'east-1', csr, spiffeId: spiffeId('default', 'web', 'evil.org') })).toThrow(/outside trust domain/);
    expect(() => authority.signWorkload({ cluster: 'east-1', csr, spiffeId: spiffeId('default', 'web'), ttl: '100d' })).toThrow(/policy maximum/);
    expect(() => authority.signWorkload({ cluster: 'north-1', csr, spiffeId: spiffeId('default', 'web') })).toThrow(/north-1 has no intermediate/);
    expect(() => authority.signWorkload({ cluster: 'East_1', csr, spiffeId: spiffeId('default', 'web') })).toThrow(/invalid cluster name "East_1"/);
    expect(snapshotDir(dir)).toEqual(before);
    // A successful signature writes nothing either: leaves are not state.
    makeWorkload(authority, { cluster: 'east-1', spiffeId: spiffeId('default', 'web') });
    expect(snapshotDir(dir)).toEqual(before);
  });

  test('a refused importIntermediate leaves the state dir exactly as it was', () => {
    const { dir, authority } = busyCa();
    const before = snapshotDir(dir);
    const someCa = authority.deliver('west-1')['ca-cert.pem'];
    const afterDeliver = snapshotDir(dir);
    expect(afterDeliver).not.toEqual(before); // deliver records the delivery: the snapshot does see writes
    expect(() => authority.importIntermediate('south-1', someCa)).toThrow(/public key differs/);
    expect(() => authority.importIntermediate('south-1', 'not a certificate')).toThrow(/no PEM certificate found/);
    expect(() => authority.importIntermediate('east-1', someCa)).toThrow(/no pending CSR/);
    expect(snapshotDir(dir)).toEqual(afterDeliver);
  });
});
