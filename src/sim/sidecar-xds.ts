/**
 * The simulated sidecar's xDS client (sidecar.ts): a state-of-the-world ADS stream to meshfed as an Envoy sidecar
 * node of its cluster (`sidecar~IP~POD.NS~NS.svc.cluster.local`, CLUSTER_ID, NETWORK, locality), subscribed to CDS
 * by wildcard and to EDS for every cluster CDS names, as Envoy subscribes.
 *
 * Every response is decoded and checked before it is taken: a CDS cluster must be named `outbound|PORT||HOST` and
 * carry the TLS transport socket with an SNI (the gateway routes on it); an EDS resource must be a
 * ClusterLoadAssignment of a subscribed cluster. A response that passes is ACKed (its version and nonce); one that
 * does not is NACKed (the last accepted version, the nonce, error_detail saying why) and the last accepted state
 * stays, as Envoy does. A lost stream is reopened with back-off and the state it had is kept meanwhile.
 */
import * as grpc from '@grpc/grpc-js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject, type NodeObject } from '../xds/ads-protocol.js';
import type { NodeIdentity } from '../xds/ads-server.js';
import { TYPE_URL } from '../xds/envoy-protos.js';
import { decodeClusterLoadAssignment, type ClusterLoadAssignmentObject } from '../xds/resources/endpoints.js';
import { clusterUpstreamTlsContext, decodeSidecarCluster } from '../xds/resources/sidecar-cluster.js';

/** What the sidecar needs of one CDS cluster. */
export interface SidecarClusterConfig {
  /** `outbound|PORT||HOST` */
  name: string;
  host: string;
  port: number;
  /** the SNI of its UpstreamTlsContext: `outbound_.PORT_._.HOST` */
  sni: string;
  /** the SPIFFE IDs the peer must present one of; empty: anyone of the trust domain */
  subjectAltNames: string[];
  alpn: string[];
  connectTimeoutMs: number;
}

export interface SidecarXdsState {
  clusters: ReadonlyMap<string, SidecarClusterConfig>;
  /** by cluster name */
  assignments: ReadonlyMap<string, ClusterLoadAssignmentObject>;
}

export interface SidecarXdsCounts {
  acks: number;
  nacks: number;
  /** the last NACK's reason */
  lastNack?: string;
}

export interface SidecarXdsOptions {
  /** HOST:PORT of meshfed's xDS server */
  target: string;
  node: NodeIdentity;
  /** after every accepted change */
  onChange?: (state: SidecarXdsState) => void;
  logger?: Logger;
  /** first reconnect delay, doubled up to 30 s (default 500 ms) */
  retryMs?: number;
}

export interface SidecarXdsClient {
  state(): SidecarXdsState;
  /** CDS and the EDS of every cluster it named have arrived */
  ready(): boolean;
  counts(): SidecarXdsCounts;
  close(): void;
}

const OUTBOUND_NAME = /^outbound\|(\d{1,5})\|\|(.+)$/;

/** The Istio sidecar node id: `sidecar~IP~POD.NAMESPACE~NAMESPACE.svc.cluster.local`. */
export function sidecarNodeId(ip: string, pod: string, namespace: string): string {
  return `sidecar~${ip}~${pod}.${namespace}~${namespace}.svc.cluster.local`;
}

function nodeObject(node: NodeIdentity): NodeObject {
  const fields: Record<string, { kind: string; stringValue: string }> = {};
  if (node.cluster !== undefined) fields.CLUSTER_ID = { kind: 'stringValue', stringValue: node.cluster };
  if (node.network !== undefined) fields.NETWORK = { kind: 'stringValue', stringValue: node.network };
  const { region, zone, subzone } = node.locality;
  return { id: node.id, metadata: { fields }, locality: { region, zone, sub_zone: subzone }, user_agent_name: 'meshfed-sim-sidecar' };
}

/** A CDS resource as the sidecar uses it; throws (for a NACK) saying what is wrong. */
export function sidecarClusterConfig(bytes: Uint8Array): SidecarClusterConfig {
  const cluster = decodeSidecarCluster(bytes);
  const match = OUTBOUND_NAME.exec(cluster.name);
  if (!match) throw new Error(`cluster ${JSON.stringify(cluster.name)} is not named outbound|PORT||HOST`);
  const tls = clusterUpstreamTlsContext(cluster);
  if (!tls?.sni) throw new Error(`cluster ${cluster.name} has no TLS transport socket with an SNI (sidecar clusters are mTLS)`);
  const matchers = tls.common_tls_context.combined_validation_context.default_validation_context.match_typed_subject_alt_names ?? [];
  const { seconds = 0, nanos = 0 } = cluster.connect_timeout;
  return {
    name: cluster.name,
    host: match[2] ?? '',
    port: Number(match[1]),
    sni: tls.sni,
    subjectAltNames: matchers.map((m) => m.matcher.exact),
    alpn: tls.common_tls_context.alpn_protocols,
    connectTimeoutMs: seconds * 1000 + nanos / 1e6,
  };
}

/** Opens the ADS stream; the client keeps it open (reconnecting) until `close()`. */
export function startSidecarXds(options: SidecarXdsOptions): SidecarXdsClient {
  const log = options.logger ?? SILENT_LOGGER;
  const { method } = adsServiceDefinition();
  const client = new grpc.Client(options.target, grpc.credentials.createInsecure());
  let clusters = new Map<string, SidecarClusterConfig>();
  let assignments = new Map<string, ClusterLoadAssignmentObject>();
  let cdsSeen = false;
  const counts: SidecarXdsCounts = { acks: 0, nacks: 0 };
  let closed = false;
  let retryMs = options.retryMs ?? 500;
  let timer: NodeJS.Timeout | undefined;
  let call: grpc.ClientDuplexStream<DiscoveryRequestObject, DiscoveryResponseObject> | undefined;
  /** what was last accepted per type, sent again with every request of that type (and after a reconnect) */
  const accepted = new Map<string, string>();

  const state = (): SidecarXdsState => ({ clusters, assignments });

  const open = (): void => {
    if (closed) return;
    const stream = client.makeBidiStreamRequest<DiscoveryRequestObject, DiscoveryResponseObject>(ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
    call = stream;
    let first = true;
    const lastNonce = new Map<string, string>();
    const request = (typeUrl: string, names: string[], error?: string): void => {
      const req: DiscoveryRequestObject = { type_url: typeUrl, resource_names: names, version_info: accepted.get(typeUrl) ?? '', response_nonce: lastNonce.get(typeUrl) ?? '' };
      if (first) req.node = nodeObject(options.node);
      first = false;
      if (error !== undefined) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: error };
      stream.write(req);
    };
    const edsNames = (): string[] => [...clusters.keys()].sort();

    stream.on('data', (res: DiscoveryResponseObject) => {
      const typeUrl = res.type_url ?? '';
      const version = res.version_info ?? '';
      lastNonce.set(typeUrl, res.nonce ?? '');
      const resources = res.resources ?? [];
      const names = typeUrl === TYPE_URL.clusterLoadAssignment ? edsNames() : [];
      try {
        if (typeUrl === TYPE_URL.cluster) {
          const next = new Map<string, SidecarClusterConfig>();
          for (const r of resources) {
            const config = sidecarClusterConfig(r.value);
            next.set(config.name, config);
          }
          const before = edsNames().join('\n');
          clusters = next;
          cdsSeen = true;
          assignments = new Map([...assignments].filter(([name]) => next.has(name)));
          accepted.set(typeUrl, version);
          counts.acks++;
          request(typeUrl, []);
          if (edsNames().join('\n') !== before) request(TYPE_URL.clusterLoadAssignment, edsNames());
        } else if (typeUrl === TYPE_URL.clusterLoadAssignment) {
          const next = new Map(assignments);
          for (const r of resources) {
            const cla = decodeClusterLoadAssignment(r.value);
            if (!clusters.has(cla.cluster_name)) throw new Error(`ClusterLoadAssignment for ${JSON.stringify(cla.cluster_name)}, which CDS did not name`);
            next.set(cla.cluster_name, cla);
          }
          assignments = next;
          accepted.set(typeUrl, version);
          counts.acks++;
          request(typeUrl, names);
        } else {
          throw new Error(`type ${JSON.stringify(typeUrl)} was not asked for`);
        }
        retryMs = options.retryMs ?? 500;
        options.onChange?.(state());
      } catch (error) {
        const reason = (error as Error).message;
        counts.nacks++;
        counts.lastNack = reason;
        log.warn({ typeUrl, version, reason }, 'sidecar: xDS response refused (NACK); keeping the last configuration');
        request(typeUrl, names, reason);
      }
    });
    const reopen = (why: string): void => {
      if (closed || call !== stream) return;
      call = undefined;
      log.warn({ target: options.target, why, retryMs }, 'sidecar: xDS stream lost; keeping the last configuration and reconnecting');
      timer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    };
    stream.on('error', (error: Error) => {
      reopen(error.message);
    });
    stream.on('end', () => {
      reopen('the server ended the stream');
    });
    request(TYPE_URL.cluster, []);
    if (clusters.size > 0) request(TYPE_URL.clusterLoadAssignment, edsNames());
  };

  open();
  return {
    state,
    ready: () => cdsSeen && [...clusters.keys()].every((name) => assignments.has(name)),
    counts: () => ({ ...counts }),
    close: () => {
      closed = true;
      clearTimeout(timer);
      call?.cancel();
      client.close();
    },
  };
}
