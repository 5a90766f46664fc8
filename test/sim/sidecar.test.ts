/**
 * The simulated sidecar (src/sim/sidecar.ts) in front of an application of east-1, against a real federation in
 * process (ratings-federation.ts): its configuration from meshfed's xDS over a real ADS stream, the VIP from meshfed's
 * DNS, mTLS to the endpoints it chooses, straight on its own network and through the gateway to another.
 *
 * The readiness probes never give up on a workload here (failureThreshold far beyond the test's length), so a killed
 * workload stays HEALTHY in EDS and what the sidecar does about the refused connection is its own doing; the EDS
 * changes come from meshfed instead, by draining clusters from the virtual destination.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { Resolver } from 'node:dns/promises';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { identityFromFiles, startSidecar, UPSTREAM_HOST_HEADER, UPSTREAM_PEER_HEADER, type Sidecar } from '../../src/sim/sidecar.js';
import { eventually } from './helpers.js';
import { RATINGS_CLUSTERS, RATINGS_TRUST_DOMAIN, startRatingsFederation, type RatingsFederation } from './ratings-federation.js';

const work = mkdtempSync(join(tmpdir(), 'meshfed-sidecar-'));
let fed: RatingsFederation;
let sidecar: Sidecar;
let vip = '';
let vip6 = '';

const CLIENT_ID = `spiffe://${RATINGS_TRUST_DOMAIN}/ns/default/sa/demo-client`;
const RATINGS_ID = `spiffe://${RATINGS_TRUST_DOMAIN}/ns/default/sa/ratings`;
const EAST_1 = RATINGS_CLUSTERS[0];

interface Answer {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

/** A request through the sidecar, as an application with http_proxy sends it. */
function viaSidecar(path: string, host = 'ratings.global:9080', method = 'GET'): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const req = request({ host: sidecar.host, port: sidecar.port, method, path, headers: { host }, agent: false }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => (body += chunk));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, headers: res.headers, body });
      });
    });
    req.on('error', reject);
    req.end();
  });
}

interface RatingsReply {
  cluster: string;
  endpoint: string;
  peer: string;
}

async function ratings(): Promise<Answer & { reply?: RatingsReply }> {
  const answer = await viaSidecar(`http://${vip}:9080/ratings/1`);
  return answer.status === 200 ? { ...answer, reply: JSON.parse(answer.body) as RatingsReply } : answer;
}

const drain = (clusters: string[]): void => {
  fed.manager.xds?.provider.setDrains('ratings', clusters.map((cluster) => ({ cluster })));
};

/** Waits (bounded) until the sidecar's answers come from `cluster`. */
async function servedBy(cluster: string): Promise<void> {
  await eventually(async () => (await ratings()).reply?.cluster === cluster, `answers from ${cluster}`);
}

beforeAll(async () => {
  fed = await startRatingsFederation(work, { periodMs: 1000, failureThreshold: 100_000 });
  const demo = fed.federation.client('east-1');
  if (!demo) throw new Error('no demo client in east-1');
  sidecar = await startSidecar({
    cluster: 'east-1',
    network: 'net-east',
    locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' },
    xds: `${fed.xds.host}:${String(fed.xds.port)}`,
    dns: { host: '127.0.0.1', port: fed.dns.port },
    identity: identityFromFiles(demo.files),
  });
  await sidecar.ready('ratings.global');
  const resolver = new Resolver();
  resolver.setServers([`127.0.0.1:${String(fed.dns.port)}`]);
  vip = (await resolver.resolve4('ratings.global'))[0] ?? '';
  vip6 = (await resolver.resolve6('ratings.global'))[0] ?? '';
}, 90_000);

afterAll(async () => {
  await sidecar.close();
  await fed.close();
  rmSync(work, { recursive: true, force: true });
}, 60_000);

describe('the simulated sidecar', { timeout: 90_000 }, () => {
  it('learns the VIP from meshfed DNS and the cluster from xDS (ACKed), and reaches a local endpoint directly over mTLS', async () => {
    expect(vip).toMatch(/^240\.240\.\d+\.\d+$/);
    expect(sidecar.vips().get(`${vip}|9080`)).toBe('outbound|9080||ratings.global');
    expect(sidecar.xdsCounts()).toMatchObject({ nacks: 0 });
    expect(sidecar.xdsCounts().acks).toBeGreaterThanOrEqual(2);
    const answer = await ratings();
    expect(answer.status).toBe(200);
    expect(answer.reply?.cluster).toBe('east-1');
    // the workload required and verified the sidecar's SVID: it names the demo client of east-1
    expect(answer.reply?.peer).toBe(CLIENT_ID);
    // the sidecar connected to the endpoint itself and verified the workload's SPIFFE ID
    expect(EAST_1.ratings.map((a) => a as string)).toContain(String(answer.headers[UPSTREAM_HOST_HEADER]).split(':')[0]);
    expect(answer.headers[UPSTREAM_PEER_HEADER]).toBe(RATINGS_ID);
    // the IPv6 VIP (AAAA) leads to the same cluster, and a hostname CDS names as well
    expect((await viaSidecar(`http://[${vip6}]:9080/x`)).status).toBe(200);
    expect((await viaSidecar('http://ratings.global:9080/x')).status).toBe(200);
  });

  it('follows EDS: drained endpoints are skipped for the next priority, the other network only through its gateway', async () => {
    try {
      drain(['east-1']);
      await servedBy('east-2');
      const east2 = await ratings();
      expect(east2.headers[UPSTREAM_HOST_HEADER]).toMatch(/^127\.0\.91\.11:\d+$/);

      drain(['east-1', 'east-2']);
      await servedBy('west-1');
      const west = await ratings();
      const gateway = fed.gateways.find((g) => g.cluster === 'west-1');
      // through west-1's east-west gateway (TLS passed through by SNI), never to the workload's own address
      expect(west.headers[UPSTREAM_HOST_HEADER]).toBe(`${gateway?.handle.host ?? '?'}:${String(gateway?.handle.port)}`);
      expect(west.reply?.endpoint).toMatch(/^127\.0\.92\.11:\d+$/);
      // mTLS end to end through the gateway: both sides saw each other's SPIFFE ID
      expect(west.headers[UPSTREAM_PEER_HEADER]).toBe(RATINGS_ID);
      expect(west.reply?.peer).toBe(CLIENT_ID);
    } finally {
      drain([]);
    }
    await servedBy('east-1');
  });

  it('retries a refused connect on another endpoint: a killed workload still HEALTHY in EDS fails no request', async () => {
    const killed = `east-1/default/ratings/${EAST_1.ratings[0]}`;
    await fed.federation.kill(killed);
    try {
      const answers = [];
      for (let i = 0; i < 20; i++) answers.push(await ratings());
      expect(answers.map((a) => a.status)).toEqual(answers.map(() => 200));
      expect(new Set(answers.map((a) => a.reply?.endpoint.split(':')[0]))).toEqual(new Set([EAST_1.ratings[1]]));
      // meshfed still sends the killed endpoint as HEALTHY: the sidecar got past it on its own
      const explained = fed.manager.xds?.provider.explain({ id: 'sidecar~x', cluster: 'east-1', network: 'net-east', locality: { region: 'us-east', zone: 'us-east-1a', subzone: '' } }, 'ratings.global');
      const health = explained?.assignment.groups.flatMap((g) => g.endpoints).find((e) => e.address === EAST_1.ratings[0])?.health;
      expect(health).toBe('HEALTHY');
    } finally {
      await fed.federation.start(killed);
    }
  });

  it('answers 503 when nothing can be reached: no healthy upstream, or every connect refused', async () => {
    try {
      drain(['east-1', 'east-2', 'west-1']);
      await eventually(async () => (await ratings()).status === 503, 'a 503 once everything is drained');
      const none = await ratings();
      expect(none.body).toBe('no healthy upstream\n');

      drain(['east-1', 'east-2']);
      await servedBy('west-1');
      const gateway = fed.gateways.find((g) => g.cluster === 'west-1');
      await gateway?.handle.close();
      try {
        const refused = await ratings();
        expect(refused.status).toBe(503);
        expect(refused.body).toMatch(/^upstream connect error or disconnect\/reset before headers\. reset reason: connection failure \(.*ECONNREFUSED/);
      } finally {
        await gateway?.handle.reopen();
      }
    } finally {
      drain([]);
    }
    await servedBy('east-1');
  });

  it('refuses what a forward proxy cannot serve, saying why', async () => {
    const relative = await viaSidecar('/ratings/1');
    expect(relative.status).toBe(400);
    expect(relative.body).toMatch(/this is a forward proxy: send the request in absolute form \(GET http:\/\/VIP:PORT\/path\)/);

    const unknown = await viaSidecar('http://240.240.255.254:9080/');
    expect(unknown.status).toBe(404);
    expect(unknown.body).toContain(`no route: 240.240.255.254:9080 is not the address of any service or virtual destination this sidecar knows (VIPs: ${vip}:9080, [${vip6}]:9080)`);
    // the right VIP on a port the virtual destination does not have
    expect((await viaSidecar(`http://${vip}:9081/`)).status).toBe(404);

    const https = await viaSidecar(`https://${vip}:9080/`);
    expect(https.status).toBe(400);
    expect(https.body).toContain('only http: URLs are proxied');

    // CONNECT: refused with a status line and a reason, the connection closed
    const raw = await new Promise<string>((resolve, reject) => {
      const socket = connect(sidecar.port, sidecar.host, () => {
        socket.write(`CONNECT ${vip}:9080 HTTP/1.1\r\nHost: ${vip}:9080\r\n\r\n`);
      });
      let text = '';
      socket.setEncoding('utf8');
      socket.on('data', (chunk: string) => (text += chunk));
      socket.on('end', () => {
        resolve(text);
      });
      socket.on('error', reject);
    });
    expect(raw).toMatch(/^HTTP\/1\.1 405 Method Not Allowed\r\n/);
    expect(raw).toContain('this sidecar does not tunnel');

    // after all that, it still serves
    expect((await ratings()).status).toBe(200);
  });
});
