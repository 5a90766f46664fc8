/**
 * Proxyless gRPC resources (src/xds/resources/{listener,route,cluster}.ts): round trips through meshfed's protobufjs
 * types, the nested Anys, grpc-js-xds's own decoder (decodeSingleResource) and — the strongest check short of a live
 * client — grpc-js-xds's own resource types (ListenerResourceType / RouteConfigurationResourceType /
 * ClusterResourceType .decode, which run the validateResource the client runs before it ACKs or NACKs).
 */
import { register } from '@grpc/grpc-js-xds';
import { validateBootstrapConfig } from '@grpc/grpc-js-xds/build/src/xds-bootstrap.js';
import { CDS_TYPE_URL, HTTP_CONNECTION_MANGER_TYPE_URL, LDS_TYPE_URL, RDS_TYPE_URL, decodeSingleResource } from '@grpc/grpc-js-xds/build/src/resources.js';
import { ClusterResourceType, type CdsUpdate } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js';
import { ListenerResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/listener-resource-type.js';
import { RouteConfigurationResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/route-config-resource-type.js';
import type { XdsDecodeContext, XdsDecodeResult, XdsResourceType } from '@grpc/grpc-js-xds/build/src/xds-resource-type/xds-resource-type.js';
import { beforeAll, describe, expect, it } from 'vitest';
import { MESSAGE_NAME, TYPE_URL, envoyRoot, type AnyObject } from '../../src/xds/envoy-protos.js';
import {
  DISCOVERY_TYPE_EDS,
  assertEdsCluster,
  clusterToAny,
  decodeCluster,
  edsCluster,
  encodeCluster,
  outboundClusterName,
  type ClusterObject,
} from '../../src/xds/resources/cluster.js';
import {
  API_VERSION_V3,
  ROUTER_FILTER_NAME,
  assertProxylessListener,
  decodeListener,
  decodeNestedAny,
  encodeListener,
  listenerHttpConnectionManager,
  listenerToAny,
  nestedAny,
  proxylessListener,
  type ListenerObject,
} from '../../src/xds/resources/listener.js';
import {
  assertProxylessRouteConfiguration,
  decodeRouteConfiguration,
  encodeRouteConfiguration,
  proxylessDomains,
  proxylessRouteConfiguration,
  routeConfigurationToAny,
  type RouteConfigurationObject,
} from '../../src/xds/resources/route.js';

const HOST = 'reviews.default.svc.cluster.local';
const PORT = 9080;
const LISTENER = `${HOST}:${PORT}`; // xds:///reviews.default.svc.cluster.local:9080
const CLUSTER = outboundClusterName(HOST, PORT);

const listener = (): ListenerObject => proxylessListener(LISTENER, LISTENER);
const routes = (): RouteConfigurationObject => proxylessRouteConfiguration(LISTENER, proxylessDomains(HOST, PORT), CLUSTER);
const clusterPlain = (): ClusterObject => edsCluster(CLUSTER);
const clusterWithOd = (): ClusterObject =>
  edsCluster(CLUSTER, {
    outlierDetection: {
      intervalMs: 1500,
      baseEjectionTimeMs: 30_000,
      maxEjectionTimeMs: 300_000,
      maxEjectionPercent: 50,
      successRate: { stdevFactor: 1900, minimumHosts: 3, requestVolume: 10, enforcementPercentage: 100 },
      failurePercentage: { threshold: 50, minimumHosts: 3, requestVolume: 10 },
    },
  });

/** The real client's decode + validateResource, as it runs on a DiscoveryResponse's resource. */
let context: XdsDecodeContext;
beforeAll(() => {
  register(); // the router filter and the LB policies, as a real xds: channel registers them
  const bootstrap = validateBootstrapConfig({
    xds_servers: [{ server_uri: 'localhost:15010', channel_creds: [{ type: 'insecure' }] }],
    node: { id: 'test', locality: {} },
  });
  const server = bootstrap.xdsServers[0];
  if (!server) throw new Error('bootstrap without a server');
  context = { bootstrap, server };
});
const grpcDecode = (type: XdsResourceType, any: AnyObject): XdsDecodeResult => type.decode(context, { type_url: any.type_url, value: Buffer.from(any.value) });

describe('enums and type URLs', () => {
  it('the numbers meshfed writes are the ones in the protos', () => {
    const r = envoyRoot();
    expect(r.lookupEnum('envoy.config.core.v3.ApiVersion').values.V3).toBe(API_VERSION_V3);
    expect(r.lookupEnum('envoy.config.cluster.v3.Cluster.DiscoveryType').values.EDS).toBe(DISCOVERY_TYPE_EDS);
    expect(r.lookupEnum('envoy.config.cluster.v3.Cluster.LbPolicy').values.ROUND_ROBIN).toBe(0);
  });

  it("type URLs match grpc-js-xds's constants", () => {
    expect(listenerToAny(listener()).type_url).toBe(LDS_TYPE_URL);
    expect(routeConfigurationToAny(routes()).type_url).toBe(RDS_TYPE_URL);
    expect(clusterToAny(clusterPlain()).type_url).toBe(CDS_TYPE_URL);
    expect(TYPE_URL.httpConnectionManager).toBe(HTTP_CONNECTION_MANGER_TYPE_URL);
    expect(listener().api_listener.api_listener.type_url).toBe(HTTP_CONNECTION_MANGER_TYPE_URL);
  });

  it('names: outbound|PORT||HOST, listener = route config = target without scheme', () => {
    expect(CLUSTER).toBe('outbound|9080||reviews.default.svc.cluster.local');
    expect(listener().name).toBe('reviews.default.svc.cluster.local:9080');
    expect(listenerHttpConnectionManager(listener()).rds.route_config_name).toBe(LISTENER);
    expect(routes().name).toBe(LISTENER);
    expect(() => outboundClusterName('a|b', 80)).toThrow(/contains "\|"/);
    expect(() => outboundClusterName(HOST, 0)).toThrow(/not in 1\.\.65535/);
  });
});

describe('Listener', () => {
  it('decode(encode(x)) equals x, deterministically', () => {
    const l = listener();
    const bytes = encodeListener(l);
    expect(decodeListener(bytes)).toEqual(l);
    expect(Buffer.from(encodeListener(listener()))).toEqual(Buffer.from(bytes));
  });

  it('the api_listener is an encoded HttpConnectionManager: RDS over ADS (v3), router filter last', () => {
    const hcm = listenerHttpConnectionManager(listener());
    expect(hcm).toEqual({
      rds: { config_source: { ads: {}, resource_api_version: API_VERSION_V3 }, route_config_name: LISTENER },
      http_filters: [{ name: ROUTER_FILTER_NAME, typed_config: { type_url: TYPE_URL.router } }],
    });
    const last = hcm.http_filters[hcm.http_filters.length - 1];
    expect(last?.typed_config.type_url).toBe('type.googleapis.com/envoy.extensions.filters.http.router.v3.Router');
    expect(decodeNestedAny(MESSAGE_NAME.router, TYPE_URL.router, last?.typed_config ?? { type_url: '' })).toEqual({});
  });

  it("grpc-js-xds's decodeSingleResource reads it, and the nested HCM", () => {
    const decoded = decodeSingleResource(LDS_TYPE_URL, Buffer.from(listenerToAny(listener()).value));
    expect(decoded.name).toBe(LISTENER);
    const any = decoded.api_listener?.api_listener;
    expect(any?.type_url).toBe(HTTP_CONNECTION_MANGER_TYPE_URL);
    const hcm = decodeSingleResource(HTTP_CONNECTION_MANGER_TYPE_URL, any?.value ?? Buffer.alloc(0));
    expect(hcm.route_specifier).toBe('rds');
    expect(hcm.rds?.route_config_name).toBe(LISTENER);
    expect(hcm.rds?.config_source?.ads).toBeTruthy();
    expect(hcm.rds?.config_source?.resource_api_version).toBe('V3');
    expect(hcm.http_filters.map((f) => [f.name, f.typed_config?.type_url])).toEqual([[ROUTER_FILTER_NAME, TYPE_URL.router]]);
  });

  it("grpc-js-xds's ListenerResourceType (validateResource) accepts it", () => {
    const result = grpcDecode(ListenerResourceType.get(), listenerToAny(listener()));
    expect(result.error).toBeUndefined();
    expect(result.name).toBe(LISTENER);
  });

  it.each<[string, { name: string; typed_config: { type_url: string } }[], RegExp, RegExp]>([
    [
      'the router filter before the end',
      [
        { name: ROUTER_FILTER_NAME, typed_config: { type_url: TYPE_URL.router } },
        { name: 'second', typed_config: { type_url: TYPE_URL.router } },
      ],
      /router filter is before the end of the list/,
      /http_filters\[0\]: the router filter is before the end of the list/,
    ],
    [
      'a last filter that is not the router',
      [{ name: 'fault', typed_config: { type_url: 'type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault' } }],
      /final filter is type\.googleapis\.com\/envoy\.extensions\.filters\.http\.fault\.v3\.HTTPFault/,
      /http_filters\[0\]: the last filter is not the router filter/,
    ],
  ])('the real validator and meshfed both refuse %s (the check is live)', (_name, filters, grpcMessage, meshfedMessage) => {
    const hcm = { ...listenerHttpConnectionManager(listener()), http_filters: filters };
    const bad = { name: LISTENER, api_listener: { api_listener: nestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, hcm) } };
    const bytes = envoyRoot().lookupType(MESSAGE_NAME.listener).encode(bad).finish();
    expect(grpcDecode(ListenerResourceType.get(), { type_url: LDS_TYPE_URL, value: bytes }).error).toMatch(grpcMessage);
    expect(() => {
      assertProxylessListener(bad);
    }).toThrow(meshfedMessage);
    expect(() => {
      nestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, { ...hcm, http_filters: [] });
    }).toThrow(/field http_filters: dropped/);
  });

  it('refuses misspelled fields at every level, a scheme in the name, an empty route config name', () => {
    expect(() => nestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, { rds: { config_source: { ads: {} }, route_config_nam: 'x' } })).toThrow(
      /HttpConnectionManager: field rds\.route_config_nam: dropped/,
    );
    const misspelt = { name: LISTENER, api_listner: listener().api_listener } as unknown as ListenerObject;
    expect(() => {
      assertProxylessListener(misspelt);
    }).toThrow(/api_listener\.api_listener is missing/);
    const extra = { ...listener(), api_listner: {} } as unknown as ListenerObject;
    expect(() => encodeListener(extra)).toThrow(/envoy\.config\.listener\.v3\.Listener: field api_listner: dropped/);
    expect(() => proxylessListener(`xds:///${LISTENER}`, LISTENER)).toThrow(/without its scheme/);
    expect(() => proxylessListener(LISTENER, '')).toThrow(/route_config_name is empty/);
    const wrongAny = { name: LISTENER, api_listener: { api_listener: { type_url: TYPE_URL.router } } };
    expect(() => {
      assertProxylessListener(wrongAny);
    }).toThrow(/type_url is .*Router.*, not .*HttpConnectionManager/);
  });
});

describe('RouteConfiguration', () => {
  it('one virtual host for host and host:port, one catch-all route to the cluster; decode(encode(x)) equals x', () => {
    const rc = routes();
    expect(rc).toEqual({
      name: LISTENER,
      virtual_hosts: [{ name: LISTENER, domains: [HOST, LISTENER], routes: [{ match: { prefix: '' }, route: { cluster: CLUSTER } }] }],
    });
    expect(decodeRouteConfiguration(encodeRouteConfiguration(rc))).toEqual(rc);
  });

  it("grpc-js-xds's decodeSingleResource reads it (the empty prefix is set: path_specifier 'prefix')", () => {
    const decoded = decodeSingleResource(RDS_TYPE_URL, Buffer.from(routeConfigurationToAny(routes()).value));
    const route = decoded.virtual_hosts[0]?.routes[0];
    expect(decoded.virtual_hosts[0]?.domains).toEqual([HOST, LISTENER]);
    expect(route?.match?.path_specifier).toBe('prefix');
    expect(route?.match?.prefix).toBe('');
    expect(route?.action).toBe('route');
    expect(route?.route?.cluster).toBe(CLUSTER);
  });

  it("grpc-js-xds's RouteConfigurationResourceType (validateResource) accepts it", () => {
    const result = grpcDecode(RouteConfigurationResourceType.get(), routeConfigurationToAny(routes()));
    expect(result.error).toBeUndefined();
    expect(result.name).toBe(LISTENER);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['a wildcard in the middle', () => proxylessRouteConfiguration(LISTENER, ['a.*.b'], CLUSTER), /wildcard in the middle/],
    ['two wildcards', () => proxylessRouteConfiguration(LISTENER, ['*.a.*'], CLUSTER), /more than one wildcard/],
    ['a duplicate domain', () => proxylessRouteConfiguration(LISTENER, [HOST, HOST.toUpperCase()], CLUSTER), /duplicates virtual_hosts\[0\]\.domains\[0\]/],
    ['no domains', () => proxylessRouteConfiguration(LISTENER, [], CLUSTER), /domains is empty/],
    ['no cluster', () => proxylessRouteConfiguration(LISTENER, [HOST], ''), /route\.cluster is empty/],
    ['no name', () => proxylessRouteConfiguration('', [HOST], CLUSTER), /name is empty/],
    [
      'a misspelled field',
      () => {
        // a copy: built objects are never mutated (the codec reuses the bytes of objects it has checked)
        const rc = structuredClone(routes()) as unknown as { virtual_hosts: Record<string, unknown>[] };
        const vh = rc.virtual_hosts[0];
        if (vh) vh.domain = ['x'];
        encodeRouteConfiguration(rc as unknown as RouteConfigurationObject);
      },
      /RouteConfiguration: field virtual_hosts\[0\]\.domain: dropped/,
    ],
    [
      'a route without a prefix',
      () => {
        const rc = routes();
        const r = rc.virtual_hosts[0]?.routes[0] as unknown as { match: object } | undefined;
        if (r) r.match = {};
        assertProxylessRouteConfiguration(rc);
      },
      /match\.prefix is unset/,
    ],
  ])('refuses %s', (_name, build, message) => {
    expect(build).toThrow(message);
  });

  it('accepts wildcards at either end', () => {
    expect(() => proxylessRouteConfiguration(LISTENER, ['*.example.com', 'example.*', '*'], CLUSTER)).not.toThrow();
  });
});

describe('Cluster', () => {
  it('plain: EDS over ADS (v3), round robin (the default, left out); decode(encode(x)) equals x', () => {
    const c = clusterPlain();
    expect(c).toEqual({ name: CLUSTER, type: DISCOVERY_TYPE_EDS, eds_cluster_config: { eds_config: { ads: {}, resource_api_version: API_VERSION_V3 } } });
    expect(decodeCluster(encodeCluster(c))).toEqual(c);
  });

  it('with outlier detection: durations and wrappers survive the round trip', () => {
    const c = clusterWithOd();
    expect(c.outlier_detection).toEqual({
      interval: { seconds: 1, nanos: 500_000_000 },
      base_ejection_time: { seconds: 30 },
      max_ejection_time: { seconds: 300 },
      max_ejection_percent: { value: 50 },
      enforcing_success_rate: { value: 100 },
      success_rate_minimum_hosts: { value: 3 },
      success_rate_request_volume: { value: 10 },
      success_rate_stdev_factor: { value: 1900 },
      enforcing_failure_percentage: { value: 100 },
      failure_percentage_threshold: { value: 50 },
      failure_percentage_minimum_hosts: { value: 3 },
      failure_percentage_request_volume: { value: 10 },
    });
    expect(decodeCluster(encodeCluster(c))).toEqual(c);
    const off = edsCluster(CLUSTER, { outlierDetection: { successRate: false } });
    expect(off.outlier_detection).toEqual({ enforcing_success_rate: {} });
    expect(decodeCluster(encodeCluster(off))).toEqual(off);
  });

  it("grpc-js-xds's decodeSingleResource reads it", () => {
    const decoded = decodeSingleResource(CDS_TYPE_URL, Buffer.from(clusterToAny(clusterWithOd()).value));
    expect(decoded.name).toBe(CLUSTER);
    expect(decoded.type).toBe('EDS');
    expect(decoded.lb_policy).toBe('ROUND_ROBIN');
    expect(decoded.eds_cluster_config?.eds_config?.ads).toBeTruthy();
    expect(decoded.outlier_detection?.max_ejection_percent?.value).toBe(50);
  });

  it("grpc-js-xds's ClusterResourceType (validateResource) accepts both, as xds_wrr_locality over round_robin with outlier detection", () => {
    const plain = grpcDecode(ClusterResourceType.get(), clusterToAny(clusterPlain()));
    expect(plain.error).toBeUndefined();
    const update = plain.value as CdsUpdate;
    expect(update.type).toBe('EDS');
    expect(update.edsServiceName).toBeUndefined();
    expect(update.lbPolicyConfig).toEqual([{ xds_wrr_locality: { child_policy: [{ round_robin: {} }] } }]);

    const od = grpcDecode(ClusterResourceType.get(), clusterToAny(clusterWithOd()));
    expect(od.error).toBeUndefined();
    const odUpdate = od.value as CdsUpdate;
    expect(odUpdate.outlierDetectionUpdate).toMatchObject({
      max_ejection_percent: 50,
      success_rate_ejection: { enforcement_percentage: 100, minimum_hosts: 3, request_volume: 10, stdev_factor: 1900 },
      failure_percentage_ejection: { enforcement_percentage: 100, minimum_hosts: 3, request_volume: 10, threshold: 50 },
    });
    const off = grpcDecode(ClusterResourceType.get(), clusterToAny(edsCluster(CLUSTER, { outlierDetection: { successRate: false } })));
    expect((off.value as CdsUpdate).outlierDetectionUpdate?.success_rate_ejection).toBeUndefined();
  });

  it.each<[string, () => unknown, RegExp]>([
    ['a zero interval', () => edsCluster(CLUSTER, { outlierDetection: { intervalMs: 0 } }), /intervalMs 0 must be > 0 ms/],
    ['a percentage over 100', () => edsCluster(CLUSTER, { outlierDetection: { maxEjectionPercent: 101 } }), /maxEjectionPercent 101 is not an integer in 0\.\.100/],
    ['an empty name', () => edsCluster(''), /name is empty/],
    ['an xdstp: name', () => edsCluster('xdstp://a/envoy.config.cluster.v3.Cluster/b'), /xdstp/],
    [
      'a misspelled field',
      () => encodeCluster({ ...clusterPlain(), eds_cluster_config: { eds_confg: {} } } as unknown as ClusterObject),
      /eds_cluster_config\.eds_config\.ads is unset/,
    ],
    [
      'a misspelled outlier detection field',
      () => {
        assertEdsCluster({ ...clusterPlain(), outlier_detection: { max_ejection_percentage: { value: 5 } } } as unknown as ClusterObject);
      },
      /envoy\.config\.cluster\.v3\.Cluster: field outlier_detection\.max_ejection_percentage: dropped/,
    ],
    ['another lb_policy', () => encodeCluster({ ...clusterPlain(), lb_policy: 2 }), /lb_policy 2 is not ROUND_ROBIN/],
  ])('refuses %s', (_name, build, message) => {
    expect(build).toThrow(message);
  });
});
