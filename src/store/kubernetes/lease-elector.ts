/**
 * Leader election on a coordination.k8s.io/v1 Lease, as client-go's leaderelection package does it: every
 * candidate reads the Lease each retry period; a Lease whose holder has not renewed it within its duration (by
 * this candidate's own clock, counted from when it last saw the record change, so clock skew between replicas
 * does not matter) is taken over with a replace guarded by its resourceVersion, so of several candidates exactly
 * one wins. The leader renews every retry period and steps down when it has not managed to for the renew
 * deadline, before its Lease can expire and a successor can take it. A clean stop releases the Lease (holder
 * cleared), so a successor takes it at its next retry instead of waiting for the expiry.
 */
import { ApiException, V1Lease, V1LeaseSpec, V1MicroTime, V1ObjectMeta, type CoordinationV1Api } from '@kubernetes/client-node';
import { SILENT_LOGGER, type Logger } from '../../logging.js';

export const DEFAULT_LEASE_DURATION_MS = 15_000;
export const DEFAULT_RENEW_DEADLINE_MS = 10_000;
export const DEFAULT_RETRY_PERIOD_MS = 2_000;

export interface LeaseElectorOptions {
  api: CoordinationV1Api;
  namespace: string;
  /** the Lease's name */
  name: string;
  /** this candidate: the pod name in a cluster */
  identity: string;
  leaseDurationMs?: number;
  /** a leader that has not renewed for this long steps down; less than the lease duration */
  renewDeadlineMs?: number;
  /** how often candidates try to acquire and the leader renews; less than the renew deadline */
  retryPeriodMs?: number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
  /** the holder this candidate sees changed (undefined: nobody holds the Lease) */
  onNewLeader?: (identity: string | undefined) => void;
  logger?: Logger;
}

export class LeaseElector {
  readonly identity: string;
  readonly leaseDurationMs: number;
  readonly #renewDeadlineMs: number;
  readonly #retryPeriodMs: number;
  readonly #options: LeaseElectorOptions;
  readonly #log: Logger;
  #leading = false;
  #leader: string | undefined;
  /** the last Lease this candidate read or wrote */
  #lease: V1Lease | undefined;
  /** the holder and resourceVersion last seen, and when (local clock) they were first seen */
  #observed: { key: string; at: number } | undefined;
  #lastRenew = 0;
  #timer: NodeJS.Timeout | undefined;
  #running = false;
  #attempt: Promise<void> = Promise.resolve();

  constructor(options: LeaseElectorOptions) {
    this.identity = options.identity;
    this.leaseDurationMs = options.leaseDurationMs ?? DEFAULT_LEASE_DURATION_MS;
    this.#renewDeadlineMs = options.renewDeadlineMs ?? DEFAULT_RENEW_DEADLINE_MS;
    this.#retryPeriodMs = options.retryPeriodMs ?? DEFAULT_RETRY_PERIOD_MS;
    if (!(this.#retryPeriodMs > 0 && this.#retryPeriodMs < this.#renewDeadlineMs && this.#renewDeadlineMs < this.leaseDurationMs)) {
      throw new Error(`lease timings must satisfy 0 < retry period (${this.#retryPeriodMs} ms) < renew deadline (${this.#renewDeadlineMs} ms) < lease duration (${this.leaseDurationMs} ms)`);
    }
    if (this.leaseDurationMs % 1000 !== 0) throw new Error(`the lease duration must be whole seconds (a Lease counts in seconds), not ${this.leaseDurationMs} ms`);
    if (options.identity === '') throw new Error('a leader election candidate needs an identity');
    this.#options = options;
    this.#log = options.logger ?? SILENT_LOGGER;
  }

  /** Leading, and renewed within the renew deadline (so a process that was frozen does not act on a stale belief). */
  isLeader(): boolean {
    return this.#leading && Date.now() - this.#lastRenew <= this.#renewDeadlineMs;
  }

  /** the holder of the Lease as this candidate last saw it; not itself once it no longer knows it leads */
  leader(): string | undefined {
    return this.#leader === this.identity && !this.isLeader() ? undefined : this.#leader;
  }

  /** the Lease as this candidate last read or wrote it (its resourceVersion fences this candidate's writes) */
  lease(): V1Lease | undefined {
    return this.#lease;
  }

  start(): void {
    if (this.#running) return;
    this.#running = true;
    this.#tick();
  }

  /** Stops campaigning; a leader releases the Lease unless `release` is false (an abrupt stop, as a crash would). */
  async stop(options: { release?: boolean } = {}): Promise<void> {
    this.#running = false;
    clearTimeout(this.#timer);
    await this.#attempt;
    if (!this.#leading) return;
    if (options.release !== false) {
      try {
        await this.#write(this.#spec({ holderIdentity: '', leaseDurationSeconds: 1 }));
      } catch (error) {
        this.#log.warn({ err: { message: (error as Error).message } }, 'could not release the leader lease; a successor waits for it to expire');
      }
    }
    this.#setLeading(false);
  }

  #tick(): void {
    if (!this.#running) return;
    this.#attempt = this.#tryAcquireOrRenew()
      .catch((error: unknown) => {
        this.#log.warn({ err: { message: (error as Error).message }, lease: this.#options.name }, 'leader election attempt failed');
      })
      .finally(() => {
        if (this.#leading && Date.now() - this.#lastRenew > this.#renewDeadlineMs) {
          this.#log.warn({ lease: this.#options.name }, 'could not renew the leader lease within the renew deadline: stepping down');
          this.#setLeading(false);
        }
        if (this.#running) this.#timer = setTimeout(() => { this.#tick(); }, this.#retryPeriodMs);
      });
  }

  async #tryAcquireOrRenew(): Promise<void> {
    const { api, namespace, name } = this.#options;
    const started = Date.now();
    let current: V1Lease;
    try {
      current = await this.#bounded(api.readNamespacedLease({ name, namespace }));
    } catch (error) {
      if (!(error instanceof ApiException) || error.code !== 404) throw error;
      const now = new V1MicroTime();
      const spec = Object.assign(new V1LeaseSpec(), { holderIdentity: this.identity, leaseDurationSeconds: this.leaseDurationMs / 1000, acquireTime: now, renewTime: now, leaseTransitions: 0 });
      const body = Object.assign(new V1Lease(), { apiVersion: 'coordination.k8s.io/v1', kind: 'Lease', metadata: Object.assign(new V1ObjectMeta(), { name, namespace }), spec });
      this.#lease = await this.#bounded(api.createNamespacedLease({ namespace, body }));
      this.#acquired(started);
      return;
    }
    this.#lease = current;
    const holder = current.spec?.holderIdentity ?? '';
    // every write (a renewal too) moves the resourceVersion
    const key = `${holder}|${current.metadata?.resourceVersion ?? ''}`;
    if (this.#observed?.key !== key) this.#observed = { key, at: Date.now() };
    this.#seeLeader(holder === '' ? undefined : holder);
    const durationMs = (current.spec?.leaseDurationSeconds ?? this.leaseDurationMs / 1000) * 1000;
    const heldByOther = holder !== '' && holder !== this.identity;
    if (heldByOther && this.#observed.at + durationMs > Date.now()) {
      if (this.#leading) this.#setLeading(false);
      return;
    }
    const now = new V1MicroTime();
    const taking = holder !== this.identity;
    await this.#write(
      this.#spec({
        holderIdentity: this.identity,
        leaseDurationSeconds: this.leaseDurationMs / 1000,
        renewTime: now,
        ...(taking ? { acquireTime: now, leaseTransitions: (current.spec?.leaseTransitions ?? 0) + 1 } : {}),
      }),
    );
    this.#acquired(started);
  }

  #acquired(started: number): void {
    this.#lastRenew = started;
    this.#seeLeader(this.identity);
    if (!this.#leading) this.#setLeading(true);
  }

  #spec(changes: Partial<V1LeaseSpec>): V1Lease {
    const lease = this.#lease ?? new V1Lease();
    return Object.assign(new V1Lease(), lease, { spec: Object.assign(new V1LeaseSpec(), lease.spec, changes) });
  }

  /** A replace carrying the resourceVersion last read: a 409 when anyone wrote the Lease since. */
  async #write(body: V1Lease): Promise<void> {
    const { api, namespace, name } = this.#options;
    this.#lease = await this.#bounded(api.replaceNamespacedLease({ name, namespace, body }));
  }

  /** client-node has no request timeout: a hung API server must not keep a leader from stepping down. */
  #bounded<T>(request: Promise<T>): Promise<T> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, fail) => {
      timer = setTimeout(() => {
        fail(new Error(`the API server did not answer within ${this.#renewDeadlineMs} ms`));
      }, this.#renewDeadlineMs);
    });
    return Promise.race([request, timeout]).finally(() => {
      clearTimeout(timer);
    });
  }

  #seeLeader(identity: string | undefined): void {
    if (identity === this.#leader) return;
    this.#leader = identity;
    this.#options.onNewLeader?.(identity);
  }

  #setLeading(leading: boolean): void {
    this.#leading = leading;
    this.#log.info({ identity: this.identity, lease: this.#options.name }, leading ? 'became the leader' : 'stopped leading');
    if (leading) this.#options.onStartedLeading?.();
    else this.#options.onStoppedLeading?.();
  }
}
