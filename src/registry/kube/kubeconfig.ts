/**
 * Kubeconfigs and Istio remote secrets as untrusted input.
 *
 * A registered kubeconfig comes from whoever may register clusters, and the manager then acts on it. Istio
 * learned this the hard way (CVE-2022-21679, remote-secret exfiltration): a kubeconfig can run commands
 * (`exec`, `auth-provider`) or read the manager's own files (`certificate-authority`, `client-key`,
 * `tokenFile`, ...) and send them to a server of the registrant's choosing. Both are refused here unless the
 * operator allows them explicitly. Only the chosen context, its cluster and its user reach client-node, and
 * they are handed over field by field (never through client-node's own loader, which reads `token-file` as
 * it parses).
 */
import { KubeConfig } from '@kubernetes/client-node';
import { parseDocument } from 'yaml';
import { clusterNameSchema } from '../../model/names.js';

export const MAX_KUBECONFIG_BYTES = 256 * 1024;

export class KubeconfigError extends Error {
  override name = 'KubeconfigError';
}

export interface SafeKubeconfigOptions {
  /** the context to use; the kubeconfig's current-context when left out */
  context?: string;
  /** allow `exec` credential plugins and `auth-provider`s (they run code on the manager) */
  allowExec?: boolean;
  /** allow fields that name files on the manager (`certificate-authority`, `client-certificate`, `client-key`, `tokenFile`) */
  allowFiles?: boolean;
}

type Doc = Record<string, unknown>;

const isRecord = (value: unknown): value is Doc => typeof value === 'object' && value !== null && !Array.isArray(value);

function parseStructured(text: string, what: string): unknown {
  if (Buffer.byteLength(text) > MAX_KUBECONFIG_BYTES) throw new KubeconfigError(`${what} is larger than ${MAX_KUBECONFIG_BYTES / 1024} KiB`);
  const document = parseDocument(text, { uniqueKeys: true });
  const [error] = document.errors;
  if (error) {
    const line = error.linePos?.[0].line;
    throw new KubeconfigError(`${what} is not valid YAML or JSON${line === undefined ? '' : ` (line ${line})`}: ${error.message.split('\n')[0] ?? ''}`);
  }
  try {
    return document.toJS({ maxAliasCount: 50 }) as unknown;
  } catch (err) {
    throw new KubeconfigError(`${what} could not be read: ${(err as Error).message}`);
  }
}

function optionalString(value: unknown, field: string): string | undefined {
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'string') throw new KubeconfigError(`${field}: must be a string`);
  return value;
}

function base64Data(value: unknown, field: string): string | undefined {
  const text = optionalString(value, field);
  if (text === undefined) return undefined;
  if (!/^[A-Za-z0-9+/=\s]*$/.test(text)) throw new KubeconfigError(`${field}: must be base64 (inline PEM data, base64-encoded)`);
  return text.replace(/\s+/g, '');
}

function namedList(root: Doc, key: 'clusters' | 'contexts' | 'users', inner: 'cluster' | 'context' | 'user'): { name: string; body: Doc; index: number }[] {
  const value = root[key];
  if (value === undefined || value === null) return [];
  if (!Array.isArray(value)) throw new KubeconfigError(`${key}: must be a list`);
  return value.map((item: unknown, index) => {
    if (!isRecord(item)) throw new KubeconfigError(`${key}[${index}]: must be a mapping with name and ${inner}`);
    const name = item['name'];
    if (typeof name !== 'string' || name === '') throw new KubeconfigError(`${key}[${index}].name: must be a non-empty string`);
    const body = item[inner] ?? {};
    if (!isRecord(body)) throw new KubeconfigError(`${key}[${index}].${inner}: must be a mapping`);
    return { name, body, index };
  });
}

const FILE_FIELDS_USER = ['client-certificate', 'client-key', 'tokenFile', 'token-file'] as const;

function checkUser(user: { body: Doc; index: number }, options: SafeKubeconfigOptions): void {
  const where = `users[${user.index}].user`;
  if (!options.allowExec) {
    if (user.body['exec'] !== undefined && user.body['exec'] !== null) {
      throw new KubeconfigError(`${where}.exec: exec credential plugins are not allowed in a registered kubeconfig (they run commands on the manager); use a service-account token or client certificate data instead`);
    }
    if (user.body['auth-provider'] !== undefined && user.body['auth-provider'] !== null) {
      throw new KubeconfigError(`${where}.auth-provider: auth providers are not allowed in a registered kubeconfig (they run code and read files on the manager); use a service-account token or client certificate data instead`);
    }
  }
  if (!options.allowFiles) {
    for (const field of FILE_FIELDS_USER) {
      if (user.body[field] !== undefined && user.body[field] !== null) {
        const inline = field === 'tokenFile' || field === 'token-file' ? 'token' : `${field}-data`;
        throw new KubeconfigError(`${where}.${field}: file paths are not allowed in a registered kubeconfig (they would read the manager's own files); put the content inline in ${inline}`);
      }
    }
  }
}

function checkCluster(cluster: { body: Doc; index: number }, options: SafeKubeconfigOptions): void {
  const field = cluster.body['certificate-authority'];
  if (!options.allowFiles && field !== undefined && field !== null) {
    throw new KubeconfigError(
      `clusters[${cluster.index}].cluster.certificate-authority: file paths are not allowed in a registered kubeconfig (they would read the manager's own files); put the CA inline in certificate-authority-data`,
    );
  }
}

/**
 * Parses a kubeconfig (YAML or JSON) that someone registered, refusing what would let it run commands or read
 * files on the manager, and returns a KubeConfig holding only the chosen context.
 */
export function loadSafeKubeconfig(text: string, options: SafeKubeconfigOptions = {}): KubeConfig {
  const root = parseStructured(text, 'kubeconfig');
  if (!isRecord(root)) throw new KubeconfigError('kubeconfig: must be a mapping (apiVersion: v1, kind: Config, clusters, contexts, users)');
  if (root['kind'] !== undefined && root['kind'] !== 'Config') throw new KubeconfigError(`kind: must be Config, not ${JSON.stringify(root['kind'])}`);

  const clusters = namedList(root, 'clusters', 'cluster');
  const contexts = namedList(root, 'contexts', 'context');
  const users = namedList(root, 'users', 'user');
  // every entry is checked, not only the chosen one: a kubeconfig that carries a command is refused whole
  for (const user of users) checkUser(user, options);
  for (const cluster of clusters) checkCluster(cluster, options);

  const contextName = options.context ?? optionalString(root['current-context'], 'current-context');
  if (contextName === undefined || contextName === '') throw new KubeconfigError('current-context: the kubeconfig names no current-context; give a context');
  const matching = contexts.filter((c) => c.name === contextName);
  const [context] = matching;
  if (!context) {
    const known = contexts.map((c) => c.name);
    throw new KubeconfigError(`contexts: no context named "${contextName}"${known.length ? ` (the kubeconfig has ${known.join(', ')})` : ' (the kubeconfig has none)'}`);
  }
  if (matching.length > 1) throw new KubeconfigError(`contexts[${context.index}]: context "${contextName}" is defined more than once`);
  const ctxWhere = `contexts[${context.index}].context`;
  const clusterName = optionalString(context.body['cluster'], `${ctxWhere}.cluster`);
  if (!clusterName) throw new KubeconfigError(`${ctxWhere}.cluster: the context names no cluster`);
  const userName = optionalString(context.body['user'], `${ctxWhere}.user`);
  const namespace = optionalString(context.body['namespace'], `${ctxWhere}.namespace`);

  const cluster = clusters.find((c) => c.name === clusterName);
  if (!cluster) throw new KubeconfigError(`${ctxWhere}.cluster: no cluster named "${clusterName}" in clusters`);
  const cWhere = `clusters[${cluster.index}].cluster`;
  const server = optionalString(cluster.body['server'], `${cWhere}.server`);
  if (!server) throw new KubeconfigError(`${cWhere}.server: the cluster has no server URL`);
  let url: URL;
  try {
    url = new URL(server);
  } catch {
    throw new KubeconfigError(`${cWhere}.server: "${server}" is not a URL (expected https://HOST[:PORT])`);
  }
  if (url.protocol !== 'https:' && url.protocol !== 'http:') throw new KubeconfigError(`${cWhere}.server: must be an https:// (or http://) URL, not ${url.protocol}`);
  const skip = cluster.body['insecure-skip-tls-verify'];
  if (skip !== undefined && skip !== null && typeof skip !== 'boolean') throw new KubeconfigError(`${cWhere}.insecure-skip-tls-verify: must be true or false`);
  if (url.protocol === 'http:' && skip !== true) {
    throw new KubeconfigError(`${cWhere}.server: plain http:// is accepted only with insecure-skip-tls-verify: true (the connection is not authenticated)`);
  }
  const caFile = optionalString(cluster.body['certificate-authority'], `${cWhere}.certificate-authority`);
  const proxyUrl = optionalString(cluster.body['proxy-url'], `${cWhere}.proxy-url`);
  const kcCluster = {
    name: cluster.name,
    server: server.replace(/\/$/, ''),
    skipTLSVerify: skip === true,
    caData: base64Data(cluster.body['certificate-authority-data'], `${cWhere}.certificate-authority-data`),
    tlsServerName: optionalString(cluster.body['tls-server-name'], `${cWhere}.tls-server-name`),
    ...(caFile ? { caFile } : {}),
    ...(proxyUrl ? { proxyUrl } : {}),
  };

  let kcUser: Record<string, unknown> | undefined;
  if (userName) {
    const user = users.find((u) => u.name === userName);
    if (!user) throw new KubeconfigError(`${ctxWhere}.user: no user named "${userName}" in users`);
    const uWhere = `users[${user.index}].user`;
    const b = user.body;
    const tokenFile = optionalString(b['tokenFile'] ?? b['token-file'], `${uWhere}.tokenFile`);
    const authProvider: unknown = b['auth-provider'] ?? (tokenFile ? { name: 'tokenFile', config: { tokenFile } } : undefined);
    const fields: Record<string, unknown> = {
      name: user.name,
      token: optionalString(b['token'], `${uWhere}.token`),
      certData: base64Data(b['client-certificate-data'], `${uWhere}.client-certificate-data`),
      keyData: base64Data(b['client-key-data'], `${uWhere}.client-key-data`),
      certFile: optionalString(b['client-certificate'], `${uWhere}.client-certificate`),
      keyFile: optionalString(b['client-key'], `${uWhere}.client-key`),
      username: optionalString(b['username'], `${uWhere}.username`),
      password: optionalString(b['password'], `${uWhere}.password`),
      impersonateUser: optionalString(b['as'], `${uWhere}.as`),
      exec: b['exec'] ?? undefined,
      authProvider,
    };
    kcUser = Object.fromEntries(Object.entries(fields).filter(([, value]) => value !== undefined));
  }

  const kc = new KubeConfig();
  kc.loadFromOptions({
    clusters: [kcCluster],
    users: kcUser ? [kcUser] : [],
    contexts: [{ name: contextName, cluster: cluster.name, user: kcUser ? userName : '', ...(namespace ? { namespace } : {}) }],
    currentContext: contextName,
  });
  return kc;
}

/** The server URL of a kubeconfig loaded by loadSafeKubeconfig. */
export function serverOf(kc: KubeConfig): string {
  return kc.getCurrentCluster()?.server ?? '(no server)';
}

export interface RemoteSecretCluster {
  /** the cluster name (the data key) */
  cluster: string;
  /** the kubeconfig (decoded) */
  kubeconfig: string;
}

/**
 * Reads an Istio remote secret (`istioctl create-remote-secret`): a v1 Secret labelled
 * `istio/multiCluster: "true"` whose data (base64) or stringData keys are cluster names and whose values are
 * kubeconfigs. The kubeconfigs are returned as text, to be checked by loadSafeKubeconfig.
 */
export function parseRemoteSecret(text: string): RemoteSecretCluster[] {
  const root = parseStructured(text, 'remote secret');
  if (!isRecord(root)) throw new KubeconfigError('remote secret: must be a Kubernetes Secret (a mapping with apiVersion: v1, kind: Secret)');
  if (root['kind'] !== 'Secret' || (root['apiVersion'] !== undefined && root['apiVersion'] !== 'v1')) {
    throw new KubeconfigError(`kind: a remote secret is a v1 Secret, not ${JSON.stringify(root['apiVersion'] ?? '')} ${JSON.stringify(root['kind'] ?? '(no kind)')}`);
  }
  const metadata = isRecord(root['metadata']) ? root['metadata'] : {};
  const name = typeof metadata['name'] === 'string' ? metadata['name'] : '(unnamed)';
  const labels = isRecord(metadata['labels']) ? metadata['labels'] : {};
  if (labels['istio/multiCluster'] !== 'true') {
    throw new KubeconfigError(`metadata.labels: secret ${name} is not an Istio remote secret: it lacks the label istio/multiCluster: "true"`);
  }
  const out = new Map<string, string>();
  const add = (field: string, key: string, kubeconfig: string): void => {
    const parsed = clusterNameSchema.safeParse(key);
    if (!parsed.success) throw new KubeconfigError(`${field}.${key}: "${key}" is not a valid cluster name: ${parsed.error.issues[0]?.message ?? 'invalid'}`);
    if (out.has(key)) throw new KubeconfigError(`${field}.${key}: cluster ${key} appears twice in the secret`);
    if (kubeconfig.trim() === '') throw new KubeconfigError(`${field}.${key}: the kubeconfig is empty`);
    out.set(key, kubeconfig);
  };
  const data = root['data'];
  if (data !== undefined && data !== null) {
    if (!isRecord(data)) throw new KubeconfigError('data: must be a mapping of cluster name to base64 kubeconfig');
    for (const [key, value] of Object.entries(data)) {
      if (typeof value !== 'string') throw new KubeconfigError(`data.${key}: must be a base64 string`);
      const compact = value.replace(/\s+/g, '');
      if (!/^[A-Za-z0-9+/]*={0,2}$/.test(compact) || compact.length % 4 !== 0) throw new KubeconfigError(`data.${key}: is not valid base64`);
      add('data', key, Buffer.from(compact, 'base64').toString('utf8'));
    }
  }
  const stringData = root['stringData'];
  if (stringData !== undefined && stringData !== null) {
    if (!isRecord(stringData)) throw new KubeconfigError('stringData: must be a mapping of cluster name to kubeconfig');
    for (const [key, value] of Object.entries(stringData)) {
      if (typeof value !== 'string') throw new KubeconfigError(`stringData.${key}: must be a string (a kubeconfig)`);
      add('stringData', key, value);
    }
  }
  if (out.size === 0) throw new KubeconfigError(`data: secret ${name} holds no kubeconfig (no data or stringData keys)`);
  return [...out].map(([cluster, kubeconfig]) => ({ cluster, kubeconfig }));
}
