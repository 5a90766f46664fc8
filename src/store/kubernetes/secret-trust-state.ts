/**
 * The CA's state in one Kubernetes Secret instead of a state dir: the same manifest (each file's SHA-256 and the
 * CA's body) under the key `manifest.json`, and every file under its name with "/" written as "_" (Secret keys
 * allow no "/"; a name with "_" is refused when staged, so the mapping is one to one). A commit is one write of
 * the whole Secret, guarded by the resourceVersion the state was read at: a replica that read an older state (a
 * deposed leader) gets a 409 and nothing of its change is applied.
 *
 * TrustAuthority commits synchronously; Kubernetes writes are asynchronous. So a commit here only records the
 * new Secret contents as pending in the SecretTrustStore, and the caller writes them with `flush()` (see
 * secret-trust.ts, which never lets the authority act without flushing and reloading after).
 */
import { createHash, randomBytes } from 'node:crypto';
import { ApiException, V1ObjectMeta, V1Secret, type CoreV1Api } from '@kubernetes/client-node';
import { safeRelative, StateError } from '../../trust/state-dir.js';
import type { TrustState } from '../../trust/trust-state.js';

const MANIFEST_KEY = 'manifest.json';

const sha256 = (data: Buffer): string => createHash('sha256').update(data).digest('hex');
const secretKey = (name: string): string => name.replaceAll('/', '_');

export interface SecretSnapshot {
  resourceVersion: string;
  /** Secret key → bytes */
  data: Map<string, Buffer>;
}

interface PendingWrite {
  /** the resourceVersion the change was made on; undefined: the Secret is to be created */
  baseResourceVersion: string | undefined;
  data: Map<string, Buffer>;
}

/** One Secret holding a CA: what the API server last showed, and the write a commit left pending. */
export class SecretTrustStore {
  #latest: SecretSnapshot | undefined;
  #pending: PendingWrite | undefined;

  constructor(
    readonly core: CoreV1Api,
    readonly namespace: string,
    readonly name: string,
  ) {}

  /** the Secret as last read or written; undefined while it does not exist */
  get latest(): SecretSnapshot | undefined {
    return this.#latest;
  }

  hasPending(): boolean {
    return this.#pending !== undefined;
  }

  /** Reads the Secret; returns whether its resourceVersion moved since the last read or write. */
  async load(): Promise<boolean> {
    let secret: V1Secret;
    try {
      secret = await this.core.readNamespacedSecret({ name: this.name, namespace: this.namespace });
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) {
        const changed = this.#latest !== undefined;
        this.#latest = undefined;
        return changed;
      }
      throw error;
    }
    const resourceVersion = secret.metadata?.resourceVersion ?? '';
    if (resourceVersion === this.#latest?.resourceVersion) return false;
    this.#latest = { resourceVersion, data: new Map(Object.entries(secret.data ?? {}).map(([k, v]) => [k, Buffer.from(v, 'base64')])) };
    return true;
  }

  /** Records a commit's result, to be written by flush(). */
  setPending(write: PendingWrite): void {
    this.#pending = write;
  }

  /** Drops a pending write (its change is abandoned). */
  discardPending(): void {
    this.#pending = undefined;
  }

  /**
   * Writes the pending contents: a replace carrying the resourceVersion they were made on (409 when anyone wrote
   * the Secret since), or a create (409 when it exists by now). The pending write is gone either way.
   */
  async flush(): Promise<void> {
    const pending = this.#pending;
    this.#pending = undefined;
    if (!pending) return;
    const metadata = Object.assign(new V1ObjectMeta(), {
      name: this.name,
      namespace: this.namespace,
      labels: { 'app.kubernetes.io/managed-by': 'meshfed', 'app.kubernetes.io/component': 'ca' },
      ...(pending.baseResourceVersion !== undefined ? { resourceVersion: pending.baseResourceVersion } : {}),
    });
    const body = Object.assign(new V1Secret(), {
      apiVersion: 'v1',
      kind: 'Secret',
      type: 'Opaque',
      metadata,
      data: Object.fromEntries([...pending.data].map(([k, v]) => [k, v.toString('base64')])),
    });
    const written =
      pending.baseResourceVersion === undefined
        ? await this.core.createNamespacedSecret({ namespace: this.namespace, body })
        : await this.core.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body });
    this.#latest = { resourceVersion: written.metadata?.resourceVersion ?? '', data: pending.data };
  }

  /** A view of the Secret as last read or written. */
  open<M extends object>(parse: (body: unknown) => M): SecretTrustState<M> {
    const latest = this.#latest;
    if (!latest) throw new StateError(`Secret ${this.namespace}/${this.name} holds no meshfed CA yet`);
    return SecretTrustState.fromSnapshot(this, latest, parse);
  }

  /** A new, empty CA state; its first commit creates the Secret. */
  create<M extends object>(manifest: M): SecretTrustState<M> {
    return new SecretTrustState(this, undefined, manifest, {}, new Map());
  }
}

export class SecretTrustState<M extends object> implements TrustState<M> {
  readonly #store: SecretTrustStore;
  #baseResourceVersion: string | undefined;
  #files: Record<string, string>;
  #data: Map<string, Buffer>;
  #pending = new Map<string, Buffer>();
  /** committed here but not confirmed by a flush and a reopen */
  #unconfirmed = false;

  constructor(store: SecretTrustStore, baseResourceVersion: string | undefined, public manifest: M, files: Record<string, string>, data: Map<string, Buffer>) {
    this.#store = store;
    this.#baseResourceVersion = baseResourceVersion;
    this.#files = files;
    this.#data = data;
  }

  static fromSnapshot<M extends object>(store: SecretTrustStore, snapshot: SecretSnapshot, parse: (body: unknown) => M): SecretTrustState<M> {
    const where = `Secret ${store.namespace}/${store.name}`;
    const raw = snapshot.data.get(MANIFEST_KEY);
    if (!raw) throw new StateError(`${where} has no ${MANIFEST_KEY}; it is not a meshfed CA`);
    let document: { files?: unknown; body?: unknown };
    try {
      document = JSON.parse(raw.toString('utf8')) as { files?: unknown; body?: unknown };
    } catch (error) {
      throw new StateError(`${where}: ${MANIFEST_KEY} is not valid JSON (${(error as Error).message})`);
    }
    const files = document.files;
    if (typeof files !== 'object' || files === null || Array.isArray(files)) throw new StateError(`${where}: ${MANIFEST_KEY} has no file list`);
    const checked: Record<string, string> = {};
    for (const [name, digest] of Object.entries(files as Record<string, unknown>)) {
      const data = snapshot.data.get(secretKey(name));
      if (typeof digest !== 'string' || !data) throw new StateError(`${where} is incomplete: ${name} is missing`);
      if (sha256(data) !== digest) throw new StateError(`${where} was modified outside meshfed: ${name} does not match its recorded SHA-256`);
      checked[name] = digest;
    }
    let manifest: M;
    try {
      manifest = parse(document.body);
    } catch (error) {
      throw new StateError(`${where} does not hold a valid meshfed CA manifest: ${(error as Error).message}`);
    }
    return new SecretTrustState(store, snapshot.resourceVersion, manifest, checked, snapshot.data);
  }

  read(name: string): Buffer {
    const pending = this.#pending.get(name);
    if (pending) return pending;
    const digest = this.#files[name];
    const data = this.#data.get(secretKey(name));
    if (digest === undefined || !data) throw new StateError(`the CA Secret has no file ${name}`);
    if (sha256(data) !== digest) throw new StateError(`the CA Secret was modified outside meshfed: ${name} does not match its recorded SHA-256`);
    return data;
  }

  stage(stem: string, data: Buffer | string): string {
    const name = `${stem}.${randomBytes(4).toString('hex')}.pem`;
    // "_" stands for "/" in the Secret's keys, so a name must not hold one
    if (!safeRelative(name) || name.includes('_')) throw new StateError(`invalid state file name ${name}`);
    this.#pending.set(name, Buffer.isBuffer(data) ? data : Buffer.from(data));
    return name;
  }

  commit(keep: Iterable<string>): void {
    const files: Record<string, string> = {};
    const data = new Map<string, Buffer>();
    for (const name of new Set(keep)) {
      const content = this.#pending.get(name) ?? this.#data.get(secretKey(name));
      if (!content) throw new StateError(`manifest refers to ${name}, which was never written`);
      files[name] = sha256(content);
      data.set(secretKey(name), content);
    }
    data.set(MANIFEST_KEY, Buffer.from(JSON.stringify({ files, body: this.manifest }, null, 2) + '\n'));
    this.#store.setPending({ baseResourceVersion: this.#baseResourceVersion, data });
    this.#files = files;
    this.#data = data;
    this.#pending.clear();
    this.#unconfirmed = true;
  }

  changedOnDisk(): boolean {
    return this.#unconfirmed || this.#store.latest?.resourceVersion !== this.#baseResourceVersion;
  }

  exists(): boolean {
    return this.#store.latest !== undefined;
  }

  reopen(parse: (body: unknown) => M): SecretTrustState<M> {
    return this.#store.open(parse);
  }
}
