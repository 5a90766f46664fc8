// The east-west gateway's TLS ClientHello reader: it finds the SNI (and ALPN) in the first bytes of a
// connection without terminating TLS, so the gateway can splice the still-encrypted stream by name.
// Pure: bytes in, a verdict out; no sockets, no buffering of its own.
//
// Decisions (RFC 8446 §4.1.2 and §5.1, RFC 5246 §7.4.1.2, RFC 6066 §3, RFC 7301 §3.1):
// - `data` is everything received so far; each call re-reads it from the start in O(n). The verdict is
//   'incomplete' until the records holding the whole ClientHello are present; once a call returns anything
//   else, calls with more bytes appended return the same kind and reason, so the gateway may act on the first.
// - Record layer: content type 22, version 0x0301..0x0304, length 1..2^14. On the first record anything
//   else is 'not-tls' (the detail says whether it looks like plaintext HTTP, an HTTP/2 preface, an SSLv2
//   hello, a non-handshake TLS record), except version 0x0300, which is 'unsupported-version' (SSL 3.0;
//   RFC 5246 E.1 lets a TLS 1.x client use 0x0300 there, but no maintained client does). On a later record
//   that continues the ClientHello, any of these is 'malformed' (handshake data must not be interleaved).
// - The ClientHello may be fragmented over many records; the record that ends it must end with it
//   (coalesced bytes after it are 'malformed'). `length` counts the bytes of those records, headers included;
//   bytes after them (early data, say) are not looked at.
// - 'too-large' as soon as the record headers or the handshake length show that the ClientHello's records
//   would end beyond `maxBytes` (total bytes on the wire), without waiting for those bytes.
// - Every length is checked against its container: session_id ≤ 32, cipher_suites even and ≥ 2,
//   compression methods ≥ 1, extensions absent (old hellos: no SNI) or exactly filling the rest of the
//   message; bytes left over anywhere are 'malformed'. A legacy_version below 0x0301 is 'unsupported-version';
//   a higher 0x03xx is accepted (RFC 5246 E.1 forward compatibility). Duplicate extension types: 'malformed'.
// - server_name: a non-empty list; the host_name entry (type 0) may appear once, a second is 'malformed'
//   (RFC 6066); entries of other name types are skipped by their 2-byte length, as Go's crypto/tls does
//   (OpenSSL and BoringSSL refuse them; the TLS server behind the gateway still gets its say). The name:
//   ASCII letters, digits, '-', '_' (Istio SNIs such as `outbound_.9080_._.reviews.default.svc.cluster.local`)
//   and dots; one trailing dot stripped; ≤ 253 characters, labels 1..63; lowercased. An all-digit last label
//   is 'malformed' (RFC 3696 §2: no numeric TLDs), which rejects IPv4 literals and forms like `127.1`;
//   IPv6 literals fail on ':'. RFC 6066 forbids IP literals in SNI.
// - ALPN: a non-empty list of non-empty protocol names, returned in order, decoded byte-per-character
//   (latin1) so no byte is lost or replaced.
// - Never throws for any `data`; only an invalid `maxBytes` (a programming error) throws a RangeError.

export const DEFAULT_MAX_HELLO_BYTES = 16 * 1024; // generous: real ClientHellos with post-quantum key shares are ~1.5–2 KB

export type HelloRejection = 'not-tls' | 'malformed' | 'too-large' | 'unsupported-version';

export type HelloRead =
  | { kind: 'incomplete' }
  | { kind: 'hello'; serverName: string | undefined; alpn: string[]; length: number }
  | { kind: 'rejected'; reason: HelloRejection; detail: string };

const RECORD_HEADER_BYTES = 5;
const HANDSHAKE_HEADER_BYTES = 4;
const MAX_RECORD_BYTES = 2 ** 14;
const CONTENT_TYPE_HANDSHAKE = 22;
const HANDSHAKE_CLIENT_HELLO = 1;
const EXTENSION_SERVER_NAME = 0;
const EXTENSION_ALPN = 16;
const NAME_TYPE_HOST_NAME = 0;
const MAX_SESSION_ID_BYTES = 32;
const RANDOM_BYTES = 32;
const MAX_HOST_NAME_CHARS = 253;
const MAX_LABEL_CHARS = 63;
const HTTP2_PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n';

const INCOMPLETE: HelloRead = { kind: 'incomplete' };

const RECORD_TYPE_NAMES = new Map([
  [20, 'change_cipher_spec'],
  [21, 'alert'],
  [22, 'handshake'],
  [23, 'application_data'],
  [24, 'heartbeat'],
]);

const HANDSHAKE_TYPE_NAMES = new Map([
  [0, 'hello_request'],
  [2, 'server_hello'],
  [4, 'new_session_ticket'],
  [11, 'certificate'],
  [16, 'client_key_exchange'],
  [20, 'finished'],
]);

const reject = (reason: HelloRejection, detail: string): HelloRead => ({ kind: 'rejected', reason, detail });

const hex = (value: number, digits: number): string => `0x${value.toString(16).padStart(digits, '0')}`;

/** A parse failure inside the handshake message; caught in readClientHello and turned into its verdict. */
class HelloError extends Error {
  constructor(
    readonly reason: HelloRejection,
    detail: string,
  ) {
    super(detail);
  }
}

const malformed = (detail: string): HelloError => new HelloError('malformed', detail);

/** Reads a ClientHello from the start of `data` (all bytes received so far on the connection). */
export function readClientHello(data: Uint8Array, maxBytes: number = DEFAULT_MAX_HELLO_BYTES): HelloRead {
  if (!Number.isSafeInteger(maxBytes) || maxBytes < RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES) {
    throw new RangeError(`maxBytes must be an integer ≥ ${RECORD_HEADER_BYTES + HANDSHAKE_HEADER_BYTES}, got ${maxBytes}`);
  }
  // The usual case, one record holding the whole ClientHello, is read in place: no copy, no array of fragments.
  let first: Uint8Array | undefined;
  let more: Uint8Array[] | undefined;
  let headerBytes = 0; // how much of the 4-byte handshake header has been seen
  let messageType = 0;
  let messageLength = 0; // the header's 24-bit length, once headerBytes is 4
  let announced = 0; // handshake bytes announced by the record headers read so far
  let offset = 0;
  for (let isFirst = true; ; isFirst = false) {
    const record = readRecordHeader(data, offset, isFirst);
    if (typeof record !== 'number') return record;
    const end = offset + RECORD_HEADER_BYTES + record;
    if (end > maxBytes) {
      return reject('too-large', `a record ending at byte ${end} is beyond the ${maxBytes}-byte limit`);
    }
    const fragment = data.subarray(offset + RECORD_HEADER_BYTES, end);
    if (first === undefined) first = fragment;
    else (more ??= [first]).push(fragment);
    announced += record;
    for (let i = 0; headerBytes < HANDSHAKE_HEADER_BYTES && i < fragment.length; i++, headerBytes++) {
      const byte = fragment[i] ?? 0;
      if (headerBytes === 0) messageType = byte;
      else messageLength = (messageLength << 8) | byte;
    }
    if (headerBytes > 0 && messageType !== HANDSHAKE_CLIENT_HELLO) {
      return reject('malformed', `handshake message type ${describeHandshakeType(messageType)}, expected client_hello (1)`);
    }
    // The whole handshake message: its header, then the length the header gives.
    const needed = headerBytes === HANDSHAKE_HEADER_BYTES ? HANDSHAKE_HEADER_BYTES + messageLength : undefined;
    if (needed !== undefined) {
      const verdict = judgeHandshakeLength(needed, announced, end, maxBytes);
      if (verdict !== undefined) return verdict;
    }
    if (end > data.length) return INCOMPLETE;
    if (announced === needed) {
      const message = more === undefined ? fragment : concat(more, announced);
      return parseClientHello(message.subarray(HANDSHAKE_HEADER_BYTES), end);
    }
    offset = end;
  }
}

/** The record header at `at`: its fragment length, or the verdict it already forces. */
function readRecordHeader(data: Uint8Array, at: number, first: boolean): number | HelloRead {
  const type = data[at];
  if (type === undefined) return INCOMPLETE;
  if (type !== CONTENT_TYPE_HANDSHAKE) {
    return first
      ? reject('not-tls', describeNonTls(data, type))
      : reject('malformed', `a ${describeRecordType(type)} record in the middle of the ClientHello (byte ${at})`);
  }
  const major = data[at + 1];
  const minor = data[at + 2];
  if (major === undefined) return INCOMPLETE;
  if (major === 3 && minor === undefined) return INCOMPLETE;
  const version = (major << 8) | (minor ?? 0);
  if (version < 0x0301 || version > 0x0304) {
    if (!first) return reject('malformed', `record version ${hex(version, 4)} in the middle of the ClientHello (byte ${at})`);
    return version === 0x0300
      ? reject('unsupported-version', 'SSL 3.0 record (version 0x0300)')
      : reject('not-tls', `a byte 22 followed by ${hex(version, 4)}, not a TLS record version`);
  }
  const high = data[at + 3];
  const low = data[at + 4];
  if (high === undefined || low === undefined) return INCOMPLETE;
  const length = (high << 8) | low;
  if (length === 0 || length > MAX_RECORD_BYTES) {
    const problem = `record length ${length} is outside 1..${MAX_RECORD_BYTES}`;
    return first ? reject('not-tls', problem) : reject('malformed', `${problem} (byte ${at})`);
  }
  return length;
}

/** With the handshake message's size known: 'too-large' or a coalesced tail, if the record headers so far show either. */
function judgeHandshakeLength(needed: number, announced: number, recordEnd: number, maxBytes: number): HelloRead | undefined {
  if (announced > needed) {
    return reject('malformed', `${announced - needed} bytes follow the ClientHello in the record that ends it`);
  }
  // Each further record costs at least its header, so this is the least the ClientHello can take.
  const leastEnd = announced === needed ? recordEnd : recordEnd + RECORD_HEADER_BYTES + needed - announced;
  if (leastEnd > maxBytes) {
    return reject('too-large', `a ${needed}-byte ClientHello message needs at least ${leastEnd} bytes, beyond the ${maxBytes}-byte limit`);
  }
  return undefined;
}

function concat(fragments: Uint8Array[], total: number): Uint8Array {
  const joined = new Uint8Array(total);
  let at = 0;
  for (const fragment of fragments) {
    joined.set(fragment, at);
    at += fragment.length;
  }
  return joined;
}

function parseClientHello(body: Uint8Array, length: number): HelloRead {
  try {
    const hello = new Cursor(body, 0, body.length);
    const version = hello.u16('legacy_version');
    if (version < 0x0301) throw new HelloError('unsupported-version', `ClientHello legacy_version ${hex(version, 4)} (SSL 3.0 or older)`);
    if (version >> 8 !== 3) throw malformed(`ClientHello legacy_version ${hex(version, 4)} is not 0x03xx`);
    hello.skip(RANDOM_BYTES, 'random');
    hello.skipVector8('legacy_session_id', 0, MAX_SESSION_ID_BYTES);
    const suites = hello.skipVector16('cipher_suites', 2);
    if (suites % 2 !== 0) throw malformed(`cipher_suites has an odd length (${suites})`);
    hello.skipVector8('legacy_compression_methods', 1);
    if (hello.remaining === 0) return { kind: 'hello', serverName: undefined, alpn: [], length };
    const extensions = hello.vector16('extensions', 0);
    hello.end('extensions');
    return readExtensions(extensions, length);
  } catch (error) {
    if (error instanceof HelloError) return reject(error.reason, error.message);
    throw error;
  }
}

/**
 * Extension types seen in the ClientHello being read: seen[type] === seenMark. One table for every call (readClientHello
 * is synchronous and never re-entered), so that finding a duplicate costs neither a Set nor a search.
 */
const seen = new Uint32Array(0x10000);
let seenMark = 0;

function readExtensions(extensions: Cursor, length: number): HelloRead {
  if (seenMark === 0xffffffff) {
    seen.fill(0);
    seenMark = 0;
  }
  const mark = ++seenMark;
  let serverName: string | undefined;
  let alpn: string[] = [];
  while (extensions.remaining > 0) {
    const type = extensions.u16('extension type');
    const body = extensions.extensionData(type);
    if (seen[type] === mark) throw malformed(`extension ${type} appears twice`);
    seen[type] = mark;
    if (type === EXTENSION_SERVER_NAME) serverName = readServerName(body);
    else if (type === EXTENSION_ALPN) alpn = readAlpn(body);
  }
  return { kind: 'hello', serverName, alpn, length };
}

function readServerName(extension: Cursor): string | undefined {
  const list = extension.vector16('server_name_list', 1);
  extension.end('server_name_list');
  let hostName: string | undefined;
  while (list.remaining > 0) {
    const nameType = list.u8('server_name name_type');
    const nameLength = list.vectorLength16('server_name name', 1);
    const at = list.at;
    list.skip(nameLength, 'server_name name');
    if (nameType !== NAME_TYPE_HOST_NAME) continue;
    if (hostName !== undefined) throw malformed('server_name carries two host_name entries (RFC 6066)');
    hostName = validHostName(list.bytes, at, at + nameLength);
  }
  return hostName;
}

/** The SNI host name (bytes[start..end)), lowercased and without a trailing dot, or a HelloError saying what is wrong with it. */
function validHostName(bytes: Uint8Array, start: number, rawEnd: number): string {
  const end = bytes[rawEnd - 1] === 0x2e ? rawEnd - 1 : rawEnd;
  const length = end - start;
  if (length <= 0) throw malformed('server_name host_name is empty');
  if (length > MAX_HOST_NAME_CHARS) throw malformed(`server_name host_name has ${length} characters, more than ${MAX_HOST_NAME_CHARS}`);
  let label = 0;
  let numericLabel = true;
  let upper = false;
  for (let i = start; i < end; i++) {
    const byte = bytes[i] ?? 0;
    if (byte === 0x2e) {
      if (label === 0) throw malformed(`server_name host_name has an empty label at offset ${i - start}`);
      label = 0;
      numericLabel = true;
      continue;
    }
    if (byte >= 0x30 && byte <= 0x39) {
      // digit: numericLabel stays as it is
    } else if ((byte >= 0x61 && byte <= 0x7a) || byte === 0x2d || byte === 0x5f) {
      numericLabel = false;
    } else if (byte >= 0x41 && byte <= 0x5a) {
      numericLabel = false;
      upper = true;
    } else {
      throw malformed(`server_name host_name has byte ${hex(byte, 2)} at offset ${i - start}, not a host name character`);
    }
    label += 1;
    if (label > MAX_LABEL_CHARS) throw malformed(`server_name host_name has a label longer than ${MAX_LABEL_CHARS} characters`);
  }
  if (label === 0) throw malformed('server_name host_name ends with an empty label');
  // every byte is ASCII now, so latin1 is exact
  const text = latin1(bytes, start, end);
  const name = upper ? text.toLowerCase() : text;
  if (numericLabel) throw malformed(`server_name host_name ${name} is an IP address or ends in a numeric label; SNI must be a DNS name`);
  return name;
}

/** bytes[start..end) decoded one byte per character. */
function latin1(bytes: Uint8Array, start: number, end: number): string {
  return Buffer.from(bytes.buffer, bytes.byteOffset + start, end - start).toString('latin1');
}

function readAlpn(extension: Cursor): string[] {
  const list = extension.vector16('protocol_name_list', 2);
  extension.end('protocol_name_list');
  const protocols: string[] = [];
  while (list.remaining > 0) {
    const nameLength = list.vectorLength8('ALPN protocol name', 1);
    const at = list.at;
    list.skip(nameLength, 'ALPN protocol name');
    protocols.push(latin1(list.bytes, at, at + nameLength));
  }
  return protocols;
}

/**
 * Bounds-checked reads over one length-delimited container, bytes[at..end); every overrun is a HelloError naming the
 * field (the message is built only then).
 */
class Cursor {
  readonly bytes: Uint8Array;
  at: number;
  readonly #end: number;

  constructor(bytes: Uint8Array, at: number, end: number) {
    this.bytes = bytes;
    this.at = at;
    this.#end = end;
  }

  get remaining(): number {
    return this.#end - this.at;
  }

  u8(field: string): number {
    this.#need(1, field, '');
    return this.bytes[this.at++] ?? 0;
  }

  u16(field: string): number {
    this.#need(2, field, '');
    const value = ((this.bytes[this.at] ?? 0) << 8) | (this.bytes[this.at + 1] ?? 0);
    this.at += 2;
    return value;
  }

  skip(length: number, field: string): void {
    this.#need(length, field, '');
    this.at += length;
  }

  /** The length of a vector with a 1-byte length of min..max bytes, the vector's bytes checked to be there. */
  vectorLength8(field: string, min: number, max = 0xff): number {
    this.#need(1, field, ' length');
    const length = this.bytes[this.at++] ?? 0;
    return this.#checkLength(length, field, min, max);
  }

  /** The length of a vector with a 2-byte length of min.. bytes, the vector's bytes checked to be there. */
  vectorLength16(field: string, min: number): number {
    this.#need(2, field, ' length');
    const length = ((this.bytes[this.at] ?? 0) << 8) | (this.bytes[this.at + 1] ?? 0);
    this.at += 2;
    return this.#checkLength(length, field, min, 0xffff);
  }

  /** Skips a vector with a 1-byte length of min..max bytes; its length. */
  skipVector8(field: string, min: number, max = 0xff): number {
    const length = this.vectorLength8(field, min, max);
    this.at += length;
    return length;
  }

  /** Skips a vector with a 2-byte length of min.. bytes; its length. */
  skipVector16(field: string, min: number): number {
    const length = this.vectorLength16(field, min);
    this.at += length;
    return length;
  }

  /** A vector with a 2-byte length of min.. bytes, as a cursor of its own. */
  vector16(field: string, min: number): Cursor {
    const length = this.vectorLength16(field, min);
    const inner = new Cursor(this.bytes, this.at, this.at + length);
    this.at += length;
    return inner;
  }

  /** An extension's data (a vector with a 2-byte length), as a cursor of its own. */
  extensionData(type: number): Cursor {
    if (this.remaining < 2) throw this.#overrun(2, `extension ${type} data length`);
    const length = ((this.bytes[this.at] ?? 0) << 8) | (this.bytes[this.at + 1] ?? 0);
    this.at += 2;
    if (this.remaining < length) throw this.#overrun(length, `extension ${type} data`);
    const inner = new Cursor(this.bytes, this.at, this.at + length);
    this.at += length;
    return inner;
  }

  /** Fails if bytes are left after `field`, the last thing the container should hold. */
  end(field: string): void {
    if (this.remaining !== 0) throw malformed(`${this.remaining} stray bytes after ${field}`);
  }

  #checkLength(length: number, field: string, min: number, max: number): number {
    if (length < min || length > max) throw malformed(`${field} length ${length} is outside ${min}..${max}`);
    this.#need(length, field, '');
    return length;
  }

  #need(length: number, field: string, suffix: string): void {
    if (this.remaining < length) throw this.#overrun(length, field + suffix);
  }

  #overrun(length: number, field: string): HelloError {
    return malformed(`${field} needs ${length} bytes but only ${this.remaining} remain in its container`);
  }
}

function describeRecordType(type: number): string {
  const name = RECORD_TYPE_NAMES.get(type);
  return name === undefined ? `type ${type}` : `${name} (${type})`;
}

function describeHandshakeType(type: number): string {
  const name = HANDSHAKE_TYPE_NAMES.get(type);
  return name === undefined ? String(type) : `${type} (${name})`;
}

/** What the first bytes of a connection that does not start with a TLS handshake record look like. */
function describeNonTls(data: Uint8Array, firstByte: number): string {
  const text = printablePrefix(data.subarray(0, 24));
  if (text.length >= 3 && HTTP2_PREFACE.startsWith(text)) {
    return `an HTTP/2 cleartext connection preface (${JSON.stringify(text)}), not TLS`;
  }
  if (/^[A-Z]+( |$)/.test(text)) return `plaintext, looks like an HTTP/1 request (${JSON.stringify(text)}), not TLS`;
  if (text.length >= 3) return `plaintext (${JSON.stringify(text)}), not TLS`;
  if (firstByte >= 0x80) return `an SSL 2.0-style record (first byte ${hex(firstByte, 2)} has the high bit set), not a TLS record`;
  if (RECORD_TYPE_NAMES.has(firstByte)) return `a TLS ${describeRecordType(firstByte)} record, not a handshake record`;
  return `first byte ${hex(firstByte, 2)} is not a TLS handshake record (22)`;
}

function printablePrefix(bytes: Uint8Array): string {
  let text = '';
  for (const byte of bytes) {
    if ((byte < 0x20 || byte > 0x7e) && byte !== 0x0d && byte !== 0x0a) break;
    text += String.fromCharCode(byte);
  }
  return text;
}
