/**
 * EDS: a split-horizon LoadAssignment (src/topology) as an envoy.config.endpoint.v3.ClusterLoadAssignment.
 *
 * Objects are in the form described in ../envoy-protos.ts (snake_case field names, numeric enums, proto3 defaults
 * left out: a priority of 0 and empty locality fields are not written). Everything built here is checked against
 * what grpc NACKs or silently mishandles (DESIGN.md, "xDS facts learned with the real client"), and encoded by the
 * strict wire encoder of ./cla-wire.ts, which refuses any key the message does not have (as checkedEncode's round
 * trip would, at a fraction of its cost: this is the hot path of every endpoint change).
 * assertClusterLoadAssignment adds the full protobufjs round trip.
 */
import { isIP } from 'node:net';
import type { LbHealth, LoadAssignment } from '../../topology/index.js';
import {
  MESSAGE_NAME,
  HEALTH_STATUS,
  TYPE_URL,
  assertEncodable,
  clusterLoadAssignmentType,
  type HealthStatusValue,
  resourceCodec,
} from '../envoy-protos.js';
import { encodeClaWire } from './cla-wire.js';

export interface UInt32ValueObject {
  value: number;
}

export interface SocketAddressObject {
  address: string;
  port_value?: number;
}

export interface LbEndpointObject {
  endpoint: { address: { socket_address: SocketAddressObject } };
  health_status: HealthStatusValue;
  load_balancing_weight: UInt32ValueObject;
}

export interface LocalityObject {
  region?: string;
  zone?: string;
  sub_zone?: string;
}

export interface LocalityLbEndpointsObject {
  locality: LocalityObject;
  lb_endpoints: LbEndpointObject[];
  load_balancing_weight: UInt32ValueObject;
  /** left out when 0 */
  priority?: number;
}

export interface ClusterLoadAssignmentObject {
  cluster_name: string;
  /** left out when empty */
  endpoints?: LocalityLbEndpointsObject[];
}

const HEALTH: Record<LbHealth, HealthStatusValue> = {
  HEALTHY: HEALTH_STATUS.HEALTHY,
  UNHEALTHY: HEALTH_STATUS.UNHEALTHY,
  DRAINING: HEALTH_STATUS.DRAINING,
};

/**
 * The ClusterLoadAssignment for EDS cluster `clusterName`: one LocalityLbEndpoints per locality group (locality,
 * priority, load_balancing_weight always set), one LbEndpoint per endpoint (socket address, health status,
 * load_balancing_weight). Throws when the result breaks a grpc rule or does not survive the protos (see
 * assertClusterLoadAssignment).
 */
export function clusterLoadAssignment(clusterName: string, assignment: LoadAssignment): ClusterLoadAssignmentObject {
  const endpoints = assignment.groups.map((g): LocalityLbEndpointsObject => {
    const locality: LocalityObject = {};
    if (g.locality.region !== '') locality.region = g.locality.region;
    if (g.locality.zone !== '') locality.zone = g.locality.zone;
    if (g.locality.subzone !== '') locality.sub_zone = g.locality.subzone;
    const group: LocalityLbEndpointsObject = {
      locality,
      lb_endpoints: g.endpoints.map((e) => {
        const socket: SocketAddressObject = { address: e.address };
        if (e.port !== 0) socket.port_value = e.port;
        return { endpoint: { address: { socket_address: socket } }, health_status: HEALTH[e.health], load_balancing_weight: { value: e.weight } };
      }),
      load_balancing_weight: { value: g.weight },
    };
    if (g.priority !== 0) group.priority = g.priority;
    return group;
  });
  const cla: ClusterLoadAssignmentObject = { cluster_name: clusterName };
  if (endpoints.length > 0) cla.endpoints = endpoints;
  // the shape is this function's own (the tests round-trip every shape it makes); the data is what can break a rule
  assertGrpcRules(cla);
  return cla;
}

const fail = (cluster: string, message: string): never => {
  throw new Error(`ClusterLoadAssignment ${JSON.stringify(cluster)}: ${message}`);
};

/**
 * Throws a clear Error unless `cla` is one grpc accepts and uses as meant:
 * - a non-empty cluster_name;
 * - every LocalityLbEndpoints has load_balancing_weight.value in 1..2^32-1 (grpc drops a locality without one);
 * - every LbEndpoint has a socket address that is an IP literal with a port in 1..65535 and a weight in 1..2^32-1;
 * - no address:port appears twice anywhere, no (locality, priority) pair twice, priorities contiguous from 0;
 * and the protos accept it without dropping or changing anything (checkedEncode).
 */
export function assertClusterLoadAssignment(cla: ClusterLoadAssignmentObject): void {
  assertGrpcRules(cla);
  assertEncodable(clusterLoadAssignmentType(), cla);
}

// Runs on every EDS rebuild: the error messages (and the paths in them) are only built when a rule is broken.
function assertGrpcRules(cla: ClusterLoadAssignmentObject): void {
  const name = cla.cluster_name;
  if (name === '') fail(name, 'cluster_name is empty');
  /** address|port → [group, endpoint] index of its first occurrence */
  const seenAddresses = new Map<string, [number, number]>();
  const seenGroups = new Set<string>();
  const priorities = new Set<number>();
  const groups = cla.endpoints ?? [];
  for (let gi = 0; gi < groups.length; gi++) {
    const group = groups[gi] as LocalityLbEndpointsObject;
    const priority = group.priority ?? 0;
    if (!Number.isInteger(priority) || priority < 0) fail(name, `endpoints[${gi}].priority ${priority} is not a non-negative integer`);
    priorities.add(priority);
    checkWeight(name, gi, undefined, group.load_balancing_weight);
    const l = group.locality as LocalityObject | undefined;
    const groupKey = `${l?.region ?? ''}\u0000${l?.zone ?? ''}\u0000${l?.sub_zone ?? ''}\u0000${priority}`;
    if (seenGroups.has(groupKey)) fail(name, `endpoints[${gi}]: locality ${JSON.stringify(l ?? {})} appears twice at priority ${priority}`);
    seenGroups.add(groupKey);
    const lbs = group.lb_endpoints;
    if (lbs.length === 0) fail(name, `endpoints[${gi}].lb_endpoints is empty`);
    for (let ei = 0; ei < lbs.length; ei++) {
      const lb = lbs[ei] as LbEndpointObject;
      const socket = (lb.endpoint as LbEndpointObject['endpoint'] | undefined)?.address.socket_address;
      if (!socket) return fail(name, `${endpointPath(gi, ei)}.endpoint.address.socket_address is missing`);
      if (isIP(socket.address) === 0) fail(name, `${endpointPath(gi, ei)}: address ${JSON.stringify(socket.address)} is not an IP literal (grpc needs IP addresses in EDS)`);
      const port = socket.port_value ?? 0;
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail(name, `${endpointPath(gi, ei)}: port ${port} is not in 1..65535`);
      const key = `${socket.address.toLowerCase()}|${port}`;
      const first = seenAddresses.get(key);
      if (first !== undefined) fail(name, `${endpointPath(gi, ei)}: address ${formatAddress(socket.address, port)} duplicates ${endpointPath(...first)} (grpc NACKs duplicate addresses)`);
      seenAddresses.set(key, [gi, ei]);
      checkWeight(name, gi, ei, lb.load_balancing_weight);
    }
  }
  const sorted = [...priorities].sort((a, b) => a - b);
  sorted.forEach((p, i) => {
    if (p !== i) fail(name, `priorities ${sorted.join(',')} are not contiguous from 0 (grpc NACKs gaps)`);
  });
}

const endpointPath = (gi: number, ei: number): string => `endpoints[${gi}].lb_endpoints[${ei}]`;

/** The weight of group `gi` (`ei` undefined) or of its endpoint `ei`. */
function checkWeight(cluster: string, gi: number, ei: number | undefined, weight: UInt32ValueObject | undefined): void {
  if (weight === undefined) return fail(cluster, `${weightPath(gi, ei)} is missing (grpc drops a locality without one)`);
  const v = weight.value;
  if (!Number.isInteger(v) || v < 1 || v > 0xffff_ffff) fail(cluster, `${weightPath(gi, ei)}.value ${v} is not in 1..2^32-1`);
}

const weightPath = (gi: number, ei: number | undefined): string => `${ei === undefined ? `endpoints[${gi}]` : endpointPath(gi, ei)}.load_balancing_weight`;

const formatAddress = (address: string, port: number): string => (isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`);

/**
 * The wire bytes of clusterLoadAssignment(clusterName, assignment): built, checked once (the grpc rules) and encoded by
 * the strict wire encoder, which still refuses any key the message does not have. The provider's hot path: the object
 * never leaves this function, so it cannot change between the check and the encode.
 */
export function encodeLoadAssignment(clusterName: string, assignment: LoadAssignment): Uint8Array {
  return encodeClaWire(clusterLoadAssignment(clusterName, assignment));
}

const codec = resourceCodec<ClusterLoadAssignmentObject>(MESSAGE_NAME.clusterLoadAssignment, TYPE_URL.clusterLoadAssignment, assertGrpcRules, encodeClaWire);
/** The wire bytes of a checked resource. */
export const encodeClusterLoadAssignment = codec.encode;
/** Bytes back to the object form. */
export const decodeClusterLoadAssignment = codec.decode;
export const toAny = codec.toAny;
