/**
 * A raw ADS stream for tests, SotW or delta: what the grpc xDS client never sends (NACKs, stale nonces, garbage),
 * with every wait bounded.
 */
import type * as grpc from '@grpc/grpc-js';

/** A raw bidi stream: requests written as given, responses queued, every wait bounded. */
export class RawStream<Req, Res> {
  private readonly queue: Res[] = [];
  private waiter: (() => void) | undefined;
  status: grpc.StatusObject | undefined;
  readonly call: grpc.ClientDuplexStream<Req, Res>;

  constructor(client: grpc.Client, path: string, serialize: (req: Req) => Buffer, deserialize: (buf: Buffer) => Res) {
    this.call = client.makeBidiStreamRequest(path, serialize, deserialize);
    this.call.on('data', (res: Res) => {
      this.queue.push(res);
      this.waiter?.();
    });
    this.call.on('status', (s: grpc.StatusObject) => {
      this.status = s;
      this.waiter?.();
    });
    this.call.on('error', () => undefined);
  }

  send(req: Req): void {
    this.call.write(req);
  }

  /** the next response, or a rejection after `ms` */
  async next(ms = 3000): Promise<Res> {
    const deadline = Date.now() + ms;
    for (;;) {
      const r = this.queue.shift();
      if (r) return r;
      if (this.status) throw new Error(`stream ended: ${String(this.status.code)} ${this.status.details}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new Error(`no response within ${String(ms)} ms`);
      await new Promise<void>((resolve) => {
        const t = setTimeout(resolve, left);
        this.waiter = () => {
          clearTimeout(t);
          resolve();
        };
      });
      this.waiter = undefined;
    }
  }

  /** true if nothing arrives within `ms` */
  async quiet(ms = 300): Promise<boolean> {
    try {
      await this.next(ms);
      return false;
    } catch {
      return true;
    }
  }

  /** the final status, within `ms` */
  async ended(ms = 3000): Promise<grpc.StatusObject> {
    const deadline = Date.now() + ms;
    while (!this.status && Date.now() < deadline) await new Promise((r) => setTimeout(r, 10));
    if (!this.status) throw new Error(`stream still open after ${String(ms)} ms`);
    return this.status;
  }

  close(): void {
    this.call.end();
    this.call.cancel();
  }
}
