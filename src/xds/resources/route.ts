/**
 * RDS for proxyless gRPC clients: the RouteConfiguration a proxyless listener's HttpConnectionManager names (meshfed
 * names it after the listener, `HOST:PORT`): one virtual host whose domains match the channel authority (the host,
 * and host:port), one route matching every path (prefix '') to one cluster.
 *
 * Objects are in the form described in ../envoy-protos.ts. Checked against grpc-js-xds's RouteConfiguration
 * validation (A28: at most one `*` per domain, only at either end; a path specifier on every match; a cluster
 * action) and against the protos (checkedEncode).
 */
import { MESSAGE_NAME, TYPE_URL, assertEncodable, envoyType, resourceCodec } from '../envoy-protos.js';

export interface RouteObject {
  match: { prefix: string };
  route: { cluster: string };
}

export interface VirtualHostObject {
  name: string;
  domains: string[];
  routes: RouteObject[];
}

export interface RouteConfigurationObject {
  name: string;
  virtual_hosts: VirtualHostObject[];
}

/** The domains a proxyless client's authority `HOST:PORT` is matched against: the host and host:port. */
export function proxylessDomains(host: string, port: number): string[] {
  return [host, `${host}:${port}`];
}

/**
 * The RouteConfiguration `name` (meshfed: the listener name) with one virtual host (named `name` too) for
 * `virtualHostDomains` and one catch-all route (prefix '') to `clusterName`. Throws when the result breaks a grpc
 * rule or does not survive the protos (see assertProxylessRouteConfiguration).
 */
export function proxylessRouteConfiguration(name: string, virtualHostDomains: string[], clusterName: string): RouteConfigurationObject {
  const rc: RouteConfigurationObject = {
    name,
    virtual_hosts: [{ name, domains: [...virtualHostDomains], routes: [{ match: { prefix: '' }, route: { cluster: clusterName } }] }],
  };
  assertProxylessRouteConfiguration(rc);
  return rc;
}

const fail = (name: string, message: string): never => {
  throw new Error(`RouteConfiguration ${JSON.stringify(name)}: ${message}`);
};

/**
 * Throws a clear Error unless `rc` is one grpc-js-xds accepts and uses as meant: a non-empty name; at least one
 * virtual host; each with a non-empty name, non-empty domains that are unique across the configuration (grpc picks
 * the first most specific match, so a duplicate is dead) and have at most one `*`, at the start or the end; at least
 * one route, each with a prefix match and a non-empty cluster; and the protos accept it unchanged.
 */
export function assertProxylessRouteConfiguration(rc: RouteConfigurationObject): void {
  routeConfigurationRules(rc);
  assertEncodable(routeConfigurationType(), rc);
}

/** The rules of this resource type that grpc enforces, without the proto round trip. */
function routeConfigurationRules(rc: RouteConfigurationObject): void {
  const name = rc.name;
  if (typeof name !== 'string' || name === '') fail('', 'name is empty or not a string');
  const hosts = (rc.virtual_hosts as VirtualHostObject[] | undefined) ?? [];
  if (hosts.length === 0) fail(name, 'virtual_hosts is empty');
  const seenDomains = new Map<string, string>();
  hosts.forEach((vh, vi) => {
    const at = `virtual_hosts[${vi}]`;
    if (!vh.name) fail(name, `${at}.name is empty`);
    const domains = (vh.domains as string[] | undefined) ?? [];
    if (domains.length === 0) fail(name, `${at}.domains is empty`);
    domains.forEach((d, di) => {
      const where = `${at}.domains[${di}]`;
      if (d === '') fail(name, `${where} is empty`);
      const star = d.indexOf('*');
      if (star !== d.lastIndexOf('*')) fail(name, `${where} ${JSON.stringify(d)} has more than one wildcard`);
      if (star > 0 && star !== d.length - 1) fail(name, `${where} ${JSON.stringify(d)} has a wildcard in the middle`);
      const key = d.toLowerCase();
      const first = seenDomains.get(key);
      if (first !== undefined) fail(name, `${where} ${JSON.stringify(d)} duplicates ${first}`);
      seenDomains.set(key, where);
    });
    const routes = (vh.routes as RouteObject[] | undefined) ?? [];
    if (routes.length === 0) fail(name, `${at}.routes is empty`);
    routes.forEach((r, ri) => {
      const where = `${at}.routes[${ri}]`;
      if (typeof (r.match as RouteObject['match'] | undefined)?.prefix !== 'string') fail(name, `${where}.match.prefix is unset (grpc needs a path specifier)`);
      if (!(r.route as RouteObject['route'] | undefined)?.cluster) fail(name, `${where}.route.cluster is empty`);
    });
  });
}

const routeConfigurationType = () => envoyType(MESSAGE_NAME.routeConfiguration);

const codec = resourceCodec<RouteConfigurationObject>(MESSAGE_NAME.routeConfiguration, TYPE_URL.routeConfiguration, routeConfigurationRules);
/** The wire bytes of a checked resource. */
export const encodeRouteConfiguration = codec.encode;
/** Bytes back to the object form. */
export const decodeRouteConfiguration = codec.decode;
export const routeConfigurationToAny = codec.toAny;
