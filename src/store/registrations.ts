import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { clusterSchema, type Cluster } from '../model/cluster.js';
import { JsonDocument, StateFileError } from './json-document.js';

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
export class RegistrationStoreError extends StateFileError {}

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
  readonly #file: JsonDocument<z.infer<typeof fileSchema>>;

  private constructor(readonly path: string) {
    this.#file = new JsonDocument({ path, schema: fileSchema, holds: 'the registered clusters', empty: 'no registrations', maxBytes: MAX_FILE_BYTES, errorClass: RegistrationStoreError });
  }

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
    if (this.#file.changed()) this.#reload();
    if (this.#registrations.has(cluster.name)) throw new RegistrationStoreError(`cluster ${cluster.name} is already registered`);
    const registration: Registration = Object.freeze({ cluster: clusterSchema.parse(cluster), registeredAt: registeredAt.toISOString() });
    const next = new Map(this.#registrations).set(cluster.name, registration);
    this.#write(next);
    this.#registrations = next;
    return registration;
  }

  /** Removes a registration; false if there was none. */
  remove(name: string): boolean {
    if (this.#file.changed()) this.#reload();
    if (!this.#registrations.has(name)) return false;
    const next = new Map(this.#registrations);
    next.delete(name);
    this.#write(next);
    this.#registrations = next;
    return true;
  }

  #write(registrations: Map<string, Registration>): void {
    this.#file.write({
      apiVersion: API_VERSION,
      kind: KIND,
      registrations: [...registrations.values()].sort((a, b) => a.cluster.name.localeCompare(b.cluster.name)),
    });
  }

  #reload(): void {
    const registrations = new Map<string, Registration>();
    for (const [index, registration] of (this.#file.read()?.registrations ?? []).entries()) {
      if (registrations.has(registration.cluster.name)) {
        throw new RegistrationStoreError(`${this.path} is damaged: registrations[${index}]: cluster ${registration.cluster.name} is registered twice`);
      }
      registrations.set(registration.cluster.name, Object.freeze(registration));
    }
    this.#registrations = registrations;
  }
}

/** Makes sure the state dir exists, owner-only. */
export function ensureStateDir(stateDir: string): void {
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
}
