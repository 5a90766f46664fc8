/**
 * `meshfed sim-cluster` as users run it, on loopback (the isolated tier, test/sim/netns-isolation.test.ts, runs it in
 * network namespaces): one static cluster's workloads in a process of their own, with SVIDs from the state dir's CA,
 * and the demo client's identity and bootstrap; bad input gets a clear usage error and starts nothing.
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { echo, echoClient } from '../../src/sim/echo.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { freePort, mtlsCredentials, SNI_OPTION, WAIT_MS } from '../sim/helpers.js';
import { cleanEnv, MESHFED_CLI } from './meshfed-bin.js';

const REVIEWS = '127.0.118.1';
const RATINGS = '127.0.118.2';
const work = mkdtempSync(join(tmpdir(), 'meshfed-sim-cluster-cli-'));
const stateDir = join(work, 'state');
const config = join(work, 'federation.yaml');
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
let reviewsPort = 0;
let ratingsPort = 0;

beforeAll(async () => {
  [reviewsPort, ratingsPort] = await Promise.all([freePort(REVIEWS), freePort(RATINGS)]);
  writeFileSync(
    config,
    [
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Federation',
      'metadata: { name: sim }',
      'spec: { trustDomain: sim.test }',
      '---',
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Cluster',
      'metadata: { name: lo-1 }',
      'spec:',
      '  network: net-lo',
      '  region: r1',
      '  zone: r1a',
      '  services:',
      '    - name: reviews',
      '      ports: [{ name: grpc, port: 9080, appProtocol: grpc }]',
      `      endpoints: [{ address: ${REVIEWS}, ports: [{ name: grpc, port: ${String(reviewsPort)} }], serviceAccount: reviews }]`,
      '    - name: ratings',
      '      ports: [{ name: http, port: 9080, appProtocol: http }]',
      `      endpoints: [{ address: ${RATINGS}, ports: [{ name: http, port: ${String(ratingsPort)} }], serviceAccount: ratings }]`,
      '---',
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Cluster',
      'metadata: { name: lo-2 }',
      'spec: { network: net-lo, services: [] }',
      '',
    ].join('\n'),
  );
  TrustAuthority.init(join(stateDir, 'ca'), { trustDomain: 'sim.test' }, {}).authority.issueIntermediate('lo-1');
});

afterAll(() => {
  for (const child of children) if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

const runToEnd = (args: string[]): { status: number | null; stderr: string; stdout: string } => {
  const result = spawnSync(process.execPath, [...MESHFED_CLI, 'sim-cluster', ...args], { cwd: work, env: cleanEnv(), encoding: 'utf8', timeout: WAIT_MS });
  return { status: result.status, stderr: result.stderr, stdout: result.stdout };
};

const refused = (host: string, port: number): Promise<boolean> =>
  new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve(false);
    });
    socket.once('error', () => {
      resolve(true);
    });
  });

describe('meshfed sim-cluster', () => {
  it('refuses bad input with a usage error (exit 2) and starts nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['nope', '--config', config, '--state-dir', stateDir], /has no cluster "nope" \(it has lo-1, lo-2\)/],
      [['lo-1', '--config', config, '--state-dir', stateDir, '--service', 'details'], /cluster lo-1 has no service details/],
      [['lo-1', '--config', config, '--state-dir', join(work, 'empty')], /holds no CA: start meshfed serve with it first/],
      [['lo-2', '--config', config, '--state-dir', stateDir], /cluster lo-2 has no intermediate/],
      [['lo-1', '--config', config, '--state-dir', stateDir, '--xds', 'nowhere'], /--xds nowhere: expected HOST:PORT/],
    ];
    for (const [args, message] of cases) {
      const result = runToEnd(args);
      expect(result.status, result.stderr).toBe(2);
      expect(result.stderr).toMatch(message);
    }
    expect(await refused(REVIEWS, reviewsPort)).toBe(true);
    expect(existsSync(join(stateDir, 'sim'))).toBe(false);
  });

  it('serve --remote-workloads, which probes them from the manager, needs a federation file', () => {
    const result = spawnSync(process.execPath, [...MESHFED_CLI, 'serve', '--remote-workloads', '--state-dir', join(work, 'serve-state')], { cwd: work, env: cleanEnv(), encoding: 'utf8', timeout: WAIT_MS });
    expect(result.status, result.stderr).toBe(2);
    expect(result.stderr).toContain('--remote-workloads probes the static clusters of a federation file: give --config FILE');
    expect(existsSync(join(work, 'serve-state'))).toBe(false);
  });

  it("runs the cluster's workloads with their SVIDs, only the services asked for, and writes the demo client's bootstrap", async () => {
    const child = spawn(process.execPath, [...MESHFED_CLI, 'sim-cluster', 'lo-1', '--config', config, '--state-dir', stateDir, '--service', 'reviews', '--xds', '10.9.8.7:15010'], {
      cwd: work,
      env: cleanEnv(),
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.add(child);
    let output = '';
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(() => { reject(new Error(`sim-cluster printed no summary: ${output}`)); }, WAIT_MS);
      const onData = (chunk: Buffer): void => {
        output += chunk.toString();
        if (output.includes('Ctrl-C stops')) {
          clearTimeout(timer);
          resolve();
        }
      };
      child.stdout.on('data', onData);
      child.stderr.on('data', onData);
      child.once('exit', (code) => {
        clearTimeout(timer);
        reject(new Error(`sim-cluster exited with ${String(code)}: ${output}`));
      });
    });
    expect(output).toContain(`workload       lo-1/default/reviews/${REVIEWS} on ${REVIEWS}:${String(reviewsPort)} (grpc) as spiffe://sim.test/ns/default/sa/reviews`);
    expect(output).not.toContain('lo-1/default/ratings');
    expect(await refused(RATINGS, ratingsPort)).toBe(true);

    const bootstrapPath = join(stateDir, 'sim', 'lo-1', 'bootstrap.json');
    const bootstrap = JSON.parse(readFileSync(bootstrapPath, 'utf8')) as { xds_servers: { server_uri: string }[]; node: { metadata: Record<string, string>; locality: Record<string, string> } };
    expect(bootstrap.xds_servers[0]?.server_uri).toBe('10.9.8.7:15010');
    expect(bootstrap.node.metadata).toMatchObject({ CLUSTER_ID: 'lo-1', NETWORK: 'net-lo' });
    expect(bootstrap.node.locality).toEqual({ region: 'r1', zone: 'r1a' });

    // the demo client's SVID, as the bootstrap's file_watcher reads it, is accepted by the workload, which names it
    const files = join(stateDir, 'sim', 'lo-1', 'default', 'demo-client');
    const tls = { cert: readFileSync(join(files, 'cert.pem'), 'utf8'), key: readFileSync(join(files, 'key.pem'), 'utf8'), ca: readFileSync(join(files, 'ca.pem'), 'utf8') };
    const seen: string[] = [];
    const client = echoClient(`${REVIEWS}:${String(reviewsPort)}`, mtlsCredentials(tls, seen), SNI_OPTION);
    try {
      const reply = await echo(client, 'hello');
      expect(reply).toMatchObject({ message: 'hello', cluster: 'lo-1', endpoint: `${REVIEWS}:${String(reviewsPort)}`, locality: 'r1/r1a', peer: 'spiffe://sim.test/ns/default/sa/demo-client' });
      expect(seen).toContain('spiffe://sim.test/ns/default/sa/reviews');
    } finally {
      client.close();
    }

    const exited = new Promise<number | null>((resolve) => child.once('exit', resolve));
    child.kill('SIGINT');
    expect(await exited).toBe(0);
    expect(await refused(REVIEWS, reviewsPort)).toBe(true);
  });
});
