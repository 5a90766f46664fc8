/**
 * EDS resources (src/xds/resources/endpoints.ts): split-horizon assignments as ClusterLoadAssignment, encoded with
 * the Envoy v3 protos shipped in @grpc/grpc-js-xds, decoded back by meshfed's protobufjs type and by the grpc xDS
 * client's own decoder (decodeSingleResource: @grpc/proto-loader's loader over the same .proto files).
 */
import { decodeSingleResource, EDS_TYPE_URL } from '@grpc/grpc-js-xds/build/src/resources.js';
import { loadSync } from '@grpc/proto-loader';
import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { clusterSchema, type ClusterInput } from '../../src/model/cluster.js';
import { endpointSchema, serviceSchema } from '../../src/model/service.js';
import type { ClusterView, FederatedSnapshot } from '../../src/registry/snapshot.js';
import type { ServiceView } from '../../src/registry/source.js';
import { loadAssignment, type LoadAssignment, type ProxyView } from '../../src/topology/index.js';
import { HEALTH_STATUS, TO_OBJECT_OPTIONS, TYPE_URL, clusterLoadAssignmentType, envoyIncludeDirs } from '../../src/xds/envoy-protos.js';
import {
  assertClusterLoadAssignment,
  clusterLoadAssignment,
  decodeClusterLoadAssignment,
  encodeClusterLoadAssignment,
  toAny,
  type ClusterLoadAssignmentObject,
  type LbEndpointObject,
} from '../../src/xds/resources/endpoints.js';

const SERVICE = 'ns/example';
const PORT = 80;
const EDS_NAME = 'outbound|80||example.ns.svc.cluster.local';

type EndpointInput = z.input<typeof endpointSchema>;

interface ClusterSpec extends Omit<ClusterInput, 'gateways'> {
  gateways?: string[];
  endpoints: (string | EndpointInput)[];
}

function clusterView(spec: ClusterSpec): ClusterView {
  const { endpoints, gateways = [], ...input } = spec;
  const cluster = clusterSchema.parse({ ...input, gateways: gateways.map((address) => ({ address })) });
  const service = serviceSchema.parse({ cluster: cluster.name, namespace: 'ns', name: 'example', ports: [{ name: 'http', port: PORT, targetPort: 8080 }] });
  const services = new Map<string, ServiceView>([[SERVICE, { service, endpoints: endpoints.map((e) => endpointSchema.parse(typeof e === 'string' ? { address: e } : e)) }]]);
  return { cluster, gateways: cluster.gateways, state: 'ready', services };
}

const snapshot = (...specs: ClusterSpec[]): FederatedSnapshot => ({ version: 1, createdAt: new Date(0), clusters: new Map(specs.map((s) => [s.name, clusterView(s)])) });

/** Two networks; net-b has an IPv4 and an IPv6 gateway; every health state; endpoints in several localities. */
const SNAPSHOT = snapshot(
  {
    name: 'c-a',
    network: 'net-a',
    region: 'r1',
    zone: 'z1',
    gateways: ['192.0.2.1'],
    endpoints: [
      '10.0.0.1',
      { address: '10.0.0.2', health: 'terminating' },
      { address: '10.0.0.3', health: 'unready' },
      { address: 'fd00::a:4', locality: { region: 'r1', zone: 'z1', subzone: 'rack-2' } },
      { address: '10.0.0.5', locality: { region: 'r1', zone: 'z2' } },
    ],
  },
  {
    name: 'c-a2',
    network: 'net-a',
    region: 'r2',
    endpoints: ['10.0.1.1', { address: '10.0.1.2', tlsMode: 'plaintext' }],
  },
  {
    name: 'c-b',
    network: 'net-b',
    region: 'r1',
    zone: 'z1',
    gateways: ['192.0.2.21', '2001:db8::21'],
    endpoints: ['10.1.0.1', '10.1.0.2', { address: '10.1.0.3', health: 'serving' }, { address: '10.1.0.4', tlsMode: 'plaintext' }],
  },
);

const PROXY_A: ProxyView = { cluster: 'c-a', network: 'net-a', locality: { region: 'r1', zone: 'z1' } };
const PROXY_B: ProxyView = { cluster: 'c-b', network: 'net-b', locality: { region: 'r2' } };
const PROXY_NONE: ProxyView = { locality: {} };

const assignment = (proxy: ProxyView): LoadAssignment => loadAssignment(SNAPSHOT, proxy, SERVICE, PORT);
const allEndpoints = (cla: ClusterLoadAssignmentObject): LbEndpointObject[] => (cla.endpoints ?? []).flatMap((g) => g.lb_endpoints);
const socketOf = (e: LbEndpointObject): string => `${e.endpoint.address.socket_address.address}:${e.endpoint.address.socket_address.port_value ?? 0}`;

/** A deep copy that the tests can mangle (typed loosely on purpose). */
const mangle = (cla: ClusterLoadAssignmentObject, edit: (o: Record<string, unknown> & { endpoints: Record<string, unknown>[] }) => void): ClusterLoadAssignmentObject => {
  const copy = structuredClone(cla) as unknown as Record<string, unknown> & { endpoints: Record<string, unknown>[] };
  edit(copy);
  return copy as unknown as ClusterLoadAssignmentObject;
};

describe('clusterLoadAssignment', () => {
  const proxies: [string, ProxyView][] = [
    ['proxy on net-a in r1/z1', PROXY_A],
    ['proxy on net-b in r2', PROXY_B],
    ['proxy without network or locality', PROXY_NONE],
  ];

  it.each(proxies)('%s: mirrors the assignment group by group, endpoint by endpoint', (_name, proxy) => {
    const a = assignment(proxy);
    const cla = clusterLoadAssignment(EDS_NAME, a);
    expect(cla.cluster_name).toBe(EDS_NAME);
    expect(cla.endpoints).toHaveLength(a.groups.length);
    a.groups.forEach((g, i) => {
      const out = cla.endpoints?.[i];
      expect(out?.priority ?? 0).toBe(g.priority);
      expect(out?.load_balancing_weight).toEqual({ value: g.weight });
      expect([out?.locality.region ?? '', out?.locality.zone ?? '', out?.locality.sub_zone ?? '']).toEqual([g.locality.region, g.locality.zone, g.locality.subzone]);
      expect(out?.lb_endpoints.map(socketOf)).toEqual(g.endpoints.map((e) => `${e.address}:${e.port}`));
      expect(out?.lb_endpoints.map((e) => e.health_status)).toEqual(g.endpoints.map((e) => HEALTH_STATUS[e.health]));
      expect(out?.lb_endpoints.map((e) => e.load_balancing_weight.value)).toEqual(g.endpoints.map((e) => e.weight));
    });
  });

  it('the proxy on net-a sees its own network direct and net-b through both gateways (IPv4 and IPv6)', () => {
    const sockets = allEndpoints(clusterLoadAssignment(EDS_NAME, assignment(PROXY_A))).map(socketOf);
    expect(sockets).toEqual(expect.arrayContaining(['10.0.0.1:8080', 'fd00::a:4:8080', '192.0.2.21:15443', '2001:db8::21:15443']));
    expect(sockets.filter((s) => s.startsWith('10.1.'))).toEqual([]);
  });

  it('every locality and every endpoint carries load_balancing_weight >= 1, also for all-unhealthy groups', () => {
    for (const proxy of [PROXY_A, PROXY_B, PROXY_NONE]) {
      const cla = clusterLoadAssignment(EDS_NAME, assignment(proxy));
      for (const g of cla.endpoints ?? []) {
        expect(g.load_balancing_weight.value).toBeGreaterThanOrEqual(1);
        for (const e of g.lb_endpoints) expect(e.load_balancing_weight.value).toBeGreaterThanOrEqual(1);
      }
    }
  });

  it('health statuses are the envoy.config.core.v3.HealthStatus numbers, and the assignment has all three', () => {
    expect(HEALTH_STATUS).toEqual({ HEALTHY: 1, UNHEALTHY: 2, DRAINING: 3 });
    const statuses = new Set(allEndpoints(clusterLoadAssignment(EDS_NAME, assignment(PROXY_NONE))).map((e) => e.health_status));
    expect([...statuses].sort()).toEqual([1, 2, 3]);
  });

  it('an empty assignment is a CLA with no endpoints', () => {
    const empty: LoadAssignment = { service: SERVICE, port: PORT, groups: [], scaleFactor: 1, dropped: [], skippedGateways: [] };
    const cla = clusterLoadAssignment(EDS_NAME, empty);
    expect(cla).toEqual({ cluster_name: EDS_NAME });
    expect(decodeClusterLoadAssignment(encodeClusterLoadAssignment(cla))).toEqual(cla);
  });
});

describe('encoding', () => {
  it.each([PROXY_A, PROXY_B, PROXY_NONE])('decode(encode(x)) equals x (%#)', (proxy) => {
    const cla = clusterLoadAssignment(EDS_NAME, assignment(proxy));
    const bytes = encodeClusterLoadAssignment(cla);
    expect(bytes.length).toBeGreaterThan(0);
    expect(decodeClusterLoadAssignment(bytes)).toEqual(cla);
    const type = clusterLoadAssignmentType();
    expect(type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS)).toEqual(cla);
    // and encoding is deterministic: the same view gives the same bytes
    expect(Buffer.from(encodeClusterLoadAssignment(clusterLoadAssignment(EDS_NAME, assignment(proxy))))).toEqual(Buffer.from(bytes));
  });

  it('toAny carries the ClusterLoadAssignment type URL and the encoded bytes', () => {
    const cla = clusterLoadAssignment(EDS_NAME, assignment(PROXY_A));
    const any = toAny(cla);
    expect(any.type_url).toBe('type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment');
    expect(any.type_url).toBe(TYPE_URL.clusterLoadAssignment);
    expect(any.type_url).toBe(EDS_TYPE_URL);
    expect(Buffer.from(any.value)).toEqual(Buffer.from(encodeClusterLoadAssignment(cla)));
  });

  it('the grpc xDS client decoder (proto-loader over the same protos) reads the same CLA', () => {
    for (const proxy of [PROXY_A, PROXY_B, PROXY_NONE]) {
      const cla = clusterLoadAssignment(EDS_NAME, assignment(proxy));
      const any = toAny(cla);
      const decoded = decodeSingleResource(EDS_TYPE_URL, Buffer.from(any.value));
      expect(decoded.cluster_name).toBe(EDS_NAME);
      const names = ['UNKNOWN', 'HEALTHY', 'UNHEALTHY', 'DRAINING'];
      expect(
        decoded.endpoints.map((g) => ({
          locality: [g.locality?.region, g.locality?.zone, g.locality?.sub_zone],
          priority: g.priority,
          weight: g.load_balancing_weight?.value,
          endpoints: g.lb_endpoints.map((e) => [e.endpoint?.address?.socket_address?.address, e.endpoint?.address?.socket_address?.port_value, e.health_status, e.load_balancing_weight?.value]),
        })),
      ).toEqual(
        (cla.endpoints ?? []).map((g) => ({
          locality: [g.locality.region ?? '', g.locality.zone ?? '', g.locality.sub_zone ?? ''],
          priority: g.priority ?? 0,
          weight: g.load_balancing_weight.value,
          endpoints: g.lb_endpoints.map((e) => [e.endpoint.address.socket_address.address, e.endpoint.address.socket_address.port_value, names[e.health_status], e.load_balancing_weight.value]),
        })),
      );
    }
  });

  it("@grpc/proto-loader's loadSync of the same proto knows the message and the fields meshfed writes", () => {
    const defs = loadSync('envoy/config/endpoint/v3/endpoint.proto', { keepCase: true, includeDirs: envoyIncludeDirs().slice(0, 4) });
    const fieldsOf = (name: string): (string | null | undefined)[] => {
      const def = defs[name];
      if (!def || !('type' in def) || def.format !== 'Protocol Buffer 3 DescriptorProto') throw new Error(`${name} missing`);
      return (def.type as { field: { name?: string | null }[] }).field.map((f) => f.name);
    };
    expect(fieldsOf('envoy.config.endpoint.v3.ClusterLoadAssignment')).toEqual(expect.arrayContaining(['cluster_name', 'endpoints']));
    expect(fieldsOf('envoy.config.endpoint.v3.LocalityLbEndpoints')).toEqual(expect.arrayContaining(['locality', 'lb_endpoints', 'load_balancing_weight', 'priority']));
    expect(fieldsOf('envoy.config.endpoint.v3.LbEndpoint')).toEqual(expect.arrayContaining(['endpoint', 'health_status', 'load_balancing_weight']));
    expect(fieldsOf('envoy.config.core.v3.SocketAddress')).toEqual(expect.arrayContaining(['address', 'port_value']));
    expect(fieldsOf('envoy.config.core.v3.Locality')).toEqual(expect.arrayContaining(['region', 'zone', 'sub_zone']));
  });
});

describe('refusals', () => {
  const good = (): ClusterLoadAssignmentObject => clusterLoadAssignment(EDS_NAME, assignment(PROXY_A));

  it.each<[string, (o: Record<string, unknown> & { endpoints: Record<string, unknown>[] }) => void, RegExp]>([
    [
      'a misspelled LbEndpoint field',
      (o) => {
        const lb = (o.endpoints[0]?.lb_endpoints as Record<string, unknown>[])[0];
        if (lb) {
          lb.load_balancing_wieght = lb.load_balancing_weight;
        }
      },
      /endpoints\[0\]\.lb_endpoints\[0\]\.load_balancing_wieght: dropped/,
    ],
    [
      'a misspelled locality field',
      (o) => {
        const g = o.endpoints[0];
        if (g) g.locality = { region: 'r1', subzone: 'x' };
      },
      /endpoints\[0\]\.locality\.subzone: dropped/,
    ],
    [
      'a wrongly typed field',
      (o) => {
        o.cluster_name = 42;
      },
      /invalid field: cluster_name: string expected/,
    ],
    [
      'a duplicate address in another locality',
      (o) => {
        const last = o.endpoints[o.endpoints.length - 1];
        const first = o.endpoints[0];
        if (last && first) (last.lb_endpoints as unknown[]).push(structuredClone((first.lb_endpoints as unknown[])[0]));
      },
      /address 10\.0\.0\.1:8080 duplicates endpoints\[0\]\.lb_endpoints\[0\] \(grpc NACKs duplicate addresses\)/,
    ],
    [
      'a hostname address',
      (o) => {
        const lb = (o.endpoints[0]?.lb_endpoints as LbEndpointObject[])[0];
        if (lb) lb.endpoint.address.socket_address.address = 'reviews.example.com';
      },
      /address "reviews\.example\.com" is not an IP literal/,
    ],
    [
      'a locality without load_balancing_weight',
      (o) => {
        delete o.endpoints[0]?.load_balancing_weight;
      },
      /endpoints\[0\]\.load_balancing_weight is missing \(grpc drops a locality without one\)/,
    ],
    [
      'a locality weight of 0',
      (o) => {
        const g = o.endpoints[0];
        if (g) g.load_balancing_weight = { value: 0 };
      },
      /endpoints\[0\]\.load_balancing_weight\.value 0 is not in 1\.\.2\^32-1/,
    ],
    [
      'a duplicate (locality, priority) pair',
      (o) => {
        const g = o.endpoints[0];
        if (g) o.endpoints.push({ ...structuredClone(g), lb_endpoints: [{ endpoint: { address: { socket_address: { address: '10.9.9.9', port_value: 1 } } }, health_status: 1, load_balancing_weight: { value: 1 } }] });
      },
      /appears twice at priority 0/,
    ],
    [
      'a gap in priorities',
      (o) => {
        for (const g of o.endpoints) if (g.priority !== undefined) g.priority = (g.priority as number) + 1;
      },
      /priorities .* are not contiguous from 0/,
    ],
  ])('%s', (_name, edit, message) => {
    const bad = mangle(good(), edit);
    expect(() => {
      assertClusterLoadAssignment(bad);
    }).toThrow(message);
    expect(() => encodeClusterLoadAssignment(bad)).toThrow(message);
    expect(() => toAny(bad)).toThrow(message);
  });

  it('a hostname that reached the topology layer is refused when building', () => {
    const a = assignment(PROXY_A);
    const first = a.groups[0]?.endpoints[0];
    if (!first) throw new Error('no endpoint');
    first.address = 'gw.example.com';
    expect(() => clusterLoadAssignment(EDS_NAME, a)).toThrow(/ClusterLoadAssignment ".*": endpoints\[0\]\.lb_endpoints\[0\]: address "gw\.example\.com" is not an IP literal/);
  });

  it('an explicit priority 0 is accepted and survives the round trip (protobufjs encodes explicit zeros)', () => {
    const explicit = mangle(good(), (o) => {
      for (const g of o.endpoints) g.priority ??= 0;
    });
    expect(decodeClusterLoadAssignment(encodeClusterLoadAssignment(explicit))).toEqual(explicit);
  });

  it('the unmangled CLA passes', () => {
    expect(() => {
      assertClusterLoadAssignment(good());
    }).not.toThrow();
  });
});

describe('the strict wire encoder (cla-wire.ts)', () => {
  const protobufjsBytes = (cla: ClusterLoadAssignmentObject): Buffer => {
    const type = clusterLoadAssignmentType();
    return Buffer.from(type.encode(type.fromObject(cla)).finish());
  };
  const shapes: [string, ClusterLoadAssignmentObject][] = [
    ['proxy A (direct, gateways, priorities)', clusterLoadAssignment(EDS_NAME, assignment(PROXY_A))],
    ['proxy B', clusterLoadAssignment(EDS_NAME, assignment(PROXY_B))],
    ['no endpoints', { cluster_name: EDS_NAME }],
    [
      'IPv6, a sub_zone, an explicit priority 0 and an explicit empty zone',
      {
        cluster_name: EDS_NAME,
        endpoints: [
          {
            locality: { region: 'r', zone: '', sub_zone: 's' },
            priority: 0,
            load_balancing_weight: { value: 70000 },
            lb_endpoints: [{ endpoint: { address: { socket_address: { address: '2001:db8::1', port_value: 443 } } }, health_status: HEALTH_STATUS.DRAINING, load_balancing_weight: { value: 4294967295 } }],
          },
        ],
      },
    ],
    [
      // nested lengths of 1, 2 and 3 varint bytes (the fast writer widens a length in place)
      'one group of 3,000 endpoints and a long non-ASCII sub_zone',
      {
        cluster_name: EDS_NAME,
        endpoints: [
          {
            locality: { region: 'r', zone: 'z', sub_zone: 'é'.repeat(100) },
            load_balancing_weight: { value: 3000 },
            lb_endpoints: Array.from({ length: 3000 }, (_, i) => ({
              endpoint: { address: { socket_address: { address: `10.${i >> 8}.${i & 255}.1`, port_value: 8080 } } },
              health_status: HEALTH_STATUS.HEALTHY,
              load_balancing_weight: { value: 1 + i },
            })),
          },
        ],
      },
    ],
  ];

  it.each(shapes)('writes the bytes protobufjs writes: %s', (_name, cla) => {
    expect(Buffer.from(encodeClusterLoadAssignment(cla))).toEqual(protobufjsBytes(cla));
    expect(decodeClusterLoadAssignment(encodeClusterLoadAssignment(cla))).toEqual(cla);
  });

  it('refuses an unknown key at any depth, and a value of the wrong type, naming the field', () => {
    type Loose = { endpoints: { lb_endpoints: (Record<string, unknown> & { endpoint: { address: { socket_address: Record<string, unknown> } } })[] }[] };
    const deep = structuredClone(shapes[3]?.[1]) as unknown as Loose;
    const lb = deep.endpoints[0]?.lb_endpoints[0];
    if (lb) lb.endpoint.address.socket_address.protocol = 1;
    expect(() => encodeClusterLoadAssignment(deep as unknown as ClusterLoadAssignmentObject)).toThrow(/field endpoints\[0\]\.lb_endpoints\[0\]\.endpoint\.address\.socket_address\.protocol: dropped/);
    if (lb) {
      delete lb.endpoint.address.socket_address.protocol;
      lb.health_status = 'HEALTHY';
    }
    expect(() => encodeClusterLoadAssignment(deep as unknown as ClusterLoadAssignmentObject)).toThrow(/invalid field: endpoints\[0\]\.lb_endpoints\[0\]\.health_status: uint32 expected/);
  });
});
