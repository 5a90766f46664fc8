/**
 * The few requests a drill makes to a real cluster's API server: GET (reads), PATCH with a JSON merge patch (the
 * `scale` subresource) and DELETE (pods), with the cluster's registered kubeconfig (loaded as the registry loads it,
 * so an unsafe one is refused the same way), a deadline for each and a bounded answer. Failures say which server,
 * which request and, for a 403, which permission the kubeconfig's user lacks.
 */
import { request as httpRequest, type OutgoingHttpHeaders } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import { describeKubeError } from '../registry/kube/kube-source.js';
import { serverOf } from '../registry/kube/kubeconfig.js';
import { StatusError, statusMessage, TimeoutError } from '../registry/kube/watch-transport.js';

/** a drill reads services, deployments and pods: far less than this */
const MAX_ANSWER_BYTES = 64 * 1024 * 1024;
export const DEFAULT_REQUEST_TIMEOUT_MS = 10_000;

export type KubeMethod = 'GET' | 'PATCH' | 'DELETE';

export interface KubeRequest {
  method: KubeMethod;
  /** the URL path and query, e.g. /api/v1/namespaces/default/pods?labelSelector=app%3Dreviews */
  path: string;
  /** a JSON merge patch (PATCH) or DeleteOptions (DELETE) */
  body?: unknown;
  /** what the kubeconfig's user must be allowed, for the 403 message: "patch deployments/scale in default" */
  permission: string;
}

/** A request the API server refused or never answered; the message is for people (no credentials in it). */
export class KubeRequestError extends Error {
  constructor(
    message: string,
    /** the HTTP status, when there was an answer */
    readonly statusCode?: number,
  ) {
    super(message);
  }
}

export class KubeApi {
  readonly server: string;

  constructor(
    private readonly config: KubeConfig,
    private readonly timeoutMs = DEFAULT_REQUEST_TIMEOUT_MS,
  ) {
    this.server = serverOf(config);
  }

  /** Sends the request; resolves to the parsed JSON of a 2xx answer, rejects with a KubeRequestError. */
  async send(req: KubeRequest): Promise<unknown> {
    const what = `${req.method} ${req.path.split('?')[0] ?? req.path}`;
    try {
      return await this.#send(req);
    } catch (error) {
      const status = error instanceof StatusError ? error.statusCode : undefined;
      throw new KubeRequestError(describeKubeError(error, this.server, what, req.permission), status);
    }
  }

  async #send(req: KubeRequest): Promise<unknown> {
    const opts: RequestOptions = {};
    await this.config.applyToHTTPSOptions(opts);
    const url = new URL(`${this.server}${req.path}`);
    const payload = req.body === undefined ? undefined : Buffer.from(JSON.stringify(req.body));
    const headers: OutgoingHttpHeaders = {
      ...(opts.headers as OutgoingHttpHeaders | undefined),
      accept: 'application/json',
      ...(payload ? { 'content-type': req.method === 'PATCH' ? 'application/merge-patch+json' : 'application/json', 'content-length': payload.length } : {}),
    };
    const send = url.protocol === 'http:' ? httpRequest : httpsRequest;
    return new Promise<unknown>((resolve, reject) => {
      const request = send(url, { ...opts, headers, method: req.method, signal: AbortSignal.timeout(this.timeoutMs) }, (res) => {
        const chunks: Buffer[] = [];
        let size = 0;
        res.on('data', (chunk: Buffer) => {
          size += chunk.length;
          if (size <= MAX_ANSWER_BYTES) chunks.push(chunk);
          else res.destroy(new Error(`the answer is larger than ${String(MAX_ANSWER_BYTES / 1024 / 1024)} MiB`));
        });
        res.on('error', reject);
        res.on('end', () => {
          const code = res.statusCode ?? 0;
          const body = Buffer.concat(chunks).toString('utf8');
          if (code < 200 || code >= 300) {
            reject(new StatusError(code, statusMessage(body)));
            return;
          }
          try {
            resolve(body === '' ? {} : JSON.parse(body));
          } catch (error) {
            reject(error instanceof Error ? error : new SyntaxError(String(error)));
          }
        });
      });
      request.on('error', (error) => {
        reject(error.name === 'AbortError' || error.name === 'TimeoutError' ? new TimeoutError(`no answer within ${String(this.timeoutMs)} ms`) : error);
      });
      request.end(payload);
    });
  }
}
