/**
 * Runs shipped scenarios (scenarios/*.yaml) with the real `meshfed drill run` against a real `meshfed serve` of the
 * demo federation, moved to loopback addresses and gateway ports of the test's own (the demo's fixed ones belong to
 * test/sim/demo.test.ts): same clusters, localities, services and virtual destination, so the scenarios apply as
 * they are.
 */
import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { basename, isAbsolute, join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { DrillResult } from '../../src/drills/result.js';
import { cleanEnv, MESHFED_CLI, startServe, type Serve } from '../cli/meshfed-bin.js';

const ROOT = resolve(import.meta.dirname, '../..');

async function freePort(): Promise<number> {
  const probe = createServer();
  await new Promise<void>((done) => probe.listen(0, '127.0.0.1', done));
  const address = probe.address();
  await new Promise<void>((done) => probe.close(() => { done(); }));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

export interface DrillRun {
  code: number | null;
  output: string;
  result: DrillResult;
  reportDir: string;
}

export interface ShippedFederation {
  serve: Serve;
  /** the API's bearer token (STATE_DIR/api-token) */
  token: string;
  /** runs a scenario: a file name under scenarios/, or an absolute path to one elsewhere */
  drill(scenario: string): Promise<DrillRun>;
  close(): Promise<void>;
}

/**
 * The demo federation on 127.0.{SUBNET+1..3}.x and free gateway ports, served with a 10 s grace (what
 * api-server-outage.yaml expects) and `serveArgs` added to serve's command line.
 */
export async function startShippedFederation(subnet: number, serveArgs: readonly string[] = []): Promise<ShippedFederation> {
  const work = mkdtempSync(join(tmpdir(), 'meshfed-drills-'));
  const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
  let text = readFileSync(join(ROOT, 'federation/demo.yaml'), 'utf8');
  for (const n of [1, 2, 3]) text = text.replaceAll(`127.0.${String(n)}.`, `127.0.${String(subnet + n)}.`);
  for (const port of [15443, 15444, 15445]) text = text.replaceAll(`port: ${String(port)}`, `port: ${String(await freePort())}`);
  const federation = join(work, 'federation.yaml');
  writeFileSync(federation, text);
  const stateDir = join(work, 'state');
  const serve = await startServe(
    ['--config', federation, '--workloads', '--grace', '10s', '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', ...serveArgs],
    { cwd: work, children },
  );
  const token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
  return {
    serve,
    token,
    async drill(scenario) {
      const reportDir = join(work, 'reports', basename(scenario).replace(/\.yaml$/, ''));
      const file = isAbsolute(scenario) ? scenario : join(ROOT, 'scenarios', scenario);
      const child = spawn(process.execPath, [...MESHFED_CLI, 'drill', 'run', file, '--server', serve.api, '--report', reportDir], {
        cwd: work,
        env: cleanEnv({ MESHFED_API_TOKEN: token }),
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      children.add(child);
      let output = '';
      child.stdout.on('data', (chunk: Buffer) => (output += chunk.toString()));
      child.stderr.on('data', (chunk: Buffer) => (output += chunk.toString()));
      const code = await new Promise<number | null>((done) => child.once('exit', done));
      const json = join(reportDir, 'drill.json');
      if (!existsSync(json)) throw new Error(`drill ${scenario} wrote no report (exit ${String(code)}): ${output}`);
      return { code, output, result: JSON.parse(readFileSync(json, 'utf8')) as DrillResult, reportDir };
    },
    async close() {
      await serve.stop();
      for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
      rmSync(work, { recursive: true, force: true });
    },
  };
}

/** Requests that failed over the whole drill, all streams. */
export const failedRequests = (result: DrillResult): number =>
  result.streams.reduce((sum, stream) => sum + stream.seconds.reduce((s, second) => s + Object.values(second.errors).reduce((a, b) => a + b, 0), 0), 0);

/** Requests answered by `cluster` in the seconds [from, to) of a stream. */
export function servedBy(result: DrillResult, stream: string, cluster: string, from = 0, to = Infinity): number {
  const seconds = result.streams.find((s) => s.name === stream)?.seconds ?? [];
  return seconds.filter((s) => s.t >= from && s.t < to).reduce((sum, s) => sum + (s.byCluster[cluster] ?? 0), 0);
}
