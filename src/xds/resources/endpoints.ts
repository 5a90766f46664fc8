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

function assertGrpcRules(cla: ClusterLoadAssignmentObject): void {
  const name = cla.cluster_name;
  if (name === '') fail(name, 'cluster_name is empty');
  const seenAddresses = new Map<string, string>();
  const seenGroups = new Set<string>();
  const priorities = new Set<number>();
  (cla.endpoints ?? []).forEach((group, gi) => {
    const where = `endpoints[${gi}]`;
    const priority = group.priority ?? 0;
    if (!Number.isInteger(priority) || priority < 0) fail(name, `${where}.priority ${priority} is not a non-negative integer`);
    priorities.add(priority);
    checkWeight(name, `${where}.load_balancing_weight`, group.load_balancing_weight);
    const l = group.locality as LocalityObject | undefined;
    const groupKey = JSON.stringify([l?.region ?? '', l?.zone ?? '', l?.sub_zone ?? '', priority]);
    if (seenGroups.has(groupKey)) fail(name, `${where}: locality ${JSON.stringify(l ?? {})} appears twice at priority ${priority}`);
    seenGroups.add(groupKey);
    if (group.lb_endpoints.length === 0) fail(name, `${where}.lb_endpoints is empty`);
    group.lb_endpoints.forEach((lb, ei) => {
      const at = `${where}.lb_endpoints[${ei}]`;
      const socket = (lb.endpoint as LbEndpointObject['endpoint'] | undefined)?.address.socket_address;
      if (!socket) return fail(name, `${at}.endpoint.address.socket_address is missing`);
      if (isIP(socket.address) === 0) fail(name, `${at}: address ${JSON.stringify(socket.address)} is not an IP literal (grpc needs IP addresses in EDS)`);
      const port = socket.port_value ?? 0;
      if (!Number.isInteger(port) || port < 1 || port > 65535) fail(name, `${at}: port ${port} is not in 1..65535`);
      const key = `${socket.address.toLowerCase()}|${port}`;
      const first = seenAddresses.get(key);
      if (first !== undefined) fail(name, `${at}: address ${formatAddress(socket.address, port)} duplicates ${first} (grpc NACKs duplicate addresses)`);
      seenAddresses.set(key, at);
      checkWeight(name, `${at}.load_balancing_weight`, lb.load_balancing_weight);
    });
  });
  const sorted = [...priorities].sort((a, b) => a - b);
  sorted.forEach((p, i) => {
    if (p !== i) fail(name, `priorities ${sorted.join(',')} are not contiguous from 0 (grpc NACKs gaps)`);
  });
}

function checkWeight(cluster: string, where: string, weight: UInt32ValueObject | undefined): void {
  if (weight === undefined) return fail(cluster, `${where} is missing (grpc drops a locality without one)`);
  const v = weight.value;
  if (!Number.isInteger(v) || v < 1 || v > 0xffff_ffff) fail(cluster, `${where}.value ${v} is not in 1..2^32-1`);
}

const formatAddress = (address: string, port: number): string => (isIP(address) === 6 ? `[${address}]:${port}` : `${address}:${port}`);

const codec = resourceCodec<ClusterLoadAssignmentObject>(MESSAGE_NAME.clusterLoadAssignment, TYPE_URL.clusterLoadAssignment, assertGrpcRules, encodeClaWire);
/** The wire bytes of a checked resource. */
export const encodeClusterLoadAssignment = codec.encode;
/** Bytes back to the object form. */
export const decodeClusterLoadAssignment = codec.decode;
export const toAny = codec.toAny;
