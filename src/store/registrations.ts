import { createHash } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { clusterSchema, type Cluster } from '../model/cluster.js';
import { writeFileAtomic } from './atomic.js';

export const REGISTRATIONS_FILE = 'clusters.json';
const API_VERSION = 'meshfed.io/v1alpha1';
const KIND = 'ClusterRegistrations';
/** kubeconfigs are at most 256 KiB each; this bounds the file a manager will read back */
const MAX_FILE_BYTES = 256 * 1024 * 1024;

const registrationSchema = z.strictObject({
  cluster: clusterSchema,
  registeredAt: z.iso.datetime(),
});

const fileSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  registrations: z.array(registrationSchema),
});

/** A cluster registered through the API or the CLI, as persisted. Holds credentials (the kubeconfig): never log or return it. */
export interface Registration {
  readonly cluster: Cluster;
  readonly registeredAt: string;
}

/** The registrations file is damaged, or cannot be read or written. */
export class RegistrationStoreError extends Error {}

function describePath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '') || '(top level)';
}

const digest = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * The registered clusters, persisted in `<stateDir>/clusters.json`: mode 0600 (it holds kubeconfigs),
 * replaced atomically on every change, validated on every read. A damaged file is an error that says
 * so, never an empty federation. The CA's own directory (`<stateDir>/ca/`) is never touched.
 *
 * Changes are synchronous, so within one process they cannot interleave. A change made by another
 * process since this one last read the file is picked up before the next change is applied.
 */
export class RegistrationStore {
  #registrations = new Map<string, Registration>();
  #digest: string | undefined;

  private constructor(readonly path: string) {}

  /** Opens (and validates) the registrations of a state dir; a missing file means none yet. */
  static open(stateDir: string): RegistrationStore {
    const store = new RegistrationStore(join(stateDir, REGISTRATIONS_FILE));
    store.#reload();
    return store;
  }

  list(): Registration[] {
    return [...this.#registrations.values()].sort((a, b) => a.cluster.name.localeCompare(b.cluster.name));
  }

  get(name: string): Registration | undefined {
    return this.#registrations.get(name);
  }

  has(name: string): boolean {
    return this.#registrations.has(name);
  }

  /** Persists a new registration; throws if the name is taken. */
  add(cluster: Cluster, registeredAt = new Date()): Registration {
    this.#reloadIfChanged();
    if (this.#registrations.has(cluster.name)) throw new RegistrationStoreError(`cluster ${cluster.name} is already registered`);
    const registration: Registration = Object.freeze({ cluster: clusterSchema.parse(cluster), registeredAt: registeredAt.toISOString() });
    const next = new Map(this.#registrations).set(cluster.name, registration);
    this.#write(next);
    this.#registrations = next;
    return registration;
  }

  /** Removes a registration; false if there was none. */
  remove(name: string): boolean {
    this.#reloadIfChanged();
    if (!this.#registrations.has(name)) return false;
    const next = new Map(this.#registrations);
    next.delete(name);
    this.#write(next);
    this.#registrations = next;
    return true;
  }

  #write(registrations: Map<string, Registration>): void {
    const body = {
      apiVersion: API_VERSION,
      kind: KIND,
      registrations: [...registrations.values()].sort((a, b) => a.cluster.name.localeCompare(b.cluster.name)),
    };
    const data = Buffer.from(JSON.stringify(body, null, 2) + '\n');
    try {
      writeFileAtomic(this.path, data, 0o600);
    } catch (error) {
      throw new RegistrationStoreError(`could not write ${this.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    this.#digest = digest(data);
  }

  #reloadIfChanged(): void {
    if (!existsSync(this.path)) {
      if (this.#digest !== undefined) this.#reload();
      return;
    }
    if (digest(readFileSync(this.path)) !== this.#digest) this.#reload();
  }

  #reload(): void {
    if (!existsSync(this.path)) {
      this.#registrations = new Map();
      this.#digest = undefined;
      return;
    }
    const stat = statSync(this.path);
    if (!stat.isFile()) throw new RegistrationStoreError(`${this.path} is not a regular file`);
    if (stat.size > MAX_FILE_BYTES) throw new RegistrationStoreError(`${this.path} is ${stat.size} bytes, more than the ${MAX_FILE_BYTES} a registrations file can hold: it is damaged`);
    // it holds credentials: nobody but the owner may read it
    if ((stat.mode & 0o077) !== 0) chmodSync(this.path, 0o600);
    const data = readFileSync(this.path);
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      // JSON.parse's message quotes the file, and the file holds credentials: say where, not what
      throw new RegistrationStoreError(`${this.path} is damaged: not valid JSON. It holds the registered clusters; restore it from a backup, or move it away to start with no registrations.`);
    }
    const parsed = fileSchema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 5).map((issue) => `${describePath(issue.path)}: ${issue.message}`);
      throw new RegistrationStoreError(`${this.path} is damaged: ${issues.join('; ')}. It holds the registered clusters; fix or restore it, or move it away to start with no registrations.`);
    }
    const registrations = new Map<string, Registration>();
    for (const [index, registration] of parsed.data.registrations.entries()) {
      if (registrations.has(registration.cluster.name)) {
        throw new RegistrationStoreError(`${this.path} is damaged: registrations[${index}]: cluster ${registration.cluster.name} is registered twice`);
      }
      registrations.set(registration.cluster.name, Object.freeze(registration));
    }
    this.#registrations = registrations;
    this.#digest = digest(data);
  }
}

/** Makes sure the state dir exists, owner-only. */
export function ensureStateDir(stateDir: string): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
}
