/**
 * Hard isolation (issue 7): every simulated cluster in a network namespace of its own, so that traffic between
 * networks can only flow the way split horizon sends it, through the other network's east-west gateway. Needs root
 * (`ip netns add`); skipped, saying so, elsewhere.
 *
 *   mf<pid>-core   meshfed serve (xDS, CA, DNS, API; probes the clusters' workloads) on 10.77.0.1 and 127.0.0.1
 *   mf<pid>-east1  net-east  us-east/us-east-1a  reviews 10.78.1.1-2  gateway 10.77.1.2:15443
 *   mf<pid>-east2  net-east  us-east/us-east-1b  reviews 10.78.2.1-2  gateway 10.77.2.2:15443
 *   mf<pid>-west1  net-west  us-west/us-west-1a  reviews 10.78.3.1-2  gateway 10.77.3.2:15443
 *
 * Each cluster runs `meshfed sim-cluster` (its workloads, SVIDs from the shared state dir) and `meshfed gateway` (routes
 * from meshfed's xDS) in its namespace; west-1's reviews run in a process of their own, so they can die alone. A real
 * @grpc/grpc-js-xds client in west-1's namespace calls reviews.global. The hub forwards between the namespaces but
 * refuses a cluster the workloads of another network (test/sim/netns-topology.ts). The ports inside the namespaces
 * are fixed (the federation file names them), which is safe: nothing else lives in namespaces this test made.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { stringify } from 'yaml';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { cleanEnv, MESHFED_CLI } from '../cli/meshfed-bin.js';
import { eventually, WAIT_MS } from './helpers.js';
import {
  buildTopology,
  CONTROL_PLANE,
  hostInterfaces,
  listNamespaces,
  namespacePids,
  netnsUnavailable,
  removeOwnNamespaces,
  removeStaleNamespaces,
  runInNamespace,
  startInNamespace,
  type NetnsCluster,
  type NsProcess,
  type Topology,
} from './netns-topology.js';

const ROOT = resolve(import.meta.dirname, '../..');
const NODE = process.execPath;
const GATEWAY_PORT = 15443;
const REVIEWS_PORT = 9080;
const RATINGS_PORT = 9080;
const DEMO_CLIENT = 'spiffe://meshfed.local/ns/default/sa/demo-client';
const CLUSTERS = [
  { name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', hosts: [1, 2, 3] },
  { name: 'east-2', network: 'net-east', region: 'us-east', zone: 'us-east-1b', hosts: [1, 2, 3] },
  { name: 'west-1', network: 'net-west', region: 'us-west', zone: 'us-west-1a', hosts: [1, 2, 3] },
] as const;
/** a TCP connect from inside a namespace: prints `connected`, or why not (5 s at most) */
const CONNECT_PROBE = `const s = require('node:net').connect(Number(process.argv[2]), process.argv[1]);
s.setTimeout(5000, () => { console.log('timeout'); process.exit(1); });
s.on('connect', () => { console.log('connected'); process.exit(0); });
s.on('error', (e) => { console.log(e.code); process.exit(1); });`;
/** a gateway's Prometheus text from its admin port, inside its namespace */
const FETCH_METRICS = `fetch(process.argv[1]).then((r) => r.text()).then((t) => { console.log(t); process.exit(0); }, (e) => { console.error(e.message); process.exit(1); });`;

const unavailable = netnsUnavailable();

interface Reply {
  ok: boolean;
  cluster?: string;
  endpoint?: string;
  peer?: string;
  error?: string;
}

interface Explained {
  groups: { priority: number; endpoints: { address: string; health: string; via: string }[] }[];
}

function federationFile(topology: Topology): string {
  const docs: unknown[] = [{ apiVersion: 'meshfed.io/v1alpha1', kind: 'Federation', metadata: { name: 'netns' }, spec: { trustDomain: 'meshfed.local' } }];
  for (const spec of CLUSTERS) {
    const c = topology.cluster(spec.name);
    docs.push({
      apiVersion: 'meshfed.io/v1alpha1',
      kind: 'Cluster',
      metadata: { name: spec.name },
      spec: {
        network: spec.network,
        region: spec.region,
        zone: spec.zone,
        gateways: [{ address: c.address, port: GATEWAY_PORT }],
        services: [
          {
            name: 'reviews',
            ports: [{ name: 'grpc', port: REVIEWS_PORT, appProtocol: 'grpc' }],
            labels: { app: 'reviews' },
            endpoints: [1, 2].map((host) => ({ address: c.workload(host), ports: [{ name: 'grpc', port: REVIEWS_PORT }], serviceAccount: 'reviews' })),
          },
          {
            name: 'ratings',
            ports: [{ name: 'http', port: RATINGS_PORT, appProtocol: 'http' }],
            labels: { app: 'ratings' },
            endpoints: [{ address: c.workload(3), ports: [{ name: 'http', port: RATINGS_PORT }], serviceAccount: 'ratings' }],
          },
        ],
      },
    });
  }
  docs.push({
    apiVersion: 'meshfed.io/v1alpha1',
    kind: 'VirtualDestination',
    metadata: { name: 'reviews' },
    spec: { hostname: 'reviews.global', ports: [{ number: REVIEWS_PORT, protocol: 'GRPC', name: 'grpc' }], backends: [{ namespace: 'default', name: 'reviews' }], failover: { policy: 'locality' } },
  });
  return docs.map((d) => stringify(d)).join('---\n');
}

/** Every socket address (`host:port`) anywhere in a decoded xDS resource. */
function socketAddresses(value: unknown, into: string[] = []): string[] {
  if (Array.isArray(value)) {
    for (const item of value) socketAddresses(item, into);
  } else if (typeof value === 'object' && value !== null) {
    const record = value as Record<string, unknown>;
    const socket = record.socket_address as { address?: string; port_value?: number } | undefined;
    if (socket?.address !== undefined) into.push(`${socket.address}:${String(socket.port_value ?? '')}`);
    for (const [key, child] of Object.entries(record)) if (key !== 'socket_address') socketAddresses(child, into);
  }
  return into;
}

describe.skipIf(unavailable !== undefined)(`each cluster in its own network namespace${unavailable ? ` (skipped: ${unavailable})` : ''}`, () => {
  const work = mkdtempSync(join(tmpdir(), 'meshfed-netns-'));
  const stateDir = join(work, 'state');
  const configPath = join(work, 'federation.yaml');
  const processes: NsProcess[] = [];
  let topology: Topology;
  let serve: NsProcess;
  let westReviews: NsProcess;
  let client: NsProcess | undefined;
  const gateways = new Map<string, NsProcess>();
  let api = '';
  let xds = '';
  const env = (extra: NodeJS.ProcessEnv = {}): NodeJS.ProcessEnv => cleanEnv({ MESHFED_LOG_LEVEL: 'info', ...extra });
  const apiEnv = (): NodeJS.ProcessEnv => env({ MESHFED_API_TOKEN: readFileSync(join(stateDir, 'api-token'), 'utf8').trim() });

  const start = async (namespace: string, argv: string[], ready: string, extraEnv: NodeJS.ProcessEnv = {}): Promise<NsProcess> => {
    const p = await startInNamespace(namespace, argv, { cwd: ROOT, env: env(extraEnv), ready, limitMs: WAIT_MS });
    processes.push(p);
    return p;
  };
  const simCluster = (c: NetnsCluster, extra: string[]): Promise<NsProcess> =>
    start(c.namespace, [NODE, ...MESHFED_CLI, 'sim-cluster', c.name, '--config', configPath, '--state-dir', stateDir, '--xds', xds, ...extra], 'Ctrl-C stops');
  const connect = async (from: NetnsCluster, address: string, port: number): Promise<string> =>
    (await runInNamespace(from.namespace, [NODE, '-e', CONNECT_PROBE, address, String(port)], { cwd: ROOT, env: env(), limitMs: WAIT_MS })).stdout.trim();
  /** `meshfed explain` from a cluster, run in the hub (the API listens on the hub's loopback) */
  const explain = async (from: string): Promise<Explained> => {
    const run = await runInNamespace(topology.core, [NODE, ...MESHFED_CLI, 'explain', '--from', from, 'reviews.global', '--server', api, '-o', 'json'], { cwd: ROOT, env: apiEnv(), limitMs: WAIT_MS });
    if (run.code !== 0) throw new Error(`meshfed explain failed: ${run.stderr}`);
    return JSON.parse(run.stdout) as Explained;
  };
  const health = async (from: string): Promise<Map<string, { health: string; via: string }>> =>
    new Map((await explain(from)).groups.flatMap((g) => g.endpoints.map((e) => [e.address, { health: e.health, via: e.via }] as const)));
  /** connections the cluster's gateway forwarded for reviews.global (its admin port is on its namespace's loopback) */
  const forwarded = async (cluster: string): Promise<number> => {
    const admin = /"admin":"(127\.0\.0\.1:\d+)"/.exec(gateways.get(cluster)?.output() ?? '')?.[1];
    if (admin === undefined) throw new Error(`no admin address in ${cluster}'s gateway log`);
    const run = await runInNamespace(topology.cluster(cluster).namespace, [NODE, '-e', FETCH_METRICS, `http://${admin}/metrics`], { cwd: ROOT, env: env(), limitMs: WAIT_MS });
    if (run.code !== 0) throw new Error(`${cluster}'s gateway metrics: ${run.stderr}`);
    const line = run.stdout.split('\n').find((l) => l.startsWith('meshfed_gateway_connections_total{') && l.includes('outcome="forwarded"') && l.includes('sni="reviews.global"'));
    return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
  };
  const replies = (): Reply[] =>
    (client?.output() ?? '')
      .split('\n')
      .filter((line) => line.startsWith('{'))
      .map((line) => JSON.parse(line) as Reply);
  /** waits for `count` replies in a row, after the first `skip`, all from `clusters`; returns them */
  const answeredBy = async (clusters: readonly string[], skip: number, count = 5): Promise<Reply[]> => {
    let run: Reply[] = [];
    await eventually(() => {
      const tail = replies().slice(skip);
      const last = tail.slice(-count);
      run = last;
      return last.length === count && last.every((r) => r.ok && clusters.includes(r.cluster ?? ''));
    }, `${String(count)} replies in a row from ${clusters.join(' or ')} (lately: ${JSON.stringify(replies().slice(-3))})`, 2 * WAIT_MS);
    return run;
  };

  beforeAll(async () => {
    removeStaleNamespaces();
    topology = buildTopology(CLUSTERS);
    writeFileSync(configPath, federationFile(topology));
    serve = await start(
      topology.core,
      [NODE, ...MESHFED_CLI, 'serve', '--config', configPath, '--state-dir', stateDir, '--remote-workloads', '--xds', `${CONTROL_PLANE}:0`, '--api', '127.0.0.1:0', '--dns', '127.0.0.1:0', '--ca-listen', '127.0.0.1:0'],
      'Ctrl-C stops',
    );
    api = /API {12}(http:\/\/127\.0\.0\.1:\d+)/.exec(serve.output())?.[1] ?? '';
    xds = /xDS {12}(10\.77\.0\.1:\d+)/.exec(serve.output())?.[1] ?? '';
    expect(api).not.toBe('');
    expect(xds).not.toBe('');
    const [east1, east2, west1] = CLUSTERS.map((c) => topology.cluster(c.name)) as [NetnsCluster, NetnsCluster, NetnsCluster];
    await Promise.all([
      simCluster(east1, []),
      simCluster(east2, []),
      simCluster(west1, ['--service', 'ratings']),
      // a directory of its own: both west-1 processes write the demo client's SVID, which must not mix two keys
      simCluster(west1, ['--service', 'reviews', '--dir', join(stateDir, 'sim-west-1-reviews')]).then((p) => (westReviews = p)),
      ...topology.clusters.map((c) =>
        start(c.namespace, [NODE, ...MESHFED_CLI, 'gateway', '--cluster', c.name, '--network', c.network, '--xds', xds, '--listen', `${c.address}:${String(GATEWAY_PORT)}`, '--admin', '127.0.0.1:0', '--drain', '1s'], 'gateway ready').then((p) =>
          gateways.set(c.name, p),
        ),
      ),
    ]);
  }, 4 * WAIT_MS);

  afterAll(async () => {
    // what the last test did not stop (it failed first, or beforeAll did): killed with the namespaces they run in
    await Promise.all(processes.map((p) => p.stop('SIGKILL')));
    removeOwnNamespaces();
    rmSync(work, { recursive: true, force: true });
  }, WAIT_MS);

  it('serve reports every cluster\'s workloads ready, probed across the namespaces; sim-cluster --service runs only that service', async () => {
    expect(serve.output()).toMatch(/remote workloads 9 in east-1, east-2, west-1 \(run elsewhere\)/);
    expect(westReviews.output()).toContain('workload       west-1/default/reviews/10.78.3.1 on 10.78.3.1:9080 (grpc) as spiffe://meshfed.local/ns/default/sa/reviews');
    expect(westReviews.output()).not.toContain('ratings');
    // a client in a cluster sees its own network's workloads directly: east-1 sees the four east ones, west-1 its two
    let seen: [string, { health: string; via: string }][] = [];
    await eventually(async () => {
      seen = [...(await health('east-1')), ...(await health('west-1'))].filter(([, e]) => e.via === 'direct');
      return seen.length === 6 && seen.every(([, e]) => e.health === 'HEALTHY');
    }, 'meshfed to see all six reviews workloads ready').catch((error: unknown) => {
      throw new Error(`${(error as Error).message}; meshfed explain from east-1 and west-1: ${JSON.stringify(seen)}`);
    });
  }, 2 * WAIT_MS);

  it('the isolation is real: west-1 cannot reach an east workload, only the east gateways; east-2 reaches east-1 directly', async () => {
    const [east1, east2, west1] = CLUSTERS.map((c) => topology.cluster(c.name)) as [NetnsCluster, NetnsCluster, NetnsCluster];
    expect(await connect(west1, east1.workload(1), REVIEWS_PORT)).not.toBe('connected');
    expect(await connect(west1, east2.workload(1), REVIEWS_PORT)).not.toBe('connected');
    expect(await connect(east1, west1.workload(1), REVIEWS_PORT)).not.toBe('connected');
    expect(await connect(west1, east1.address, GATEWAY_PORT)).toBe('connected');
    expect(await connect(west1, east2.address, GATEWAY_PORT)).toBe('connected');
    // the same network is flat, as Istio assumes
    expect(await connect(east2, east1.workload(1), REVIEWS_PORT)).toBe('connected');
    expect(await connect(west1, west1.workload(1), REVIEWS_PORT)).toBe('connected');
  }, 2 * WAIT_MS);

  it("what west-1 is sent for the east endpoints is the east gateways' addresses only", async () => {
    const [east1, east2, west1] = CLUSTERS.map((c) => topology.cluster(c.name)) as [NetnsCluster, NetnsCluster, NetnsCluster];
    const run = await runInNamespace(
      topology.core,
      [NODE, ...MESHFED_CLI, 'xds', 'dump', '--node-cluster', 'west-1', '--network', 'net-west', '--locality', 'us-west/us-west-1a', '--server', api, '-o', 'json'],
      { cwd: ROOT, env: apiEnv(), limitMs: WAIT_MS },
    );
    expect(run.code, run.stderr).toBe(0);
    const dump = JSON.parse(run.stdout) as { endpoints: { resources: { cluster_name?: string }[] } };
    const reviews = dump.endpoints.resources.filter((r) => r.cluster_name?.endsWith('reviews.global'));
    expect(reviews.map((r) => r.cluster_name)).toHaveLength(1);
    const addresses = new Set(socketAddresses(reviews));
    expect(addresses).toEqual(new Set([`${west1.workload(1)}:${String(REVIEWS_PORT)}`, `${west1.workload(2)}:${String(REVIEWS_PORT)}`, `${east1.address}:${String(GATEWAY_PORT)}`, `${east2.address}:${String(GATEWAY_PORT)}`]));
    // meshfed explain says the same: west-1 sees the east clusters as their gateways, each standing for two endpoints
    const view = await health('west-1');
    expect([...view.keys()].sort()).toEqual([east1.address, east2.address, west1.workload(1), west1.workload(2)].sort());
    for (const c of [east1, east2]) expect(view.get(c.address)?.via).toBe(`gateway of ${c.name} (net-east), standing for 2 endpoints`);
  }, 2 * WAIT_MS);

  it("west-1's client is served by west-1; with west-1's reviews killed, by the east clusters through their gateways, mTLS end to end", async () => {
    const west1 = topology.cluster('west-1');
    const bootstrap = join(stateDir, 'sim', 'west-1', 'bootstrap.json');
    client = await start(west1.namespace, [NODE, '--import', 'tsx', 'test/sim/netns-client.ts'], '"ok":true', { GRPC_XDS_BOOTSTRAP: bootstrap });
    const local = await answeredBy(['west-1'], 0);
    expect(new Set(local.map((r) => r.peer))).toEqual(new Set([DEMO_CLIENT]));

    const before = replies().length;
    const viaEast = async (): Promise<number> => (await forwarded('east-1')) + (await forwarded('east-2'));
    const forwardedBefore = await viaEast();
    await westReviews.stop('SIGKILL');
    await eventually(async () => {
      const view = await health('west-1');
      return [1, 2].every((host) => view.get(west1.workload(host))?.health === 'UNHEALTHY');
    }, "meshfed's probes to find west-1's reviews gone");
    const remote = await answeredBy(['east-1', 'east-2'], before);
    expect(new Set(remote.map((r) => r.peer))).toEqual(new Set([DEMO_CLIENT]));
    // they answered from addresses west-1 has no route to (the test above): the gateway was the only way
    for (const r of remote) expect(r.endpoint).toMatch(/^10\.78\.[12]\.[12]:9080$/);
    expect(await viaEast()).toBeGreaterThan(forwardedBefore);
  }, 4 * WAIT_MS);

  it('everything stops, and no namespace, veth or process is left', async () => {
    await client?.stop('SIGTERM');
    for (const p of [...processes].reverse()) await p.stop('SIGINT');
    // every process ended of its own accord on its signal: none is left for the namespaces' removal to kill
    for (const ns of topology.namespaces()) expect(namespacePids(ns), ns).toEqual([]);
    const pids = processes.map((p) => p.child.pid ?? 0);
    topology.destroy();
    expect(listNamespaces().filter((n) => n.startsWith(`${topology.prefix}-`))).toEqual([]);
    expect(hostInterfaces().filter((n) => n.startsWith(topology.prefix))).toEqual([]);
    for (const p of processes) expect(p.child.exitCode !== null || p.child.signalCode !== null).toBe(true);
    const alive = pids.filter((pid) => {
      try {
        process.kill(pid, 0);
        return true;
      } catch {
        return false;
      }
    });
    expect(alive).toEqual([]);
  }, 2 * WAIT_MS);
});
