/**
 * The incremental (delta) ADS stream: envoy.service.discovery.v3.AggregatedDiscoveryService/DeltaAggregatedResources.
 * ./ads-server.ts registers it on the same grpc server as the SotW method and runs what both share (the node check
 * on the first request, the counters, the provider fan-out, the stream lifecycle); this module is the protocol logic
 * of one delta stream, against the same ResourceProvider.
 *
 * Protocol decisions (Envoy's "Incremental xDS"; go-control-plane's delta server where the protocol leaves a choice):
 * - Resource versions: the provider's EncodedResource.version when it gives one, else a SHA-256 of the encoded bytes
 *   (base64url), cached in a WeakMap keyed by the Uint8Array, so bytes shared by many proxies are hashed once.
 * - State per stream and type URL: wildcard or not, the explicitly subscribed names, what the client holds (name →
 *   version, as far as this stream knows), the versions it rejected, and the last response not yet ACKed or NACKed.
 *   Nonces are unique per stream across all types.
 * - Interest: the first request of a type with an empty resource_names_subscribe is a wildcard subscription (the
 *   legacy form), as is '*' in resource_names_subscribe at any time; '*' in resource_names_unsubscribe leaves
 *   wildcard mode, and the client then drops what it held only through the wildcard (so does the server's record).
 *   Other names are added and removed as named; a name the client unsubscribes while not in wildcard mode is forgotten
 *   (no removal is sent: the client dropped it). Naming a name the client holds again (subscribe, or unsubscribe under
 *   the wildcard) marks its version unknown, so it is sent again, or reported removed if it is gone (go-control-plane
 *   #583).
 * - What the provider is asked: under the wildcard, names [] (everything it serves that node); for explicit names not
 *   in that answer, one more call with those names (sorted), of whose answer only the names asked are kept.
 * - A response carries only the resources in scope whose version differs from what the client holds (and from the
 *   version it rejected), and in removed_resources the names the client holds that the provider no longer has. A
 *   subscribed name the provider never had gets nothing (not even a removal), unless the client claims to hold it.
 *   An empty delta is not sent, except as the answer to the first request of a type on the stream (so the client's
 *   initial fetch completes: a reconnect that is entirely up to date, or a type the provider does not serve).
 * - initial_resource_versions, on the first request of a type: the versions the client holds (for names in scope).
 *   An equal version is not sent again, a different one is, and a name the provider no longer has is removed.
 * - The server records a response as held by the client when it sends it (deltas are cumulative; an ACK confirms).
 *   The response_nonce of a request settles the last response of its type: no error_detail is an ACK; error_detail
 *   is a NACK (logged with the rejected names and counted): what that response changed is reverted to what the client
 *   held before, and the rejected versions are not sent again (a newer version is; removals are, with the next
 *   response). A nonce that is not the last unsettled one of its type (an older response, a settled one, another
 *   type's, one never sent) is stale: counted and ignored for ACK/NACK, but the request's subscribe/unsubscribe
 *   changes still apply.
 * - A request is answered when it is the first of its type on the stream or changes the interest (subscribe or
 *   unsubscribe not empty); a pure ACK or NACK is not.
 * - A provider change of a type re-evaluates every stream subscribed to it and pushes only the changed and removed
 *   resources (nothing when nothing differs for that stream). When the provider names the resources that changed, a
 *   stream not under the wildcard and subscribed to none of them is not re-evaluated.
 * - A type the provider does not serve (resources() → undefined) gets one empty response (counted as unknownTypes),
 *   then nothing until the provider serves it.
 * - A request without type_url is ignored and counted as malformed. A provider that throws is logged and counted;
 *   that stream's request (or push) is dropped, and the next request or push of the type tries again.
 */
import { createHash } from 'node:crypto';
import type { DeltaDiscoveryRequestObject, DeltaDiscoveryResponseObject, DeltaResourceObject, RpcStatusObject } from './ads-protocol.js';
import type { AdsStreamContext, AdsStreamHandler, EncodedResource, NodeIdentity } from './ads-server.js';

const WILDCARD = '*';
/** A held version that matches no real one: the resource is sent again (or removed if it is gone). */
const UNKNOWN_VERSION = '';
/** NACK log lines name at most this many rejected resources. */
const LOGGED_REJECTIONS = 20;

const derivedVersions = new WeakMap<Uint8Array, string>();

/** The version a delta stream sends for `resource`: the provider's own, or a hash of its bytes. */
export function resourceVersion(resource: EncodedResource): string {
  if (resource.version !== undefined && resource.version !== '') return resource.version;
  let version = derivedVersions.get(resource.value);
  if (version === undefined) {
    version = createHash('sha256').update(resource.value).digest('base64url');
    derivedVersions.set(resource.value, version);
  }
  return version;
}

/** The last response of a type, until an ACK or NACK settles it. */
interface Unsettled {
  nonce: string;
  /** name → version sent */
  sent: Map<string, string>;
  /** name → what the client held before this response (undefined: nothing), for every name it changed */
  before: Map<string, string | undefined>;
}

interface DeltaTypeState {
  wildcard: boolean;
  /** explicitly subscribed names (besides the wildcard) */
  names: Set<string>;
  /** name → version the client holds, as far as this stream knows */
  held: Map<string, string>;
  /** name → version the client NACKed: not sent again */
  rejected: Map<string, string>;
  unsettled: Unsettled | undefined;
  /** a response of this type went out on this stream */
  answered: boolean;
}

/** What the provider has in scope for a stream and type. */
interface Fetched {
  /** name → resource */
  current: Map<string, EncodedResource>;
  /** the versions of the sets it came in (system_version_info, for debugging) */
  versions: string[];
}

const strings = (value: unknown): string[] => (Array.isArray(value) ? value.filter((n): n is string => typeof n === 'string') : []);

const inScope = (state: DeltaTypeState, name: string): boolean => state.wildcard || state.names.has(name);

/** The delta protocol logic of one stream. */
export class DeltaAdsStream implements AdsStreamHandler<DeltaDiscoveryRequestObject> {
  private readonly types = new Map<string, DeltaTypeState>();
  private nonce = 0;

  constructor(private readonly context: AdsStreamContext<DeltaDiscoveryResponseObject>) {}

  onRequest(req: DeltaDiscoveryRequestObject, node: NodeIdentity): void {
    const { counters, logger, id } = this.context;
    const typeUrl = typeof req.type_url === 'string' ? req.type_url : '';
    if (typeUrl === '') {
      counters.malformed++;
      logger.warn({ stream: id, node: node.id }, 'ADS delta: request without type_url ignored');
      return;
    }
    const subscribe = strings(req.resource_names_subscribe);
    const unsubscribe = strings(req.resource_names_unsubscribe);
    const nonce = typeof req.response_nonce === 'string' ? req.response_nonce : '';
    let state = this.types.get(typeUrl);
    const first = state === undefined;
    if (state === undefined) {
      state = { wildcard: subscribe.length === 0, names: new Set(), held: new Map(), rejected: new Map(), unsettled: undefined, answered: false };
      this.types.set(typeUrl, state);
    }
    if (nonce !== '') this.settle(state, node, typeUrl, nonce, req.error_detail);
    this.applyInterest(state, subscribe, unsubscribe);
    if (first) {
      for (const [name, version] of Object.entries(req.initial_resource_versions ?? {})) {
        if (inScope(state, name)) state.held.set(name, version);
      }
    }
    if (first || subscribe.length > 0 || unsubscribe.length > 0) this.respond(state, node, typeUrl, false);
  }

  push(typeUrl: string, node: NodeIdentity, changed?: ReadonlySet<string>): void {
    const state = this.types.get(typeUrl);
    if (!state) return;
    // not under the wildcard, and none of its names changed: nothing to send (a name it holds is one of its names)
    if (changed !== undefined && !state.wildcard && ![...state.names].some((name) => changed.has(name))) return;
    this.respond(state, node, typeUrl, true);
  }

  /** An ACK or NACK of the last unsettled response of the type, or a stale nonce. */
  private settle(state: DeltaTypeState, node: NodeIdentity, typeUrl: string, nonce: string, errorDetail: RpcStatusObject | null | undefined): void {
    const { counters, logger, id } = this.context;
    const unsettled = state.unsettled;
    if (unsettled?.nonce !== nonce) {
      counters.staleNonces++;
      logger.debug({ stream: id, node: node.id, typeUrl, nonce, current: unsettled?.nonce }, 'ADS delta: stale nonce ignored');
      return;
    }
    state.unsettled = undefined;
    this.context.answered(typeUrl, nonce, !errorDetail);
    if (!errorDetail) return;
    for (const [name, version] of unsettled.before) {
      if (!inScope(state, name)) continue;
      if (version === undefined) state.held.delete(name);
      else state.held.set(name, version);
    }
    for (const [name, version] of unsettled.sent) {
      if (inScope(state, name)) state.rejected.set(name, version);
    }
    logger.warn(
      {
        stream: id,
        node: node.id,
        cluster: node.cluster,
        typeUrl,
        nonce,
        rejectedCount: unsettled.sent.size,
        rejected: [...unsettled.sent].slice(0, LOGGED_REJECTIONS).map(([name, version]) => `${name}@${version}`),
        code: errorDetail.code,
        error: typeof errorDetail.message === 'string' ? errorDetail.message.slice(0, 2000) : undefined,
      },
      'ADS delta: NACK',
    );
  }

  private applyInterest(state: DeltaTypeState, subscribe: readonly string[], unsubscribe: readonly string[]): void {
    for (const name of subscribe) {
      if (name === WILDCARD) {
        state.wildcard = true;
        continue;
      }
      state.names.add(name);
      state.rejected.delete(name);
      if (state.held.has(name)) state.held.set(name, UNKNOWN_VERSION);
    }
    for (const name of unsubscribe) {
      if (name === WILDCARD) {
        state.wildcard = false;
        continue;
      }
      state.names.delete(name);
      state.rejected.delete(name);
      if (state.wildcard) {
        if (state.held.has(name)) state.held.set(name, UNKNOWN_VERSION);
      } else {
        state.held.delete(name);
      }
    }
    if (state.wildcard) return;
    for (const name of state.held.keys()) if (!state.names.has(name)) state.held.delete(name);
    for (const name of state.rejected.keys()) if (!state.names.has(name)) state.rejected.delete(name);
  }

  /** The provider's resources in scope, by name, and its set versions; undefined when it does not serve the type. */
  private fetch(state: DeltaTypeState, node: NodeIdentity, typeUrl: string): Fetched | undefined {
    const { provider } = this.context;
    const current = new Map<string, EncodedResource>();
    const versions: string[] = [];
    if (state.wildcard) {
      const set = provider.resources(node, typeUrl, []);
      if (set === undefined) return undefined;
      versions.push(set.version);
      for (const r of set.resources) current.set(r.name, r);
    }
    const missing = [...state.names].filter((n) => !current.has(n)).sort();
    if (missing.length > 0) {
      const set = provider.resources(node, typeUrl, missing);
      if (set === undefined) return undefined;
      versions.push(set.version);
      for (const r of set.resources) if (state.names.has(r.name) && !current.has(r.name)) current.set(r.name, r);
    }
    return { current, versions };
  }

  /** Sends what differs between the provider and what the client holds; `isPush`: after a provider change. */
  private respond(state: DeltaTypeState, node: NodeIdentity, typeUrl: string, isPush: boolean): void {
    const { counters, logger, id } = this.context;
    let fetched: Fetched | undefined;
    try {
      fetched = this.fetch(state, node, typeUrl);
    } catch (err) {
      counters.providerErrors++;
      logger.error({ stream: id, node: node.id, typeUrl, err }, 'ADS delta: resource provider failed');
      return;
    }
    if (fetched === undefined) {
      if (state.answered) return;
      counters.unknownTypes++;
      this.send(state, typeUrl, '', [], new Map(), [], isPush);
      return;
    }
    const { current, versions } = fetched;
    const resources: DeltaResourceObject[] = [];
    const sent = new Map<string, string>();
    for (const [name, r] of current) {
      const version = resourceVersion(r);
      if (state.held.get(name) === version || state.rejected.get(name) === version) continue;
      resources.push({ name, version, resource: { type_url: r.typeUrl, value: r.value } });
      sent.set(name, version);
    }
    const removed = [...state.held.keys()].filter((name) => !current.has(name)).sort();
    for (const name of state.rejected.keys()) if (!current.has(name)) state.rejected.delete(name);
    if (resources.length === 0 && removed.length === 0 && state.answered) return;
    this.send(state, typeUrl, versions.join(','), resources, sent, removed, isPush);
  }

  private send(
    state: DeltaTypeState,
    typeUrl: string,
    systemVersion: string,
    resources: DeltaResourceObject[],
    sent: Map<string, string>,
    removed: string[],
    isPush: boolean,
  ): void {
    const before = new Map<string, string | undefined>();
    for (const [name, version] of sent) {
      before.set(name, state.held.get(name));
      state.held.set(name, version);
      state.rejected.delete(name);
    }
    for (const name of removed) {
      before.set(name, state.held.get(name));
      state.held.delete(name);
    }
    const nonce = String(++this.nonce);
    state.unsettled = { nonce, sent, before };
    state.answered = true;
    this.context.respond({ system_version_info: systemVersion, resources, type_url: typeUrl, removed_resources: removed, nonce }, typeUrl, nonce, isPush);
  }
}
