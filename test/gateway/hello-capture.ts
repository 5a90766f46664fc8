// Captures the first TLS records real clients send: a plain `net` server on 127.0.0.1 records the bytes until the
// first record is complete (the ClientHello of Node and OpenSSL fits one record), then hangs up.
import { spawn } from 'node:child_process';
import net, { type AddressInfo } from 'node:net';
import tls from 'node:tls';

const CAPTURE_TIMEOUT_MS = 10_000;

/** Runs `start(port)` against a capturing server and resolves with the first complete record it receives. */
async function capture(start: (port: number, fail: (error: Error) => void) => () => void): Promise<Uint8Array> {
  const server = net.createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address() as AddressInfo;
  let stop: (() => void) | undefined;
  try {
    return await new Promise<Uint8Array>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no complete TLS record within ${CAPTURE_TIMEOUT_MS} ms`));
      }, CAPTURE_TIMEOUT_MS);
      server.on('connection', (socket) => {
        let received = Buffer.alloc(0);
        socket.on('error', () => undefined);
        socket.on('data', (chunk: Buffer) => {
          received = Buffer.concat([received, chunk]);
          if (received.length >= 5 && received.length >= 5 + received.readUInt16BE(3)) {
            clearTimeout(timer);
            socket.destroy();
            resolve(new Uint8Array(received));
          }
        });
      });
      stop = start(port, (error) => {
        clearTimeout(timer);
        reject(error);
      });
    });
  } finally {
    stop?.();
    await new Promise((resolve) => server.close(resolve));
  }
}

/** The ClientHello Node's `tls.connect` sends to 127.0.0.1 with these options. */
export function nodeClientHello(options: tls.ConnectionOptions): Promise<Uint8Array> {
  return capture((port) => {
    const socket = tls.connect({ host: '127.0.0.1', port, rejectUnauthorized: false, ...options });
    socket.on('error', () => undefined);
    return () => socket.destroy();
  });
}

/** The ClientHello `openssl s_client -connect 127.0.0.1:PORT ...args` sends. */
export function opensslClientHello(args: string[]): Promise<Uint8Array> {
  return capture((port, fail) => {
    const child = spawn('/usr/bin/openssl', ['s_client', '-connect', `127.0.0.1:${port}`, ...args], {
      stdio: ['pipe', 'ignore', 'ignore'],
      timeout: CAPTURE_TIMEOUT_MS,
    });
    child.on('error', fail);
    return () => child.kill();
  });
}
