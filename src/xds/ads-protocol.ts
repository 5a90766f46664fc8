/**
 * The ADS wire protocol as @grpc/proto-loader sees it: envoy/service/discovery/v3/ads.proto loaded from the
 * .proto files that ship inside @grpc/grpc-js-xds (deps/: envoy-api, xds, googleapis, protoc-gen-validate), and
 * small interfaces for the objects proto-loader produces and accepts with LOADER_OPTIONS.
 *
 * Object form (LOADER_OPTIONS): snake_case field names (keepCase), 64-bit integers and enums as they decode by
 * default, defaults left out (a missing string is `undefined`, not ''), `oneofs` set (so a Struct Value says which
 * `kind` it holds). Everything a peer sends is typed as optional: proto3 gives no guarantee a field is present.
 */
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import type { MethodDefinition, Options, PackageDefinition } from '@grpc/proto-loader';
import type { MethodDefinition as GrpcMethodDefinition } from '@grpc/grpc-js';
import { loadSync } from '@grpc/proto-loader';
import protobuf from 'protobufjs';

export const ADS_SERVICE_NAME = 'envoy.service.discovery.v3.AggregatedDiscoveryService';
export const ADS_METHOD_PATH = `/${ADS_SERVICE_NAME}/StreamAggregatedResources`;
export const ADS_DELTA_METHOD_PATH = `/${ADS_SERVICE_NAME}/DeltaAggregatedResources`;
export const ADS_PROTO_FILE = 'envoy/service/discovery/v3/ads.proto';

export const LOADER_OPTIONS: Options = Object.freeze({ keepCase: true, defaults: false, oneofs: true });

const require = createRequire(import.meta.url);

/** The four include directories under @grpc/grpc-js-xds/deps. */
export function adsIncludeDirs(): string[] {
  const deps = join(dirname(require.resolve('@grpc/grpc-js-xds/package.json')), 'deps');
  return ['envoy-api', 'xds', 'googleapis', 'protoc-gen-validate'].map((d) => join(deps, d));
}

/**
 * google.protobuf.Value (oneof kind), as far as meshfed reads it. The google.protobuf well-known types are
 * protobufjs built-ins with camelCase field names whatever keepCase says: `stringValue`, not `string_value`.
 */
export interface StructValueObject {
  kind?: string;
  stringValue?: string;
}

export interface StructObject {
  fields?: Record<string, StructValueObject | undefined>;
}

export interface NodeObject {
  id?: string;
  cluster?: string;
  metadata?: StructObject | null;
  locality?: { region?: string; zone?: string; sub_zone?: string } | null;
  user_agent_name?: string;
}

/** google.rpc.Status */
export interface RpcStatusObject {
  code?: number;
  message?: string;
}

export interface DiscoveryRequestObject {
  version_info?: string;
  node?: NodeObject | null;
  resource_names?: string[];
  type_url?: string;
  response_nonce?: string;
  error_detail?: RpcStatusObject | null;
}

/** google.protobuf.Any */
export interface AnyWireObject {
  type_url: string;
  value: Uint8Array;
}

export interface DiscoveryResponseObject {
  version_info?: string;
  resources?: AnyWireObject[];
  type_url?: string;
  nonce?: string;
}

export interface DeltaDiscoveryRequestObject {
  node?: NodeObject | null;
  type_url?: string;
  resource_names_subscribe?: string[];
  resource_names_unsubscribe?: string[];
  /** resource name → version the client already has (first request of a type on a stream, after a reconnect) */
  initial_resource_versions?: Record<string, string>;
  response_nonce?: string;
  error_detail?: RpcStatusObject | null;
}

/** envoy.service.discovery.v3.Resource, as far as meshfed fills it */
export interface DeltaResourceObject {
  name?: string;
  version?: string;
  resource?: AnyWireObject | null;
}

export interface DeltaDiscoveryResponseObject {
  system_version_info?: string;
  resources?: DeltaResourceObject[];
  type_url?: string;
  removed_resources?: string[];
  nonce?: string;
}

/** The StreamAggregatedResources method of a loaded package definition. */
export type AdsMethodDefinition = MethodDefinition<DiscoveryRequestObject, DiscoveryResponseObject>;
/** The DeltaAggregatedResources method of a loaded package definition. */
export type DeltaAdsMethodDefinition = MethodDefinition<DeltaDiscoveryRequestObject, DeltaDiscoveryResponseObject>;

/** The ADS service as loaded: its two methods. */
export type AdsServiceDefinition = {
  StreamAggregatedResources: AdsMethodDefinition;
  DeltaAggregatedResources: DeltaAdsMethodDefinition;
};

let packageDefinition: PackageDefinition | undefined;

/** ads.proto loaded with LOADER_OPTIONS (once). */
export function adsPackageDefinition(): PackageDefinition {
  packageDefinition ??= loadSync(ADS_PROTO_FILE, { ...LOADER_OPTIONS, includeDirs: adsIncludeDirs() });
  return packageDefinition;
}

/** The ADS service definition (for grpc Server.addService) and its two methods (SotW, delta). */
export function adsServiceDefinition(): { service: AdsServiceDefinition; method: AdsMethodDefinition; deltaMethod: DeltaAdsMethodDefinition } {
  const service = adsPackageDefinition()[ADS_SERVICE_NAME] as Partial<AdsServiceDefinition> | undefined;
  const method = service?.StreamAggregatedResources;
  const deltaMethod = service?.DeltaAggregatedResources;
  if (!method) throw new Error(`${ADS_PROTO_FILE}: ${ADS_SERVICE_NAME}/StreamAggregatedResources not found`);
  if (!deltaMethod) throw new Error(`${ADS_PROTO_FILE}: ${ADS_SERVICE_NAME}/DeltaAggregatedResources not found`);
  return { service: { StreamAggregatedResources: method, DeltaAggregatedResources: deltaMethod }, method, deltaMethod };
}

/** A DiscoveryResponse as the server writes it: already in wire form (see encodeDiscoveryResponse). */
export type EncodedDiscoveryResponse = Buffer;

/** The resources field (2) of a DiscoveryResponse holding one Any, per resource bytes: shared by every stream. */
const anyFields = new WeakMap<Uint8Array, { typeUrl: string; field: Buffer }>();

function anyField(typeUrl: string, value: Uint8Array): Buffer {
  const known = anyFields.get(value);
  if (known?.typeUrl === typeUrl) return known.field;
  const writer = protobuf.Writer.create();
  writer.uint32(18).fork().uint32(10).string(typeUrl).uint32(18).bytes(value).ldelim();
  const field = Buffer.from(writer.finish());
  anyFields.set(value, { typeUrl, field });
  return field;
}

/**
 * A DiscoveryResponse in wire form, without going through proto-loader's per-call encoding: each resource's Any is
 * encoded once per resource bytes and reused for every stream it is sent to, so a push to thousands of streams costs
 * little more than writing the same bytes to each (field order does not matter to a protobuf decoder).
 */
export function encodeDiscoveryResponse(res: { version_info: string; resources: readonly AnyWireObject[]; type_url: string; nonce: string }): EncodedDiscoveryResponse {
  return withTypeAndNonce(encodeResponseBody(res.version_info, res.resources), res.type_url, res.nonce);
}

/**
 * The part of a DiscoveryResponse that streams sharing a view share: version_info (field 1) and resources (field 2).
 * A stream completes it with withTypeAndNonce.
 */
export function encodeResponseBody(versionInfo: string, resources: readonly AnyWireObject[]): Buffer {
  const head = protobuf.Writer.create();
  if (versionInfo !== '') head.uint32(10).string(versionInfo);
  if (resources.length === 0) return Buffer.from(head.finish());
  return Buffer.concat([head.finish(), ...resources.map((r) => anyField(r.type_url, r.value))]);
}

/** type_url (field 4) with its tag and length, per type URL. */
const typeUrlFields = new Map<string, Buffer>();

function typeUrlField(typeUrl: string): Buffer {
  let field = typeUrlFields.get(typeUrl);
  if (field === undefined) {
    field = Buffer.from(protobuf.Writer.create().uint32(34).string(typeUrl).finish());
    // type URLs come from clients: only a bounded number are remembered
    if (typeUrlFields.size < 64) typeUrlFields.set(typeUrl, field);
  }
  return field;
}

/**
 * A complete DiscoveryResponse: `body` (encodeResponseBody) followed by type_url (field 4) and nonce (field 5), in one
 * buffer. Only the nonce is encoded per call (the server's nonces are short decimal strings; any string works).
 */
export function withTypeAndNonce(body: Uint8Array, typeUrl: string, nonce: string): EncodedDiscoveryResponse {
  const type = typeUrl === '' ? undefined : typeUrlField(typeUrl);
  const nonceBytes = nonce === '' ? 0 : Buffer.byteLength(nonce);
  const nonceField = nonceBytes === 0 ? 0 : 1 + varintLength(nonceBytes) + nonceBytes;
  const out = Buffer.allocUnsafe(body.length + (type?.length ?? 0) + nonceField);
  out.set(body, 0);
  let at = body.length;
  if (type) {
    out.set(type, at);
    at += type.length;
  }
  if (nonceBytes > 0) {
    out[at++] = 42;
    for (let n = nonceBytes; ; n >>>= 7) {
      if (n < 0x80) {
        out[at++] = n;
        break;
      }
      out[at++] = (n & 0x7f) | 0x80;
    }
    out.write(nonce, at, 'utf8');
  }
  return out;
}

const varintLength = (n: number): number => (n < 0x80 ? 1 : n < 0x4000 ? 2 : n < 0x20_0000 ? 3 : n < 0x1000_0000 ? 4 : 5);

/** The SotW method as the server registers it: responses are written already encoded. */
export function encodedResponseMethod(method: AdsMethodDefinition): GrpcMethodDefinition<DiscoveryRequestObject, EncodedDiscoveryResponse> {
  return {
    path: method.path,
    requestStream: method.requestStream,
    responseStream: method.responseStream,
    requestSerialize: method.requestSerialize,
    requestDeserialize: method.requestDeserialize,
    responseSerialize: (value: EncodedDiscoveryResponse) => value,
    responseDeserialize: (bytes: Buffer) => bytes,
  };
}
