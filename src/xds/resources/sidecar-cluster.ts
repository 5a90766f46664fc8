/**
 * CDS for Envoy sidecars, in Istio's ISTIO_MUTUAL form: an EDS Cluster whose connections are wrapped in mutual TLS
 * with the workload certificate and trust bundle that the sidecar's agent serves over SDS, and whose SNI names the
 * service port, so that an east-west gateway can route the still-encrypted connection (see gateway-listener.ts).
 *
 * What is Istio's, and followed exactly (Istio 1.2x, `istioctl proxy-config cluster -o json`):
 * - name `outbound|PORT||HOST` (outboundClusterName); `eds_cluster_config.service_name` is the same name, so the
 *   ClusterLoadAssignment is asked for by that name; endpoints over ADS, API v3.
 * - `connect_timeout` is MeshConfig.connectTimeout, 10 s by default (Envoy itself would use 5 s).
 * - `transport_socket` `envoy.transport_sockets.tls` with an UpstreamTlsContext: `sni` `outbound_.PORT_._.HOST`
 *   (outboundSni), ALPN `istio-peer-exchange` then `istio`, the certificate from SDS secret `default`, the trust
 *   bundle from SDS secret `ROOTCA`, both from the agent's SDS server that the bootstrap names cluster `sds-grpc`
 *   (api_config_source GRPC, v3, node sent on the first message only).
 * - `combined_validation_context.default_validation_context.match_typed_subject_alt_names`: one URI matcher per
 *   SPIFFE ID of the service accounts behind the service. With none, Istio leaves the matcher out and any peer
 *   whose certificate chains to ROOTCA is accepted: the whole trust domain, which in a meshfed federation (one
 *   root, per-cluster intermediates) is every cluster.
 * - `outlier_detection` (a virtual destination's): a DestinationRule's outlierDetection as Istio writes it, the
 *   consecutive 5xx and gateway-error counts enforced at 100 % when above 0, success-rate ejection off (see
 *   virtualDestinationOutlierDetection in cluster.ts).
 *
 * Where meshfed differs, on purpose:
 * - `lb_policy` is ROUND_ROBIN unless LEAST_REQUEST is asked for (Istio defaults to LEAST_REQUEST); ROUND_ROBIN is
 *   the proto3 default (0), so it is left out of the object and the wire.
 * - Istio puts the TLS socket in `transport_socket_matches` keyed on the endpoint's `tlsMode: istio` metadata, so it
 *   can also reach plaintext endpoints; meshfed sets one `transport_socket`: every endpoint of a sidecar cluster is
 *   expected to speak mTLS (endpoints reached through a gateway always do). No circuit breakers, no metadata
 *   exchange filter.
 *
 * Nothing here has been run against a real Envoy: each resource is checked against the Envoy v3 protos (verify and
 * a lossless round trip, nested UpstreamTlsContext included; see ../envoy-protos.ts) and against the validation
 * rules the protos declare for the fields set here (connect_timeout > 0, sni at most 255 bytes, san_type not
 * SAN_TYPE_UNSPECIFIED, SdsSecretConfig.name non-empty). Objects are in the form described in ../envoy-protos.ts.
 */
import { parseSpiffeId } from '../../trust/spiffe.js';
import { MESSAGE_NAME, TYPE_URL, assertEncodable, envoyType, resourceCodec } from '../envoy-protos.js';
import {
  DISCOVERY_TYPE_EDS,
  assertOutlierDetectionPercentages,
  outboundClusterName,
  outlierDetection,
  positiveDuration,
  type DurationObject,
  type OutlierDetectionObject,
  type OutlierDetectionOptions,
  TLS_TRANSPORT_SOCKET_NAME,
  type TransportSocketObject,
} from './cluster.js';

export { TLS_TRANSPORT_SOCKET_NAME, type TransportSocketObject };
import { API_VERSION_V3, adsConfigSource, decodeNestedAny, nestedAny, type AdsConfigSourceObject, type NestedAnyObject } from './listener.js';

/** envoy.config.cluster.v3.Cluster.LbPolicy.LEAST_REQUEST (ROUND_ROBIN is 0; both checked in the tests). */
export const LB_POLICY_LEAST_REQUEST = 1;
/** envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher.SanType.URI (checked in the tests). */
export const SAN_TYPE_URI = 3;
/** envoy.config.core.v3.ApiConfigSource.ApiType.GRPC (checked in the tests). */
export const API_TYPE_GRPC = 2;

/** The bootstrap cluster through which Istio's agent serves SDS. */
export const SDS_CLUSTER_NAME = 'sds-grpc';
/** The SDS secret holding the workload certificate chain and key. */
export const WORKLOAD_CERTIFICATE_SECRET = 'default';
/** The SDS secret holding the trust bundle (the roots). */
export const ROOT_CA_SECRET = 'ROOTCA';
/** Istio's ALPN for mTLS between sidecars: metadata exchange first, then plain Istio mTLS. */
export const ISTIO_ALPN: readonly string[] = ['istio-peer-exchange', 'istio'];
/** Istio's MeshConfig.connectTimeout default. */
export const DEFAULT_CONNECT_TIMEOUT_MS = 10_000;

/** envoy.config.core.v3.ConfigSource for SDS from the agent, as Istio writes it. */
export interface SdsConfigSourceObject {
  api_config_source: {
    api_type: number;
    transport_api_version: number;
    grpc_services: { envoy_grpc: { cluster_name: string } }[];
    set_node_on_first_message_only: boolean;
  };
  resource_api_version: number;
}

export interface SdsSecretConfigObject {
  name: string;
  sds_config: SdsConfigSourceObject;
}

/** envoy.extensions.transport_sockets.tls.v3.SubjectAltNameMatcher, exact match only. */
export interface SanMatcherObject {
  san_type: number;
  matcher: { exact: string };
}

export interface CombinedValidationContextObject {
  /** `{}` when the peer may be anyone in the trust domain */
  default_validation_context: { match_typed_subject_alt_names?: SanMatcherObject[] };
  validation_context_sds_secret_config: SdsSecretConfigObject;
}

export interface CommonTlsContextObject {
  alpn_protocols: string[];
  tls_certificate_sds_secret_configs: SdsSecretConfigObject[];
  combined_validation_context: CombinedValidationContextObject;
}

export interface UpstreamTlsContextObject {
  common_tls_context: CommonTlsContextObject;
  sni: string;
}

/** An Envoy EDS cluster without TLS (the shape shared with the gateway's clusters, gateway-listener.ts). */
export interface EnvoyEdsClusterObject {
  name: string;
  type: number;
  eds_cluster_config: { eds_config: AdsConfigSourceObject; service_name: string };
  connect_timeout: DurationObject;
  /** ROUND_ROBIN is 0, the default: left out. */
  lb_policy?: number;
  outlier_detection?: OutlierDetectionObject;
}

export interface SidecarClusterObject extends EnvoyEdsClusterObject {
  transport_socket: TransportSocketObject;
}

export type LbPolicyName = 'ROUND_ROBIN' | 'LEAST_REQUEST';

/** What meshfed's users may configure on an Envoy cluster. */
export interface EnvoyClusterOptions {
  /** > 0; default DEFAULT_CONNECT_TIMEOUT_MS */
  connectTimeoutMs?: number;
  /** default ROUND_ROBIN */
  lbPolicy?: LbPolicyName;
  outlierDetection?: OutlierDetectionOptions;
}

export interface SidecarClusterOptions extends EnvoyClusterOptions {
  /**
   * The SPIFFE IDs of the service accounts behind the service; the peer certificate must carry one of them as a
   * URI SAN. Empty or left out: any peer of the trust domain (what Istio does when it knows no service account).
   */
  subjectAltNames?: readonly string[];
}

const LB_POLICY: Record<LbPolicyName, number | undefined> = { ROUND_ROBIN: undefined, LEAST_REQUEST: LB_POLICY_LEAST_REQUEST };

const fail = (name: string, message: string): never => {
  throw new Error(`Cluster ${JSON.stringify(name)}: ${message}`);
};

const DNS_LABEL = '[a-z0-9](?:[a-z0-9-]*[a-z0-9])?';
const DNS_NAME = new RegExp(`^${DNS_LABEL}(?:\\.${DNS_LABEL})*$`);
const SUBSET_NAME = new RegExp(`^${DNS_LABEL}$`);

/**
 * Istio's SNI for a service port: `outbound_.PORT_.SUBSET_.HOST`; the empty subset leaves `_._`
 * (`outbound_.9080_._.reviews.default.svc.cluster.local`). Throws unless `host` is a lowercase DNS name (what a
 * TLS server name can be), `subset` empty or a DNS label (as Istio's subset names are), `port` in 1..65535.
 */
export function outboundSni(host: string, port: number, subset = ''): string {
  if (!DNS_NAME.test(host)) throw new Error(`SNI host ${JSON.stringify(host)} is empty or not a lowercase DNS name`);
  if (subset !== '' && !SUBSET_NAME.test(subset)) throw new Error(`SNI subset ${JSON.stringify(subset)} is not a lowercase DNS label`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`SNI port ${port} is not in 1..65535`);
  return `outbound_.${port}_.${subset}_.${host}`;
}

/** ConfigSource for SDS over gRPC from the agent (bootstrap cluster `sds-grpc`), as Istio writes it. */
export const sdsConfigSource = (): SdsConfigSourceObject => ({
  api_config_source: {
    api_type: API_TYPE_GRPC,
    transport_api_version: API_VERSION_V3,
    grpc_services: [{ envoy_grpc: { cluster_name: SDS_CLUSTER_NAME } }],
    set_node_on_first_message_only: true,
  },
  resource_api_version: API_VERSION_V3,
});

/**
 * The ISTIO_MUTUAL UpstreamTlsContext: SNI `sni`, Istio's ALPN, certificate and roots over SDS, the peer's URI SAN
 * one of `spiffeIds` (none: any peer of the trust domain). Throws on an empty or too long SNI and on a SPIFFE ID that
 * is malformed or repeated.
 */
export function upstreamTlsContext(sni: string, spiffeIds: readonly string[] = []): UpstreamTlsContextObject {
  const seen = new Set<string>();
  const matchers = spiffeIds.map((id, i): SanMatcherObject => {
    try {
      parseSpiffeId(id);
    } catch (e) {
      throw new Error(`UpstreamTlsContext: subjectAltNames[${i}]: ${(e as Error).message}`, { cause: e });
    }
    if (seen.has(id)) throw new Error(`UpstreamTlsContext: subjectAltNames[${i}] ${JSON.stringify(id)} is repeated`);
    seen.add(id);
    return { san_type: SAN_TYPE_URI, matcher: { exact: id } };
  });
  const ctx: UpstreamTlsContextObject = {
    common_tls_context: {
      alpn_protocols: [...ISTIO_ALPN],
      tls_certificate_sds_secret_configs: [{ name: WORKLOAD_CERTIFICATE_SECRET, sds_config: sdsConfigSource() }],
      combined_validation_context: {
        default_validation_context: matchers.length === 0 ? {} : { match_typed_subject_alt_names: matchers },
        validation_context_sds_secret_config: { name: ROOT_CA_SECRET, sds_config: sdsConfigSource() },
      },
    },
    sni,
  };
  upstreamTlsContextRules(ctx);
  return ctx;
}

/**
 * The plain Envoy EDS cluster `name`: eds_config over ADS (v3) with service_name `name`, connect timeout, load
 * balancing policy and outlier detection from `options`. Throws, naming the option, on a bad value, and when the
 * result breaks a rule or does not survive the protos (see assertEnvoyEdsCluster).
 */
export function envoyEdsCluster(name: string, options: EnvoyClusterOptions = {}): EnvoyEdsClusterObject {
  const cluster: EnvoyEdsClusterObject = {
    name,
    type: DISCOVERY_TYPE_EDS,
    eds_cluster_config: { eds_config: adsConfigSource(), service_name: name },
    connect_timeout: positiveDuration(name, 'connectTimeoutMs', options.connectTimeoutMs ?? DEFAULT_CONNECT_TIMEOUT_MS),
  };
  const lbName = options.lbPolicy ?? 'ROUND_ROBIN';
  if (!Object.hasOwn(LB_POLICY, lbName)) fail(name, `lbPolicy ${JSON.stringify(lbName)} is not ROUND_ROBIN or LEAST_REQUEST`);
  const lbPolicy = LB_POLICY[lbName];
  if (lbPolicy !== undefined) cluster.lb_policy = lbPolicy;
  if (options.outlierDetection) cluster.outlier_detection = outlierDetection(name, options.outlierDetection);
  assertEnvoyEdsCluster(cluster);
  return cluster;
}

/**
 * The sidecar cluster for service port `host`:`port`: envoyEdsCluster named `outbound|PORT||HOST`, with the
 * ISTIO_MUTUAL transport socket (SNI outboundSni(host, port); peers restricted to `options.subjectAltNames`).
 * Throws when an input is bad (naming it) or the result breaks a rule (see assertSidecarCluster).
 */
export function sidecarCluster(host: string, port: number, options: SidecarClusterOptions = {}): SidecarClusterObject {
  const tls = upstreamTlsContext(outboundSni(host, port), options.subjectAltNames);
  const cluster: SidecarClusterObject = {
    ...envoyEdsCluster(outboundClusterName(host, port), options),
    transport_socket: { name: TLS_TRANSPORT_SOCKET_NAME, typed_config: nestedAny(MESSAGE_NAME.upstreamTlsContext, TYPE_URL.upstreamTlsContext, tls) },
  };
  assertSidecarCluster(cluster);
  return cluster;
}

/**
 * The UpstreamTlsContext of a (decoded) cluster's transport socket; undefined when it has none. Throws when the
 * socket is not the TLS socket or its typed_config is not an UpstreamTlsContext.
 */
export function clusterUpstreamTlsContext(cluster: { name: string; transport_socket?: TransportSocketObject }): UpstreamTlsContextObject | undefined {
  const socket = cluster.transport_socket;
  if (socket === undefined) return undefined;
  if (socket.name !== TLS_TRANSPORT_SOCKET_NAME) fail(cluster.name, `transport_socket.name is ${JSON.stringify(socket.name)}, not ${TLS_TRANSPORT_SOCKET_NAME}`);
  const any = socket.typed_config as NestedAnyObject | undefined;
  if (any?.type_url !== TYPE_URL.upstreamTlsContext) {
    return fail(cluster.name, `transport_socket.typed_config.type_url is ${JSON.stringify(any?.type_url)}, not ${TYPE_URL.upstreamTlsContext}`);
  }
  return decodeNestedAny(MESSAGE_NAME.upstreamTlsContext, TYPE_URL.upstreamTlsContext, any) as UpstreamTlsContextObject;
}

/**
 * Throws a clear Error unless `cluster` is a plain Envoy EDS cluster: non-empty name, type EDS, eds_config over ADS
 * (v3), a non-empty service_name, connect_timeout > 0, lb_policy ROUND_ROBIN or LEAST_REQUEST, outlier-detection
 * percentages within 0..100, no transport socket, and the protos accept it unchanged.
 */
export function assertEnvoyEdsCluster(cluster: EnvoyEdsClusterObject): void {
  envoyEdsClusterRules(cluster);
  assertEncodable(envoyType(MESSAGE_NAME.cluster), cluster);
}

/** The rules of a plain Envoy EDS cluster (assertEnvoyEdsCluster) without the proto round trip, for codecs. */
export function envoyEdsClusterRules(cluster: EnvoyEdsClusterObject): void {
  edsRules(cluster);
  if ((cluster as Partial<SidecarClusterObject>).transport_socket !== undefined) fail(cluster.name, 'transport_socket is set on a plain cluster');
}

/**
 * Throws a clear Error unless `cluster` is a sidecar cluster: the rules of assertEnvoyEdsCluster, and a TLS
 * transport socket whose UpstreamTlsContext has an SNI, a certificate and a validation context from SDS, and SAN
 * matchers (if any) that are exact URI matches on SPIFFE IDs; every level survives the protos unchanged.
 */
export function assertSidecarCluster(cluster: SidecarClusterObject): void {
  sidecarClusterRules(cluster);
  assertEncodable(envoyType(MESSAGE_NAME.cluster), cluster);
}

/** What every Envoy EDS cluster built here obeys, with or without TLS. */
function edsRules(cluster: EnvoyEdsClusterObject): void {
  const name = cluster.name;
  if (typeof name !== 'string' || name === '') fail('', 'name is empty or not a string');
  if (cluster.type !== DISCOVERY_TYPE_EDS) fail(name, `type is ${cluster.type}, not EDS (${DISCOVERY_TYPE_EDS})`);
  const eds = cluster.eds_cluster_config as Partial<EnvoyEdsClusterObject['eds_cluster_config']> | undefined;
  if (eds?.eds_config?.ads === undefined) fail(name, 'eds_cluster_config.eds_config.ads is unset');
  if (eds?.eds_config?.resource_api_version !== API_VERSION_V3) fail(name, 'eds_cluster_config.eds_config.resource_api_version is not V3');
  if (!eds?.service_name) fail(name, 'eds_cluster_config.service_name is empty');
  const { seconds = 0, nanos = 0 } = (cluster.connect_timeout as DurationObject | undefined) ?? {};
  if (seconds < 0 || nanos < 0 || seconds + nanos === 0) fail(name, 'connect_timeout is unset or not > 0 (Envoy requires it)');
  if (nanos >= 1e9) fail(name, `connect_timeout.nanos ${nanos} is not below 1e9`);
  if (![0, LB_POLICY_LEAST_REQUEST].includes(cluster.lb_policy ?? 0)) fail(name, `lb_policy ${cluster.lb_policy ?? 0} is not ROUND_ROBIN or LEAST_REQUEST`);
  if (cluster.outlier_detection) assertOutlierDetectionPercentages(name, cluster.outlier_detection);
}

function sidecarClusterRules(cluster: SidecarClusterObject): void {
  edsRules(cluster);
  const tls = clusterUpstreamTlsContext(cluster);
  if (!tls) return fail(cluster.name, 'transport_socket is unset (sidecar clusters are mTLS)');
  try {
    upstreamTlsContextRules(tls);
  } catch (e) {
    fail(cluster.name, `transport_socket.typed_config: ${(e as Error).message}`);
  }
}

/** The rules of an ISTIO_MUTUAL UpstreamTlsContext, then the protos (nested: its own round trip). */
function upstreamTlsContextRules(ctx: UpstreamTlsContextObject): void {
  const bad = (message: string): never => {
    throw new Error(`UpstreamTlsContext: ${message}`);
  };
  const sni = ctx.sni as string | undefined;
  if (!sni) bad('sni is empty (the east-west gateway routes on it)');
  if (Buffer.byteLength(sni ?? '') > 255) bad('sni is longer than 255 bytes');
  const common = ctx.common_tls_context as Partial<CommonTlsContextObject> | undefined;
  if (!common) return bad('common_tls_context is unset');
  (common.alpn_protocols ?? []).forEach((p, i) => {
    if (p === '') bad(`common_tls_context.alpn_protocols[${i}] is empty`);
  });
  const certs = common.tls_certificate_sds_secret_configs ?? [];
  if (certs.length === 0) bad('common_tls_context.tls_certificate_sds_secret_configs is empty (no workload certificate)');
  certs.forEach((s, i) => {
    sdsSecretRules(bad, `common_tls_context.tls_certificate_sds_secret_configs[${i}]`, s);
  });
  const combined = common.combined_validation_context as Partial<CombinedValidationContextObject> | undefined;
  if (!combined) return bad('common_tls_context.combined_validation_context is unset (the peer would not be verified)');
  const at = 'common_tls_context.combined_validation_context';
  sdsSecretRules(bad, `${at}.validation_context_sds_secret_config`, combined.validation_context_sds_secret_config);
  const seen = new Set<string>();
  (combined.default_validation_context?.match_typed_subject_alt_names ?? []).forEach((m, i) => {
    const where = `${at}.default_validation_context.match_typed_subject_alt_names[${i}]`;
    if (m.san_type !== SAN_TYPE_URI) bad(`${where}.san_type is ${m.san_type}, not URI (${SAN_TYPE_URI})`);
    const id = (m.matcher as SanMatcherObject['matcher'] | undefined)?.exact ?? '';
    try {
      parseSpiffeId(id);
    } catch (e) {
      bad(`${where}.matcher.exact: ${(e as Error).message}`);
    }
    if (seen.has(id)) bad(`${where}.matcher.exact ${JSON.stringify(id)} is repeated`);
    seen.add(id);
  });
  assertEncodable(envoyType(MESSAGE_NAME.upstreamTlsContext), ctx);
}

function sdsSecretRules(bad: (message: string) => never, at: string, s: SdsSecretConfigObject | undefined): void {
  if (!s?.name) return bad(`${at}.name is empty`);
  const source = s.sds_config as Partial<SdsConfigSourceObject> | undefined;
  if (!source) return bad(`${at}.sds_config is unset (SDS comes from the agent over gRPC)`);
  if (source.resource_api_version !== API_VERSION_V3) bad(`${at}.sds_config.resource_api_version is not V3`);
  const api = source.api_config_source as Partial<SdsConfigSourceObject['api_config_source']> | undefined;
  if (!api) return bad(`${at}.sds_config.api_config_source is unset`);
  if (api.api_type !== API_TYPE_GRPC) bad(`${at}.sds_config.api_config_source.api_type is not GRPC`);
  if (api.transport_api_version !== API_VERSION_V3) bad(`${at}.sds_config.api_config_source.transport_api_version is not V3`);
  if ((api.grpc_services ?? []).length === 0) bad(`${at}.sds_config.api_config_source.grpc_services is empty`);
}

const codec = resourceCodec<SidecarClusterObject>(MESSAGE_NAME.cluster, TYPE_URL.cluster, sidecarClusterRules);
/** The wire bytes of a checked resource. */
export const encodeSidecarCluster = codec.encode;
/** Bytes back to the object form. */
export const decodeSidecarCluster = codec.decode;
export const sidecarClusterToAny = codec.toAny;
