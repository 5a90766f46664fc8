import { cleanEnv, MESHFED_CLI, startServe as startServeProcess, type Serve } from './meshfed-bin.js';
import { spawnSync, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { Resolver } from 'node:dns/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import type { Readable } from 'node:stream';
import { parse as parseYaml } from 'yaml';
import { afterAll, describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '../..');
const CLI = MESHFED_CLI;
const work = mkdtempSync(join(tmpdir(), 'meshfed-serve-'));
const children = new Set<ChildProcessByStdio<null, Readable, Readable>>();

afterAll(() => {
  for (const child of children) if (child.exitCode === null) child.kill('SIGKILL');
  rmSync(work, { recursive: true, force: true });
});

async function waitFor(condition: () => boolean, limitMs: number): Promise<void> {
  const deadline = Date.now() + limitMs;
  while (!condition()) {
    if (Date.now() > deadline) throw new Error('condition not met in time');
    await new Promise((done) => setTimeout(done, 100));
  }
}

const startServe = (args: string[], env: NodeJS.ProcessEnv = {}): Promise<Serve> => startServeProcess(args, { cwd: work, children, env });

/** What npm start runs, with free ports. */
// the demo's built-in gateways (15443-15445) and workloads (127.0.{1,2,3}.x) listen on fixed addresses: left out here
// so a running `npm start` does not collide; test/sim/demo.test.ts runs serve with them; nor are their gateways probed,
// as nothing runs them here
const demoArgs = (stateDir: string): string[] => ['--demo', '--config', join(ROOT, 'federation/demo.yaml'), '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--sync-every', '1s', '--no-gateways', '--no-workloads', '--no-gateway-probe'];

describe('meshfed serve --demo --config federation/demo.yaml (what npm start runs)', () => {
  it('brings up the trust domain and CA service, proves a cross-cluster mTLS handshake, and stops cleanly on SIGINT', async () => {
    const run = await startServe(demoArgs(join(work, 'demo')));
    const { stdout } = run;
    expect(stdout).toContain('trust domain   meshfed.local');
    expect(stdout).toMatch(/intermediates {2}east-1 .*east-2 .*west-1 /);
    expect(stdout).toMatch(/CA service {5}127\.0\.0\.1:\d+ istio\.v1\.auth\.IstioCertificateService/);
    expect(stdout).toContain('west-1 saw spiffe://meshfed.local/ns/default/sa/reviews');
    expect(stdout).toContain('east-1 saw spiffe://meshfed.local/ns/default/sa/productpage');
    expect(stdout).toMatch(/DNS {12}127\.0\.0\.1:\d+ \(UDP and TCP\): ratings\.global, reviews\.global;/);
    expect(stdout + run.stderr()).not.toContain('PRIVATE KEY');

    // a rotation started from another shell reaches the running server: it reloads the state dir and renews its own certificate
    const rotate = spawnSync(process.execPath, [...CLI, 'ca', 'rotate', 'start', '--state-dir', join(work, 'demo')], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    expect(rotate.status).toBe(0);
    await waitFor(() => run.stderr().includes('CA service certificate renewed'), 20_000);
    expect(run.stderr()).toContain('picked up changes to the state dir');
    const renewedLine = run.stderr().split('\n').find((line) => line.includes('CA service certificate renewed')) ?? '';
    expect((JSON.parse(renewedLine) as { bundleSequence: number }).bundleSequence).toBe(2);
    expect(await run.stop()).toBe(0);
  });

  it('serves the demo clusters through the registry and the API, shows them in the summary, and keeps the API token secret after the first start', async () => {
    const stateDir = join(work, 'registry');
    const run = await startServe(demoArgs(stateDir));
    const { stdout } = run;
    // the summary: every cluster with network, locality, state, services, endpoints and gateway, and an honest note
    expect(stdout).toMatch(/clusters {7}3 in 2 networks \(federation demo from .*demo\.yaml\)/);
    expect(stdout).toMatch(/east-1 +net-east +us-east\/us-east-1a +static \(file\) +ready +3 +4 +127\.0\.0\.1:15443/);
    expect(stdout).toMatch(/east-2 +net-east +us-east\/us-east-1b +static \(file\) +ready +3 +4 +127\.0\.0\.1:15444/);
    expect(stdout).toMatch(/west-1 +net-west +us-west\/us-west-1a +static \(file\) +ready +3 +4 +127\.0\.0\.1:15445/);
    // run without its workloads, the summary says the endpoints are only the registry's data
    expect(stdout).toContain("registry's data, not running workloads");
    expect(run.api).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    expect(stdout).toContain(`npx meshfed cluster list --server ${run.api}`);

    // the token: printed once, with where it is stored, 0600, never logged
    const tokenFile = join(stateDir, 'api-token');
    const token = readFileSync(tokenFile, 'utf8').trim();
    expect(stdout).toContain(`API token      ${token}`);
    expect(stdout).toContain(`generated now and stored in ${tokenFile} (0600)`);
    expect(statSync(tokenFile).mode & 0o777).toBe(0o600);
    expect(run.stderr()).not.toContain(token);

    // the API: open health endpoints, the clusters behind the token
    expect((await fetch(`${run.api}/healthz`)).status).toBe(200);
    expect((await fetch(`${run.api}/readyz`)).status).toBe(200);
    const metrics = await (await fetch(`${run.api}/metrics`)).text();
    expect(metrics).toContain('meshfed_cluster_state{cluster="east-1",state="ready"} 1');
    expect(metrics).toContain('process_cpu_user_seconds_total');
    expect((await fetch(`${run.api}/api/v1/clusters`)).status).toBe(401);
    const list = (await (await fetch(`${run.api}/api/v1/clusters`, { headers: { authorization: `Bearer ${token}` } })).json()) as { clusters: { name: string; state: string; endpoints: number }[] };
    expect(list.clusters.map((c) => [c.name, c.state, c.endpoints])).toEqual([
      ['east-1', 'ready', 4],
      ['east-2', 'ready', 4],
      ['west-1', 'ready', 4],
    ]);

    // the xDS server, and what a proxy in west-1 would get from it, through meshfed xds dump
    expect(stdout).toMatch(/xDS {12}127\.0\.0\.1:\d+ ADS, state of the world and delta/);
    expect(stdout).toContain(`npx meshfed xds dump --node-cluster east-1 --network net-east --locality us-east/us-east-1a --server ${run.api}`);
    const dump = spawnSync(process.execPath, [...CLI, 'xds', 'dump', '--node-cluster', 'west-1', '--network', 'net-west', '--locality', 'us-west/us-west-1a', '--server', run.api], {
      encoding: 'utf8',
      env: cleanEnv({ MESHFED_API_TOKEN: token }),
      timeout: 60_000,
    });
    expect(dump.stderr).toBe('');
    expect(dump.status).toBe(0);
    const dumped = JSON.parse(dump.stdout) as { kind: string; listeners: { resources: { name: string }[] }; endpoints: { resources: unknown[] } };
    expect(dumped.kind).toBe('proxyless');
    expect(dumped.listeners.resources.map((l) => l.name)).toContain('reviews.default.svc.cluster.local:9080');
    const reviews = JSON.stringify(dumped.endpoints.resources.find((r) => JSON.stringify(r).includes('"outbound|9080||reviews.default.svc.cluster.local"')));
    // west-1's own endpoints direct; east-1 and east-2 only through their gateways, each standing in its own locality
    expect(reviews).toContain('127.0.3.1');
    expect(reviews).toContain('"port_value":15443');
    expect(reviews).toContain('"port_value":15444');
    expect(reviews).not.toContain('127.0.1.1');
    const badDump = spawnSync(process.execPath, [...CLI, 'xds', 'dump', '--node-cluster', 'Not_A_Name', '--server', run.api], { encoding: 'utf8', env: cleanEnv({ MESHFED_API_TOKEN: token }), timeout: 60_000 });
    expect(badDump.status).toBe(1);
    expect(badDump.stderr).toContain('(field: cluster)');
    expect(await run.stop()).toBe(0);

    // second start: the same token, not shown again
    const again = await startServe(demoArgs(stateDir));
    expect(again.stdout).not.toContain(token);
    expect(again.stdout).toContain(`API token      in ${tokenFile}`);
    expect(readFileSync(tokenFile, 'utf8').trim()).toBe(token);
    expect((await fetch(`${again.api}/api/v1/clusters`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(200);
    expect(again.stderr()).not.toContain(token);
    expect(await again.stop()).toBe(0);

    // MESHFED_API_TOKEN wins over the stored token, and is never printed
    const envToken = 'operator-chosen-token-0123456789';
    const fromEnv = await startServe(demoArgs(stateDir), { MESHFED_API_TOKEN: envToken });
    expect(fromEnv.stdout).toContain('API token      from MESHFED_API_TOKEN');
    expect(fromEnv.stdout + fromEnv.stderr()).not.toContain(envToken);
    expect((await fetch(`${fromEnv.api}/api/v1/clusters`, { headers: { authorization: `Bearer ${envToken}` } })).status).toBe(200);
    expect((await fetch(`${fromEnv.api}/api/v1/clusters`, { headers: { authorization: `Bearer ${token}` } })).status).toBe(401);
    expect(await fromEnv.stop()).toBe(0);
  });

  it('refuses to start on a bad federation file or a damaged registrations file, saying which and where', () => {
    const bad = join(work, 'bad.yaml');
    writeFileSync(bad, 'apiVersion: meshfed.io/v1alpha1\nkind: Cluster\nmetadata: { name: a }\nspec: { network: n1, gateways: [{ address: 192.0.2.1, port: 0 }] }\n');
    const run = spawnSync(process.execPath, [...CLI, 'serve', '--config', bad, '--state-dir', join(work, 'bad-state'), '--trust-domain', 'bad.test', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    expect(run.status).toBe(1);
    expect(run.stderr).toContain(`${bad}, document 1 (Cluster a): spec.gateways[0].port: must be 1-65535`);

    const stateDir = join(work, 'damaged-state');
    mkdirSync(stateDir, { recursive: true });
    writeFileSync(join(stateDir, 'clusters.json'), '{"registrations": [');
    const damaged = spawnSync(process.execPath, [...CLI, 'serve', '--state-dir', stateDir, '--trust-domain', 'bad.test', '--cluster', 'c1', '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    expect(damaged.status).toBe(1);
    expect(damaged.stderr).toContain(`${join(stateDir, 'clusters.json')} is damaged: not valid JSON`);
    expect(readFileSync(join(stateDir, 'clusters.json'), 'utf8')).toBe('{"registrations": [');
    // refused before anything was created: no CA, no token
    expect(readdirSync(stateDir)).toEqual(['clusters.json']);
    expect(existsSync(join(work, 'bad-state'))).toBe(false);
  });

  it('takes gateway probe timings below a second, says them in the summary, and refuses bad ones before starting', async () => {
    const probing = (stateDir: string): string[] => demoArgs(stateDir).filter((arg) => arg !== '--no-gateway-probe');
    const refused = (flag: string, value: string) =>
      spawnSync(process.execPath, [...CLI, 'serve', ...probing(join(work, 'probe-refused')), flag, value], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
    const period = refused('--gateway-probe-period', '250');
    expect(period.status).not.toBe(0);
    expect(period.stderr).toContain('invalid duration "250": use a number and a unit (ms, s, m, h, d, w, y)');
    const failures = refused('--gateway-probe-failures', '0');
    expect(failures.status).toBe(2);
    expect(failures.stderr).toContain('--gateway-probe-failures must be a whole number of at least 1, not "0"');
    expect(existsSync(join(work, 'probe-refused'))).toBe(false);

    const run = await startServe([...probing(join(work, 'probe-fast')), '--gateway-probe-period', '250ms', '--gateway-probe-timeout', '200ms', '--gateway-probe-failures', '2']);
    expect(run.stdout).toContain('gateway probes every 0.25 s (timeout 0.2 s): down after 2 failures, up after 1 success;');
    // stopped as soon as the summary is out: the signal handlers were in place before it
    expect(await run.stop()).toBe(0);
  });

  it('exits 1 naming the address when the API port is taken, and keeps no token it never showed', async () => {
    const blocker = createServer();
    await new Promise<void>((done) => blocker.listen(0, '127.0.0.1', done));
    const { port } = blocker.address() as AddressInfo;
    try {
      const stateDir = join(work, 'port-taken');
      const run = spawnSync(process.execPath, [...CLI, 'serve', '--state-dir', stateDir, '--trust-domain', 'port.test', '--cluster', 'c1', '--api', `127.0.0.1:${port}`, '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'], { encoding: 'utf8', env: cleanEnv(), timeout: 60_000 });
      expect(run.status).toBe(1);
      expect(run.stderr).toContain(`the API cannot listen on 127.0.0.1:${port}: the address is in use`);
      expect(existsSync(join(stateDir, 'api-token'))).toBe(false);
    } finally {
      blocker.close();
    }
  });
});

describe('meshfed vd against a running meshfed serve', () => {
  it('applies, lists, gets and deletes virtual destinations; DNS and the summary follow; bad files are refused naming the field', async () => {
    const config = join(work, 'vd-federation.yaml');
    writeFileSync(
      config,
      [
        'apiVersion: meshfed.io/v1alpha1',
        'kind: Federation',
        'metadata: { name: vd-test }',
        'spec: { trustDomain: vd.test }',
        '---',
        'apiVersion: meshfed.io/v1alpha1',
        'kind: Cluster',
        'metadata: { name: c1 }',
        'spec:',
        '  network: n1',
        '  region: r1',
        '  services:',
        '    - name: cart',
        '      ports: [{ name: http, port: 8080 }]',
        '      endpoints: [{ address: 127.0.9.1, ports: [{ name: http, port: 8080 }] }, { address: 127.0.9.2, ports: [{ name: http, port: 8080 }], health: unready }]',
        '',
      ].join('\n'),
    );
    const stateDir = join(work, 'vd-state');
    const run = await startServe(['--config', config, '--state-dir', stateDir, '--api', '127.0.0.1:0', '--xds', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0', '--no-gateways']);
    const dnsPort = /DNS {12}127\.0\.0\.1:(\d+) /.exec(run.stdout)?.[1] ?? '';
    const env = cleanEnv({ MESHFED_API_TOKEN: readFileSync(join(stateDir, 'api-token'), 'utf8').trim(), MESHFED_SERVER: run.api });
    const vd = (args: string[], input?: string) => spawnSync(process.execPath, [...CLI, 'vd', ...args], { encoding: 'utf8', env, timeout: 60_000, ...(input !== undefined ? { input } : {}) });
    const resolver = new Resolver();
    resolver.setServers([`127.0.0.1:${dnsPort}`]);

    expect(vd(['list']).stdout).toContain('no virtual destinations');
    const file = join(work, 'cart-vd.yaml');
    writeFileSync(
      file,
      ['apiVersion: meshfed.io/v1alpha1', 'kind: VirtualDestination', 'metadata: { name: cart }', 'spec:', '  hostname: cart.shop.global', '  ports: [{ number: 80, protocol: HTTP, targetPort: 8080, name: http }]', '  backends: [{ name: cart }]', ''].join('\n'),
    );
    const applied = vd(['apply', '-f', file]);
    expect(applied.stderr).toBe('');
    expect(applied.stdout).toBe('virtualdestination/cart created\n');

    const listed = vd(['list']);
    expect(listed.stdout).toMatch(/^NAME +HOSTNAME +PORTS +FAILOVER +VIP +HEALTHY +CLUSTERS +SOURCE\ncart +cart\.shop\.global +80\/HTTP→8080 +locality +240\.240\.\d+\.\d+ +1\/2 +c1 1\/2 +api\n$/);
    const vip = /240\.240\.\d+\.\d+/.exec(listed.stdout)?.[0];
    // the DNS server picked the new hostname up without a restart, with the VIP the API shows
    const deadline = Date.now() + 20_000;
    let answered: string[] = [];
    while (Date.now() < deadline) {
      answered = await resolver.resolve4('cart.shop.global').catch(() => []);
      if (answered.length) break;
      await new Promise((done) => setTimeout(done, 100));
    }
    expect(answered).toEqual([vip]);
    expect(await resolver.resolveSrv('_http._tcp.cart.shop.global')).toEqual([{ name: 'cart.shop.global', port: 80, priority: 0, weight: 0 }]);

    // get -o yaml gives a document apply takes again
    const yaml = vd(['get', 'cart', '-o', 'yaml']).stdout;
    expect(yaml).toContain('hostname: cart.shop.global');
    expect(vd(['get', 'cart']).stdout).toMatch(/endpoints: +1 healthy of 2\n/);
    expect(yaml).toMatch(/\nstatus:\n/);
    const reapplied = vd(['apply', '-f', '-'], yaml);
    expect(reapplied.stderr).toBe('');
    expect(reapplied.stdout).toBe('virtualdestination/cart configured\n');

    // the Istio resources for c1's mesh: YAML on standard output, what Istio cannot express on standard error
    const exported = vd(['export', '--cluster', 'c1']);
    expect(exported.status).toBe(0);
    const documents = exported.stdout.split(/^---$/m).map((d) => parseYaml(d) as { kind: string; spec: { hosts?: string[]; addresses?: string[] } });
    expect(documents.map((d) => d.kind)).toEqual(['ServiceEntry', 'DestinationRule']);
    expect(documents[0]?.spec.hosts).toEqual(['cart.shop.global']);
    expect(documents[0]?.spec.addresses).toContain(vip);
    expect(exported.stderr).toMatch(/^warning: /m);
    expect(vd(['export', '--cluster', 'nowhere']).stderr).toContain('nowhere');

    // a bad file is refused before anything is sent, naming document and field
    const bad = join(work, 'bad-vd.yaml');
    writeFileSync(bad, 'apiVersion: meshfed.io/v1alpha1\nkind: VirtualDestination\nmetadata: { name: bad }\nspec: { hostname: "*.shop.global", ports: [{ number: 80, protocol: HTTP }], backends: [{ name: cart }] }\n');
    const refused = vd(['apply', '-f', bad]);
    expect(refused.status).toBe(2);
    expect(refused.stderr).toContain('spec.hostname: must not be a wildcard');
    const cluster = vd(['apply', '-f', config]);
    expect(cluster.status).toBe(2);
    expect(cluster.stderr).toContain('vd apply takes VirtualDestination documents only');
    expect(vd(['get', 'bad']).status).toBe(1);

    expect(vd(['delete', 'cart']).stdout).toBe('virtualdestination/cart deleted\n');
    const gone = Date.now() + 20_000;
    let code = '';
    while (Date.now() < gone && code === '') {
      code = await resolver.resolve4('cart.shop.global').then(() => '', (error: unknown) => (error as NodeJS.ErrnoException).code ?? 'error');
      if (code === '') await new Promise((done) => setTimeout(done, 100));
    }
    expect(['ENOTFOUND', 'EREFUSED']).toContain(code);
    expect(vd(['delete', 'cart']).stderr).toContain('no virtual destination named cart');
    expect(await run.stop()).toBe(0);
  });
});
