/**
 * A drill's traffic over DNS (`via: dns`): `clients` HTTP clients, each an application in the cluster `spec.from`
 * that resolves the virtual destination's hostname with real DNS queries to meshfed's DNS (A, then AAAA; the answer
 * kept for its TTL and asked again after), and sends `GET http://VIP:PORT/` with `Host: HOSTNAME:PORT` through its
 * cluster's sidecar (src/sim/sidecar.ts: an explicit forward proxy standing for the iptables capture of a real
 * mesh), which adds the mTLS and picks the endpoint from meshfed's xDS.
 *
 * Load, deadlines, retries and reporting are the gRPC drill client's (startClientLoop in drill-client.ts): the same
 * open loop, each request stamped with when it was sent. An answer counts when it is 200 with the demo workload's
 * JSON naming the cluster that served it. Failures, by kind: `http-STATUS` (the sidecar's 503 when nothing could be
 * reached or the connection broke, or the workload's own status), `timeout` (no answer by the deadline), the errno
 * of a failed connection to the sidecar (`ECONNREFUSED`, `ECONNRESET`), `dns-CODE` (meshfed's DNS did not answer
 * the hostname), `bad-reply`. A 503 and a reset or refused connection are retried (the HTTP kin of UNAVAILABLE).
 */
import { Resolver } from 'node:dns/promises';
import { Agent, request } from 'node:http';
import { isIP } from 'node:net';
import { startClientLoop, type AttemptOutcome } from './drill-client.js';
import type { RequestOutcome, Traffic, TrafficSpec } from './world.js';

export interface DnsTrafficOptions {
  spec: TrafficSpec;
  /** the virtual destination's hostname and port (spec.to, with the port the VD's only one when left out) */
  hostname: string;
  port: number;
  /** meshfed's DNS server */
  dns: { host: string; port: number };
  /** the forward proxy (sidecar) of `spec.from` */
  proxy: { host: string; port: number };
  onRequest: (outcome: RequestOutcome) => void;
  /** how long `ready()` waits for every client's first answer (default 30 s) */
  readyTimeoutMs?: number;
  /** called once the clients are done (stop): e.g. to close the sidecar */
  onClose?: () => Promise<void>;
}

const MAX_REPLY_BYTES = 64 * 1024;
const DNS_TIMEOUT_MS = 1_000;
/** a TTL of 0 is not a reason to ask before every request */
const MIN_TTL_MS = 1_000;
const RETRIABLE_ERRORS = new Set(['ECONNRESET', 'ECONNREFUSED', 'EPIPE']);

interface HttpClient {
  agent: Agent;
  resolver: Resolver;
  cached?: { address: string; expiresAt: number };
}

type Resolved = { address: string } | { error: string; detail: string };

async function resolveVip(client: HttpClient, hostname: string): Promise<Resolved> {
  if (client.cached && client.cached.expiresAt > Date.now()) return { address: client.cached.address };
  let code = 'ENODATA';
  for (const family of [4, 6] as const) {
    try {
      const records = family === 4 ? await client.resolver.resolve4(hostname, { ttl: true }) : await client.resolver.resolve6(hostname, { ttl: true });
      const first = records[0];
      if (first) {
        client.cached = { address: first.address, expiresAt: Date.now() + Math.max(MIN_TTL_MS, first.ttl * 1000) };
        return { address: first.address };
      }
    } catch (error) {
      code = (error as NodeJS.ErrnoException).code ?? 'error';
    }
  }
  // a failed lookup keeps the last answer, as a stub resolver serving stale data would; none: the request fails
  if (client.cached) return { address: client.cached.address };
  return { error: `dns-${code}`, detail: `meshfed's DNS gave no address for ${hostname}` };
}

function clusterOf(body: string): string | undefined {
  try {
    const parsed: unknown = JSON.parse(body);
    if (typeof parsed === 'object' && parsed !== null && 'cluster' in parsed && typeof parsed.cluster === 'string' && parsed.cluster !== '') return parsed.cluster;
  } catch {
    return undefined;
  }
  return undefined;
}

function send(client: HttpClient, options: DnsTrafficOptions, vip: string, message: string, deadline: number): Promise<AttemptOutcome> {
  const authority = `${options.hostname}:${String(options.port)}`;
  const target = `http://${isIP(vip) === 6 ? `[${vip}]` : vip}:${String(options.port)}/?m=${encodeURIComponent(message)}`;
  return new Promise<AttemptOutcome>((resolve) => {
    let done = false;
    const finish = (outcome: AttemptOutcome): void => {
      if (done) return;
      done = true;
      clearTimeout(timer);
      resolve(outcome);
    };
    const req = request({ host: options.proxy.host, port: options.proxy.port, method: 'GET', path: target, headers: { host: authority }, agent: client.agent });
    const timer = setTimeout(() => {
      finish({ error: 'timeout', detail: `no answer from ${authority} within the deadline`, retriable: false });
      req.destroy();
    }, Math.max(0, deadline - Date.now()));
    req.on('response', (res) => {
      const chunks: Buffer[] = [];
      let size = 0;
      res.on('data', (chunk: Buffer) => {
        size += chunk.length;
        if (size <= MAX_REPLY_BYTES) chunks.push(chunk);
      });
      res.on('end', () => {
        const body = Buffer.concat(chunks).toString('utf8');
        const status = res.statusCode ?? 0;
        if (status !== 200) {
          finish({ error: `http-${String(status)}`, detail: body.trim().slice(0, 300), retriable: status === 503 });
          return;
        }
        const cluster = clusterOf(body);
        finish(cluster !== undefined ? { cluster } : { error: 'bad-reply', detail: `200 without a serving cluster: ${body.slice(0, 200)}`, retriable: false });
      });
      res.on('error', (error: NodeJS.ErrnoException) => {
        const code = error.code ?? 'error';
        finish({ error: code, detail: error.message, retriable: RETRIABLE_ERRORS.has(code) });
      });
    });
    req.on('error', (error: NodeJS.ErrnoException) => {
      const code = error.code ?? 'error';
      finish({ error: code, detail: error.message, retriable: RETRIABLE_ERRORS.has(code) });
    });
    req.end();
  });
}

/** Starts the clients; they send until `stop()`. */
export function startDnsTraffic(options: DnsTrafficOptions): Traffic {
  const { spec } = options;
  const dnsServer = isIP(options.dns.host) === 6 ? `[${options.dns.host}]:${String(options.dns.port)}` : `${options.dns.host}:${String(options.dns.port)}`;
  const clients: HttpClient[] = Array.from({ length: Number.isInteger(spec.clients) && spec.clients > 0 ? spec.clients : 0 }, () => {
    const resolver = new Resolver({ timeout: DNS_TIMEOUT_MS, tries: 2 });
    resolver.setServers([dnsServer]);
    return { agent: new Agent({ keepAlive: true }), resolver };
  });
  const release = async (): Promise<void> => {
    for (const client of clients) {
      client.agent.destroy();
      client.resolver.cancel();
    }
    await options.onClose?.();
  };
  try {
    return startClientLoop({
      spec,
      clients,
      onRequest: options.onRequest,
      ...(options.readyTimeoutMs !== undefined ? { readyTimeoutMs: options.readyTimeoutMs } : {}),
      attempt: async (client, message, deadline) => {
        const vip = await resolveVip(client, options.hostname);
        if ('error' in vip) return { ...vip, retriable: false };
        if (Date.now() >= deadline) return { error: 'timeout', detail: 'the DNS answer came after the deadline', retriable: false };
        return send(client, options, vip.address, message, deadline);
      },
      close: release,
    });
  } catch (error) {
    void release();
    throw error;
  }
}
