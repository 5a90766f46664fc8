/**
 * The gateway's Prometheus metrics. Connections are counted by outcome, and forwarded ones also by the server name
 * they asked for; refused ones are not labelled by SNI, so a client sending random names cannot grow the series.
 */
import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { Outcome } from './gateway.js';

export class GatewayMetrics {
  readonly registry: PromRegistry;
  readonly #connections: Counter<'outcome' | 'sni'>;
  readonly #bytes: Counter<'direction'>;
  readonly #hello: Histogram;
  readonly #active: Gauge;

  constructor(registry?: PromRegistry) {
    this.registry = registry ?? new PromRegistry();
    const registers = [this.registry];
    this.#connections = new Counter({
      name: 'meshfed_gateway_connections_total',
      help: 'Connections by outcome (forwarded, or the reason they were refused); forwarded ones by SNI',
      labelNames: ['outcome', 'sni'],
      registers,
    });
    this.#bytes = new Counter({ name: 'meshfed_gateway_bytes_total', help: 'Bytes spliced: up (client to endpoint) and down', labelNames: ['direction'], registers });
    this.#hello = new Histogram({
      name: 'meshfed_gateway_hello_read_seconds',
      help: 'Time from accepting a connection to having its whole ClientHello',
      buckets: [0.0001, 0.0005, 0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5],
      registers,
    });
    this.#active = new Gauge({ name: 'meshfed_gateway_active_connections', help: 'Client connections open now', registers });
  }

  connection(outcome: Outcome, sni: string | undefined): void {
    this.#connections.inc({ outcome, sni: outcome === 'forwarded' ? (sni ?? '') : '' });
  }

  bytes(up: number, down: number): void {
    this.#bytes.inc({ direction: 'up' }, up);
    this.#bytes.inc({ direction: 'down' }, down);
  }

  helloRead(seconds: number): void {
    this.#hello.observe(seconds);
  }

  setActive(count: number): void {
    this.#active.set(count);
  }
}
