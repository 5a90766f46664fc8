/**
 * The SotW ADS server (src/xds/ads-server.ts) against a raw ADS client: @grpc/grpc-js with the same ads.proto
 * (proto-loader), driving what the grpc xDS client never does (NACKs, stale nonces, reconnects with old versions,
 * garbage). The provider is a tiny in-test one serving ClusterLoadAssignments built by src/xds/resources/endpoints.ts.
 */
import * as grpc from '@grpc/grpc-js';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { assignment } from './one-endpoint.js';
import { RawStream } from './raw-ads-stream.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import { ADS_METHOD_PATH, adsServiceDefinition, encodeDiscoveryResponse, type DiscoveryRequestObject, type DiscoveryResponseObject, type NodeObject } from '../../src/xds/ads-protocol.js';
import { startAdsServer, type AdsServerHandle, type NodeIdentity, type ResourceProvider, type ResourceSet } from '../../src/xds/ads-server.js';
import { clusterLoadAssignment, decodeClusterLoadAssignment, toAny } from '../../src/xds/resources/endpoints.js';

type SotwStream = RawStream<DiscoveryRequestObject, DiscoveryResponseObject>;

const EDS = TYPE_URL.clusterLoadAssignment;
const CDS = 'type.googleapis.com/envoy.config.cluster.v3.Cluster';
const A = 'outbound|80||a.ns.svc.cluster.local';
const B = 'outbound|80||b.ns.svc.cluster.local';

/** EDS only; one version counter per cluster name; the set's version is the names' versions joined. */
class TestProvider implements ResourceProvider {
  readonly versions = new Map<string, number>([
    [A, 1],
    [B, 1],
  ]);
  readonly calls: { node: NodeIdentity; typeUrl: string; names: readonly string[] }[] = [];
  private readonly listeners = new Set<(typeUrl: string, names?: ReadonlySet<string>) => void>();

  resources(node: NodeIdentity, typeUrl: string, names: readonly string[]): ResourceSet | undefined {
    this.calls.push({ node, typeUrl, names });
    if (typeUrl !== EDS) return undefined;
    const known = names.filter((n) => this.versions.has(n));
    return {
      version: known.map((n) => `${n}@${String(this.versions.get(n))}`).join(',') || 'empty',
      resources: known.map((n) => {
        const any = toAny(clusterLoadAssignment(n, assignment(this.versions.get(n) ?? 0)));
        return { name: n, typeUrl: any.type_url, value: any.value };
      }),
    };
  }

  subscribe(listener: (typeUrl: string, names?: ReadonlySet<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** a new version of `name`, announced (naming it when `named`) */
  bump(name: string, named = false): void {
    this.versions.set(name, (this.versions.get(name) ?? 0) + 1);
    for (const l of this.listeners) l(EDS, named ? new Set([name]) : undefined);
  }

  announce(typeUrl: string): void {
    for (const l of this.listeners) l(typeUrl);
  }
}

const NODE: NodeObject = {
  id: 'sidecar~10.0.0.1~pod.ns~ns.svc.cluster.local',
  locality: { region: 'r1', zone: 'z1', sub_zone: 's1' },
  metadata: { fields: { CLUSTER_ID: { stringValue: 'c-a' }, NETWORK: { stringValue: 'net-a' } } },
};

const { method } = adsServiceDefinition();


/** waits (bounded) until `cond` holds */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${String(ms)} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

const names = (res: DiscoveryResponseObject): string[] => (res.resources ?? []).map((a) => decodeClusterLoadAssignment(a.value).cluster_name);

describe('encodeDiscoveryResponse', () => {
  it('writes what proto-loader reads back, for short and long versions and nonces and no resources', () => {
    const any = toAny(clusterLoadAssignment(A, assignment(3)));
    for (const [version_info, nonce, resources] of [
      ['v1', '1', [any]],
      ['', '', []],
      ['x'.repeat(200), 'n'.repeat(20_000), [any, any]],
      ['é', 'ñ', [any]],
    ] as const) {
      const got = method.responseDeserialize(encodeDiscoveryResponse({ version_info, resources, type_url: EDS, nonce }));
      expect(got.version_info ?? '').toBe(version_info);
      expect(got.nonce ?? '').toBe(nonce);
      expect(got.type_url).toBe(EDS);
      expect((got.resources ?? []).map((r) => [r.type_url, Buffer.from(r.value).toString('hex')])).toEqual(resources.map((r) => [r.type_url, Buffer.from(r.value).toString('hex')]));
    }
  });
});

describe('SotW ADS server', () => {
  let provider: TestProvider;
  let server: AdsServerHandle;
  let client: grpc.Client;
  const open: SotwStream[] = [];
  const warnings: { obj: object; msg: string | undefined }[] = [];

  const stream = (c: grpc.Client = client, serialize: (req: DiscoveryRequestObject) => Buffer = method.requestSerialize): SotwStream => {
    const s = new RawStream(c, ADS_METHOD_PATH, serialize, method.responseDeserialize);
    open.push(s);
    return s;
  };

  /** a stream subscribed to `subscribe`, its first response checked and ACKed */
  const subscribed = async (subscribe: string[] = [A]): Promise<{ s: SotwStream; first: DiscoveryResponseObject }> => {
    const s = stream();
    s.send({ node: NODE, type_url: EDS, resource_names: subscribe });
    const first = await s.next();
    const acks = server.counters.acks;
    s.send({ type_url: EDS, resource_names: subscribe, version_info: first.version_info, response_nonce: first.nonce });
    await until(() => server.counters.acks > acks); // so a push that follows is not raced by this ACK
    return { s, first };
  };

  beforeAll(async () => {
    provider = new TestProvider();
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (obj: object, msg?: string) => warnings.push({ obj, msg }),
      error: (obj: object, msg?: string) => warnings.push({ obj, msg }),
    };
    server = await startAdsServer({ host: '127.0.0.1', port: 0, provider, logger, maxMessageBytes: 64 * 1024 });
    client = new grpc.Client(`127.0.0.1:${String(server.port)}`, grpc.credentials.createInsecure());
  });

  afterEach(() => {
    for (const s of open.splice(0)) s.close();
  });

  afterAll(async () => {
    client.close();
    await server.close();
  });

  it('answers the first request with the resources, a version and a nonce; the node identity comes from that request', async () => {
    provider.calls.length = 0;
    const s = stream();
    s.send({ node: NODE, type_url: EDS, resource_names: [B, A] });
    const res = await s.next();
    expect(res.type_url).toBe(EDS);
    expect(res.version_info).toMatch(/@/);
    expect(res.nonce).toBeTruthy();
    expect(names(res).sort()).toEqual([A, B].sort());
    for (const r of res.resources ?? []) expect(r.type_url).toBe(EDS);
    expect(provider.calls[0]?.node).toEqual({ id: NODE.id, cluster: 'c-a', network: 'net-a', locality: { region: 'r1', zone: 'z1', subzone: 's1' } });
    expect(provider.calls[0]?.names).toEqual([A, B]);
  });

  it('an ACK is recorded and nothing is resent', async () => {
    const acks = server.counters.acks;
    const { s } = await subscribed();
    expect(await s.quiet()).toBe(true);
    expect(server.counters.acks).toBe(acks + 1);
  });

  it('a NACK is logged and counted, and the rejected version is not sent again (not even on an unrelated change)', async () => {
    const nacks = server.counters.nacks;
    warnings.length = 0;
    const s = stream();
    s.send({ node: NODE, type_url: EDS, resource_names: [A] });
    const res = await s.next();
    s.send({ type_url: EDS, resource_names: [A], version_info: '', response_nonce: res.nonce, error_detail: { code: 3, message: 'duplicate address' } });
    expect(await s.quiet()).toBe(true);
    expect(server.counters.nacks).toBe(nacks + 1);
    expect(warnings.some((w) => w.msg === 'ADS: NACK' && JSON.stringify(w.obj).includes('duplicate address'))).toBe(true);
    provider.bump(B); // A's version is unchanged: still nothing for this stream
    expect(await s.quiet()).toBe(true);
    provider.bump(A); // a new version of A: pushed
    const next = await s.next();
    expect(next.version_info).not.toBe(res.version_info);
    expect(next.nonce).not.toBe(res.nonce);
  });

  it('a request with a stale nonce is ignored; the current nonce still ACKs', async () => {
    const { s, first } = await subscribed();
    provider.bump(A);
    const pushed = await s.next();
    const stale = server.counters.staleNonces;
    const acks = server.counters.acks;
    // an ACK of the old response, and a NACK with a nonce never sent, both after the push: stale
    s.send({ type_url: EDS, resource_names: [A, B], version_info: first.version_info, response_nonce: first.nonce });
    s.send({ type_url: EDS, resource_names: [A], response_nonce: 'no-such-nonce', error_detail: { message: 'x' } });
    expect(await s.quiet()).toBe(true); // the new names in the stale request were not answered either
    expect(server.counters.staleNonces).toBe(stale + 2);
    s.send({ type_url: EDS, resource_names: [A], version_info: pushed.version_info, response_nonce: pushed.nonce });
    expect(await s.quiet()).toBe(true);
    expect(server.counters.acks).toBe(acks + 1);
  });

  it('an ACK with a new set of names is answered with that set', async () => {
    const s2 = stream();
    s2.send({ node: NODE, type_url: EDS, resource_names: [A] });
    const r1 = await s2.next();
    s2.send({ type_url: EDS, resource_names: [A, B], version_info: r1.version_info, response_nonce: r1.nonce });
    const r2 = await s2.next();
    expect(names(r2).sort()).toEqual([A, B].sort());
    expect(r2.nonce).not.toBe(r1.nonce);
  });

  it('a provider change is pushed, with a new version and nonce, only to streams subscribed to what changed', async () => {
    const { s: onA, first: firstA } = await subscribed([A]);
    const { s: onB } = await subscribed([B]);
    const other = stream(); // subscribed to another type only
    other.send({ node: NODE, type_url: CDS });
    const cds = await other.next();
    expect(cds.resources ?? []).toEqual([]);
    other.send({ type_url: CDS, version_info: cds.version_info, response_nonce: cds.nonce });
    const pushes = server.counters.pushes;
    provider.bump(A);
    const pushed = await onA.next();
    expect(pushed.version_info).not.toBe(firstA.version_info);
    expect(pushed.nonce).not.toBe(firstA.nonce);
    expect(names(pushed)).toEqual([A]);
    expect(decodeClusterLoadAssignment(pushed.resources?.[0]?.value ?? new Uint8Array()).endpoints?.[0]?.lb_endpoints[0]?.endpoint.address.socket_address.address).toBe(
      assignment(provider.versions.get(A) ?? 0).groups[0]?.endpoints[0]?.address,
    );
    expect(await onB.quiet()).toBe(true);
    expect(await other.quiet(50)).toBe(true);
    provider.announce(EDS); // a change announced with no new version: nothing to push
    expect(await onA.quiet()).toBe(true);
    expect(server.counters.pushes).toBeGreaterThanOrEqual(pushes + 1);
  });

  it('an EDS push carries only the assignments that changed; a new request gets them all', async () => {
    const { s, first } = await subscribed([A, B]);
    expect(names(first)).toEqual([A, B]);
    provider.bump(B);
    const pushed = await s.next();
    expect(pushed.version_info).not.toBe(first.version_info);
    expect(names(pushed)).toEqual([B]);
    s.send({ type_url: EDS, resource_names: [A, B], version_info: pushed.version_info, response_nonce: pushed.nonce });
    const fresh = stream();
    fresh.send({ node: NODE, type_url: EDS, resource_names: [A, B] });
    expect(names(await fresh.next())).toEqual([A, B]);
  });

  it('a reconnect with an old version and an empty nonce gets the full current state', async () => {
    const { s, first } = await subscribed([A, B]);
    s.close();
    provider.bump(B);
    const again = stream();
    again.send({ node: NODE, type_url: EDS, resource_names: [A, B], version_info: first.version_info, response_nonce: '' });
    const res = await again.next();
    expect(names(res).sort()).toEqual([A, B].sort());
    expect(res.version_info).not.toBe(first.version_info);
    expect(res.version_info).toContain(`${B}@${String(provider.versions.get(B))}`);
  });

  it('a first request without node (or with an empty node.id) ends the stream with INVALID_ARGUMENT', async () => {
    const s = stream();
    s.send({ type_url: EDS, resource_names: [A] });
    expect((await s.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);
    const t = stream();
    t.send({ node: { id: '' }, type_url: EDS, resource_names: [A] });
    expect((await t.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);
    // a later request may omit node
    const { s: ok } = await subscribed([A]);
    expect(await ok.quiet(100)).toBe(true);
    expect(ok.status).toBeUndefined();
  });

  it('an unknown type is answered with an empty resource list and never pushed', async () => {
    const unknown = server.counters.unknownTypes;
    const s = stream();
    s.send({ node: NODE, type_url: 'type.googleapis.com/no.such.Type', resource_names: ['x'] });
    const res = await s.next();
    expect(res.type_url).toBe('type.googleapis.com/no.such.Type');
    expect(res.resources ?? []).toEqual([]);
    expect(server.counters.unknownTypes).toBe(unknown + 1);
    provider.announce('type.googleapis.com/no.such.Type');
    expect(await s.quiet()).toBe(true);
  });

  it('garbage (undecodable bytes, odd fields, oversized messages) does not disturb another open stream', async () => {
    const { s: good, first } = await subscribed([A]);
    // undecodable bytes: grpc-js refuses them on that stream only
    const garbage = stream(client, () => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    garbage.send({});
    expect((await garbage.ended()).code).not.toBe(grpc.status.OK);
    // decodable but odd: no type_url, metadata of the wrong kinds, a NACK on a nonce never sent
    const odd = stream();
    const malformed = server.counters.malformed;
    odd.send({ node: { id: 'odd', metadata: { fields: { CLUSTER_ID: { kind: 'numberValue' }, NETWORK: {} } }, locality: {} } });
    odd.send({ type_url: EDS, resource_names: ['', '', A], response_nonce: '999', error_detail: { code: -1 } });
    odd.send({ type_url: EDS, resource_names: ['', A] });
    const oddRes = await odd.next();
    expect(names(oddRes)).toEqual([A]);
    expect(server.counters.malformed).toBe(malformed + 1);
    // larger than maxMessageBytes (64 KiB): refused by grpc-js on that stream
    const big = stream();
    big.send({ node: NODE, type_url: EDS, resource_names: [A, 'x'.repeat(100 * 1024)] });
    expect((await big.ended()).code).toBe(grpc.status.RESOURCE_EXHAUSTED);
    // the good stream still works
    provider.bump(A);
    const pushed = await good.next();
    expect(pushed.version_info).not.toBe(first.version_info);
    expect(good.status).toBeUndefined();
  });

  it('a change that names its resources re-evaluates only the streams subscribed to one of them', async () => {
    const onA = await subscribed([A]);
    const onB = await subscribed([B]);
    const onBoth = await subscribed([A, B]);
    const calls = provider.calls.length;
    provider.bump(B, true);
    const [pushedB, pushedBoth] = await Promise.all([onB.s.next(), onBoth.s.next()]);
    expect(names(pushedB)).toEqual([B]);
    // a push of EDS carries only what changed
    expect(names(pushedBoth)).toEqual([B]);
    expect(pushedBoth.version_info).not.toBe(onBoth.first.version_info);
    // the stream on A alone was not even asked about
    expect(provider.calls.slice(calls).map((c) => c.names)).toEqual([[B], [A, B]]);
    expect(await onA.s.quiet()).toBe(true);
  });

  it('streams sent the same set get the same version and resources, each with its own next nonce', async () => {
    const streams = await Promise.all([subscribed([A, B]), subscribed([A, B])]);
    provider.bump(A);
    const pushed = await Promise.all(streams.map(({ s }) => s.next()));
    expect(pushed.map(names)).toEqual([[A], [A]]);
    expect(pushed.map((p) => p.type_url)).toEqual([EDS, EDS]);
    expect(pushed[0]?.version_info).toBe(pushed[1]?.version_info);
    expect(pushed[0]?.resources?.[0]?.value).toEqual(pushed[1]?.resources?.[0]?.value);
    streams.forEach(({ first }, i) => {
      expect(pushed[i]?.nonce).toBe(String(Number(first.nonce) + 1));
    });
  });

  it('200 streams on one server all get their push', async () => {
    const clients = Array.from({ length: 4 }, () => new grpc.Client(`127.0.0.1:${String(server.port)}`, grpc.credentials.createInsecure()));
    try {
      const streams = Array.from({ length: 200 }, (_, i) => stream(clients[i % clients.length]));
      streams.forEach((s, i) => {
        s.send({ node: { ...NODE, id: `proxy-${String(i)}` }, type_url: EDS, resource_names: [B] });
      });
      const firsts = await Promise.all(streams.map((s) => s.next(10_000)));
      streams.forEach((s, i) => {
        const f = firsts[i];
        s.send({ type_url: EDS, resource_names: [B], version_info: f?.version_info, response_nonce: f?.nonce });
      });
      expect(server.streams()).toBeGreaterThanOrEqual(200);
      const pushes = server.counters.pushes;
      provider.bump(B);
      const pushed = await Promise.all(streams.map((s) => s.next(10_000)));
      expect(new Set(pushed.map((p) => p.version_info))).toEqual(new Set([`${B}@${String(provider.versions.get(B))}`]));
      expect(server.counters.pushes - pushes).toBeGreaterThanOrEqual(200);
    } finally {
      for (const s of open.splice(0)) s.close();
      for (const c of clients) c.close();
    }
  });

  it('maxStreamsPerConnection caps concurrent streams on one HTTP/2 connection (the client queues the rest)', async () => {
    const own = await startAdsServer({ host: '127.0.0.1', port: 0, provider: new TestProvider(), maxStreamsPerConnection: 2 });
    const c = new grpc.Client(`127.0.0.1:${String(own.port)}`, grpc.credentials.createInsecure());
    try {
      const [s0, s1, s2] = [stream(c), stream(c), stream(c)];
      for (const s of [s0, s1, s2]) s.send({ node: NODE, type_url: EDS, resource_names: [A] });
      await s0.next();
      await s1.next();
      expect(await s2.quiet(300)).toBe(true);
      expect(own.streams()).toBe(2);
      s0.close();
      expect(names(await s2.next())).toEqual([A]);
    } finally {
      for (const s of open.splice(0)) s.close();
      c.close();
      await own.close();
    }
  });

  it('closing the server ends the open streams', async () => {
    const own = await startAdsServer({ host: '127.0.0.1', port: 0, provider: new TestProvider() });
    const c = new grpc.Client(`127.0.0.1:${String(own.port)}`, grpc.credentials.createInsecure());
    try {
      const s = stream(c);
      s.send({ node: NODE, type_url: EDS, resource_names: [A] });
      await s.next();
      expect(own.streams()).toBe(1);
      await own.close();
      await s.ended();
      expect(own.streams()).toBe(0);
    } finally {
      c.close();
    }
  });
});
