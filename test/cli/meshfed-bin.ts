import { join, resolve } from 'node:path';

const ROOT = resolve(import.meta.dirname, '../..');

/** The built `meshfed` command (test/global-setup.ts builds dist/ once per run): what users run. */
export const MESHFED_CLI = [join(ROOT, 'dist/cli/main.js')];
