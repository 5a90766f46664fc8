/**
 * `meshfed gateway` as users run it: a separate process that takes its routes from a running `meshfed serve` over
 * xDS, passes mTLS through by SNI, reports health on its admin port, and drains on SIGTERM (connections in flight
 * finish, new ones are refused, the process exits 0).
 */
import { spawn, spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { Resolver } from 'node:dns/promises';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer as createNetServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { connect as tlsConnect, createServer as tlsCreateServer, type Server as TlsServer, type TLSSocket } from 'node:tls';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { peerUri, workloadIdentity } from '../../src/sim/trust-demo.js';
import { TrustAuthority } from '../../src/trust/authority.js';
import { MESHFED_CLI } from './meshfed-bin.js';

const SNI = 'outbound_.9080_._.reviews.default.svc.cluster.local';
const work = mkdtempSync(join(tmpdir(), 'meshfed-gateway-cli-'));
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();
let backend: TlsServer;
let clientTls: { key: string; cert: string; ca: string };
/** the port of west's gateway in the federation file, which serve's built-in gateway listens on */
let embeddedPort: number;

async function freePort(host: string): Promise<number> {
  const probe = createNetServer();
  await new Promise<void>((resolve) => probe.listen(0, host, resolve));
  const address = probe.address();
  await new Promise<void>((resolve) => probe.close(() => { resolve(); }));
  return typeof address === 'object' && address !== null ? address.port : 0;
}

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  backend.close();
  rmSync(work, { recursive: true, force: true });
});

function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  return { ...Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MESHFED_'))), ...extra };
}

/** Spawns the CLI and resolves once `ready` matches its output (stdout or stderr), with the match. */
async function run(args: string[], ready: RegExp): Promise<{ child: ChildProcessByStdio<null, Readable, Readable>; match: RegExpExecArray; output: () => string }> {
  const child = spawn(process.execPath, [...MESHFED_CLI, ...args], { cwd: work, env: cleanEnv({ MESHFED_LOG_LEVEL: 'info' }), stdio: ['ignore', 'pipe', 'pipe'] });
  children.add(child);
  let output = '';
  const match = await new Promise<RegExpExecArray>((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error(`no ${String(ready)} within 60 s: ${output}`)); }, 60_000);
    const onData = (chunk: Buffer): void => {
      output += chunk.toString();
      const m = ready.exec(output);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`exited early with ${String(code)}: ${output}`));
    });
  });
  return { child, match, output: () => output };
}

async function through(port: number, host = '127.0.0.1'): Promise<{ socket: TLSSocket; line: string }> {
  const socket = tlsConnect({ ...clientTls, host, port, servername: SNI, checkServerIdentity: () => undefined });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { reject(new Error('no answer through the gateway')); }, 10_000);
    socket.once('error', (err: Error) => {
      clearTimeout(timer);
      reject(err);
    });
    socket.once('data', (d: Buffer) => {
      clearTimeout(timer);
      resolve({ socket, line: d.toString().trim() });
    });
  });
}

beforeAll(async () => {
  const authority = TrustAuthority.init(join(work, 'ca-for-workloads'), { trustDomain: 'cli.test' }, {}).authority;
  authority.issueIntermediate('east');
  authority.issueIntermediate('west');
  clientTls = workloadIdentity(authority, 'east', 'productpage').tls;
  backend = tlsCreateServer({ ...workloadIdentity(authority, 'west', 'reviews').tls, requestCert: true, rejectUnauthorized: true }, (socket: TLSSocket) => {
    socket.write(`PEER ${peerUri(socket.getPeerCertificate())}\n`);
    socket.on('data', (d: Buffer) => socket.write(d));
    socket.on('error', () => undefined);
  });
  await new Promise<void>((resolve) => backend.listen(0, '127.0.8.1', resolve));
  const address = backend.address();
  const port = typeof address === 'object' && address !== null ? address.port : 0;
  embeddedPort = await freePort('127.0.8.254');
  writeFileSync(
    join(work, 'federation.yaml'),
    [
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Federation',
      'metadata: { name: gw-test }',
      'spec: { trustDomain: cli.test }',
      '---',
      'apiVersion: meshfed.io/v1alpha1',
      'kind: Cluster',
      'metadata: { name: west }',
      'spec:',
      '  network: net-west',
      `  gateways: [{ address: 127.0.8.254, port: ${String(embeddedPort)} }]`,
      '  services:',
      '    - name: reviews',
      '      ports: [{ name: tls, port: 9080 }]',
      `      endpoints: [{ address: 127.0.8.1, ports: [{ name: tls, port: ${String(port)} }], serviceAccount: reviews }]`,
      '---',
      'apiVersion: meshfed.io/v1alpha1',
      'kind: VirtualDestination',
      'metadata: { name: reviews }',
      'spec:',
      '  hostname: reviews.global',
      '  ports: [{ number: 9080, protocol: TLS, name: tls }]',
      '  backends: [{ namespace: default, name: reviews }]',
      '',
    ].join('\n'),
  );
}, 60_000);

describe('meshfed gateway, with routes from a running meshfed serve', { timeout: 120_000 }, () => {
  it("serve runs the static cluster's gateway itself; meshfed gateway passes mTLS through by SNI, reports health, and drains on SIGTERM", async () => {
    const serve = await run(
      ['serve', '--config', join(work, 'federation.yaml'), '--state-dir', join(work, 'state'), '--api', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0'],
      /Ctrl-C stops/,
    );
    const xdsPort = /xDS {12}127\.0\.0\.1:(\d+)/.exec(serve.output())?.[1] ?? '';
    // serve's DNS answers the virtual destination's hostname with a virtual IP from 240.240.0.0/16, and its named port
    const dnsPort = /DNS {12}127\.0\.0\.1:(\d+) \(UDP and TCP\): reviews\.global;/.exec(serve.output())?.[1] ?? '';
    const resolver = new Resolver();
    resolver.setServers([`127.0.0.1:${dnsPort}`]);
    const [vip] = await resolver.resolve4('reviews.global');
    expect(vip).toMatch(/^240\.240\.\d+\.\d+$/);
    expect(await resolver.resolveSrv('_tls._tcp.reviews.global')).toEqual([{ name: 'reviews.global', port: 9080, priority: 0, weight: 0 }]);
    await expect(resolver.resolve4('ratings.global')).rejects.toMatchObject({ code: 'ENOTFOUND' });

    // explain: what a client in west sees for reviews.global, and why; the same endpoints the xDS dump sends
    const api = /API {12}(http:\/\/127\.0\.0\.1:\d+)/.exec(serve.output())?.[1] ?? '';
    const token = readFileSync(join(work, 'state', 'api-token'), 'utf8').trim();
    const cli = (...args: string[]) => spawnSync(process.execPath, [...MESHFED_CLI, ...args, '--server', api], { encoding: 'utf8', env: cleanEnv({ MESHFED_API_TOKEN: token }), timeout: 60_000 });
    const explained = cli('explain', '--from', 'west', 'reviews.global', '-o', 'json');
    expect(explained.stderr).toBe('');
    const explanation = JSON.parse(explained.stdout) as { kind: string; groups: { priority: number; reason: string; endpoints: { address: string; port: number; health: string; via: string }[] }[] };
    expect(explanation.kind).toBe('virtual-destination');
    expect(explanation.groups.map((g) => g.reason)).toEqual(['unordered']);
    expect(explanation.groups[0]?.endpoints.map((e) => [e.address, e.health, e.via])).toEqual([['127.0.8.1', 'HEALTHY', 'direct']]);
    const dumped = cli('xds', 'dump', '--node-cluster', 'west', '--network', 'net-west');
    const dump = JSON.parse(dumped.stdout) as { endpoints: { resources: { cluster_name: string; endpoints?: { lb_endpoints: { endpoint: { address: { socket_address: { address: string; port_value: number } } } }[] }[] }[] } };
    const sent = dump.endpoints.resources.find((r) => r.cluster_name === 'outbound|9080||reviews.global');
    const sentEndpoints = (sent?.endpoints ?? []).flatMap((g) => g.lb_endpoints.map((e) => `${e.endpoint.address.socket_address.address}:${String(e.endpoint.address.socket_address.port_value)}`));
    expect(sentEndpoints).toEqual(explanation.groups.flatMap((g) => g.endpoints.map((e) => `${e.address}:${String(e.port)}`)));
    const table = cli('explain', '--from', 'west', 'reviews.global');
    expect(table.stdout).toMatch(/^reviews\.global:9080 \(virtual destination reviews\) as a client in west \(network net-west\) sees it:/);
    expect(table.stdout).toMatch(/0 +- +\d+ +unordered +127\.0\.8\.1:\d+ +\d+ +HEALTHY +direct/);
    const unknown = cli('explain', '--from', 'west', 'nothing.global');
    expect(unknown.status).toBe(1);
    expect(unknown.stderr).toContain('names no service or virtual destination');
    expect(serve.output()).toContain(`gateways       west 127.0.8.254:${String(embeddedPort)} (built in`);
    const viaEmbedded = await through(embeddedPort, '127.0.8.254');
    expect(viaEmbedded.line).toBe('PEER spiffe://cli.test/ns/default/sa/productpage');
    viaEmbedded.socket.destroy();

    const gw = await run(
      ['gateway', '--cluster', 'west', '--network', 'net-west', '--xds', `127.0.0.1:${xdsPort}`, '--listen', '127.0.0.1:0', '--admin', '127.0.0.1:0', '--drain', '20s'],
      /"listen":"127\.0\.0\.1:(\d+)","admin":"127\.0\.0\.1:(\d+)"/,
    );
    const port = Number(gw.match[1]);
    const admin = `http://127.0.0.1:${gw.match[2] ?? ''}`;
    const deadline = Date.now() + 20_000;
    while ((await fetch(`${admin}/readyz`)).status !== 200) {
      if (Date.now() > deadline) throw new Error('the gateway never got ready');
      await new Promise((done) => setTimeout(done, 100));
    }
    expect((await fetch(`${admin}/healthz`)).status).toBe(200);

    const inFlight = await through(port);
    expect(inFlight.line).toBe('PEER spiffe://cli.test/ns/default/sa/productpage');
    const metrics = await (await fetch(`${admin}/metrics`)).text();
    expect(metrics).toContain(`meshfed_gateway_connections_total{outcome="forwarded",sni="${SNI}"} 1`);

    const exited = new Promise<number | null>((done) => gw.child.once('exit', done));
    gw.child.kill('SIGTERM');
    const healthDeadline = Date.now() + 10_000;
    while ((await fetch(`${admin}/healthz`)).status !== 503) {
      if (Date.now() > healthDeadline) throw new Error('healthz never said draining');
      await new Promise((done) => setTimeout(done, 50));
    }
    await expect(through(port)).rejects.toThrow(/ECONNREFUSED/);
    inFlight.socket.write('finishing\n');
    const echoed = await new Promise<string>((resolve) => inFlight.socket.once('data', (d: Buffer) => { resolve(d.toString()); }));
    expect(echoed).toBe('finishing\n');
    inFlight.socket.end();
    expect(await exited).toBe(0);
    expect(gw.output()).toContain('gateway stopped');
    expect(gw.output()).not.toContain('finishing');

    const serveExited = new Promise<number | null>((done) => serve.child.once('exit', done));
    serve.child.kill('SIGINT');
    expect(await serveExited).toBe(0);
  });
});
