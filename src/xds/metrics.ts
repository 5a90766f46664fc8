/**
 * The xDS server's Prometheus metrics, fed by the ADS server's observer hooks and the provider's pushes:
 * connected proxies by cluster and kind, responses and pushes by type, ACK latency, NACKs, push latency (change
 * seen → pushes written) and convergence (change seen → every proxy it was pushed to has ACKed or NACKed it, or
 * gone away), both as histograms.
 */
import { Counter, Gauge, Histogram, Registry as PromRegistry } from 'prom-client';
import type { AdsObserver, AdsStreamInfo } from './ads-server.js';
import { proxyKind, type AppliedChange } from './federation-provider.js';

const shortType = (typeUrl: string): string => typeUrl.slice(typeUrl.lastIndexOf('.') + 1) || 'unknown';

const MAX_OPEN_ROUNDS = 256;

const LATENCY_BUCKETS = [0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

/** The pushes of one announced change still waiting for an answer. */
interface Round {
  seenAt: number;
  pending: Set<string>;
}

/** Anything that announces applied changes (the federation provider). */
export interface PushSource {
  onApplied(listener: (change: AppliedChange) => void): () => void;
}

export class XdsMetrics {
  readonly registry: PromRegistry;
  readonly #connected: Gauge<'cluster' | 'kind'>;
  readonly #responses: Counter<'type'>;
  readonly #pushes: Counter<'type'>;
  readonly #acks: Counter<'type'>;
  readonly #nacks: Counter<'type'>;
  readonly #ackLatency: Histogram<'type'>;
  readonly #pushLatency: Histogram;
  readonly #convergence: Histogram;
  /** pushes written since the last announced change was applied: stream|type|nonce */
  #unclaimed = new Set<string>();
  readonly #rounds: Round[] = [];

  constructor(registry: PromRegistry | undefined) {
    this.registry = registry ?? new PromRegistry();
    const registers = [this.registry];
    this.#connected = new Gauge({ name: 'meshfed_xds_connected_proxies', help: 'ADS streams open now, by the cluster and kind the proxy says it is', labelNames: ['cluster', 'kind'], registers });
    this.#responses = new Counter({ name: 'meshfed_xds_responses_total', help: 'DiscoveryResponses sent, for any reason', labelNames: ['type'], registers });
    this.#pushes = new Counter({ name: 'meshfed_xds_pushes_total', help: 'DiscoveryResponses sent because the configuration changed', labelNames: ['type'], registers });
    this.#acks = new Counter({ name: 'meshfed_xds_acks_total', help: 'Responses a proxy accepted', labelNames: ['type'], registers });
    this.#nacks = new Counter({ name: 'meshfed_xds_nacks_total', help: 'Responses a proxy rejected (it keeps its last accepted configuration)', labelNames: ['type'], registers });
    this.#ackLatency = new Histogram({ name: 'meshfed_xds_ack_latency_seconds', help: 'Time from a response sent to its ACK or NACK', labelNames: ['type'], buckets: LATENCY_BUCKETS, registers });
    this.#pushLatency = new Histogram({ name: 'meshfed_xds_push_latency_seconds', help: 'Time from a change seen in the registry to its pushes written', buckets: LATENCY_BUCKETS, registers });
    this.#convergence = new Histogram({
      name: 'meshfed_xds_convergence_seconds',
      help: 'Time from a change seen in the registry to every proxy it was pushed to having answered it',
      buckets: LATENCY_BUCKETS,
      registers,
    });
  }

  /** The observer for the ADS server; pushes are grouped into rounds by the provider's applied changes. */
  observer(source: PushSource): AdsObserver {
    source.onApplied((change) => {
      const now = performance.now();
      this.#pushLatency.observe((now - change.seenAt) / 1000);
      const pending = this.#unclaimed;
      this.#unclaimed = new Set();
      if (pending.size === 0) this.#convergence.observe((now - change.seenAt) / 1000);
      else this.#rounds.push({ seenAt: change.seenAt, pending });
      // a proxy that never answers must not hold rounds forever: the oldest are given up (not observed)
      if (this.#rounds.length > MAX_OPEN_ROUNDS) this.#rounds.splice(0, this.#rounds.length - MAX_OPEN_ROUNDS);
    });
    const key = (stream: AdsStreamInfo, typeUrl: string, nonce: string): string => `${String(stream.id)}|${typeUrl}|${nonce}`;
    const labels = (stream: AdsStreamInfo): { cluster: string; kind: string } => ({ cluster: stream.node.cluster ?? '', kind: proxyKind(stream.node) });
    const settle = (match: (k: string) => boolean): void => {
      const now = performance.now();
      for (let i = this.#rounds.length - 1; i >= 0; i--) {
        const round = this.#rounds[i];
        if (!round) continue;
        for (const k of round.pending) if (match(k)) round.pending.delete(k);
        if (round.pending.size === 0) {
          this.#convergence.observe((now - round.seenAt) / 1000);
          this.#rounds.splice(i, 1);
        }
      }
    };
    return {
      streamOpened: (stream) => {
        this.#connected.inc(labels(stream));
      },
      streamClosed: (stream) => {
        this.#connected.dec(labels(stream));
        const prefix = `${String(stream.id)}|`;
        for (const k of this.#unclaimed) if (k.startsWith(prefix)) this.#unclaimed.delete(k);
        settle((k) => k.startsWith(prefix));
      },
      sent: (stream, typeUrl, nonce, push) => {
        const type = shortType(typeUrl);
        this.#responses.inc({ type });
        if (!push) return;
        this.#pushes.inc({ type });
        this.#unclaimed.add(key(stream, typeUrl, nonce));
      },
      answered: (stream, typeUrl, nonce, accepted, latencyMs) => {
        const type = shortType(typeUrl);
        (accepted ? this.#acks : this.#nacks).inc({ type });
        this.#ackLatency.observe({ type }, latencyMs / 1000);
        const k = key(stream, typeUrl, nonce);
        this.#unclaimed.delete(k);
        settle((candidate) => candidate === k);
      },
    };
  }
}
