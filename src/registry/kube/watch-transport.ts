/**
 * HTTP to one cluster's Kubernetes API server: the GETs of lists and liveness checks, and the watch transport
 * that client-node's ListWatch drives (`WatchTransport`, in place of client-node's own Watch).
 *
 * - `WatchTransport` extends client-node's Watch only to be what ListWatch takes; none of Watch's own code runs.
 * - TLS and credentials come from the kubeconfig through client-node's `applyToHTTPSOptions` on every request
 *   (CA, client certificate and key, bearer token or basic auth, impersonation, `tls-server-name`,
 *   `insecure-skip-tls-verify`, exactly as client-node honours them; a rotating token is read afresh). The
 *   requests go through one keep-alive agent per `ApiClient`; a cluster behind `proxy-url` keeps the proxy
 *   agent client-node makes for it.
 * - Every request has a deadline for its answer: a GET for the whole of it, a watch for its head (connect, TLS,
 *   status line). A watch that has answered may stay quiet for any time: a server that hangs after that is
 *   the liveness probe's to find.
 * - A watch reads the raw chunks of the answer, splits them into lines at each '\n' and parses each line
 *   as JSON: no fetch, no PassThrough, no readline in between.
 * - A watch ends with `done(err)` exactly once, unless it was aborted (by ListWatch, or by the `signal` of its
 *   generation): then it ends silently, even while its request is still in flight. Errors carry what the
 *   registry needs to classify them: an HTTP status other than 200 or an ERROR event is a `StatusError` with
 *   the status code (410 Gone makes ListWatch re-list), a line that is not a watch event a `SyntaxError`
 *   (the watch ends at once: no loop over an HTML page), a connection lost in the middle of an answer a
 *   `DroppedError`, a missed deadline a `TimeoutError`.
 * - A watch that ends cleanly at once without a single event (an error page served as 200 with nothing in
 *   it, a proxy that closes every stream) is reopened only after a backoff, and after three in a row ends
 *   with an `EmptyWatchError`: ListWatch would otherwise reopen it in a hot loop.
 */
import { Agent as HttpAgent, request as httpRequest, STATUS_CODES, type Agent, type ClientRequest, type IncomingMessage, type OutgoingHttpHeaders } from 'node:http';
import { Agent as HttpsAgent, request as httpsRequest, type RequestOptions } from 'node:https';
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import { serverOf } from './kubeconfig.js';

/** An HTTP error status (from a GET, or a watch's ERROR event), with the Status message when there was one. */
export class StatusError extends Error {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(message);
  }
}

/** A request that got no (complete) answer in time. */
export class TimeoutError extends Error {}

/** The connection ended in the middle of an answer. */
export class DroppedError extends Error {}

/** A watch that keeps ending at once without an event. */
export class EmptyWatchError extends Error {}

/** a clean end of a watch before this, without a single event, is suspicious */
const QUICK_END_MS = 1_000;
/** that many suspicious ends in a row are a failure */
const QUICK_END_LIMIT = 3;
/** an error answer is read up to this much for its Status message */
const MAX_ERROR_BODY = 64 * 1024;
/** a watch line longer than this is not an object the API server could have stored */
const MAX_WATCH_LINE = 64 * 1024 * 1024;
const NEWLINE = 0x0a;

const isRecord = (value: unknown): value is Record<string, unknown> => typeof value === 'object' && value !== null && !Array.isArray(value);

/** The `message` of a Kubernetes Status body, or ''. */
export function statusMessage(body: string): string {
  try {
    const status: unknown = JSON.parse(body);
    if (isRecord(status) && typeof status['message'] === 'string') return status['message'];
  } catch {
    // an error page that is not a Status says nothing more
  }
  return '';
}

/** One request in flight. Whoever closes it first (the answer's reader, the deadline, an error, an abort) settles it. */
interface Exchange {
  /** true once closed: nothing more is delivered */
  isClosed(): boolean;
  /** the head of the answer came in time: stop the deadline */
  answered(): void;
  /** destroys the request (a socket already back in the keep-alive pool stays there); false when it was closed already */
  close(): boolean;
}

interface ExchangeHandlers {
  /** the head of the answer */
  response: (res: IncomingMessage, exchange: Exchange) => void;
  /** an error before the answer, or the deadline passed; the exchange is closed */
  failure: (err: Error) => void;
  /** the signal was aborted; the exchange is closed */
  aborted: () => void;
}

/** What a watch's reader hands over. */
interface WatchHandlers {
  /** every line that is a watch event, ERROR events included, before it is handled */
  line: () => void;
  /** every event but ERROR */
  event: (type: string, object: Record<string, unknown>, event: Record<string, unknown>) => void;
  /** the end, once: null when the answer ended cleanly */
  end: (err: Error | null) => void;
}

/**
 * The requests to one API server. Lists and watches of one generation share one client, and closing it (when
 * that generation is torn down) drops its idle connections; the liveness probe has a client of its own.
 */
export class ApiClient {
  readonly server: string;
  readonly config: KubeConfig;
  #agent: Agent | undefined;

  constructor(kc: KubeConfig) {
    this.config = kc;
    this.server = serverOf(kc);
  }

  /** Drops the idle connections; requests still in flight are their signals' to end. */
  close(): void {
    this.#agent?.destroy();
    this.#agent = undefined;
  }

  /**
   * GET `path`, resolving to the parsed JSON of a 2xx answer. Errors: StatusError (non-2xx, with the Status
   * message), SyntaxError (not JSON), TimeoutError (no complete answer within `timeoutMs`), DroppedError, the
   * socket's own error, or the signal's reason once it is aborted.
   */
  async get(path: string, options: { timeoutMs: number; maxBytes: number; signal: AbortSignal }): Promise<unknown> {
    const opts = await this.#requestOptions();
    const { signal } = options;
    signal.throwIfAborted();
    return new Promise<unknown>((resolve, reject) => {
      this.#send(new URL(`${this.server}${path}`), opts, options.timeoutMs, `GET ${path}`, signal, {
        failure: reject,
        aborted: () => {
          reject(signal.reason instanceof Error ? signal.reason : new Error(`GET ${path} aborted`));
        },
        response: (res, exchange) => {
          const chunks: Buffer[] = [];
          let size = 0;
          res.on('data', (chunk: Buffer) => {
            size += chunk.length;
            if (size <= options.maxBytes) chunks.push(chunk);
            else if (exchange.close()) reject(new Error(`GET ${path}: the answer is larger than ${Math.round(options.maxBytes / 1024)} KiB`));
          });
          res.on('error', () => undefined);
          res.on('close', () => {
            if (!exchange.close()) return;
            if (!res.complete) {
              reject(new DroppedError(`GET ${path}: the connection closed in the middle of the answer`));
              return;
            }
            const code = res.statusCode ?? 0;
            const body = Buffer.concat(chunks).toString('utf8');
            if (code < 200 || code >= 300) {
              reject(new StatusError(code, statusMessage(body)));
              return;
            }
            try {
              resolve(JSON.parse(body));
            } catch (err) {
              reject(err instanceof Error ? err : new SyntaxError(String(err)));
            }
          });
        },
      });
    });
  }

  /**
   * Opens a watch, `GET path?watch=true&...`, whose answer's head must come within `timeoutMs`. Aborting
   * `signal` ends it without a word.
   */
  async watch(path: string, query: Record<string, string | number | boolean | undefined>, timeoutMs: number, signal: AbortSignal, handlers: WatchHandlers): Promise<void> {
    const opts = await this.#requestOptions();
    if (signal.aborted) return;
    const url = new URL(`${this.server}${path}`);
    url.searchParams.set('watch', 'true');
    for (const [key, value] of Object.entries(query)) if (value !== undefined) url.searchParams.set(key, String(value));
    this.#send(url, opts, timeoutMs, `GET ${path}?watch=true`, signal, {
      failure: handlers.end,
      aborted: () => undefined,
      response: (res, exchange) => {
        const code = res.statusCode ?? 0;
        if (code === 200) {
          exchange.answered();
          readEvents(res, exchange, handlers);
        } else readStatus(res, code, exchange, handlers.end);
      },
    });
  }

  /** The kubeconfig's TLS options and credentials, read afresh for each request, with this client's agent. */
  async #requestOptions(): Promise<RequestOptions> {
    const opts: RequestOptions = {};
    await this.config.applyToHTTPSOptions(opts);
    // applyToHTTPSOptions also makes an agent (without keep-alive) on every call. It is not used, but for the proxy
    // agent of a cluster behind proxy-url: the TLS options go with each request, into this client's agent.
    if (this.#agent === undefined) {
      if (this.config.getCurrentCluster()?.proxyUrl && opts.agent instanceof HttpAgent) this.#agent = opts.agent;
      else this.#agent = this.server.startsWith('http:') ? new HttpAgent(KEEP_ALIVE) : new HttpsAgent(KEEP_ALIVE);
    }
    opts.agent = this.#agent;
    return opts;
  }

  #send(url: URL, opts: RequestOptions, timeoutMs: number, what: string, signal: AbortSignal, handlers: ExchangeHandlers): void {
    const headers: OutgoingHttpHeaders = { ...(opts.headers as OutgoingHttpHeaders | undefined), accept: 'application/json' };
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    let closed = false;
    const abort = (): void => {
      if (exchange.close()) handlers.aborted();
    };
    const exchange: Exchange = {
      isClosed() {
        return closed;
      },
      answered() {
        clearTimeout(timer);
      },
      close() {
        if (closed) return false;
        closed = true;
        clearTimeout(timer);
        signal.removeEventListener('abort', abort);
        req.destroy();
        return true;
      },
    };
    const req: ClientRequest = send(url, { ...opts, headers, method: 'GET' }, (res) => {
      if (!closed) handlers.response(res, exchange);
      else res.resume();
    });
    const timer = setTimeout(() => {
      if (exchange.close()) handlers.failure(new TimeoutError(`${what} got no answer within ${timeoutMs} ms`));
    }, timeoutMs);
    signal.addEventListener('abort', abort, { once: true });
    // stays attached: a destroyed request may still report 'socket hang up'
    req.on('error', (err) => {
      if (exchange.close()) handlers.failure(err);
    });
    req.end();
  }
}

const KEEP_ALIVE = { keepAlive: true, keepAliveMsecs: 30_000 };

/** Reads a non-200 answer for its Status message and ends with a StatusError carrying the code. */
function readStatus(res: IncomingMessage, code: number, exchange: Exchange, end: (err: Error) => void): void {
  const chunks: Buffer[] = [];
  let size = 0;
  res.on('data', (chunk: Buffer) => {
    if (size < MAX_ERROR_BODY) chunks.push(chunk);
    size += chunk.length;
  });
  res.on('error', () => undefined);
  res.on('close', () => {
    if (!exchange.close()) return;
    const detail = statusMessage(Buffer.concat(chunks).toString('utf8'));
    end(new StatusError(code, detail || (STATUS_CODES[code] ?? 'Unknown Status')));
  });
}

/**
 * Splits a watch answer into lines at each '\n' of the raw chunks, parses each line and hands the events over;
 * the first line that is not a watch event, or an ERROR event, ends the watch.
 */
function readEvents(res: IncomingMessage, exchange: Exchange, handlers: WatchHandlers): void {
  const end = (err: Error | null): void => {
    if (exchange.close()) handlers.end(err);
  };
  const line = (text: string): void => {
    if (text.length === 0 || text === '\r') return;
    let event: unknown;
    try {
      event = JSON.parse(text);
    } catch {
      end(new SyntaxError(`a watch line is not JSON: ${text.slice(0, 80)}`));
      return;
    }
    const type = isRecord(event) ? event['type'] : undefined;
    const object = isRecord(event) ? event['object'] : undefined;
    if (!isRecord(event) || typeof type !== 'string' || !isRecord(object)) {
      end(new SyntaxError(`a watch line is not a watch event: ${text.slice(0, 80)}`));
      return;
    }
    handlers.line();
    if (type === 'ERROR') {
      end(new StatusError(typeof object['code'] === 'number' ? object['code'] : 500, typeof object['message'] === 'string' ? object['message'] : 'watch error'));
      return;
    }
    if (!isRecord(object['metadata'])) {
      end(new SyntaxError(`a ${type} watch event without metadata: ${text.slice(0, 80)}`));
      return;
    }
    try {
      handlers.event(type, object, event);
    } catch (err) {
      end(err instanceof Error ? err : new Error(String(err)));
    }
  };
  /** the start of a line that goes on in the next chunk */
  let partial: Buffer[] = [];
  let partialSize = 0;
  res.on('data', (chunk: Buffer) => {
    if (exchange.isClosed()) return;
    let start = 0;
    let newline = chunk.indexOf(NEWLINE);
    if (partialSize > 0) {
      if (newline === -1) {
        partialSize += chunk.length;
        if (partialSize > MAX_WATCH_LINE) end(new Error(`a watch line is longer than ${MAX_WATCH_LINE / 1024 / 1024} MiB`));
        else partial.push(chunk);
        return;
      }
      partial.push(chunk.subarray(0, newline));
      const text = Buffer.concat(partial).toString('utf8');
      partial = [];
      partialSize = 0;
      line(text);
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    while (newline !== -1 && !exchange.isClosed()) {
      line(chunk.toString('utf8', start, newline));
      start = newline + 1;
      newline = chunk.indexOf(NEWLINE, start);
    }
    if (start < chunk.length && !exchange.isClosed()) {
      partial.push(chunk.subarray(start));
      partialSize = chunk.length - start;
    }
  });
  res.on('error', () => undefined);
  res.on('close', () => {
    if (exchange.isClosed()) return;
    if (!res.complete) {
      end(new DroppedError('the connection closed in the middle of a watch'));
      return;
    }
    // the last line may come without its newline
    if (partialSize > 0) line(Buffer.concat(partial).toString('utf8'));
    end(null);
  });
}

export interface WatchTransportOptions {
  /** the generation's signal: once aborted, no watch starts and none delivers anything more */
  signal: AbortSignal;
  /** how long a watch request may wait for the head of its answer */
  connectTimeoutMs: number;
  /** the delay before reopening a watch after the `attempt`-th quick empty end in a row */
  backoff: (attempt: number) => number;
  /** called for every event line of every watch (ERROR events too) */
  onLine?: () => void;
}

/**
 * The Watch that client-node's ListWatch calls (see the top of this module). One per ListWatch: it counts that
 * informer's quick empty ends.
 */
export class WatchTransport extends Watch {
  readonly #client: ApiClient;
  readonly #options: WatchTransportOptions;
  #quickEnds = 0;

  constructor(client: ApiClient, options: WatchTransportOptions) {
    super(client.config);
    this.#client = client;
    this.#options = options;
  }

  /**
   * Starts a watch and resolves at once to its aborter, so that ListWatch.stop() ends it even before it is
   * answered. `done` is called once at its end, never after an abort.
   */
  override watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    const controller = new AbortController();
    const generation = this.#options.signal;
    if (generation.aborted) {
      controller.abort();
      return Promise.resolve(controller);
    }
    const abort = (): void => {
      controller.abort();
    };
    generation.addEventListener('abort', abort, { once: true });
    controller.signal.addEventListener('abort', () => {
      generation.removeEventListener('abort', abort);
    }, { once: true });
    const finish = (err: Error | null): void => {
      if (controller.signal.aborted) return;
      // the watch is over: aborting it now (ListWatch does, as it handles the end) changes nothing
      controller.abort();
      done(err);
    };
    void this.#run(path, queryParams, controller.signal, callback, finish).catch((err: unknown) => {
      finish(err instanceof Error ? err : new Error(String(err)));
    });
    return Promise.resolve(controller);
  }

  async #run(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    signal: AbortSignal,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    finish: (err: Error | null) => void,
  ): Promise<void> {
    if (this.#quickEnds > 0) await sleep(this.#options.backoff(this.#quickEnds), signal);
    if (signal.aborted) return;
    const started = Date.now();
    let sawEvent = false;
    const onLine = this.#options.onLine;
    await this.#client.watch(path, queryParams, this.#options.connectTimeoutMs, signal, {
      line: () => {
        if (!sawEvent) {
          sawEvent = true;
          this.#quickEnds = 0;
        }
        onLine?.();
      },
      event: callback,
      end: (err) => {
        if (err === null && !sawEvent && Date.now() - started < QUICK_END_MS && ++this.#quickEnds >= QUICK_END_LIMIT) {
          this.#quickEnds = 0;
          finish(new EmptyWatchError(`API server ${this.#client.server} ends every watch of ${path} at once without sending an event`));
          return;
        }
        finish(err);
      },
    });
  }
}

/** Resolves after `ms`, or at once when `signal` is aborted. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  if (signal.aborted) return Promise.resolve();
  return new Promise((resolve) => {
    const wake = (): void => {
      clearTimeout(timer);
      resolve();
    };
    const timer = setTimeout(() => {
      signal.removeEventListener('abort', wake);
      resolve();
    }, ms);
    signal.addEventListener('abort', wake, { once: true });
  });
}
