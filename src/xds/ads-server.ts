/**
 * The ADS server: envoy.service.discovery.v3.AggregatedDiscoveryService on @grpc/grpc-js, both methods on one grpc
 * server: StreamAggregatedResources (state of the world, this module) and DeltaAggregatedResources (incremental,
 * ./ads-delta.ts). Resources are abstract: a ResourceProvider encodes them for a node and answers with a version
 * per (node, type, names); these modules only run the protocol.
 *
 * Shared by both stream kinds (the core below): the node check on the first request, the counters, the provider
 * subscription fan-out (a change of a type reaches every open stream of either kind), streams() and close(), and
 * the stream lifecycle (end, cancel, errors, a handler that throws ends that stream with INTERNAL).
 *
 * Protocol decisions (DESIGN.md, "xDS facts learned with the real client"; go-control-plane's SotW server where the
 * protocol leaves a choice):
 * - The node identity comes from the first request of a stream; later requests may omit `node` (a different node
 *   later on is ignored). A first request without `node`, or with an empty `node.id`, ends the stream with
 *   INVALID_ARGUMENT.
 * - State per stream and type URL: the subscribed names, the version and nonce last sent, the version last ACKed,
 *   the version last NACKed. Nonces are unique per stream across all types.
 * - A request with an empty response_nonce (first subscription, or a reconnect, which carries the client's last
 *   version_info with an empty nonce) is answered with the full current state for its names.
 * - A request whose response_nonce is not the last nonce sent for its type (including a nonce on a type the stream
 *   never got anything for) is stale and ignored entirely (counted).
 * - A request with the current nonce is an ACK (no error_detail: its version_info is recorded) or a NACK
 *   (error_detail: logged and counted; the last accepted version stays the client's config, and the NACKed version
 *   is not sent again). In both cases, if the resource_names changed, the new set is answered at once.
 * - A type URL the provider does not serve (resources() → undefined) is answered with an empty resource list and
 *   version '' (counted as unknownTypes), so the client is not left waiting; it is never pushed to.
 * - A request without type_url (ADS needs it) is ignored and counted as malformed. A message that cannot be decoded
 *   is refused by grpc-js itself (that stream ends with INTERNAL); no other stream notices.
 * - On a provider change of a type, every stream subscribed to that type is re-evaluated and pushed to (new version,
 *   new nonce) only if the provider's version for its names differs from the version last sent to it. When the
 *   provider names the resources that changed, a stream subscribed by name to none of them is not re-evaluated.
 * - The response body (version and resources) is encoded once per ResourceSet the provider hands out (and, for a push
 *   that carries only what changed, once per pair of sets), and shared by every stream sent it; only type_url and
 *   nonce are written per stream.
 * - A provider that throws is logged; the request (or push) is dropped for that stream only.
 * Delta xDS: see the decisions at the top of ./ads-delta.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { DeltaAdsStream, resourceVersion } from './ads-delta.js';
import {
  adsServiceDefinition,
  type AnyWireObject,
  type DeltaDiscoveryRequestObject,
  type DeltaDiscoveryResponseObject,
  type DiscoveryRequestObject,
  encodeResponseBody,
  encodedResponseMethod,
  type EncodedDiscoveryResponse,
  type NodeObject,
  withTypeAndNonce,
} from './ads-protocol.js';
import { TYPE_URL } from './envoy-protos.js';

/** Who a proxy is, from the `node` of the first request of its stream. */
export interface NodeIdentity {
  id: string;
  /** node.metadata.CLUSTER_ID */
  cluster?: string;
  /** node.metadata.NETWORK */
  network?: string;
  locality: { region: string; zone: string; subzone: string };
  /** node.user_agent_name ('gRPC Node', 'envoy', ...) */
  userAgent?: string;
  /** node.metadata.GENERATOR (Istio's proxyless bootstrap says 'grpc') */
  generator?: string;
}

export interface EncodedResource {
  name: string;
  typeUrl: string;
  /** the encoded message; never changed once handed out (delta streams cache a hash of it per Uint8Array) */
  value: Uint8Array;
  /**
   * This resource's own version, for delta streams (absent or '': they derive one from `value`). SotW streams use
   * the ResourceSet's version only.
   */
  version?: string;
}

/**
 * A provider may hand out the same ResourceSet object again while nothing in it changed (the server then reuses what
 * it encoded for it, across streams); a set, once handed out, is never changed.
 */
export interface ResourceSet {
  version: string;
  resources: EncodedResource[];
}

export interface ResourceProvider {
  /**
   * Encoded resources (Any) of a type for this node and these names ([] = wildcard for LDS/CDS) and the version of
   * that set; undefined when the provider does not serve the type.
   */
  resources(node: NodeIdentity, typeUrl: string, names: readonly string[]): ResourceSet | undefined;
  /**
   * A change: the server re-evaluates subscribed streams of that type. `names`, when given: the only resources of the
   * type that may have changed, appeared or gone, for any node (streams subscribed by name to none of them are not
   * re-evaluated); without it, any may have. Returns the unsubscribe function.
   */
  subscribe(listener: (typeUrl: string, names?: ReadonlySet<string>) => void): () => void;
}

export interface AdsServerOptions {
  host: string;
  /** 0: any free port */
  port: number;
  provider: ResourceProvider;
  logger?: Logger;
  /** grpc.max_concurrent_streams: HTTP/2 streams per connection (default 1000) */
  maxStreamsPerConnection?: number;
  /** grpc.max_receive_message_length: the largest request accepted (default 4 MiB) */
  maxMessageBytes?: number;
  /** told about streams, responses and answers (metrics) */
  observer?: AdsObserver;
}

/** A stream as observers see it, once its node is known. */
export interface AdsStreamInfo {
  readonly id: number;
  readonly node: NodeIdentity;
}

/** Hooks for metrics; called synchronously, so they must be cheap and must not throw. */
export interface AdsObserver {
  streamOpened?(stream: AdsStreamInfo): void;
  streamClosed?(stream: AdsStreamInfo): void;
  /** a response was written; `push`: because the provider announced a change */
  sent?(stream: AdsStreamInfo, typeUrl: string, nonce: string, push: boolean): void;
  /** the response with `nonce` was ACKed (`accepted`) or NACKed, `latencyMs` after it was sent */
  answered?(stream: AdsStreamInfo, typeUrl: string, nonce: string, accepted: boolean, latencyMs: number): void;
}

export interface AdsCounters {
  /** responses sent, for any reason */
  responses: number;
  /** responses sent because the provider announced a change */
  pushes: number;
  acks: number;
  nacks: number;
  /** requests ignored because their response_nonce was not the last one sent for their type */
  staleNonces: number;
  /** requests answered with an empty list because the provider does not serve their type */
  unknownTypes: number;
  /** requests ignored because they made no sense (no type_url), and streams refused (no node) */
  malformed: number;
  /** provider calls that threw */
  providerErrors: number;
}

export interface AdsServerHandle {
  /** the bound port */
  port: number;
  /** streams open now */
  streams(): number;
  /** plain counters (metrics wiring comes later) */
  readonly counters: Readonly<AdsCounters>;
  /** ends every stream, stops the server, unsubscribes from the provider */
  close(): Promise<void>;
}

export const DEFAULT_MAX_STREAMS_PER_CONNECTION = 1000;
export const DEFAULT_MAX_MESSAGE_BYTES = 4 * 1024 * 1024;

/** What the server core gives the protocol logic of one stream (SotW here, delta in ./ads-delta.ts). */
export interface AdsStreamContext<Res> {
  /** the stream's id, unique per server (for logs) */
  readonly id: number;
  readonly provider: ResourceProvider;
  /** shared by every stream of the server, of both kinds */
  readonly counters: AdsCounters;
  readonly logger: Logger;
  /** sends a response on the stream, counted (and a push when `push`); a failed write is logged, not thrown */
  respond(res: Res, typeUrl: string, nonce: string, push: boolean): void;
  /** the client ACKed (`accepted`) or NACKed the response with `nonce`: counted and observed */
  answered(typeUrl: string, nonce: string, accepted: boolean): void;
}

/**
 * The protocol logic of one stream. The core has checked the node of the first request, and calls these only while
 * the stream is open; an exception ends the stream with INTERNAL (a request) or is logged (a push).
 */
export interface AdsStreamHandler<Req> {
  /** a request; `node` is the identity from the stream's first request */
  onRequest(req: Req, node: NodeIdentity): void;
  /** the provider announced a change of `typeUrl` (of the resources `names` only, when given) */
  push(typeUrl: string, node: NodeIdentity, names?: ReadonlySet<string>): void;
}

interface TypeState {
  /** sorted, deduplicated; [] = wildcard (LDS/CDS) or nothing */
  names: string[];
  sentVersion: string;
  sentNonce: string;
  /** the set last sent, whole (including the resources a push left out as unchanged); undefined: an unknown type */
  sent: ResourceSet | undefined;
  ackedVersion?: string;
  nackedVersion?: string;
  /** the provider does not serve this type */
  unknown: boolean;
}

/** The identity in a Node, or undefined when it has none (no node, or an empty id). */
export function nodeIdentity(node: NodeObject | null | undefined): NodeIdentity | undefined {
  if (!node || typeof node.id !== 'string' || node.id === '') return undefined;
  const fields = node.metadata?.fields;
  const str = (key: string): string | undefined => {
    const v = fields?.[key];
    return v && typeof v.stringValue === 'string' && v.stringValue !== '' ? v.stringValue : undefined;
  };
  const s = (v: unknown): string => (typeof v === 'string' ? v : '');
  const identity: NodeIdentity = {
    id: node.id,
    locality: { region: s(node.locality?.region), zone: s(node.locality?.zone), subzone: s(node.locality?.sub_zone) },
  };
  const cluster = str('CLUSTER_ID');
  const network = str('NETWORK');
  const generator = str('GENERATOR');
  if (cluster !== undefined) identity.cluster = cluster;
  if (network !== undefined) identity.network = network;
  if (generator !== undefined) identity.generator = generator;
  if (typeof node.user_agent_name === 'string' && node.user_agent_name !== '') identity.userAgent = node.user_agent_name;
  return identity;
}

/**
 * Types whose SotW responses must hold every resource (leaving one out deletes it): Listener and Cluster. For the
 * others (RouteConfiguration, ClusterLoadAssignment) a push carries only the resources that changed.
 */
const ALL_REQUIRED: ReadonlySet<string> = new Set([TYPE_URL.listener, TYPE_URL.cluster]);

const normalizeNames = (names: unknown): string[] =>
  Array.isArray(names) ? [...new Set(names.filter((n): n is string => typeof n === 'string'))].sort() : [];

const sameNames = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((n, i) => n === b[i]);

/** `names` (a request's resource_names) normalized; `known` itself when they are the same (the usual ACK). */
function namesOf(names: unknown, known: string[] | undefined): string[] {
  if (known !== undefined && Array.isArray(names) && names.length === known.length) {
    let same = true;
    for (let i = 0; i < known.length; i++) {
      if (names[i] !== known[i]) {
        same = false;
        break;
      }
    }
    if (same) return known;
  }
  return normalizeNames(names);
}

const EMPTY_BODY = encodeResponseBody('', []);
/** per set: its response body (version and every resource), shared by every stream that is sent the whole set */
const wholeBodies = new WeakMap<ResourceSet, Buffer>();
/** per set, per set sent before it: the body of a push that carries only what changed in between */
const changedBodies = new WeakMap<ResourceSet, WeakMap<ResourceSet, Buffer>>();

const toAnyWire = (r: EncodedResource): AnyWireObject => ({ type_url: r.typeUrl, value: r.value });

function wholeBody(set: ResourceSet): Buffer {
  let body = wholeBodies.get(set);
  if (body === undefined) {
    body = encodeResponseBody(set.version, set.resources.map(toAnyWire));
    wholeBodies.set(set, body);
  }
  return body;
}

/**
 * The body of a push of `set` to a stream last sent `previous` (same type and names), for a type whose resources are
 * not all required: only the resources whose version differs; all of them when `set` has a resource `previous` had
 * not. Shared by every stream that goes from `previous` to `set`.
 */
function changedBody(set: ResourceSet, previous: ResourceSet): Buffer {
  let byPrevious = changedBodies.get(set);
  let body = byPrevious?.get(previous);
  if (body !== undefined) return body;
  const before = new Map<string, string>();
  for (const r of previous.resources) before.set(r.name, resourceVersion(r));
  const changed: EncodedResource[] = [];
  let all = false;
  for (const r of set.resources) {
    const version = before.get(r.name);
    if (version === undefined) {
      all = true;
      break;
    }
    if (version !== resourceVersion(r)) changed.push(r);
  }
  body = all || changed.length === set.resources.length ? wholeBody(set) : encodeResponseBody(set.version, changed.map(toAnyWire));
  if (!byPrevious) {
    byPrevious = new WeakMap();
    changedBodies.set(set, byPrevious);
  }
  byPrevious.set(previous, body);
  return body;
}

/** The state-of-the-world protocol logic of one stream. */
class SotwStream implements AdsStreamHandler<DiscoveryRequestObject> {
  readonly types = new Map<string, TypeState>();
  private nonce = 0;

  constructor(private readonly context: AdsStreamContext<EncodedDiscoveryResponse>) {}

  onRequest(req: DiscoveryRequestObject, node: NodeIdentity): void {
    const { counters, logger, id } = this.context;
    const typeUrl = typeof req.type_url === 'string' ? req.type_url : '';
    if (typeUrl === '') {
      counters.malformed++;
      logger.warn({ stream: id, node: node.id }, 'ADS: request without type_url ignored');
      return;
    }
    const nonce = typeof req.response_nonce === 'string' ? req.response_nonce : '';
    const state = this.types.get(typeUrl);
    const names = namesOf(req.resource_names, state?.names);

    if (nonce === '') {
      // a new subscription, a re-request, or a reconnect carrying an old version_info: the full current state
      this.respond(node, typeUrl, names, false);
      return;
    }
    if (state === undefined || nonce !== state.sentNonce) {
      counters.staleNonces++;
      logger.debug({ stream: id, node: node.id, typeUrl, nonce, current: state?.sentNonce }, 'ADS: stale nonce ignored');
      return;
    }
    this.context.answered(typeUrl, nonce, !req.error_detail);
    if (req.error_detail) {
      state.nackedVersion = state.sentVersion;
      logger.warn(
        {
          stream: id,
          node: node.id,
          cluster: node.cluster,
          typeUrl,
          rejectedVersion: state.sentVersion,
          acceptedVersion: state.ackedVersion,
          code: req.error_detail.code,
          error: typeof req.error_detail.message === 'string' ? req.error_detail.message.slice(0, 2000) : undefined,
        },
        'ADS: NACK',
      );
    } else {
      state.ackedVersion = typeof req.version_info === 'string' ? req.version_info : '';
    }
    if (names !== state.names && !sameNames(names, state.names)) this.respond(node, typeUrl, names, false);
  }

  /**
   * Answers `typeUrl` for `names` with the provider's current set. `onlyIfChanged`: a push, sent only when the
   * provider's version differs from the version last sent.
   */
  respond(node: NodeIdentity, typeUrl: string, names: string[], onlyIfChanged: boolean): void {
    const { counters, logger, provider, id } = this.context;
    let set: ResourceSet | undefined;
    try {
      set = provider.resources(node, typeUrl, names);
    } catch (err) {
      counters.providerErrors++;
      logger.error({ stream: id, node: node.id, typeUrl, err }, 'ADS: resource provider failed');
      return;
    }
    let state = this.types.get(typeUrl);
    if (onlyIfChanged && (state === undefined || state.unknown || set === undefined || set.version === state.sentVersion)) return;
    if (set === undefined) counters.unknownTypes++;
    // a push of a type whose resources are not all required carries only what changed since this stream's last response
    const body = set === undefined ? EMPTY_BODY : onlyIfChanged && state?.sent !== undefined && !ALL_REQUIRED.has(typeUrl) ? changedBody(set, state.sent) : wholeBody(set);
    const nonce = String(++this.nonce);
    if (state === undefined) {
      state = { names, sentVersion: '', sentNonce: '', sent: undefined, unknown: false };
      this.types.set(typeUrl, state);
    }
    state.names = names;
    state.sentVersion = set?.version ?? '';
    state.sentNonce = nonce;
    state.sent = set;
    state.unknown = set === undefined;
    this.context.respond(withTypeAndNonce(body, typeUrl, nonce), typeUrl, nonce, onlyIfChanged);
  }

  /** Re-evaluates a subscribed type after a provider change (of `changed` only, when given). */
  push(typeUrl: string, node: NodeIdentity, changed?: ReadonlySet<string>): void {
    const state = this.types.get(typeUrl);
    if (!state || state.unknown) return;
    // subscribed by name to none of the changed resources: nothing of this stream's can have changed
    if (changed !== undefined && state.names.length > 0 && !state.names.some((name) => changed.has(name))) return;
    this.respond(node, typeUrl, state.names, true);
  }
}

/** An open stream of either kind, as the core tracks it. */
interface OpenStream {
  readonly id: number;
  push(typeUrl: string, names: ReadonlySet<string> | undefined): void;
  /** ends the stream (OK) */
  end(): void;
}

class AdsServerCore {
  readonly counters: AdsCounters = { responses: 0, pushes: 0, acks: 0, nacks: 0, staleNonces: 0, unknownTypes: 0, malformed: 0, providerErrors: 0 };
  readonly streams = new Set<OpenStream>();
  private nextId = 0;

  constructor(
    readonly provider: ResourceProvider,
    readonly logger: Logger,
    readonly observer: AdsObserver = {},
  ) {}

  /**
   * Runs one stream: checks the node of its first request (none, or an empty id: INVALID_ARGUMENT), then hands every
   * request and every push to the handler `create` makes. `label` prefixes the log messages ('ADS', 'ADS delta');
   * `requestName` names the request message in the INVALID_ARGUMENT status.
   */
  serve<Req extends { node?: NodeObject | null }, Res>(
    call: grpc.ServerDuplexStream<Req, Res>,
    { label, requestName }: { label: string; requestName: string },
    create: (context: AdsStreamContext<Res>) => AdsStreamHandler<Req>,
  ): void {
    const { counters, logger, provider, observer } = this;
    const id = ++this.nextId;
    let node: NodeIdentity | undefined;
    let info: AdsStreamInfo | undefined;
    let closed = false;
    /** per type: the last response sent and when, for the answer's latency */
    const lastSent = new Map<string, { nonce: string; at: number }>();
    const handler = create({
      id,
      provider,
      counters,
      logger,
      respond: (res, typeUrl, nonce, push) => {
        counters.responses++;
        if (push) counters.pushes++;
        if (observer.answered) lastSent.set(typeUrl, { nonce, at: performance.now() });
        try {
          call.write(res);
        } catch (err) {
          logger.warn({ stream: id, node: node?.id, typeUrl, err }, `${label}: write failed`);
        }
        if (info) observer.sent?.(info, typeUrl, nonce, push);
      },
      answered: (typeUrl, nonce, accepted) => {
        if (accepted) counters.acks++;
        else counters.nacks++;
        const sent = lastSent.get(typeUrl);
        if (info && sent?.nonce === nonce) observer.answered?.(info, typeUrl, nonce, accepted, performance.now() - sent.at);
      },
    });
    const forget = (): void => {
      if (!closed && info) observer.streamClosed?.(info);
      closed = true;
      this.streams.delete(stream);
    };
    const fail = (code: grpc.status, details: string): void => {
      if (closed) return;
      forget();
      try {
        call.emit('error', { code, details });
      } catch {
        // the call is already gone
      }
    };
    const stream: OpenStream = {
      id,
      push: (typeUrl, names) => {
        if (!closed && node !== undefined) handler.push(typeUrl, node, names);
      },
      end: () => {
        if (closed) return;
        forget();
        try {
          call.end();
        } catch {
          // the call is already gone
        }
      },
    };
    this.streams.add(stream);
    call.on('data', (req: Req) => {
      if (closed) return;
      try {
        if (node === undefined) {
          node = nodeIdentity(req.node);
          if (node === undefined) {
            counters.malformed++;
            logger.warn({ stream: id }, `${label}: first request without node (or node.id); closing the stream`);
            fail(grpc.status.INVALID_ARGUMENT, `the first ${requestName} of a stream must carry node with a non-empty id`);
            return;
          }
          info = { id, node };
          observer.streamOpened?.(info);
          logger.debug({ stream: id, node }, `${label}: stream opened`);
        }
        handler.onRequest(req, node);
      } catch (err) {
        logger.error({ stream: id, err }, `${label}: request handling failed`);
        fail(grpc.status.INTERNAL, 'internal error');
      }
    });
    call.on('end', () => {
      stream.end();
    });
    call.on('error', (err: Error) => {
      logger.debug({ stream: id, err: err.message }, `${label}: stream error`);
      forget();
    });
    call.on('cancelled', forget);
    call.on('close', forget);
  }

  onChange(typeUrl: string, names: ReadonlySet<string> | undefined): void {
    for (const stream of [...this.streams]) {
      try {
        stream.push(typeUrl, names);
      } catch (err) {
        this.logger.error({ stream: stream.id, typeUrl, err }, 'ADS: push failed');
      }
    }
  }
}

/** Starts the ADS server (SotW and delta); resolves once it listens. */
export async function startAdsServer(options: AdsServerOptions): Promise<AdsServerHandle> {
  const logger = options.logger ?? SILENT_LOGGER;
  const core = new AdsServerCore(options.provider, logger, options.observer);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': options.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
  });
  const { service: loaded } = adsServiceDefinition();
  const service = { ...loaded, StreamAggregatedResources: encodedResponseMethod(loaded.StreamAggregatedResources) };
  const implementation: grpc.UntypedServiceImplementation = {
    StreamAggregatedResources: (call: grpc.ServerDuplexStream<DiscoveryRequestObject, EncodedDiscoveryResponse>) => {
      core.serve(call, { label: 'ADS', requestName: 'DiscoveryRequest' }, (context) => new SotwStream(context));
    },
    DeltaAggregatedResources: (call: grpc.ServerDuplexStream<DeltaDiscoveryRequestObject, DeltaDiscoveryResponseObject>) => {
      core.serve(call, { label: 'ADS delta', requestName: 'DeltaDiscoveryRequest' }, (context) => new DeltaAdsStream(context));
    },
  };
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
  const unsubscribe = options.provider.subscribe((typeUrl, names) => {
    core.onChange(typeUrl, names);
  });
  logger.info({ host: options.host, port }, 'ADS server listening');
  let closing: Promise<void> | undefined;
  return {
    port,
    streams: () => core.streams.size,
    counters: core.counters,
    close: () => {
      closing ??= (async () => {
        unsubscribe();
        for (const stream of [...core.streams]) stream.end();
        await new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            server.forceShutdown();
            resolve();
          }, 2000);
          server.tryShutdown(() => {
            clearTimeout(timer);
            resolve();
          });
        });
      })();
      return closing;
    },
  };
}
