import { describe, expect, it } from 'vitest';
import { cliOptions, find, helmWithValues, render, type Manifest } from './helm.js';
import { validateManifest } from './kubernetes-schema.js';

interface Container {
  args: string[];
  image: string;
  ports: { name: string; containerPort: number; protocol: string }[];
  readinessProbe: { httpGet: { path: string; port: string } };
  livenessProbe: { httpGet: { path: string; port: string } };
  resources: unknown;
  securityContext: Record<string, unknown>;
}
interface Deployment extends Manifest {
  spec: { replicas: number; template: { metadata: { labels: Record<string, string> }; spec: { containers: Container[]; terminationGracePeriodSeconds: number; automountServiceAccountToken: boolean } } };
}

const deployment = (manifests: Manifest[]) => find(manifests, 'Deployment') as Deployment;
const container = (manifests: Manifest[]): Container => {
  const [first] = deployment(manifests).spec.template.spec.containers;
  if (!first) throw new Error('no container');
  return first;
};

const VALUE_SETS: Record<string, object | undefined> = {
  defaults: undefined,
  'three replicas, a custom network, resources': {
    cluster: 'west-1',
    network: 'net-west',
    xds: 'meshfed.mesh-system.svc.cluster.local:15010',
    replicaCount: 3,
    resources: { requests: { cpu: 1, memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } },
    gateway: { balance: 'least-connections', maxConnections: 50000, helloTimeout: '5s', connectTimeout: '2s', idleTimeout: '30m', drainSeconds: 120 },
    service: { type: 'LoadBalancer', port: 15443, externalTrafficPolicy: 'Local', loadBalancerSourceRanges: ['203.0.113.0/24'], annotations: { 'service.beta.kubernetes.io/aws-load-balancer-type': 'nlb' } },
    podAntiAffinity: 'hard',
    podDisruptionBudget: { enabled: true, maxUnavailable: '50%' },
  },
};

describe('charts/eastwest-gateway', () => {
  it('passes helm lint, with its defaults and with each value set', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const lint = helmWithValues(['lint', 'charts/eastwest-gateway', '--strict'], values);
      expect(lint.status, `${name}: ${lint.stdout}${lint.stderr}`).toBe(0);
    }
  });

  it.each(Object.entries(VALUE_SETS))('renders manifests the Kubernetes API accepts: %s', (_name, values) => {
    const manifests = render('eastwest-gateway', values, 'istio-system');
    for (const manifest of manifests) validateManifest(manifest);
    expect(manifests.map((m) => m.kind).sort()).toEqual(['Deployment', 'PodDisruptionBudget', 'Service']);
  });

  it('runs meshfed gateway with flags the CLI has, for its cluster and network', () => {
    const manifests = render('eastwest-gateway', VALUE_SETS['three replicas, a custom network, resources']);
    const { args, image } = container(manifests);
    expect(image).toBe('ghcr.io/meshfed/meshfed:0.1.0');
    expect(args[0]).toBe('gateway');
    const known = cliOptions('gateway');
    for (const arg of args.slice(1)) expect(known, arg).toContain(arg.split('=')[0]);
    expect(args).toEqual([
      'gateway',
      '--cluster=west-1',
      '--network=net-west',
      '--xds=meshfed.mesh-system.svc.cluster.local:15010',
      '--listen=0.0.0.0:15443',
      '--admin=0.0.0.0:15021',
      '--balance=least-connections',
      '--max-connections=50000',
      '--hello-timeout=5s',
      '--connect-timeout=2s',
      '--idle-timeout=30m',
      '--drain=120s',
    ]);
    // the pod outlives its drain
    expect(deployment(manifests).spec.template.spec.terminationGracePeriodSeconds).toBe(130);
    expect(deployment(manifests).spec.replicas).toBe(3);
    expect(container(manifests).resources).toEqual({ requests: { cpu: 1, memory: '256Mi' }, limits: { cpu: '2', memory: '1Gi' } });
    expect(find(manifests, 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: '50%' });
  });

  it('probes /healthz and /readyz on the admin port 15021', () => {
    const c = container(render('eastwest-gateway'));
    expect(c.ports).toEqual([
      { name: 'tls', containerPort: 15443, protocol: 'TCP' },
      { name: 'http-admin', containerPort: 15021, protocol: 'TCP' },
    ]);
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-admin' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-admin' });
    expect(c.securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
    expect(deployment(render('eastwest-gateway')).spec.template.spec.automountServiceAccountToken).toBe(false);
  });

  it('is a LoadBalancer on 15443 labelled with its network, as meshfed and Istio discover gateways', () => {
    const manifests = render('eastwest-gateway', VALUE_SETS['three replicas, a custom network, resources']);
    const service = find(manifests, 'Service');
    expect(service.metadata.labels?.['topology.istio.io/network']).toBe('net-west');
    expect(service.spec).toMatchObject({ type: 'LoadBalancer', externalTrafficPolicy: 'Local', loadBalancerSourceRanges: ['203.0.113.0/24'], ports: [{ name: 'tls', port: 15443, targetPort: 'tls', protocol: 'TCP' }] });
    expect(deployment(manifests).spec.template.metadata.labels['topology.istio.io/network']).toBe('net-west');
    expect(find(render('eastwest-gateway'), 'Service').metadata.labels?.['topology.istio.io/network']).toBe('network1');
  });

  it('refuses bad values with a message that names them', () => {
    const cases: [object, RegExp][] = [
      [{ network: 'net west' }, /'\/network': 'net west' does not match pattern/],
      [{ cluster: 'West-1' }, /'\/cluster': 'West-1' does not match pattern/],
      [{ xds: 'meshfed' }, /'\/xds': 'meshfed' does not match pattern/],
      [{ gateway: { balance: 'random', maxConnections: 1, helloTimeout: '1s', connectTimeout: '1s', idleTimeout: '1h', drainSeconds: 1 } }, /'\/gateway\/balance'/],
      [{ service: { type: 'LoadBalancer', port: 70000 } }, /'\/service\/port': maximum/],
      [{ replicaCount: -1 }, /'\/replicaCount': minimum/],
    ];
    for (const [values, message] of cases) {
      const result = helmWithValues(['template', 'release', 'charts/eastwest-gateway'], values);
      expect(result.status, JSON.stringify(values)).not.toBe(0);
      expect(result.stderr, JSON.stringify(values)).toMatch(/values don't meet the specifications of the schema/);
      expect(result.stderr, JSON.stringify(values)).toMatch(message);
    }
  });
});
