import { randomBytes, X509Certificate, type KeyObject } from 'node:crypto';
import { z } from 'zod';
import { formatDuration, parseDuration } from '../model/duration.js';
import { DEFAULT_TRUST_POLICY, trustPolicySchema, trustDomainSchema, clusterNameSchema, type KeyType, type TrustPolicy } from '../model/trust-policy.js';
import { createCsr, CsrError, parseCsr } from './csr.js';
import { generateKey, keyKind, parsePrivateKeyPem, privateKeyPem, publicKeysEqual } from './keys.js';
import { parseSpiffeId } from './spiffe.js';
import { decryptKeyPem, encryptKeyPem, isEncryptedKeyPem, PASSPHRASE_ENV, StateDir, StateError } from './state-dir.js';
import type { TrustState } from './trust-state.js';
import { certificatesPem, constrainedTo, derToPem, issueCaCertificate, issuerInfo, LeafIssuer, parseCertificates, subjectKeyIdHex } from './x509.js';

/** Clock skew allowance: certificates are valid from slightly before they are issued. */
const BACKDATE_MS = 60_000;

const rootRecordSchema = z.strictObject({
  id: z.string(),
  cert: z.string(),
  /** absent for an offline root: its key never enters the state dir */
  key: z.string().optional(),
});

const clusterRecordSchema = z.strictObject({
  cert: z.string().optional(),
  key: z.string().optional(),
  /** the root the current intermediate chains to */
  rootId: z.string().optional(),
  /** offline flow: the key of a CSR awaiting its signed intermediate */
  pendingKey: z.string().optional(),
  /** what was last handed to the cluster (exported as files or as a Secret) */
  delivered: z.strictObject({ bundleSequence: z.number().int(), intermediateSerial: z.string(), at: z.string() }).optional(),
});

const rotationSchema = z.strictObject({
  phase: z.enum(['bundle-added', 'intermediates-reissued']),
  oldRootId: z.string(),
  newRootId: z.string(),
  startedAt: z.string(),
});

const manifestSchema = z.strictObject({
  format: z.literal('meshfed-ca/v1'),
  trustDomain: trustDomainSchema,
  encryption: z.enum(['none', 'scrypt-aes-256-gcm']),
  policy: trustPolicySchema,
  /** the root that signs new intermediates */
  activeRootId: z.string(),
  roots: z.array(rootRecordSchema).min(1),
  rootGeneration: z.number().int().min(1),
  bundleSequence: z.number().int().min(1),
  clusters: z.record(z.string(), clusterRecordSchema),
  rotation: rotationSchema.optional(),
  /** the secret that signs bearer tokens for the CA service */
  tokenSecret: z.string().optional(),
});

type Manifest = z.infer<typeof manifestSchema>;
/** the CA's manifest, as a TrustState keeps it */
export type TrustManifest = Manifest;
export const parseTrustManifest = (body: unknown): TrustManifest => manifestSchema.parse(body);
type ClusterRecord = z.infer<typeof clusterRecordSchema>;
export type RotationPhase = z.infer<typeof rotationSchema>['phase'];

export class TrustError extends Error {}

export interface InitOptions {
  trustDomain: string;
  keyType?: KeyType;
  rootTtl?: string;
  policy?: TrustPolicy;
  /** an existing root; without `keyPem` the CA runs with an offline root */
  importRoot?: { certPem: string; keyPem?: string };
  /** generate the root but keep its key out of the state dir: it is returned once, to be stored offline */
  offlineRoot?: boolean;
  now?: Date;
}

/** Istio's plug-in CA layout: file name → PEM. */
export type ClusterMaterial = Record<'ca-cert.pem' | 'ca-key.pem' | 'root-cert.pem' | 'cert-chain.pem', string>;

export interface IntermediateStatus {
  cluster: string;
  serial?: string;
  rootId?: string;
  notBefore?: string;
  notAfter?: string;
  renewAfter?: string;
  pendingCsr: boolean;
  delivered: boolean;
}

export interface RotationStatus {
  phase: RotationPhase | 'none';
  oldRootId?: string;
  newRootId?: string;
  bundleSequence: number;
  steps: { step: string; done: boolean; waitingFor: string[] }[];
  next: string;
}

export interface WorkloadCertificate {
  spiffeId: string;
  /** leaf first, root last */
  certChain: string[];
  notAfter: Date;
  /** SANs the CSR asked for, which were ignored */
  ignoredSans: string[];
}

/** The signing request for a workload: who the caller is comes from the caller, never from the CSR. */
export interface WorkloadSignRequest {
  cluster: string;
  csr: Buffer | string;
  spiffeId: string;
  ttl?: string | number;
  now?: Date;
}

function rootSubject(trustDomain: string, generation: number) {
  return { organization: trustDomain, organizationalUnit: `root generation ${generation}`, commonName: 'meshfed root CA' };
}

const intermediateSubject = (trustDomain: string, cluster: string) => ({
  organization: trustDomain,
  organizationalUnit: cluster,
  commonName: 'meshfed intermediate CA',
});

function validityMs(value: string | number | undefined, lifetime: TrustPolicy['lifetimes']['workload'], what: string): number {
  const ms = value === undefined ? parseDuration(lifetime.default) : typeof value === 'number' ? value : parseDuration(value);
  const max = parseDuration(lifetime.max);
  if (!Number.isFinite(ms) || ms <= 0) throw new TrustError(`${what} lifetime must be positive`);
  if (ms > max) throw new TrustError(`${what} lifetime ${formatDuration(ms)} exceeds the policy maximum of ${lifetime.max}`);
  return ms;
}

/**
 * The federation's certificate authority: one root (two during a rotation), one
 * intermediate per cluster, and X.509-SVIDs for workloads, all kept in a state dir.
 */
export class TrustAuthority {
  #state: TrustState<Manifest>;
  #depth = 0;
  readonly #passphrase: string | undefined;
  /** parsed keys and certificates by state file name; every write stages a new name, so entries never go stale */
  #keys = new Map<string, KeyObject>();
  #certs = new Map<string, X509Certificate>();
  #secret: { name: string; value: Buffer } | undefined;
  #issuers = new Map<string, { file: string; issuer: LeafIssuer; chainTail: string[]; notAfter: Date }>();

  private constructor(state: TrustState<Manifest>, passphrase: string | undefined) {
    this.#state = state;
    this.#passphrase = passphrase;
  }

  static open(dir: string, env: NodeJS.ProcessEnv = process.env): TrustAuthority {
    return TrustAuthority.openState(StateDir.open(dir, parseTrustManifest), env);
  }

  /** Opens a CA kept in any TrustState (a state dir, a Kubernetes Secret). */
  static openState(state: TrustState<Manifest>, env: NodeJS.ProcessEnv = process.env): TrustAuthority {
    const authority = new TrustAuthority(state, env[PASSPHRASE_ENV]);
    authority.#checkConsistency();
    authority.#checkPassphrase();
    return authority;
  }

  /** Creates a new CA in `dir`. Returns the root key PEM only when `offlineRoot` asked for it to be kept elsewhere. */
  static init(dir: string, options: InitOptions, env: NodeJS.ProcessEnv = process.env): { authority: TrustAuthority; offlineRootKeyPem?: string } {
    return TrustAuthority.initState((manifest) => StateDir.create(dir, manifest), options, env);
  }

  /** Creates a new CA in the TrustState that `create` makes for its first manifest. */
  static initState(
    create: (manifest: Manifest) => TrustState<Manifest>,
    options: InitOptions,
    env: NodeJS.ProcessEnv = process.env,
  ): { authority: TrustAuthority; offlineRootKeyPem?: string } {
    const trustDomain = trustDomainSchema.parse(options.trustDomain);
    const policy = trustPolicySchema.parse(options.policy ?? DEFAULT_TRUST_POLICY);
    const passphrase = env[PASSPHRASE_ENV];
    const now = options.now ?? new Date();
    const { cert: rootCert, key: rootKey } = obtainRoot(options, trustDomain, 1, policy, now);
    const rootId = subjectKeyIdHex(rootCert);
    const state = create({
      format: 'meshfed-ca/v1',
      trustDomain,
      encryption: passphrase ? 'scrypt-aes-256-gcm' : 'none',
      policy,
      activeRootId: rootId,
      roots: [],
      rootGeneration: 1,
      bundleSequence: 1,
      clusters: {},
    });
    const authority = new TrustAuthority(state, passphrase);
    const keepKey = rootKey !== undefined && options.offlineRoot !== true;
    state.manifest.roots.push(authority.#stageRoot(rootId, rootCert, keepKey ? rootKey : undefined));
    authority.#commit();
    return { authority, ...(options.offlineRoot && rootKey ? { offlineRootKeyPem: privateKeyPem(rootKey) } : {}) };
  }

  get trustDomain(): string {
    return this.#state.manifest.trustDomain;
  }

  get policy(): TrustPolicy {
    return this.#state.manifest.policy;
  }

  get bundleSequence(): number {
    return this.#state.manifest.bundleSequence;
  }

  get clusters(): string[] {
    return Object.keys(this.#state.manifest.clusters).sort();
  }

  /** Every root currently trusted: the bundle each cluster and workload must hold. */
  roots(): X509Certificate[] {
    return this.#state.manifest.roots.map((root) => this.#rootCert(root.id));
  }

  rootById(id: string): X509Certificate {
    return this.#rootCert(id);
  }

  get activeRootId(): string {
    return this.#state.manifest.activeRootId;
  }

  isOfflineRoot(id = this.activeRootId): boolean {
    return this.#rootRecord(id).key === undefined;
  }

  // ---- intermediates ------------------------------------------------------------------

  /** Issues (or reissues) a cluster's intermediate under the active root. */
  issueIntermediate(cluster: string, options: { ttl?: string; now?: Date } = {}): X509Certificate {
    return this.#transaction(() => {
      const name = this.#clusterName(cluster);
      const rootId = this.activeRootId;
      const rootKey = this.#rootKey(rootId);
      const now = options.now ?? new Date();
      const ttl = validityMs(options.ttl, this.policy.lifetimes.intermediate, 'intermediate');
      const key = generateKey(this.policy.keyTypes.intermediate);
      const root = this.#rootCert(rootId);
      const cert = new X509Certificate(
        issueCaCertificate({
          subject: intermediateSubject(this.trustDomain, name),
          subjectKey: key,
          issuer: issuerInfo(root, rootKey),
          notBefore: new Date(now.getTime() - BACKDATE_MS),
          notAfter: new Date(Math.min(now.getTime() + ttl, new Date(root.validTo).getTime())),
          pathLength: 0,
          trustDomain: this.trustDomain,
        }),
      );
      this.#setIntermediate(name, cert, key, rootId);
      return cert;
    });
  }

  /** Offline flow, step 1: a new key for the cluster and a CSR for the root holder to sign. */
  intermediateCsr(cluster: string): string {
    return this.#transaction(() => {
      const name = this.#clusterName(cluster);
      const key = generateKey(this.policy.keyTypes.intermediate);
      const record = this.#state.manifest.clusters[name] ?? {};
      record.pendingKey = this.#stageKey(`clusters/${name}/pending-key`, key);
      this.#state.manifest.clusters[name] = record;
      return createCsr(key, { subject: intermediateSubject(this.trustDomain, name) });
    });
  }

  /** Offline flow, step 3: takes back the intermediate signed for the pending CSR. */
  importIntermediate(cluster: string, certPem: string, now = new Date()): X509Certificate {
    return this.#transaction(() => {
      const name = this.#clusterName(cluster);
      const record = this.#state.manifest.clusters[name];
      if (!record?.pendingKey) throw new TrustError(`cluster ${name} has no pending CSR: run "meshfed ca csr ${name}" first`);
      const [cert] = parseCertificates(certPem, 'intermediate certificate');
      if (!cert) throw new TrustError('no intermediate certificate given');
      const key = this.#loadKey(record.pendingKey);
      if (!publicKeysEqual(cert.publicKey, key)) throw new TrustError(`the certificate is not for cluster ${name}'s pending CSR (public key differs)`);
      if (!cert.ca) throw new TrustError('the certificate is not a CA certificate (basicConstraints cA is not true)');
      if (!constrainedTo(cert, this.trustDomain)) throw new TrustError(`the certificate lacks the name constraint that pins it to trust domain ${this.trustDomain}`);
      if (new Date(cert.validTo) <= now || new Date(cert.validFrom) > new Date(now.getTime() + BACKDATE_MS)) throw new TrustError('the certificate is not currently valid');
      const root = this.#state.manifest.roots.find((r) => {
        const rootCert = this.#rootCert(r.id);
        return cert.checkIssued(rootCert) && cert.verify(rootCert.publicKey);
      });
      if (!root) throw new TrustError('the certificate was not signed by any root of this trust domain');
      this.#setIntermediate(name, cert, key, root.id);
      delete record.pendingKey;
      return cert;
    });
  }

  /** Reissues every intermediate whose renewal point (policy `renewAt` of its lifetime) has passed. */
  renewDue(now = new Date()): { renewed: string[]; needsOfflineRoot: string[] } {
    const due = this.intermediates()
      .filter((status) => status.renewAfter !== undefined && new Date(status.renewAfter) <= now)
      .map((status) => status.cluster);
    if (due.length === 0) return { renewed: [], needsOfflineRoot: [] };
    if (this.isOfflineRoot()) return { renewed: [], needsOfflineRoot: due };
    return this.#transaction(() => {
      for (const cluster of due) this.issueIntermediate(cluster, { now });
      return { renewed: due, needsOfflineRoot: [] };
    });
  }

  intermediates(): IntermediateStatus[] {
    const renewAt = this.policy.lifetimes.intermediate.renewAt;
    return this.clusters.map((cluster) => {
      const record = this.#state.manifest.clusters[cluster] ?? {};
      if (!record.cert) return { cluster, pendingCsr: record.pendingKey !== undefined, delivered: false };
      const cert = this.#cert(record.cert);
      const from = new Date(cert.validFrom).getTime();
      const to = new Date(cert.validTo).getTime();
      return {
        cluster,
        serial: cert.serialNumber,
        ...(record.rootId ? { rootId: record.rootId } : {}),
        notBefore: new Date(from).toISOString(),
        notAfter: new Date(to).toISOString(),
        renewAfter: new Date(from + (to - from) * renewAt).toISOString(),
        pendingCsr: record.pendingKey !== undefined,
        delivered: this.#isDelivered(record, cert),
      };
    });
  }

  /**
   * The cluster's CA material in Istio's plug-in layout; handing it out records that the
   * cluster has this bundle and this intermediate, which rotation waits for.
   */
  deliver(cluster: string): ClusterMaterial {
    return this.#transaction(() => {
      const name = this.#clusterName(cluster);
      const record = this.#state.manifest.clusters[name];
      if (!record?.cert || !record.key || !record.rootId) throw new TrustError(`cluster ${name} has no intermediate yet: run "meshfed ca intermediate ${name}"`);
      const cert = this.#cert(record.cert);
      const material: ClusterMaterial = {
        'ca-cert.pem': cert.toString(),
        'ca-key.pem': privateKeyPem(this.#loadKey(record.key)),
        'root-cert.pem': certificatesPem(this.roots()),
        'cert-chain.pem': cert.toString() + this.#rootCert(record.rootId).toString(),
      };
      record.delivered = { bundleSequence: this.bundleSequence, intermediateSerial: cert.serialNumber, at: new Date().toISOString() };
      return material;
    });
  }

  /** The cluster's current intermediate, if it has one. */
  intermediateCertificate(cluster: string): X509Certificate | undefined {
    const record = this.#state.manifest.clusters[this.#clusterName(cluster)];
    return record?.cert ? this.#cert(record.cert) : undefined;
  }

  /** The 256-bit secret that signs the CA service's bearer tokens; created (and written) on first use only. */
  tokenSecret(): Buffer {
    if (!this.#state.manifest.tokenSecret) {
      this.#transaction(() => {
        this.#state.manifest.tokenSecret = this.#stageSecret('secrets/token-hmac', randomBytes(32).toString('base64'));
      });
    }
    const name = this.#state.manifest.tokenSecret;
    if (!name) throw new StateError('token secret missing after it was created');
    if (this.#secret?.name !== name) this.#secret = { name, value: Buffer.from(this.#loadSecret(name), 'base64') };
    return this.#secret.value;
  }

  // ---- workloads ----------------------------------------------------------------------

  /** Signs an X.509-SVID for `spiffeId` under the cluster's intermediate. */
  signWorkload(req: WorkloadSignRequest): WorkloadCertificate {
    const id = parseSpiffeId(req.spiffeId);
    if (id.trustDomain !== this.trustDomain) throw new TrustError(`SPIFFE ID ${req.spiffeId} is outside trust domain ${this.trustDomain}`);
    const csr = parseCsr(req.csr, this.policy.limits.maxCsrBytes);
    if (!(this.policy.keyTypes.workload as readonly string[]).includes(csr.keyKind)) {
      throw new CsrError(`workload key type ${csr.keyKind} is not allowed by the trust policy (allowed: ${this.policy.keyTypes.workload.join(', ')})`);
    }
    const ttl = validityMs(req.ttl, this.policy.lifetimes.workload, 'workload certificate');
    const signer = this.#leafIssuer(this.#clusterName(req.cluster));
    const now = req.now ?? new Date();
    const notAfter = new Date(Math.min(now.getTime() + ttl, signer.notAfter.getTime()));
    const leaf = signer.issuer.issue({ spki: csr.spki, spiffeId: req.spiffeId, notBefore: new Date(now.getTime() - BACKDATE_MS), notAfter }, csr.keyKind.startsWith('rsa'));
    return { spiffeId: req.spiffeId, certChain: [derToPem(leaf), ...signer.chainTail], notAfter, ignoredSans: csr.requestedSans };
  }

  // ---- bundles ------------------------------------------------------------------------

  bundlePem(): string {
    return certificatesPem(this.roots());
  }

  /** The SPIFFE trust bundle (JWKS) for this trust domain. */
  bundleJwks(refreshHintSeconds = 300): SpiffeBundle {
    return {
      keys: this.roots().map((cert) => ({ use: 'x509-svid', ...publicJwk(cert), x5c: [cert.raw.toString('base64')] })),
      spiffe_sequence: this.bundleSequence,
      spiffe_refresh_hint: refreshHintSeconds,
    };
  }

  // ---- root rotation ------------------------------------------------------------------

  /** Step 1: a new root joins the bundle beside the old one. */
  startRotation(options: { keyType?: KeyType; rootTtl?: string; importRoot?: { certPem: string; keyPem?: string }; now?: Date } = {}): RotationStatus {
    return this.#transaction(() => {
      const manifest = this.#state.manifest;
      if (manifest.rotation) throw new TrustError(`a root rotation is already under way (phase ${manifest.rotation.phase}); advance or abort it first`);
      const now = options.now ?? new Date();
      const generation = manifest.rootGeneration + 1;
      const { cert, key } = obtainRoot(options, this.trustDomain, generation, this.policy, now);
      const id = subjectKeyIdHex(cert);
      if (manifest.roots.some((r) => r.id === id)) throw new TrustError('the new root is already in the bundle');
      manifest.roots.push(this.#stageRoot(id, cert, key));
      manifest.rootGeneration = generation;
      manifest.bundleSequence += 1;
      manifest.rotation = { phase: 'bundle-added', oldRootId: manifest.activeRootId, newRootId: id, startedAt: now.toISOString() };
      return this.rotationStatus();
    });
  }

  /**
   * Moves to the next step, refusing while any cluster lacks the current one:
   * bundle-added → intermediates reissued under the new root → old root removed.
   */
  advanceRotation(now = new Date()): RotationStatus {
    return this.#transaction(() => {
      const manifest = this.#state.manifest;
      const rotation = manifest.rotation;
      if (!rotation) throw new TrustError('no root rotation is under way: run "meshfed ca rotate start"');
      const waiting = this.rotationStatus().steps.find((s) => !s.done);
      if (waiting && waiting.waitingFor.length > 0) {
        throw new TrustError(`cannot advance: ${waiting.step} is not done for ${waiting.waitingFor.join(', ')}`);
      }
      if (rotation.phase === 'bundle-added') {
        const offline = this.isOfflineRoot(rotation.newRootId);
        const notYet = this.clusters.filter((c) => this.#state.manifest.clusters[c]?.rootId !== rotation.newRootId);
        if (offline && notYet.length > 0) {
          throw new TrustError(`the new root is offline: sign intermediates under it for ${notYet.join(', ')} (ca csr / sign-intermediate / import-intermediate), then advance`);
        }
        manifest.activeRootId = rotation.newRootId;
        for (const cluster of notYet) this.issueIntermediate(cluster, { now });
        rotation.phase = 'intermediates-reissued';
      } else {
        manifest.roots = manifest.roots.filter((r) => r.id !== rotation.oldRootId);
        manifest.bundleSequence += 1;
        delete manifest.rotation;
      }
      return this.rotationStatus();
    });
  }

  /** Abandons a rotation: the old root signs again, intermediates under the new root are reissued under the old one, the new root leaves the bundle. */
  abortRotation(now = new Date()): RotationStatus {
    return this.#transaction(() => {
      const manifest = this.#state.manifest;
      const rotation = manifest.rotation;
      if (!rotation) throw new TrustError('no root rotation is under way');
      manifest.activeRootId = rotation.oldRootId;
      const underNew = this.clusters.filter((c) => manifest.clusters[c]?.rootId === rotation.newRootId);
      if (underNew.length > 0 && this.isOfflineRoot(rotation.oldRootId)) {
        throw new TrustError(`cannot abort automatically: the old root is offline and ${underNew.join(', ')} already chain to the new root`);
      }
      for (const cluster of underNew) this.issueIntermediate(cluster, { now });
      manifest.roots = manifest.roots.filter((r) => r.id !== rotation.newRootId);
      manifest.bundleSequence += 1;
      delete manifest.rotation;
      return this.rotationStatus();
    });
  }

  rotationStatus(): RotationStatus {
    const manifest = this.#state.manifest;
    const rotation = manifest.rotation;
    const base = { bundleSequence: manifest.bundleSequence };
    if (!rotation) {
      const stale = this.clusters.filter((c) => {
        const record = manifest.clusters[c];
        return record?.cert !== undefined && (record.delivered?.bundleSequence ?? 0) < manifest.bundleSequence;
      });
      return {
        phase: 'none',
        ...base,
        steps: stale.length ? [{ step: 'deliver the current bundle', done: false, waitingFor: stale }] : [],
        next: stale.length ? `deliver the current bundle to ${stale.join(', ')} (meshfed ca intermediate CLUSTER -o secret)` : 'start a rotation with "meshfed ca rotate start"',
      };
    }
    const withCert = this.clusters.filter((c) => manifest.clusters[c]?.cert !== undefined);
    const lackingBundle = withCert.filter((c) => (manifest.clusters[c]?.delivered?.bundleSequence ?? 0) < manifest.bundleSequence);
    const lackingIntermediate = withCert.filter((c) => {
      const record = manifest.clusters[c];
      return record?.rootId !== rotation.newRootId || !record.cert || !this.#isDelivered(record, this.#cert(record.cert));
    });
    const reissued = rotation.phase === 'intermediates-reissued';
    const steps = [
      { step: 'step 1: new root in every bundle', done: lackingBundle.length === 0 || reissued, waitingFor: reissued ? [] : lackingBundle },
      { step: 'step 2: intermediates reissued under the new root', done: reissued && lackingIntermediate.length === 0, waitingFor: reissued ? lackingIntermediate : [] },
      { step: 'step 3: old root removed from every bundle', done: false, waitingFor: [] },
    ];
    const next = !reissued
      ? lackingBundle.length
        ? `deliver the two-root bundle to ${lackingBundle.join(', ')}, then "meshfed ca rotate advance"`
        : '"meshfed ca rotate advance" reissues intermediates under the new root'
      : lackingIntermediate.length
        ? `deliver the new intermediates to ${lackingIntermediate.join(', ')} and let workloads renew, then "meshfed ca rotate advance"`
        : '"meshfed ca rotate advance" removes the old root';
    return { phase: rotation.phase, oldRootId: rotation.oldRootId, newRootId: rotation.newRootId, ...base, steps, next };
  }

  // ---- internals ----------------------------------------------------------------------

  #clusterName(cluster: string): string {
    const parsed = clusterNameSchema.safeParse(cluster);
    if (!parsed.success) throw new TrustError(`invalid cluster name "${cluster}": ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    return parsed.data;
  }

  #isDelivered(record: ClusterRecord, cert: X509Certificate): boolean {
    return record.delivered?.intermediateSerial === cert.serialNumber && record.delivered.bundleSequence >= this.bundleSequence;
  }

  #rootRecord(id: string) {
    const record = this.#state.manifest.roots.find((r) => r.id === id);
    if (!record) throw new StateError(`manifest names root ${id}, which is not in the bundle`);
    return record;
  }

  #rootCert(id: string): X509Certificate {
    return this.#cert(this.#rootRecord(id).cert);
  }

  #rootKey(id: string): KeyObject {
    const record = this.#rootRecord(id);
    if (!record.key) throw new TrustError('the root key is offline: issue intermediates with "meshfed ca csr", "meshfed ca sign-intermediate" and "meshfed ca import-intermediate"');
    return this.#loadKey(record.key);
  }

  #cert(name: string): X509Certificate {
    const cached = this.#certs.get(name);
    if (cached) return cached;
    const [cert] = parseCertificates(this.#state.read(name).toString(), name);
    if (!cert) throw new StateError(`${name} holds no certificate`);
    this.#certs.set(name, cert);
    return cert;
  }

  #loadKey(name: string): KeyObject {
    const cached = this.#keys.get(name);
    if (cached) return cached;
    const key = parsePrivateKeyPem(this.#loadSecret(name), name);
    this.#keys.set(name, key);
    return key;
  }

  /** Reads a secret file, decrypting it when the state dir encrypts secrets at rest. */
  #loadSecret(name: string): string {
    const stored = this.#state.read(name).toString();
    if (isEncryptedKeyPem(stored) !== (this.#state.manifest.encryption !== 'none')) {
      throw new StateError(`${name} is ${isEncryptedKeyPem(stored) ? '' : 'not '}encrypted, unlike the rest of the state dir`);
    }
    return isEncryptedKeyPem(stored) ? decryptKeyPem(stored, this.#passphrase, name.replace(/\.[0-9a-f]{8}\.pem$/, '')) : stored;
  }

  #stageKey(stem: string, key: KeyObject): string {
    const name = this.#stageSecret(stem, privateKeyPem(key));
    this.#keys.set(name, key);
    return name;
  }

  #stageSecret(stem: string, text: string): string {
    if (this.#state.manifest.encryption === 'none') return this.#state.stage(stem, text);
    if (!this.#passphrase) throw new StateError(`the CA keys are encrypted at rest: set ${PASSPHRASE_ENV} to their passphrase`);
    return this.#state.stage(stem, encryptKeyPem(text, this.#passphrase, stem));
  }

  #stageRoot(id: string, cert: X509Certificate, key: KeyObject | undefined) {
    return {
      id,
      cert: this.#state.stage(`roots/${id}/cert`, cert.toString()),
      ...(key ? { key: this.#stageKey(`roots/${id}/key`, key) } : {}),
    };
  }

  #setIntermediate(cluster: string, cert: X509Certificate, key: KeyObject, rootId: string): void {
    const record = this.#state.manifest.clusters[cluster] ?? {};
    record.cert = this.#state.stage(`clusters/${cluster}/ca-cert`, cert.toString());
    record.key = this.#stageKey(`clusters/${cluster}/ca-key`, key);
    record.rootId = rootId;
    this.#state.manifest.clusters[cluster] = record;
    this.#issuers.delete(cluster);
  }

  /** The cluster's leaf signer, cached until the intermediate's file changes (every reissue stages a new name). */
  #leafIssuer(cluster: string) {
    const record = this.#state.manifest.clusters[cluster];
    if (!record?.cert || !record.key || !record.rootId) throw new TrustError(`cluster ${cluster} has no intermediate: run "meshfed ca intermediate ${cluster}"`);
    const cached = this.#issuers.get(cluster);
    if (cached?.file === record.cert) return cached;
    const cert = this.#cert(record.cert);
    const signer = {
      file: record.cert,
      issuer: new LeafIssuer(issuerInfo(cert, this.#loadKey(record.key))),
      chainTail: [cert.toString(), this.#rootCert(record.rootId).toString()],
      notAfter: new Date(cert.validTo),
    };
    this.#issuers.set(cluster, signer);
    return signer;
  }

  /**
   * Runs a change to the CA: written as a whole when the outermost change succeeds; on any
   * error the in-memory state is reloaded from disk, so a refused operation changes nothing.
   */
  #transaction<T>(change: () => T): T {
    this.#depth++;
    try {
      const result = change();
      if (this.#depth === 1) this.#commit();
      return result;
    } catch (error) {
      if (this.#depth === 1 && this.#state.exists()) this.#reopen();
      throw error;
    } finally {
      this.#depth--;
    }
  }

  #reopen(): void {
    this.#state = this.#state.reopen(parseTrustManifest);
    this.#issuers.clear();
  }

  /** Picks up changes another meshfed process committed to the state dir; returns whether there were any. */
  reload(): boolean {
    if (!this.#state.changedOnDisk()) return false;
    this.#reopen();
    this.#checkConsistency();
    return true;
  }

  #commit(): void {
    const manifest = manifestSchema.parse(this.#state.manifest);
    const files = [
      ...manifest.roots.flatMap((r) => [r.cert, ...(r.key ? [r.key] : [])]),
      ...Object.values(manifest.clusters).flatMap((c) => [c.cert, c.key, c.pendingKey].filter((f): f is string => f !== undefined)),
      ...(manifest.tokenSecret ? [manifest.tokenSecret] : []),
    ];
    this.#state.commit(files);
  }

  /** Keys encrypted at rest: a missing or wrong passphrase is reported when the CA is opened, not at its first signature. */
  #checkPassphrase(): void {
    const manifest = this.#state.manifest;
    if (manifest.encryption === 'none') return;
    if (!this.#passphrase) throw new StateError(`the CA keys are encrypted at rest: set ${PASSPHRASE_ENV} to their passphrase`);
    const keys = [...manifest.roots.map((r) => r.key), ...Object.values(manifest.clusters).flatMap((c) => [c.key, c.pendingKey])];
    const key = keys.find((name): name is string => name !== undefined);
    if (key !== undefined) this.#loadKey(key);
    else if (manifest.tokenSecret) this.#loadSecret(manifest.tokenSecret);
  }

  #checkConsistency(): void {
    const manifest = this.#state.manifest;
    this.#rootRecord(manifest.activeRootId);
    for (const [cluster, record] of Object.entries(manifest.clusters)) {
      if (!record.cert || !record.rootId) continue;
      const cert = this.#cert(record.cert);
      const root = this.#state.manifest.roots.find((r) => r.id === record.rootId);
      if (!root || !cert.verify(this.#rootCert(root.id).publicKey)) {
        throw new StateError(`cluster ${cluster}'s intermediate does not chain to a root in the bundle`);
      }
    }
  }
}

export interface SpiffeBundle {
  keys: ({ use: 'x509-svid'; x5c: string[] } & Record<string, unknown>)[];
  spiffe_sequence: number;
  spiffe_refresh_hint: number;
}

function publicJwk(cert: X509Certificate): Record<string, unknown> {
  const jwk = cert.publicKey.export({ format: 'jwk' });
  return Object.fromEntries(Object.entries(jwk).filter(([k]) => ['kty', 'crv', 'x', 'y', 'n', 'e'].includes(k)));
}

/** The imported root, or a new self-signed one. */
function obtainRoot(
  options: { keyType?: KeyType; rootTtl?: string; importRoot?: { certPem: string; keyPem?: string } },
  trustDomain: string,
  generation: number,
  policy: TrustPolicy,
  now: Date,
): { cert: X509Certificate; key?: KeyObject } {
  if (options.importRoot) return validateImportedRoot(options.importRoot, now);
  const key = generateKey(options.keyType ?? policy.keyTypes.root);
  const ttl = validityMs(options.rootTtl, policy.lifetimes.root, 'root');
  const cert = new X509Certificate(
    issueCaCertificate({
      subject: rootSubject(trustDomain, generation),
      subjectKey: key,
      selfKey: key,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(now.getTime() + ttl),
      pathLength: 1,
      trustDomain,
    }),
  );
  return { cert, key };
}

function validateImportedRoot(input: { certPem: string; keyPem?: string }, now: Date): { cert: X509Certificate; key?: KeyObject } {
  const certs = parseCertificates(input.certPem, 'root certificate');
  if (certs.length !== 1 || !certs[0]) throw new TrustError(`root certificate file must hold exactly one certificate (found ${certs.length})`);
  const cert = certs[0];
  if (!cert.ca) throw new TrustError('root certificate is not a CA (basicConstraints cA is not true)');
  if (!cert.checkIssued(cert) || !cert.verify(cert.publicKey)) throw new TrustError('root certificate is not self-signed');
  if (new Date(cert.validTo) <= now) throw new TrustError(`root certificate expired on ${new Date(cert.validTo).toISOString()}`);
  keyKind(cert.publicKey);
  if (input.keyPem === undefined) return { cert };
  const key = parsePrivateKeyPem(input.keyPem, 'root key');
  if (!cert.checkPrivateKey(key)) throw new TrustError('root key does not belong to the root certificate');
  return { cert, key };
}

export interface OfflineSignRequest {
  rootCertPem: string;
  rootKeyPem: string;
  csrPem: string;
  cluster: string;
  trustDomain: string;
  ttl?: string;
  policy?: TrustPolicy;
  now?: Date;
}

/**
 * Offline flow, step 2, run where the root key is: signs a cluster's intermediate CSR.
 * Only the key comes from the CSR; the subject and constraints come from the arguments.
 */
export function signIntermediateCsr(req: OfflineSignRequest): string {
  const trustDomain = trustDomainSchema.parse(req.trustDomain);
  const cluster = clusterNameSchema.parse(req.cluster);
  const policy = req.policy ?? DEFAULT_TRUST_POLICY;
  const now = req.now ?? new Date();
  const { cert: root, key } = validateImportedRoot({ certPem: req.rootCertPem, keyPem: req.rootKeyPem }, now);
  if (!key) throw new TrustError('the root key is required to sign an intermediate');
  const csr = parseCsr(req.csrPem, policy.limits.maxCsrBytes);
  const ttl = validityMs(req.ttl, policy.lifetimes.intermediate, 'intermediate');
  return derToPem(
    issueCaCertificate({
      subject: intermediateSubject(trustDomain, cluster),
      subjectKey: csr.publicKey,
      issuer: issuerInfo(root, key),
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter: new Date(Math.min(now.getTime() + ttl, new Date(root.validTo).getTime())),
      pathLength: 0,
      trustDomain,
    }),
  );
}
