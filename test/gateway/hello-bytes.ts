// Builders for ClientHello bytes in the suites of the gateway's ClientHello reader: synthetic hellos with any
// field overridden, re-framing of a handshake message into records, and a seeded PRNG for the fuzz run.

export const ascii = (text: string): Uint8Array => Uint8Array.from(text, (char) => char.charCodeAt(0));

export function concatBytes(...parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((sum, part) => sum + part.length, 0));
  let at = 0;
  for (const part of parts) {
    out.set(part, at);
    at += part.length;
  }
  return out;
}

export const u8 = (value: number): Uint8Array => Uint8Array.of(value & 0xff);
export const u16 = (value: number): Uint8Array => Uint8Array.of((value >> 8) & 0xff, value & 0xff);
export const u24 = (value: number): Uint8Array => Uint8Array.of((value >> 16) & 0xff, (value >> 8) & 0xff, value & 0xff);
/** A TLS vector with a 1-byte length prefix. */
export const vec8 = (...parts: Uint8Array[]): Uint8Array => {
  const body = concatBytes(...parts);
  return concatBytes(u8(body.length), body);
};
/** A TLS vector with a 2-byte length prefix. */
export const vec16 = (...parts: Uint8Array[]): Uint8Array => {
  const body = concatBytes(...parts);
  return concatBytes(u16(body.length), body);
};

export interface Extension {
  type: number;
  data: Uint8Array;
}

/** A server_name extension with one entry per name: a string is a host_name, a pair is [name_type, bytes]. */
export function serverNameExtension(...names: (string | Uint8Array | [number, Uint8Array])[]): Extension {
  const entries = names.map((name) => {
    if (Array.isArray(name)) return concatBytes(u8(name[0]), vec16(name[1]));
    return concatBytes(u8(0), vec16(typeof name === 'string' ? ascii(name) : name));
  });
  return { type: 0, data: vec16(...entries) };
}

export function alpnExtension(...protocols: string[]): Extension {
  return { type: 16, data: vec16(...protocols.map((protocol) => vec8(ascii(protocol)))) };
}

export const SUPPORTED_VERSIONS_EXTENSION: Extension = { type: 43, data: vec8(u16(0x0304), u16(0x0303)) };

export interface HelloSpec {
  legacyVersion?: number;
  sessionId?: Uint8Array;
  cipherSuites?: Uint8Array;
  compressionMethods?: Uint8Array;
  /** null: no extensions block at all (a pre-extensions hello). */
  extensions?: Extension[] | null;
  /** The raw extensions block (its length included), for blocks the Extension list cannot express. */
  extensionsBlock?: Uint8Array;
  /** Bytes appended to the ClientHello body. */
  tail?: Uint8Array;
}

export const DEFAULT_SERVER_NAME = 'outbound_.9080_._.reviews.default.svc.cluster.local';

/** The ClientHello body (after the 4-byte handshake header). */
export function helloBody(spec: HelloSpec = {}): Uint8Array {
  const extensions = spec.extensions === undefined ? [serverNameExtension(DEFAULT_SERVER_NAME), alpnExtension('h2', 'http/1.1'), SUPPORTED_VERSIONS_EXTENSION] : spec.extensions;
  const block = spec.extensionsBlock ?? (extensions === null ? new Uint8Array(0) : vec16(...extensions.map((extension) => concatBytes(u16(extension.type), vec16(extension.data)))));
  return concatBytes(
    u16(spec.legacyVersion ?? 0x0303),
    new Uint8Array(32).fill(0xab),
    vec8(spec.sessionId ?? new Uint8Array(32).fill(0x5e)),
    vec16(spec.cipherSuites ?? concatBytes(u16(0x1301), u16(0x1302), u16(0xc02f))),
    vec8(spec.compressionMethods ?? u8(0)),
    block,
    spec.tail ?? new Uint8Array(0),
  );
}

/** A handshake message: type, 3-byte length, body. */
export const handshakeMessage = (body: Uint8Array, type = 1): Uint8Array => concatBytes(u8(type), u24(body.length), body);

/** TLS records of content type 22 carrying `message`, cut into fragments of the given sizes (the last repeats). */
export function inRecords(message: Uint8Array, sizes: readonly number[] = [16384], recordVersion = 0x0301): Uint8Array {
  const records: Uint8Array[] = [];
  for (let at = 0, index = 0; at < message.length; index += 1) {
    const size = sizes[Math.min(index, sizes.length - 1)] ?? 16384;
    const fragment = message.subarray(at, at + size);
    records.push(concatBytes(u8(22), u16(recordVersion), u16(fragment.length), fragment));
    at += fragment.length;
  }
  return concatBytes(...records);
}

/** A complete ClientHello in one record. */
export const clientHello = (spec: HelloSpec = {}): Uint8Array => inRecords(handshakeMessage(helloBody(spec)));

/** The handshake bytes carried by a run of well-formed records (headers dropped; stops at a short record). */
export function handshakeOf(records: Uint8Array): Uint8Array {
  const fragments: Uint8Array[] = [];
  for (let at = 0; at + 5 <= records.length; ) {
    const length = ((records[at + 3] ?? 0) << 8) | (records[at + 4] ?? 0);
    fragments.push(records.subarray(at + 5, at + 5 + length));
    at += 5 + length;
  }
  return concatBytes(...fragments);
}

export const toHex = (bytes: Uint8Array): string => Buffer.from(bytes).toString('hex');
