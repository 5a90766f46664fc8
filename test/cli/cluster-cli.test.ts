import { MESHFED_CLI } from './meshfed-bin.js';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';

const CLI = MESHFED_CLI;
const work = mkdtempSync(join(tmpdir(), 'meshfed-cluster-cli-'));
const stateDir = join(work, 'state');

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** The environment without any meshfed settings the developer may have exported. */
function cleanEnv(extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv {
  const env = Object.fromEntries(Object.entries(process.env).filter(([key]) => !key.startsWith('MESHFED_')));
  return { ...env, ...extra };
}

/** Runs the CLI as a subprocess, without blocking this process (the Kubernetes API fixture lives here). */
function meshfed(args: string[], env: NodeJS.ProcessEnv = {}): Promise<Run> {
  return new Promise((done, fail) => {
    const child = spawn(process.execPath, [...CLI, ...args], { env: cleanEnv(env), stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`meshfed ${args.join(' ')} did not finish within 60 s`));
    }, 60_000);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code: code ?? -1, stdout, stderr });
    });
  });
}

let server: ChildProcess;
let serverOut = '';
let serverErr = '';
let url = '';
let token = '';
let kube: KubeApiFixture;
let kubeconfigFile = '';

beforeAll(async () => {
  kube = await startKubeApiFixture();
  kube.apply({ apiVersion: 'v1', kind: 'Service', metadata: { name: 'reviews', namespace: 'default' }, spec: { ports: [{ name: 'http', port: 9080, protocol: 'TCP' }] } });
  kube.apply({
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name: 'reviews-1', namespace: 'default', labels: { 'kubernetes.io/service-name': 'reviews' } },
    addressType: 'IPv4',
    ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
    endpoints: [{ addresses: ['10.9.0.1'], conditions: { ready: true } }],
  });
  kubeconfigFile = join(work, 'east.kubeconfig');
  writeFileSync(kubeconfigFile, kube.kubeconfig({ cluster: 'east-9' }), { mode: 0o600 });
  server = spawn(process.execPath, [...CLI, 'serve', '--state-dir', stateDir, '--trust-domain', 'cli.test', '--cluster', 'hub', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'], {
    cwd: work,
    env: cleanEnv({ MESHFED_LOG_LEVEL: 'info' }),
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  server.stderr?.on('data', (chunk: Buffer) => (serverErr += chunk.toString()));
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`serve did not start within 60 s: ${serverErr}`));
    }, 60_000);
    server.stdout?.on('data', (chunk: Buffer) => {
      serverOut += chunk.toString();
      if (serverOut.includes('Ctrl-C stops')) {
        clearTimeout(timer);
        done();
      }
    });
    server.once('exit', (code) => {
      clearTimeout(timer);
      fail(new Error(`serve exited early with ${String(code)}: ${serverErr}`));
    });
  });
  url = /API {12}(http:\/\/127\.0\.0\.1:\d+)/.exec(serverOut)?.[1] ?? '';
  token = readFileSync(join(stateDir, 'api-token'), 'utf8').trim();
});

afterAll(async () => {
  if (server.exitCode === null) {
    const exited = new Promise((done) => server.once('exit', done));
    server.kill('SIGINT');
    await exited;
  }
  await kube.close();
  rmSync(work, { recursive: true, force: true });
});

const withToken = (): NodeJS.ProcessEnv => ({ MESHFED_API_TOKEN: token });

interface ClusterJson {
  name: string;
  state: string;
  reason?: string;
  network: string;
  services: number;
  endpoints: number;
  origin: string;
  gateways: { address: string; port: number }[];
}

describe('meshfed cluster, against a real meshfed serve', { timeout: 120_000 }, () => {
  it('serve prints its API URL and the token it generated, once, and stores it 0600', () => {
    expect(url).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(token).toMatch(/^[A-Za-z0-9_-]{43}$/);
    expect(serverOut).toContain(`API token      ${token}`);
    expect(serverOut).toContain(`stored in ${join(stateDir, 'api-token')} (0600)`);
    expect(statSync(join(stateDir, 'api-token')).mode & 0o777).toBe(0o600);
    expect(serverErr).not.toContain(token);
  });

  it('registers a cluster from a kubeconfig file, lists it, gets it until it is ready, and removes it', async () => {
    const register = await meshfed(['cluster', 'register', 'east-9', '--network', 'net-east', '--kubeconfig', kubeconfigFile, '--zone', 'z1', '--region', 'r1', '--gateway', '192.0.2.7:15443', '--gateway', '[2001:db8::1]', '--server', url], withToken());
    expect(register.stderr).toBe('');
    expect(register.code).toBe(0);
    expect(register.stdout).toMatch(/^registered cluster east-9 \(network net-east\): (syncing|ready)/);

    const list = await meshfed(['cluster', 'list', '--server', url], withToken());
    expect(list.code).toBe(0);
    expect(list.stdout.split('\n')[0]).toMatch(/^NAME\s+NETWORK\s+LOCALITY\s+SOURCE\s+STATE\s+SERVICES\s+ENDPOINTS\s+GATEWAYS\s+REASON$/);
    expect(list.stdout).toMatch(/east-9\s+net-east\s+r1\/z1\s+kubernetes\s+/);
    expect(list.stdout).toContain('192.0.2.7:15443,[2001:db8::1]:15443');

    // MESHFED_SERVER works as --server does
    const deadline = Date.now() + 30_000;
    let cluster: ClusterJson | undefined;
    while (Date.now() < deadline) {
      const get = await meshfed(['cluster', 'get', 'east-9', '-o', 'json'], { ...withToken(), MESHFED_SERVER: url });
      expect(get.code).toBe(0);
      cluster = JSON.parse(get.stdout) as ClusterJson;
      if (cluster.state === 'ready' && cluster.endpoints === 1) break;
      await new Promise((done) => setTimeout(done, 300));
    }
    expect(cluster).toMatchObject({ name: 'east-9', state: 'ready', services: 1, endpoints: 1, origin: 'api' });

    const text = await meshfed(['cluster', 'get', 'east-9', '--server', url], withToken());
    expect(text.stdout).toMatch(/^name: +east-9$/m);
    expect(text.stdout).toMatch(/^state: +ready since /m);
    expect(text.stdout).toMatch(/^defined by: +registration at /m);

    const yaml = await meshfed(['cluster', 'list', '-o', 'yaml', '--server', url], withToken());
    expect((parseYaml(yaml.stdout) as { clusters: ClusterJson[] }).clusters.map((c) => c.name)).toEqual(['east-9']);

    for (const out of [register, list, text, yaml]) expect(out.stdout).not.toContain(kube.token);

    const remove = await meshfed(['cluster', 'remove', 'east-9', '--server', url], withToken());
    expect(remove).toMatchObject({ code: 0, stdout: 'removed cluster east-9\n' });
    const gone = await meshfed(['cluster', 'get', 'east-9', '--server', url], withToken());
    expect(gone.code).toBe(1);
    expect(gone.stderr).toContain('no cluster named east-9');
  });

  it("shows the server's error message and field, and exits 1, when the server refuses", async () => {
    expect((await meshfed(['cluster', 'register', 'dup-1', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--server', url], withToken())).code).toBe(0);
    const dup = await meshfed(['cluster', 'register', 'dup-1', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--server', url], withToken());
    expect(dup.code).toBe(1);
    expect(dup.stderr).toBe('meshfed: the server refused: cluster dup-1 is already registered (field: name)\n');

    const execFile = join(work, 'exec.kubeconfig');
    writeFileSync(
      execFile,
      'apiVersion: v1\nkind: Config\ncurrent-context: c\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\nusers: [{name: u, user: {exec: {command: /bin/sh, apiVersion: client.authentication.k8s.io/v1}}}]\n',
    );
    const exec = await meshfed(['cluster', 'register', 'evil', '--network', 'n1', '--kubeconfig', execFile, '--server', url], withToken());
    expect(exec.code).toBe(1);
    expect(exec.stderr).toContain('exec credential plugins are not allowed');
    expect(exec.stderr).toContain('(field: kubeconfig.users[0].user.exec)');

    const badName = await meshfed(['cluster', 'register', 'Bad_Name', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--server', url], withToken());
    expect(badName.code).toBe(1);
    expect(badName.stderr).toContain('(field: name)');

    const badAddress = await meshfed(['cluster', 'register', 'gw-1', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--gateway', 'not_a_host!:15443', '--server', url], withToken());
    expect(badAddress.code).toBe(1);
    expect(badAddress.stderr).toContain('(field: gateways[0].address)');

    const list = await meshfed(['cluster', 'list', '-o', 'json', '--server', url], withToken());
    expect((JSON.parse(list.stdout) as { clusters: ClusterJson[] }).clusters.map((c) => c.name)).toEqual(['dup-1']);
  });

  it('exits 1 with the URL when the server cannot be reached, and with a hint on a wrong token', async () => {
    const down = await meshfed(['cluster', 'list', '--server', 'http://127.0.0.1:9'], withToken());
    expect(down.code).toBe(1);
    expect(down.stderr).toContain('cannot reach the meshfed API at http://127.0.0.1:9');
    const wrong = await meshfed(['cluster', 'list', '--server', url], { MESHFED_API_TOKEN: 'wrong-token-wrong-token-wrong' });
    expect(wrong.code).toBe(1);
    expect(wrong.stderr).toContain('the bearer token is not valid');
    expect(wrong.stderr).toContain('MESHFED_API_TOKEN');
    // --token-file works as MESHFED_API_TOKEN does
    const fromFile = await meshfed(['cluster', 'list', '--server', url, '--token-file', join(stateDir, 'api-token')]);
    expect(fromFile.code).toBe(0);
  });

  it('exits 2 on usage errors and sends nothing', async () => {
    const cases: [string[], RegExp][] = [
      [['cluster', 'register', 'x1', '--kubeconfig', kubeconfigFile], /--network/],
      [['cluster', 'register', 'x1', '--network', 'n1'], /give --kubeconfig FILE or --remote-secret FILE/],
      [['cluster', 'register', 'x1', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--remote-secret', kubeconfigFile], /not both/],
      [['cluster', 'register', 'x1', '--network', 'n1', '--kubeconfig', kubeconfigFile, '--gateway', '192.0.2.1:99999'], /--gateway 192\.0\.2\.1:99999: the port must be 1-65535/],
      [['cluster', 'register', 'x1', '--network', 'n1', '--kubeconfig', join(work, 'missing')], /--kubeconfig: .* does not exist/],
      [['cluster', 'list', '-o', 'xml'], /unknown output format "xml"/],
      [['cluster', 'list', '--server', 'ftp://x'], /use an http:\/\/ or https:\/\/ URL/],
      [['cluster', 'get'], /missing required argument/],
      [['cluster', 'nonsense'], /unknown command/],
    ];
    const runs = await Promise.all(cases.map(([args]) => meshfed([...args, ...(args.includes('--server') ? [] : ['--server', url])], withToken())));
    for (const [index, [args, message]] of cases.entries()) {
      expect(runs[index]?.code, args.join(' ')).toBe(2);
      expect(runs[index]?.stderr, args.join(' ')).toMatch(message);
    }
    const noToken = await meshfed(['cluster', 'list', '--server', url]);
    expect(noToken.code).toBe(2);
    expect(noToken.stderr).toContain('no API token: set MESHFED_API_TOKEN or give --token-file FILE');
    const list = await meshfed(['cluster', 'list', '-o', 'json', '--server', url], withToken());
    expect((JSON.parse(list.stdout) as { clusters: ClusterJson[] }).clusters.map((c) => c.name)).toEqual(['dup-1']);
  });

  it('has help for every cluster subcommand', async () => {
    const help = await meshfed(['cluster', '--help']);
    expect(help.code).toBe(0);
    for (const sub of ['register', 'list', 'get', 'remove']) expect(help.stdout).toMatch(new RegExp(`\\n  ${sub}\\b`));
    const top = await meshfed(['--help']);
    expect(top.stdout).toMatch(/cluster \[options\]\s+register, list/);
  });
});
