/**
 * The gateway's Prometheus metrics. Connections are counted by outcome, and forwarded ones also by the server name
 * they asked for; refused ones are not labelled by SNI, so a client sending random names cannot grow the series.
 *
 * The per-connection calls are plain additions: counts and byte totals wait in this object and go into the
 * Prometheus metrics when they are read (a scrape), as does the number of connections open now. The gateway's hot
 * path never builds a label set or a label hash.
 */
import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { Outcome } from './gateway.js';

export class GatewayMetrics {
  readonly registry: PromRegistry;
  readonly #hello: Histogram;
  /** forwarded connections not yet added to the counter, by SNI */
  #forwarded = new Map<string, number>();
  /** refused connections not yet added to the counter, by outcome */
  #refused = new Map<Outcome, number>();
  #bytesUp = 0;
  #bytesDown = 0;
  /** connections open now, over every gateway that reports here */
  #active = 0;

  constructor(registry?: PromRegistry) {
    this.registry = registry ?? new PromRegistry();
    const registers = [this.registry];
    const flushConnections = (counter: Counter<'outcome' | 'sni'>): void => {
      if (this.#forwarded.size > 0) {
        for (const [sni, n] of this.#forwarded) counter.inc({ outcome: 'forwarded', sni }, n);
        this.#forwarded = new Map();
      }
      if (this.#refused.size > 0) {
        for (const [outcome, n] of this.#refused) counter.inc({ outcome, sni: '' }, n);
        this.#refused = new Map();
      }
    };
    const flushBytes = (counter: Counter<'direction'>): void => {
      if (this.#bytesUp > 0 || this.#bytesDown > 0) {
        counter.inc({ direction: 'up' }, this.#bytesUp);
        counter.inc({ direction: 'down' }, this.#bytesDown);
        this.#bytesUp = 0;
        this.#bytesDown = 0;
      }
    };
    const activeNow = (): number => this.#active;
    new Counter({
      name: 'meshfed_gateway_connections_total',
      help: 'Connections by outcome (forwarded, or the reason they were refused); forwarded ones by SNI',
      labelNames: ['outcome', 'sni'],
      registers,
      collect() {
        flushConnections(this);
      },
    });
    new Counter({
      name: 'meshfed_gateway_bytes_total',
      help: 'Bytes spliced: up (client to endpoint) and down',
      labelNames: ['direction'],
      registers,
      collect() {
        flushBytes(this);
      },
    });
    this.#hello = new Histogram({
      name: 'meshfed_gateway_hello_read_seconds',
      help: 'Time from accepting a connection to having its whole ClientHello',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    new Gauge({
      name: 'meshfed_gateway_active_connections',
      help: 'Client connections open now',
      registers,
      collect() {
        this.set(activeNow());
      },
    });
  }

  connection(outcome: Outcome, sni: string | undefined): void {
    if (outcome === 'forwarded') {
      const name = sni ?? '';
      this.#forwarded.set(name, (this.#forwarded.get(name) ?? 0) + 1);
    } else {
      this.#refused.set(outcome, (this.#refused.get(outcome) ?? 0) + 1);
    }
  }

  bytes(up: number, down: number): void {
    this.#bytesUp += up;
    this.#bytesDown += down;
  }

  helloRead(seconds: number): void {
    this.#hello.observe(seconds);
  }

  /** a client connection was accepted */
  opened(): void {
    this.#active += 1;
  }

  /** a client connection accepted earlier is gone */
  closed(): void {
    this.#active -= 1;
  }
}
