/**
 * The TLS clients of gateway.bench.ts, in a process of their own so that their handshakes do not share an event loop
 * (or a core) with the gateway being measured. Every connection is node's tls.connect to 127.0.0.1 with SNI
 * `servername`, verifying the endpoint's chain against the trust bundle the parent gives and its SPIFFE ID (no
 * session is reused: every handshake is a full one). A "target" is a list of ports: a proxy's one port, or the
 * endpoints' ports (the direct baseline), used in turn.
 *
 * One connection ("echo"): tls.connect, on secureConnect write a 64-byte ping, read its 64-byte echo, end, and wait
 * until the socket has closed (the endpoint ended its side too, through the proxy). Its latency is the time from
 * the tls.connect call to the first echoed byte.
 *
 * Messages in:  {op:'setup', ca, servername, peer}          once, before anything else
 *               {id, op:'rate', ports, count, concurrency}  `count` echo connections, `concurrency` in flight
 *               {id, op:'latency', targets, count}          `count` echo connections per target, one at a time,
 *                                                           the targets interleaved (connection k starts with target
 *                                                           k mod targets and goes round); latency per connection
 *               {id, op:'bulk', ports, connections, bytes}   open `connections` (untimed), then each writes `bytes`
 *                                                           (64 KiB chunks, respecting backpressure) while reading
 *                                                           the echo; timed until every echoed byte is back
 *               {op:'stop'}
 * Messages out: {id, op:'timed', seconds, cpuSeconds} (rate, bulk), {id, op:'latency', ms: number[][]},
 *               {id, op:'failed', message}
 * Every connection has a time limit; the process exits when its parent goes away.
 */
import { randomBytes } from 'node:crypto';
import { connect, type PeerCertificate, type TLSSocket } from 'node:tls';

export type ClientsRequest =
  | { op: 'setup'; ca: string; servername: string; peer: string }
  | { id: number; op: 'rate'; ports: number[]; count: number; concurrency: number }
  | { id: number; op: 'latency'; targets: number[][]; count: number }
  | { id: number; op: 'bulk'; ports: number[]; connections: number; bytes: number }
  | { op: 'stop' };

export type ClientsReply =
  | { id: number; op: 'timed'; seconds: number; cpuSeconds: number }
  | { id: number; op: 'latency'; ms: number[][] }
  | { id: number; op: 'failed'; message: string };

const HOST = '127.0.0.1';
const PING = randomBytes(64);
const CHUNK = randomBytes(64 * 1024);
/** one echo connection, handshake to close */
const ECHO_LIMIT_MS = 10_000;
/** one bulk connection's transfer */
const BULK_LIMIT_MS = 120_000;

let settings: { ca: string; servername: string; peer: string } | undefined;

const send = (reply: ClientsReply): void => {
  process.send?.(reply);
};

const peerUri = (cert: PeerCertificate): string => /URI:([^,]+)/.exec(cert.subjectaltname ?? '')?.[1] ?? '(none)';

/** A TLS connection to `port`; resolves once the handshake is done and the peer checked. */
function open(port: number): { socket: TLSSocket; secured: Promise<void> } {
  if (!settings) throw new Error('setup has not arrived');
  const { ca, servername, peer } = settings;
  const socket = connect({
    host: HOST,
    port,
    servername,
    ca,
    // the endpoint is checked by its chain and its SPIFFE ID, not by a DNS name
    checkServerIdentity: (_host, cert) => (peerUri(cert) === peer ? undefined : new Error(`unexpected peer ${peerUri(cert)}`)),
  });
  const secured = new Promise<void>((resolve, reject) => {
    socket.once('secureConnect', resolve);
    socket.once('error', reject);
  });
  return { socket, secured };
}

/** One echo connection to `port`; resolves with the ms from tls.connect to the first echoed byte, once closed. */
function echo(port: number): Promise<number> {
  const t0 = performance.now();
  const { socket, secured } = open(port);
  return new Promise<number>((resolve, reject) => {
    let firstByteMs = 0;
    let echoed = 0;
    const timer = setTimeout(() => {
      socket.destroy(new Error(`an echo connection to port ${port} did not finish within ${ECHO_LIMIT_MS} ms (${echoed} of ${PING.length} bytes echoed)`));
    }, ECHO_LIMIT_MS);
    secured.then(
      () => socket.write(PING),
      () => undefined,
    );
    socket.on('data', (d: Buffer) => {
      if (echoed === 0) firstByteMs = performance.now() - t0;
      echoed += d.length;
      if (echoed >= PING.length) socket.end();
    });
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.once('close', () => {
      clearTimeout(timer);
      if (echoed === PING.length) resolve(firstByteMs);
      else reject(new Error(`a connection to port ${port} closed with ${echoed} of ${PING.length} bytes echoed`));
    });
  });
}

async function rate(ports: number[], count: number, concurrency: number): Promise<{ seconds: number; cpuSeconds: number }> {
  let started = 0;
  let failed = false;
  const worker = async (): Promise<void> => {
    while (started < count && !failed) {
      const port = ports[started % ports.length] ?? 0;
      started++;
      try {
        await echo(port);
      } catch (error) {
        failed = true;
        throw error;
      }
    }
  };
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, worker));
  const cpu = process.cpuUsage(cpu0);
  return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
}

async function latency(targets: number[][], count: number): Promise<number[][]> {
  const ms = targets.map((): number[] => []);
  for (let k = 0; k < count; k++) {
    for (let j = 0; j < targets.length; j++) {
      const t = (k + j) % targets.length;
      const ports = targets[t] ?? [];
      ms[t]?.push(await echo(ports[k % ports.length] ?? 0));
    }
  }
  return ms;
}

/** Writes `bytes` to `socket` while counting the echo; resolves when all of it is back. */
function pump(socket: TLSSocket, bytes: number): Promise<void> {
  return new Promise<void>((resolve, reject) => {
    let sent = 0;
    let received = 0;
    const timer = setTimeout(() => {
      reject(new Error(`bulk: ${received} of ${bytes} bytes echoed within ${BULK_LIMIT_MS} ms`));
    }, BULK_LIMIT_MS);
    const write = (): void => {
      while (sent < bytes) {
        const n = Math.min(CHUNK.length, bytes - sent);
        sent += n;
        if (!socket.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) {
          socket.once('drain', write);
          return;
        }
      }
    };
    const onData = (d: Buffer): void => {
      received += d.length;
      if (received < bytes) return;
      clearTimeout(timer);
      socket.off('data', onData);
      if (received === bytes) resolve();
      else reject(new Error(`bulk: ${received} bytes echoed for ${bytes} sent`));
    };
    socket.on('data', onData);
    socket.once('error', (error: Error) => {
      clearTimeout(timer);
      reject(error);
    });
    write();
  });
}

/** Ends every socket and waits (bounded) until each has closed. */
async function closeAll(sockets: TLSSocket[]): Promise<void> {
  await Promise.all(
    sockets.map(
      (socket) =>
        new Promise<void>((resolve) => {
          const timer = setTimeout(() => {
            socket.destroy();
          }, ECHO_LIMIT_MS);
          socket.once('close', () => {
            clearTimeout(timer);
            resolve();
          });
          socket.resume();
          socket.end();
        }),
    ),
  );
}

async function bulk(ports: number[], connections: number, bytes: number): Promise<{ seconds: number; cpuSeconds: number }> {
  const opened = Array.from({ length: connections }, (_, i) => open(ports[i % ports.length] ?? 0));
  const sockets = opened.map((o) => o.socket);
  try {
    await Promise.all(opened.map((o) => o.secured));
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    await Promise.all(sockets.map((socket) => pump(socket, bytes)));
    const cpu = process.cpuUsage(cpu0);
    return { seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 };
  } finally {
    await closeAll(sockets);
  }
}

const failure = (id: number) => (error: unknown) => {
  send({ id, op: 'failed', message: error instanceof Error ? error.message : String(error) });
};

process.on('disconnect', () => process.exit(0));

process.on('message', (request: ClientsRequest) => {
  switch (request.op) {
    case 'setup':
      settings = { ca: request.ca, servername: request.servername, peer: request.peer };
      return;
    case 'stop':
      process.exit(0);
      return;
    case 'rate':
      rate(request.ports, request.count, request.concurrency).then((r) => {
        send({ id: request.id, op: 'timed', ...r });
      }, failure(request.id));
      return;
    case 'latency':
      latency(request.targets, request.count).then((ms) => {
        send({ id: request.id, op: 'latency', ms });
      }, failure(request.id));
      return;
    case 'bulk':
      bulk(request.ports, request.connections, request.bytes).then((r) => {
        send({ id: request.id, op: 'timed', ...r });
      }, failure(request.id));
      return;
  }
});
