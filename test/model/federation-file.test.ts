import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { FederationFileError, parseFederationFile } from '../../src/model/federation-file.js';
import { loadFederationFile } from '../../src/store/federation.js';

const ROOT = resolve(import.meta.dirname, '../..');
const work = mkdtempSync(join(tmpdir(), 'meshfed-fedfile-'));
afterAll(() => {
  rmSync(work, { recursive: true, force: true });
});

const FEDERATION = `apiVersion: meshfed.io/v1alpha1
kind: Federation
metadata: { name: fed }
spec: { trustDomain: example.test }
`;

const cluster = (name: string, spec: string): string => `---
apiVersion: meshfed.io/v1alpha1
kind: Cluster
metadata:
  name: ${name}
spec:
${spec
  .trim()
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
`;

function errorOf(text: string): string {
  try {
    parseFederationFile(text, 'fed.yaml');
  } catch (error) {
    expect(error).toBeInstanceOf(FederationFileError);
    return (error as Error).message;
  }
  throw new Error('expected the file to be refused');
}

describe('parseFederationFile', () => {
  it('reads a Federation and static and Kubernetes clusters, with defaults', () => {
    const file = parseFederationFile(
      FEDERATION +
        cluster('east-1', 'network: net-east\nregion: us-east\nzone: us-east-1a\ngateways: [{ address: 192.0.2.1 }]\nservices:\n  - name: reviews\n    ports: [{ port: 9080 }]\n    endpoints: [{ address: 10.0.0.1 }]') +
        cluster('west-1', 'network: net-west\nkubeconfigFile: west.yaml\ncontext: admin'),
    );
    expect(file.name).toBe('fed');
    expect(file.trustDomain).toBe('example.test');
    const [east, west] = file.clusters;
    expect(east).toMatchObject({ name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a', gateways: [{ address: '192.0.2.1', port: 15443 }] });
    expect(east?.services?.[0]).toMatchObject({ namespace: 'default', name: 'reviews', ports: [{ port: 9080, protocol: 'TCP' }] });
    expect(east?.services?.[0]?.endpoints[0]).toMatchObject({ address: '10.0.0.1', serviceAccount: 'default', tlsMode: 'mtls', health: 'ready' });
    expect(west).toMatchObject({ name: 'west-1', kubeconfigFile: 'west.yaml', context: 'admin' });
    expect(west?.services).toBeUndefined();
    expect(parseFederationFile(cluster('bare', 'network: n1')).clusters[0]?.services).toEqual([]);
  });

  it('applies the Federation defaultLocality to clusters that name none, wherever the Federation stands', () => {
    const file = parseFederationFile(
      cluster('a', 'network: n1') + cluster('b', 'network: n1\nregion: us-west') + cluster('c', 'network: n1\nzone: eu-1c') + `---\napiVersion: meshfed.io/v1alpha1\nkind: Federation\nmetadata: { name: f }\nspec: { defaultLocality: { region: eu, zone: eu-1a } }\n`,
    );
    expect(file.clusters.map((c) => [c.name, c.region, c.zone])).toEqual([
      ['a', 'eu', 'eu-1a'],
      ['b', 'us-west', ''],
      ['c', 'eu', 'eu-1c'],
    ]);
  });

  it('skips empty documents and accepts an empty file', () => {
    expect(parseFederationFile('').clusters).toEqual([]);
    expect(parseFederationFile('---\n---\n' + cluster('a', 'network: n1')).clusters).toHaveLength(1);
  });

  it('names the document index, kind, name and field path of every schema error', () => {
    const cases: [string, string][] = [
      [FEDERATION + cluster('west-1', 'network: n1\ngateways: [{ address: 192.0.2.1, port: 70000 }]'), 'fed.yaml, document 2 (Cluster west-1): spec.gateways[0].port: must be 1-65535'],
      [cluster('a', 'network: n1\nservices:\n  - name: r\n    endpoints: [{ address: 10.0.0.300 }]'), 'fed.yaml, document 1 (Cluster a): spec.services[0].endpoints[0].address: must be an IPv4 or IPv6 address'],
      [cluster('a', 'network: n1\nservices:\n  - name: r\n    ports: [{ port: 80, protocol: HTTP }]'), 'fed.yaml, document 1 (Cluster a): spec.services[0].ports[0].protocol: protocol must be TCP, UDP or SCTP'],
      [cluster('a', 'network: n1\nservices:\n  - name: r\n    endpoints: [{ address: 10.0.0.1, health: sick }]'), 'fed.yaml, document 1 (Cluster a): spec.services[0].endpoints[0].health:'],
      [cluster('Bad_Name', 'network: n1'), 'fed.yaml, document 1 (Cluster Bad_Name): metadata.name: cluster name must be a DNS-1123 label'],
      [cluster('a', 'network: "bad network!"'), 'fed.yaml, document 1 (Cluster a): spec.network: must be 1-63 letters'],
      [cluster('a', 'region: r'), 'fed.yaml, document 1 (Cluster a): spec.network:'],
      [cluster('a', 'network: n1\ncolour: blue'), 'fed.yaml, document 1 (Cluster a): spec.colour: unknown field'],
      [cluster('a', 'network: n1\ncontext: admin'), 'fed.yaml, document 1 (Cluster a): spec.context: context only applies with kubeconfigFile'],
      [cluster('a', 'network: n1').replace('kind: Cluster', 'kind: Clustr'), 'fed.yaml, document 1 (Clustr a): kind: must be Federation, Cluster or VirtualDestination'],
      [cluster('a', 'network: n1').replace('meshfed.io/v1alpha1', 'v1'), 'fed.yaml, document 1 (Cluster a): apiVersion: must be meshfed.io/v1alpha1'],
      [FEDERATION.replace('example.test', 'Example.Test'), 'fed.yaml, document 1 (Federation fed): spec.trustDomain: trust domain may contain only lowercase'],
      [FEDERATION + '---\n' + FEDERATION, 'fed.yaml, document 2: only one Federation document is allowed'],
      ['just a string\n', 'fed.yaml, document 1 (no kind): (document): '],
    ];
    for (const [text, expected] of cases) expect(errorOf(text)).toContain(expected);
  });

  it('reports YAML syntax errors with the document and line', () => {
    const text = FEDERATION + cluster('a', 'network: n1\nregion: r\nzone: z') + cluster('b', 'network: n1\nregion: a: b');
    const message = errorOf(text);
    expect(message).toMatch(/^fed\.yaml, document 3: invalid YAML at line \d+, column \d+: Nested mappings are not allowed/);
    const line = Number(/line (\d+)/.exec(message)?.[1]);
    expect(text.split('\n')[line - 1]).toBe('  region: a: b');
  });

  it('refuses a cluster defined twice, naming the second definition', () => {
    expect(errorOf(cluster('a', 'network: n1') + cluster('b', 'network: n1') + cluster('a', 'network: n2'))).toBe('fed.yaml, document 3 (Cluster a): metadata.name: cluster a is defined twice');
  });

  it('refuses a cluster with both kubeconfigFile and services', () => {
    expect(errorOf(cluster('a', 'network: n1\nkubeconfigFile: k.yaml\nservices: []'))).toBe(
      'fed.yaml, document 1 (Cluster a): spec.services: a cluster has either kubeconfigFile (watched through its API server) or services (static), not both',
    );
  });
});

const virtualDestination = (name: string, spec: string): string => `---
apiVersion: meshfed.io/v1alpha1
kind: VirtualDestination
metadata:
  name: ${name}
spec:
${spec
  .trim()
  .split('\n')
  .map((line) => `  ${line}`)
  .join('\n')}
`;

const REVIEWS_SPEC = 'hostname: reviews.global\nports: [{ number: 9080, protocol: GRPC }]\nbackends: [{ name: reviews }]';

describe('parseFederationFile: VirtualDestination', () => {
  it('reads virtual destinations in file order, with defaults, beside clusters of the same name', () => {
    const file = parseFederationFile(
      cluster('reviews', 'network: n1') +
        virtualDestination('reviews', REVIEWS_SPEC) +
        virtualDestination('ratings', 'hostname: ratings.global\nports: [{ number: 80, protocol: HTTP, targetPort: 9080 }]\nbackends: [{ labels: { app: ratings }, clusters: [reviews] }]\nfailover:\n  policy: priority\n  order: [{ cluster: reviews }]'),
    );
    expect(file.clusters.map((c) => c.name)).toEqual(['reviews']);
    expect(file.virtualDestinations).toEqual([
      { name: 'reviews', spec: { hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ name: 'reviews' }], failover: { policy: 'locality' } } },
      {
        name: 'ratings',
        spec: { hostname: 'ratings.global', ports: [{ number: 80, protocol: 'HTTP', targetPort: 9080 }], backends: [{ labels: { app: 'ratings' }, clusters: ['reviews'] }], failover: { policy: 'priority', order: [{ cluster: 'reviews' }] } },
      },
    ]);
  });

  it('names the document, the virtual destination and the field of every error', () => {
    const cases: [string, string][] = [
      [virtualDestination('reviews', REVIEWS_SPEC.replace('reviews.global', '"*.global"')), 'fed.yaml, document 1 (VirtualDestination reviews): spec.hostname: must not be a wildcard'],
      [virtualDestination('reviews', REVIEWS_SPEC.replace('reviews.global', '*.global')), 'fed.yaml, document 1: invalid YAML: Unresolved alias'],
      [virtualDestination('reviews', REVIEWS_SPEC + '\nfailover: { policy: priority }'), 'fed.yaml, document 1 (VirtualDestination reviews): spec.failover.order: is required with policy priority'],
      [virtualDestination('reviews', REVIEWS_SPEC + '\nfailover: { weights: [{ cluster: east-1, weight: 120 }] }'), 'fed.yaml, document 1 (VirtualDestination reviews): spec.failover.weights[0].weight: must be 0-100'],
      [virtualDestination('reviews', REVIEWS_SPEC.replace('{ name: reviews }', '{ namespace: shop }')), 'fed.yaml, document 1 (VirtualDestination reviews): spec.backends[0]: a backend must select services by name or by labels'],
      [virtualDestination('reviews', REVIEWS_SPEC + '\nretries: 3'), 'fed.yaml, document 1 (VirtualDestination reviews): spec.retries: unknown field'],
      [virtualDestination('Reviews', REVIEWS_SPEC), 'fed.yaml, document 1 (VirtualDestination Reviews): metadata.name: must be a DNS-1123 label'],
    ];
    for (const [text, expected] of cases) expect(errorOf(text)).toContain(expected);
  });

  it('refuses a name or a hostname used twice, naming the second definition', () => {
    expect(errorOf(virtualDestination('reviews', REVIEWS_SPEC) + cluster('a', 'network: n1') + virtualDestination('reviews', REVIEWS_SPEC.replace('reviews.global', 'other.global')))).toBe(
      'fed.yaml, document 3 (VirtualDestination reviews): metadata.name: virtual destination reviews is defined twice',
    );
    expect(errorOf(virtualDestination('reviews', REVIEWS_SPEC) + virtualDestination('reviews-2', REVIEWS_SPEC))).toBe(
      'fed.yaml, document 2 (VirtualDestination reviews-2): spec.hostname: hostname reviews.global is already the hostname of virtual destination reviews',
    );
  });
});

describe('loadFederationFile', () => {
  it('reads kubeconfigFile relative to the federation file into the cluster source', () => {
    const dir = join(work, 'nested', 'conf');
    mkdirSync(join(dir, 'kube'), { recursive: true });
    writeFileSync(join(dir, 'kube', 'west.yaml'), 'apiVersion: v1\nkind: Config\n');
    writeFileSync(join(dir, 'fed.yaml'), FEDERATION + cluster('west-1', 'network: n1\nkubeconfigFile: kube/west.yaml\ncontext: c1') + cluster('east-1', 'network: n1'));
    const loaded = loadFederationFile(join(dir, 'fed.yaml'));
    expect(loaded).toMatchObject({ path: join(dir, 'fed.yaml'), name: 'fed', trustDomain: 'example.test' });
    const [west, east] = loaded.clusters;
    expect(west?.cluster.source).toEqual({ type: 'kubernetes', kubeconfig: 'apiVersion: v1\nkind: Config\n', context: 'c1' });
    expect(west?.kubeconfigPath).toBe(join(dir, 'kube', 'west.yaml'));
    expect(west?.services).toBeUndefined();
    expect(east?.cluster.source).toEqual({ type: 'static' });
    expect(east?.services).toEqual([]);
  });

  it('names the file, the cluster and the field when a kubeconfigFile is missing or empty', () => {
    const dir = join(work, 'missing');
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'fed.yaml'), cluster('west-1', 'network: n1\nkubeconfigFile: nope.yaml'));
    expect(() => loadFederationFile(join(dir, 'fed.yaml'))).toThrow(`${join(dir, 'fed.yaml')} (Cluster west-1): spec.kubeconfigFile: ${join(dir, 'nope.yaml')} does not exist`);
    writeFileSync(join(dir, 'empty.yaml'), '\n');
    writeFileSync(join(dir, 'fed.yaml'), cluster('west-1', 'network: n1\nkubeconfigFile: empty.yaml'));
    expect(() => loadFederationFile(join(dir, 'fed.yaml'))).toThrow(/spec\.kubeconfigFile: .*empty\.yaml is empty/);
    expect(() => loadFederationFile(join(dir, 'absent.yaml'))).toThrow(/federation file: .*absent\.yaml does not exist/);
  });

  it('loads the demo federation and the documented example', () => {
    const demo = loadFederationFile(join(ROOT, 'federation/demo.yaml'));
    expect(demo.trustDomain).toBe('meshfed.local');
    expect(demo.clusters.map(({ cluster: c }) => [c.name, c.network, c.region, c.zone, c.gateways.map((g) => `${g.address}:${g.port}`).join()])).toEqual([
      ['east-1', 'net-east', 'us-east', 'us-east-1a', '127.0.0.1:15443'],
      ['east-2', 'net-east', 'us-east', 'us-east-1b', '127.0.0.1:15444'],
      ['west-1', 'net-west', 'us-west', 'us-west-1a', '127.0.0.1:15445'],
    ]);
    const prefixes = { 'east-1': '127.0.1.', 'east-2': '127.0.2.', 'west-1': '127.0.3.' } as Record<string, string>;
    for (const { cluster: c, services } of demo.clusters) {
      expect(services?.map((s) => s.name)).toEqual(['reviews', 'ratings', 'echo']);
      for (const service of services ?? []) for (const endpoint of service.endpoints) expect(endpoint.address.startsWith(prefixes[c.name] ?? '?')).toBe(true);
    }
    const example = loadFederationFile(join(ROOT, 'federation/example.yaml'));
    expect(example.clusters.map(({ cluster: c }) => [c.name, c.source.type, c.region, c.zone])).toEqual([
      ['prod-west', 'kubernetes', 'us-west', 'us-west-2a'],
      ['lab-1', 'static', 'eu-west', 'eu-west-1a'],
    ]);
    expect(example.virtualDestinations.map(({ name, spec }) => [name, spec.hostname, spec.failover.policy])).toEqual([['checkout', 'checkout.global', 'locality']]);
    expect(demo.virtualDestinations.map(({ name, spec }) => [name, spec.hostname, spec.failover.policy])).toEqual([
      ['reviews', 'reviews.global', 'locality'],
      ['ratings', 'ratings.global', 'locality'],
    ]);
  });
});
