import { execFileSync } from 'node:child_process';
import { join, resolve } from 'node:path';

/** Builds dist/ once, so the CLI tests run the same compiled `meshfed` that `npm install` builds. */
export default function setup(): void {
  const root = resolve(import.meta.dirname, '..');
  execFileSync(process.execPath, [join(root, 'node_modules/typescript/bin/tsc'), '-p', join(root, 'tsconfig.build.json')], { cwd: root, stdio: 'inherit' });
}
