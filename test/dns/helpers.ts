/** A raw DNS client for the tests: any bytes over UDP or TCP, answers decoded with dns-packet. */
import { execFileSync } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { connect, isIPv6 } from 'node:net';
import { decode, encode, type DecodedPacket, type Packet } from 'dns-packet';

export const LOOPBACK6_AVAILABLE = ((): boolean => {
  try {
    execFileSync(process.execPath, ['-e', "require('node:dgram').createSocket('udp6').bind(0, '::1', function () { this.close() })"], { stdio: 'ignore', timeout: 10_000 });
    return true;
  } catch {
    return false;
  }
})();

export function hasCommand(command: string): boolean {
  try {
    execFileSync('sh', ['-c', `command -v ${command}`], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

export function query(name: string, type: NonNullable<Packet['questions']>[number]['type'], options: { id?: number; edns?: number; dnssecOk?: boolean } = {}): Buffer {
  return encode({
    type: 'query',
    id: options.id ?? 4321,
    flags: 0,
    questions: [{ name, type, class: 'IN' }],
    additionals: options.edns === undefined ? [] : [{ type: 'OPT', name: '.', udpPayloadSize: options.edns, extendedRcode: 0, ednsVersion: 0, flags: options.dnssecOk ? 0x8000 : 0, flag_do: options.dnssecOk ?? false, options: [] }],
  });
}

/** sends one datagram, resolves with the raw answer, or undefined after timeoutMs of silence */
export function udpExchange(port: number, message: Buffer, host = '127.0.0.1', timeoutMs = 2000): Promise<Buffer | undefined> {
  return new Promise((resolve, reject) => {
    const socket = createSocket(isIPv6(host) ? 'udp6' : 'udp4');
    const timer = setTimeout(() => {
      socket.close();
      resolve(undefined);
    }, timeoutMs);
    socket.once('error', (error) => {
      clearTimeout(timer);
      socket.close();
      reject(error);
    });
    socket.once('message', (answer) => {
      clearTimeout(timer);
      socket.close();
      resolve(answer);
    });
    socket.send(message, port, host);
  });
}

export async function udpQuery(port: number, message: Buffer, host = '127.0.0.1'): Promise<DecodedPacket> {
  const answer = await udpExchange(port, message, host);
  if (!answer) throw new Error('no answer over UDP');
  return decode(answer);
}

/** sends the messages over one TCP connection (framed), resolves with the decoded answers in order */
export function tcpQueries(port: number, messages: readonly Buffer[], host = '127.0.0.1', timeoutMs = 5000): Promise<DecodedPacket[]> {
  return new Promise((resolve, reject) => {
    const socket = connect({ port, host });
    const answers: DecodedPacket[] = [];
    let pending = Buffer.alloc(0);
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error(`only ${answers.length} of ${messages.length} TCP answers within ${timeoutMs} ms`));
    }, timeoutMs);
    socket.on('error', (error) => {
      clearTimeout(timer);
      reject(error);
    });
    socket.on('data', (chunk: Buffer) => {
      pending = Buffer.concat([pending, chunk]);
      while (pending.length >= 2 && pending.length >= 2 + pending.readUInt16BE(0)) {
        answers.push(decode(pending.subarray(2, 2 + pending.readUInt16BE(0))));
        pending = pending.subarray(2 + pending.readUInt16BE(0));
      }
      if (answers.length === messages.length) {
        clearTimeout(timer);
        socket.end();
        resolve(answers);
      }
    });
    for (const message of messages) {
      const framed = Buffer.alloc(message.length + 2);
      framed.writeUInt16BE(message.length, 0);
      message.copy(framed, 2);
      socket.write(framed);
    }
  });
}

export const rcodeOf = (packet: DecodedPacket): string => (packet as DecodedPacket & { rcode: string }).rcode;
