/**
 * Where the gateway's routes come from: the gateway is just another xDS proxy of its cluster (a `router~` node with
 * CLUSTER_ID and NETWORK), so it reads the same resources meshfed sends an Envoy gateway — either in process, from
 * the provider of the `meshfed serve` it runs in (simulated clusters), or over a real ADS stream (a gateway run on
 * its own with `meshfed gateway --xds`). Either way the bytes are decoded by the same code into a RouteTable.
 */
import * as grpc from '@grpc/grpc-js';
import { SILENT_LOGGER, type Logger } from '../logging.js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject, type NodeObject } from '../xds/ads-protocol.js';
import type { NodeIdentity, ResourceProvider } from '../xds/ads-server.js';
import { TYPE_URL } from '../xds/envoy-protos.js';
import { decodeClusterLoadAssignment, type ClusterLoadAssignmentObject } from '../xds/resources/endpoints.js';
import { decodeGatewayCluster, decodeGatewayListener, gatewayListenerChains, type GatewayChain } from '../xds/resources/gateway-listener.js';
import { RouteTable } from './route-table.js';

export interface RouteSource {
  /** the routes now (empty until the first configuration arrived) */
  current(): RouteTable;
  /** whether a configuration has arrived */
  ready(): boolean;
  close(): void;
}

/** The xDS node of a gateway of `cluster` on `network` (Istio: a `router~` id). */
export function gatewayNode(id: string, cluster: string, network: string): NodeIdentity {
  return { id: id.startsWith('router~') ? id : `router~${id}`, cluster, network, locality: { region: '', zone: '', subzone: '' } };
}

/** The chains of the listener resources (one for the 15443 listener; none when the cluster has no service). */
function chainsOf(listeners: readonly Uint8Array[]): GatewayChain[] {
  return listeners.flatMap((bytes) => gatewayListenerChains(decodeGatewayListener(bytes)));
}

/** Routes read in process from the provider `meshfed serve` runs, re-read whenever it announces a change. */
export function providerRouteSource(provider: ResourceProvider, node: NodeIdentity, logger: Logger = SILENT_LOGGER): RouteSource {
  let table = RouteTable.EMPTY;
  let loaded = false;
  const load = (): void => {
    try {
      const listeners = provider.resources(node, TYPE_URL.listener, [])?.resources ?? [];
      const clusters = provider.resources(node, TYPE_URL.cluster, [])?.resources.map((r) => r.name) ?? [];
      const assignments = provider.resources(node, TYPE_URL.clusterLoadAssignment, clusters)?.resources ?? [];
      table = new RouteTable(chainsOf(listeners.map((r) => r.value)), new Map(assignments.map((r) => [r.name, decodeClusterLoadAssignment(r.value)])));
      loaded = true;
    } catch (err) {
      logger.error({ err, node: node.id }, 'gateway: routes could not be read; keeping the last ones');
    }
  };
  load();
  const unsubscribe = provider.subscribe(load);
  return { current: () => table, ready: () => loaded, close: unsubscribe };
}

export interface AdsRouteSourceOptions {
  /** HOST:PORT of meshfed's xDS server */
  target: string;
  node: NodeIdentity;
  logger?: Logger;
  /** first reconnect delay, doubled up to 30 s (default 500 ms) */
  retryMs?: number;
}

function nodeObject(node: NodeIdentity): NodeObject {
  const fields: Record<string, { kind: string; stringValue: string }> = {};
  if (node.cluster !== undefined) fields.CLUSTER_ID = { kind: 'stringValue', stringValue: node.cluster };
  if (node.network !== undefined) fields.NETWORK = { kind: 'stringValue', stringValue: node.network };
  return { id: node.id, metadata: { fields }, user_agent_name: 'meshfed-gateway' };
}

/**
 * Routes over a state-of-the-world ADS stream: LDS and CDS by wildcard, EDS for every cluster CDS names. A response
 * that cannot be decoded is NACKed and the last accepted routes stay. A lost stream is reopened with backoff, and
 * the routes it had are kept meanwhile (as Envoy does).
 */
export function adsRouteSource(options: AdsRouteSourceOptions): RouteSource {
  const logger = options.logger ?? SILENT_LOGGER;
  const { method } = adsServiceDefinition();
  const client = new grpc.Client(options.target, grpc.credentials.createInsecure());
  let chains: GatewayChain[] = [];
  let clusterNames: string[] = [];
  let assignments = new Map<string, ClusterLoadAssignmentObject>();
  let table = RouteTable.EMPTY;
  let loaded = false;
  let closed = false;
  let retryMs = options.retryMs ?? 500;
  let timer: NodeJS.Timeout | undefined;
  let call: grpc.ClientDuplexStream<DiscoveryRequestObject, DiscoveryResponseObject> | undefined;

  const rebuild = (): void => {
    table = new RouteTable(chains, assignments);
    loaded = true;
  };

  const open = (): void => {
    if (closed) return;
    const stream = client.makeBidiStreamRequest<DiscoveryRequestObject, DiscoveryResponseObject>(ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
    call = stream;
    let first = true;
    const request = (typeUrl: string, names: string[], ack?: { version: string; nonce: string; error?: string }): void => {
      const req: DiscoveryRequestObject = { type_url: typeUrl, resource_names: names };
      if (first) req.node = nodeObject(options.node);
      first = false;
      if (ack) {
        req.response_nonce = ack.nonce;
        req.version_info = ack.version;
        if (ack.error !== undefined) req.error_detail = { code: grpc.status.INVALID_ARGUMENT, message: ack.error };
      }
      stream.write(req);
    };
    const accepted = new Map<string, string>();
    stream.on('data', (res: DiscoveryResponseObject) => {
      const typeUrl = res.type_url ?? '';
      const nonce = res.nonce ?? '';
      const version = res.version_info ?? '';
      const resources = res.resources ?? [];
      try {
        let subscribeEndpoints = false;
        if (typeUrl === TYPE_URL.listener) {
          chains = chainsOf(resources.map((r) => r.value));
        } else if (typeUrl === TYPE_URL.cluster) {
          const names = resources.map((r) => decodeGatewayCluster(r.value).name).sort();
          subscribeEndpoints = names.join('\n') !== clusterNames.join('\n');
          clusterNames = names;
          assignments = new Map([...assignments].filter(([name]) => names.includes(name)));
        } else if (typeUrl === TYPE_URL.clusterLoadAssignment) {
          const next = new Map(assignments);
          for (const r of resources) {
            const cla = decodeClusterLoadAssignment(r.value);
            next.set(cla.cluster_name, cla);
          }
          assignments = next;
        }
        accepted.set(typeUrl, version);
        request(typeUrl, typeUrl === TYPE_URL.clusterLoadAssignment ? clusterNames : [], { version, nonce });
        if (subscribeEndpoints) request(TYPE_URL.clusterLoadAssignment, clusterNames);
        rebuild();
        retryMs = options.retryMs ?? 500;
      } catch (err) {
        logger.warn({ typeUrl, version, err: (err as Error).message }, 'gateway: xDS response refused (NACK); keeping the last routes');
        request(typeUrl, typeUrl === TYPE_URL.clusterLoadAssignment ? clusterNames : [], { version: accepted.get(typeUrl) ?? '', nonce, error: (err as Error).message });
      }
    });
    const reopen = (why: string): void => {
      if (closed || call !== stream) return;
      call = undefined;
      logger.warn({ target: options.target, why, retryMs }, 'gateway: xDS stream lost; keeping the last routes and reconnecting');
      timer = setTimeout(open, retryMs);
      retryMs = Math.min(retryMs * 2, 30_000);
    };
    stream.on('error', (err: Error) => {
      reopen(err.message);
    });
    stream.on('end', () => {
      reopen('the server ended the stream');
    });
    request(TYPE_URL.listener, []);
    request(TYPE_URL.cluster, []);
  };

  open();
  return {
    current: () => table,
    ready: () => loaded,
    close: () => {
      closed = true;
      clearTimeout(timer);
      call?.cancel();
      client.close();
    },
  };
}
