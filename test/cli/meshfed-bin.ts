import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';

const ROOT = resolve(import.meta.dirname, '../..');

/** The built `meshfed` command (test/global-setup.ts builds dist/ once per run): what users run. */
export const MESHFED_CLI = [join(ROOT, 'dist/cli/main.js')];

/** The environment without the caller's MESHFED_* settings and xDS bootstrap, plus `extra`. */
export function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MESHFED_') && key !== 'GRPC_XDS_BOOTSTRAP')), ...extra };
}

export interface Serve {
  child: ChildProcessByStdio<null, Readable, Readable>;
  /** standard output up to the summary's end */
  stdout: string;
  stderr: () => string;
  /** standard output and error so far */
  output: () => string;
  /** the API URL from the summary */
  api: string;
  /** SIGINT, then its exit code */
  stop: () => Promise<number | null>;
}

/**
 * Starts `meshfed serve ARGS` (JSON log at info on standard error) and resolves once its summary is printed; the
 * child joins `children`, for the caller's afterAll to kill whatever is left.
 */
export async function startServe(args: string[], options: { cwd: string; children: Set<ChildProcessByStdio<null, Readable, Readable>>; env?: NodeJS.ProcessEnv }): Promise<Serve> {
  const child = spawn(process.execPath, [...MESHFED_CLI, 'serve', ...args], { cwd: options.cwd, env: cleanEnv({ MESHFED_LOG_LEVEL: 'info', ...options.env }), stdio: ['ignore', 'pipe', 'pipe'] });
  options.children.add(child);
  let stdout = '';
  let stderr = '';
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`serve printed no summary within 60 s: ${stderr}`));
    }, 60_000);
    child.stdout.on('data', (chunk: Buffer) => {
      stdout += chunk.toString();
      if (stdout.includes('Ctrl-C stops')) {
        clearTimeout(timer);
        done();
      }
    });
    child.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`serve exited early with ${String(code)}: ${stderr}`));
    });
  });
  const summary = stdout;
  const exited = new Promise<number | null>((done) => child.once('exit', done));
  return {
    child,
    stdout: summary,
    stderr: () => stderr,
    output: () => stdout + stderr,
    api: /API {12}(http:\/\/127\.0\.0\.1:\d+)/.exec(summary)?.[1] ?? '',
    stop: () => {
      child.kill('SIGINT');
      return exited;
    },
  };
}
