/**
 * LDS for proxyless gRPC clients: the Listener a `xds:///HOST:PORT` channel asks for (its name is the target
 * without the scheme, `HOST:PORT`), an `api_listener` holding an HttpConnectionManager that takes its routes over
 * RDS from the same ADS stream, with the router filter as its last (here: only) HTTP filter.
 *
 * Objects are in the form described in ../envoy-protos.ts. A nested google.protobuf.Any (the HCM inside the
 * listener, the Router inside the HCM) is, in that form, `{ type_url, value }` with `value` the *encoded* message as
 * base64 (TO_OBJECT_OPTIONS decodes bytes to base64 strings), left out when the message encodes to nothing (Router
 * {}). Each nested message is itself encoded with checkedEncode, so a misspelled key at any depth is refused.
 */
import {
  MESSAGE_NAME,
  TYPE_URL,
  assertEncodable,
  envoyType,
  checkedEncode,
  decodeToObject,
  resourceCodec,
} from '../envoy-protos.js';

/** envoy.config.core.v3.ApiVersion.V3 (checked against the protos in the tests). */
export const API_VERSION_V3 = 2;

/** The name grpc and Envoy give the router filter. */
export const ROUTER_FILTER_NAME = 'envoy.filters.http.router';

/** google.protobuf.Any nested in a resource, in the object form: value base64, left out when empty. */
export interface NestedAnyObject {
  type_url: string;
  value?: string;
}

/** envoy.config.core.v3.ConfigSource "over the ADS stream this came on", API v3. */
export interface AdsConfigSourceObject {
  ads: Record<string, never>;
  resource_api_version: number;
}

export interface HttpFilterObject {
  name: string;
  typed_config: NestedAnyObject;
}

export interface HttpConnectionManagerObject {
  rds: { config_source: AdsConfigSourceObject; route_config_name: string };
  http_filters: HttpFilterObject[];
}

export interface ListenerObject {
  name: string;
  api_listener: { api_listener: NestedAnyObject };
}

/** ConfigSource { ads: {}, resource_api_version: V3 }. */
export const adsConfigSource = (): AdsConfigSourceObject => ({ ads: {}, resource_api_version: API_VERSION_V3 });

/** Encode `obj` as the message `messageName` (checked) and wrap it as a nested Any with `typeUrl`. */
export function nestedAny(messageName: string, typeUrl: string, obj: object): NestedAnyObject {
  const bytes = checkedEncode(envoyType(messageName), obj);
  return bytes.length === 0 ? { type_url: typeUrl } : { type_url: typeUrl, value: Buffer.from(bytes).toString('base64') };
}

/** Decode a nested Any built by nestedAny (or read back from the wire) to the object form of `messageName`. */
export function decodeNestedAny(messageName: string, typeUrl: string, any: NestedAnyObject): unknown {
  if (any.type_url !== typeUrl) throw new Error(`expected an Any of ${typeUrl}, got ${JSON.stringify(any.type_url)}`);
  return decodeToObject(envoyType(messageName), Buffer.from(any.value ?? '', 'base64'));
}

const fail = (name: string, message: string): never => {
  throw new Error(`Listener ${JSON.stringify(name)}: ${message}`);
};

/** The HttpConnectionManager of a proxyless listener: RDS over ADS for `routeConfigName`, router filter only. */
export function proxylessHttpConnectionManager(routeConfigName: string): HttpConnectionManagerObject {
  if (routeConfigName === '') throw new Error('HttpConnectionManager: route_config_name is empty');
  return {
    rds: { config_source: adsConfigSource(), route_config_name: routeConfigName },
    http_filters: [{ name: ROUTER_FILTER_NAME, typed_config: nestedAny(MESSAGE_NAME.router, TYPE_URL.router, {}) }],
  };
}

/**
 * The Listener for proxyless gRPC target `name` (`HOST:PORT`, the `xds:///` target without its scheme), whose
 * HttpConnectionManager fetches RouteConfiguration `routeConfigName` over ADS. Throws when the result breaks a grpc
 * rule or does not survive the protos (see assertProxylessListener).
 */
export function proxylessListener(name: string, routeConfigName: string): ListenerObject {
  const hcm = proxylessHttpConnectionManager(routeConfigName);
  const listener: ListenerObject = {
    name,
    api_listener: { api_listener: nestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, hcm) },
  };
  assertProxylessListener(listener);
  return listener;
}

/**
 * Throws a clear Error unless `listener` is one grpc-js-xds accepts: a non-empty name without a scheme; an
 * api_listener that is an HttpConnectionManager using RDS over ADS with a non-empty route_config_name; HTTP
 * filters with unique names and typed configs, the router filter last and only last; and every level (Listener,
 * HCM, each filter config) survives the protos without dropping or changing anything.
 */
export function assertProxylessListener(listener: ListenerObject): void {
  proxylessListenerRules(listener);
  assertEncodable(envoyType(MESSAGE_NAME.listener), listener);
}

/** The rules of this resource type that grpc enforces, without the proto round trip. */
function proxylessListenerRules(listener: ListenerObject): void {
  const name = listener.name;
  if (typeof name !== 'string' || name === '') fail('', 'name is empty or not a string');
  if (name.includes('://')) fail(name, 'name must be the target without its scheme (xds:///HOST:PORT → HOST:PORT)');
  const any = (listener.api_listener as ListenerObject['api_listener'] | undefined)?.api_listener;
  if (!any) return fail(name, 'api_listener.api_listener is missing');
  if (any.type_url !== TYPE_URL.httpConnectionManager) fail(name, `api_listener.api_listener.type_url is ${JSON.stringify(any.type_url)}, not ${TYPE_URL.httpConnectionManager}`);
  const hcm = decodeNestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, any) as Partial<HttpConnectionManagerObject>;
  const rds = hcm.rds;
  if (!rds) return fail(name, 'HttpConnectionManager has no rds (proxyless listeners take routes over RDS)');
  if ((rds.config_source as AdsConfigSourceObject | undefined)?.ads === undefined) fail(name, 'HttpConnectionManager.rds.config_source.ads is unset (grpc needs ads or self)');
  if (rds.config_source.resource_api_version !== API_VERSION_V3) fail(name, 'HttpConnectionManager.rds.config_source.resource_api_version is not V3');
  if (!rds.route_config_name) fail(name, 'HttpConnectionManager.rds.route_config_name is empty');
  const filters = hcm.http_filters ?? [];
  if (filters.length === 0) fail(name, 'HttpConnectionManager has no http_filters (the router filter must be last)');
  const seen = new Set<string>();
  filters.forEach((f, i) => {
    const at = `HttpConnectionManager.http_filters[${i}]`;
    if (seen.has(f.name)) fail(name, `${at}: duplicate filter name ${JSON.stringify(f.name)}`);
    seen.add(f.name);
    const isRouter = (f.typed_config as NestedAnyObject | undefined)?.type_url === TYPE_URL.router;
    if (i < filters.length - 1 && isRouter) fail(name, `${at}: the router filter is before the end of the list`);
    if (i === filters.length - 1 && !isRouter) fail(name, `${at}: the last filter is not the router filter`);
    if (isRouter) assertEncodable(envoyType(MESSAGE_NAME.router), decodeNestedAny(MESSAGE_NAME.router, TYPE_URL.router, f.typed_config) as object);
  });
}

/** The HttpConnectionManager inside a proxyless listener, decoded. */
export function listenerHttpConnectionManager(listener: ListenerObject): HttpConnectionManagerObject {
  return decodeNestedAny(MESSAGE_NAME.httpConnectionManager, TYPE_URL.httpConnectionManager, listener.api_listener.api_listener) as HttpConnectionManagerObject;
}

const codec = resourceCodec<ListenerObject>(MESSAGE_NAME.listener, TYPE_URL.listener, proxylessListenerRules);
/** The wire bytes of a checked resource. */
export const encodeListener = codec.encode;
/** Bytes back to the object form. */
export const decodeListener = codec.decode;
export const listenerToAny = codec.toAny;
