import { request as httpsRequest } from 'node:https';
import { TLSSocket, type PeerCertificate } from 'node:tls';
import { uriSansOf, type Workload } from '../trust/helpers.js';

export interface HttpsAnswer {
  status: number;
  body: string;
  /** the SPIFFE IDs on the server's certificate */
  serverIds: string[];
}

export interface HttpsCallOptions {
  /** the trust bundle the server's certificate must chain to */
  ca: string;
  /** the SPIFFE ID the server must present (checked instead of a host name) */
  serverId: string;
  client?: Workload;
  token?: string;
  body?: unknown;
}

/** One HTTPS request over a real TLS handshake, the server checked by the trust bundle and its SPIFFE ID. */
export function httpsCall(base: string, method: string, path: string, options: HttpsCallOptions): Promise<HttpsAnswer> {
  return new Promise((resolve, reject) => {
    const body = options.body === undefined ? undefined : JSON.stringify(options.body);
    const req = httpsRequest(
      new URL(path, base),
      {
        method,
        ca: options.ca,
        ...(options.client ? { key: options.client.keyPem, cert: options.client.tlsChainPem } : {}),
        headers: { ...(options.token ? { authorization: `Bearer ${options.token}` } : {}), ...(body !== undefined ? { 'content-type': 'application/json' } : {}) },
        checkServerIdentity: (_host: string, cert: PeerCertificate) => (uriSansOf(cert.subjectaltname).includes(options.serverId) ? undefined : new Error(`unexpected server identity ${cert.subjectaltname ?? ''}`)),
        agent: false,
        timeout: 10_000,
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          const socket = res.socket;
          resolve({ status: res.statusCode ?? 0, body: text, serverIds: socket instanceof TLSSocket ? uriSansOf(socket.getPeerCertificate().subjectaltname) : [] });
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('no answer within 10 s')));
    req.on('error', reject);
    req.end(body);
  });
}
