/**
 * Test helpers for proxyless clients of meshfed's xDS server: @grpc/grpc-js-xds echo clients, each with its own
 * bootstrap (so one process holds proxies of many clusters), and bounded call loops.
 */
import { echo, echoClient, type EchoClient, type EchoReply } from '../../src/sim/echo.js';

const BOOTSTRAP_OPTION = 'grpc.TEST_ONLY_DO_NOT_USE_IN_PROD.xds_bootstrap_config';
/** every wait is bounded */
export const WAIT_MS = 20_000;

export interface ProxyPlace {
  /** node.id */
  id: string;
  cluster: string;
  network: string;
  /** '' when the proxy does not know where it stands */
  region: string;
  zone: string;
}

/** An echo client for `target` whose xDS node says it stands at `place`, talking to the ADS server on `adsPort`. */
export function xdsEchoClient(target: string, adsPort: number, place: ProxyPlace): EchoClient {
  const bootstrap = {
    xds_servers: [{ server_uri: `127.0.0.1:${String(adsPort)}`, channel_creds: [{ type: 'insecure' }], server_features: ['xds_v3'] }],
    node: {
      id: place.id,
      metadata: { CLUSTER_ID: place.cluster, NETWORK: place.network },
      // grpc-js-xds requires the field; empty means the proxy does not know where it stands
      locality: place.region === '' ? {} : { region: place.region, zone: place.zone },
    },
  };
  return echoClient(target, undefined, { [BOOTSTRAP_OPTION]: JSON.stringify(bootstrap) });
}

/** `n` calls, at most 20 in flight. */
export async function calls(client: EchoClient, n: number): Promise<EchoReply[]> {
  const out: EchoReply[] = [];
  for (let i = 0; i < n; i += 20) {
    const batch = Array.from({ length: Math.min(20, n - i) }, (_, j) => echo(client, `call ${String(i + j)}`));
    out.push(...(await Promise.all(batch)));
  }
  return out;
}

/** Calls until a reply satisfies `predicate` (bounded), so an xDS update has reached the client. */
export async function until(client: EchoClient, predicate: (reply: EchoReply) => boolean, what: string): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      if (predicate(await echo(client, 'probe', 2_000))) return;
    } catch {
      // not resolved yet, or a connection being replaced: try again
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

/**
 * Calls in batches of `batch` until a whole batch satisfies `accept` (bounded): an xDS update has not only reached the
 * client but shapes every call, as when no reply comes from an endpoint that was taken out.
 */
export async function settle(client: EchoClient, accept: (replies: readonly EchoReply[]) => boolean, what: string, batch = 20): Promise<void> {
  const deadline = Date.now() + WAIT_MS;
  for (;;) {
    try {
      if (accept(await calls(client, batch))) return;
    } catch {
      // a connection being replaced: try again
    }
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((done) => setTimeout(done, 50));
  }
}

/** The share of replies for which `key` gives each value. */
export function sharesBy(replies: readonly EchoReply[], key: (reply: EchoReply) => string): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of replies) counts.set(key(r), (counts.get(key(r)) ?? 0) + 1);
  return new Map([...counts].map(([k, v]) => [k, v / replies.length]));
}

/**
 * Calls until every value of `expected` has answered (bounded): grpc's weighted_target picks only among localities
 * whose connections are READY, so shares measured before every locality is connected are skewed.
 */
export async function warmUp(client: EchoClient, key: (reply: EchoReply) => string, expected: readonly string[]): Promise<void> {
  const seen = new Set<string>();
  const deadline = Date.now() + WAIT_MS;
  while (!expected.every((e) => seen.has(e))) {
    if (Date.now() > deadline) throw new Error(`timed out warming up: only ${[...seen].join(', ')} of ${expected.join(', ')} answered`);
    try {
      for (const r of await calls(client, 20)) seen.add(key(r));
    } catch {
      await new Promise((done) => setTimeout(done, 50));
    }
  }
}
