/**
 * Envoy sidecar and east-west gateway resources (src/xds/resources/{sidecar-cluster,gateway-listener}.ts): Istio's
 * names and forms exactly, round trips through meshfed's protobufjs types with the nested Anys decoded back, the
 * enum numbers against the loaded protos, an independent decode by grpc-js-xds's own loader (decodeSingleResource:
 * @grpc/proto-loader over the same .proto files), and refusals that name the field. No real Envoy runs here.
 */
import { CDS_TYPE_URL, LDS_TYPE_URL, UPSTREAM_TLS_CONTEXT_TYPE_URL, decodeSingleResource } from '@grpc/grpc-js-xds/build/src/resources.js';
import { describe, expect, it } from 'vitest';
import { MESSAGE_NAME, TYPE_URL, envoyRoot } from '../../src/xds/envoy-protos.js';
import { DISCOVERY_TYPE_EDS } from '../../src/xds/resources/cluster.js';
import {
  GATEWAY_PORT,
  TCP_PROXY_FILTER_NAME,
  TLS_INSPECTOR_FILTER_NAME,
  assertGatewayListener,
  decodeGatewayCluster,
  decodeGatewayListener,
  encodeGatewayCluster,
  encodeGatewayListener,
  gatewayCluster,
  gatewayClusterName,
  gatewayClusterToAny,
  gatewayListener,
  gatewayListenerChains,
  gatewayListenerName,
  gatewayListenerToAny,
  type GatewayChain,
  type GatewayListenerObject,
} from '../../src/xds/resources/gateway-listener.js';
import { API_VERSION_V3, decodeNestedAny, nestedAny } from '../../src/xds/resources/listener.js';
import {
  API_TYPE_GRPC,
  LB_POLICY_LEAST_REQUEST,
  SAN_TYPE_URI,
  TLS_TRANSPORT_SOCKET_NAME,
  assertSidecarCluster,
  clusterUpstreamTlsContext,
  decodeSidecarCluster,
  encodeSidecarCluster,
  outboundSni,
  sidecarCluster,
  sidecarClusterToAny,
  type EnvoyEdsClusterObject,
  type SidecarClusterObject,
  type UpstreamTlsContextObject,
} from '../../src/xds/resources/sidecar-cluster.js';

const HOST = 'reviews.default.svc.cluster.local';
const PORT = 9080;
const SNI = 'outbound_.9080_._.reviews.default.svc.cluster.local';
const CLUSTER = 'outbound|9080||reviews.default.svc.cluster.local';
const SA_REVIEWS = 'spiffe://cluster.local/ns/default/sa/bookinfo-reviews';
const SA_OTHER = 'spiffe://cluster.local/ns/default/sa/reviews-v2';

/** Istio's SDS ConfigSource, written out by hand (not from the code under test). */
const SDS = {
  api_config_source: {
    api_type: 2,
    transport_api_version: 2,
    grpc_services: [{ envoy_grpc: { cluster_name: 'sds-grpc' } }],
    set_node_on_first_message_only: true,
  },
  resource_api_version: 2,
};

const expectedTls = (sans: string[]): UpstreamTlsContextObject => ({
  common_tls_context: {
    alpn_protocols: ['istio-peer-exchange', 'istio'],
    tls_certificate_sds_secret_configs: [{ name: 'default', sds_config: SDS }],
    combined_validation_context: {
      default_validation_context: sans.length === 0 ? {} : { match_typed_subject_alt_names: sans.map((exact) => ({ san_type: 3, matcher: { exact } })) },
      validation_context_sds_secret_config: { name: 'ROOTCA', sds_config: SDS },
    },
  },
  sni: SNI,
});

/** `fn` must throw; its message (for toMatch on several patterns). */
function thrown(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected a throw');
}

describe('enums, type URLs and names', () => {
  it('the numbers meshfed writes are the ones in the protos', () => {
    const r = envoyRoot();
    expect(r.lookupEnum('envoy.config.cluster.v3.Cluster.LbPolicy').values.LEAST_REQUEST).toBe(LB_POLICY_LEAST_REQUEST);
    expect(r.lookupEnum('envoy.config.cluster.v3.Cluster.LbPolicy').values.ROUND_ROBIN).toBe(0);
    expect(r.lookupEnum('envoy.config.cluster.v3.Cluster.DiscoveryType').values.EDS).toBe(DISCOVERY_TYPE_EDS);
    expect(r.lookupEnum('envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.SanType').values.URI).toBe(SAN_TYPE_URI);
    expect(r.lookupEnum('envoy.config.core.v3.ApiConfigSource.ApiType').values.GRPC).toBe(API_TYPE_GRPC);
    expect(r.lookupEnum('envoy.config.core.v3.ApiVersion').values.V3).toBe(API_VERSION_V3);
  });

  it('every type URL is type.googleapis.com/ + its message, and the message is in the loaded protos', () => {
    for (const key of ['upstreamTlsContext', 'tlsInspector', 'tcpProxy'] as const) {
      expect(TYPE_URL[key]).toBe(`type.googleapis.com/${MESSAGE_NAME[key]}`);
      expect(envoyRoot().lookupType(MESSAGE_NAME[key]).fullName).toBe(`.${MESSAGE_NAME[key]}`);
    }
    expect(TYPE_URL.upstreamTlsContext).toBe(UPSTREAM_TLS_CONTEXT_TYPE_URL);
    expect(sidecarClusterToAny(sidecarCluster(HOST, PORT)).type_url).toBe(CDS_TYPE_URL);
    expect(gatewayClusterToAny(gatewayCluster(SNI)).type_url).toBe(CDS_TYPE_URL);
    expect(gatewayListenerToAny(gatewayListener([{ serverNames: [SNI], cluster: SNI }])).type_url).toBe(LDS_TYPE_URL);
  });

  it("SNI and cluster names are Istio's, character for character", () => {
    expect(outboundSni(HOST, PORT)).toBe(SNI);
    expect(outboundSni('reviews.global', 9080)).toBe('outbound_.9080_._.reviews.global');
    expect(outboundSni(HOST, PORT, 'v1')).toBe('outbound_.9080_.v1_.reviews.default.svc.cluster.local');
    expect(gatewayClusterName(HOST, PORT)).toBe(SNI);
    expect(sidecarCluster(HOST, PORT).name).toBe(CLUSTER);
    expect(gatewayListenerName()).toBe('0.0.0.0_15443');
    expect(gatewayListenerName('::', 8443)).toBe('::_8443');
    expect(GATEWAY_PORT).toBe(15443);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['an empty host', () => outboundSni('', PORT), /SNI host "" is empty or not a lowercase DNS name/],
    ['an upper-case host', () => outboundSni('Reviews.global', PORT), /SNI host "Reviews\.global"/],
    ['a host with "|"', () => gatewayClusterName('a|b', PORT), /SNI host "a\|b"/],
    ['port 0', () => outboundSni(HOST, 0), /SNI port 0 is not in 1\.\.65535/],
    ['port 65536', () => gatewayClusterName(HOST, 65536), /SNI port 65536 is not in 1\.\.65535/],
    ['a fractional port', () => outboundSni(HOST, 80.5), /SNI port 80\.5/],
    ['a dotted subset', () => outboundSni(HOST, PORT, 'v1.a'), /SNI subset "v1\.a" is not a lowercase DNS label/],
    ['a listener port 0', () => gatewayListenerName('0.0.0.0', 0), /port 0 is not in 1\.\.65535/],
    ['a listener address that is a name', () => gatewayListenerName('localhost'), /address "localhost" is not an IP address/],
  ])('names refuse %s', (_name, build, message) => {
    expect(build).toThrow(message);
  });
});

describe('sidecar Cluster (ISTIO_MUTUAL)', () => {
  it('defaults: EDS over ADS with service_name, 10 s, round robin left out, the TLS socket; decode(encode(x)) equals x', () => {
    const c = sidecarCluster(HOST, PORT);
    const { transport_socket, ...rest } = c;
    expect(rest).toEqual({
      name: CLUSTER,
      type: 3,
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 2 }, service_name: CLUSTER },
      connect_timeout: { seconds: 10 },
    });
    expect(transport_socket.name).toBe('envoy.transport_sockets.tls');
    expect(transport_socket.typed_config.type_url).toBe('type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext');
    const decoded = decodeSidecarCluster(encodeSidecarCluster(c));
    expect(decoded).toEqual(c);
    // no service accounts: no SAN matcher, the validation context is present and empty (any peer of the trust domain)
    expect(clusterUpstreamTlsContext(decoded)).toEqual(expectedTls([]));
  });

  it('options: SANs, LEAST_REQUEST, connect timeout, outlier detection survive the round trip, nested TLS included', () => {
    const c = sidecarCluster(HOST, PORT, {
      subjectAltNames: [SA_REVIEWS, SA_OTHER],
      lbPolicy: 'LEAST_REQUEST',
      connectTimeoutMs: 2500,
      outlierDetection: { intervalMs: 5000, maxEjectionPercent: 20 },
    });
    expect(c.lb_policy).toBe(1);
    expect(c.connect_timeout).toEqual({ seconds: 2, nanos: 500_000_000 });
    expect(c.outlier_detection).toEqual({ interval: { seconds: 5 }, max_ejection_percent: { value: 20 } });
    const decoded = decodeSidecarCluster(encodeSidecarCluster(c));
    expect(decoded).toEqual(c);
    expect(clusterUpstreamTlsContext(decoded)).toEqual(expectedTls([SA_REVIEWS, SA_OTHER]));
    expect(decodeNestedAny(MESSAGE_NAME.upstreamTlsContext, TYPE_URL.upstreamTlsContext, decoded.transport_socket.typed_config)).toEqual(expectedTls([SA_REVIEWS, SA_OTHER]));
  });

  it('encodes deterministically; a connect timeout a hair under 1 s rounds to 1 s, never to nanos 1e9', () => {
    expect(Buffer.from(encodeSidecarCluster(sidecarCluster(HOST, PORT, { subjectAltNames: [SA_REVIEWS] })))).toEqual(
      Buffer.from(encodeSidecarCluster(sidecarCluster(HOST, PORT, { subjectAltNames: [SA_REVIEWS] }))),
    );
    expect(sidecarCluster(HOST, PORT, { connectTimeoutMs: 999.9999999 }).connect_timeout).toEqual({ seconds: 1 });
  });

  it("grpc-js-xds's own loader reads the cluster and the nested UpstreamTlsContext the same way", () => {
    const c = sidecarCluster(HOST, PORT, { subjectAltNames: [SA_REVIEWS], lbPolicy: 'LEAST_REQUEST' });
    const decoded = decodeSingleResource(CDS_TYPE_URL, Buffer.from(sidecarClusterToAny(c).value));
    expect(decoded.name).toBe(CLUSTER);
    expect(decoded.type).toBe('EDS');
    expect(decoded.lb_policy).toBe('LEAST_REQUEST');
    expect(decoded.eds_cluster_config?.service_name).toBe(CLUSTER);
    expect(decoded.connect_timeout?.seconds).toBe('10');
    expect(decoded.transport_socket?.name).toBe(TLS_TRANSPORT_SOCKET_NAME);
    const any = decoded.transport_socket?.typed_config;
    expect(any?.type_url).toBe(UPSTREAM_TLS_CONTEXT_TYPE_URL);
    const tls = decodeSingleResource(UPSTREAM_TLS_CONTEXT_TYPE_URL, any?.value ?? Buffer.alloc(0));
    expect(tls.sni).toBe(SNI);
    const common = tls.common_tls_context;
    expect(common?.alpn_protocols).toEqual(['istio-peer-exchange', 'istio']);
    expect(common?.tls_certificate_sds_secret_configs.map((s) => [s.name, s.sds_config?.api_config_source?.api_type])).toEqual([['default', 'GRPC']]);
    const grpc = common?.tls_certificate_sds_secret_configs[0]?.sds_config?.api_config_source;
    expect(grpc?.grpc_services[0]?.envoy_grpc?.cluster_name).toBe('sds-grpc');
    expect(grpc?.set_node_on_first_message_only).toBe(true);
    expect(grpc?.transport_api_version).toBe('V3');
    const combined = common?.combined_validation_context;
    expect(combined?.validation_context_sds_secret_config?.name).toBe('ROOTCA');
    expect(combined?.default_validation_context?.match_typed_subject_alt_names.map((m) => [m.san_type, m.matcher?.exact])).toEqual([['URI', SA_REVIEWS]]);
  });

  it('clusterUpstreamTlsContext: undefined without a socket, an error for another socket', () => {
    expect(clusterUpstreamTlsContext(gatewayCluster(SNI))).toBeUndefined();
    const raw = { ...sidecarCluster(HOST, PORT), transport_socket: { name: 'envoy.transport_sockets.raw_buffer', typed_config: { type_url: 'x' } } };
    expect(() => clusterUpstreamTlsContext(raw)).toThrow(/transport_socket\.name is "envoy\.transport_sockets\.raw_buffer", not envoy\.transport_sockets\.tls/);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['an empty host', () => sidecarCluster('', PORT), /SNI host "" is empty/],
    ['a bad port', () => sidecarCluster(HOST, 0), /port 0 is not in 1\.\.65535/],
    ['a SAN that is not a SPIFFE ID', () => sidecarCluster(HOST, PORT, { subjectAltNames: [SA_REVIEWS, 'reviews.default'] }), /subjectAltNames\[1\]: "reviews\.default" is not a SPIFFE ID/],
    ['a SAN repeated', () => sidecarCluster(HOST, PORT, { subjectAltNames: [SA_REVIEWS, SA_REVIEWS] }), /subjectAltNames\[1\] ".*" is repeated/],
    ['a zero connect timeout', () => sidecarCluster(HOST, PORT, { connectTimeoutMs: 0 }), /connectTimeoutMs 0 must be > 0 ms/],
    ['an unknown lb policy', () => sidecarCluster(HOST, PORT, { lbPolicy: 'RANDOM' as 'ROUND_ROBIN' }), /lbPolicy "RANDOM" is not ROUND_ROBIN or LEAST_REQUEST/],
    ['an outlier percentage over 100', () => sidecarCluster(HOST, PORT, { outlierDetection: { maxEjectionPercent: 150 } }), /maxEjectionPercent 150/],
  ])('the builder refuses %s, naming the input', (_name, build, message) => {
    expect(build).toThrow(message);
  });

  /** A hand-built sidecar cluster: the good one with `tls` (an UpstreamTlsContext-ish object, encoded unchecked). */
  const withTls = (tls: object): SidecarClusterObject => ({
    ...sidecarCluster(HOST, PORT),
    transport_socket: {
      name: TLS_TRANSPORT_SOCKET_NAME,
      typed_config: { type_url: TYPE_URL.upstreamTlsContext, value: Buffer.from(envoyRoot().lookupType(MESSAGE_NAME.upstreamTlsContext).encode(tls).finish()).toString('base64') },
    },
  });
  const tls = (): UpstreamTlsContextObject => expectedTls([SA_REVIEWS]);

  it.each<[string, () => unknown, RegExp]>([
    [
      'a misspelled top-level key',
      () => encodeSidecarCluster({ ...sidecarCluster(HOST, PORT), conect_timeout: { seconds: 1 } } as unknown as SidecarClusterObject),
      /envoy\.config\.cluster\.v3\.Cluster: field conect_timeout: dropped/,
    ],
    [
      'a misspelled key in the nested UpstreamTlsContext',
      () => nestedAny(MESSAGE_NAME.upstreamTlsContext, TYPE_URL.upstreamTlsContext, { ...tls(), snii: SNI }),
      /UpstreamTlsContext: field snii: dropped/,
    ],
    [
      'no transport socket',
      () => {
        const plain: Partial<SidecarClusterObject> = sidecarCluster(HOST, PORT);
        delete plain.transport_socket;
        assertSidecarCluster(plain as SidecarClusterObject);
      },
      /transport_socket is unset \(sidecar clusters are mTLS\)/,
    ],
    [
      'a typed_config that is not an UpstreamTlsContext',
      () => encodeSidecarCluster({ ...sidecarCluster(HOST, PORT), transport_socket: { name: TLS_TRANSPORT_SOCKET_NAME, typed_config: { type_url: TYPE_URL.tcpProxy } } }),
      /transport_socket\.typed_config\.type_url is ".*TcpProxy", not .*UpstreamTlsContext/,
    ],
    ['an empty SNI', () => encodeSidecarCluster(withTls({ ...tls(), sni: '' })), /transport_socket\.typed_config: UpstreamTlsContext: sni is empty/],
    [
      'a DNS SAN matcher',
      () => {
        const t = tls();
        t.common_tls_context.combined_validation_context.default_validation_context = { match_typed_subject_alt_names: [{ san_type: 2, matcher: { exact: SA_REVIEWS } }] };
        encodeSidecarCluster(withTls(t));
      },
      /default_validation_context\.match_typed_subject_alt_names\[0\]\.san_type is 2, not URI \(3\)/,
    ],
    [
      'no workload certificate',
      () => {
        const t = tls();
        t.common_tls_context.tls_certificate_sds_secret_configs = [];
        encodeSidecarCluster(withTls(t));
      },
      /tls_certificate_sds_secret_configs is empty/,
    ],
    [
      'a ROOTCA secret without an SDS source',
      () => {
        const t = tls();
        t.common_tls_context.combined_validation_context.validation_context_sds_secret_config = { name: 'ROOTCA' } as UpstreamTlsContextObject['common_tls_context']['tls_certificate_sds_secret_configs'][number];
        encodeSidecarCluster(withTls(t));
      },
      /validation_context_sds_secret_config\.sds_config is unset/,
    ],
    ['no service_name', () => encodeSidecarCluster({ ...sidecarCluster(HOST, PORT), eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 2 }, service_name: '' } }), /eds_cluster_config\.service_name is empty/],
    ['lb_policy RANDOM', () => encodeSidecarCluster({ ...sidecarCluster(HOST, PORT), lb_policy: 3 }), /lb_policy 3 is not ROUND_ROBIN or LEAST_REQUEST/],
    ['a zero connect_timeout', () => encodeSidecarCluster({ ...sidecarCluster(HOST, PORT), connect_timeout: {} }), /connect_timeout is unset or not > 0/],
  ])('the check and the codec refuse %s', (_name, build, message) => {
    expect(build).toThrow(message);
  });

  it('the hand-built helper itself makes an acceptable cluster (so the refusals above are about the one change)', () => {
    const c = withTls(tls());
    expect(decodeSidecarCluster(encodeSidecarCluster(c))).toEqual(c);
  });
});

describe('east-west gateway Listener (AUTO_PASSTHROUGH)', () => {
  const RATINGS = gatewayClusterName('ratings.default.svc.cluster.local', 9080);
  const CHAINS: GatewayChain[] = [
    { serverNames: [SNI, 'reviews.global'], cluster: SNI },
    { serverNames: [RATINGS], cluster: RATINGS },
  ];
  const tcpProxy = (cluster: string): { type_url: string; value: string } => ({
    type_url: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
    value: Buffer.from(envoyRoot().lookupType(MESSAGE_NAME.tcpProxy).encode({ stat_prefix: cluster, cluster }).finish()).toString('base64'),
  });

  it('0.0.0.0_15443, the TLS inspector, one TCP proxy chain per cluster, sorted; decode(encode(x)) equals x', () => {
    const l = gatewayListener(CHAINS);
    expect(l).toEqual({
      name: '0.0.0.0_15443',
      address: { socket_address: { address: '0.0.0.0', port_value: 15443 } },
      listener_filters: [{ name: 'envoy.filters.listener.tls_inspector', typed_config: { type_url: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector' } }],
      filter_chains: [
        // ratings sorts before reviews; within a chain, "outbound_..." before "reviews.global"
        { filter_chain_match: { server_names: [RATINGS] }, filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: tcpProxy(RATINGS) }] },
        { filter_chain_match: { server_names: [SNI, 'reviews.global'] }, filters: [{ name: 'envoy.filters.network.tcp_proxy', typed_config: tcpProxy(SNI) }] },
      ],
    });
    const decoded = decodeGatewayListener(encodeGatewayListener(l));
    expect(decoded).toEqual(l);
    const [inspector] = decoded.listener_filters;
    expect(decodeNestedAny(MESSAGE_NAME.tlsInspector, TYPE_URL.tlsInspector, inspector?.typed_config ?? { type_url: '' })).toEqual({});
    expect(decoded.filter_chains.map((c) => decodeNestedAny(MESSAGE_NAME.tcpProxy, TYPE_URL.tcpProxy, c.filters[0]?.typed_config ?? { type_url: '' }))).toEqual([
      { stat_prefix: RATINGS, cluster: RATINGS },
      { stat_prefix: SNI, cluster: SNI },
    ]);
    expect(gatewayListenerChains(decoded)).toEqual([CHAINS[1], CHAINS[0]]);
  });

  it('the same chains in any order give the same bytes', () => {
    const reordered: GatewayChain[] = [{ serverNames: ['reviews.global', SNI], cluster: SNI }, { serverNames: [RATINGS], cluster: RATINGS }].reverse();
    expect(Buffer.from(encodeGatewayListener(gatewayListener(reordered)))).toEqual(Buffer.from(encodeGatewayListener(gatewayListener(CHAINS))));
  });

  it('binds IPv6 and other ports; names follow', () => {
    const l = gatewayListener(CHAINS, { address: '::', port: 8443 });
    expect(l.name).toBe('::_8443');
    expect(l.address).toEqual({ socket_address: { address: '::', port_value: 8443 } });
    expect(decodeGatewayListener(encodeGatewayListener(l))).toEqual(l);
  });

  it('accepts a leading wildcard server name', () => {
    expect(gatewayListener([{ serverNames: ['*.global'], cluster: SNI }]).filter_chains[0]?.filter_chain_match.server_names).toEqual(['*.global']);
  });

  it("grpc-js-xds's own loader reads the filter chains, the filters and their type URLs", () => {
    const decoded = decodeSingleResource(LDS_TYPE_URL, Buffer.from(gatewayListenerToAny(gatewayListener(CHAINS)).value));
    expect(decoded.name).toBe('0.0.0.0_15443');
    expect(decoded.address?.socket_address?.address).toBe('0.0.0.0');
    expect(decoded.address?.socket_address?.port_value).toBe(15443);
    expect(decoded.listener_filters.map((f) => [f.name, f.typed_config?.type_url])).toEqual([[TLS_INSPECTOR_FILTER_NAME, TYPE_URL.tlsInspector]]);
    expect(decoded.filter_chains.map((c) => c.filter_chain_match?.server_names)).toEqual([[RATINGS], [SNI, 'reviews.global']]);
    expect(decoded.filter_chains.map((c) => c.filters.map((f) => [f.name, f.typed_config?.type_url]))).toEqual([
      [[TCP_PROXY_FILTER_NAME, TYPE_URL.tcpProxy]],
      [[TCP_PROXY_FILTER_NAME, TYPE_URL.tcpProxy]],
    ]);
  });

  it.each<[string, () => unknown, RegExp[]]>([
    ['no chains', () => gatewayListener([]), [/no filter chains/]],
    ['empty server names', () => gatewayListener([CHAINS[0] as GatewayChain, { serverNames: [], cluster: RATINGS }]), [/chains\[1\]\.serverNames is empty/]],
    [
      'a server name in two chains',
      () => gatewayListener([CHAINS[0] as GatewayChain, { serverNames: [RATINGS, 'reviews.global'], cluster: RATINGS }]),
      [/chains\[1\]\.serverNames\[1\] "reviews\.global" is also chains\[0\]\.serverNames\[1\]/, /overlapping/],
    ],
    ['a server name twice in one chain', () => gatewayListener([{ serverNames: [SNI, SNI], cluster: SNI }]), [/chains\[0\]\.serverNames\[1\] ".*" is also chains\[0\]\.serverNames\[0\]/]],
    ['two chains for one cluster', () => gatewayListener([CHAINS[0] as GatewayChain, { serverNames: [RATINGS], cluster: SNI }]), [/chains\[1\]\.cluster ".*" already has a chain \(chains\[0\]\.cluster\)/]],
    ['an empty cluster', () => gatewayListener([{ serverNames: [SNI], cluster: '' }]), [/chains\[0\]\.cluster is empty/]],
    ['an empty server name', () => gatewayListener([{ serverNames: [''], cluster: SNI }]), [/chains\[0\]\.serverNames\[0\] "" is not a lowercase server name/]],
    ['a partial wildcard', () => gatewayListener([{ serverNames: ['*w.example.com'], cluster: SNI }]), [/chains\[0\]\.serverNames\[0\] "\*w\.example\.com"/]],
    ['a bare *', () => gatewayListener([{ serverNames: ['*'], cluster: SNI }]), [/chains\[0\]\.serverNames\[0\] "\*"/]],
    ['an upper-case server name', () => gatewayListener([{ serverNames: ['Reviews.global'], cluster: SNI }]), [/chains\[0\]\.serverNames\[0\] "Reviews\.global"/]],
    ['a bad port', () => gatewayListener(CHAINS, { port: 70000 }), [/port 70000 is not in 1\.\.65535/]],
    ['a host name as address', () => gatewayListener(CHAINS, { address: 'gateway.local' }), [/address "gateway\.local" is not an IP address/]],
  ])('the builder refuses %s, naming the input', (_name, build, messages) => {
    const message = thrown(build);
    for (const m of messages) expect(message).toMatch(m);
  });

  /** The good listener, as a plain record to break by hand. */
  const hand = (): GatewayListenerObject => gatewayListener(CHAINS);

  it.each<[string, (l: GatewayListenerObject) => GatewayListenerObject, RegExp]>([
    ['a misspelled top-level key', (l) => ({ ...l, listener_filter: l.listener_filters }) as unknown as GatewayListenerObject, /envoy\.config\.listener\.v3\.Listener: field listener_filter: dropped/],
    [
      'a misspelled key in a filter chain',
      (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filter_chain_matches: {} })) }),
      /field filter_chains\[0\]\.filter_chain_matches: dropped/,
    ],
    ['chains out of order', (l) => ({ ...l, filter_chains: [...l.filter_chains].reverse() }), /filter_chains\[1\] \(cluster ".*ratings.*"\) is out of order/],
    [
      'server names out of order',
      (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filter_chain_match: { server_names: [...c.filter_chain_match.server_names].reverse() } })) }),
      /filter_chains\[1\]\.filter_chain_match\.server_names is not sorted/,
    ],
    [
      'overlapping chains',
      (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filter_chain_match: { server_names: ['reviews.global'] } })) }),
      /filter_chains\[1\]\.filter_chain_match\.server_names\[0\] "reviews\.global" is also filter_chains\[0\]/,
    ],
    ['no TLS inspector', (l) => ({ ...l, listener_filters: [] }), /listener_filters has no envoy\.filters\.listener\.tls_inspector/],
    ['a chain without server names', (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filter_chain_match: { server_names: [] } })) }), /filter_chains\[0\]\.filter_chain_match\.server_names is empty/],
    [
      'a TCP proxy without a cluster',
      (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filters: [{ name: TCP_PROXY_FILTER_NAME, typed_config: nestedAny(MESSAGE_NAME.tcpProxy, TYPE_URL.tcpProxy, { stat_prefix: 'x' }) }] })) }),
      /filter_chains\[0\]\.filters\[0\]\.typed_config\.cluster is empty/,
    ],
    ['a chain with another filter', (l) => ({ ...l, filter_chains: l.filter_chains.map((c) => ({ ...c, filters: [{ name: 'envoy.filters.network.echo', typed_config: { type_url: 'x' } }] })) }), /filter_chains\[0\]\.filters is not exactly one envoy\.filters\.network\.tcp_proxy filter/],
    ['port 0', (l) => ({ ...l, address: { socket_address: { address: '0.0.0.0', port_value: 0 } } }), /address\.socket_address\.port_value 0 is not in 1\.\.65535/],
  ])('the check and the codec refuse %s', (_name, breakIt, message) => {
    const bad = breakIt(hand());
    expect(() => encodeGatewayListener(bad)).toThrow(message);
    expect(() => {
      assertGatewayListener(bad);
    }).toThrow(message);
  });
});

describe('east-west gateway Cluster', () => {
  it('named like the SNI, plain EDS (no transport socket), 10 s; decode(encode(x)) equals x', () => {
    const c = gatewayCluster(gatewayClusterName(HOST, PORT));
    expect(c).toEqual({
      name: SNI,
      type: 3,
      eds_cluster_config: { eds_config: { ads: {}, resource_api_version: 2 }, service_name: SNI },
      connect_timeout: { seconds: 10 },
    });
    expect(decodeGatewayCluster(encodeGatewayCluster(c))).toEqual(c);
    const decoded = decodeSingleResource(CDS_TYPE_URL, Buffer.from(gatewayClusterToAny(c).value));
    expect(decoded.transport_socket).toBeNull();
    expect(decoded.eds_cluster_config?.service_name).toBe(SNI);
  });

  it('options apply', () => {
    const c = gatewayCluster(SNI, { connectTimeoutMs: 250, lbPolicy: 'LEAST_REQUEST', outlierDetection: { successRate: false } });
    expect(c).toMatchObject({ connect_timeout: { nanos: 250_000_000 }, lb_policy: LB_POLICY_LEAST_REQUEST, outlier_detection: { enforcing_success_rate: {} } });
    expect(decodeGatewayCluster(encodeGatewayCluster(c))).toEqual(c);
  });

  it.each<[string, () => unknown, RegExp]>([
    ['an empty name', () => gatewayCluster(''), /name is empty/],
    ['a TLS socket (the gateway never terminates TLS)', () => encodeGatewayCluster(sidecarCluster(HOST, PORT)), /transport_socket is set on a plain cluster/],
    ['a misspelled key', () => encodeGatewayCluster({ ...gatewayCluster(SNI), eds_cluster_confg: {} } as unknown as EnvoyEdsClusterObject), /field eds_cluster_confg: dropped/],
    ['a bad connect timeout', () => gatewayCluster(SNI, { connectTimeoutMs: -1 }), /connectTimeoutMs -1 must be > 0 ms/],
  ])('refuses %s', (_name, build, message) => {
    expect(build).toThrow(message);
  });
});
