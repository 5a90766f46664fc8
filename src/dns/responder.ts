/**
 * From a query message to its answer message, without sockets. The hot path never decodes with dns-packet: it
 * reads the header and the question itself (and walks the other sections for an EDNS OPT record), looks the
 * lowercased wire name up (zone.ts's NameTable), and copies an answer that dns-packet encoded once for that (name,
 * query kind, EDNS or not) out of the zone's AnswerCache, patching the ID, the RD and CD bits, the question (so the
 * client's case and type come back as sent), the owner names equal to the question (same case) and the DO bit. Negative answers (NXDOMAIN, REFUSED, ...) are
 * header + the query's own question + a pre-encoded SOA + OPT, put together per query, so unknown names cache
 * nothing. A zone change replaces the index, and with it every cached answer.
 *
 * What it answers: A/AAAA of a hostname → its VIPs; SRV `_PORT._tcp.HOST` → `0 0 PORT HOST` with the host's A and
 * AAAA as additionals; SOA at a zone apex; ANY → all of a name's records. A name in a zone with no record of the
 * type asked → NOERROR/NODATA with the zone's SOA; an unknown name in a zone → NXDOMAIN with the SOA; a name outside
 * every zone, a class other than IN, or a zone transfer → REFUSED (nothing is ever forwarded). A hostname the VIP
 * allocator could not serve (range exhausted) → SERVFAIL for A, AAAA and ANY. Only opcode QUERY (else NOTIMP);
 * FORMERR for a message with a readable header but a bad question or sections; silence for less than a header
 * and for responses.
 */
import { AUTHORITATIVE_ANSWER, TRUNCATED_RESPONSE, encode, type Answer, type OptAnswer, type Packet } from 'dns-packet';
import { NO_TYPE, typeIndex, type DnsStats } from './metrics.js';
import { CACHE_SLOTS, HASH_SEED, hashStep, type CachedAnswer, type Zone, type ZoneIndex, type ZoneNode } from './zone.js';

const TYPE_A = 1;
const TYPE_NS = 2;
const TYPE_SOA = 6;
const TYPE_AAAA = 28;
const TYPE_SRV = 33;
const TYPE_OPT = 41;
const TYPE_IXFR = 251;
const TYPE_AXFR = 252;
const TYPE_ANY = 255;
const CLASS_IN = 1;
const CLASS_ANY = 255;

const NOERROR = 0;
const FORMERR = 1;
const SERVFAIL = 2;
const NXDOMAIN = 3;
const NOTIMP = 4;
const REFUSED = 5;
const BADVERS = 16;

/** the largest UDP answer without EDNS (RFC 1035) */
const CLASSIC_UDP_LIMIT = 512;
const TCP_LIMIT = 65535;

/**
 * Answers are cached per query kind: the types of metrics' TYPE_LABELS, by their index there (A, AAAA, SRV, SOA, NS,
 * ANY), and everything else (index 6, 'other') sharing one NODATA, its type patched in: the answer cache's slot is
 * the node's number × CACHE_SLOTS + the kind's index × 2, + 1 with EDNS.
 */
const OTHER_TYPES = 0;
const KIND_TYPES = [TYPE_A, TYPE_AAAA, TYPE_SRV, TYPE_SOA, TYPE_NS, TYPE_ANY, OTHER_TYPES] as const;

export interface ResponderOptions {
  /** the UDP payload size advertised in our OPT record and the most a UDP answer may take (default 1232) */
  maxUdpPayload?: number;
  stats: DnsStats;
}

/** The fields of the query being answered; one object, reused (answering is synchronous). */
interface Query {
  qtype: number;
  /** the index of qtype in metrics' TYPE_LABELS */
  type: number;
  /** the question section (name, type, class) ends here; the name starts at 12 */
  questionEnd: number;
  nameEnd: number;
  /** the lowercased name's key length in the scratch buffer (the wire name without its final zero), and its hashWire */
  keyLength: number;
  hash: number;
  mixedCase: boolean;
  edns: boolean;
  payloadSize: number;
  ednsVersion: number;
  dnssecOk: boolean;
}

type ParseResult = 'ok' | 'drop' | 'formerr' | 'notimp';

function skipName(msg: Buffer, start: number): number {
  let offset = start;
  for (;;) {
    const length = msg[offset];
    if (length === undefined) return -1;
    if (length === 0) return offset + 1;
    if ((length & 0xc0) === 0xc0) return offset + 2 <= msg.length ? offset + 2 : -1;
    if (length > 63) return -1;
    offset += length + 1;
  }
}

export class Responder {
  readonly #maxUdp: number;
  readonly #stats: DnsStats;
  readonly #scratch = Buffer.alloc(256);
  readonly #q: Query = { qtype: 0, type: 0, questionEnd: 0, nameEnd: 0, keyLength: 0, hash: 0, mixedCase: false, edns: false, payloadSize: 0, ednsVersion: 0, dnssecOk: false };
  #index: ZoneIndex;

  constructor(index: ZoneIndex, options: ResponderOptions) {
    this.#maxUdp = Math.max(CLASSIC_UDP_LIMIT, Math.min(options.maxUdpPayload ?? 1232, 65535));
    this.#stats = options.stats;
    this.#index = index;
  }

  get index(): ZoneIndex {
    return this.#index;
  }

  set index(index: ZoneIndex) {
    this.#index = index;
  }

  /** the answer to a query message, or undefined for silence; never throws on any input */
  respond(msg: Buffer, tcp: boolean): Buffer | undefined {
    const parsed = this.#parse(msg);
    if (parsed === 'drop') {
      this.#stats.drop(msg.length >= 12 ? 'response' : 'malformed');
      return undefined;
    }
    if (parsed !== 'ok') {
      const rcode = parsed === 'formerr' ? FORMERR : NOTIMP;
      this.#stats.query(NO_TYPE, rcode);
      return headerOnly(msg, rcode);
    }
    const q = this.#q;
    if (q.edns && q.ednsVersion !== 0) return this.#negative(msg, BADVERS, false, undefined, tcp);
    if (q.qtype === TYPE_OPT) return this.#negative(msg, FORMERR, false, undefined, tcp);
    const qclass = msg.readUInt16BE(q.questionEnd - 2);
    if ((qclass !== CLASS_IN && qclass !== CLASS_ANY) || q.qtype === TYPE_AXFR || q.qtype === TYPE_IXFR) return this.#negative(msg, REFUSED, false, undefined, tcp);
    const index = this.#index;
    const number = index.table.find(this.#scratch, q.keyLength, q.hash);
    if (number < 0) {
      const zone = this.#zoneOf(this.#scratch.toString('latin1', 0, q.keyLength));
      return zone ? this.#negative(msg, NXDOMAIN, true, zone.soaRecord, tcp) : this.#negative(msg, REFUSED, false, undefined, tcp);
    }
    const slot = number * CACHE_SLOTS + q.type * 2 + (q.edns ? 1 : 0);
    const answers = index.answers;
    let answer = answers.find(slot);
    if (answer < 0) {
      const node = index.table.nodes[number];
      if (!node) return undefined; // cannot happen: find returns a node's number
      answer = answers.add(slot, this.#encode(node, KIND_TYPES[q.type] ?? OTHER_TYPES, q.edns));
    }
    const truncated = answers.length(answer, false) > this.#limit(tcp);
    if (truncated) this.#stats.truncated++;
    const start = answers.start(answer, truncated);
    const length = answers.length(answer, truncated);
    const bytes = answers.bytes;
    // the query's ID, RD and CD and question (its case, its type); the rest as stored
    const out = Buffer.allocUnsafe(length);
    out[0] = msg[0] ?? 0;
    out[1] = msg[1] ?? 0;
    out[2] = (bytes[start + 2] ?? 0) | ((msg[2] ?? 0) & 0x01);
    out[3] = (bytes[start + 3] ?? 0) | ((msg[3] ?? 0) & 0x10);
    for (let i = 4; i < 12; i++) out[i] = bytes[start + i] ?? 0;
    for (let i = 12; i < q.questionEnd; i++) out[i] = msg[i] ?? 0;
    for (let i = q.questionEnd; i < length; i++) out[i] = bytes[start + i] ?? 0;
    if (q.mixedCase && !truncated) for (const offset of answers.ownerOffsets(answer)) for (let i = 12; i < q.nameEnd; i++) out[offset - 12 + i] = msg[i] ?? 0;
    if (q.edns && q.dnssecOk) out[length - 4] = (out[length - 4] ?? 0) | 0x80;
    this.#stats.query(q.type, answers.rcode(answer));
    return out;
  }

  #limit(tcp: boolean): number {
    const q = this.#q;
    if (tcp) return TCP_LIMIT;
    return q.edns ? Math.min(Math.max(q.payloadSize, CLASSIC_UDP_LIMIT), this.#maxUdp) : CLASSIC_UDP_LIMIT;
  }

  #zoneOf(key: string): Zone | undefined {
    const zones = this.#index.zones;
    for (let i = 0; i < key.length; i += key.charCodeAt(i) + 1) {
      const zone = zones.get(key.slice(i));
      if (zone) return zone;
    }
    return undefined;
  }

  #parse(msg: Buffer): ParseResult {
    const length = msg.length;
    if (length < 12 || ((msg[2] ?? 0) & 0x80) !== 0) return 'drop';
    if ((((msg[2] ?? 0) >> 3) & 0x0f) !== 0) return 'notimp';
    if (msg.readUInt16BE(4) !== 1) return 'formerr';
    const q = this.#q;
    const scratch = this.#scratch;
    let offset = 12;
    let mixed = false;
    let hash = HASH_SEED;
    for (;;) {
      const label = msg[offset];
      if (label === undefined) return 'formerr';
      if (label === 0) break;
      // a pointer or an extended label type has no place in the question at offset 12
      if (label > 63 || offset + 1 + label > length || offset - 12 + label + 2 > 255) return 'formerr';
      scratch[offset - 12] = label;
      hash = hashStep(hash, label);
      for (let i = offset + 1; i <= offset + label; i++) {
        let byte = msg[i] ?? 0;
        if (byte >= 0x41 && byte <= 0x5a) {
          byte |= 0x20;
          mixed = true;
        }
        scratch[i - 12] = byte;
        hash = hashStep(hash, byte);
      }
      offset += label + 1;
    }
    q.keyLength = offset - 12;
    q.hash = hash;
    q.nameEnd = offset + 1;
    q.mixedCase = mixed;
    if (q.nameEnd + 4 > length) return 'formerr';
    q.qtype = msg.readUInt16BE(q.nameEnd);
    q.type = typeIndex(q.qtype);
    q.questionEnd = q.nameEnd + 4;
    q.edns = false;
    // answer and authority records have no business in a query, but are tolerated; additional: OPT, once
    const others = msg.readUInt16BE(6) + msg.readUInt16BE(8);
    const records = others + msg.readUInt16BE(10);
    offset = q.questionEnd;
    for (let i = 0; i < records; i++) {
      const ownerIsRoot = msg[offset] === 0;
      offset = skipName(msg, offset);
      if (offset < 0 || offset + 10 > length) return 'formerr';
      const type = msg.readUInt16BE(offset);
      const rdlength = msg.readUInt16BE(offset + 8);
      const rdata = offset + 10;
      if (rdata + rdlength > length) return 'formerr';
      if (type === TYPE_OPT) {
        if (i < others || !ownerIsRoot || q.edns) return 'formerr';
        q.edns = true;
        q.payloadSize = msg.readUInt16BE(offset + 2);
        q.ednsVersion = msg[offset + 5] ?? 0;
        q.dnssecOk = ((msg[offset + 6] ?? 0) & 0x80) !== 0;
        for (let option = rdata; option < rdata + rdlength; ) {
          if (option + 4 > rdata + rdlength) return 'formerr';
          option += 4 + msg.readUInt16BE(option + 2);
          if (option > rdata + rdlength) return 'formerr';
        }
      }
      offset = rdata + rdlength;
    }
    return 'ok';
  }

  /** header + the query's question + an optional SOA in authority + OPT; the SOA goes if it does not fit */
  #negative(msg: Buffer, rcode: number, authoritative: boolean, soaRecord: Buffer | undefined, tcp: boolean): Buffer {
    const q = this.#q;
    const questionLength = q.questionEnd - 12;
    const optLength = q.edns ? 11 : 0;
    let authority = soaRecord;
    let truncated = false;
    if (authority && 12 + questionLength + authority.length + optLength > this.#limit(tcp)) {
      authority = undefined;
      truncated = true;
      this.#stats.truncated++;
    }
    const out = Buffer.allocUnsafe(12 + questionLength + (authority?.length ?? 0) + optLength);
    out[0] = msg[0] ?? 0;
    out[1] = msg[1] ?? 0;
    out[2] = 0x80 | (authoritative ? 0x04 : 0) | (truncated ? 0x02 : 0) | ((msg[2] ?? 0) & 0x01);
    out[3] = ((msg[3] ?? 0) & 0x10) | (rcode & 0x0f);
    out.writeUInt32BE(0x00010000, 4);
    out.writeUInt32BE((authority ? 0x00010000 : 0) | (q.edns ? 1 : 0), 8);
    for (let i = 12; i < q.questionEnd; i++) out[i] = msg[i] ?? 0;
    let offset = 12 + questionLength;
    if (authority) {
      out.set(authority, offset);
      offset += authority.length;
    }
    if (q.edns) writeOpt(out, offset, this.#maxUdp, rcode >> 4, q.dnssecOk);
    this.#stats.query(q.type, rcode);
    return out;
  }

  #encode(node: ZoneNode, kind: number, edns: boolean): CachedAnswer {
    const ttl = this.#index.ttl;
    const answers: Answer[] = [];
    const additionals: Answer[] = [];
    const addresses = (target: ZoneNode, into: Answer[], types: readonly number[]): void => {
      if (!target.vips) return;
      if (types.includes(TYPE_A)) into.push({ type: 'A', name: target.name, class: 'IN', ttl, data: target.vips.ipv4 });
      if (types.includes(TYPE_AAAA)) into.push({ type: 'AAAA', name: target.name, class: 'IN', ttl, data: target.vips.ipv6 });
    };
    let rcode = NOERROR;
    if (node.host && !node.vips && (kind === TYPE_A || kind === TYPE_AAAA || kind === TYPE_ANY)) rcode = SERVFAIL;
    else {
      if (kind === TYPE_A || kind === TYPE_AAAA) addresses(node, answers, [kind]);
      if (kind === TYPE_ANY) addresses(node, answers, [TYPE_A, TYPE_AAAA]);
      if (node.srv && (kind === TYPE_SRV || kind === TYPE_ANY)) {
        answers.push({ type: 'SRV', name: node.name, class: 'IN', ttl, data: { priority: 0, weight: 0, port: node.srv.port, target: node.srv.target.name } });
        addresses(node.srv.target, additionals, [TYPE_A, TYPE_AAAA]);
      }
      if (node.apex && (kind === TYPE_SOA || kind === TYPE_ANY)) answers.push(node.zone.soa);
    }
    const opt: OptAnswer[] = edns ? [{ type: 'OPT', name: '.', udpPayloadSize: this.#maxUdp, extendedRcode: 0, ednsVersion: 0, flags: 0, flag_do: false, options: [] }] : [];
    const packet: Packet = {
      type: 'response',
      id: 0,
      flags: (rcode === NOERROR ? AUTHORITATIVE_ANSWER : 0) | rcode,
      // the question's type and class are overwritten by the query's own
      questions: [{ name: node.name, type: 'A', class: 'IN' }],
      answers,
      authorities: rcode === NOERROR && answers.length === 0 ? [node.zone.soa] : [],
      additionals: [...additionals, ...opt],
    };
    const full = encode(packet);
    const truncated = encode({ ...packet, flags: (packet.flags ?? 0) | TRUNCATED_RESPONSE, answers: [], authorities: [], additionals: opt });
    return { rcode, full, truncated, ownerOffsets: ownerOffsets(full, node.wire) };
  }
}

/** offsets of the records' owner names, past the question, that equal `wire` (dns-packet never compresses) */
function ownerOffsets(message: Buffer, wire: Buffer): number[] {
  const offsets: number[] = [];
  const records = message.readUInt16BE(6) + message.readUInt16BE(8) + message.readUInt16BE(10);
  let offset = skipName(message, 12) + 4;
  for (let i = 0; i < records; i++) {
    if (offset + wire.length <= message.length && message.compare(wire, 0, wire.length, offset, offset + wire.length) === 0) offsets.push(offset);
    offset = skipName(message, offset);
    offset += 10 + message.readUInt16BE(offset + 8);
  }
  return offsets;
}

function writeOpt(out: Buffer, offset: number, payloadSize: number, extendedRcode: number, dnssecOk: boolean): void {
  out[offset] = 0;
  out.writeUInt16BE(TYPE_OPT, offset + 1);
  out.writeUInt16BE(payloadSize, offset + 3);
  out[offset + 5] = extendedRcode;
  out[offset + 6] = 0;
  out.writeUInt16BE(dnssecOk ? 0x8000 : 0, offset + 7);
  out.writeUInt16BE(0, offset + 9);
}

/** FORMERR or NOTIMP: the query's header with QR and the rcode, and empty sections */
function headerOnly(msg: Buffer, rcode: number): Buffer {
  const out = Buffer.alloc(12);
  msg.copy(out, 0, 0, 4);
  out[2] = 0x80 | ((msg[2] ?? 0) & 0x79);
  out[3] = ((msg[3] ?? 0) & 0x10) | rcode;
  return out;
}
