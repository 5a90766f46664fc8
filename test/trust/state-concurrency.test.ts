import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { TrustAuthority } from '../../src/trust/authority.js';

let dir: string;

beforeEach(() => {
  dir = mkdtempSync(join(tmpdir(), 'meshfed-concurrency-'));
});

afterEach(() => {
  rmSync(dir, { recursive: true, force: true });
});

describe('two meshfed processes on one state dir', () => {
  it('refuses to commit over a change made by another process, and picks it up on reload', () => {
    const { authority: first } = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'mesh.test' });
    first.issueIntermediate('east-1');
    const second = TrustAuthority.open(join(dir, 'ca'));

    second.startRotation();
    const manifest = readFileSync(join(dir, 'ca', 'manifest.json'), 'utf8');
    expect(() => first.issueIntermediate('west-1')).toThrow(/changed by another meshfed process/);
    expect(readFileSync(join(dir, 'ca', 'manifest.json'), 'utf8')).toBe(manifest);
    // the refused change was dropped and the other process's change loaded in its place
    expect(first.clusters).toEqual(['east-1']);
    expect(first.rotationStatus().phase).toBe('bundle-added');
    expect(first.roots()).toHaveLength(2);

    second.deliver('east-1');
    expect(first.reload()).toBe(true);
    expect(first.intermediates()[0]?.delivered).toBe(true);
    first.issueIntermediate('west-1');
    expect(first.reload()).toBe(false);
    expect(second.reload()).toBe(true);
    expect(second.clusters).toEqual(['east-1', 'west-1']);
  });

  it('waits for a live lock holder and takes over the lock of a dead one', () => {
    const { authority } = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'mesh.test' });
    writeFileSync(join(dir, 'ca', 'lock'), '999999999');
    authority.issueIntermediate('east-1');
    expect(authority.clusters).toEqual(['east-1']);
    writeFileSync(join(dir, 'ca', 'lock'), String(process.ppid));
    expect(() => authority.issueIntermediate('west-1')).toThrow(/locked by meshfed process/);
    rmSync(join(dir, 'ca', 'lock'));
    expect(TrustAuthority.open(join(dir, 'ca')).clusters).toEqual(['east-1']);
  });
});

describe('reads do not write', () => {
  it('creates the token secret once; later uses (every bearer-token request) leave the state dir untouched', () => {
    const { authority } = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'mesh.test' });
    const first = authority.tokenSecret();
    const manifest = join(dir, 'ca', 'manifest.json');
    const written = { content: readFileSync(manifest, 'utf8'), mtime: statSync(manifest).mtimeMs };
    for (let i = 0; i < 20; i++) expect(authority.tokenSecret().equals(first)).toBe(true);
    expect(TrustAuthority.open(join(dir, 'ca')).tokenSecret().equals(first)).toBe(true);
    expect(readFileSync(manifest, 'utf8')).toBe(written.content);
    expect(statSync(manifest).mtimeMs).toBe(written.mtime);
  });
});

describe('a refused change changes nothing, on disk or in memory', () => {
  it('keeps the state as it was when a rotation step is refused', () => {
    const { authority } = TrustAuthority.init(join(dir, 'ca'), { trustDomain: 'mesh.test' });
    authority.issueIntermediate('east-1');
    authority.startRotation();
    const before = JSON.stringify(authority.rotationStatus());
    const manifest = readFileSync(join(dir, 'ca', 'manifest.json'), 'utf8');
    expect(() => authority.advanceRotation()).toThrow(/not done for east-1/);
    expect(JSON.stringify(authority.rotationStatus())).toBe(before);
    expect(readFileSync(join(dir, 'ca', 'manifest.json'), 'utf8')).toBe(manifest);
  });
});
