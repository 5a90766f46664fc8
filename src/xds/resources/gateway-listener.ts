/**
 * LDS and CDS for the east-west gateway, in Istio's AUTO_PASSTHROUGH form: the gateway never terminates TLS. Its
 * listener (`0.0.0.0_15443`) reads the server name from the ClientHello with the TLS inspector and picks the filter
 * chain whose `filter_chain_match.server_names` holds it; that chain's TCP proxy forwards the still-encrypted bytes
 * to the cluster named like the SNI, which holds only that service's endpoints in the gateway's own cluster (a
 * gateway never forwards to another network).
 *
 * Istio's forms, followed exactly: listener name `ADDRESS_PORT` (Istio joins bind address and port with `_`, so
 * IPv6 gives `::_15443`); listener filter `envoy.filters.listener.tls_inspector`; network filter
 * `envoy.filters.network.tcp_proxy` with `stat_prefix` and `cluster` both the cluster name; clusters named like the
 * SNI, `outbound_.PORT_._.HOST` (gatewayClusterName), plain EDS clusters whose ClusterLoadAssignment has that name
 * too (envoyEdsCluster in sidecar-cluster.ts: no transport socket, the bytes stay the client's TLS).
 *
 * Which server names lead to a cluster is the caller's choice (GatewayChain): the SNI a sidecar sends, and the bare
 * authority a proxyless gRPC client sends (DESIGN.md: the gateway must accept that form too).
 *
 * Rules checked, because Envoy refuses the listener otherwise or would route ambiguously: at least one filter chain
 * (Envoy refuses a TCP listener without one); every chain has server names (an empty list would match every
 * connection), each a lowercase server name or `*.` then one (partial wildcards and `*` alone are invalid in Envoy);
 * no server name in two chains (Envoy refuses overlapping matches); one chain per cluster (a second is a merge the
 * caller forgot). Chains are sorted by cluster and server names within a chain sorted, so the same input always
 * encodes to the same bytes (and the same resource version). Nothing here has been run against a real Envoy; each
 * resource is checked against the Envoy v3 protos (verify and a lossless round trip, nested Anys included). Objects
 * are in the form described in ../envoy-protos.ts.
 */
import { isIP } from 'node:net';
import { MESSAGE_NAME, TYPE_URL, assertEncodable, envoyType, resourceCodec } from '../envoy-protos.js';
import { decodeNestedAny, nestedAny, type NestedAnyObject } from './listener.js';
import { envoyEdsCluster, envoyEdsClusterRules, outboundSni, type EnvoyClusterOptions, type EnvoyEdsClusterObject } from './sidecar-cluster.js';

/** Istio's east-west gateway port (AUTO_PASSTHROUGH). */
export const GATEWAY_PORT = 15443;
/** The default bind address: every IPv4 address. */
export const GATEWAY_BIND_ADDRESS = '0.0.0.0';
/** The name Envoy registers the TLS inspector listener filter under. */
export const TLS_INSPECTOR_FILTER_NAME = 'envoy.filters.listener.tls_inspector';
/** The name Envoy registers the TCP proxy network filter under. */
export const TCP_PROXY_FILTER_NAME = 'envoy.filters.network.tcp_proxy';

/** One route through the gateway: connections whose SNI is one of `serverNames` go to `cluster`. */
export interface GatewayChain {
  serverNames: readonly string[];
  cluster: string;
}

export interface GatewayListenerOptions {
  /** IP literal to bind, v4 or v6; default GATEWAY_BIND_ADDRESS */
  address?: string;
  /** 1..65535; default GATEWAY_PORT */
  port?: number;
}

export interface TcpProxyObject {
  stat_prefix: string;
  cluster: string;
}

/** envoy.config.listener.v3.ListenerFilter and envoy.config.listener.v3.Filter, as used here. */
export interface TypedFilterObject {
  name: string;
  typed_config: NestedAnyObject;
}

export interface FilterChainObject {
  filter_chain_match: { server_names: string[] };
  filters: TypedFilterObject[];
}

export interface GatewayListenerObject {
  name: string;
  address: { socket_address: { address: string; port_value: number } };
  listener_filters: TypedFilterObject[];
  filter_chains: FilterChainObject[];
}

const LABEL = '[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?';
/** A lowercase DNS name (underscores allowed: Istio's SNIs have them), optionally behind a leading `*.`. */
const SERVER_NAME = new RegExp(`^(?:\\*\\.)?${LABEL}(?:\\.${LABEL})*$`);

const fail = (name: string, message: string): never => {
  throw new Error(`Listener ${JSON.stringify(name)}: ${message}`);
};

const byCodeUnits = (a: string, b: string): number => (a < b ? -1 : a > b ? 1 : 0);

/** Istio's listener name for a bind address and port: `ADDRESS_PORT` (`0.0.0.0_15443`, `::_15443`). */
export function gatewayListenerName(address = GATEWAY_BIND_ADDRESS, port = GATEWAY_PORT): string {
  if (isIP(address) === 0) throw new Error(`Listener: address ${JSON.stringify(address)} is not an IP address`);
  if (!Number.isInteger(port) || port < 1 || port > 65535) throw new Error(`Listener: port ${port} is not in 1..65535`);
  return `${address}_${port}`;
}

/** The gateway's cluster for service port `host`:`port`, named like the SNI: `outbound_.PORT_._.HOST`. */
export function gatewayClusterName(host: string, port: number): string {
  return outboundSni(host, port);
}

/**
 * The gateway's EDS cluster `name` (gatewayClusterName): envoyEdsCluster, no transport socket. Its
 * ClusterLoadAssignment, also named `name`, must hold only the local endpoints of the service.
 */
export function gatewayCluster(name: string, options: EnvoyClusterOptions = {}): EnvoyEdsClusterObject {
  return envoyEdsCluster(name, options);
}

/**
 * The AUTO_PASSTHROUGH listener: bound to `options.address`:`options.port` (default 0.0.0.0:15443), the TLS
 * inspector, one TCP proxy filter chain per entry of `chains` (sorted; see above). Throws, naming the input
 * (`chains[i].serverNames[j]`, `chains[i].cluster`, `address`, `port`), when a rule above is broken, and when the
 * result does not survive the protos (see assertGatewayListener).
 */
export function gatewayListener(chains: readonly GatewayChain[], options: GatewayListenerOptions = {}): GatewayListenerObject {
  const name = gatewayListenerName(options.address, options.port);
  chainRules(
    (message) => fail(name, message),
    chains,
    (i) => ({ serverNames: `chains[${i}].serverNames`, cluster: `chains[${i}].cluster` }),
  );
  const sorted = [...chains].sort((a, b) => byCodeUnits(a.cluster, b.cluster));
  const listener: GatewayListenerObject = {
    name,
    address: { socket_address: { address: options.address ?? GATEWAY_BIND_ADDRESS, port_value: options.port ?? GATEWAY_PORT } },
    listener_filters: [{ name: TLS_INSPECTOR_FILTER_NAME, typed_config: nestedAny(MESSAGE_NAME.tlsInspector, TYPE_URL.tlsInspector, {}) }],
    filter_chains: sorted.map((c) => ({
      filter_chain_match: { server_names: [...c.serverNames].sort(byCodeUnits) },
      filters: [{ name: TCP_PROXY_FILTER_NAME, typed_config: nestedAny(MESSAGE_NAME.tcpProxy, TYPE_URL.tcpProxy, { stat_prefix: c.cluster, cluster: c.cluster }) }],
    })),
  };
  assertGatewayListener(listener);
  return listener;
}

/**
 * The chains of a (decoded) gateway listener, in its order: each filter chain's server names and the cluster of its
 * TCP proxy. Throws when a chain is not one TCP proxy filter to a cluster.
 */
export function gatewayListenerChains(listener: GatewayListenerObject): GatewayChain[] {
  const name = listener.name;
  return ((listener.filter_chains as FilterChainObject[] | undefined) ?? []).map((chain, i) => {
    const at = `filter_chains[${i}]`;
    const filters = (chain.filters as TypedFilterObject[] | undefined) ?? [];
    const filter = filters[0];
    if (filters.length !== 1 || filter?.name !== TCP_PROXY_FILTER_NAME) return fail(name, `${at}.filters is not exactly one ${TCP_PROXY_FILTER_NAME} filter`);
    const any = filter.typed_config as NestedAnyObject | undefined;
    if (any?.type_url !== TYPE_URL.tcpProxy) return fail(name, `${at}.filters[0].typed_config.type_url is ${JSON.stringify(any?.type_url)}, not ${TYPE_URL.tcpProxy}`);
    const proxy = decodeNestedAny(MESSAGE_NAME.tcpProxy, TYPE_URL.tcpProxy, any) as Partial<TcpProxyObject>;
    if (!proxy.stat_prefix) fail(name, `${at}.filters[0].typed_config.stat_prefix is empty (Envoy requires it)`);
    const serverNames = (chain.filter_chain_match as Partial<FilterChainObject['filter_chain_match']> | undefined)?.server_names ?? [];
    return { serverNames, cluster: proxy.cluster ?? '' };
  });
}

/**
 * Throws a clear Error unless `listener` is an AUTO_PASSTHROUGH gateway listener: a non-empty name, an IP socket
 * address with a port in 1..65535, the TLS inspector among the listener filters, filter chains by the rules above,
 * each one TCP proxy filter (with a stat_prefix) to a cluster, sorted; and the Listener survives the protos
 * unchanged (the nested TlsInspector and TcpProxy were checked the same way when nestedAny built them).
 */
export function assertGatewayListener(listener: GatewayListenerObject): void {
  gatewayListenerRules(listener);
  assertEncodable(envoyType(MESSAGE_NAME.listener), listener);
}

/** The rules of this resource type, without the proto round trip of the Listener itself. */
function gatewayListenerRules(listener: GatewayListenerObject): void {
  const name = listener.name;
  if (typeof name !== 'string' || name === '') fail('', 'name is empty or not a string');
  const socket = (listener.address as Partial<GatewayListenerObject['address']> | undefined)?.socket_address;
  if (isIP(socket?.address ?? '') === 0) fail(name, `address.socket_address.address ${JSON.stringify(socket?.address)} is not an IP address`);
  const port = socket?.port_value ?? 0;
  if (!Number.isInteger(port) || port < 1 || port > 65535) fail(name, `address.socket_address.port_value ${port} is not in 1..65535`);
  const inspector = ((listener.listener_filters as TypedFilterObject[] | undefined) ?? []).find((f) => f.name === TLS_INSPECTOR_FILTER_NAME);
  if (!inspector) return fail(name, `listener_filters has no ${TLS_INSPECTOR_FILTER_NAME} (server names would never match)`);
  const inspectorUrl = (inspector.typed_config as NestedAnyObject | undefined)?.type_url;
  if (inspectorUrl !== TYPE_URL.tlsInspector) fail(name, `the ${TLS_INSPECTOR_FILTER_NAME} typed_config.type_url is ${JSON.stringify(inspectorUrl)}, not ${TYPE_URL.tlsInspector}`);
  const chains = gatewayListenerChains(listener);
  chainRules(
    (message) => fail(name, message),
    chains,
    (i) => ({ serverNames: `filter_chains[${i}].filter_chain_match.server_names`, cluster: `filter_chains[${i}].filters[0].typed_config.cluster` }),
  );
  chains.forEach((c, i) => {
    const previous = chains[i - 1];
    if (previous && byCodeUnits(previous.cluster, c.cluster) > 0) fail(name, `filter_chains[${i}] (cluster ${JSON.stringify(c.cluster)}) is out of order: chains are sorted by cluster`);
    if (c.serverNames.some((n, j) => j > 0 && byCodeUnits(c.serverNames[j - 1] ?? '', n) > 0)) {
      fail(name, `filter_chains[${i}].filter_chain_match.server_names is not sorted`);
    }
  });
}

/** The rules every set of chains obeys; `field(i)` names chain i's fields in the messages (input or listener form). */
function chainRules(bad: (message: string) => never, chains: readonly GatewayChain[], field: (i: number) => { serverNames: string; cluster: string }): void {
  if (chains.length === 0) bad('no filter chains (Envoy refuses a listener without one; leave the listener out instead)');
  const nameAt = new Map<string, string>();
  const clusterAt = new Map<string, string>();
  chains.forEach((c, i) => {
    const f = field(i);
    if (c.serverNames.length === 0) bad(`${f.serverNames} is empty (the chain would match every connection)`);
    c.serverNames.forEach((serverName, j) => {
      const at = `${f.serverNames}[${j}]`;
      if (!SERVER_NAME.test(serverName) || Buffer.byteLength(serverName) > 255) {
        bad(`${at} ${JSON.stringify(serverName)} is not a lowercase server name (a DNS name of at most 255 bytes, or "*." and one)`);
      }
      const other = nameAt.get(serverName);
      if (other !== undefined) bad(`${at} ${JSON.stringify(serverName)} is also ${other} (Envoy refuses overlapping filter chain matches)`);
      nameAt.set(serverName, at);
    });
    if (c.cluster === '') bad(`${f.cluster} is empty`);
    const other = clusterAt.get(c.cluster);
    if (other !== undefined) bad(`${f.cluster} ${JSON.stringify(c.cluster)} already has a chain (${other}): put all its server names in one`);
    clusterAt.set(c.cluster, f.cluster);
  });
}

const listenerCodec = resourceCodec<GatewayListenerObject>(MESSAGE_NAME.listener, TYPE_URL.listener, gatewayListenerRules);
/** The wire bytes of a checked gateway listener. */
export const encodeGatewayListener = listenerCodec.encode;
/** Bytes back to the object form. */
export const decodeGatewayListener = listenerCodec.decode;
export const gatewayListenerToAny = listenerCodec.toAny;

const clusterCodec = resourceCodec<EnvoyEdsClusterObject>(MESSAGE_NAME.cluster, TYPE_URL.cluster, envoyEdsClusterRules);
/** The wire bytes of a checked gateway cluster. */
export const encodeGatewayCluster = clusterCodec.encode;
/** Bytes back to the object form. */
export const decodeGatewayCluster = clusterCodec.decode;
export const gatewayClusterToAny = clusterCodec.toAny;
