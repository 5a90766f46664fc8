import { createCipheriv, createDecipheriv, createHash, randomBytes, scryptSync } from 'node:crypto';
import { chmodSync, closeSync, mkdirSync, openSync, readdirSync, readFileSync, rmSync, statSync, writeSync, existsSync } from 'node:fs';
import { join, relative, sep } from 'node:path';
import { writeFileAtomic } from '../store/atomic.js';
import type { TrustState } from './trust-state.js';

/** The environment variable that holds the passphrase for keys encrypted at rest. */
export const PASSPHRASE_ENV = 'MESHFED_CA_PASSPHRASE';

const MANIFEST = 'manifest.json';
const LOCK = 'lock';
const LOCK_WAIT_MS = 5_000;
const ENCRYPTED_LABEL = 'MESHFED ENCRYPTED PRIVATE KEY';
const SCRYPT = { N: 32768, r: 8, p: 1, maxmem: 64 * 1024 * 1024 } as const;

export class StateError extends Error {}

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * A directory of files described by a manifest that records each file's SHA-256.
 * Files are written under fresh names before the manifest that names them, and the
 * manifest is replaced atomically last, so a crash leaves either the old state or the
 * new one; a file that was changed, truncated or removed behind meshfed's back is
 * reported, never used.
 */
export class StateDir<M extends object> implements TrustState<M> {
  #files: Record<string, string>;
  #pending = new Map<string, Buffer>();
  /** SHA-256 of manifest.json as this process last read or wrote it; undefined before the first commit */
  #manifestDigest: string | undefined;

  private constructor(
    readonly root: string,
    public manifest: M,
    files: Record<string, string>,
    manifestDigest: string | undefined,
  ) {
    this.#files = files;
    this.#manifestDigest = manifestDigest;
  }

  static exists(root: string): boolean {
    return existsSync(join(root, MANIFEST));
  }

  static create<M extends object>(root: string, manifest: M): StateDir<M> {
    if (StateDir.exists(root)) throw new StateError(`${root} already holds a meshfed CA; refusing to overwrite it`);
    // meshfed removes every file its manifest does not name, so it must own the whole directory.
    if (existsSync(root) && readdirSync(root).length > 0) {
      throw new StateError(`${root} is not empty; a new CA needs a new or empty directory, since meshfed owns every file in its state dir`);
    }
    mkdirSync(root, { recursive: true, mode: 0o700 });
    chmodSync(root, 0o700);
    return new StateDir(root, manifest, {}, undefined);
  }

  /** Opens and verifies a state dir; `parse` validates the manifest body. */
  static open<M extends object>(root: string, parse: (body: unknown) => M): StateDir<M> {
    const path = join(root, MANIFEST);
    if (!existsSync(path)) throw new StateError(`${root} holds no meshfed CA (no ${MANIFEST}); run "meshfed ca init" first`);
    const raw = readFileSync(path);
    let document: { files?: unknown; body?: unknown };
    try {
      document = JSON.parse(raw.toString('utf8')) as { files?: unknown; body?: unknown };
    } catch (error) {
      throw new StateError(`${path} is not valid JSON (${(error as Error).message}); the state dir is damaged`);
    }
    const files = document.files;
    if (typeof files !== 'object' || files === null || Array.isArray(files)) throw new StateError(`${path} has no file list; the state dir is damaged`);
    const checked: Record<string, string> = {};
    for (const [name, digest] of Object.entries(files as Record<string, unknown>)) {
      if (typeof digest !== 'string' || !safeRelative(name)) throw new StateError(`${path} lists an invalid entry "${name}"`);
      const file = join(root, name);
      if (!existsSync(file)) throw new StateError(`state dir is incomplete: ${name} is missing`);
      const actual = sha256(readFileSync(file));
      if (actual !== digest) throw new StateError(`state dir was modified outside meshfed: ${name} does not match its recorded SHA-256`);
      checked[name] = digest;
    }
    let manifest: M;
    try {
      manifest = parse(document.body);
    } catch (error) {
      throw new StateError(`${path} is not a valid meshfed CA manifest: ${(error as Error).message}`);
    }
    return new StateDir(root, manifest, checked, sha256(raw));
  }

  exists(): boolean {
    return StateDir.exists(this.root);
  }

  reopen(parse: (body: unknown) => M): StateDir<M> {
    return StateDir.open(this.root, parse);
  }

  /** Whether another process has committed since this one last read or wrote the manifest. */
  changedOnDisk(): boolean {
    const path = join(this.root, MANIFEST);
    const current = existsSync(path) ? sha256(readFileSync(path)) : undefined;
    return current !== this.#manifestDigest;
  }

  read(name: string): Buffer {
    const pending = this.#pending.get(name);
    if (pending) return pending;
    const digest = this.#files[name];
    if (digest === undefined) throw new StateError(`state dir has no file ${name}`);
    const data = readFileSync(join(this.root, name));
    if (sha256(data) !== digest) throw new StateError(`state dir was modified outside meshfed: ${name} does not match its recorded SHA-256`);
    return data;
  }

  /** Stages a file under a fresh name built from `stem`; returns the name to record in the manifest. */
  stage(stem: string, data: Buffer | string): string {
    const name = `${stem}.${randomBytes(4).toString('hex')}.pem`;
    if (!safeRelative(name)) throw new StateError(`invalid state file name ${name}`);
    this.#pending.set(name, Buffer.isBuffer(data) ? data : Buffer.from(data));
    return name;
  }

  /**
   * Writes staged files, then the manifest; then removes files that the manifest no longer names.
   * `keep` lists every file the new manifest refers to.
   */
  commit(keep: Iterable<string>): void {
    const release = this.#lock();
    try {
      if (this.changedOnDisk()) {
        throw new StateError(`${this.root} was changed by another meshfed process since it was read; nothing was written (retry the command)`);
      }
      this.#write(new Set(keep));
    } finally {
      release();
    }
  }

  #write(wanted: Set<string>): void {
    const files: Record<string, string> = {};
    for (const name of wanted) {
      const staged = this.#pending.get(name);
      if (staged) {
        writeFileAtomic(join(this.root, name), staged);
        files[name] = sha256(staged);
      } else {
        const digest = this.#files[name];
        if (digest === undefined) throw new StateError(`manifest refers to ${name}, which was never written`);
        files[name] = digest;
      }
    }
    const manifest = Buffer.from(JSON.stringify({ files, body: this.manifest }, null, 2) + '\n');
    writeFileAtomic(join(this.root, MANIFEST), manifest);
    this.#manifestDigest = sha256(manifest);
    this.#files = files;
    this.#pending.clear();
    this.#removeUnreferenced(wanted);
  }

  #removeUnreferenced(wanted: Set<string>): void {
    const walk = (dir: string): void => {
      for (const entry of readdirSync(dir)) {
        const full = join(dir, entry);
        const name = relative(this.root, full).split(sep).join('/');
        if (statSync(full).isDirectory()) walk(full);
        else if (name !== MANIFEST && name !== LOCK && !wanted.has(name)) rmSync(full, { force: true });
      }
    };
    walk(this.root);
  }

  /** An exclusive lock file holding the owner's pid; a lock whose owner is gone is taken over. */
  #lock(): () => void {
    const path = join(this.root, LOCK);
    const deadline = Date.now() + LOCK_WAIT_MS;
    for (;;) {
      try {
        const fd = openSync(path, 'wx', 0o600);
        writeSync(fd, String(process.pid));
        closeSync(fd);
        return () => {
          rmSync(path, { force: true });
        };
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EEXIST') throw error;
      }
      const owner = lockOwner(path);
      if (owner === 'gone') continue;
      if (owner === 'dead') {
        rmSync(path, { force: true });
        continue;
      }
      if (Date.now() > deadline) throw new StateError(`${this.root} is locked by meshfed process ${owner}; try again when it is done`);
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 20);
    }
  }
}

/** The pid in a lock file; 'dead' if that process is gone (or an empty lock is older than a second), 'gone' if the lock was released meanwhile. */
function lockOwner(path: string): number | 'dead' | 'gone' {
  let text: string;
  let age: number;
  try {
    text = readFileSync(path, 'utf8').trim();
    age = Date.now() - statSync(path).mtimeMs;
  } catch {
    return 'gone';
  }
  if (text === '') return age > 1000 ? 'dead' : 0;
  const pid = Number(text);
  return isAlive(pid) ? pid : 'dead';
}

function isAlive(pid: number): boolean {
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** A state file name: lower-case, relative, no empty, '.' or '..' segment. */
export function safeRelative(name: string): boolean {
  return /^[a-z0-9][a-z0-9._/-]*$/.test(name) && !name.split('/').some((part) => part === '..' || part === '.' || part === '');
}

/** Encrypts a PEM private key with a passphrase: scrypt key derivation, AES-256-GCM; `context` is bound as AAD. */
export function encryptKeyPem(pem: string, passphrase: string, context: string): string {
  const salt = randomBytes(16);
  const iv = randomBytes(12);
  const key = scryptSync(passphrase, salt, 32, SCRYPT);
  const cipher = createCipheriv('aes-256-gcm', key, iv);
  cipher.setAAD(Buffer.from(context));
  const ciphertext = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
  const body = Buffer.from(
    JSON.stringify({ kdf: 'scrypt', ...SCRYPT, salt: salt.toString('base64'), iv: iv.toString('base64'), tag: cipher.getAuthTag().toString('base64'), data: ciphertext.toString('base64') }),
  )
    .toString('base64')
    .replace(/.{64}/g, '$&\n');
  return `-----BEGIN ${ENCRYPTED_LABEL}-----\n${body}\n-----END ${ENCRYPTED_LABEL}-----\n`;
}

export const isEncryptedKeyPem = (pem: string): boolean => pem.includes(`-----BEGIN ${ENCRYPTED_LABEL}-----`);

export function decryptKeyPem(armored: string, passphrase: string | undefined, context: string): string {
  if (passphrase === undefined || passphrase === '') {
    throw new StateError(`the CA keys are encrypted at rest: set ${PASSPHRASE_ENV} to their passphrase`);
  }
  const inner = armored.replace(/-----(BEGIN|END) [A-Z ]+-----/g, '').replace(/\s+/g, '');
  let fields: { N: number; r: number; p: number; salt: string; iv: string; tag: string; data: string };
  try {
    fields = JSON.parse(Buffer.from(inner, 'base64').toString('utf8')) as typeof fields;
  } catch {
    throw new StateError(`encrypted key ${context} is damaged`);
  }
  try {
    const key = scryptSync(passphrase, Buffer.from(fields.salt, 'base64'), 32, { N: fields.N, r: fields.r, p: fields.p, maxmem: SCRYPT.maxmem });
    const decipher = createDecipheriv('aes-256-gcm', key, Buffer.from(fields.iv, 'base64'));
    decipher.setAAD(Buffer.from(context));
    decipher.setAuthTag(Buffer.from(fields.tag, 'base64'));
    return Buffer.concat([decipher.update(Buffer.from(fields.data, 'base64')), decipher.final()]).toString('utf8');
  } catch {
    throw new StateError(`cannot decrypt key ${context}: wrong ${PASSPHRASE_ENV}, or the file was tampered with`);
  }
}
