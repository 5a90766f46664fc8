import { createHash } from 'node:crypto';
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import type { z } from 'zod';
import { writeFileAtomic } from './atomic.js';

/** A state-dir file is damaged, or cannot be read or written. */
export class StateFileError extends Error {}

export interface JsonDocumentOptions<T> {
  path: string;
  schema: z.ZodType<T>;
  /** what the file holds, for messages: "the registered clusters" */
  holds: string;
  /** what starting over means, for messages: "no registrations" */
  empty: string;
  /** a larger file is damaged */
  maxBytes: number;
  /** the errors thrown (default StateFileError) */
  errorClass?: new (message: string) => StateFileError;
}

function describePath(path: readonly PropertyKey[]): string {
  return path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '') || '(top level)';
}

const digest = (data: Buffer): string => createHash('sha256').update(data).digest('hex');

/**
 * One JSON file of the state dir: mode 0600, replaced atomically on every write, validated on every read. A damaged
 * file is an error that says so, never an empty value. Knows whether another process changed the file since this
 * one last read or wrote it, so changes are applied to what is on disk.
 */
export class JsonDocument<T> {
  readonly path: string;
  readonly #options: JsonDocumentOptions<T>;
  readonly #Error: new (message: string) => StateFileError;
  #digest: string | undefined;

  constructor(options: JsonDocumentOptions<T>) {
    this.path = options.path;
    this.#options = options;
    this.#Error = options.errorClass ?? StateFileError;
  }

  /** Whether the file differs from what this object last read or wrote. */
  changed(): boolean {
    if (!existsSync(this.path)) return this.#digest !== undefined;
    return digest(readFileSync(this.path)) !== this.#digest;
  }

  /** The file's value; undefined when it does not exist. Throws a StateFileError when it is damaged. */
  read(): T | undefined {
    const { path, holds, empty, maxBytes, schema } = this.#options;
    if (!existsSync(path)) {
      this.#digest = undefined;
      return undefined;
    }
    const stat = statSync(path);
    if (!stat.isFile()) throw new this.#Error(`${path} is not a regular file`);
    if (stat.size > maxBytes) throw new this.#Error(`${path} is ${stat.size} bytes, more than the ${maxBytes} it can hold: it is damaged`);
    if ((stat.mode & 0o077) !== 0) chmodSync(path, 0o600);
    const data = readFileSync(path);
    let json: unknown;
    try {
      json = JSON.parse(data.toString('utf8'));
    } catch {
      // JSON.parse's message quotes the file, which may hold credentials: say where, not what
      throw new this.#Error(`${path} is damaged: not valid JSON. It holds ${holds}; restore it from a backup, or move it away to start with ${empty}.`);
    }
    const parsed = schema.safeParse(json);
    if (!parsed.success) {
      const issues = parsed.error.issues.slice(0, 5).map((issue) => `${describePath(issue.path)}: ${issue.message}`);
      throw new this.#Error(`${path} is damaged: ${issues.join('; ')}. It holds ${holds}; fix or restore it, or move it away to start with ${empty}.`);
    }
    this.#digest = digest(data);
    return parsed.data;
  }

  write(value: T): void {
    const data = Buffer.from(JSON.stringify(value, null, 2) + '\n');
    try {
      writeFileAtomic(this.path, data, 0o600);
    } catch (error) {
      throw new this.#Error(`could not write ${this.path}: ${(error as NodeJS.ErrnoException).code ?? (error as Error).message}`);
    }
    this.#digest = digest(data);
  }
}
