import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { stringify } from 'yaml';
import { KubeconfigError, loadSafeKubeconfig, parseRemoteSecret } from '../../src/registry/kube/kubeconfig.js';

const CA_DATA = Buffer.from('-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n').toString('base64');

interface Config {
  clusters?: unknown[];
  users?: unknown[];
  contexts?: unknown[];
  'current-context'?: string;
}

function kubeconfig(overrides: { cluster?: Record<string, unknown>; user?: Record<string, unknown>; extra?: Partial<Config> } = {}): string {
  const config: Config & Record<string, unknown> = {
    apiVersion: 'v1',
    kind: 'Config',
    clusters: [{ name: 'east-1', cluster: { server: 'https://10.0.0.1:6443', 'certificate-authority-data': CA_DATA, ...overrides.cluster } }],
    users: [{ name: 'east-1', user: { token: 'sa-token', ...overrides.user } }],
    contexts: [{ name: 'east-1', context: { cluster: 'east-1', user: 'east-1' } }],
    'current-context': 'east-1',
    ...overrides.extra,
  };
  return stringify(config);
}

function refusal(text: string, options: Parameters<typeof loadSafeKubeconfig>[1] = {}): string {
  try {
    loadSafeKubeconfig(text, options);
  } catch (err) {
    expect(err).toBeInstanceOf(KubeconfigError);
    return (err as Error).message;
  }
  throw new Error('the kubeconfig was accepted');
}

describe('loadSafeKubeconfig', () => {
  it('accepts inline data and tokens, and keeps only the chosen context', () => {
    const kc = loadSafeKubeconfig(
      kubeconfig({
        user: { 'client-certificate-data': CA_DATA, 'client-key-data': CA_DATA },
        extra: {
          clusters: [
            { name: 'east-1', cluster: { server: 'https://10.0.0.1:6443/', 'certificate-authority-data': CA_DATA } },
            { name: 'other', cluster: { server: 'https://10.9.9.9' } },
          ],
        },
      }),
    );
    expect(kc.getCurrentContext()).toBe('east-1');
    expect(kc.getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
    expect(kc.getCurrentCluster()?.caData).toBe(CA_DATA);
    expect(kc.getCurrentUser()?.token).toBe('sa-token');
    expect(kc.getCurrentUser()?.certData).toBe(CA_DATA);
    expect(kc.getClusters().map((c) => c.name)).toEqual(['east-1']);
  });

  it('accepts JSON as well as YAML, and an explicit context', () => {
    const config = {
      clusters: [
        { name: 'a', cluster: { server: 'https://a.example:6443' } },
        { name: 'b', cluster: { server: 'https://b.example:6443' } },
      ],
      users: [{ name: 'u', user: { token: 't' } }],
      contexts: [
        { name: 'ctx-a', context: { cluster: 'a', user: 'u' } },
        { name: 'ctx-b', context: { cluster: 'b', user: 'u' } },
      ],
      'current-context': 'ctx-a',
    };
    expect(loadSafeKubeconfig(JSON.stringify(config)).getCurrentCluster()?.server).toBe('https://a.example:6443');
    expect(loadSafeKubeconfig(JSON.stringify(config), { context: 'ctx-b' }).getCurrentCluster()?.server).toBe('https://b.example:6443');
  });

  it.each([
    ['exec plugin', { user: { exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'sh', args: ['-c', 'cat /etc/shadow'] } } }, /^users\[0\]\.user\.exec: exec credential plugins are not allowed in a registered kubeconfig \(they run commands on the manager\)/],
    ['auth provider', { user: { 'auth-provider': { name: 'gcp', config: { 'cmd-path': '/bin/sh' } } } }, /^users\[0\]\.user\.auth-provider: auth providers are not allowed/],
    ['client certificate file', { user: { 'client-certificate': '/etc/meshfed/ca/ca-cert.pem' } }, /^users\[0\]\.user\.client-certificate: file paths are not allowed .* client-certificate-data/],
    ['client key file', { user: { 'client-key': '/etc/meshfed/ca/ca-key.pem' } }, /^users\[0\]\.user\.client-key: file paths are not allowed .* client-key-data/],
    ['token file', { user: { tokenFile: '/var/run/secrets/kubernetes.io/serviceaccount/token' } }, /^users\[0\]\.user\.tokenFile: file paths are not allowed .* token$/],
    ['token-file (client-node spelling)', { user: { 'token-file': '/etc/passwd' } }, /^users\[0\]\.user\.token-file: file paths are not allowed/],
    ['certificate authority file', { cluster: { 'certificate-authority': '/etc/ssl/private/key.pem' } }, /^clusters\[0\]\.cluster\.certificate-authority: file paths are not allowed .* certificate-authority-data/],
  ])('refuses a %s and names the field', (_what, overrides, message) => {
    expect(refusal(kubeconfig(overrides))).toMatch(message);
  });

  it('refuses an exec plugin in a user the context does not even use', () => {
    const text = kubeconfig({ extra: { users: [{ name: 'east-1', user: { token: 't' } }, { name: 'evil', user: { exec: { command: 'curl' } } }] } });
    expect(refusal(text)).toMatch(/^users\[1\]\.user\.exec:/);
  });

  it('allows exec and files only when told to', async () => {
    const withExec = kubeconfig({ user: { token: undefined, exec: { apiVersion: 'client.authentication.k8s.io/v1', command: 'true' } } });
    expect(loadSafeKubeconfig(withExec, { allowExec: true }).getCurrentUser()?.exec).toMatchObject({ command: 'true' });
    const dir = await mkdtemp(join(tmpdir(), 'meshfed-kubeconfig-'));
    try {
      const tokenFile = join(dir, 'token');
      await writeFile(tokenFile, 'from-file');
      const withFile = kubeconfig({ user: { token: undefined, tokenFile } });
      expect(refusal(withFile)).toMatch(/tokenFile/);
      const user = loadSafeKubeconfig(withFile, { allowFiles: true }).getCurrentUser();
      expect(user?.authProvider).toEqual({ name: 'tokenFile', config: { tokenFile } });
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  });

  it.each([
    ['malformed YAML', 'clusters: [\n  - name: a\n    cluster: {server: "https://x"\n', /^kubeconfig is not valid YAML or JSON/],
    ['a document that is not a mapping', '- a\n- b\n', /must be a mapping/],
    ['a missing context', kubeconfig({ extra: { 'current-context': 'nope' } }), /^contexts: no context named "nope" \(the kubeconfig has east-1\)/],
    ['no current-context', kubeconfig({ extra: { 'current-context': '' } }), /^current-context: the kubeconfig names no current-context/],
    ['a context naming a missing cluster', kubeconfig({ extra: { contexts: [{ name: 'east-1', context: { cluster: 'west', user: 'east-1' } }] } }), /^contexts\[0\]\.context\.cluster: no cluster named "west"/],
    ['a context naming a missing user', kubeconfig({ extra: { contexts: [{ name: 'east-1', context: { cluster: 'east-1', user: 'ghost' } }] } }), /^contexts\[0\]\.context\.user: no user named "ghost"/],
    ['a server that is not a URL', kubeconfig({ cluster: { server: 'not a url' } }), /^clusters\[0\]\.cluster\.server: "not a url" is not a URL/],
    ['a server that is not http(s)', kubeconfig({ cluster: { server: 'file:///etc/passwd' } }), /^clusters\[0\]\.cluster\.server: must be an https:\/\/ \(or http:\/\/\) URL/],
    ['plain http without insecure-skip-tls-verify', kubeconfig({ cluster: { server: 'http://10.0.0.1:8080' } }), /insecure-skip-tls-verify/],
    ['a cluster without a server', kubeconfig({ cluster: { server: undefined } }), /^clusters\[0\]\.cluster\.server: the cluster has no server URL/],
    ['CA data that is not base64', kubeconfig({ cluster: { 'certificate-authority-data': '-----BEGIN CERTIFICATE-----' } }), /certificate-authority-data: must be base64/],
    ['a token that is not a string', kubeconfig({ user: { token: 42 } }), /^users\[0\]\.user\.token: must be a string/],
    ['duplicate keys', 'clusters: []\nclusters: []\n', /not valid YAML or JSON/],
    ['a huge kubeconfig', `# ${'x'.repeat(300 * 1024)}\n`, /larger than 256 KiB/],
  ])('refuses %s with a clear error', (_what, text, message) => {
    expect(refusal(text)).toMatch(message);
  });

  it('accepts plain http when insecure-skip-tls-verify says so', () => {
    const kc = loadSafeKubeconfig(kubeconfig({ cluster: { server: 'http://127.0.0.1:8001', 'insecure-skip-tls-verify': true, 'certificate-authority-data': undefined } }));
    expect(kc.getCurrentCluster()?.skipTLSVerify).toBe(true);
  });
});

describe('parseRemoteSecret', () => {
  const secret = (data: Record<string, unknown>, labels: Record<string, string> = { 'istio/multiCluster': 'true' }, field = 'data'): string =>
    stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 'istio-remote-secret-east-1', namespace: 'istio-system', labels, annotations: { 'networking.istio.io/cluster': 'east-1' } }, type: 'Opaque', [field]: data });
  const b64 = (text: string): string => Buffer.from(text).toString('base64');

  it('reads an istioctl create-remote-secret secret', () => {
    const config = kubeconfig();
    const clusters = parseRemoteSecret(secret({ 'east-1': b64(config) }));
    expect(clusters).toEqual([{ cluster: 'east-1', kubeconfig: config }]);
    expect(loadSafeKubeconfig(clusters[0]?.kubeconfig ?? '').getCurrentCluster()?.server).toBe('https://10.0.0.1:6443');
  });

  it('reads several clusters, from data and stringData', () => {
    const text = stringify({
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: { name: 's', labels: { 'istio/multiCluster': 'true' } },
      data: { 'east-1': b64('a: 1\n'), 'east-2': b64('b: 2\n') },
      stringData: { 'west-1': 'c: 3\n' },
    });
    expect(parseRemoteSecret(text)).toEqual([
      { cluster: 'east-1', kubeconfig: 'a: 1\n' },
      { cluster: 'east-2', kubeconfig: 'b: 2\n' },
      { cluster: 'west-1', kubeconfig: 'c: 3\n' },
    ]);
  });

  it('accepts JSON', () => {
    const text = JSON.stringify({ apiVersion: 'v1', kind: 'Secret', metadata: { name: 's', labels: { 'istio/multiCluster': 'true' } }, data: { 'east-1': b64('x: 1\n') } });
    expect(parseRemoteSecret(text)).toEqual([{ cluster: 'east-1', kubeconfig: 'x: 1\n' }]);
  });

  it.each([
    ['a wrong label value', secret({ 'east-1': b64('x') }, { 'istio/multiCluster': 'false' }), /^metadata\.labels: secret istio-remote-secret-east-1 is not an Istio remote secret: it lacks the label istio\/multiCluster: "true"/],
    ['no label', secret({ 'east-1': b64('x') }, {}), /lacks the label istio\/multiCluster/],
    ['bad base64', secret({ 'east-1': 'not*base64!' }), /^data\.east-1: is not valid base64/],
    ['a bad cluster name', secret({ East_1: b64('x: 1') }), /^data\.East_1: "East_1" is not a valid cluster name/],
    ['no data', secret({}), /holds no kubeconfig/],
    ['an empty kubeconfig', secret({ 'east-1': '' }), /^data\.east-1: the kubeconfig is empty/],
    ['a ConfigMap', stringify({ apiVersion: 'v1', kind: 'ConfigMap', metadata: { name: 'x' }, data: {} }), /^kind: a remote secret is a v1 Secret, not "v1" "ConfigMap"/],
    ['a kubeconfig instead of a secret', kubeconfig(), /^kind: a remote secret is a v1 Secret/],
    ['malformed YAML', 'kind: Secret\n  data: [', /^remote secret is not valid YAML or JSON/],
  ])('refuses %s', (_what, text, message) => {
    let error: unknown;
    try {
      parseRemoteSecret(text);
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(KubeconfigError);
    expect((error as Error).message).toMatch(message);
  });
});

