/**
 * A drill's traffic over xDS: `clients` real @grpc/grpc-js-xds channels, each a proxyless gRPC client standing in
 * the cluster whose bootstrap it is given (its node, so meshfed answers it as a client there, and its certificate
 * provider, so it calls over mTLS with that cluster's demo SVID), calling the echo service of `xds:///TO`.
 *
 * - Each client is a process of its own as far as grpc is concerned: its own xDS client (its bootstrap given as a
 *   channel option, its node id suffixed with the stream's name and its index) and its own subchannels (a local
 *   subchannel pool), so N clients hold N ADS streams and N sets of connections, as N pods would.
 * - Load: open loop, `rate` requests per second spread evenly over the clients, each on its own schedule (staggered
 *   by a fraction of a period) that never waits for answers: a hanging call does not slow the offered load down.
 * - Each request has a deadline of `timeoutMs`, shared by its attempts.
 * - Retries (`attempts` > 1): on UNAVAILABLE, the request is tried again after a fully jittered exponential back-off
 *   (Envoy's defaults: 25 ms base, 250 ms at most), while the deadline allows. They are the client loop's own: under
 *   xDS, grpc-js takes each call's method config (and so its retryPolicy) from the route's retry_policy alone — the
 *   `grpc.service_config` channel option is only used when the resolver gives no service config, which the xDS
 *   resolver always does (grpc-js resolving-load-balancer handleResolverResult; grpc-js-xds resolver-xds's
 *   ConfigSelector) — and meshfed's routes carry no retry_policy yet.
 * Every request's outcome goes to `onRequest`, once: the cluster of the echo reply, or the gRPC status name.
 */
import * as grpc from '@grpc/grpc-js';
import { register, XdsChannelCredentials } from '@grpc/grpc-js-xds';
import { echoClient, type EchoClient, type EchoReply } from '../sim/echo.js';
import type { RequestOutcome, Traffic, TrafficSpec } from './world.js';

const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';
/** Envoy's default retry back-off */
const RETRY_BASE_MS = 25;
const RETRY_MAX_MS = 250;
export const DEFAULT_READY_TIMEOUT_MS = 30_000;

export interface XdsTrafficOptions {
  spec: TrafficSpec;
  /** the gRPC xDS bootstrap (its JSON text) of a proxyless client standing in `spec.from` */
  bootstrap: string;
  onRequest: (outcome: RequestOutcome) => void;
  /** how long `ready()` waits for every client's first answer (default 30 s) */
  readyTimeoutMs?: number;
}

/** Checks a traffic spec's numbers; throws naming the stream and the field. */
export function checkTrafficSpec(spec: TrafficSpec): void {
  const fail = (what: string): never => {
    throw new Error(`traffic ${JSON.stringify(spec.name)}: ${what}`);
  };
  if (!(Number.isFinite(spec.rate) && spec.rate > 0)) fail(`rate must be a positive number of requests per second, not ${String(spec.rate)}`);
  if (!(Number.isInteger(spec.clients) && spec.clients >= 1)) fail(`clients must be a whole number of at least 1, not ${String(spec.clients)}`);
  if (!(Number.isInteger(spec.attempts) && spec.attempts >= 1)) fail(`attempts must be a whole number of at least 1, not ${String(spec.attempts)}`);
  if (!(Number.isFinite(spec.timeoutMs) && spec.timeoutMs > 0)) fail(`timeoutMs must be positive, not ${String(spec.timeoutMs)}`);
}

let registered = false;

/** The bootstrap with the node id made this client's own. */
function clientBootstrap(bootstrap: string, spec: TrafficSpec, index: number): string {
  let parsed: unknown;
  try {
    parsed = JSON.parse(bootstrap);
  } catch (error) {
    throw new Error(`traffic ${JSON.stringify(spec.name)}: the xDS bootstrap of ${spec.from} is not JSON: ${(error as Error).message}`, { cause: error });
  }
  const root = typeof parsed === 'object' && parsed !== null ? (parsed as Record<string, unknown>) : {};
  const node = typeof root.node === 'object' && root.node !== null ? (root.node as Record<string, unknown>) : {};
  if (typeof node.id !== 'string') throw new Error(`traffic ${JSON.stringify(spec.name)}: the xDS bootstrap of ${spec.from} names no node id`);
  return JSON.stringify({ ...root, node: { ...node, id: `${node.id}~${spec.name}-${String(index)}` } });
}

const statusName = (code: number): string => (grpc.status as unknown as Record<number, string | undefined>)[code] ?? `status-${String(code)}`;

interface Attempt {
  reply?: EchoReply;
  error?: grpc.ServiceError;
}

function attempt(client: EchoClient, message: string, deadline: number): Promise<Attempt> {
  return new Promise((resolve) => {
    client.Echo({ message }, { deadline }, (error, reply) => {
      resolve(error ? { error } : reply ? { reply } : { error: Object.assign(new Error('empty reply'), { code: grpc.status.INTERNAL, details: 'empty reply', metadata: new grpc.Metadata() }) });
    });
  });
}

/** Starts the clients; they send until `stop()`. */
export function startXdsTraffic(options: XdsTrafficOptions): Traffic {
  const { spec } = options;
  checkTrafficSpec(spec);
  if (!registered) {
    register();
    registered = true;
  }
  const bootstraps = Array.from({ length: spec.clients }, (_, i) => clientBootstrap(options.bootstrap, spec, i));
  const clients = bootstraps.map((bootstrap) =>
    echoClient(`xds:///${spec.to}`, new XdsChannelCredentials(grpc.credentials.createInsecure()), {
      [BOOTSTRAP_OPTION]: bootstrap,
      'grpc.use_local_subchannel_pool': 1,
    }),
  );
  return startClientLoop({
    spec,
    clients,
    onRequest: options.onRequest,
    ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
    attempt: async (client, message, deadline) => {
      const result = await attempt(client, message, deadline);
      if (result.reply) return { cluster: result.reply.cluster };
      const code = result.error?.code ?? grpc.status.UNKNOWN;
      return { error: statusName(code), detail: result.error?.details ?? '', retriable: code === grpc.status.UNAVAILABLE };
    },
    close: () => {
      for (const client of clients) client.close();
    },
  });
}

/** What one attempt of a request came to: the cluster that answered, or why it failed and whether to try again. */
export type AttemptOutcome = { cluster: string } | { error: string; detail: string; retriable: boolean };

export interface ClientLoopOptions<C> {
  spec: TrafficSpec;
  /** one per client of the stream (`spec.clients` of them) */
  clients: readonly C[];
  /** one attempt of a request by `client`, answered (never rejected) by `deadline` (Date.now() ms) or soon after */
  attempt: (client: C, message: string, deadline: number) => Promise<AttemptOutcome>;
  onRequest: (outcome: RequestOutcome) => void;
  /** how long `ready()` waits for every client's first answer (default 30 s) */
  readyTimeoutMs?: number;
  /** releases the clients once the requests in flight are done */
  close: () => void | Promise<void>;
}

/**
 * The open loop every drill client runs, whatever it speaks: `spec.rate` requests per second spread evenly over the
 * clients, each on its own staggered schedule that never waits for answers; each request retried while its attempt
 * says so (up to `spec.attempts`, Envoy's jittered back-off, within the request's deadline); every request's outcome
 * reported once, stamped with when it was sent.
 */
export function startClientLoop<C>(options: ClientLoopOptions<C>): Traffic {
  const { spec, clients, onRequest } = options;
  checkTrafficSpec(spec);
  const periodMs = (1000 * clients.length) / spec.rate;
  const started = performance.now();
  /** the clients' next sends */
  const schedule = new Set<NodeJS.Timeout>();
  /** retry back-offs under way: stop() ends them at once (false: stopped) */
  const backoffs = new Map<NodeJS.Timeout, (going: boolean) => void>();
  const inFlight = new Set<Promise<void>>();
  const answered = clients.map(() => false);
  const lastError: (string | undefined)[] = clients.map(() => undefined);
  /** an object, so that a check after an await is not narrowed away */
  const run = { stopped: false };
  let listenerError: Error | undefined;
  let sequence = 0;
  let readiness: { promise: Promise<void>; settle: (error?: Error) => void } | undefined;

  /** waits `ms`; false when stopped meanwhile */
  const sleep = (ms: number): Promise<boolean> =>
    new Promise<boolean>((done) => {
      const timer = setTimeout(() => {
        backoffs.delete(timer);
        done(true);
      }, ms);
      backoffs.set(timer, done);
    });

  const report = (outcome: RequestOutcome): void => {
    try {
      onRequest(outcome);
    } catch (error) {
      listenerError ??= new Error(`traffic ${JSON.stringify(spec.name)}: the request listener threw`, { cause: error });
    }
  };

  async function request(index: number, client: C): Promise<void> {
    const sentAt = performance.now();
    const deadline = Date.now() + spec.timeoutMs;
    const message = `${spec.name} ${String(sequence++)}`;
    let result = await options.attempt(client, message, deadline);
    for (let tries = 1; 'error' in result && result.retriable && tries < spec.attempts && !run.stopped; tries++) {
      const backoff = Math.random() * Math.min(RETRY_BASE_MS * 2 ** (tries - 1), RETRY_MAX_MS);
      if (Date.now() + backoff >= deadline) break;
      if (!(await sleep(backoff))) break;
      result = await options.attempt(client, message, deadline);
    }
    const latencyMs = performance.now() - sentAt;
    if ('cluster' in result) {
      report({ sentAt, latencyMs, cluster: result.cluster });
      if (!answered[index]) {
        answered[index] = true;
        if (answered.every(Boolean)) readiness?.settle();
      }
    } else {
      lastError[index] = `${result.error}: ${result.detail}`;
      report({ sentAt, latencyMs, error: result.error });
    }
  }

  clients.forEach((client, index) => {
    let n = 0;
    const offset = (periodMs * index) / clients.length;
    const tick = (): void => {
      if (run.stopped) return;
      const sending = request(index, client);
      inFlight.add(sending);
      void sending.finally(() => inFlight.delete(sending));
      n++;
      const timer = setTimeout(() => {
        schedule.delete(timer);
        tick();
      }, Math.max(0, started + offset + n * periodMs - performance.now()));
      schedule.add(timer);
    };
    const first = setTimeout(() => {
      schedule.delete(first);
      tick();
    }, offset);
    schedule.add(first);
  });

  /** every client answered (resolves), or why not (rejects); settles once */
  function waitReady(): { promise: Promise<void>; settle: (error?: Error) => void } {
    const limitMs = options.readyTimeoutMs ?? DEFAULT_READY_TIMEOUT_MS;
    let resolveReady: () => void = () => undefined;
    let rejectReady: (error: Error) => void = () => undefined;
    const promise = new Promise<void>((resolve, reject) => {
      resolveReady = resolve;
      rejectReady = reject;
    });
    let settled = false;
    const timer = setTimeout(() => {
      const missing = answered.flatMap((ok, i) => (ok ? [] : [`client ${String(i)}${lastError[i] !== undefined ? ` (last: ${lastError[i]})` : ''}`]));
      settle(new Error(`traffic ${JSON.stringify(spec.name)} from ${spec.from} to ${spec.to}: no answer in ${String(limitMs)} ms for ${missing.join(', ')}`));
    }, limitMs);
    function settle(error?: Error): void {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      if (error) rejectReady(error);
      else resolveReady();
    }
    return { promise, settle };
  }

  return {
    ready: () => {
      readiness ??= waitReady();
      if (answered.every(Boolean)) readiness.settle();
      return readiness.promise;
    },
    stop: async () => {
      run.stopped = true;
      for (const timer of schedule) clearTimeout(timer);
      schedule.clear();
      for (const [timer, done] of backoffs) {
        clearTimeout(timer);
        done(false);
      }
      backoffs.clear();
      readiness?.settle(new Error(`traffic ${JSON.stringify(spec.name)}: stopped before every client had an answer`));
      await Promise.allSettled([...inFlight]);
      await options.close();
      if (listenerError) throw listenerError;
    },
  };
}
