/**
 * The watch transport and API client of the Kubernetes source, against the HTTPS list/watch fixture (and, for
 * client certificates, a local HTTPS server that asks for one): events flow into client-node's ListWatch, a 410
 * Gone leads to a re-list, garbage and errors end a watch with an error instead of a loop, an abort stops a
 * watch even in flight, credentials are sent, and a hung server is caught by the deadline.
 */
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { createServer } from 'node:https';
import { TLSSocket } from 'node:tls';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { promisify } from 'node:util';
import { ListWatch, V1ListMeta, type KubernetesListObject, type KubernetesObject } from '@kubernetes/client-node';
import { afterEach, describe, expect, it } from 'vitest';
import { stringify as toYaml } from 'yaml';
import { loadSafeKubeconfig } from '../../src/registry/kube/kubeconfig.js';
import { ApiClient, EmptyWatchError, StatusError, TimeoutError, WatchTransport } from '../../src/registry/kube/watch-transport.js';
import { startKubeApiFixture, type KubeApiFixture } from '../fixtures/kube-api.js';
import { service, waitFor } from './kube-helpers.js';

const WAIT = 5_000;
const SERVICES = '/api/v1/services';

const cleanups: (() => Promise<void> | void)[] = [];
afterEach(async () => {
  for (const cleanup of cleanups.splice(0).reverse()) await cleanup();
});

async function fixture(options: Parameters<typeof startKubeApiFixture>[0] = {}): Promise<KubeApiFixture> {
  const f = await startKubeApiFixture(options);
  cleanups.push(() => f.close());
  return f;
}

function client(kubeconfig: string): ApiClient {
  const api = new ApiClient(loadSafeKubeconfig(kubeconfig));
  cleanups.push(() => {
    api.close();
  });
  return api;
}

function generation(): AbortController {
  const aborter = new AbortController();
  cleanups.push(() => {
    aborter.abort();
  });
  return aborter;
}

function transport(api: ApiClient, signal: AbortSignal, connectTimeoutMs = 5_000): WatchTransport {
  return new WatchTransport(api, { signal, connectTimeoutMs, backoff: () => 20 });
}

/** What one watch delivered. */
interface Recorded {
  events: [string, string][];
  done: unknown[];
}

/** Opens one watch of services through the transport and records what it delivers. */
async function watchServices(watch: WatchTransport, query: Record<string, string> = {}): Promise<{ recorded: Recorded; controller: AbortController }> {
  const recorded: Recorded = { events: [], done: [] };
  const controller = await watch.watch(
    SERVICES,
    query,
    (phase, object) => {
      const name = (object as KubernetesObject).metadata?.name ?? '';
      recorded.events.push([phase, name]);
    },
    (err) => recorded.done.push(err),
  );
  return { recorded, controller };
}

const listOf = (api: ApiClient, signal: AbortSignal) => async (): Promise<KubernetesListObject<KubernetesObject>> => {
  const answer = (await api.get(SERVICES, { timeoutMs: 5_000, maxBytes: 1024 * 1024, signal })) as { metadata: { resourceVersion: string }; items: KubernetesObject[] };
  const metadata = new V1ListMeta();
  metadata.resourceVersion = answer.metadata.resourceVersion;
  return { metadata, items: answer.items };
};

/** A ListWatch of services over the transport, recording its callbacks. */
function informer(api: ApiClient, aborter: AbortController, connectTimeoutMs?: number): { lw: ListWatch<KubernetesObject>; seen: string[]; errors: unknown[] } {
  const lw = new ListWatch<KubernetesObject>(SERVICES, transport(api, aborter.signal, connectTimeoutMs), listOf(api, aborter.signal), false);
  const seen: string[] = [];
  const errors: unknown[] = [];
  lw.on('add', (o) => seen.push(`add ${o.metadata?.name ?? ''}`));
  lw.on('update', (o) => seen.push(`update ${o.metadata?.name ?? ''}`));
  lw.on('delete', (o) => seen.push(`delete ${o.metadata?.name ?? ''}`));
  lw.on('error', (err) => errors.push(err));
  cleanups.push(() => lw.stop());
  return { lw, seen, errors };
}

const watchRequests = (f: KubeApiFixture): number => f.requests.filter((r) => r.path === SERVICES && /(^|&)watch=true/.test(r.query)).length;
const listRequests = (f: KubeApiFixture): number => f.requests.filter((r) => r.path === SERVICES && !/(^|&)watch=/.test(r.query)).length;
const sleep = (ms: number): Promise<void> => new Promise((resolve) => setTimeout(resolve, ms));

describe('events through client-node ListWatch', () => {
  it('lists, then delivers adds, updates and deletes from the watch', async () => {
    const f = await fixture();
    f.apply(service('shop', 'cart'));
    const { lw, seen, errors } = informer(client(f.kubeconfig()), generation());
    await lw.start();
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open');
    f.apply(service('shop', 'web'));
    f.apply(service('shop', 'cart', { labels: { app: 'cart', tier: 'x' } }));
    f.remove('v1', 'Service', 'web', 'shop');
    await waitFor(() => seen.length === 4, WAIT, 'four callbacks', () => seen);
    expect(seen).toEqual(['add cart', 'add web', 'update cart', 'delete web']);
    expect(lw.list().map((o) => o.metadata?.name)).toEqual(['cart']);
    expect(errors).toEqual([]);
  });

  it('re-lists after a 410 Gone, without an error, and keeps watching', async () => {
    const f = await fixture();
    f.apply(service('shop', 'cart'));
    const { lw, seen, errors } = informer(client(f.kubeconfig()), generation());
    await lw.start();
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open');
    const lists = listRequests(f);
    // the stream ends; what changes meanwhile is compacted away, so the re-watch gets 410 Gone
    f.closeWatches();
    f.remove('v1', 'Service', 'cart', 'shop');
    f.apply(service('shop', 'web'));
    f.compact();
    await waitFor(() => seen.includes('delete cart') && seen.includes('add web'), WAIT, 'the re-list to show the changes', () => seen);
    expect(listRequests(f)).toBe(lists + 1);
    expect(errors).toEqual([]);
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open again');
    f.apply(service('shop', 'late'));
    await waitFor(() => seen.includes('add late'), WAIT, 'events after the re-list', () => seen);
  });

  it('ends with an error on an HTML answer and does not reopen the watch', async () => {
    const f = await fixture();
    const { lw, errors } = informer(client(f.kubeconfig()), generation());
    await lw.start();
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open');
    const before = watchRequests(f);
    f.failWith('garbage');
    f.closeWatches();
    await waitFor(() => errors.length > 0, WAIT, 'the error');
    expect(errors[0]).toBeInstanceOf(SyntaxError);
    expect(String(errors[0])).toMatch(/not JSON: <html>/);
    // a while later: the one watch request that got the HTML page, no more
    await sleep(500);
    expect(watchRequests(f) - before).toBe(1);
    expect(errors).toHaveLength(1);
  });

  it('spaces out watches that end at once without an event, and after three in a row fails', async () => {
    // every watch is ended by the server after 1 ms, before anything happens
    const f = await fixture({ watchTimeoutMs: 1 });
    const { lw, errors } = informer(client(f.kubeconfig()), generation());
    await lw.start();
    await waitFor(() => errors.length > 0, WAIT, 'the error');
    expect(errors[0]).toBeInstanceOf(EmptyWatchError);
    expect(String(errors[0])).toMatch(/ends every watch of \/api\/v1\/services at once without sending an event/);
    await sleep(300);
    expect(watchRequests(f)).toBe(3);
  });
});

describe('the transport on its own', () => {
  it('delivers an HTTP error status to done with its code and Status message', async () => {
    const f = await fixture();
    const watch = transport(client(f.kubeconfig()), generation().signal);
    f.failWith(503);
    const { recorded } = await watchServices(watch);
    await waitFor(() => recorded.done.length > 0, WAIT, 'done');
    expect(recorded.done[0]).toBeInstanceOf(StatusError);
    expect(recorded.done[0]).toMatchObject({ statusCode: 503, message: 'kube-api fixture: injected failure 503' });
  });

  it('delivers an ERROR event to done as a StatusError with its code (410 for an expired resourceVersion)', async () => {
    const f = await fixture();
    f.apply(service('shop', 'cart'));
    f.apply(service('shop', 'web'));
    f.compact();
    const watch = transport(client(f.kubeconfig()), generation().signal);
    const { recorded } = await watchServices(watch, { resourceVersion: '1' });
    await waitFor(() => recorded.done.length > 0, WAIT, 'done');
    expect(recorded.done[0]).toBeInstanceOf(StatusError);
    expect((recorded.done[0] as StatusError).statusCode).toBe(410);
    expect(recorded.events).toEqual([]);
  });

  it('a wrong bearer token is a 401: the token of the kubeconfig is what is sent', async () => {
    const f = await fixture();
    const watch = transport(client(f.kubeconfig({ token: 'not-the-token' })), generation().signal);
    const { recorded } = await watchServices(watch);
    await waitFor(() => recorded.done.length > 0, WAIT, 'done');
    expect((recorded.done[0] as StatusError).statusCode).toBe(401);
  });

  it('an aborted watch stops: no more events, no done, the stream is closed', async () => {
    const f = await fixture();
    const watch = transport(client(f.kubeconfig()), generation().signal);
    const { recorded, controller } = await watchServices(watch);
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open');
    f.apply(service('shop', 'cart'));
    await waitFor(() => recorded.events.length === 1, WAIT, 'the first event');
    controller.abort();
    await waitFor(() => f.watchCount() === 0, WAIT, 'the stream closed on the server');
    f.apply(service('shop', 'web'));
    await sleep(200);
    expect(recorded.events).toEqual([['ADDED', 'cart']]);
    expect(recorded.done).toEqual([]);
  });

  it('a watch aborted while its request is in flight never opens', async () => {
    const f = await fixture();
    const watch = transport(client(f.kubeconfig()), generation().signal);
    f.pause();
    const { recorded, controller } = await watchServices(watch);
    await waitFor(() => watchRequests(f) === 1, WAIT, 'the request to arrive');
    controller.abort();
    await sleep(100);
    f.resume();
    f.apply(service('shop', 'cart'));
    await sleep(300);
    expect(f.watchCount()).toBe(0);
    expect(recorded.events).toEqual([]);
    expect(recorded.done).toEqual([]);
  });

  it('the generation signal ends its watches, and none starts after it', async () => {
    const f = await fixture();
    const aborter = generation();
    const watch = transport(client(f.kubeconfig()), aborter.signal);
    const first = await watchServices(watch);
    await waitFor(() => f.watchCount() === 1, WAIT, 'the watch open');
    aborter.abort();
    await waitFor(() => f.watchCount() === 0, WAIT, 'the stream closed on the server');
    const later = await watchServices(watch);
    expect(later.controller.signal.aborted).toBe(true);
    await sleep(200);
    expect(watchRequests(f)).toBe(1);
    expect(first.recorded.done).toEqual([]);
    expect(later.recorded.done).toEqual([]);
  });

  it('a hung server is caught by the deadline, for a watch and for a GET', async () => {
    const f = await fixture();
    const api = client(f.kubeconfig());
    const watch = transport(api, generation().signal, 300);
    f.pause();
    const { recorded } = await watchServices(watch);
    await waitFor(() => recorded.done.length > 0, WAIT, 'done');
    expect(recorded.done[0]).toBeInstanceOf(TimeoutError);
    expect(String(recorded.done[0])).toMatch(/GET \/api\/v1\/services\?watch=true got no answer within 300 ms/);
    await expect(api.get('/version', { timeoutMs: 300, maxBytes: 1024, signal: generation().signal })).rejects.toBeInstanceOf(TimeoutError);
    f.resume();
  });
});

// ---- credentials, on a server that asks for a client certificate ----------------------------------------

const execFileAsync = promisify(execFile);

async function openssl(dir: string, ...args: string[]): Promise<void> {
  await execFileAsync('openssl', args, { cwd: dir });
}

interface Seen {
  authorization: string | undefined;
  clientCn: unknown;
  path: string;
}

/** An HTTPS server for `kube.example.internal` only (not 127.0.0.1) that asks for a client certificate. */
async function credentialServer(): Promise<{ url: string; ca: string; clientCert: string; clientKey: string; seen: Seen[] }> {
  const dir = await mkdtemp(join(tmpdir(), 'watch-transport-'));
  try {
    await openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=kube.example.internal', '-addext', 'subjectAltName=DNS:kube.example.internal', '-days', '1', '-keyout', 'server.key', '-out', 'server.crt');
    await openssl(dir, 'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-subj', '/CN=meshfed-client', '-days', '1', '-keyout', 'client.key', '-out', 'client.crt');
    const read = (name: string): Promise<string> => readFile(join(dir, name), 'utf8');
    const key = await read('server.key');
    const cert = await read('server.crt');
    const clientCert = await read('client.crt');
    const clientKey = await read('client.key');
    const seen: Seen[] = [];
    const server = createServer({ key, cert, requestCert: true, rejectUnauthorized: false }, (req, res) => {
      const clientCn = req.socket instanceof TLSSocket ? req.socket.getPeerCertificate().subject.CN : undefined;
      seen.push({ authorization: req.headers.authorization, clientCn, path: req.url ?? '' });
      if (req.url?.startsWith(`${SERVICES}?`)) {
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end(`${JSON.stringify({ type: 'ADDED', object: { kind: 'Service', metadata: { name: 'cart', namespace: 'shop', resourceVersion: '2' } } })}\n`);
        return;
      }
      res.writeHead(200, { 'content-type': 'application/json' });
      res.end(JSON.stringify({ gitVersion: 'v1.31.0' }));
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    if (address === null || typeof address === 'string') throw new Error('no port');
    cleanups.push(
      () =>
        new Promise<void>((resolve) => {
          server.close(() => {
            resolve();
          });
          server.closeAllConnections();
        }),
    );
    return { url: `https://127.0.0.1:${address.port}`, ca: cert, clientCert, clientKey, seen };
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

const b64 = (text: string): string => Buffer.from(text).toString('base64');

describe('credentials and TLS from the kubeconfig', () => {
  it('sends the bearer token and the client certificate, and checks the server by tls-server-name', async () => {
    const s = await credentialServer();
    const kubeconfig = toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: s.url, 'certificate-authority-data': b64(s.ca), 'tls-server-name': 'kube.example.internal' } }],
      users: [{ name: 'u', user: { token: 'sekret-token', 'client-certificate-data': b64(s.clientCert), 'client-key-data': b64(s.clientKey) } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    });
    const api = client(kubeconfig);
    const { recorded } = await watchServices(transport(api, generation().signal));
    await waitFor(() => recorded.done.length > 0, WAIT, 'the watch to end');
    expect(recorded.events).toEqual([['ADDED', 'cart']]);
    expect(recorded.done).toEqual([null]);
    expect(await api.get('/version', { timeoutMs: 5_000, maxBytes: 1024, signal: generation().signal })).toEqual({ gitVersion: 'v1.31.0' });
    expect(s.seen.map((r) => ({ path: r.path.replace(/\?.*$/, ''), authorization: r.authorization, clientCn: r.clientCn }))).toEqual([
      { path: SERVICES, authorization: 'Bearer sekret-token', clientCn: 'meshfed-client' },
      { path: '/version', authorization: 'Bearer sekret-token', clientCn: 'meshfed-client' },
    ]);
  });

  it('without tls-server-name the server certificate does not match 127.0.0.1, and the watch fails', async () => {
    const s = await credentialServer();
    const kubeconfig = toYaml({
      apiVersion: 'v1',
      kind: 'Config',
      clusters: [{ name: 'c', cluster: { server: s.url, 'certificate-authority-data': b64(s.ca) } }],
      users: [{ name: 'u', user: { token: 'sekret-token' } }],
      contexts: [{ name: 'c', context: { cluster: 'c', user: 'u' } }],
      'current-context': 'c',
    });
    const { recorded } = await watchServices(transport(client(kubeconfig), generation().signal));
    await waitFor(() => recorded.done.length > 0, WAIT, 'done');
    expect(String(recorded.done[0])).toMatch(/altnames|certificate/i);
    expect(s.seen).toEqual([]);
  });
});
