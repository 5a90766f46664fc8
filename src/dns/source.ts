/**
 * What the DNS server serves, as the server sees it: hostnames with their ports. The manager feeds it from the
 * virtual destinations; the DNS module knows nothing of them. A source is read in full (`names()`) whenever it
 * says it changed (`subscribe`).
 */

export interface DnsPort {
  /** a port name gives the SRV record `_NAME._PROTO.HOSTNAME` */
  name?: string;
  number: number;
  /** HTTP, GRPC, HTTP2, TCP, TLS (all over TCP) or UDP; only UDP makes `_udp` SRV names */
  protocol: string;
}

export interface DnsName {
  hostname: string;
  ports: readonly DnsPort[];
}

export interface DnsZoneSource {
  names(): readonly DnsName[];
  /** calls listener after every change; returns the unsubscribe function */
  subscribe(listener: () => void): () => void;
}

/** A source whose names are set by hand: for the manager to push into, for tests and benchmarks. */
export class StaticZoneSource implements DnsZoneSource {
  #names: readonly DnsName[];
  readonly #listeners = new Set<() => void>();

  constructor(names: readonly DnsName[] = []) {
    this.#names = names;
  }

  names(): readonly DnsName[] {
    return this.#names;
  }

  set(names: readonly DnsName[]): void {
    this.#names = names;
    for (const listener of [...this.#listeners]) listener();
  }

  subscribe(listener: () => void): () => void {
    this.#listeners.add(listener);
    return () => {
      this.#listeners.delete(listener);
    };
  }
}
