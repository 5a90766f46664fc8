import { join } from 'node:path';
import { z } from 'zod';
import { dnsLabelSchema } from '../model/names.js';
import { virtualDestinationConflict, virtualDestinationSchema, type NamedVirtualDestination, type VirtualDestination } from '../model/virtual-destination.js';
import { JsonDocument, StateFileError } from './json-document.js';

export const VIRTUAL_DESTINATIONS_FILE = 'virtual-destinations.json';
const API_VERSION = 'meshfed.io/v1alpha1';
const KIND = 'VirtualDestinations';
const MAX_FILE_BYTES = 64 * 1024 * 1024;

const itemSchema = z.strictObject({
  name: dnsLabelSchema,
  spec: virtualDestinationSchema,
  createdAt: z.iso.datetime(),
  updatedAt: z.iso.datetime(),
});

const fileSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal(KIND),
  items: z.array(itemSchema),
});

/** The virtual destinations file is damaged, or cannot be read or written. */
export class VirtualDestinationStoreError extends StateFileError {}

/** A change that cannot be made: the name belongs to the federation file, or the name or hostname is taken. */
export class VirtualDestinationConflictError extends Error {
  constructor(
    message: string,
    readonly field: 'metadata.name' | 'spec.hostname',
  ) {
    super(message);
  }
}

/** A virtual destination as the manager knows it: from the federation file (read-only here) or applied through the API. */
export interface KnownVirtualDestination extends NamedVirtualDestination {
  readonly source: 'file' | 'api';
  /** when it was first applied through the API (API ones only) */
  readonly createdAt?: string;
  readonly updatedAt?: string;
}

export type ApplyOutcome = 'created' | 'updated' | 'unchanged';

type AppliedItem = z.infer<typeof itemSchema>;

const known = (item: AppliedItem): KnownVirtualDestination => ({ ...item, source: 'api' });

const sameSpec = (a: VirtualDestination, b: VirtualDestination): boolean => JSON.stringify(a) === JSON.stringify(b);

/**
 * The virtual destinations of the federation: the federation file's, which only the file changes, and those applied
 * through the API, persisted in `<stateDir>/virtual-destinations.json` (0600, atomic, validated on every read; a
 * damaged file is an error, never an empty set). Names and hostnames are unique across both. Listeners hear of every
 * change, after it is on disk.
 */
export class VirtualDestinations {
  readonly #fromFile: readonly KnownVirtualDestination[];
  readonly #file: JsonDocument<z.infer<typeof fileSchema>>;
  readonly #listeners = new Set<() => void>();
  #applied = new Map<string, AppliedItem>();

  private constructor(stateDir: string, fromFile: readonly NamedVirtualDestination[]) {
    this.#fromFile = fromFile.map((vd) => ({ ...vd, source: 'file' }));
    this.#file = new JsonDocument({
      path: join(stateDir, VIRTUAL_DESTINATIONS_FILE),
      schema: fileSchema,
      holds: 'the virtual destinations applied through the API',
      empty: 'none',
      maxBytes: MAX_FILE_BYTES,
      errorClass: VirtualDestinationStoreError,
    });
  }

  /**
   * The federation file's virtual destinations and the state dir's. An applied one whose name or hostname the file
   * now takes is left out for this run (see `shadowed`), as a registered cluster the file defines is.
   */
  static open(stateDir: string, fromFile: readonly NamedVirtualDestination[] = []): VirtualDestinations {
    const set = new VirtualDestinations(stateDir, fromFile);
    set.#reload();
    return set;
  }

  get path(): string {
    return this.#file.path;
  }

  /** Every virtual destination served: the file's, then the applied ones, each in name order. */
  list(): KnownVirtualDestination[] {
    return [...sortByName([...this.#fromFile]), ...sortByName(this.#served())];
  }

  get(name: string): KnownVirtualDestination | undefined {
    return this.#fromFile.find((vd) => vd.name === name) ?? this.#served().find((vd) => vd.name === name);
  }

  /** Applied ones that the federation file overrides in this run (same name or hostname). */
  shadowed(): KnownVirtualDestination[] {
    return sortByName([...this.#applied.values()].filter((vd) => this.#fileConflict(vd) !== undefined).map(known));
  }

  /** Creates or replaces an applied virtual destination. Throws VirtualDestinationConflictError when it cannot. */
  apply(vd: NamedVirtualDestination, at = new Date()): ApplyOutcome {
    if (this.#file.changed()) this.#reload();
    const conflict = this.#fileConflict(vd);
    if (conflict) throw new VirtualDestinationConflictError(conflict.message, conflict.field);
    const clash = virtualDestinationConflict(
      [...this.#applied.values()].filter((other) => other.name !== vd.name),
      vd,
    );
    if (clash) throw new VirtualDestinationConflictError(clash.message, clash.field);
    const previous = this.#applied.get(vd.name);
    if (previous && sameSpec(previous.spec, vd.spec)) return 'unchanged';
    const now = at.toISOString();
    const next = new Map(this.#applied).set(vd.name, { name: vd.name, spec: vd.spec, createdAt: previous?.createdAt ?? now, updatedAt: now });
    this.#write(next);
    this.#applied = next;
    this.#notify();
    return previous ? 'updated' : 'created';
  }

  /** Deletes an applied virtual destination: false when there is none of that name. The file's cannot be deleted here. */
  delete(name: string): boolean {
    if (this.#file.changed()) this.#reload();
    if (this.#fromFile.some((vd) => vd.name === name)) throw new VirtualDestinationConflictError(`virtual destination ${name} is defined in the federation file; remove it there`, 'metadata.name');
    if (!this.#applied.has(name)) return false;
    const next = new Map(this.#applied);
    next.delete(name);
    this.#write(next);
    this.#applied = next;
    this.#notify();
    return true;
  }

  /** Calls `listener` after every change; returns the unsubscribe function. */
  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => this.#listeners.delete(listener);
  }

  #served(): KnownVirtualDestination[] {
    return [...this.#applied.values()].filter((vd) => this.#fileConflict(vd) === undefined).map(known);
  }

  /** Why the federation file keeps `vd` out, or undefined. */
  #fileConflict(vd: NamedVirtualDestination): { field: 'metadata.name' | 'spec.hostname'; message: string } | undefined {
    if (this.#fromFile.some((other) => other.name === vd.name)) return { field: 'metadata.name', message: `virtual destination ${vd.name} is defined in the federation file; change it there` };
    const byHost = this.#fromFile.find((other) => other.spec.hostname === vd.spec.hostname);
    return byHost ? { field: 'spec.hostname', message: `hostname ${vd.spec.hostname} is the hostname of virtual destination ${byHost.name} of the federation file` } : undefined;
  }

  #notify(): void {
    for (const listener of [...this.#listeners]) listener();
  }

  #write(applied: Map<string, AppliedItem>): void {
    this.#file.write({ apiVersion: API_VERSION, kind: KIND, items: sortByName([...applied.values()]) });
  }

  #reload(): void {
    const applied = new Map<string, AppliedItem>();
    for (const [index, item] of (this.#file.read()?.items ?? []).entries()) {
      const conflict = virtualDestinationConflict(applied.values(), item);
      if (conflict) throw new VirtualDestinationStoreError(`${this.path} is damaged: items[${index}]: ${conflict.message}`);
      applied.set(item.name, item);
    }
    this.#applied = applied;
  }
}

function sortByName<T extends { name: string }>(items: T[]): T[] {
  return items.sort((a, b) => (a.name < b.name ? -1 : a.name > b.name ? 1 : 0));
}
