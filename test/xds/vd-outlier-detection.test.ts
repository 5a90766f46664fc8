/**
 * A virtual destination's outlierDetection in the Cluster resources served over ADS: raw SotW streams (an Envoy
 * sidecar's node and a proxyless gRPC node) against the real ADS server and FederationXds, every Cluster decoded with
 * the Envoy v3 protos, and the proxyless one also through grpc-js-xds's own ClusterResourceType (the decode and
 * validateResource the real client runs), to see what grpc makes of it: of the detection algorithms, only the
 * failure-percentage one.
 */
import * as grpc from '@grpc/grpc-js';
import { register } from '@grpc/grpc-js-xds';
import { validateBootstrapConfig } from '@grpc/grpc-js-xds/build/src/xds-bootstrap.js';
import { ClusterResourceType, type CdsUpdate } from '@grpc/grpc-js-xds/build/src/xds-resource-type/cluster-resource-type.js';
import type { XdsDecodeContext } from '@grpc/grpc-js-xds/build/src/xds-resource-type/xds-resource-type.js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { clusterSchema } from '../../src/model/cluster.js';
import { staticServiceSchema } from '../../src/model/federation-file.js';
import { virtualDestinationSchema, type NamedVirtualDestination, type VirtualDestinationInput } from '../../src/model/virtual-destination.js';
import { Registry } from '../../src/registry/registry.js';
import { StaticSource } from '../../src/registry/static-source.js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject, type NodeObject } from '../../src/xds/ads-protocol.js';
import { startAdsServer, type AdsServerHandle } from '../../src/xds/ads-server.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { FederationXds } from '../../src/xds/federation-provider.js';
import { decodeCluster, type OutlierDetectionObject } from '../../src/xds/resources/cluster.js';
import { decodeSidecarCluster } from '../../src/xds/resources/sidecar-cluster.js';
import { RawStream } from './raw-ads-stream.js';

type SotwStream = RawStream<DiscoveryRequestObject, DiscoveryResponseObject>;

const CDS = TYPE_URL.cluster;
const WITH_OD = 'outbound|9080||reviews.global';
const WITHOUT_OD = 'outbound|9080||reviews-plain.global';
const SERVICE = 'outbound|9080||reviews.demo.svc.cluster.local';

const OUTLIER_DETECTION = {
  consecutive5xx: 3,
  consecutiveGatewayErrors: 2,
  interval: '10s',
  baseEjectionTime: '1m30s',
  maxEjectionPercent: 50,
  failurePercentage: { threshold: 60, minimumHosts: 2, requestVolume: 10 },
};

/** What both kinds of proxy get for OUTLIER_DETECTION, written out by hand (empty wrappers are value 0). */
const EXPECTED: OutlierDetectionObject = {
  consecutive_5xx: { value: 3 },
  enforcing_consecutive_5xx: { value: 100 },
  consecutive_gateway_failure: { value: 2 },
  enforcing_consecutive_gateway_failure: { value: 100 },
  interval: { seconds: 10 },
  base_ejection_time: { seconds: 90 },
  max_ejection_percent: { value: 50 },
  enforcing_success_rate: {},
  enforcing_failure_percentage: { value: 100 },
  failure_percentage_threshold: { value: 60 },
  failure_percentage_minimum_hosts: { value: 2 },
  failure_percentage_request_volume: { value: 10 },
};

const vd = (name: string, hostname: string, extra: Partial<VirtualDestinationInput> = {}): NamedVirtualDestination => ({
  name,
  spec: virtualDestinationSchema.parse({ hostname, ports: [{ number: 9080, protocol: 'GRPC' }], backends: [{ namespace: 'demo', name: 'reviews' }], ...extra }),
});

const PLAIN = vd('reviews-plain', 'reviews-plain.global');
const VDS: NamedVirtualDestination[] = [vd('reviews', 'reviews.global', { outlierDetection: OUTLIER_DETECTION }), PLAIN];

const stringValue = (value: string) => ({ stringValue: value });
const SIDECAR: NodeObject = {
  id: 'sidecar~10.1.0.7~productpage.demo~demo.svc.cluster.local',
  user_agent_name: 'envoy',
  locality: { region: 'us-east', zone: 'us-east-1a' },
  metadata: { fields: { CLUSTER_ID: stringValue('east-1'), NETWORK: stringValue('net-east') } },
};
const PROXYLESS: NodeObject = {
  id: 'proxyless~east-1~od',
  user_agent_name: 'gRPC Node',
  locality: { region: 'us-east', zone: 'us-east-1a' },
  metadata: { fields: { CLUSTER_ID: stringValue('east-1'), NETWORK: stringValue('net-east'), GENERATOR: stringValue('grpc') } },
};

const { method } = adsServiceDefinition();
let registry: Registry;
let provider: FederationXds;
let ads: AdsServerHandle;
let client: grpc.Client;
let grpcContext: XdsDecodeContext;
const open: SotwStream[] = [];

beforeAll(async () => {
  register();
  registry = new Registry({ debounceMs: 5, maxDelayMs: 50 });
  const reviews = staticServiceSchema.parse({
    namespace: 'demo',
    name: 'reviews',
    ports: [{ name: 'grpc', port: 9080 }],
    endpoints: [{ address: '10.1.0.1', serviceAccount: 'reviews' }],
  });
  registry.add(clusterSchema.parse({ name: 'east-1', network: 'net-east', region: 'us-east', zone: 'us-east-1a' }), new StaticSource('east-1', [reviews]));
  registry.flush();
  provider = new FederationXds(registry, { debounceMs: 5, maxDelayMs: 50, virtualDestinations: VDS });
  ads = await startAdsServer({ host: '127.0.0.1', port: 0, provider });
  client = new grpc.Client(`127.0.0.1:${String(ads.port)}`, grpc.credentials.createInsecure());
  const bootstrap = validateBootstrapConfig({ xds_servers: [{ server_uri: `127.0.0.1:${String(ads.port)}`, channel_creds: [{ type: 'insecure' }] }], node: { id: 'test', locality: {} } });
  const server = bootstrap.xdsServers[0];
  if (!server) throw new Error('bootstrap without a server');
  grpcContext = { bootstrap, server };
});

afterEach(() => {
  for (const s of open.splice(0)) s.close();
});

afterAll(async () => {
  client.close();
  await ads.close();
  provider.close();
  await registry.close();
});

/** Every Cluster of a wildcard CDS request from `node`, by name, as bytes; the stream stays open for pushes. */
async function clusters(node: NodeObject): Promise<{ stream: SotwStream; byName: Map<string, Uint8Array> }> {
  const stream = new RawStream(client, ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
  open.push(stream);
  stream.send({ node, type_url: CDS, resource_names: [] });
  return { stream, byName: await nextClusters(stream) };
}

/** The next CDS response on `stream`, ACKed, by name. */
async function nextClusters(stream: SotwStream): Promise<Map<string, Uint8Array>> {
  const res = await stream.next(10_000);
  stream.send({ type_url: CDS, resource_names: [], version_info: res.version_info, response_nonce: res.nonce });
  return byName(res);
}

function byName(res: DiscoveryResponseObject): Map<string, Uint8Array> {
  expect(res.type_url).toBe(CDS);
  return new Map((res.resources ?? []).map((any) => [decodeCluster(any.value).name, any.value]));
}

describe("a virtual destination's outlierDetection in its Cluster", () => {
  it('an Envoy sidecar gets Istio\'s translation: the counts enforced, the interval and ejection time, the cap, success rate off, failure percentage enforced', async () => {
    const { byName: got } = await clusters(SIDECAR);
    expect([...got.keys()].sort()).toEqual([WITHOUT_OD, WITH_OD, SERVICE].sort());
    const withOd = decodeSidecarCluster(got.get(WITH_OD) ?? new Uint8Array());
    expect(withOd.outlier_detection).toEqual(EXPECTED);
    expect(withOd.transport_socket.name).toBe('envoy.transport_sockets.tls');
    expect(withOd.eds_cluster_config.service_name).toBe(WITH_OD);
    expect(decodeSidecarCluster(got.get(WITHOUT_OD) ?? new Uint8Array())).not.toHaveProperty('outlier_detection');
    expect(decodeSidecarCluster(got.get(SERVICE) ?? new Uint8Array())).not.toHaveProperty('outlier_detection');
  });

  it('a proxyless client gets the same message; grpc takes the interval, ejection time, cap and failure-percentage ejection', async () => {
    const { byName: got } = await clusters(PROXYLESS);
    expect([...got.keys()].sort()).toEqual([WITHOUT_OD, WITH_OD, SERVICE].sort());
    const bytes = got.get(WITH_OD) ?? new Uint8Array();
    expect(decodeCluster(bytes).outlier_detection).toEqual(EXPECTED);
    expect(decodeCluster(got.get(WITHOUT_OD) ?? new Uint8Array())).not.toHaveProperty('outlier_detection');
    expect(decodeCluster(got.get(SERVICE) ?? new Uint8Array())).not.toHaveProperty('outlier_detection');

    const decoded = ClusterResourceType.get().decode(grpcContext, { type_url: CDS, value: Buffer.from(bytes) });
    expect(decoded.error).toBeUndefined();
    const update = (decoded.value as CdsUpdate).outlierDetectionUpdate;
    expect(update).toMatchObject({ interval: { seconds: 10, nanos: 0 }, base_ejection_time: { seconds: 90, nanos: 0 }, max_ejection_percent: 50 });
    // consecutive_* are not read by grpc and success rate is off: failure percentage is the one detection it runs
    expect(update?.success_rate_ejection).toBeUndefined();
    expect(update?.failure_percentage_ejection).toEqual({ enforcement_percentage: 100, threshold: 60, minimum_hosts: 2, request_volume: 10 });
  });

  it('0 turns a count off and caps ejections at none, literally; a change is pushed to an open stream', async () => {
    const { stream } = await clusters(SIDECAR);
    provider.setVirtualDestinations([vd('reviews', 'reviews.global', { outlierDetection: { consecutive5xx: 0, maxEjectionPercent: 0 } }), PLAIN]);
    const pushed = await nextClusters(stream);
    expect(decodeSidecarCluster(pushed.get(WITH_OD) ?? new Uint8Array()).outlier_detection).toEqual({
      consecutive_5xx: {},
      enforcing_consecutive_5xx: {},
      max_ejection_percent: {},
      enforcing_success_rate: {},
    });
    provider.setVirtualDestinations(VDS);
    const back = await nextClusters(stream);
    expect(decodeSidecarCluster(back.get(WITH_OD) ?? new Uint8Array()).outlier_detection).toEqual(EXPECTED);
  });

  it('a failure threshold of 0 is sent as 0, not left to the default 85; minimumHosts and requestVolume left out are sent as Envoy\'s defaults', async () => {
    const { stream: sidecar } = await clusters(SIDECAR);
    const { stream: proxyless } = await clusters(PROXYLESS);
    provider.setVirtualDestinations([vd('reviews', 'reviews.global', { outlierDetection: { failurePercentage: { threshold: 0 } } }), PLAIN]);
    const expected: OutlierDetectionObject = {
      enforcing_success_rate: {},
      enforcing_failure_percentage: { value: 100 },
      failure_percentage_threshold: {},
      failure_percentage_minimum_hosts: { value: 5 },
      failure_percentage_request_volume: { value: 50 },
    };
    expect(decodeSidecarCluster((await nextClusters(sidecar)).get(WITH_OD) ?? new Uint8Array()).outlier_detection).toEqual(expected);
    const bytes = (await nextClusters(proxyless)).get(WITH_OD) ?? new Uint8Array();
    expect(decodeCluster(bytes).outlier_detection).toEqual(expected);
    const decoded = ClusterResourceType.get().decode(grpcContext, { type_url: CDS, value: Buffer.from(bytes) });
    expect(decoded.error).toBeUndefined();
    const update = (decoded.value as CdsUpdate).outlierDetectionUpdate;
    expect(update?.success_rate_ejection).toBeUndefined();
    // written out, because grpc-js would take a field left out as undefined rather than as its default
    expect(update?.failure_percentage_ejection).toEqual({ enforcement_percentage: 100, threshold: 0, minimum_hosts: 5, request_volume: 50 });
    provider.setVirtualDestinations(VDS);
    await nextClusters(sidecar);
    await nextClusters(proxyless);
  });
});
