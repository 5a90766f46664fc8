/**
 * The Envoy v3 protos, loaded once (lazily) into a protobufjs Root, and the checked conversion every xDS resource
 * goes through before it is encoded.
 *
 * The .proto files are the ones that ship inside `@grpc/grpc-js-xds` (deps/: envoy-api, xds, googleapis,
 * protoc-gen-validate), so meshfed encodes with exactly the schema its proxyless clients decode with.
 * `google/protobuf/descriptor.proto` comes from protobufjs's own copy; the other well-known types are protobufjs
 * built-ins.
 *
 * Object form (meshfed's choice, used by every resource builder): protobufjs "message-like" plain objects with
 * the proto's field names (snake_case, loaded with `keepCase`), enums as numbers, 64-bit integers as numbers, and
 * proto3 default scalars (0, '') left out by the builders (the canonical proto3 encoding; protobufjs would encode an
 * explicit 0 too, and decode it back). That is the form `Type.verify` accepts and the form decoding with
 * TO_OBJECT_OPTIONS gives back, so a built object is checked for fields `fromObject` dropped silently (misspelled
 * keys) by a deep comparison with its own wire round trip.
 */
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, isAbsolute, join } from 'node:path';
import protobuf from 'protobufjs';
import type { IConversionOptions, Root, Type } from 'protobufjs';

/** Files loaded into the root; later resources add theirs here. */
export const ENVOY_PROTO_FILES: readonly string[] = [
  'envoy/config/endpoint/v3/endpoint.proto',
  'envoy/config/listener/v3/listener.proto',
  'envoy/config/route/v3/route.proto',
  'envoy/config/cluster/v3/cluster.proto',
  'envoy/extensions/filters/network/http_connection_manager/v3/http_connection_manager.proto',
  'envoy/extensions/filters/http/router/v3/router.proto',
  'envoy/extensions/transport_sockets/tls/v3/tls.proto',
  'envoy/extensions/filters/listener/tls_inspector/v3/tls_inspector.proto',
  'envoy/extensions/filters/network/tcp_proxy/v3/tcp_proxy.proto',
];

export const TYPE_URL = {
  clusterLoadAssignment: 'type.googleapis.com/envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'type.googleapis.com/envoy.config.listener.v3.Listener',
  routeConfiguration: 'type.googleapis.com/envoy.config.route.v3.RouteConfiguration',
  cluster: 'type.googleapis.com/envoy.config.cluster.v3.Cluster',
  httpConnectionManager: 'type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'type.googleapis.com/envoy.extensions.filters.http.router.v3.Router',
  upstreamTlsContext: 'type.googleapis.com/envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  tlsInspector: 'type.googleapis.com/envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  tcpProxy: 'type.googleapis.com/envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
} as const;

export const MESSAGE_NAME = {
  clusterLoadAssignment: 'envoy.config.endpoint.v3.ClusterLoadAssignment',
  listener: 'envoy.config.listener.v3.Listener',
  routeConfiguration: 'envoy.config.route.v3.RouteConfiguration',
  cluster: 'envoy.config.cluster.v3.Cluster',
  httpConnectionManager: 'envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager',
  router: 'envoy.extensions.filters.http.router.v3.Router',
  upstreamTlsContext: 'envoy.extensions.transport_sockets.tls.v3.UpstreamTlsContext',
  tlsInspector: 'envoy.extensions.filters.listener.tls_inspector.v3.TlsInspector',
  tcpProxy: 'envoy.extensions.filters.network.tcp_proxy.v3.TcpProxy',
} as const;

/** envoy.config.core.v3.HealthStatus values meshfed emits (checked against the loaded enum on first load). */
export const HEALTH_STATUS = { HEALTHY: 1, UNHEALTHY: 2, DRAINING: 3 } as const;
export type HealthStatusName = keyof typeof HEALTH_STATUS;
export type HealthStatusValue = (typeof HEALTH_STATUS)[HealthStatusName];

/** The options every toObject uses: see the object form above. */
export const TO_OBJECT_OPTIONS: IConversionOptions = Object.freeze({
  enums: Number,
  longs: Number,
  bytes: String,
  defaults: false,
  arrays: false,
  objects: false,
  oneofs: false,
});

const require = createRequire(import.meta.url);

/** The include directories: the four under @grpc/grpc-js-xds/deps, then protobufjs (for descriptor.proto). */
export function envoyIncludeDirs(): string[] {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  const protobufjsDir = dirname(require.resolve('protobufjs/package.json'));
  return [...['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d)), protobufjsDir];
}

let root: Root | undefined;

/** The Root with ENVOY_PROTO_FILES loaded and resolved; loaded on first call. */
export function envoyRoot(): Root {
  if (root) return root;
  const dirs = envoyIncludeDirs();
  const r = new protobuf.Root();
  r.resolvePath = (_origin: string, target: string): string => {
    if (isAbsolute(target)) return target;
    for (const dir of dirs) {
      const candidate = join(dir, target);
      if (existsSync(candidate)) return candidate;
    }
    // not on disk: a protobufjs built-in (google/protobuf/any.proto, wrappers.proto, ...), or a clear ENOENT
    return target;
  };
  r.loadSync([...ENVOY_PROTO_FILES], { keepCase: true });
  r.resolveAll();
  const health = r.lookupEnum('envoy.config.core.v3.HealthStatus').values;
  for (const [name, value] of Object.entries(HEALTH_STATUS)) {
    if (health[name] !== value) throw new Error(`envoy.config.core.v3.HealthStatus.${name} is ${String(health[name])} in the protos, meshfed assumes ${value}`);
  }
  root = r;
  return r;
}

/** A message type of the loaded protos, by full name (without the leading dot). */
export function envoyType(fullName: string): Type {
  return envoyRoot().lookupType(fullName);
}

export const clusterLoadAssignmentType = (): Type => envoyType(MESSAGE_NAME.clusterLoadAssignment);

/** A plain object in the object form above. */
export type ProtoObject = object;

/** google.protobuf.Any as it goes on the wire inside a DiscoveryResponse. */
export interface AnyObject {
  type_url: string;
  value: Uint8Array;
}

/**
 * Encode `obj` as `type`, refusing what would be lost or mangled on the way: `verify` errors (wrong types), then
 * any difference between `obj` and the object decoded back from the bytes (a misspelled or unknown key, which
 * `fromObject` drops silently; a coerced value). Throws an
 * Error naming the message and the field path. Returns the bytes, so decode(encode(obj)) equals obj always.
 */
export function checkedEncode(type: Type, obj: ProtoObject): Uint8Array {
  const known = checked.get(obj);
  if (known?.type === type) return known.bytes;
  const what = type.fullName.replace(/^\./, '');
  const invalid = type.verify(obj);
  if (invalid !== null) throw new Error(`${what}: invalid field: ${invalid}`);
  const bytes = type.encode(type.fromObject(obj)).finish();
  const diff = firstDifference(obj, decodeToObject(type, bytes), []);
  if (diff !== undefined) throw new Error(`${what}: field ${diff} (fromObject drops misspelled or unknown fields silently)`);
  checked.set(obj, { type, bytes });
  return bytes;
}

/**
 * Objects checkedEncode has checked, with their bytes: a builder checks what it builds and the codec encodes the
 * same object right after, so the expensive round trip runs once. Built objects are never mutated afterwards.
 */
const checked = new WeakMap<object, { type: Type; bytes: Uint8Array }>();

/** The wire form of one resource type. */
export interface ResourceCodec<T> {
  /** `check`, then checkedEncode */
  encode: (value: T) => Uint8Array;
  decode: (bytes: Uint8Array) => T;
  /** google.protobuf.Any for a DiscoveryResponse's resources */
  toAny: (value: T) => AnyObject;
}

/**
 * One home for every resource type's encode/decode/Any: `check` holds that type's own rules (what clients NACK).
 * `encoder` replaces checkedEncode for a hot type that has its own strict encoder (one that refuses unknown keys).
 */
export function resourceCodec<T extends ProtoObject>(messageName: string, typeUrl: string, check: (value: T) => void, encoder?: (value: T) => Uint8Array): ResourceCodec<T> {
  const type = (): Type => envoyType(messageName);
  const encode = (value: T): Uint8Array => {
    check(value);
    return encoder ? encoder(value) : checkedEncode(type(), value);
  };
  return { encode, decode: (bytes) => decodeToObject(type(), bytes) as T, toAny: (value) => ({ type_url: typeUrl, value: encode(value) }) };
}

/** checkedEncode, for when only the check matters. */
export function assertEncodable(type: Type, obj: ProtoObject): void {
  checkedEncode(type, obj);
}

/** Decode to the object form (TO_OBJECT_OPTIONS). */
export function decodeToObject(type: Type, bytes: Uint8Array): unknown {
  return type.toObject(type.decode(bytes), TO_OBJECT_OPTIONS);
}

/**
 * A description of the first difference between `want` (built) and `got` (round-tripped), or undefined. `path` is
 * the stack of keys down to here, joined only when a difference is found (this runs on every encode).
 */
function firstDifference(want: unknown, got: unknown, path: (string | number)[]): string | undefined {
  const at = (): string => (path.length === 0 ? '(root)' : formatPath(path));
  if (Array.isArray(want)) {
    if (!Array.isArray(got)) return `${at()}: expected a list, got ${describe(got)}`;
    if (want.length !== got.length) return `${at()}: ${want.length} items became ${got.length}`;
    for (let i = 0; i < want.length; i++) {
      path.push(i);
      const d = firstDifference(want[i], got[i], path);
      path.pop();
      if (d !== undefined) return d;
    }
    return undefined;
  }
  if (want instanceof Uint8Array) {
    return got instanceof Uint8Array && Buffer.from(want).equals(Buffer.from(got)) ? undefined : `${at()}: bytes changed`;
  }
  if (isRecord(want)) {
    if (!isRecord(got)) return `${at()}: expected a message, got ${describe(got)}`;
    let wantKeys = 0;
    for (const key in want) {
      wantKeys++;
      path.push(key);
      let d: string | undefined;
      if (!(key in got)) {
        d = want[key] === undefined ? `${at()}: undefined value (leave the key out)` : `${at()}: dropped (not a field of this message, or a default value)`;
      } else {
        d = firstDifference(want[key], got[key], path);
      }
      path.pop();
      if (d !== undefined) return d;
    }
    const gotKeys = Object.keys(got).length;
    if (gotKeys !== wantKeys) {
      for (const key of Object.keys(got)) {
        if (!(key in want)) return `${formatPath([...path, key])}: appeared in the round trip`;
      }
    }
    return undefined;
  }
  return Object.is(want, got) ? undefined : `${at()}: ${describe(want)} became ${describe(got)}`;
}

const formatPath = (path: readonly (string | number)[]): string =>
  path.map((part, i) => (typeof part === 'number' ? `[${String(part)}]` : i === 0 ? part : `.${part}`)).join('');

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v) && !(v instanceof Uint8Array);
}

function describe(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint' || v === null || v === undefined) return String(v);
  return Array.isArray(v) ? 'a list' : typeof v;
}
