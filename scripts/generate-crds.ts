/**
 * `npm run crds`: writes meshfed's CRDs, generated from the zod schemas in src/model, to federation/crds/ and to the
 * manager chart's crds/. A test fails while the files in the repository differ from what this writes.
 */
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { join, relative, resolve } from 'node:path';
import { CRD_GROUP, renderCrdFiles } from '../src/model/crds.js';

const root = resolve(import.meta.dirname, '..');
const files = renderCrdFiles();
for (const directory of ['federation/crds', 'charts/meshfed/crds'].map((dir) => join(root, dir))) {
  mkdirSync(directory, { recursive: true });
  // a CRD that is no longer generated leaves the directory too
  for (const stale of readdirSync(directory).filter((name) => name.startsWith(`${CRD_GROUP}_`) && !files.some((file) => file.fileName === name))) {
    rmSync(join(directory, stale));
    process.stdout.write(`removed ${relative(root, join(directory, stale))}\n`);
  }
  for (const file of files) {
    writeFileSync(join(directory, file.fileName), file.content);
    process.stdout.write(`wrote ${relative(root, join(directory, file.fileName))}\n`);
  }
}
