/**
 * Named API tokens with roles, kept in STATE_DIR/api-tokens.json (0600, written atomically). Only each token's
 * SHA-256 is stored: a copy of the file lets nobody call the API. `meshfed api token create|list|revoke` changes the
 * file; a running manager notices the change on the next request and uses the new set, so a revocation needs no
 * restart.
 */
import { createHash, randomBytes } from 'node:crypto';
import { statSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { apiRoleSchema, type ApiRole } from '../model/api-roles.js';
import { dnsLabelSchema } from '../model/names.js';
import { JsonDocument, StateFileError } from './json-document.js';

export const API_TOKENS_FILE = 'api-tokens.json';
/** the name the single token of STATE_DIR/api-token (or MESHFED_API_TOKEN) goes by: an admin */
export const BOOTSTRAP_TOKEN_NAME = 'bootstrap';
const MAX_TOKENS = 1000;
const MAX_FILE_BYTES = 512 * 1024;

export class ApiTokensError extends StateFileError {}

export const tokenNameSchema = dnsLabelSchema.refine((name) => name !== BOOTSTRAP_TOKEN_NAME, `${BOOTSTRAP_TOKEN_NAME} is the name of the state dir's api-token; choose another`);

const entrySchema = z.strictObject({
  name: tokenNameSchema,
  role: apiRoleSchema,
  /** hex SHA-256 of the token */
  sha256: z.string().regex(/^[0-9a-f]{64}$/, 'must be 64 hex digits'),
  createdAt: z.string(),
});

const fileSchema = z.strictObject({ tokens: z.array(entrySchema).max(MAX_TOKENS) }).superRefine((file, ctx) => {
  const seen = new Set<string>();
  file.tokens.forEach((token, i) => {
    if (seen.has(token.name)) ctx.addIssue({ code: 'custom', path: ['tokens', i, 'name'], message: `${token.name} appears twice` });
    seen.add(token.name);
  });
});
type TokensFile = z.infer<typeof fileSchema>;

/** What may be shown of a named token: never the token or its digest. */
export interface NamedToken {
  name: string;
  role: ApiRole;
  createdAt: string;
}

export const tokenDigest = (token: string): string => createHash('sha256').update(token).digest('hex');

const fileSignature = (path: string): string | undefined => {
  try {
    const stat = statSync(path);
    return `${stat.ino}:${stat.mtimeMs}:${stat.ctimeMs}:${stat.size}`;
  } catch {
    return undefined;
  }
};

export class ApiTokenStore {
  readonly #file: JsonDocument<TokensFile>;
  #byDigest = new Map<string, NamedToken>();
  /** the file as last loaded for lookups (inode, mtime, size); undefined: no file */
  #loaded: string | undefined;
  #damaged: string | undefined;

  private constructor(path: string) {
    this.#file = new JsonDocument({ path, schema: fileSchema, holds: 'the named API tokens (their SHA-256 digests)', empty: 'no named tokens', maxBytes: MAX_FILE_BYTES, errorClass: ApiTokensError });
  }

  /** The state dir's named tokens; a damaged file is an ApiTokensError. */
  static open(stateDir: string): ApiTokenStore {
    const store = new ApiTokenStore(join(stateDir, API_TOKENS_FILE));
    // a damaged file stops the start here, with the message saying which file and what is wrong
    store.#file.read();
    store.#reload();
    return store;
  }

  get path(): string {
    return this.#file.path;
  }

  list(): NamedToken[] {
    return (this.#file.read()?.tokens ?? []).map(({ name, role, createdAt }) => ({ name, role, createdAt }));
  }

  /** A new token (32 random bytes, base64url) for `name`; the token itself is returned once and never stored. */
  create(name: string, role: ApiRole, now = new Date()): { token: string; entry: NamedToken } {
    const checkedName = tokenNameSchema.safeParse(name);
    if (!checkedName.success) throw new ApiTokensError(`token name ${JSON.stringify(name.slice(0, 64))}: ${checkedName.error.issues[0]?.message ?? 'invalid'}`);
    const file = this.#file.read() ?? { tokens: [] };
    if (file.tokens.some((t) => t.name === name)) throw new ApiTokensError(`a token named ${name} exists: revoke it first, or choose another name`);
    if (file.tokens.length >= MAX_TOKENS) throw new ApiTokensError(`there are ${MAX_TOKENS} tokens already: revoke some first`);
    const token = randomBytes(32).toString('base64url');
    const entry = { name, role, createdAt: now.toISOString() };
    this.#file.write({ tokens: [...file.tokens, { ...entry, sha256: tokenDigest(token) }] });
    return { token, entry };
  }

  /** Removes the token named `name`; false when there is none. */
  revoke(name: string): boolean {
    const file = this.#file.read() ?? { tokens: [] };
    const kept = file.tokens.filter((t) => t.name !== name);
    if (kept.length === file.tokens.length) return false;
    this.#file.write({ tokens: kept });
    return true;
  }

  /**
   * The named token with this SHA-256 (hex), from the file as it is now (re-read when it changed). Throws an
   * ApiTokensError while the file is damaged: then no named token is accepted, so a revocation cannot be undone by
   * breaking the file.
   */
  lookup(digest: string): NamedToken | undefined {
    if (fileSignature(this.#file.path) !== this.#loaded) this.#reload();
    if (this.#damaged !== undefined) throw new ApiTokensError(this.#damaged);
    return this.#byDigest.get(digest);
  }

  #reload(): void {
    const signature = fileSignature(this.#file.path);
    try {
      const file = this.#file.read();
      this.#byDigest = new Map((file?.tokens ?? []).map(({ sha256, name, role, createdAt }) => [sha256, { name, role, createdAt }]));
      this.#damaged = undefined;
    } catch (error) {
      this.#byDigest = new Map();
      this.#damaged = (error as Error).message;
    }
    this.#loaded = signature;
  }
}
