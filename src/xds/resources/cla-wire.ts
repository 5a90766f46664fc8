/**
 * The wire encoding of a ClusterLoadAssignment in the object form endpoints.ts builds, written directly with a
 * protobufjs Writer. It is the hot path of every endpoint change (one encode per view per changed service), where
 * protobufjs' fromObject + encode + the decode-and-compare round trip of checkedEncode cost several times the
 * encoding itself.
 *
 * It keeps checkedEncode's guarantee that nothing is dropped silently: every object is walked with the set of keys
 * its message has here, and any other key is refused with its path; every value is type-checked. The bytes are the
 * ones protobufjs writes for the same object (fields in field-number order; a key that is present is written, even
 * with a zero value, as protobufjs does): the tests compare the two on every shape.
 *
 * Field numbers (envoy/config/endpoint/v3/endpoint.proto, endpoint_components.proto, core/v3/address.proto,
 * core/v3/base.proto): ClusterLoadAssignment cluster_name 1, endpoints 2; LocalityLbEndpoints locality 1,
 * lb_endpoints 2, load_balancing_weight 3, priority 5; LbEndpoint endpoint 1, health_status 2,
 * load_balancing_weight 4; Endpoint address 1; Address socket_address 1; SocketAddress address 2, port_value 3;
 * Locality region 1, zone 2, sub_zone 3; UInt32Value value 1.
 */
import protobuf from 'protobufjs';

type Writer = protobuf.Writer;

/** A protobuf wire tag: field number and wire type (0 varint, 2 length-delimited). */
const tag = (field: number, wireType: 0 | 2): number => (field << 3) | wireType;

class WireError extends Error {}

function record(value: unknown, path: string, keys: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new WireError(`invalid field: ${path}: a message expected`);
  const r = value as Record<string, unknown>;
  for (const key in r) {
    if (!keys.has(key)) throw new WireError(`field ${path === '' ? key : `${path}.${key}`}: dropped (not a field of this message)`);
    if (r[key] === undefined) throw new WireError(`field ${path === '' ? key : `${path}.${key}`}: undefined value (leave the key out)`);
  }
  return r;
}

function string(w: Writer, field: number, value: unknown, path: string): void {
  if (value === undefined) return;
  if (typeof value !== 'string') throw new WireError(`invalid field: ${path}: string expected`);
  w.uint32(tag(field, 2)).string(value);
}

function uint32(w: Writer, field: number, value: unknown, path: string): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw new WireError(`invalid field: ${path}: uint32 expected`);
  w.uint32(tag(field, 0)).uint32(value);
}

/** A message field: written only when present; an empty message is still written (presence matters). */
function message(w: Writer, field: number, value: unknown, path: string, body: (w: Writer, r: Record<string, unknown>) => void, keys: ReadonlySet<string>): void {
  if (value === undefined) return;
  const r = record(value, path, keys);
  w.uint32(tag(field, 2)).fork();
  body(w, r);
  w.ldelim();
}

function repeated(value: unknown, path: string): unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw new WireError(`invalid field: ${path}: a list expected`);
  return value;
}

const K = {
  cla: new Set(['cluster_name', 'endpoints']),
  group: new Set(['locality', 'lb_endpoints', 'load_balancing_weight', 'priority']),
  locality: new Set(['region', 'zone', 'sub_zone']),
  lbEndpoint: new Set(['endpoint', 'health_status', 'load_balancing_weight']),
  endpoint: new Set(['address']),
  address: new Set(['socket_address']),
  socket: new Set(['address', 'port_value']),
  uint32Value: new Set(['value']),
};

function uint32Value(w: Writer, field: number, value: unknown, path: string): void {
  message(
    w,
    field,
    value,
    path,
    (mw, r) => {
      uint32(mw, 1, r.value, `${path}.value`);
    },
    K.uint32Value,
  );
}

function lbEndpoint(w: Writer, value: unknown, path: string): void {
  message(
    w,
    2,
    value,
    path,
    (mw, r) => {
      message(
        mw,
        1,
        r.endpoint,
        `${path}.endpoint`,
        (ew, e) => {
          message(
            ew,
            1,
            e.address,
            `${path}.endpoint.address`,
            (aw, a) => {
              message(
                aw,
                1,
                a.socket_address,
                `${path}.endpoint.address.socket_address`,
                (sw, s) => {
                  string(sw, 2, s.address, `${path}.endpoint.address.socket_address.address`);
                  uint32(sw, 3, s.port_value, `${path}.endpoint.address.socket_address.port_value`);
                },
                K.socket,
              );
            },
            K.address,
          );
        },
        K.endpoint,
      );
      uint32(mw, 2, r.health_status, `${path}.health_status`);
      uint32Value(mw, 4, r.load_balancing_weight, `${path}.load_balancing_weight`);
    },
    K.lbEndpoint,
  );
}

function localityGroup(w: Writer, value: unknown, path: string): void {
  message(
    w,
    2,
    value,
    path,
    (gw, g) => {
      message(
        gw,
        1,
        g.locality,
        `${path}.locality`,
        (lw, l) => {
          string(lw, 1, l.region, `${path}.locality.region`);
          string(lw, 2, l.zone, `${path}.locality.zone`);
          string(lw, 3, l.sub_zone, `${path}.locality.sub_zone`);
        },
        K.locality,
      );
      repeated(g.lb_endpoints, `${path}.lb_endpoints`).forEach((e, i) => {
        lbEndpoint(gw, e, `${path}.lb_endpoints[${String(i)}]`);
      });
      uint32Value(gw, 3, g.load_balancing_weight, `${path}.load_balancing_weight`);
      uint32(gw, 5, g.priority, `${path}.priority`);
    },
    K.group,
  );
}

// ---- the fast walk ----------------------------------------------------------------------------------------------
// The same checks and the same bytes as the walk above, without building paths or closures per field, into a scratch
// buffer (a nested message gets one byte for its length, widened in place when it needs more): it only says that
// something is wrong (INVALID), and encodeClaWire then runs the walk above for the message with the path.

const INVALID = new WireError('invalid');

/** A minimal protobuf writer over one growing scratch buffer (encodes are synchronous: one at a time). */
class ScratchWriter {
  buf = Buffer.allocUnsafe(16 * 1024);
  pos = 0;

  #room(n: number): void {
    if (this.pos + n <= this.buf.length) return;
    const bigger = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.pos + n));
    this.buf.copy(bigger, 0, 0, this.pos);
    this.buf = bigger;
  }

  varint(n: number): void {
    this.#room(5);
    const buf = this.buf;
    while (n > 0x7f) {
      buf[this.pos++] = (n & 0x7f) | 0x80;
      n >>>= 7;
    }
    buf[this.pos++] = n;
  }

  string(s: string): void {
    const length = Buffer.byteLength(s, 'utf8');
    this.varint(length);
    this.#room(length);
    this.buf.write(s, this.pos, length, 'utf8');
    this.pos += length;
  }

  /** starts a nested message: returns where its length goes */
  fork(): number {
    this.#room(1);
    return this.pos++;
  }

  /** ends the nested message started at `at`: writes its length, moving its bytes when the length needs more room */
  ldelim(at: number): void {
    const length = this.pos - at - 1;
    if (length < 0x80) {
      this.buf[at] = length;
      return;
    }
    const extra = (length < 0x4000 ? 2 : length < 0x20_0000 ? 3 : length < 0x1000_0000 ? 4 : 5) - 1;
    this.#room(extra);
    this.buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    const end = this.pos + extra;
    this.pos = at;
    this.varint(length);
    this.pos = end;
  }

  finish(): Uint8Array {
    const out = new Uint8Array(this.pos);
    out.set(this.buf.subarray(0, this.pos));
    this.pos = 0;
    return out;
  }
}

const scratch = new ScratchWriter();

function fastRecord(value: unknown, keys: ReadonlySet<string>): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw INVALID;
  const r = value as Record<string, unknown>;
  for (const key in r) if (!keys.has(key) || r[key] === undefined) throw INVALID;
  return r;
}

function fastString(w: ScratchWriter, field: number, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'string') throw INVALID;
  w.varint(tag(field, 2));
  w.string(value);
}

function fastUint32(w: ScratchWriter, field: number, value: unknown): void {
  if (value === undefined) return;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 0 || value > 0xffff_ffff) throw INVALID;
  w.varint(tag(field, 0));
  w.varint(value);
}

function fastUint32Value(w: ScratchWriter, field: number, value: unknown): void {
  if (value === undefined) return;
  const r = fastRecord(value, K.uint32Value);
  w.varint(tag(field, 2));
  const at = w.fork();
  fastUint32(w, 1, r.value);
  w.ldelim(at);
}

function fastRepeated(value: unknown): readonly unknown[] {
  if (value === undefined) return [];
  if (!Array.isArray(value)) throw INVALID;
  return value;
}

function fastLbEndpoint(w: ScratchWriter, value: unknown): void {
  if (value === undefined) return;
  const r = fastRecord(value, K.lbEndpoint);
  w.varint(tag(2, 2));
  const at = w.fork();
  if (r.endpoint !== undefined) {
    const e = fastRecord(r.endpoint, K.endpoint);
    w.varint(tag(1, 2));
    const eAt = w.fork();
    if (e.address !== undefined) {
      const a = fastRecord(e.address, K.address);
      w.varint(tag(1, 2));
      const aAt = w.fork();
      if (a.socket_address !== undefined) {
        const sa = fastRecord(a.socket_address, K.socket);
        w.varint(tag(1, 2));
        const sAt = w.fork();
        fastString(w, 2, sa.address);
        fastUint32(w, 3, sa.port_value);
        w.ldelim(sAt);
      }
      w.ldelim(aAt);
    }
    w.ldelim(eAt);
  }
  fastUint32(w, 2, r.health_status);
  fastUint32Value(w, 4, r.load_balancing_weight);
  w.ldelim(at);
}

function fastLocalityGroup(w: ScratchWriter, value: unknown): void {
  if (value === undefined) return;
  const g = fastRecord(value, K.group);
  w.varint(tag(2, 2));
  const at = w.fork();
  if (g.locality !== undefined) {
    const l = fastRecord(g.locality, K.locality);
    w.varint(tag(1, 2));
    const lAt = w.fork();
    fastString(w, 1, l.region);
    fastString(w, 2, l.zone);
    fastString(w, 3, l.sub_zone);
    w.ldelim(lAt);
  }
  for (const e of fastRepeated(g.lb_endpoints)) fastLbEndpoint(w, e);
  fastUint32Value(w, 3, g.load_balancing_weight);
  fastUint32(w, 5, g.priority);
  w.ldelim(at);
}

function fastEncode(cla: object): Uint8Array {
  const w = scratch;
  w.pos = 0;
  const r = fastRecord(cla, K.cla);
  fastString(w, 1, r.cluster_name);
  for (const g of fastRepeated(r.endpoints)) fastLocalityGroup(w, g);
  return w.finish();
}

/** The bytes of `cla` (object form), refusing unknown keys and mistyped values with the field's path. */
export function encodeClaWire(cla: object): Uint8Array {
  try {
    return fastEncode(cla);
  } catch (error) {
    if (error !== INVALID) throw error;
    // refused: the walk with paths says where (and is the one that decides)
  }
  try {
    const r = record(cla, '', K.cla);
    const w = protobuf.Writer.create();
    string(w, 1, r.cluster_name, 'cluster_name');
    repeated(r.endpoints, 'endpoints').forEach((g, i) => {
      localityGroup(w, g, `endpoints[${String(i)}]`);
    });
    return w.finish();
  } catch (error) {
    if (error instanceof WireError) throw new Error(`envoy.config.endpoint.v3.ClusterLoadAssignment: ${error.message}`, { cause: error });
    throw error;
  }
}
