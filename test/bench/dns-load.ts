/**
 * The bundled UDP load loop for test/bench/dns.bench.ts, in a process of its own (forked), for machines without
 * dnsperf. Keeps CONCURRENCY queries in flight over one UDP socket, each slot sending its next query as soon as
 * its answer arrives; a query unanswered after timeoutMs is counted lost and its slot moves on. Stops sending after
 * durationMs or maxQueries, whichever first, then waits at most timeoutMs for the stragglers (counted lost).
 *
 *   parent → { host, port, queries: base64 DNS messages, concurrency (a power of two ≤ 1024), durationMs,
 *              maxQueries, timeoutMs }
 *   child  → { sent, completed, lost, seconds, cpuSeconds }
 */
import { createSocket } from 'node:dgram';

export interface LoadJob {
  host: string;
  port: number;
  queries: string[];
  concurrency: number;
  durationMs: number;
  maxQueries: number;
  timeoutMs: number;
}

export interface LoadResult {
  sent: number;
  completed: number;
  lost: number;
  seconds: number;
  cpuSeconds: number;
}

function load(job: LoadJob): Promise<LoadResult> {
  const queries = job.queries.map((text) => Buffer.from(text, 'base64'));
  const socket = createSocket('udp4');
  const expected = new Int32Array(job.concurrency).fill(-1);
  const sentAt = new Float64Array(job.concurrency);
  let sequence = 0;
  let sent = 0;
  let completed = 0;
  let lost = 0;
  let stopping = false;
  const cpu0 = process.cpuUsage();
  const t0 = performance.now();

  const sendOn = (slot: number): void => {
    if (stopping || sent >= job.maxQueries) {
      expected[slot] = -1;
      return;
    }
    // a copy: a send still queued must not see the next ID
    const message = Buffer.from(queries[sequence % queries.length] ?? Buffer.alloc(12));
    // the ID says which slot, and which of that slot's queries (the high bits)
    const id = (slot + job.concurrency * (sequence & (65536 / job.concurrency - 1))) & 0xffff;
    sequence++;
    message.writeUInt16BE(id, 0);
    expected[slot] = id;
    sentAt[slot] = performance.now();
    sent++;
    socket.send(message, job.port, job.host);
  };

  return new Promise((resolve) => {
    let finished = false;
    const finish = (): void => {
      if (finished) return;
      finished = true;
      clearInterval(watchdog);
      for (const id of expected) if (id >= 0) lost++;
      const cpu = process.cpuUsage(cpu0);
      socket.close();
      resolve({ sent, completed, lost, seconds: (performance.now() - t0) / 1000, cpuSeconds: (cpu.user + cpu.system) / 1e6 });
    };
    socket.on('message', (answer) => {
      const id = answer.readUInt16BE(0);
      const slot = id & (job.concurrency - 1);
      if (expected[slot] !== id) return; // late answer to a query already counted lost
      completed++;
      sendOn(slot);
      if (stopping && expected.every((value) => value < 0)) finish();
    });
    const watchdog = setInterval(() => {
      const now = performance.now();
      if (!stopping && (now - t0 >= job.durationMs || sent >= job.maxQueries)) stopping = true;
      for (let slot = 0; slot < job.concurrency; slot++) {
        if ((expected[slot] ?? -1) >= 0 && now - (sentAt[slot] ?? 0) > job.timeoutMs) {
          lost++;
          sendOn(slot);
        }
      }
      if (stopping && (expected.every((value) => value < 0) || now - t0 > job.durationMs + job.timeoutMs)) finish();
    }, 20);
    socket.bind(0, () => {
      socket.setRecvBufferSize(4 * 1024 * 1024);
      for (let slot = 0; slot < job.concurrency; slot++) sendOn(slot);
    });
  });
}

process.on('message', (job: LoadJob) => {
  void load(job).then((result) => {
    process.send?.(result);
  });
});
