/**
 * The DNS server's counters. The answering path only bumps numbers in typed arrays (a labelled prom-client
 * increment per query would cost more than the answer); Prometheus reads them when it scrapes. Query types and
 * rcodes are folded into small fixed sets, so random queries cannot grow the series.
 */
import { Counter, Gauge, type Registry as PromRegistry } from 'prom-client';

export const TYPE_LABELS = ['A', 'AAAA', 'SRV', 'SOA', 'NS', 'ANY', 'other', 'none'] as const;
export type TypeLabel = (typeof TYPE_LABELS)[number];
/** rcode values 0..16 (16 = BADVERS, an EDNS extended rcode) */
export const RCODE_LABELS = ['NOERROR', 'FORMERR', 'SERVFAIL', 'NXDOMAIN', 'NOTIMP', 'REFUSED', 'YXDOMAIN', 'YXRRSET', 'NXRRSET', 'NOTAUTH', 'NOTZONE', 'RCODE11', 'RCODE12', 'RCODE13', 'RCODE14', 'RCODE15', 'BADVERS'] as const;
export const DROP_REASONS = ['malformed', 'response', 'tcp-limit', 'send-error', 'internal-error'] as const;
export type DropReason = (typeof DROP_REASONS)[number];

const OTHER = TYPE_LABELS.indexOf('other');
/** the type label of a message whose question could not be read */
export const NO_TYPE = TYPE_LABELS.indexOf('none');

/** the index in TYPE_LABELS of a query type (a number, as on the wire) */
export function typeIndex(qtype: number): number {
  switch (qtype) {
    case 1:
      return 0;
    case 28:
      return 1;
    case 33:
      return 2;
    case 6:
      return 3;
    case 2:
      return 4;
    case 255:
      return 5;
    default:
      return OTHER;
  }
}

export class DnsStats {
  /** [type label][rcode] */
  readonly queries = new Float64Array(TYPE_LABELS.length * RCODE_LABELS.length);
  readonly dropped = new Float64Array(DROP_REASONS.length);
  truncated = 0;
  tcpConnections = 0;
  tcpActive = 0;

  /** type: an index in TYPE_LABELS (typeIndex of the query type, or NO_TYPE) */
  query(type: number, rcode: number): void {
    const index = type * RCODE_LABELS.length + rcode;
    this.queries[index] = (this.queries[index] ?? 0) + 1;
  }

  drop(reason: DropReason): void {
    const index = DROP_REASONS.indexOf(reason);
    this.dropped[index] = (this.dropped[index] ?? 0) + 1;
  }
}

/** Registers the DNS metrics in the registry, read from stats at each scrape. */
export function registerDnsMetrics(stats: DnsStats, registry: PromRegistry): void {
  const registers = [registry];
  new Counter({
    name: 'meshfed_dns_queries_total',
    help: 'DNS queries answered, by query type and response code',
    labelNames: ['type', 'rcode'],
    registers,
    collect() {
      this.reset();
      stats.queries.forEach((count, index) => {
        if (count > 0) this.inc({ type: TYPE_LABELS[Math.floor(index / RCODE_LABELS.length)], rcode: RCODE_LABELS[index % RCODE_LABELS.length] }, count);
      });
    },
  });
  new Counter({
    name: 'meshfed_dns_dropped_total',
    help: 'DNS messages dropped without an answer: malformed (no readable header), response (not a query), tcp-limit (connection refused at the limit), send-error, internal-error (a bug: see the log)',
    labelNames: ['reason'],
    registers,
    collect() {
      this.reset();
      stats.dropped.forEach((count, index) => {
        if (count > 0) this.inc({ reason: DROP_REASONS[index] }, count);
      });
    },
  });
  new Counter({
    name: 'meshfed_dns_truncated_total',
    help: 'UDP answers sent truncated (TC) because the full answer exceeds the payload size',
    registers,
    collect() {
      this.reset();
      this.inc(stats.truncated);
    },
  });
  new Counter({
    name: 'meshfed_dns_tcp_connections_total',
    help: 'DNS TCP connections accepted',
    registers,
    collect() {
      this.reset();
      this.inc(stats.tcpConnections);
    },
  });
  new Gauge({
    name: 'meshfed_dns_tcp_connections_active',
    help: 'DNS TCP connections open now',
    registers,
    collect() {
      this.set(stats.tcpActive);
    },
  });
}
