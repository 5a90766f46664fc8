// Shared helpers for the trust suites: real `openssl` runs, real TLS handshakes on loopback,
// temp dirs, workload keys/CSRs/chains and state-dir snapshots.
import { execFile } from 'node:child_process';
import { createHash, generateKeyPairSync, X509Certificate, type KeyObject } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join, relative, sep } from 'node:path';
import tls from 'node:tls';
import type { TrustAuthority, WorkloadCertificate } from '../../src/trust/authority.js';
import { createCsr } from '../../src/trust/csr.js';

export const OPENSSL = '/usr/bin/openssl';
export const TRUST_DOMAIN = 'example.org';

/** Narrows away undefined/null, failing the test with a message when the value is missing. */
export function must<T>(value: T | undefined | null, what: string): T {
  if (value === undefined || value === null) throw new Error(`expected ${what}, found nothing`);
  return value;
}

/**
 * Waits (bounded) until `check` holds, for effects that land an event-loop turn later, such as
 * a server noticing a refused handshake after the client has seen the connection close.
 */
export async function eventually(check: () => boolean, timeoutMs = 5_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!check() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 10));
}

// ---- temp dirs ------------------------------------------------------------------------

export class TempDirs {
  readonly #dirs: string[] = [];

  make(prefix = 'meshfed-trust-'): string {
    const dir = mkdtempSync(join(tmpdir(), prefix));
    this.#dirs.push(dir);
    return dir;
  }

  cleanup(): void {
    for (const dir of this.#dirs.splice(0)) rmSync(dir, { recursive: true, force: true });
  }
}

/** Writes `files` (name → content) into `dir`; returns name → absolute path. */
export function writeFiles<K extends string>(dir: string, files: Record<K, string | Buffer>): Record<K, string> {
  const out = {} as Record<K, string>;
  for (const name of Object.keys(files) as K[]) {
    const path = join(dir, name);
    writeFileSync(path, files[name]);
    out[name] = path;
  }
  return out;
}

// ---- commands -------------------------------------------------------------------------

export interface CommandResult {
  ok: boolean;
  code: number;
  stdout: string;
  stderr: string;
  /** stdout and stderr together */
  output: string;
}

/** Runs a program (no shell), optionally feeding `input` on stdin; never rejects, bounded by `timeoutMs`. */
export function runCommand(file: string, args: readonly string[], input?: string | Buffer, timeoutMs = 30_000): Promise<CommandResult> {
  return new Promise((resolve) => {
    const child = execFile(file, args, { timeout: timeoutMs, maxBuffer: 16 * 1024 * 1024, encoding: 'utf8' }, (error, stdout, stderr) => {
      const code = error ? (typeof error.code === 'number' ? error.code : -1) : 0;
      resolve({ ok: code === 0, code, stdout, stderr, output: `${stdout}${stderr}${error && code === -1 ? error.message : ''}` });
    });
    child.stdin?.on('error', () => undefined);
    child.stdin?.end(input ?? '');
  });
}

export const openssl = (args: readonly string[], input?: string | Buffer): Promise<CommandResult> => runCommand(OPENSSL, args, input);

/** `openssl verify ARGS`: ok only when openssl exits 0 and reports OK. */
export async function opensslVerify(args: readonly string[]): Promise<{ ok: boolean; output: string }> {
  const result = await openssl(['verify', ...args]);
  return { ok: result.ok && /: OK\s*$/m.test(result.stdout), output: result.output };
}

export interface ChainFiles {
  /** one or more roots */
  roots: string;
  /** the intermediate(s) the leaf chains through */
  intermediates: string;
  leaf: string;
}

/** `openssl verify -x509_strict -CAfile roots -untrusted intermediates leaf`, files written into a fresh dir under `dir`. */
export async function verifyChain(dir: string, chain: ChainFiles, extraArgs: readonly string[] = []): Promise<{ ok: boolean; output: string }> {
  const work = mkdtempSync(join(dir, 'verify-'));
  const files = writeFiles(work, { 'root-cert.pem': chain.roots, 'ca-cert.pem': chain.intermediates, 'leaf.pem': chain.leaf });
  return opensslVerify(['-x509_strict', ...extraArgs, '-CAfile', files['root-cert.pem'], '-untrusted', files['ca-cert.pem'], files['leaf.pem']]);
}

/** `openssl x509 -noout -text` of a PEM certificate. */
export async function opensslText(pem: string): Promise<string> {
  const result = await openssl(['x509', '-noout', '-text'], pem);
  if (!result.ok) throw new Error(`openssl x509 failed: ${result.output}`);
  return result.stdout;
}

export interface ExtensionText {
  critical: boolean;
  /** the extension's value lines, trimmed and joined with "\n" */
  value: string;
}

/** One X509v3 extension from `openssl x509 -text` output, by its display name (e.g. "X509v3 Key Usage"). */
export function extensionText(text: string, name: string): ExtensionText | undefined {
  const lines = text.split('\n');
  const start = lines.findIndex((line) => line.trim().startsWith(`${name}:`));
  if (start < 0) return undefined;
  const header = lines[start] ?? '';
  const indent = header.length - header.trimStart().length;
  const value: string[] = [];
  for (const line of lines.slice(start + 1)) {
    if (line.trim() === '' || line.length - line.trimStart().length <= indent) break;
    value.push(line.trim());
  }
  return { critical: /:\s*critical\s*$/.test(header), value: value.join('\n') };
}

/** The names of every X509v3 extension in `openssl x509 -text` output. */
export function extensionNames(text: string): string[] {
  return [...text.matchAll(/^\s*(X509v3 [A-Za-z ]+|[0-9.]+):(?: critical)?\s*$/gm)].map((m) => m[1] ?? '').filter((name) => name !== 'X509v3 extensions');
}

// ---- workloads ------------------------------------------------------------------------

export type WorkloadKeyType = 'ec-p256' | 'rsa-2048';

export function workloadKey(type: WorkloadKeyType = 'ec-p256'): KeyObject {
  return type === 'ec-p256'
    ? generateKeyPairSync('ec', { namedCurve: 'P-256' }).privateKey
    : generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey;
}

export const spiffeId = (namespace: string, serviceAccount: string, trustDomain = TRUST_DOMAIN): string =>
  `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`;

export interface Workload {
  spiffeId: string;
  key: KeyObject;
  keyPem: string;
  csrPem: string;
  signed: WorkloadCertificate;
  leafPem: string;
  intermediatePem: string;
  rootPem: string;
  /** what a workload presents in TLS: leaf then intermediate */
  tlsChainPem: string;
}

export interface WorkloadOptions {
  cluster: string;
  spiffeId: string;
  keyType?: WorkloadKeyType;
  /** reuse a key (renewal); otherwise a fresh one is made */
  key?: KeyObject;
  ttl?: string | number;
  now?: Date;
}

/** A workload key, its CSR, and the chain the authority signs for it. */
export function makeWorkload(authority: TrustAuthority, options: WorkloadOptions): Workload {
  const key = options.key ?? workloadKey(options.keyType);
  const csrPem = createCsr(key);
  const signed = authority.signWorkload({
    cluster: options.cluster,
    csr: csrPem,
    spiffeId: options.spiffeId,
    ...(options.ttl !== undefined ? { ttl: options.ttl } : {}),
    ...(options.now ? { now: options.now } : {}),
  });
  const [leafPem, intermediatePem, rootPem] = signed.certChain;
  return {
    spiffeId: options.spiffeId,
    key,
    keyPem: key.export({ type: 'pkcs8', format: 'pem' }).toString(),
    csrPem,
    signed,
    leafPem: must(leafPem, 'a leaf in the chain'),
    intermediatePem: must(intermediatePem, 'an intermediate in the chain'),
    rootPem: must(rootPem, 'a root in the chain'),
    tlsChainPem: must(leafPem, 'leaf') + must(intermediatePem, 'intermediate'),
  };
}

/** The certificates of a PEM bundle, in order. */
export function pemCertificates(pem: string): X509Certificate[] {
  return (pem.match(/-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----\n?/g) ?? []).map((block) => new X509Certificate(block));
}

/** The URIs in a subjectAltName string as Node prints it ("URI:a, DNS:b"). */
export function uriSansOf(subjectAltName: string | undefined): string[] {
  return (subjectAltName ?? '')
    .split(', ')
    .filter((entry) => entry.startsWith('URI:'))
    .map((entry) => entry.slice(4));
}

// ---- state dirs -----------------------------------------------------------------------

/** Every file under `dir`, as paths relative to it with "/" separators, sorted. */
export function listFiles(dir: string): string[] {
  const out: string[] = [];
  const walk = (current: string): void => {
    for (const entry of readdirSync(current)) {
      const full = join(current, entry);
      if (statSync(full).isDirectory()) walk(full);
      else out.push(relative(dir, full).split(sep).join('/'));
    }
  };
  walk(dir);
  return out.sort();
}

/**
 * Everything that would change if anything were written: each entry's kind, mode, inode,
 * mtime and (for files) SHA-256. Atomic rewrites change the inode even for equal content;
 * with `identity: false` only names, kinds, modes and contents are compared.
 */
export function snapshotDir(dir: string, options: { identity?: boolean } = {}): Map<string, string> {
  const identity = options.identity ?? true;
  const out = new Map<string, string>();
  const walk = (current: string): void => {
    for (const entry of readdirSync(current).sort()) {
      const full = join(current, entry);
      const stat = statSync(full);
      const name = relative(dir, full).split(sep).join('/');
      if (stat.isDirectory()) {
        out.set(name, `dir ${(stat.mode & 0o777).toString(8)}${identity ? ` ${stat.ino}` : ''}`);
        walk(full);
      } else {
        const digest = createHash('sha256').update(readFileSync(full)).digest('hex');
        out.set(name, `file ${(stat.mode & 0o777).toString(8)}${identity ? ` ${stat.ino} ${stat.mtimeMs}` : ''} ${digest}`);
      }
    }
  };
  walk(dir);
  return out;
}

// ---- TLS ------------------------------------------------------------------------------

export interface TlsIdentity {
  keyPem: string;
  /** leaf then intermediate */
  chainPem: string;
  /** the trust bundle: every root this workload trusts */
  caPem: string;
}

export const tlsIdentity = (workload: Workload, caPem: string): TlsIdentity => ({ keyPem: workload.keyPem, chainPem: workload.tlsChainPem, caPem });

const secureContextOptions = (identity: TlsIdentity): tls.SecureContextOptions => ({ key: identity.keyPem, cert: identity.chainPem, ca: identity.caPem });

export interface RefusedClient {
  message: string;
  /** e.g. UNABLE_TO_GET_ISSUER_CERT_LOCALLY */
  authorizationError?: string;
}

export interface WorkloadServer {
  port: number;
  /** the workload refreshes its material: a new SecureContext for new connections */
  setIdentity(identity: TlsIdentity): void;
  /** handshakes the server refused (tlsClientError), with the verification error OpenSSL reported on the client's chain */
  readonly clientErrors: RefusedClient[];
  close(): Promise<void>;
}

/**
 * An mTLS server on 127.0.0.1: it demands a client certificate chaining to its bundle and
 * answers each connection with the SPIFFE ID it saw on the client, then closes.
 */
export async function startWorkloadServer(identity: TlsIdentity): Promise<WorkloadServer> {
  const clientErrors: RefusedClient[] = [];
  const server = tls.createServer({ ...secureContextOptions(identity), requestCert: true, rejectUnauthorized: true }, (socket) => {
    const peer = socket.getPeerCertificate();
    socket.end(`${uriSansOf(peer.subjectaltname).join(',')}\n`);
  });
  server.on('tlsClientError', (error, socket) => {
    const reason = socket.authorizationError as Error | string | null | undefined;
    clientErrors.push({ message: error.message, ...(reason ? { authorizationError: String(reason) } : {}) });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    setIdentity: (next) => {
      server.setSecureContext(secureContextOptions(next));
    },
    clientErrors,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => {
          resolve();
        });
      }),
  };
}

export interface HandshakeResult {
  /** the handshake completed both ways and the server answered */
  ok: boolean;
  /** the SPIFFE ID(s) the client saw on the server's certificate */
  serverIds: string[];
  /** what the server said it saw on the client's certificate */
  seenByServer?: string;
  error?: string;
}

/**
 * One mTLS connection from a workload: verifies the server against the client's bundle and
 * requires the server's certificate to carry `expectedServerId` (SPIFFE authentication, not hostname).
 */
export function connectWorkload(port: number, identity: TlsIdentity, expectedServerId: string, timeoutMs = 10_000): Promise<HandshakeResult> {
  return new Promise((resolve) => {
    let settled = false;
    let serverIds: string[] = [];
    let data = '';
    const socket = tls.connect({
      host: '127.0.0.1',
      port,
      ...secureContextOptions(identity),
      checkServerIdentity: (_host, cert) => {
        const ids = uriSansOf(cert.subjectaltname);
        return ids.includes(expectedServerId) ? undefined : new Error(`server presented ${ids.join(', ') || 'no SPIFFE ID'}, expected ${expectedServerId}`);
      },
    });
    const finish = (result: Omit<HandshakeResult, 'serverIds'>): void => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      resolve({ ...result, serverIds });
    };
    const timer = setTimeout(() => {
      finish({ ok: false, error: `no answer within ${timeoutMs} ms` });
    }, timeoutMs);
    socket.setEncoding('utf8');
    socket.on('secureConnect', () => {
      serverIds = uriSansOf(socket.getPeerCertificate().subjectaltname);
    });
    socket.on('data', (chunk: string) => {
      data += chunk;
    });
    socket.on('error', (error: Error) => {
      finish({ ok: false, error: error.message });
    });
    socket.on('close', () => {
      const seen = data.trim();
      finish(seen && socket.authorized ? { ok: true, seenByServer: seen } : { ok: false, error: 'closed without an answer from the server' });
    });
  });
}

// ---- DER (an independent reader, so tests do not check the code with itself) ---------

interface Tlv {
  tag: number;
  raw: Buffer;
  content: Buffer;
}

function readTlv(buf: Buffer, offset: number): Tlv {
  const tag = must(buf[offset], 'a DER tag');
  let length = must(buf[offset + 1], 'a DER length');
  let header = 2;
  if (length & 0x80) {
    const count = length & 0x7f;
    length = 0;
    for (let i = 0; i < count; i++) length = length * 256 + must(buf[offset + 2 + i], 'a DER length octet');
    header += count;
  }
  return { tag, raw: buf.subarray(offset, offset + header + length), content: buf.subarray(offset + header, offset + header + length) };
}

function tlvChildren(content: Buffer): Tlv[] {
  const out: Tlv[] = [];
  for (let offset = 0; offset < content.length; ) {
    const child = readTlv(content, offset);
    out.push(child);
    offset += child.raw.length;
  }
  return out;
}

/** The issuer and subject Names of a certificate, exactly as encoded. */
export function certificateNames(cert: X509Certificate): { issuer: Buffer; subject: Buffer } {
  const [tbs] = tlvChildren(readTlv(cert.raw, 0).content);
  const fields = tlvChildren(must(tbs, 'TBSCertificate').content);
  const offset = fields[0]?.tag === 0xa0 ? 1 : 0;
  return { issuer: must(fields[offset + 2], 'issuer').raw, subject: must(fields[offset + 4], 'subject').raw };
}
