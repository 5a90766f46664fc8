/**
 * Where a TrustAuthority keeps its manifest and files: a state dir on disk (StateDir), or a Kubernetes Secret
 * (src/store/kubernetes/secret-trust-state.ts). Both record each file's SHA-256 in the manifest, stage files
 * under fresh names and commit the whole state at once, so a change is applied entirely or not at all.
 */
export interface TrustState<M extends object> {
  manifest: M;
  /** a committed or staged file; a file whose SHA-256 differs from the manifest's is refused */
  read(name: string): Buffer;
  /** stages a file under a fresh name built from `stem`; returns the name to record in the manifest */
  stage(stem: string, data: Buffer | string): string;
  /** writes the staged files and the manifest; `keep` lists every file the manifest refers to */
  commit(keep: Iterable<string>): void;
  /** whether the stored state differs from what this view last read or wrote */
  changedOnDisk(): boolean;
  /** whether anything was ever committed */
  exists(): boolean;
  /** a fresh view of the stored state */
  reopen(parse: (body: unknown) => M): TrustState<M>;
}
