/**
 * The SVIDs of the embedded federation: issued through the workload's cluster's intermediate (as the CA service signs a
 * pod's CSR), renewed at half their lifetime, and written where a proxyless gRPC bootstrap's file_watcher provider reads
 * them: DIR/CLUSTER/NAMESPACE/SERVICE_ACCOUNT/ cert.pem (leaf, then intermediate), key.pem, ca.pem (the trust bundle),
 * each 0600 and written atomically. A SimIdentity is also a grpc-js certificate provider, so a gRPC server built on it
 * takes a renewed certificate without a restart.
 */
import { X509Certificate } from 'node:crypto';
import { join } from 'node:path';
import type { experimental } from '@grpc/grpc-js';
import { writeFileAtomic } from '../store/atomic.js';
import type { TrustAuthority } from '../trust/authority.js';
import { workloadIdentity } from './trust-demo.js';

export interface TlsMaterial {
  /** PKCS#8 PEM */
  key: string;
  /** leaf, then the cluster's intermediate */
  cert: string;
  /** the trust bundle: every root of the trust domain */
  ca: string;
}

export interface IdentityFiles {
  certificate: string;
  privateKey: string;
  ca: string;
}

export class SimIdentity implements experimental.CertificateProvider {
  readonly spiffeId: string;
  /** where the files are, when written */
  readonly files: IdentityFiles | undefined;
  #tls: TlsMaterial;
  #notAfter = 0;
  #renewAt = 0;
  readonly #caListeners = new Set<experimental.CaCertificateUpdateListener>();
  readonly #identityListeners = new Set<experimental.IdentityCertificateUpdateListener>();
  readonly #renewedListeners = new Set<(tls: TlsMaterial) => void>();

  constructor(
    private readonly authority: TrustAuthority,
    readonly cluster: string,
    readonly namespace: string,
    readonly serviceAccount: string,
    dir?: string,
  ) {
    const base = dir === undefined ? undefined : join(dir, cluster, namespace, serviceAccount);
    this.files = base === undefined ? undefined : { certificate: join(base, 'cert.pem'), privateKey: join(base, 'key.pem'), ca: join(base, 'ca.pem') };
    const issued = this.#issue();
    this.spiffeId = issued.spiffeId;
    this.#tls = issued.tls;
  }

  get tls(): TlsMaterial {
    return this.#tls;
  }

  get notAfter(): Date {
    return new Date(this.#notAfter);
  }

  /** Past half its lifetime: time to renew. */
  renewDue(now = Date.now()): boolean {
    return now >= this.#renewAt;
  }

  /** A new key and certificate (and the current trust bundle), written and handed to every server using it. */
  renew(): void {
    this.#tls = this.#issue().tls;
    for (const listener of this.#identityListeners) listener(this.#identityUpdate());
    for (const listener of this.#caListeners) listener(this.#caUpdate());
    for (const listener of this.#renewedListeners) listener(this.#tls);
  }

  /** Called with the new material after each renewal; returns the unsubscribe function. */
  onRenewed(listener: (tls: TlsMaterial) => void): () => void {
    this.#renewedListeners.add(listener);
    return () => this.#renewedListeners.delete(listener);
  }

  // grpc-js reads the first update after subscribing, so it comes on the next tick, as FileWatcherCertificateProvider's does
  addCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#caListeners.add(listener);
    process.nextTick(() => {
      if (this.#caListeners.has(listener)) listener(this.#caUpdate());
    });
  }

  removeCaCertificateListener(listener: experimental.CaCertificateUpdateListener): void {
    this.#caListeners.delete(listener);
  }

  addIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.add(listener);
    process.nextTick(() => {
      if (this.#identityListeners.has(listener)) listener(this.#identityUpdate());
    });
  }

  removeIdentityCertificateListener(listener: experimental.IdentityCertificateUpdateListener): void {
    this.#identityListeners.delete(listener);
  }

  #caUpdate(): experimental.CaCertificateUpdate {
    return { caCertificate: Buffer.from(this.#tls.ca) };
  }

  #identityUpdate(): experimental.IdentityCertificateUpdate {
    return { certificate: Buffer.from(this.#tls.cert), privateKey: Buffer.from(this.#tls.key) };
  }

  #issue(): ReturnType<typeof workloadIdentity> {
    const issued = workloadIdentity(this.authority, this.cluster, this.serviceAccount, this.namespace);
    const now = Date.now();
    this.#notAfter = new Date(new X509Certificate(issued.tls.cert).validTo).getTime();
    this.#renewAt = now + (this.#notAfter - now) / 2;
    if (this.files) {
      writeFileAtomic(this.files.privateKey, issued.tls.key);
      writeFileAtomic(this.files.certificate, issued.tls.cert);
      writeFileAtomic(this.files.ca, issued.tls.ca);
    }
    return issued;
  }
}

/** An identity whose files are written. */
export type StoredIdentity = SimIdentity & { readonly files: IdentityFiles };

/** The identities of the embedded federation, one per cluster, namespace and service account, renewed in the background. */
export class SimIdentities {
  readonly #identities = new Map<string, SimIdentity>();
  #timer: NodeJS.Timeout | undefined;

  constructor(
    private readonly authority: TrustAuthority,
    /** where the files of stored identities are written */
    readonly dir: string,
  ) {}

  /** The identity, issued on first use and written under `dir`. */
  get(cluster: string, namespace: string, serviceAccount: string): StoredIdentity {
    return this.#get(cluster, namespace, serviceAccount, this.dir) as StoredIdentity;
  }

  /** The identity, issued on first use and kept in memory only. */
  inMemory(cluster: string, namespace: string, serviceAccount: string): SimIdentity {
    return this.#get(cluster, namespace, serviceAccount, undefined);
  }

  #get(cluster: string, namespace: string, serviceAccount: string, dir: string | undefined): SimIdentity {
    const key = `${cluster}/${namespace}/${serviceAccount}/${dir === undefined ? 'memory' : 'stored'}`;
    let identity = this.#identities.get(key);
    if (!identity) {
      identity = new SimIdentity(this.authority, cluster, namespace, serviceAccount, dir);
      this.#identities.set(key, identity);
    }
    return identity;
  }

  /** Renews every identity past half its lifetime; returns their SPIFFE IDs and clusters. */
  renewDue(now = Date.now()): string[] {
    const renewed: string[] = [];
    for (const identity of this.#identities.values()) {
      if (!identity.renewDue(now)) continue;
      identity.renew();
      renewed.push(`${identity.spiffeId} (${identity.cluster})`);
    }
    return renewed;
  }

  /** Checks every `everyMs` for identities due; `onError` hears of a renewal that failed (say, an intermediate gone). */
  startRenewal(everyMs: number, onRenewed: (renewed: string[]) => void, onError: (error: Error) => void): void {
    this.#timer = setInterval(() => {
      try {
        const renewed = this.renewDue();
        if (renewed.length) onRenewed(renewed);
      } catch (error) {
        onError(error as Error);
      }
    }, everyMs);
    this.#timer.unref();
  }

  close(): void {
    clearInterval(this.#timer);
  }
}
