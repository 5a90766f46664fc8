/**
 * CDS for proxyless gRPC clients: an EDS Cluster whose endpoints come over the same ADS stream, round robin, with
 * outlier detection when configured. Cluster names follow Istio: `outbound|PORT||HOST` (see outboundClusterName).
 *
 * What grpc-js-xds 1.14.1 does with the load-balancing fields (read from build/src/xds-resource-type/
 * cluster-resource-type.js, lb-policy-registry/*.js and load-balancer-xds-wrr-locality.js, not guessed):
 * - `lb_policy: ROUND_ROBIN` (the proto3 default, 0, so left out of the object form and of the wire) becomes
 *   `xds_wrr_locality { child_policy: [round_robin] }`: localities are picked by weighted_target using each
 *   LocalityLbEndpoints.load_balancing_weight, and inside a locality grpc-js's round_robin picks endpoints in turn,
 *   IGNORING LbEndpoint.load_balancing_weight (load-balancer-round-robin.js reads no weights). Only ring_hash uses
 *   endpoint weights (locality weight × endpoint weight). So weights that must shape proxyless traffic have to be
 *   expressed per locality, not per endpoint.
 * - `lb_policy: RING_HASH` is also supported; any other lb_policy without load_balancing_policy is refused.
 * - `load_balancing_policy` (A52 custom LB, GRPC_EXPERIMENTAL_XDS_CUSTOM_LB_CONFIG, default on) wins over
 *   lb_policy and is honoured for the registered type URLs: `...wrr_locality.v3.WrrLocality` (registered by
 *   load-balancer-xds-wrr-locality.js; lb-policy-registry/wrr-locality.js also registers a copy under the URL
 *   without `type.googleapis.com/`, which never matches), `...round_robin.v3.RoundRobin`, `...pick_first.v3.PickFirst`,
 *   `...ring_hash.v3.RingHash`, `xds.type.v3.TypedStruct`, and `...client_side_weighted_round_robin.v3.
 *   ClientSideWeightedRoundRobin` only with GRPC_EXPERIMENTAL_XDS_WRR_LB=true (weights from ORCA load reports, not
 *   from EDS). WrrLocality wrapping RoundRobin is exactly what ROUND_ROBIN already gives, so meshfed sends lb_policy
 *   ROUND_ROBIN and no load_balancing_policy (simpler, and what Envoy reads the same way).
 * - outlier_detection is honoured (GRPC_EXPERIMENTAL_ENABLE_OUTLIER_DETECTION defaults to true) for interval,
 *   base/max_ejection_time, max_ejection_percent, the success-rate fields (on unless enforcing_success_rate is 0)
 *   and the failure-percentage fields (off unless enforcing_failure_percentage > 0); consecutive_* are ignored.
 *   A success-rate or failure-percentage field left out does NOT get grpc's default: cluster-resource-type.js passes
 *   it on as undefined, and load-balancer-outlier-detection.js (grpc-js 1.14.7) spreads that over its defaults, so an
 *   absent threshold never ejects and an absent minimum_hosts or request_volume gate is off (every endpoint judged,
 *   on any number of calls). meshfed therefore writes every failure-percentage field (FAILURE_PERCENTAGE_DEFAULTS).
 *
 * A virtual destination's outlierDetection (Istio's DestinationRule fields) becomes the same OutlierDetection for
 * every kind of client, translated as Istio translates a DestinationRule (virtualDestinationOutlierDetection):
 * - Envoy sidecars get all of it: ejection after consecutive5xx 5xx (consecutive_5xx) or consecutiveGatewayErrors
 *   502/503/504 (consecutive_gateway_failure), each enforced at 100 % when above 0 and off at 0; Envoy's defaults
 *   for what is left out (consecutive_5xx 5, gateway failures not enforced). Success-rate ejection is off, as in
 *   Istio (enforcing_success_rate 0).
 * - failurePercentage (meshfed's, since a DestinationRule has none) becomes failure_percentage_threshold,
 *   _minimum_hosts and _request_volume, enforced at 100 % (enforcing_failure_percentage; Envoy's default is 0): each
 *   interval, when at least minimumHosts endpoints had requestVolume calls, every such endpoint whose share of failed
 *   calls reaches the threshold is ejected, within maxEjectionPercent. Envoy counts 5xx and connection failures;
 *   grpc counts every call that ends with a status other than OK, and ejects only ABOVE the threshold (Envoy: at or
 *   above), so threshold 100 ejects nothing for proxyless clients. minimumHosts and requestVolume left out are sent
 *   as Envoy's defaults, 5 and 50, so that grpc applies them too (see above).
 * - Proxyless gRPC reads interval, base_ejection_time, max_ejection_percent and the failure-percentage fields; it
 *   ignores consecutive_*, and success-rate is off as for Envoy. So for proxyless clients failurePercentage is what
 *   ejects: a virtual destination with only the counts ejects nothing for them, and no threshold is made up from the
 *   counts.
 *
 * Objects are in the form described in ../envoy-protos.ts.
 */
import { parseDuration } from '../../model/duration.js';
import type { OutlierDetection } from '../../model/virtual-destination.js';
import { MESSAGE_NAME, TYPE_URL, assertEncodable, envoyType, resourceCodec } from '../envoy-protos.js';
import { adsConfigSource, API_VERSION_V3, type AdsConfigSourceObject, type NestedAnyObject } from './listener.js';

/** The transport socket name Envoy registers the TLS socket under. */
export const TLS_TRANSPORT_SOCKET_NAME = 'envoy.transport_sockets.tls';

/** envoy.config.core.v3.TransportSocket: a TLS socket's UpstreamTlsContext (sidecar-cluster.ts, proxyless-tls.ts). */
export interface TransportSocketObject {
  name: string;
  typed_config: NestedAnyObject;
}

/** envoy.config.cluster.v3.Cluster.DiscoveryType.EDS (checked against the protos in the tests). */
export const DISCOVERY_TYPE_EDS = 3;

export interface DurationObject {
  seconds?: number;
  nanos?: number;
}

export interface UInt32ValueObject {
  /** left out when 0 */
  value?: number;
}

/** The subset of envoy.config.cluster.v3.OutlierDetection meshfed writes (grpc ignores the consecutive_* fields). */
export interface OutlierDetectionObject {
  consecutive_5xx?: UInt32ValueObject;
  enforcing_consecutive_5xx?: UInt32ValueObject;
  consecutive_gateway_failure?: UInt32ValueObject;
  enforcing_consecutive_gateway_failure?: UInt32ValueObject;
  interval?: DurationObject;
  base_ejection_time?: DurationObject;
  max_ejection_time?: DurationObject;
  max_ejection_percent?: UInt32ValueObject;
  enforcing_success_rate?: UInt32ValueObject;
  success_rate_minimum_hosts?: UInt32ValueObject;
  success_rate_request_volume?: UInt32ValueObject;
  success_rate_stdev_factor?: UInt32ValueObject;
  enforcing_failure_percentage?: UInt32ValueObject;
  failure_percentage_minimum_hosts?: UInt32ValueObject;
  failure_percentage_request_volume?: UInt32ValueObject;
  failure_percentage_threshold?: UInt32ValueObject;
}

export interface ClusterObject {
  name: string;
  type: number;
  eds_cluster_config: { eds_config: AdsConfigSourceObject };
  /** ROUND_ROBIN is 0, the default: left out. */
  lb_policy?: number;
  outlier_detection?: OutlierDetectionObject;
  /** mTLS (see ./proxyless-tls.ts) */
  transport_socket?: TransportSocketObject;
}

/** Outlier detection as meshfed's users configure it (Envoy/Istio defaults apply to what is left out). */
export interface OutlierDetectionOptions {
  /** Envoy only: eject after this many consecutive 5xx (enforced when > 0, off at 0) */
  consecutive5xx?: number;
  /** Envoy only: eject after this many consecutive 502/503/504 (enforced when > 0, off at 0) */
  consecutiveGatewayErrors?: number;
  /** time between ejection sweeps; > 0 */
  intervalMs?: number;
  /** base ejection time (multiplied by the number of ejections); > 0 */
  baseEjectionTimeMs?: number;
  /** cap on the ejection time; > 0 */
  maxEjectionTimeMs?: number;
  /** at most this % of the endpoints ejected; 0..100 */
  maxEjectionPercent?: number;
  /** success-rate ejection (grpc's default: on); `false` turns it off */
  successRate?: false | { stdevFactor?: number; enforcementPercentage?: number; minimumHosts?: number; requestVolume?: number };
  /** failure-percentage ejection (grpc's default: off); FAILURE_PERCENTAGE_DEFAULTS for what is left out */
  failurePercentage?: { threshold?: number; enforcementPercentage?: number; minimumHosts?: number; requestVolume?: number };
}

export interface EdsClusterOptions {
  outlierDetection?: OutlierDetectionOptions;
  /** mTLS to the endpoints (proxylessTransportSocket in ./proxyless-tls.ts) */
  transportSocket?: TransportSocketObject;
}

/** Envoy's (and gRFC A50's) defaults for the failure-percentage fields, written out when left out (see outlierDetection). */
export const FAILURE_PERCENTAGE_DEFAULTS = Object.freeze({ threshold: 85, minimumHosts: 5, requestVolume: 50 });

/** Istio's cluster name for a service port: `outbound|PORT||HOST` (empty subset). */
export function outboundClusterName(host: string, port: number): string {
  if (host === '' || host.includes('|')) throw new Error(`cluster host ${JSON.stringify(host)} is empty or contains "|"`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`cluster port ${port} is not in 1..65535`);
  return `outbound|${port}||${host}`;
}

const fail = (name: string, message: string): never => {
  throw new Error(`Cluster ${JSON.stringify(name)}: ${message}`);
};

/**
 * `ms` milliseconds as a google.protobuf.Duration (zero parts left out; nanos always below 1e9, as the proto
 * requires). Throws, naming cluster `cluster` and option `field`, unless `ms` is finite and > 0.
 */
export function positiveDuration(cluster: string, field: string, ms: number): DurationObject {
  if (!Number.isFinite(ms) || ms <= 0) fail(cluster, `${field} ${ms} must be > 0 ms`);
  const totalNanos = Math.round(ms * 1e6);
  const seconds = Math.floor(totalNanos / 1e9);
  const nanos = totalNanos - seconds * 1e9;
  const d: DurationObject = {};
  if (seconds !== 0) d.seconds = seconds;
  if (nanos !== 0) d.nanos = nanos;
  return d;
}

function uint32(cluster: string, field: string, v: number, max = 0xffff_ffff): UInt32ValueObject {
  if (!Number.isInteger(v) || v < 0 || v > max) fail(cluster, `outlierDetection.${field} ${v} is not an integer in 0..${max}`);
  return v === 0 ? {} : { value: v };
}

/** The OutlierDetection message for options `o` of cluster `cluster`; throws, naming the option, on a bad value. */
export function outlierDetection(cluster: string, o: OutlierDetectionOptions): OutlierDetectionObject {
  const od: OutlierDetectionObject = {};
  if (o.consecutive5xx !== undefined) {
    od.consecutive_5xx = uint32(cluster, 'consecutive5xx', o.consecutive5xx);
    od.enforcing_consecutive_5xx = o.consecutive5xx > 0 ? { value: 100 } : {};
  }
  if (o.consecutiveGatewayErrors !== undefined) {
    od.consecutive_gateway_failure = uint32(cluster, 'consecutiveGatewayErrors', o.consecutiveGatewayErrors);
    // Envoy's default enforcement of gateway failures is 0: without this they would be counted and never acted on
    od.enforcing_consecutive_gateway_failure = o.consecutiveGatewayErrors > 0 ? { value: 100 } : {};
  }
  if (o.intervalMs !== undefined) od.interval = positiveDuration(cluster, 'outlierDetection.intervalMs', o.intervalMs);
  if (o.baseEjectionTimeMs !== undefined) od.base_ejection_time = positiveDuration(cluster, 'outlierDetection.baseEjectionTimeMs', o.baseEjectionTimeMs);
  if (o.maxEjectionTimeMs !== undefined) od.max_ejection_time = positiveDuration(cluster, 'outlierDetection.maxEjectionTimeMs', o.maxEjectionTimeMs);
  if (o.maxEjectionPercent !== undefined) od.max_ejection_percent = uint32(cluster, 'maxEjectionPercent', o.maxEjectionPercent, 100);
  if (o.successRate === false) {
    od.enforcing_success_rate = {};
  } else if (o.successRate) {
    const s = o.successRate;
    if (s.enforcementPercentage !== undefined) od.enforcing_success_rate = uint32(cluster, 'successRate.enforcementPercentage', s.enforcementPercentage, 100);
    if (s.minimumHosts !== undefined) od.success_rate_minimum_hosts = uint32(cluster, 'successRate.minimumHosts', s.minimumHosts);
    if (s.requestVolume !== undefined) od.success_rate_request_volume = uint32(cluster, 'successRate.requestVolume', s.requestVolume);
    if (s.stdevFactor !== undefined) od.success_rate_stdev_factor = uint32(cluster, 'successRate.stdevFactor', s.stdevFactor);
  }
  if (o.failurePercentage) {
    const f = o.failurePercentage;
    const d = FAILURE_PERCENTAGE_DEFAULTS;
    // grpc turns failure-percentage ejection on only when enforcing_failure_percentage > 0; Envoy's default is 0
    od.enforcing_failure_percentage = uint32(cluster, 'failurePercentage.enforcementPercentage', f.enforcementPercentage ?? 100, 100);
    // every field written: grpc-js 1.14 overwrites its defaults with undefined for a field left out, which makes the
    // threshold unreachable and drops the minimumHosts and requestVolume gates (every endpoint judged on any calls)
    od.failure_percentage_threshold = uint32(cluster, 'failurePercentage.threshold', f.threshold ?? d.threshold, 100);
    od.failure_percentage_minimum_hosts = uint32(cluster, 'failurePercentage.minimumHosts', f.minimumHosts ?? d.minimumHosts);
    od.failure_percentage_request_volume = uint32(cluster, 'failurePercentage.requestVolume', f.requestVolume ?? d.requestVolume);
  }
  return od;
}

/**
 * A virtual destination's outlier detection as cluster options, the way Istio translates a DestinationRule's: the
 * counts, interval, base ejection time and ejection cap the user wrote (durations parsed from the model's strings),
 * success-rate ejection off, and failure-percentage ejection, fully enforced, when the user asked for it. What each
 * kind of client does with it: see the module comment.
 */
export function virtualDestinationOutlierDetection(od: OutlierDetection): OutlierDetectionOptions {
  const options: OutlierDetectionOptions = { successRate: false };
  if (od.consecutive5xx !== undefined) options.consecutive5xx = od.consecutive5xx;
  if (od.consecutiveGatewayErrors !== undefined) options.consecutiveGatewayErrors = od.consecutiveGatewayErrors;
  if (od.interval !== undefined) options.intervalMs = parseDuration(od.interval);
  if (od.baseEjectionTime !== undefined) options.baseEjectionTimeMs = parseDuration(od.baseEjectionTime);
  if (od.maxEjectionPercent !== undefined) options.maxEjectionPercent = od.maxEjectionPercent;
  if (od.failurePercentage !== undefined) {
    const { threshold, minimumHosts, requestVolume } = od.failurePercentage;
    options.failurePercentage = { threshold, enforcementPercentage: 100 };
    if (minimumHosts !== undefined) options.failurePercentage.minimumHosts = minimumHosts;
    if (requestVolume !== undefined) options.failurePercentage.requestVolume = requestVolume;
  }
  return options;
}

/**
 * The EDS Cluster `name` (its ClusterLoadAssignment has the same name: no service_name), endpoints over ADS (v3),
 * round robin (see above for what grpc does with weights), with outlier detection when `options.outlierDetection`
 * is given. Throws when the result breaks a grpc rule or does not survive the protos (see assertEdsCluster).
 */
export function edsCluster(name: string, options: EdsClusterOptions = {}): ClusterObject {
  const cluster: ClusterObject = { name, type: DISCOVERY_TYPE_EDS, eds_cluster_config: { eds_config: adsConfigSource() } };
  if (options.outlierDetection) cluster.outlier_detection = outlierDetection(name, options.outlierDetection);
  if (options.transportSocket) cluster.transport_socket = options.transportSocket;
  assertEdsCluster(cluster);
  return cluster;
}

const percent = (name: string, field: string, v: UInt32ValueObject | undefined): void => {
  if (v !== undefined && (v.value ?? 0) > 100) fail(name, `outlier_detection.${field}.value ${v.value ?? 0} is over 100`);
};

/**
 * Throws a clear Error unless `cluster` is an EDS cluster grpc-js-xds accepts: non-empty name, type EDS,
 * eds_config over ADS (v3), lb_policy ROUND_ROBIN (left out), outlier-detection percentages within 0..100, and
 * the protos accept it unchanged.
 */
export function assertEdsCluster(cluster: ClusterObject): void {
  edsClusterRules(cluster);
  assertEncodable(clusterType(), cluster);
}

/** The rules of this resource type that grpc enforces, without the proto round trip. */
function edsClusterRules(cluster: ClusterObject): void {
  const name = cluster.name;
  if (typeof name !== 'string' || name === '') fail('', 'name is empty or not a string');
  if (name.startsWith('xdstp:')) fail(name, 'xdstp: names need eds_cluster_config.service_name, which meshfed does not set');
  if (cluster.type !== DISCOVERY_TYPE_EDS) fail(name, `type is ${cluster.type}, not EDS (${DISCOVERY_TYPE_EDS})`);
  const eds = (cluster.eds_cluster_config as ClusterObject['eds_cluster_config'] | undefined)?.eds_config;
  if (eds?.ads === undefined) fail(name, 'eds_cluster_config.eds_config.ads is unset (grpc needs ads or self)');
  if (eds?.resource_api_version !== API_VERSION_V3) fail(name, 'eds_cluster_config.eds_config.resource_api_version is not V3');
  if ((cluster.lb_policy ?? 0) !== 0) fail(name, `lb_policy ${cluster.lb_policy ?? 0} is not ROUND_ROBIN`);
  if (cluster.outlier_detection) assertOutlierDetectionPercentages(name, cluster.outlier_detection);
  const socket = cluster.transport_socket;
  if (socket !== undefined) {
    if (socket.name !== TLS_TRANSPORT_SOCKET_NAME) fail(name, `transport_socket.name is ${JSON.stringify(socket.name)}, not ${TLS_TRANSPORT_SOCKET_NAME}`);
    if (socket.typed_config.type_url !== TYPE_URL.upstreamTlsContext) fail(name, `transport_socket.typed_config is not an UpstreamTlsContext`);
  }
}

/** Throws, naming cluster `name` and the field, when a percentage of outlier detection `od` is over 100. */
export function assertOutlierDetectionPercentages(name: string, od: OutlierDetectionObject): void {
  for (const f of [
    'max_ejection_percent',
    'enforcing_consecutive_5xx',
    'enforcing_consecutive_gateway_failure',
    'enforcing_success_rate',
    'enforcing_failure_percentage',
    'failure_percentage_threshold',
  ] as const)
    percent(name, f, od[f]);
}

const clusterType = () => envoyType(MESSAGE_NAME.cluster);

const codec = resourceCodec<ClusterObject>(MESSAGE_NAME.cluster, TYPE_URL.cluster, edsClusterRules);
/** The wire bytes of a checked resource. */
export const encodeCluster = codec.encode;
/** Bytes back to the object form. */
export const decodeCluster = codec.decode;
export const clusterToAny = codec.toAny;
