import { describe, expect, it } from 'vitest';
import type { z } from 'zod';
import { vdTargetPort, virtualDestinationConflict, virtualDestinationSchema, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';

const VALID: VirtualDestinationInput = { hostname: 'reviews.global', ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ name: 'reviews' }] };

const formatPath = (path: readonly PropertyKey[]): string => path.map((part) => (typeof part === 'number' ? `[${part}]` : `.${String(part)}`)).join('').replace(/^\./, '');

/** Every issue as `path: message`. */
function problems(input: unknown): string[] {
  const parsed = virtualDestinationSchema.safeParse(input);
  if (parsed.success) return [];
  return parsed.error.issues.map((issue: z.core.$ZodIssue) => `${formatPath(issue.path)}: ${issue.message}`);
}

const withFailover = (failover: unknown): unknown => ({ ...VALID, failover });

describe('virtualDestinationSchema', () => {
  it('accepts a full virtual destination and fills in the defaults', () => {
    const vd = virtualDestinationSchema.parse({
      hostname: 'reviews.global',
      ports: [
        { number: 9080, protocol: 'GRPC', name: 'grpc' },
        { number: 80, protocol: 'HTTP', targetPort: 9080, name: 'http' },
      ],
      backends: [{ namespace: 'bookinfo', name: 'reviews', clusters: ['east-1', 'west-1'] }, { labels: { app: 'reviews' } }],
      failover: {
        policy: 'priority',
        order: [{ cluster: 'east-1' }, { region: 'us-west', zone: 'us-west-1a' }, { region: 'us-west' }],
        weights: [
          { cluster: 'east-1', weight: 80 },
          { cluster: 'west-1', weight: 0 },
        ],
        minHealthyPercent: 70,
      },
      outlierDetection: { consecutive5xx: 5, consecutiveGatewayErrors: 3, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 50, failurePercentage: { threshold: 50, minimumHosts: 2, requestVolume: 10 } },
    });
    expect(vd.outlierDetection?.failurePercentage).toEqual({ threshold: 50, minimumHosts: 2, requestVolume: 10 });
    for (const failurePercentage of [{ threshold: 0 }, { threshold: 100, minimumHosts: 0, requestVolume: 0 }, { threshold: 85, minimumHosts: 5, requestVolume: 50 }]) {
      expect(problems({ ...VALID, outlierDetection: { failurePercentage } })).toEqual([]);
    }
    expect(vd.ports.map(vdTargetPort)).toEqual([9080, 9080]);
    expect(vd.failover.order).toHaveLength(3);
    expect(virtualDestinationSchema.parse(VALID).failover).toEqual({ policy: 'locality' });
    expect(virtualDestinationSchema.parse({ ...VALID, failover: { regionMappings: [{ from: 'us-east', to: ['us-west', 'eu-central'] }] } }).failover.policy).toBe('locality');
    for (const hostname of ['reviews.global', 'a.b', 'reviews.bookinfo.mesh', 'x-1.example.com', 'reviews.svc.global']) expect(problems({ ...VALID, hostname })).toEqual([]);
  });

  const cases: [string, unknown, string][] = [
    ['a wildcard', { ...VALID, hostname: '*.global' }, 'hostname: must not be a wildcard: a virtual destination has one exact name'],
    ['a trailing dot', { ...VALID, hostname: 'reviews.global.' }, 'hostname: must not end with "." (write reviews.global)'],
    ['capitals', { ...VALID, hostname: 'Reviews.Global' }, 'hostname: must be lowercase (reviews.global)'],
    ['an IPv4 address', { ...VALID, hostname: '10.0.0.1' }, 'hostname: must be a DNS name, not an IP address'],
    ['an IPv6 address', { ...VALID, hostname: 'fd00::1' }, 'hostname: must be a DNS name, not an IP address'],
    ['one label', { ...VALID, hostname: 'reviews' }, 'hostname: must have at least two labels, such as reviews.global'],
    ['a bad label', { ...VALID, hostname: 'rev_iews.global' }, 'hostname: label "rev_iews" must be 1-63 lowercase letters, digits or "-", starting and ending with a letter or digit'],
    ['a numeric last label', { ...VALID, hostname: 'reviews.123' }, 'hostname: the last label must not be all digits'],
    ['a Kubernetes service name', { ...VALID, hostname: 'reviews.default.svc.cluster.local' }, "hostname: must not be under cluster.local, where the Kubernetes services' names live"],
    ['an empty hostname', { ...VALID, hostname: '' }, 'hostname: must not be empty'],
    ['a long hostname', { ...VALID, hostname: `${'a'.repeat(60)}.`.repeat(5) + 'global' }, 'hostname: must be at most 253 characters'],
    ['no ports', { ...VALID, ports: [] }, 'ports: must have at least one port'],
    ['port 0', { ...VALID, ports: [{ number: 0, protocol: 'TCP' }] }, 'ports[0].number: must be 1-65535'],
    ['an unknown protocol', { ...VALID, ports: [{ number: 53, protocol: 'UDP' }] }, 'ports[0].protocol: must be one of HTTP, GRPC, HTTP2, TCP, TLS'],
    ['a bad targetPort', { ...VALID, ports: [{ number: 80, protocol: 'HTTP', targetPort: 70000 }] }, 'ports[0].targetPort: must be 1-65535'],
    ['a capitalised port name', { ...VALID, ports: [{ number: 80, protocol: 'HTTP', name: 'Http' }] }, 'ports[0].name: must be lowercase letters, digits and "-", starting and ending with a letter or digit'],
    ['a long port name', { ...VALID, ports: [{ number: 80, protocol: 'HTTP', name: 'a-very-long-name' }] }, 'ports[0].name: must be at most 15 characters (an IANA service name)'],
    [
      'a port number twice',
      { ...VALID, ports: [{ number: 80, protocol: 'HTTP' }, { number: 80, protocol: 'GRPC' }] },
      'ports[1].number: port 80 is already ports[0]',
    ],
    [
      'a port name twice',
      { ...VALID, ports: [{ number: 80, protocol: 'HTTP', name: 'web' }, { number: 81, protocol: 'HTTP', name: 'web' }] },
      'ports[1].name: name web is already used by ports[0]',
    ],
    ['no backends', { ...VALID, backends: [] }, 'backends: must have at least one backend'],
    ['a backend with neither name nor labels', { ...VALID, backends: [{ name: 'reviews' }, { namespace: 'shop' }] }, 'backends[1]: a backend must select services by name or by labels'],
    ['an empty label selector', { ...VALID, backends: [{ labels: {} }] }, 'backends[0].labels: must not be empty: an empty selector would select every service'],
    ['a bad service name', { ...VALID, backends: [{ name: 'Reviews' }] }, 'backends[0].name: must be a DNS-1123 label: lowercase letters, digits and "-", at most 63 characters, starting and ending alphanumeric'],
    ['an empty cluster list', { ...VALID, backends: [{ name: 'reviews', clusters: [] }] }, 'backends[0].clusters: must name at least one cluster (leave clusters out for all of them)'],
    ['a bad cluster name', { ...VALID, backends: [{ name: 'reviews', clusters: ['East_1'] }] }, 'backends[0].clusters[0]: cluster name must be a DNS-1123 label'],
    ['an unknown policy', withFailover({ policy: 'nearest' }), 'failover.policy: must be locality or priority'],
    ['priority without order', withFailover({ policy: 'priority' }), 'failover.order: is required with policy priority'],
    ['order with locality', withFailover({ order: [{ cluster: 'east-1' }] }), 'failover.order: only applies with policy priority (locality orders by distance; use regionMappings to change it)'],
    [
      'region mappings with priority',
      withFailover({ policy: 'priority', order: [{ cluster: 'east-1' }], regionMappings: [{ from: 'us-east', to: ['us-west'] }] }),
      'failover.regionMappings: only applies with policy locality (with priority, list the regions in order)',
    ],
    ['an empty order', withFailover({ policy: 'priority', order: [] }), 'failover.order: must have at least one entry'],
    ['an entry with a cluster and a region', withFailover({ policy: 'priority', order: [{ cluster: 'east-1', region: 'us-east' }] }), 'failover.order[0].cluster: an entry names a cluster or a locality (region, zone), not both'],
    ['an entry with a zone alone', withFailover({ policy: 'priority', order: [{ zone: 'us-east-1a' }] }), 'failover.order[0]: zone needs its region'],
    ['an empty entry', withFailover({ policy: 'priority', order: [{}] }), 'failover.order[0]: an entry names a cluster, or a region and optionally a zone'],
    ['an unknown entry field', withFailover({ policy: 'priority', order: [{ cluster: 'east-1', network: 'net-a' }] }), 'failover.order[0]: Unrecognized key: "network"'],
    [
      'an entry shadowed by its region',
      withFailover({ policy: 'priority', order: [{ region: 'us-east' }, { region: 'us-east', zone: 'us-east-1a' }] }),
      'failover.order[1]: us-east/us-east-1a is never reached: order[0] (region us-east) comes first',
    ],
    ['a cluster listed twice', withFailover({ policy: 'priority', order: [{ cluster: 'a' }, { cluster: 'a' }] }), 'failover.order[1]: cluster a is never reached: order[0] (cluster a) comes first'],
    ['a mapping to nowhere', withFailover({ regionMappings: [{ from: 'us-east', to: [] }] }), 'failover.regionMappings[0].to: must name at least one region'],
    ['a mapping to its own region', withFailover({ regionMappings: [{ from: 'us-east', to: ['us-east'] }] }), 'failover.regionMappings[0].to[0]: must not list us-east, the region it maps from'],
    ['a region mapped twice', withFailover({ regionMappings: [{ from: 'us-east', to: ['us-west'] }, { from: 'us-east', to: ['eu'] }] }), 'failover.regionMappings[1].from: region us-east is already mapped by regionMappings[0]'],
    ['a mapping listing a region twice', withFailover({ regionMappings: [{ from: 'us-east', to: ['eu', 'eu'] }] }), 'failover.regionMappings[0].to[1]: lists eu twice'],
    ['a weight above 100', withFailover({ weights: [{ cluster: 'a', weight: 101 }] }), 'failover.weights[0].weight: must be 0-100'],
    ['a fractional weight', withFailover({ weights: [{ cluster: 'a', weight: 1.5 }] }), 'failover.weights[0].weight: must be a whole number'],
    ['a cluster weighted twice', withFailover({ weights: [{ cluster: 'a', weight: 1 }, { cluster: 'a', weight: 2 }] }), 'failover.weights[1].cluster: cluster a is already weighted by weights[0]'],
    ['every weight 0', withFailover({ weights: [{ cluster: 'a', weight: 0 }] }), 'failover.weights: at least one cluster must weigh more than 0'],
    ['minHealthyPercent above 100', withFailover({ minHealthyPercent: 120 }), 'failover.minHealthyPercent: must be 0-100'],
    ['a bad interval', { ...VALID, outlierDetection: { interval: '10' } }, 'outlierDetection.interval: must be a duration such as 24h, 30d or 1y'],
    ['a bad base ejection time', { ...VALID, outlierDetection: { baseEjectionTime: '0s' } }, 'outlierDetection.baseEjectionTime: must be a duration such as 24h, 30d or 1y'],
    ['a negative count', { ...VALID, outlierDetection: { consecutive5xx: -1 } }, 'outlierDetection.consecutive5xx: must be 0 or more'],
    ['a fractional count', { ...VALID, outlierDetection: { consecutiveGatewayErrors: 2.5 } }, 'outlierDetection.consecutiveGatewayErrors: must be a whole number'],
    ['an ejection percent above 100', { ...VALID, outlierDetection: { maxEjectionPercent: 101 } }, 'outlierDetection.maxEjectionPercent: must be 0-100'],
    ['a failurePercentage without a threshold', { ...VALID, outlierDetection: { failurePercentage: { requestVolume: 10 } } }, 'outlierDetection.failurePercentage.threshold: is required: a number 0-100'],
    ['a failure threshold above 100', { ...VALID, outlierDetection: { failurePercentage: { threshold: 101 } } }, 'outlierDetection.failurePercentage.threshold: must be 0-100'],
    ['a negative failure threshold', { ...VALID, outlierDetection: { failurePercentage: { threshold: -1 } } }, 'outlierDetection.failurePercentage.threshold: must be 0-100'],
    ['a fractional failure threshold', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50.5 } } }, 'outlierDetection.failurePercentage.threshold: must be a whole number'],
    ['a failure threshold as a string', { ...VALID, outlierDetection: { failurePercentage: { threshold: '50%' } } }, 'outlierDetection.failurePercentage.threshold: must be a number 0-100'],
    ['a negative minimumHosts', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50, minimumHosts: -1 } } }, 'outlierDetection.failurePercentage.minimumHosts: must be 0 or more'],
    ['a fractional requestVolume', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50, requestVolume: 0.5 } } }, 'outlierDetection.failurePercentage.requestVolume: must be a whole number'],
    ['a requestVolume as a string', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50, requestVolume: '10' } } }, 'outlierDetection.failurePercentage.requestVolume: must be a number'],
    ['a too large requestVolume', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50, requestVolume: 2 ** 32 } } }, 'outlierDetection.failurePercentage.requestVolume: is too large'],
    ['an unknown failurePercentage field', { ...VALID, outlierDetection: { failurePercentage: { threshold: 50, enforcingPercentage: 100 } } }, 'outlierDetection.failurePercentage: Unrecognized key: "enforcingPercentage"'],
    ['a failurePercentage that is a number', { ...VALID, outlierDetection: { failurePercentage: 50 } }, 'outlierDetection.failurePercentage: Invalid input: expected object, received number'],
    ['an unknown field', { ...VALID, colour: 'blue' }, ': Unrecognized key: "colour"'],
  ];

  it.each(cases)('refuses %s, naming the field', (_, input, expected) => {
    const found = problems(input);
    expect(found).toHaveLength(1);
    expect(found[0]?.startsWith(expected)).toBe(true);
  });
});

describe('virtualDestinationConflict', () => {
  const named = (name: string, hostname: string) => ({ name, spec: virtualDestinationSchema.parse({ ...VALID, hostname }) });

  it('refuses a name or a hostname already taken, and accepts anything else', () => {
    const set = [named('reviews', 'reviews.global'), named('ratings', 'ratings.global')];
    expect(virtualDestinationConflict(set, named('reviews', 'other.global'))).toEqual({ field: 'metadata.name', message: 'virtual destination reviews is defined twice' });
    expect(virtualDestinationConflict(set, named('reviews-2', 'ratings.global'))).toEqual({ field: 'spec.hostname', message: 'hostname ratings.global is already the hostname of virtual destination ratings' });
    expect(virtualDestinationConflict(set, named('details', 'details.global'))).toBeUndefined();
  });
});
