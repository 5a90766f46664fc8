/**
 * The state-of-the-world ADS server: envoy.service.discovery.v3.AggregatedDiscoveryService/StreamAggregatedResources
 * on @grpc/grpc-js. Resources are abstract: a ResourceProvider encodes them for a node and answers with a version
 * per (node, type, names); this module only runs the protocol.
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
 *   new nonce) only if the provider's version for its names differs from the version last sent to it.
 * - A provider that throws is logged; the request (or push) is dropped for that stream only.
 * Delta xDS (DeltaAggregatedResources) is not implemented yet: grpc-js answers it with UNIMPLEMENTED.
 */
import * as grpc from '@grpc/grpc-js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import {
  adsServiceDefinition,
  type AnyWireObject,
  type DiscoveryRequestObject,
  type DiscoveryResponseObject,
  type NodeObject,
} from './ads-protocol.js';

/** Who a proxy is, from the `node` of the first request of its stream. */
export interface NodeIdentity {
  id: string;
  /** node.metadata.CLUSTER_ID */
  cluster?: string;
  /** node.metadata.NETWORK */
  network?: string;
  locality: { region: string; zone: string; subzone: string };
}

export interface EncodedResource {
  name: string;
  typeUrl: string;
  value: Uint8Array;
}

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
  /** A change: the server re-evaluates subscribed streams of that type. Returns the unsubscribe function. */
  subscribe(listener: (typeUrl: string) => void): () => void;
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

type AdsCall = grpc.ServerDuplexStream<DiscoveryRequestObject, DiscoveryResponseObject>;

interface TypeState {
  /** sorted, deduplicated; [] = wildcard (LDS/CDS) or nothing */
  names: string[];
  sentVersion: string;
  sentNonce: string;
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
  if (cluster !== undefined) identity.cluster = cluster;
  if (network !== undefined) identity.network = network;
  return identity;
}

const normalizeNames = (names: unknown): string[] =>
  Array.isArray(names) ? [...new Set(names.filter((n): n is string => typeof n === 'string'))].sort() : [];

const sameNames = (a: readonly string[], b: readonly string[]): boolean => a.length === b.length && a.every((n, i) => n === b[i]);

class AdsStream {
  node: NodeIdentity | undefined;
  readonly types = new Map<string, TypeState>();
  private nonce = 0;
  closed = false;

  constructor(
    readonly id: number,
    private readonly call: AdsCall,
    private readonly server: AdsServerCore,
  ) {}

  onRequest(req: DiscoveryRequestObject): void {
    if (this.closed) return;
    const { counters, logger } = this.server;
    if (this.node === undefined) {
      const node = nodeIdentity(req.node);
      if (!node) {
        counters.malformed++;
        logger.warn({ stream: this.id }, 'ADS: first request without node (or node.id); closing the stream');
        this.fail(grpc.status.INVALID_ARGUMENT, 'the first DiscoveryRequest of a stream must carry node with a non-empty id');
        return;
      }
      this.node = node;
      logger.debug({ stream: this.id, node }, 'ADS: stream opened');
    }
    const typeUrl = typeof req.type_url === 'string' ? req.type_url : '';
    if (typeUrl === '') {
      counters.malformed++;
      logger.warn({ stream: this.id, node: this.node.id }, 'ADS: request without type_url ignored');
      return;
    }
    const nonce = typeof req.response_nonce === 'string' ? req.response_nonce : '';
    const names = normalizeNames(req.resource_names);
    const state = this.types.get(typeUrl);

    if (nonce === '') {
      // a new subscription, a re-request, or a reconnect carrying an old version_info: the full current state
      this.respond(typeUrl, names, false);
      return;
    }
    if (state === undefined || nonce !== state.sentNonce) {
      counters.staleNonces++;
      logger.debug({ stream: this.id, node: this.node.id, typeUrl, nonce, current: state?.sentNonce }, 'ADS: stale nonce ignored');
      return;
    }
    if (req.error_detail) {
      counters.nacks++;
      state.nackedVersion = state.sentVersion;
      logger.warn(
        {
          stream: this.id,
          node: this.node.id,
          cluster: this.node.cluster,
          typeUrl,
          rejectedVersion: state.sentVersion,
          acceptedVersion: state.ackedVersion,
          code: req.error_detail.code,
          error: typeof req.error_detail.message === 'string' ? req.error_detail.message.slice(0, 2000) : undefined,
        },
        'ADS: NACK',
      );
    } else {
      counters.acks++;
      state.ackedVersion = typeof req.version_info === 'string' ? req.version_info : '';
    }
    if (!sameNames(names, state.names)) this.respond(typeUrl, names, false);
  }

  /**
   * Answers `typeUrl` for `names` with the provider's current set. `onlyIfChanged`: a push, sent only when the
   * provider's version differs from the version last sent.
   */
  respond(typeUrl: string, names: string[], onlyIfChanged: boolean): void {
    const node = this.node;
    if (this.closed || node === undefined) return;
    const { counters, logger, provider } = this.server;
    let set: ResourceSet | undefined;
    try {
      set = provider.resources(node, typeUrl, names);
    } catch (err) {
      counters.providerErrors++;
      logger.error({ stream: this.id, node: node.id, typeUrl, err }, 'ADS: resource provider failed');
      return;
    }
    const previous = this.types.get(typeUrl);
    if (onlyIfChanged && (previous === undefined || previous.unknown || set === undefined || set.version === previous.sentVersion)) return;
    if (set === undefined) counters.unknownTypes++;
    const version = set?.version ?? '';
    const resources: AnyWireObject[] = (set?.resources ?? []).map((r) => ({ type_url: r.typeUrl, value: r.value }));
    const nonce = String(++this.nonce);
    const state: TypeState = { names, sentVersion: version, sentNonce: nonce, unknown: set === undefined };
    if (previous?.ackedVersion !== undefined) state.ackedVersion = previous.ackedVersion;
    if (previous?.nackedVersion !== undefined) state.nackedVersion = previous.nackedVersion;
    this.types.set(typeUrl, state);
    counters.responses++;
    if (onlyIfChanged) counters.pushes++;
    try {
      this.call.write({ version_info: version, resources, type_url: typeUrl, nonce });
    } catch (err) {
      logger.warn({ stream: this.id, node: node.id, typeUrl, err }, 'ADS: write failed');
    }
  }

  /** Re-evaluates a subscribed type after a provider change. */
  push(typeUrl: string): void {
    const state = this.types.get(typeUrl);
    if (state && !state.unknown) this.respond(typeUrl, state.names, true);
  }

  fail(code: grpc.status, details: string): void {
    if (this.closed) return;
    this.server.forget(this);
    try {
      this.call.emit('error', { code, details });
    } catch {
      // the call is already gone
    }
  }

  end(): void {
    if (this.closed) return;
    this.server.forget(this);
    try {
      this.call.end();
    } catch {
      // the call is already gone
    }
  }

  markClosed(): void {
    this.closed = true;
  }
}

class AdsServerCore {
  readonly counters: AdsCounters = { responses: 0, pushes: 0, acks: 0, nacks: 0, staleNonces: 0, unknownTypes: 0, malformed: 0, providerErrors: 0 };
  readonly streams = new Set<AdsStream>();
  private nextId = 0;

  constructor(
    readonly provider: ResourceProvider,
    readonly logger: Logger,
  ) {}

  handle(call: AdsCall): void {
    const stream = new AdsStream(++this.nextId, call, this);
    this.streams.add(stream);
    call.on('data', (req: DiscoveryRequestObject) => {
      try {
        stream.onRequest(req);
      } catch (err) {
        this.logger.error({ stream: stream.id, err }, 'ADS: request handling failed');
        stream.fail(grpc.status.INTERNAL, 'internal error');
      }
    });
    call.on('end', () => {
      stream.end();
    });
    call.on('error', (err: Error) => {
      this.logger.debug({ stream: stream.id, err: err.message }, 'ADS: stream error');
      this.forget(stream);
    });
    call.on('cancelled', () => {
      this.forget(stream);
    });
    call.on('close', () => {
      this.forget(stream);
    });
  }

  forget(stream: AdsStream): void {
    stream.markClosed();
    this.streams.delete(stream);
  }

  onChange(typeUrl: string): void {
    for (const stream of [...this.streams]) {
      try {
        stream.push(typeUrl);
      } catch (err) {
        this.logger.error({ stream: stream.id, typeUrl, err }, 'ADS: push failed');
      }
    }
  }
}

/** Starts the ADS server; resolves once it listens. */
export async function startAdsServer(options: AdsServerOptions): Promise<AdsServerHandle> {
  const logger = options.logger ?? SILENT_LOGGER;
  const core = new AdsServerCore(options.provider, logger);
  const server = new grpc.Server({
    'grpc.max_receive_message_length': options.maxMessageBytes ?? DEFAULT_MAX_MESSAGE_BYTES,
    'grpc.max_concurrent_streams': options.maxStreamsPerConnection ?? DEFAULT_MAX_STREAMS_PER_CONNECTION,
  });
  const { service } = adsServiceDefinition();
  const implementation: grpc.UntypedServiceImplementation = {
    StreamAggregatedResources: (call: AdsCall) => {
      core.handle(call);
    },
  };
  server.addService(service, implementation);
  const port = await new Promise<number>((resolve, reject) => {
    server.bindAsync(`${options.host.includes(':') ? `[${options.host}]` : options.host}:${options.port}`, grpc.ServerCredentials.createInsecure(), (err, bound) => {
      if (err) reject(err);
      else resolve(bound);
    });
  });
  const unsubscribe = options.provider.subscribe((typeUrl) => {
    core.onChange(typeUrl);
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
