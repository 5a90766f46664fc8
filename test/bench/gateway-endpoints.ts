/**
 * The endpoints behind the gateways of gateway.bench.ts, in a process of their own so that their TLS work does not
 * share an event loop with the meshfed gateway being measured: TLS echo servers on 127.0.0.1 (node's tls, TLS 1.3,
 * the certificate the parent gives them, no client certificate asked), each echoing every byte it reads, with
 * backpressure (socket.pipe(socket)), and ending its side when the client ends.
 *
 * Messages in:  {op:'start', servers, key, cert}   listen; reply {op:'started', ports}
 *               {op:'stop'}                        close and exit
 * Messages out: {op:'started', ports}, {op:'failed', message}
 * The process exits when its parent goes away.
 */
import { createServer, type Server, type TLSSocket } from 'node:tls';

export type EndpointsRequest = { op: 'start'; servers: number; key: string; cert: string } | { op: 'stop' };

export type EndpointsReply = { op: 'started'; ports: number[] } | { op: 'failed'; message: string };

const servers: Server[] = [];

const send = (reply: EndpointsReply): void => {
  process.send?.(reply);
};

async function listen(key: string, cert: string): Promise<number> {
  const server = createServer({ key, cert }, (socket: TLSSocket) => {
    socket.on('error', () => {
      socket.destroy();
    });
    socket.pipe(socket);
  });
  servers.push(server);
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: '127.0.0.1', port: 0, backlog: 4096 }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const address = server.address();
  if (typeof address !== 'object' || address === null) throw new Error('an echo server has no port');
  return address.port;
}

process.on('disconnect', () => process.exit(0));

process.on('message', (request: EndpointsRequest) => {
  if (request.op === 'stop') {
    for (const server of servers) server.close();
    process.exit(0);
  }
  Promise.all(Array.from({ length: request.servers }, () => listen(request.key, request.cert))).then(
    (ports) => {
      send({ op: 'started', ports });
    },
    (error: unknown) => {
      send({ op: 'failed', message: error instanceof Error ? error.message : String(error) });
    },
  );
});
