/**
 * A stand-in for an east-west gateway until meshfed's own lands (issue 5): a TCP listener on loopback that splices
 * every connection to the next of its targets, in turn. It counts connections, so tests see traffic pass through.
 */
import { createServer, connect, type Server, type Socket } from 'node:net';

export interface TcpForwarder {
  address: string;
  port: number;
  /** connections accepted so far */
  connections(): number;
  close(): Promise<void>;
}

export async function startTcpForwarder(address: string, targets: () => readonly { host: string; port: number }[]): Promise<TcpForwarder> {
  let accepted = 0;
  let next = 0;
  const sockets = new Set<Socket>();
  const server: Server = createServer((inbound) => {
    accepted++;
    const list = targets();
    const target = list[next++ % Math.max(list.length, 1)];
    if (!target) {
      inbound.destroy();
      return;
    }
    const outbound = connect(target.port, target.host);
    for (const s of [inbound, outbound]) {
      sockets.add(s);
      s.on('close', () => sockets.delete(s));
      s.on('error', () => {
        inbound.destroy();
        outbound.destroy();
      });
    }
    inbound.pipe(outbound);
    outbound.pipe(inbound);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, address, resolve);
  });
  const bound = server.address();
  if (bound === null || typeof bound === 'string') throw new Error('forwarder: no address');
  return {
    address,
    port: bound.port,
    connections: () => accepted,
    close: () =>
      new Promise<void>((resolve) => {
        for (const s of sockets) s.destroy();
        server.close(() => {
          resolve();
        });
      }),
  };
}
