import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { startManager, type Manager, type ManagerOptions } from '../../src/api/manager.js';
import type { Logger } from '../../src/logging.js';
import type { KubeObject } from '../fixtures/kube-api.js';

export const TOKEN = 'test-token-0123456789-abcdefghij';

/** A logger that keeps every line, so tests can check what was (and was not) logged. */
export class CapturingLogger implements Logger {
  readonly lines: string[] = [];
  #add(level: string, obj: object, msg?: string): void {
    this.lines.push(JSON.stringify({ level, msg, ...obj }));
  }
  debug(obj: object, msg?: string): void {
    this.#add('debug', obj, msg);
  }
  info(obj: object, msg?: string): void {
    this.#add('info', obj, msg);
  }
  warn(obj: object, msg?: string): void {
    this.#add('warn', obj, msg);
  }
  error(obj: object, msg?: string): void {
    this.#add('error', obj, msg);
  }
  text(): string {
    return this.lines.join('\n');
  }
}

export const tempDir = (prefix: string): string => mkdtempSync(join(tmpdir(), prefix));

/** Kubernetes sources that notice failures and recover fast, so tests wait little. */
export const FAST_KUBE = { probeIntervalMs: 200, probeTimeoutMs: 1_000, backoffInitialMs: 100, backoffMaxMs: 500 } as const;

export async function startTestManager(stateDir: string, logger: Logger, extra: Partial<ManagerOptions> = {}): Promise<Manager> {
  return startManager({ stateDir, token: TOKEN, logger, api: { host: '127.0.0.1', port: 0 }, kube: FAST_KUBE, debounceMs: 10, maxDelayMs: 100, ...extra });
}

export interface Answer {
  status: number;
  headers: Headers;
  text: string;
  json: unknown;
}

/** Every answer a test received, to check that none leaks a secret. */
export const answers: string[] = [];

export async function request(base: string, method: string, path: string, options: { token?: string | null; body?: unknown; raw?: string; contentType?: string } = {}): Promise<Answer> {
  const headers: Record<string, string> = {};
  const token = options.token === undefined ? TOKEN : options.token;
  if (token !== null) headers.authorization = `Bearer ${token}`;
  let body: string | undefined;
  if (options.raw !== undefined) body = options.raw;
  else if (options.body !== undefined) body = JSON.stringify(options.body);
  if (body !== undefined) headers['content-type'] = options.contentType ?? 'application/json';
  const response = await fetch(new URL(path, base), { method, headers, ...(body !== undefined ? { body } : {}), signal: AbortSignal.timeout(10_000) });
  const text = await response.text();
  answers.push(text, JSON.stringify([...response.headers]));
  let json: unknown;
  try {
    json = text ? JSON.parse(text) : undefined;
  } catch {
    // not JSON: the test looks at text
  }
  return { status: response.status, headers: response.headers, text, json };
}

export interface ClusterJson {
  name: string;
  network: string;
  region: string;
  zone: string;
  source: string;
  origin: string;
  state: string;
  reason?: string;
  services: number;
  endpoints: number;
  gateways: { address: string; port: number }[];
  registeredAt?: string;
  context?: string;
}

export interface ErrorJson {
  error: { code: string; message: string; field?: string };
}

/** Polls until `check` returns a value, or fails after `limitMs`. */
export async function eventually<T>(what: string, check: () => Promise<T | undefined>, limitMs = 20_000): Promise<T> {
  const deadline = Date.now() + limitMs;
  let last: unknown;
  for (;;) {
    try {
      const value = await check();
      if (value !== undefined) return value;
    } catch (error) {
      last = error;
    }
    if (Date.now() > deadline) throw new Error(`${what}: not within ${limitMs} ms${last instanceof Error ? ` (${last.message})` : ''}`);
    await new Promise((done) => setTimeout(done, 100));
  }
}

export async function clusterNamed(base: string, name: string): Promise<ClusterJson | undefined> {
  const answer = await request(base, 'GET', '/api/v1/clusters');
  return (answer.json as { clusters: ClusterJson[] }).clusters.find((c) => c.name === name);
}

/** A Service with two ready endpoints in one EndpointSlice. */
export function serviceObjects(name: string, addresses: string[], namespace = 'default'): KubeObject[] {
  return [
    { apiVersion: 'v1', kind: 'Service', metadata: { name, namespace, labels: { app: name } }, spec: { type: 'ClusterIP', ports: [{ name: 'http', port: 9080, protocol: 'TCP', targetPort: 9080 }] } },
    {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: `${name}-abc`, namespace, labels: { 'kubernetes.io/service-name': name } },
      addressType: 'IPv4',
      ports: [{ name: 'http', port: 9080, protocol: 'TCP' }],
      endpoints: addresses.map((address) => ({ addresses: [address], conditions: { ready: true } })),
    },
  ];
}

/** A kubeconfig that uses an exec credential plugin: what Istio's remote-secret fix refuses. */
export const EXEC_KUBECONFIG = `apiVersion: v1
kind: Config
current-context: evil
clusters:
- name: evil
  cluster:
    server: https://127.0.0.1:6443
contexts:
- name: evil
  context: { cluster: evil, user: evil }
users:
- name: evil
  user:
    exec:
      apiVersion: client.authentication.k8s.io/v1
      command: sh
      args: ["-c", "cat /etc/passwd"]
`;

/** A remote secret as istioctl create-remote-secret makes it. */
export function remoteSecret(cluster: string, kubeconfig: string, labelled = true): string {
  return JSON.stringify({
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: `istio-remote-secret-${cluster}`, namespace: 'istio-system', ...(labelled ? { labels: { 'istio/multiCluster': 'true' } } : {}), annotations: { 'networking.istio.io/cluster': cluster } },
    data: { [cluster]: Buffer.from(kubeconfig).toString('base64') },
  });
}
