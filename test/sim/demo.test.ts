/**
 * `npm start` as users run it: `meshfed serve --demo --config federation/demo.yaml` (free ports for the API, xDS, DNS
 * and CA). This is the one test file that runs the demo's fixed addresses: the gateways on 127.0.0.1:15443-15445 and
 * the workloads on 127.0.{1,2,3}.x; other tests running serve on the demo file pass --no-gateways --no-workloads.
 */
import { spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import * as grpc from '@grpc/grpc-js';
import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { afterAll, describe, expect, it } from 'vitest';
import { echo, echoClient, type EchoClient, type EchoReply } from '../../src/sim/echo.js';
import { cleanEnv, startServe, type Serve } from '../cli/meshfed-bin.js';
import { WAIT_MS } from './helpers.js';

const ROOT = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'meshfed-sim-demo-'));
const stateDir = join(work, 'demo');
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
const clients: EchoClient[] = [];

afterAll(() => {
  for (const c of clients) c.close();
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

function startDemo(): Promise<Serve> {
  return startServe(['--demo', '--config', join(ROOT, 'federation/demo.yaml'), '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'], { cwd: work, children });
}

/** A proxyless client standing in `cluster`, with the bootstrap serve wrote for it. */
function clientIn(cluster: string, target: string): EchoClient {
  const bootstrap = readFileSync(join(stateDir, 'sim', cluster, 'bootstrap.json'), 'utf8');
  const c = echoClient(target, new XdsChannelCredentials(grpc.credentials.createInsecure()), { 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config': bootstrap });
  clients.push(c);
  return c;
}

/** The first reply (bounded wait while the client resolves), then 20 more. */
async function replies(client: EchoClient): Promise<EchoReply[]> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      const first = await echo(client, 'first', 3_000);
      return [first, ...(await Promise.all(Array.from({ length: 20 }, (_, i) => echo(client, `call ${String(i)}`))))];
    } catch (error) {
      if (Date.now() > deadline) throw error;
      await new Promise((done) => setTimeout(done, 100));
    }
  }
}

function httpsJson(host: string, port: number, files: string): Promise<Record<string, string>> {
  return new Promise((resolve, reject) => {
    const req = httpsRequest(
      {
        host,
        port,
        path: '/details',
        agent: false,
        key: readFileSync(join(files, 'key.pem')),
        cert: readFileSync(join(files, 'cert.pem')),
        ca: readFileSync(join(files, 'ca.pem')),
        checkServerIdentity: () => undefined,
      },
      (res) => {
        let text = '';
        res.on('data', (chunk: Buffer) => (text += chunk.toString()));
        res.on('end', () => {
          resolve(JSON.parse(text) as Record<string, string>);
        });
      },
    );
    req.on('error', reject);
    req.end();
  });
}

const refused = (host: string, port: number): Promise<string> =>
  new Promise((resolve) => {
    const socket = connect(port, host);
    socket.once('connect', () => {
      socket.destroy();
      resolve('connected');
    });
    socket.once('error', (error: NodeJS.ErrnoException) => {
      resolve(error.code ?? 'error');
    });
  });

describe('npm start: the embedded federation', { timeout: 180_000 }, () => {
  it('runs real workloads behind every demo endpoint; proxyless clients reach reviews.global over mTLS; all of it stops on SIGINT', async () => {
    register();
    const run = await startDemo();
    const { stdout } = run;
    expect(stdout).toMatch(/workloads {6}12 on loopback in east-1, east-2, west-1: reviews 6 \(gRPC echo \+ health\), ratings 3 \(HTTP\), echo 3 \(gRPC echo \+ health\); mTLS with their SVIDs/);
    expect(stdout).toMatch(/readiness {6}probed like a kubelet every 1s \(timeout 1s, failureThreshold 3, successThreshold 1\): 12 of 12 ready/);
    // paths as typed from where serve runs (the test's work dir)
    expect(stdout).toContain('mTLS with their SVIDs (in demo/sim)');
    expect(stdout).toContain('demo clients   GRPC_XDS_BOOTSTRAP=demo/sim/east-1/bootstrap.json (or east-2, west-1)');
    expect(stdout).toContain('spiffe://meshfed.local/ns/default/sa/demo-client over mTLS (certificate provider "default")');
    expect(stdout).toContain('gateways       east-1 127.0.0.1:15443, east-2 127.0.0.1:15444, west-1 127.0.0.1:15445 (built in');
    expect(stdout).not.toContain('issue 7');

    // the bootstrap: meshfed's xDS server, where the client stands, the certificate provider serve's Clusters name
    const xdsPort = /xDS {12}127\.0\.0\.1:(\d+)/.exec(stdout)?.[1] ?? '';
    const bootstrap = JSON.parse(readFileSync(join(stateDir, 'sim', 'east-1', 'bootstrap.json'), 'utf8')) as {
      xds_servers: { server_uri: string }[];
      node: { locality: unknown; metadata: Record<string, string> };
      certificate_providers: Record<string, { plugin_name: string; config: Record<string, string> }>;
    };
    expect(bootstrap.xds_servers[0]?.server_uri).toBe(`127.0.0.1:${xdsPort}`);
    expect(bootstrap.node.metadata).toMatchObject({ CLUSTER_ID: 'east-1', NETWORK: 'net-east' });
    expect(bootstrap.node.locality).toEqual({ region: 'us-east', zone: 'us-east-1a' });
    const provider = bootstrap.certificate_providers.default;
    expect(provider?.plugin_name).toBe('file_watcher');
    const demoClient = join(stateDir, 'sim', 'east-1', 'default', 'demo-client');
    expect(provider?.config.private_key_file).toBe(join(demoClient, 'key.pem'));
    for (const file of ['key.pem', 'cert.pem', 'ca.pem']) expect(statSync(join(demoClient, file)).mode & 0o777).toBe(0o600);
    expect(statSync(join(stateDir, 'sim')).mode & 0o777).toBe(0o700);

    // a client in east-1: its own zone answers, over mTLS, and the workload saw the client's SPIFFE ID
    const east = await replies(clientIn('east-1', 'xds:///reviews.global'));
    expect(new Set(east.map((r) => r.cluster))).toEqual(new Set(['east-1']));
    expect(new Set(east.map((r) => r.endpoint))).toEqual(new Set(['127.0.1.1:9080', '127.0.1.2:9080']));
    expect(new Set(east.map((r) => r.peer))).toEqual(new Set(['spiffe://meshfed.local/ns/default/sa/demo-client']));
    const west = await replies(clientIn('west-1', 'xds:///reviews.global'));
    expect(new Set(west.map((r) => r.cluster))).toEqual(new Set(['west-1']));

    // what federation/README.md tells users to run: GRPC_XDS_BOOTSTRAP and the echo client
    const script = [
      "import * as grpc from '@grpc/grpc-js';",
      "import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';",
      "import { echo, echoClient } from './dist/sim/echo.js';",
      'register();',
      "const client = echoClient('xds:///reviews.global', new XdsChannelCredentials(grpc.credentials.createInsecure()));",
      "console.log(JSON.stringify(await echo(client, 'hello', 30000)));",
      'client.close();',
      'process.exit();',
    ].join('\n');
    const call = spawnSync(process.execPath, ['--input-type=module', '-e', script], {
      cwd: ROOT,
      encoding: 'utf8',
      env: cleanEnv({ GRPC_XDS_BOOTSTRAP: join(stateDir, 'sim', 'west-1', 'bootstrap.json') }),
      timeout: 60_000,
    });
    expect(call.stderr).toBe('');
    expect(call.status).toBe(0);
    expect(JSON.parse(call.stdout)).toMatchObject({ message: 'hello', cluster: 'west-1', locality: 'us-west/us-west-1a', peer: 'spiffe://meshfed.local/ns/default/sa/demo-client' });

    // an HTTP workload, directly, with the demo client's certificate
    expect(await httpsJson('127.0.2.3', 9080, join(stateDir, 'sim', 'east-2', 'default', 'demo-client'))).toEqual({
      cluster: 'east-2',
      namespace: 'default',
      service: 'ratings',
      endpoint: '127.0.2.3:9080',
      locality: 'us-east/us-east-1b',
      peer: 'spiffe://meshfed.local/ns/default/sa/demo-client',
      method: 'GET',
      path: '/details',
    });

    expect(run.output()).not.toContain('PRIVATE KEY');
    expect(await run.stop()).toBe(0);
    // the workloads and the gateways stopped with serve
    expect(await refused('127.0.1.1', 9080)).toBe('ECONNREFUSED');
    expect(await refused('127.0.3.3', 9080)).toBe('ECONNREFUSED');
    expect(await refused('127.0.0.1', 15445)).toBe('ECONNREFUSED');
  });
});
