/**
 * Raw ADS clients in a process of their own for xds.bench.ts, so that thousands of proxies reading and ACKing do not
 * share an event loop (or a core) with the server being measured.
 *
 * A "set" is a group of streams opened together against one server: `connections` grpc channels, each with
 * 'grpc.use_local_subchannel_pool' so that each has its own HTTP/2 connection, and the streams dealt round-robin over
 * them. Every stream sends one DiscoveryRequest (its node, EDS, its resource names) and ACKs every response at once:
 * the response's version_info and nonce, the same names, no node (only the first request of a stream carries it).
 *
 * Messages in:  {op:'open', set, port, connections, nodes, streams}   open the set; reply once every stream has had its
 *                                                                     first response and sent its ACK
 *               {op:'arm', set}     from now on, report when every stream of the set has had one more response
 *               {op:'close', set}   end the set's streams and close its channels
 *               {op:'stop'}
 * Messages out: {op:'opened', set}, {op:'armed', set}, {op:'acked', set} (every stream got its next response and
 *               ACKed it), {op:'closed', set}, {op:'failed', message} (a stream ended, or a wait ran out)
 * The process exits when its parent goes away.
 */
import * as grpc from '@grpc/grpc-js';
import { ADS_METHOD_PATH, adsServiceDefinition, type DiscoveryRequestObject, type DiscoveryResponseObject, type NodeObject } from '../../src/xds/ads-protocol.js';
import { TYPE_URL } from '../../src/xds/envoy-protos.js';

export interface StreamSpec {
  /** index into the set's nodes: the stream's node (its id gets the stream's index appended) */
  node: number;
  /** the EDS resource names it subscribes to */
  names: string[];
}

export type ClientsHostRequest =
  | { op: 'open'; set: string; port: number; connections: number; nodes: NodeObject[]; streams: StreamSpec[] }
  | { op: 'arm'; set: string }
  | { op: 'close'; set: string }
  | { op: 'stop' };

export type ClientsHostReply =
  | { op: 'opened'; set: string }
  | { op: 'armed'; set: string }
  | { op: 'acked'; set: string }
  | { op: 'closed'; set: string }
  | { op: 'failed'; message: string };

const OPEN_LIMIT_MS = 120_000;
const { method } = adsServiceDefinition();

interface ClientStream {
  call: grpc.ClientDuplexStream<DiscoveryRequestObject, DiscoveryResponseObject>;
  responses: number;
  /** responses it must have had for the armed round to count it done */
  target: number;
}

interface ClientSet {
  name: string;
  channels: grpc.Client[];
  streams: ClientStream[];
  /** streams still short of their target; the set reports when it reaches 0 */
  waiting: number;
  /** what to send when `waiting` reaches 0 */
  report: ClientsHostReply | undefined;
  closing: boolean;
}

const sets = new Map<string, ClientSet>();

const send = (reply: ClientsHostReply): void => {
  process.send?.(reply);
};

function reached(set: ClientSet): void {
  set.waiting--;
  if (set.waiting === 0 && set.report) {
    const report = set.report;
    set.report = undefined;
    send(report);
  }
}

function open(request: Extract<ClientsHostRequest, { op: 'open' }>): void {
  if (sets.has(request.set)) throw new Error(`set ${request.set} is already open`);
  const channels = Array.from(
    { length: request.connections },
    () => new grpc.Client(`127.0.0.1:${request.port}`, grpc.credentials.createInsecure(), { 'grpc.use_local_subchannel_pool': 1 }),
  );
  const set: ClientSet = { name: request.set, channels, streams: [], waiting: request.streams.length, report: { op: 'opened', set: request.set }, closing: false };
  sets.set(request.set, set);
  const timer = setTimeout(() => {
    if (set.report?.op === 'opened') send({ op: 'failed', message: `set ${set.name}: ${set.waiting} of ${request.streams.length} streams had no first response within ${OPEN_LIMIT_MS} ms` });
  }, OPEN_LIMIT_MS);
  timer.unref();
  for (const [i, spec] of request.streams.entries()) {
    const channel = channels[i % channels.length];
    if (!channel) throw new Error('no channel');
    const call = channel.makeBidiStreamRequest(ADS_METHOD_PATH, method.requestSerialize, method.responseDeserialize);
    const stream: ClientStream = { call, responses: 0, target: 1 };
    set.streams.push(stream);
    call.on('data', (res: DiscoveryResponseObject) => {
      call.write({ version_info: res.version_info ?? '', resource_names: spec.names, type_url: TYPE_URL.clusterLoadAssignment, response_nonce: res.nonce ?? '' });
      stream.responses++;
      if (stream.responses === stream.target) reached(set);
    });
    call.on('status', (status: grpc.StatusObject) => {
      if (!set.closing) send({ op: 'failed', message: `set ${set.name}: stream ${i} ended: ${status.code} ${status.details}` });
    });
    call.on('error', () => undefined);
    const node = request.nodes[spec.node];
    if (!node) throw new Error(`stream ${i}: no node ${spec.node}`);
    call.write({ node: { ...node, id: `${node.id ?? ''}-${i}` }, resource_names: spec.names, type_url: TYPE_URL.clusterLoadAssignment });
  }
}

function arm(name: string): void {
  const set = sets.get(name);
  if (!set) throw new Error(`no set ${name}`);
  set.waiting = set.streams.length;
  for (const stream of set.streams) stream.target = stream.responses + 1;
  set.report = { op: 'acked', set: name };
  send({ op: 'armed', set: name });
}

function close(name: string): void {
  const set = sets.get(name);
  if (!set) throw new Error(`no set ${name}`);
  set.closing = true;
  for (const stream of set.streams) stream.call.cancel();
  for (const channel of set.channels) channel.close();
  sets.delete(name);
  send({ op: 'closed', set: name });
}

process.on('disconnect', () => process.exit(0));

process.on('message', (request: ClientsHostRequest) => {
  try {
    switch (request.op) {
      case 'open':
        open(request);
        break;
      case 'arm':
        arm(request.set);
        break;
      case 'close':
        close(request.set);
        break;
      case 'stop':
        for (const name of [...sets.keys()]) close(name);
        process.exit(0);
    }
  } catch (error) {
    send({ op: 'failed', message: (error as Error).message });
  }
});
