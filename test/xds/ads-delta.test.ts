/**
 * The delta ADS stream (src/xds/ads-delta.ts, registered by src/xds/ads-server.ts) against a raw client: @grpc/grpc-js
 * with the same ads.proto (proto-loader) calling DeltaAggregatedResources, driving what a real proxy rarely does on
 * cue (NACKs, stale nonces, reconnects with initial_resource_versions, garbage). The provider is a tiny in-test one
 * serving ClusterLoadAssignments built by src/xds/resources/endpoints.ts; each server and provider is fresh per test.
 */
import * as grpc from '@grpc/grpc-js';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { assignment, addressOf } from './one-endpoint.js';
import { RawStream } from './raw-ads-stream.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';
import {
  ADS_DELTA_METHOD_PATH,
  ADS_METHOD_PATH,
  adsServiceDefinition,
  type DeltaDiscoveryRequestObject,
  type DeltaDiscoveryResponseObject,
  type DiscoveryRequestObject,
  type DiscoveryResponseObject,
  type NodeObject,
} from '../../src/xds/ads-protocol.js';
import { startAdsServer, type AdsServerHandle, type EncodedResource, type NodeIdentity, type ResourceProvider, type ResourceSet } from '../../src/xds/ads-server.js';
import { clusterLoadAssignment, decodeClusterLoadAssignment, toAny } from '../../src/xds/resources/endpoints.js';

const EDS = TYPE_URL.clusterLoadAssignment;
const UNKNOWN_TYPE = 'type.googleapis.com/no.such.Type';
const A = 'outbound|80||a.ns.svc.cluster.local';
const B = 'outbound|80||b.ns.svc.cluster.local';
const C = 'outbound|80||c.ns.svc.cluster.local';


/**
 * EDS only; one counter per cluster name (its content); names [] = everything. The encoded bytes of a name are
 * reused until its counter changes, as a real provider's cache would.
 */
class DeltaTestProvider implements ResourceProvider {
  readonly versions: Map<string, number>;
  /** node ids the provider throws for */
  readonly failFor = new Set<string>();
  /** give each resource its own version (`name#n`) instead of leaving it to the server */
  ownVersions = false;
  private readonly encoded = new Map<string, { n: number; value: Uint8Array; typeUrl: string }>();
  private readonly listeners = new Set<(typeUrl: string, names?: ReadonlySet<string>) => void>();
  private changes = 0;
  /** resources() calls per node id */
  readonly calls = new Map<string, number>();

  constructor(names: readonly string[]) {
    this.versions = new Map(names.map((n) => [n, 1]));
  }

  resources(node: NodeIdentity, typeUrl: string, names: readonly string[]): ResourceSet | undefined {
    this.calls.set(node.id, (this.calls.get(node.id) ?? 0) + 1);
    if (this.failFor.has(node.id)) throw new Error('provider failure');
    if (typeUrl !== EDS) return undefined;
    const wanted = names.length === 0 ? [...this.versions.keys()] : names.filter((n) => this.versions.has(n));
    return { version: String(this.changes), resources: wanted.map((n) => this.encode(n)) };
  }

  private encode(name: string): EncodedResource {
    const n = this.versions.get(name) ?? 0;
    let e = this.encoded.get(name);
    if (e?.n !== n) {
      const any = toAny(clusterLoadAssignment(name, assignment(n)));
      e = { n, value: any.value, typeUrl: any.type_url };
      this.encoded.set(name, e);
    }
    const r: EncodedResource = { name, typeUrl: e.typeUrl, value: e.value };
    if (this.ownVersions) r.version = `${name}#${String(n)}`;
    return r;
  }

  subscribe(listener: (typeUrl: string, names?: ReadonlySet<string>) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** `name` now has content `n`, announced (naming it when `named`) */
  set(name: string, n: number, named = false): void {
    this.versions.set(name, n);
    this.changes++;
    for (const l of this.listeners) l(EDS, named ? new Set([name]) : undefined);
  }

  bump(name: string): void {
    this.set(name, (this.versions.get(name) ?? 0) + 1);
  }

  remove(name: string): void {
    this.versions.delete(name);
    this.changes++;
    this.announce(EDS);
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

const { method, deltaMethod } = adsServiceDefinition();

type DeltaStream = RawStream<DeltaDiscoveryRequestObject, DeltaDiscoveryResponseObject>;

/** waits (bounded) until `cond` holds */
async function until(cond: () => boolean, ms = 3000): Promise<void> {
  const deadline = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > deadline) throw new Error(`condition not met within ${String(ms)} ms`);
    await new Promise((r) => setTimeout(r, 5));
  }
}

/** The resources of a delta response by name, each checked against its own payload (type URL, cluster_name). */
function byName(res: DeltaDiscoveryResponseObject): Map<string, { version: string; address: string | undefined }> {
  const out = new Map<string, { version: string; address: string | undefined }>();
  for (const r of res.resources ?? []) {
    const name = r.name ?? '';
    expect(out.has(name), `${name} twice in one response`).toBe(false);
    expect(r.resource?.type_url).toBe(EDS);
    const cla = decodeClusterLoadAssignment(r.resource?.value ?? new Uint8Array());
    expect(cla.cluster_name).toBe(name);
    expect(r.version).toBeTruthy();
    out.set(name, { version: r.version ?? '', address: cla.endpoints?.[0]?.lb_endpoints[0]?.endpoint.address.socket_address.address });
  }
  return out;
}

const namesOf = (res: DeltaDiscoveryResponseObject): string[] => [...byName(res).keys()].sort();
const removedOf = (res: DeltaDiscoveryResponseObject): string[] => [...(res.removed_resources ?? [])].sort();

describe('delta ADS stream', () => {
  let provider: DeltaTestProvider;
  let server: AdsServerHandle;
  let client: grpc.Client;
  const open: { close(): void }[] = [];
  const warnings: { obj: object; msg: string | undefined }[] = [];

  const start = async (p: DeltaTestProvider): Promise<void> => {
    provider = p;
    const logger = {
      debug: () => undefined,
      info: () => undefined,
      warn: (obj: object, msg?: string) => warnings.push({ obj, msg }),
      error: (obj: object, msg?: string) => warnings.push({ obj, msg }),
    };
    server = await startAdsServer({ host: '127.0.0.1', port: 0, provider, logger });
    client = new grpc.Client(`127.0.0.1:${String(server.port)}`, grpc.credentials.createInsecure(), { 'grpc.max_receive_message_length': 64 * 1024 * 1024 });
  };

  const delta = (serialize: (req: DeltaDiscoveryRequestObject) => Buffer = deltaMethod.requestSerialize): DeltaStream => {
    const s = new RawStream(client, ADS_DELTA_METHOD_PATH, serialize, deltaMethod.responseDeserialize);
    open.push(s);
    return s;
  };

  /** ACKs `res` (optionally with interest changes) and waits until the server has counted it */
  const ack = async (s: DeltaStream, res: DeltaDiscoveryResponseObject, more: DeltaDiscoveryRequestObject = {}): Promise<void> => {
    const acks = server.counters.acks;
    s.send({ type_url: res.type_url, response_nonce: res.nonce, ...more });
    await until(() => server.counters.acks > acks);
  };

  /** a delta stream whose first request is `first` (plus node and EDS), its first response ACKed */
  const opened = async (first: DeltaDiscoveryRequestObject = {}): Promise<{ s: DeltaStream; res: DeltaDiscoveryResponseObject }> => {
    const s = delta();
    s.send({ node: NODE, type_url: EDS, ...first });
    const res = await s.next();
    await ack(s, res);
    return { s, res };
  };

  beforeEach(async () => {
    warnings.length = 0;
    await start(new DeltaTestProvider([A, B, C]));
  });

  afterEach(async () => {
    for (const s of open.splice(0)) s.close();
    client.close();
    await server.close();
  });

  it('a wildcard subscription gets every resource with its version; a change pushes only that resource', async () => {
    const s = delta();
    s.send({ node: NODE, type_url: EDS });
    const first = await s.next();
    expect(first.type_url).toBe(EDS);
    expect(first.nonce).toBeTruthy();
    const got = byName(first);
    expect([...got.keys()].sort()).toEqual([A, B, C].sort());
    expect(removedOf(first)).toEqual([]);
    expect(new Set([...got.values()].map((r) => r.version)).size).toBe(3);
    await ack(s, first);

    const pushes = server.counters.pushes;
    provider.bump(B);
    const pushed = await s.next();
    const changed = byName(pushed);
    expect([...changed.keys()]).toEqual([B]);
    expect(changed.get(B)?.version).not.toBe(got.get(B)?.version);
    expect(changed.get(B)?.address).toBe(addressOf(2));
    expect(removedOf(pushed)).toEqual([]);
    expect(pushed.nonce).not.toBe(first.nonce);
    expect(server.counters.pushes).toBe(pushes + 1);
    await ack(s, pushed);

    provider.announce(EDS); // announced, but nothing differs for this stream
    expect(await s.quiet()).toBe(true);
  });

  it('a change that names its resources re-evaluates only wildcard streams and those subscribed to one of them', async () => {
    const onA = await opened({ node: { ...NODE, id: 'on-a' }, resource_names_subscribe: [A] });
    const onB = await opened({ node: { ...NODE, id: 'on-b' }, resource_names_subscribe: [B] });
    const all = await opened({ node: { ...NODE, id: 'all' } });
    const before = new Map(provider.calls);
    provider.set(B, 7, true);
    const [pushedB, pushedAll] = await Promise.all([onB.s.next(), all.s.next()]);
    expect(namesOf(pushedB)).toEqual([B]);
    expect(namesOf(pushedAll)).toEqual([B]);
    expect(provider.calls.get('on-a')).toBe(before.get('on-a'));
    expect(provider.calls.get('on-b')).toBe((before.get('on-b') ?? 0) + 1);
    expect(await onA.s.quiet()).toBe(true);
  });

  it('explicit subscribe and unsubscribe change what is sent, and each response carries only what is new', async () => {
    const { s, res: first } = await opened({ resource_names_subscribe: [A] });
    expect(namesOf(first)).toEqual([A]);

    s.send({ type_url: EDS, resource_names_subscribe: [B] }); // an interest change without a nonce
    const second = await s.next();
    expect(namesOf(second)).toEqual([B]); // A is not sent again
    await ack(s, second, { resource_names_unsubscribe: [A] });
    expect(await s.quiet()).toBe(true); // unsubscribing sends nothing (no removal either)

    provider.bump(A); // no longer subscribed
    expect(await s.quiet()).toBe(true);
    provider.bump(C); // never subscribed
    expect(await s.quiet()).toBe(true);
    provider.bump(B);
    const pushed = await s.next();
    expect(namesOf(pushed)).toEqual([B]);
    expect(byName(pushed).get(B)?.address).toBe(addressOf(2));
    await ack(s, pushed);

    s.send({ type_url: EDS, resource_names_subscribe: [A] }); // subscribed again: its current version
    const again = await s.next();
    expect(namesOf(again)).toEqual([A]);
    expect(byName(again).get(A)?.address).toBe(addressOf(2));
    await ack(s, again);

    s.send({ type_url: EDS, resource_names_subscribe: [B] }); // a name it holds, named again: sent again
    expect(namesOf(await s.next())).toEqual([B]);
  });

  it("an explicit '*' subscribes to everything; unsubscribing '*' leaves wildcard mode and keeps the named resources", async () => {
    const { s, res: first } = await opened({ resource_names_subscribe: [A] });
    expect(namesOf(first)).toEqual([A]);

    s.send({ type_url: EDS, resource_names_subscribe: ['*'] });
    const all = await s.next();
    expect(namesOf(all)).toEqual([B, C].sort()); // A is held already
    await ack(s, all);

    s.send({ type_url: EDS, resource_names_unsubscribe: ['*'] });
    expect(await s.quiet()).toBe(true);
    provider.bump(B); // held only through the wildcard: no longer sent
    expect(await s.quiet()).toBe(true);
    provider.remove(C); // dropped with the wildcard: no removal either
    expect(await s.quiet()).toBe(true);
    provider.bump(A); // still named
    const pushed = await s.next();
    expect(namesOf(pushed)).toEqual([A]);
    expect(removedOf(pushed)).toEqual([]);
  });

  it('a resource that disappears is reported in removed_resources; a subscribed name that never existed gets nothing', async () => {
    const { s: wildcard } = await opened();
    const { s: named, res: first } = await opened({ resource_names_subscribe: [A, 'outbound|80||nope.ns.svc.cluster.local'] });
    expect(namesOf(first)).toEqual([A]);
    expect(removedOf(first)).toEqual([]);

    provider.remove(A);
    for (const s of [wildcard, named]) {
      const pushed = await s.next();
      expect(pushed.resources ?? []).toEqual([]);
      expect(removedOf(pushed)).toEqual([A]);
      await ack(s, pushed);
    }
    provider.remove(C); // only the wildcard stream held C
    const wildcardPush = await wildcard.next();
    expect(removedOf(wildcardPush)).toEqual([C]);
    expect(await named.quiet()).toBe(true);

    provider.set(A, 7); // back: sent again, to both
    expect(byName(await named.next()).get(A)?.address).toBe(addressOf(7));
    expect(namesOf(await wildcard.next())).toEqual([A]);
  });

  it('a reconnect with initial_resource_versions: an equal version is not resent, another is, a gone one is removed', async () => {
    const { s, res: first } = await opened();
    const held = byName(first);
    s.close();
    provider.bump(B);
    provider.remove(C);
    const initial = Object.fromEntries([...held].map(([name, r]) => [name, r.version]));

    const again = delta();
    again.send({ node: NODE, type_url: EDS, initial_resource_versions: initial });
    const res = await again.next();
    expect(namesOf(res)).toEqual([B]);
    expect(byName(res).get(B)?.address).toBe(addressOf(2));
    expect(removedOf(res)).toEqual([C]);

    // explicit names: an up-to-date reconnect is answered (empty), so the client's initial fetch completes
    const upToDate = delta();
    upToDate.send({ node: NODE, type_url: EDS, resource_names_subscribe: [A], initial_resource_versions: { 'outbound|80||unsubscribed.ns.svc.cluster.local': 'x', [A]: held.get(A)?.version ?? '' } });
    const empty = await upToDate.next();
    expect(empty.resources ?? []).toEqual([]);
    expect(removedOf(empty)).toEqual([]);

    // a subscribed name the provider does not have, that the client claims to hold: removed, once
    const claims = delta();
    claims.send({ node: NODE, type_url: EDS, resource_names_subscribe: [A, C], initial_resource_versions: { [A]: 'an old version', [C]: held.get(C)?.version ?? '' } });
    const claimed = await claims.next();
    expect(namesOf(claimed)).toEqual([A]);
    expect(removedOf(claimed)).toEqual([C]);
    await ack(claims, claimed);
    provider.bump(B); // not subscribed; and C is not reported again
    expect(await claims.quiet()).toBe(true);
  });

  it('a NACK is logged and counted; the rejected version is not sent again, a newer one is, and the client keeps what it accepted', async () => {
    const { s } = await opened({ resource_names_subscribe: [A, B] });
    provider.bump(A);
    const bad = await s.next();
    expect(namesOf(bad)).toEqual([A]);
    const nacks = server.counters.nacks;
    s.send({ type_url: EDS, response_nonce: bad.nonce, error_detail: { code: 3, message: 'duplicate address' } });
    await until(() => server.counters.nacks > nacks);
    expect(warnings.some((w) => w.msg === 'ADS delta: NACK' && JSON.stringify(w.obj).includes('duplicate address') && JSON.stringify(w.obj).includes(A))).toBe(true);
    expect(await s.quiet()).toBe(true);

    provider.bump(B); // an unrelated change: B only, the rejected A is not sent again
    const other = await s.next();
    expect(namesOf(other)).toEqual([B]);
    await ack(s, other);

    provider.set(A, 1); // back to what the client accepted: nothing to send
    expect(await s.quiet()).toBe(true);

    provider.set(A, 3); // a newer version: sent
    const fixed = await s.next();
    expect(namesOf(fixed)).toEqual([A]);
    expect(byName(fixed).get(A)?.address).toBe(addressOf(3));
    await ack(s, fixed);
    expect(server.counters.nacks).toBe(nacks + 1);
  });

  it('a stale nonce is ignored for ACK/NACK, but the subscriptions it carries apply; nonces are unique per stream', async () => {
    const s = delta();
    s.send({ node: NODE, type_url: EDS, resource_names_subscribe: [A] });
    const first = await s.next();
    provider.bump(A);
    const pushed = await s.next(); // not ACKed yet: `first` is now stale
    const stale = server.counters.staleNonces;
    const acks = server.counters.acks;
    const nacks = server.counters.nacks;

    s.send({ type_url: EDS, response_nonce: first.nonce, resource_names_subscribe: [B] });
    const third = await s.next();
    expect(namesOf(third)).toEqual([B]);
    s.send({ type_url: EDS, response_nonce: pushed.nonce, error_detail: { message: 'too late' } }); // superseded by `third`
    s.send({ type_url: EDS, response_nonce: 'no-such-nonce' });
    await until(() => server.counters.staleNonces === stale + 3);
    expect(server.counters.acks).toBe(acks);
    expect(server.counters.nacks).toBe(nacks);

    // the stale NACK was not taken: the client is still taken to hold A@2, so going back to A@1 is sent
    provider.set(A, 1);
    const back = await s.next();
    expect(byName(back).get(A)?.address).toBe(addressOf(1));
    await ack(s, back);
    expect(new Set([first, pushed, third, back].map((r) => r.nonce)).size).toBe(4);
  });

  it('garbage (no node, no type_url, undecodable bytes) does not disturb another open stream', async () => {
    const { s: good, res: first } = await opened();
    const malformed = server.counters.malformed;

    const noNode = delta();
    noNode.send({ type_url: EDS, resource_names_subscribe: [A] });
    expect((await noNode.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);
    const emptyId = delta();
    emptyId.send({ node: { id: '' }, type_url: EDS });
    expect((await emptyId.ended()).code).toBe(grpc.status.INVALID_ARGUMENT);

    const noType = delta();
    noType.send({ node: NODE, resource_names_subscribe: [A] });
    noType.send({ type_url: EDS, resource_names_subscribe: [A] }); // the stream is still usable
    expect(namesOf(await noType.next())).toEqual([A]);
    expect(server.counters.malformed).toBe(malformed + 3);

    const undecodable = delta(() => Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01]));
    undecodable.send({});
    expect((await undecodable.ended()).code).not.toBe(grpc.status.OK);

    provider.bump(A);
    const pushed = await good.next();
    expect(namesOf(pushed)).toEqual([A]);
    expect(pushed.nonce).not.toBe(first.nonce);
    expect(good.status).toBeUndefined();
  });

  it('a type the provider does not serve gets one empty response; a provider that throws hurts only that stream', async () => {
    const unknown = server.counters.unknownTypes;
    const s = delta();
    s.send({ node: NODE, type_url: UNKNOWN_TYPE, resource_names_subscribe: ['x'] });
    const res = await s.next();
    expect(res.type_url).toBe(UNKNOWN_TYPE);
    expect(res.resources ?? []).toEqual([]);
    expect(removedOf(res)).toEqual([]);
    expect(server.counters.unknownTypes).toBe(unknown + 1);
    s.send({ type_url: UNKNOWN_TYPE, resource_names_subscribe: ['y'] });
    provider.announce(UNKNOWN_TYPE);
    expect(await s.quiet()).toBe(true);
    expect(server.counters.unknownTypes).toBe(unknown + 1);

    provider.failFor.add('boom');
    const errors = server.counters.providerErrors;
    const boom = delta();
    boom.send({ node: { id: 'boom' }, type_url: EDS, resource_names_subscribe: [A] });
    const { s: fine, res: fineFirst } = await opened({ resource_names_subscribe: [A] });
    expect(namesOf(fineFirst)).toEqual([A]);
    expect(await boom.quiet()).toBe(true);
    expect(server.counters.providerErrors).toBe(errors + 1);
    expect(boom.status).toBeUndefined();

    provider.failFor.delete('boom');
    provider.bump(A); // the next push tries again
    expect(byName(await boom.next()).get(A)?.address).toBe(addressOf(2));
    expect(namesOf(await fine.next())).toEqual([A]);
  });

  it("a provider's own per-resource version is sent as is", async () => {
    provider.ownVersions = true;
    const { s, res: first } = await opened({ resource_names_subscribe: [A, B] });
    expect(Object.fromEntries([...byName(first)].map(([n, r]) => [n, r.version]))).toEqual({ [A]: `${A}#1`, [B]: `${B}#1` });
    provider.bump(A);
    expect(byName(await s.next()).get(A)?.version).toBe(`${A}#2`);
  });

  it('SotW and delta streams side by side on one server both receive a change', async () => {
    const sotw = new RawStream<DiscoveryRequestObject, DiscoveryResponseObject>(client, ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
    open.push(sotw);
    sotw.send({ node: NODE, type_url: EDS, resource_names: [A] });
    const sotwFirst = await sotw.next();
    const acks = server.counters.acks;
    sotw.send({ type_url: EDS, resource_names: [A], version_info: sotwFirst.version_info, response_nonce: sotwFirst.nonce });
    await until(() => server.counters.acks > acks);
    const { s } = await opened();
    expect(server.streams()).toBe(2);

    const responses = server.counters.responses;
    provider.bump(A);
    const sotwPush = await sotw.next();
    expect(sotwPush.version_info).not.toBe(sotwFirst.version_info);
    expect((sotwPush.resources ?? []).map((r) => decodeClusterLoadAssignment(r.value).cluster_name)).toEqual([A]);
    const deltaPush = await s.next();
    expect(namesOf(deltaPush)).toEqual([A]);
    expect(byName(deltaPush).get(A)?.address).toBe(addressOf(2));
    expect(server.counters.responses).toBe(responses + 2);

    await server.close();
    await sotw.ended();
    await s.ended();
    expect(server.streams()).toBe(0);
  });

  it('10,000 resources in one wildcard stream are delivered whole and correct; then a change sends one', async () => {
    const names = Array.from({ length: 10_000 }, (_, i) => `outbound|80||svc-${String(i)}.ns.svc.cluster.local`);
    for (const s of open.splice(0)) s.close();
    client.close();
    await server.close();
    await start(new DeltaTestProvider(names));

    const s = delta();
    s.send({ node: NODE, type_url: EDS });
    const first = await s.next(30_000);
    const got = byName(first); // decodes and checks every resource
    expect(got.size).toBe(names.length);
    expect([...got.keys()].sort()).toEqual([...names].sort());
    for (const r of got.values()) expect(r.address).toBe(addressOf(1));
    expect(new Set([...got.values()].map((r) => r.version)).size).toBe(names.length);
    await ack(s, first);

    const one = names[4321] ?? '';
    provider.bump(one);
    const pushed = await s.next();
    expect(namesOf(pushed)).toEqual([one]);
    expect(byName(pushed).get(one)?.address).toBe(addressOf(2));
  });
});
