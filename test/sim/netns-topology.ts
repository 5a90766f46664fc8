/**
 * Network namespaces for the isolated tier (test/sim/netns-isolation.test.ts), made with `ip netns` and veth pairs and
 * never touching the host's own namespace: every namespace and interface is created inside namespaces of this
 * process's own, named `mf<pid>-...`.
 *
 *   PREFIX-core    the hub: meshfed's control plane on 10.77.0.1 (lo), one veth per cluster (10.77.I.1/24), forwarding
 *   PREFIX-<name>  a cluster: eth0 10.77.I.2/24 (its gateway address), its workloads' addresses as /32s on lo,
 *                  default route through the hub
 *
 * The hub routes every cluster's workload prefix (10.78.I.0/24) to that cluster, and refuses (`ip rule ... prohibit`:
 * ICMP administratively prohibited) to forward a packet that came in from a cluster to the workloads of a cluster on
 * another network. So a cluster reaches the hub, every gateway, and the workloads of its own network (a flat network,
 * as Istio assumes), but never another network's workloads: only its gateway.
 */
import { execFileSync, spawn, type ChildProcessByStdio } from 'node:child_process';
import type { Readable } from 'node:stream';

const IP = 'ip';

export const CONTROL_PLANE = '10.77.0.1';

export interface NetnsClusterSpec {
  name: string;
  network: string;
  /** the last octets of its workloads' addresses, 10.78.I.N */
  hosts: readonly number[];
}

export interface NetnsCluster extends NetnsClusterSpec {
  /** 1, 2, ...: its link 10.77.I.0/24 and workload prefix 10.78.I.0/24 */
  index: number;
  namespace: string;
  /** its address on the link to the hub, where its gateway listens */
  address: string;
  workload: (host: number) => string;
}

export interface Topology {
  prefix: string;
  core: string;
  clusters: NetnsCluster[];
  cluster: (name: string) => NetnsCluster;
  /** every namespace made, hub first */
  namespaces: () => string[];
  /** deletes every namespace (their veths go with them); processes still inside are killed first */
  destroy: () => void;
}

const ip = (...args: string[]): string => execFileSync(IP, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });

/** The namespaces that exist now, by name. */
export function listNamespaces(): string[] {
  return ip('netns', 'list')
    .split('\n')
    .map((line) => line.split(' ')[0] ?? '')
    .filter((name) => name !== '');
}

/** The interfaces of the host's (root) namespace, by name: read only, to check nothing of ours landed there. */
export function hostInterfaces(): string[] {
  return ip('-o', 'link', 'show')
    .split('\n')
    .map((line) => /^\d+: ([^:@]+)/.exec(line)?.[1] ?? '')
    .filter((name) => name !== '');
}

const alive = (pid: number): boolean => {
  try {
    process.kill(pid, 0);
    return true;
  } catch (error) {
    return (error as NodeJS.ErrnoException).code === 'EPERM';
  }
};

/** The processes running inside a namespace. */
export function namespacePids(name: string): number[] {
  return ip('netns', 'pids', name)
    .split('\n')
    .filter((line) => line !== '')
    .map(Number);
}

function deleteNamespace(name: string): void {
  for (const pid of namespacePids(name)) process.kill(pid, 'SIGKILL');
  ip('netns', 'del', name);
}

/** Removes every namespace of this process (after a failure: whatever a half-built topology made). */
export function removeOwnNamespaces(): void {
  for (const name of listNamespaces().filter((n) => n.startsWith(`mf${String(process.pid)}-`))) deleteNamespace(name);
}

/** Removes namespaces an earlier run left behind: ours by their prefix, and only those whose process is gone. */
export function removeStaleNamespaces(): string[] {
  const stale = listNamespaces().filter((name) => {
    const pid = /^mf(\d+)-/.exec(name)?.[1];
    return pid !== undefined && Number(pid) !== process.pid && !alive(Number(pid));
  });
  for (const name of stale) deleteNamespace(name);
  return stale;
}

/** Why the tier cannot run here (not root, no `ip netns`), or undefined when it can. */
export function netnsUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root, to make network namespaces (ip netns add)';
  const probe = `mf${String(process.pid)}-probe`;
  try {
    ip('netns', 'add', probe);
    ip('netns', 'del', probe);
    return undefined;
  } catch (error) {
    return `ip netns add failed: ${((error as { stderr?: string }).stderr ?? (error as Error).message).trim()}`;
  }
}

/** Builds the hub and the clusters; if a step fails, what was made is removed again and the error thrown. */
export function buildTopology(specs: readonly NetnsClusterSpec[]): Topology {
  const prefix = `mf${String(process.pid)}`;
  const core = `${prefix}-core`;
  const made: string[] = [];
  const clusters: NetnsCluster[] = specs.map((spec, i) => ({
    ...spec,
    index: i + 1,
    namespace: `${prefix}-${spec.name.replace(/-/g, '')}`,
    address: `10.77.${String(i + 1)}.2`,
    workload: (host: number) => `10.78.${String(i + 1)}.${String(host)}`,
  }));
  // the hub's end of a cluster's veth (interface names: at most 15 characters)
  const link = (c: NetnsCluster): string => `${prefix}-c${String(c.index)}`;
  const destroy = (): void => {
    for (const name of [...made].reverse()) if (listNamespaces().includes(name)) deleteNamespace(name);
    made.length = 0;
  };
  try {
    ip('netns', 'add', core);
    made.push(core);
    ip('-n', core, 'link', 'set', 'lo', 'up');
    ip('-n', core, 'addr', 'add', `${CONTROL_PLANE}/32`, 'dev', 'lo');
    ip('netns', 'exec', core, 'sysctl', '-qw', 'net.ipv4.ip_forward=1');
    for (const c of clusters) {
      ip('netns', 'add', c.namespace);
      made.push(c.namespace);
      ip('-n', c.namespace, 'link', 'set', 'lo', 'up');
      ip('-n', core, 'link', 'add', link(c), 'type', 'veth', 'peer', 'name', 'eth0', 'netns', c.namespace);
      ip('-n', core, 'addr', 'add', `10.77.${String(c.index)}.1/24`, 'dev', link(c));
      ip('-n', core, 'link', 'set', link(c), 'up');
      ip('-n', c.namespace, 'addr', 'add', `${c.address}/24`, 'dev', 'eth0');
      ip('-n', c.namespace, 'link', 'set', 'eth0', 'up');
      for (const host of c.hosts) ip('-n', c.namespace, 'addr', 'add', `${c.workload(host)}/32`, 'dev', 'lo');
      ip('-n', c.namespace, 'route', 'add', 'default', 'via', `10.77.${String(c.index)}.1`);
      ip('-n', core, 'route', 'add', `10.78.${String(c.index)}.0/24`, 'via', c.address);
    }
    for (const from of clusters) {
      for (const to of clusters.filter((c) => c.network !== from.network)) {
        ip('-n', core, 'rule', 'add', 'iif', link(from), 'to', `10.78.${String(to.index)}.0/24`, 'prohibit');
      }
    }
  } catch (error) {
    destroy();
    throw error;
  }
  return {
    prefix,
    core,
    clusters,
    cluster: (name) => {
      const found = clusters.find((c) => c.name === name);
      if (!found) throw new Error(`no cluster ${name} in the topology`);
      return found;
    },
    namespaces: () => [...made],
    destroy,
  };
}

export interface NsProcess {
  child: ChildProcessByStdio<null, Readable, Readable>;
  output: () => string;
  /** the signal, then its exit (code or signal) */
  stop: (signal?: NodeJS.Signals) => Promise<void>;
}

/**
 * Runs `argv` inside `namespace` (`ip netns exec` execs it: the child is the program itself) and resolves once its
 * standard output or error shows `ready`; fails with what it printed if it exits first or `limitMs` passes.
 */
export async function startInNamespace(namespace: string, argv: readonly string[], options: { env: NodeJS.ProcessEnv; cwd: string; ready: string; limitMs: number }): Promise<NsProcess> {
  const child = spawn(IP, ['netns', 'exec', namespace, ...argv], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  const exited = new Promise<void>((done) => child.once('exit', () => { done(); }));
  const collect = (chunk: Buffer): void => {
    output += chunk.toString();
  };
  child.stdout.on('data', collect);
  child.stderr.on('data', collect);
  await new Promise<void>((done, fail) => {
    const timer = setTimeout(() => {
      fail(new Error(`${argv.join(' ')} in ${namespace}: not ready within ${String(options.limitMs)} ms: ${output}`));
    }, options.limitMs);
    const check = (): void => {
      if (!output.includes(options.ready)) return;
      clearTimeout(timer);
      done();
    };
    child.stdout.on('data', check);
    child.stderr.on('data', check);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      fail(new Error(`${argv.join(' ')} in ${namespace} exited early (${String(code ?? signal)}): ${output}`));
    });
  });
  return {
    child,
    output: () => output,
    stop: (signal = 'SIGINT') => {
      if (child.exitCode === null && child.signalCode === null) child.kill(signal);
      return exited;
    },
  };
}

/** Runs `argv` inside `namespace` to its end; resolves with its exit code and what it printed. */
export function runInNamespace(namespace: string, argv: readonly string[], options: { env: NodeJS.ProcessEnv; cwd: string; limitMs: number }): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((done, fail) => {
    const child = spawn(IP, ['netns', 'exec', namespace, ...argv], { cwd: options.cwd, env: options.env, stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
    child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      fail(new Error(`${argv.join(' ')} in ${namespace}: still running after ${String(options.limitMs)} ms`));
    }, options.limitMs);
    child.once('error', fail);
    child.once('exit', (code) => {
      clearTimeout(timer);
      done({ code, stdout, stderr });
    });
  });
}
