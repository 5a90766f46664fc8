import { describe, expect, it } from 'vitest';
import { cliOptions, find, helm, helmWithValues, render, type Manifest } from './helm.js';
import { validateManifest } from './kubernetes-schema.js';

interface Probe {
  httpGet: { path: string; port: string };
}
interface Container {
  args: string[];
  image: string;
  ports: { name: string; containerPort: number; protocol: string }[];
  readinessProbe: Probe;
  livenessProbe: Probe;
  startupProbe: Probe;
  resources: unknown;
  securityContext: Record<string, unknown>;
}
interface PodSpec {
  containers: Container[];
  securityContext: Record<string, unknown>;
  affinity?: { podAntiAffinity: Record<string, unknown> };
  serviceAccountName: string;
}
interface Deployment extends Manifest {
  spec: { replicas: number; template: { spec: PodSpec } };
}
interface ServicePort {
  name: string;
  port: number;
  targetPort: string;
  protocol: string;
}

const deployment = (manifests: Manifest[]) => find(manifests, 'Deployment') as Deployment;
const container = (manifests: Manifest[]): Container => {
  const [first] = deployment(manifests).spec.template.spec.containers;
  if (!first) throw new Error('no container');
  return first;
};
const ports = (service: Manifest) => ((service.spec as { ports: ServicePort[] }).ports).map((p) => `${p.name} ${p.port}/${p.protocol} -> ${p.targetPort}`);

const VALUE_SETS: Record<string, object | undefined> = {
  defaults: undefined,
  'three replicas, hard anti-affinity, resources, a PVC, a token Secret': {
    replicaCount: 3,
    podAntiAffinity: 'hard',
    resources: { requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 2, memory: '2Gi' } },
    state: { existingClaim: 'meshfed-state' },
    api: { existingSecret: 'meshfed-api', secretKey: 'token' },
    podDisruptionBudget: { enabled: true, minAvailable: 2 },
  },
  'a federation file, no DNS Service, LoadBalancer': {
    clusters: [],
    federation: 'apiVersion: meshfed.io/v1alpha1\nkind: Cluster\nmetadata: {name: east-1}\nspec: {network: net-east}\n',
    dns: { enabled: false, type: 'ClusterIP', targetPort: 5353 },
    service: { type: 'LoadBalancer', ports: { xds: 15010, ca: 15012, api: 443 } },
  },
};

describe('charts/meshfed', () => {
  it('passes helm lint, with its defaults and with each value set', () => {
    for (const [name, values] of Object.entries(VALUE_SETS)) {
      const lint = helmWithValues(['lint', 'charts/meshfed', '--strict'], values);
      expect(lint.status, `${name}: ${lint.stdout}${lint.stderr}`).toBe(0);
    }
  });

  it.each(Object.entries(VALUE_SETS))('renders manifests the Kubernetes API accepts: %s', (_name, values) => {
    const manifests = render('meshfed', values);
    for (const manifest of manifests) validateManifest(manifest);
    expect(manifests.filter((m) => m.kind === 'CustomResourceDefinition').map((m) => m.metadata.name).sort()).toEqual(['failoverdrills.meshfed.io', 'federatedclusters.meshfed.io', 'trustpolicies.meshfed.io', 'virtualdestinations.meshfed.io']);
  });

  it('the schema checker refuses what the API server would: a misspelled field, a wrong type', () => {
    const manifests = render('meshfed');
    const typo = structuredClone(deployment(manifests));
    const [first] = typo.spec.template.spec.containers;
    if (!first) throw new Error('no container');
    Object.assign(first, { readinesProbe: first.readinessProbe });
    expect(() => { validateManifest(typo); }).toThrow(/unknown fields \.spec\.template\.spec\.containers\[0\]\.readinesProbe/);
    const wrong = structuredClone(deployment(manifests));
    Object.assign(wrong.spec, { replicas: 'three' });
    expect(() => { validateManifest(wrong); }).toThrow(/replicas must be integer/);
  });

  it('runs meshfed serve with flags the CLI has, listening where its Services point', () => {
    const manifests = render('meshfed');
    const { args, image } = container(manifests);
    expect(image).toBe('ghcr.io/meshfed/meshfed:0.1.0');
    expect(args[0]).toBe('serve');
    const known = cliOptions('serve');
    for (const arg of args.slice(1)) expect(known, arg).toContain(arg.split('=')[0]);
    expect(args).toEqual(['serve', '--api=0.0.0.0:8080', '--xds=0.0.0.0:15010', '--ca-listen=0.0.0.0:15012', '--dns=0.0.0.0:5353', '--state-dir=/var/lib/meshfed', '--no-gateways', '--trust-domain=cluster.local', '--cluster=cluster1', '--grace=60s', '--sync-every=30s']);
    const withFile = container(render('meshfed', VALUE_SETS['a federation file, no DNS Service, LoadBalancer']));
    expect(withFile.args).toContain('--config=/etc/meshfed/federation.yaml');
    expect(withFile.args.filter((a) => a.startsWith('--cluster='))).toEqual([]);
  });

  it('probes /healthz and /readyz on the API port', () => {
    const c = container(render('meshfed'));
    const api = c.ports.find((p) => p.name === 'http-api');
    expect(api).toMatchObject({ containerPort: 8080, protocol: 'TCP' });
    expect(c.readinessProbe.httpGet).toEqual({ path: '/readyz', port: 'http-api' });
    expect(c.livenessProbe.httpGet).toEqual({ path: '/healthz', port: 'http-api' });
    expect(c.startupProbe.httpGet).toEqual({ path: '/healthz', port: 'http-api' });
  });

  it('serves xDS on 15010, the CA on 15012, the API on 8080, DNS on 53 over UDP and TCP', () => {
    const manifests = render('meshfed');
    expect(ports(find(manifests, 'Service', 'release-meshfed'))).toEqual(['grpc-xds 15010/TCP -> grpc-xds', 'tls-ca 15012/TCP -> tls-ca', 'http-api 8080/TCP -> http-api']);
    expect(ports(find(manifests, 'Service', 'release-meshfed-dns'))).toEqual(['dns-udp 53/UDP -> dns-udp', 'dns-tcp 53/TCP -> dns-tcp']);
    const named = new Map(container(manifests).ports.map((p) => [p.name, `${p.containerPort}/${p.protocol}`]));
    expect(Object.fromEntries(named)).toEqual({ 'grpc-xds': '15010/TCP', 'tls-ca': '15012/TCP', 'http-api': '8080/TCP', 'dns-udp': '5353/UDP', 'dns-tcp': '5353/TCP' });
  });

  it('runs non-root on a read-only root filesystem, with no capabilities', () => {
    const manifests = render('meshfed');
    const pod = deployment(manifests).spec.template.spec;
    expect(pod.securityContext).toMatchObject({ runAsNonRoot: true, seccompProfile: { type: 'RuntimeDefault' } });
    expect(container(manifests).securityContext).toEqual({ allowPrivilegeEscalation: false, readOnlyRootFilesystem: true, capabilities: { drop: ['ALL'] } });
  });

  it('applies replicas, resources, anti-affinity and the disruption budget from the values', () => {
    const manifests = render('meshfed', VALUE_SETS['three replicas, hard anti-affinity, resources, a PVC, a token Secret']);
    const d = deployment(manifests);
    expect(d.spec.replicas).toBe(3);
    expect(container(manifests).resources).toEqual({ requests: { cpu: '500m', memory: '1Gi' }, limits: { cpu: 2, memory: '2Gi' } });
    expect(d.spec.template.spec.affinity?.podAntiAffinity).toHaveProperty(['requiredDuringSchedulingIgnoredDuringExecution', 0, 'topologyKey'], 'kubernetes.io/hostname');
    expect(find(manifests, 'PodDisruptionBudget').spec).toMatchObject({ minAvailable: 2 });
    expect(find(render('meshfed'), 'PodDisruptionBudget').spec).toMatchObject({ maxUnavailable: 1 });
    expect(deployment(render('meshfed')).spec.template.spec.affinity?.podAntiAffinity).toHaveProperty(['preferredDuringSchedulingIgnoredDuringExecution', 0, 'podAffinityTerm', 'topologyKey'], 'kubernetes.io/hostname');
  });

  it('grants exactly the least-privilege rules, in its own namespace only', () => {
    const manifests = render('meshfed', undefined, 'mesh-system');
    expect(manifests.filter((m) => m.kind.startsWith('Cluster'))).toEqual([]);
    const role = find(manifests, 'Role');
    expect(role.metadata.namespace).toBe('mesh-system');
    expect(role.rules).toEqual([
      { apiGroups: ['meshfed.io'], resources: ['federatedclusters', 'trustpolicies', 'virtualdestinations', 'failoverdrills'], verbs: ['get', 'list', 'watch'] },
      { apiGroups: ['meshfed.io'], resources: ['federatedclusters/status', 'trustpolicies/status', 'virtualdestinations/status', 'failoverdrills/status'], verbs: ['update', 'patch'] },
      { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'patch'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
      { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: ['release-meshfed-leader'], verbs: ['get', 'update'] },
    ]);
    const binding = find(manifests, 'RoleBinding');
    expect(binding).toMatchObject({ metadata: { namespace: 'mesh-system' }, roleRef: { kind: 'Role', name: role.metadata.name }, subjects: [{ kind: 'ServiceAccount', name: 'release-meshfed', namespace: 'mesh-system' }] });
    expect(deployment(manifests).spec.template.spec.serviceAccountName).toBe('release-meshfed');
  });

  it('refuses bad values with a message that names them', () => {
    const cases: [object, RegExp][] = [
      [{ replicaCount: 0 }, /replicaCount.*minimum/s],
      [{ trustDomain: 'Mesh Fed' }, /trustDomain.*does not match pattern/s],
      [{ clusters: ['East_1'] }, /clusters\/0.*does not match pattern/s],
      [{ grace: '1 minute' }, /grace.*does not match pattern/s],
      [{ service: { type: 'Ingress', ports: { xds: 15010, ca: 15012, api: 8080 } } }, /service\/type/],
      [{ podAntiAffinity: 'sometimes' }, /podAntiAffinity/],
      [{ replicas: 3 }, /additional properties 'replicas' not allowed/],
      [{ clusters: [] }, /'\/clusters': minItems: got 0, want 1.*'\/federation': minLength/s],
    ];
    for (const [values, message] of cases) {
      const result = helmWithValues(['template', 'release', 'charts/meshfed'], values);
      expect(result.status, JSON.stringify(values)).not.toBe(0);
      expect(result.stderr, JSON.stringify(values)).toMatch(/values don't meet the specifications of the schema/);
      expect(result.stderr, JSON.stringify(values)).toMatch(message);
    }
  });

  it('says in its notes what serve does not do yet', () => {
    const result = helm(['install', 'release', 'charts/meshfed', '--dry-run=client', '--namespace', 'meshfed']);
    expect(result.status, result.stderr).toBe(0);
    expect(result.stdout).toContain('--store kubernetes');
    expect(result.stdout).toContain('WARNING: state.existingClaim is empty');
  });
});
